//! Pcap file I/O with the pure-Rust `pcap-file` crate: no system library needed. This is
//! flowgate's one reader and writer of capture files; replay and the trace generator both
//! go through it.
//!
//! Reading takes classic pcap (either timestamp resolution, either byte order) and pcapng
//! (told apart by the magic number), Ethernet link type only: the data path starts at the
//! Ethernet header, so anything else is refused with [`PcapError::LinkType`].
//!
//! Records are read as leniently as libpcap (tcpdump) reads them, since a trace a user
//! brings should replay wherever tcpdump reads it: pcap-file parses each classic record's
//! header and data ([`PcapReader::next_raw_packet`]) and the checks are ours, not its
//! stricter [`PcapReader::next_packet`]'s. A timestamp fraction of a whole second or more
//! (scapy rounds a time up to a microsecond field of 1,000,000) is carried into the
//! seconds and counted ([`PcapSource::normalised_timestamps`]); a captured length under the
//! wire length or over the header's snap length is what truncating capture tools write and
//! is accepted. A record that cannot be read is a [`PcapError::Record`] naming its index,
//! its byte offset and how many frames were read before it, and those frames are handed
//! out first.
//!
//! A written file appears under its name only when complete: [`PcapSink::create`] writes
//! to `NAME.partial` and [`PcapSink::finish`] renames it; a sink dropped unfinished (an
//! error, a panic) removes the partial file, so a failed run leaves no output that looks
//! like a whole one.
//!
//! Writing always produces classic pcap, link type 1 (Ethernet), snap length [`SNAPLEN`],
//! nanosecond timestamps and little-endian headers. Nanoseconds so that a frame's time
//! survives a round trip whatever resolution it was read with; libpcap ≥ 1.5 (tcpdump,
//! DPDK's `net_pcap`) and Wireshark read them. Little-endian whatever the host so that a
//! written trace is byte-identical on every platform.

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, Endianness, TsResolution};
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest frame a written file may hold; also the snap length in its header.
pub const SNAPLEN: u32 = 65_535;

/// What errors name as the path when frames come from or go to a stream, not a file.
const STREAM: &str = "<pcap stream>";

/// One captured Ethernet frame and the time it was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Time since the Unix epoch. Written files keep it to the nanosecond.
    pub ts: Duration,
    /// The whole frame from the destination MAC on, without the FCS.
    pub data: Vec<u8>,
}

/// Why a capture could not be read or written. `path` is the file, or `<pcap stream>`
/// for the stream functions ([`read_pcap`], [`write_pcap`]).
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable pcap file: {source}")]
    Format {
        path: PathBuf,
        source: pcap_file::PcapError,
    },
    /// One record (classic pcap) or block (pcapng) cannot be read; every frame before it
    /// was handed out.
    #[error(
        "{path}: record {index} at byte offset {offset} is unreadable: {reason}; {frames_before} frames were read before it"
    )]
    Record {
        path: PathBuf,
        /// The record's (pcapng: the block's) index in the file, from 0.
        index: u64,
        /// Where the record starts in the file.
        offset: u64,
        /// Frames read (and handed out) before it.
        frames_before: u64,
        reason: String,
    },
    #[error(
        "{path}: link type {link:?} is not Ethernet; flowgate reads Ethernet (DLT_EN10MB) captures"
    )]
    LinkType { path: PathBuf, link: DataLink },
    /// The frame does not fit the pcap format: longer than [`SNAPLEN`], or a timestamp past
    /// what the 32-bit seconds field holds (year 2106).
    #[error("{path}: cannot write a frame: {source}")]
    Write {
        path: PathBuf,
        source: pcap_file::PcapError,
    },
}

/// Reads frames from a pcap or pcapng stream (told apart by their magic number), in bursts.
pub struct PcapSource<R: BufRead = BufReader<File>> {
    path: PathBuf,
    reader: Reader<R>,
    /// The next record's (pcapng: block's) index and byte offset.
    index: u64,
    offset: u64,
    /// Frames handed out so far.
    frames: u64,
    normalised: u64,
    /// A record error found in the middle of a burst, returned by the next call so that
    /// the frames before the bad record are handed out first.
    failed: Option<PcapError>,
}

enum Reader<R: BufRead> {
    Pcap(PcapReader<R>),
    PcapNg(PcapNgReader<R>),
}

/// The pcapng section header block type, which is also the file's magic number.
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// The classic pcap file header's length.
const PCAP_HEADER_LEN: u64 = 24;

/// The largest captured length libpcap reads (its `MAXIMUM_SNAPLEN`); a larger one is a
/// corrupt record, not a frame.
const MAX_CAPTURED_LEN: u32 = 262_144;

/// What one record read gave.
enum Record {
    Frame(Frame),
    /// A pcapng block that holds no packet.
    Other,
}

impl PcapSource {
    pub fn open(path: &Path) -> Result<PcapSource, PcapError> {
        let file = File::open(path).map_err(|source| PcapError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_reader(BufReader::with_capacity(1 << 20, file), path)
    }
}

impl<R: BufRead> PcapSource<R> {
    /// Reads from `reader`; `path` only names the stream in errors.
    pub fn from_reader(mut reader: R, path: &Path) -> Result<PcapSource<R>, PcapError> {
        let format = |source| PcapError::Format {
            path: path.into(),
            source,
        };
        let head = reader.fill_buf().map_err(|source| PcapError::Io {
            path: path.into(),
            source,
        })?;
        let (reader, offset) = if head.starts_with(&PCAPNG_MAGIC) {
            let offset = section_header_len(head);
            (
                Reader::PcapNg(PcapNgReader::new(reader).map_err(format)?),
                offset,
            )
        } else {
            let r = PcapReader::new(reader).map_err(format)?;
            let link = r.header().datalink;
            if link != DataLink::ETHERNET {
                return Err(PcapError::LinkType {
                    path: path.into(),
                    link,
                });
            }
            (Reader::Pcap(r), PCAP_HEADER_LEN)
        };
        Ok(PcapSource {
            path: path.into(),
            reader,
            // The pcapng section header was block 0.
            index: u64::from(offset != PCAP_HEADER_LEN),
            offset,
            frames: 0,
            normalised: 0,
            failed: None,
        })
    }

    /// How many records so far had a timestamp fraction of a whole second or more (scapy
    /// writes a microsecond field of 1,000,000), carried into the seconds.
    pub fn normalised_timestamps(&self) -> u64 {
        self.normalised
    }

    /// Frames handed out so far.
    pub fn frames_read(&self) -> u64 {
        self.frames
    }

    /// Up to `max` frames appended to `into`; returns how many (0 at the end). After an
    /// unreadable record, the frames before it come first and the error with the next call.
    pub fn read_burst(&mut self, max: usize, into: &mut Vec<Frame>) -> Result<usize, PcapError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut n = 0;
        while n < max {
            match self.next_record() {
                Ok(None) => break,
                Ok(Some(Record::Other)) => {}
                Ok(Some(Record::Frame(frame))) => {
                    into.push(frame);
                    n += 1;
                    self.frames += 1;
                }
                Err(e) if n == 0 => return Err(e),
                Err(e) => {
                    self.failed = Some(e);
                    break;
                }
            }
        }
        Ok(n)
    }

    /// The next record, or `None` at the end of the stream.
    fn next_record(&mut self) -> Result<Option<Record>, PcapError> {
        let (index, offset, frames_before) = (self.index, self.offset, self.frames);
        let path = &self.path;
        let record_error = |reason: String| PcapError::Record {
            path: path.clone(),
            index,
            offset,
            frames_before,
            reason,
        };
        let (record, len) = match &mut self.reader {
            Reader::Pcap(r) => {
                let header = r.header();
                let raw = match r.next_raw_packet() {
                    None => return Ok(None),
                    Some(Ok(raw)) => raw,
                    Some(Err(e)) => return Err(record_error(reason(e))),
                };
                let len = 16 + u64::from(raw.incl_len);
                if raw.incl_len > MAX_CAPTURED_LEN {
                    return Err(record_error(format!(
                        "captured length {} is over libpcap's limit of {MAX_CAPTURED_LEN}",
                        raw.incl_len
                    )));
                }
                let per_second = match header.ts_resolution {
                    TsResolution::MicroSecond => 1_000_000,
                    TsResolution::NanoSecond => 1_000_000_000,
                };
                let (ts, carried) = record_timestamp(raw.ts_sec, raw.ts_frac, per_second);
                self.normalised += u64::from(carried);
                let frame = Frame {
                    ts,
                    data: raw.data.into_owned(),
                };
                (Record::Frame(frame), len)
            }
            Reader::PcapNg(r) => {
                let endianness = r.section().endianness;
                let raw = match r.next_raw_block() {
                    None => return Ok(None),
                    Some(Ok(raw)) => raw,
                    Some(Err(e)) => return Err(record_error(reason(e))),
                };
                let len = u64::from(raw.initial_len);
                let block = match endianness {
                    Endianness::Big => raw.try_into_block::<byteorder_slice::BigEndian>(),
                    Endianness::Little => raw.try_into_block::<byteorder_slice::LittleEndian>(),
                }
                .map_err(|e| record_error(reason(e)))?
                // Owned (the packet's bytes are copied out anyway) so the reader's
                // interfaces can be looked at.
                .into_owned();
                let record = match pcapng_frame(r, block) {
                    Ok(Some(frame)) => Record::Frame(frame),
                    Ok(None) => Record::Other,
                    Err(PcapngFrameError::Undeclared) => {
                        return Err(record_error(
                            "the packet names an undeclared interface".into(),
                        ))
                    }
                    Err(PcapngFrameError::LinkType(link)) => {
                        return Err(PcapError::LinkType {
                            path: path.clone(),
                            link,
                        })
                    }
                };
                (record, len)
            }
        };
        self.index += 1;
        self.offset += len;
        Ok(Some(record))
    }

    /// Every frame of the stream.
    pub fn read_all(mut self) -> Result<Vec<Frame>, PcapError> {
        let mut frames = Vec::new();
        while self.read_burst(4096, &mut frames)? > 0 {}
        Ok(frames)
    }
}

/// A record's time from its seconds and fraction fields (`per_second` fraction units to a
/// second), and whether the fraction held a whole second or more that was carried into the
/// seconds: libpcap hands such records on as they are, and tcpdump prints them; we carry
/// so the time is a valid one.
fn record_timestamp(secs: u32, frac: u32, per_second: u32) -> (Duration, bool) {
    let carried = frac >= per_second;
    let secs = u64::from(secs) + u64::from(frac / per_second);
    let nanos = (frac % per_second) * (1_000_000_000 / per_second);
    (Duration::new(secs, nanos), carried)
}

/// Why pcap-file could not read a record, in words.
fn reason(e: pcap_file::PcapError) -> String {
    match e {
        pcap_file::PcapError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the file ends inside it (cut short, or its length field is corrupt)".into()
        }
        e => e.to_string(),
    }
}

/// The length of the pcapng section header block at the start of `head` (its magic says
/// its byte order), 0 when `head` is too short to tell (the reader then fails anyway).
fn section_header_len(head: &[u8]) -> u64 {
    let (Some(len), Some(magic)) = (head.get(4..8), head.get(8..12)) else {
        return 0;
    };
    let len: [u8; 4] = len.try_into().expect("4 bytes");
    u64::from(if magic == [0x4d, 0x3c, 0x2b, 0x1a] {
        u32::from_le_bytes(len)
    } else {
        u32::from_be_bytes(len)
    })
}

/// Writes frames as an Ethernet pcap stream (nanosecond timestamps, so replay output keeps
/// the input's time exactly whatever its resolution).
pub struct PcapSink<W: Write = BufWriter<File>> {
    path: PathBuf,
    writer: PcapWriter<W>,
    /// For a file: where it is written until [`PcapSink::finish`] renames it.
    partial: Option<Partial>,
}

/// A file written under a temporary name; removed when dropped before it is renamed.
struct Partial {
    temporary: PathBuf,
    renamed: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.renamed {
            // Best effort: the run is failing already, and a leftover `.partial` name
            // does not look complete.
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// `NAME.partial` beside `path`.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

impl PcapSink {
    /// Writes a file that appears at `path` (replacing what is there) when
    /// [`PcapSink::finish`] succeeds; until then it is `path` + `.partial`.
    pub fn create(path: &Path) -> Result<PcapSink, PcapError> {
        let temporary = partial_path(path);
        let file = File::create(&temporary).map_err(|source| PcapError::Io {
            path: temporary.clone(),
            source,
        })?;
        let partial = Partial {
            temporary,
            renamed: false,
        };
        let mut sink = Self::from_writer(BufWriter::with_capacity(1 << 20, file), path)?;
        sink.partial = Some(partial);
        Ok(sink)
    }
}

impl<W: Write> PcapSink<W> {
    /// Writes the file header to `writer`; `path` only names the stream in errors.
    pub fn from_writer(writer: W, path: &Path) -> Result<PcapSink<W>, PcapError> {
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::Little,
            snaplen: SNAPLEN,
            ..Default::default()
        };
        let writer =
            PcapWriter::with_header(writer, header).map_err(|source| write_error(path, source))?;
        Ok(PcapSink {
            path: path.into(),
            writer,
            partial: None,
        })
    }

    pub fn write(&mut self, ts: Duration, data: &[u8]) -> Result<(), PcapError> {
        let packet = PcapPacket {
            timestamp: ts,
            // Saturated so that a frame too long for the format fails pcap-file's length
            // check instead of being written with a wrapped length.
            orig_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
            data: Cow::Borrowed(data),
        };
        self.writer
            .write_packet(&packet)
            .map_err(|source| write_error(&self.path, source))?;
        Ok(())
    }

    /// Flushes what is buffered, gives a file its name, and hands back the writer.
    pub fn finish(self) -> Result<W, PcapError> {
        let mut inner = self.writer.into_writer();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PcapError::Io { path, source }
        };
        inner.flush().map_err(io(&self.path))?;
        if let Some(mut partial) = self.partial {
            std::fs::rename(&partial.temporary, &self.path).map_err(io(&self.path))?;
            partial.renamed = true;
        }
        Ok(inner)
    }
}

fn write_error(path: &Path, error: pcap_file::PcapError) -> PcapError {
    match error {
        pcap_file::PcapError::IoError(source) => PcapError::Io {
            path: path.into(),
            source,
        },
        source => PcapError::Write {
            path: path.into(),
            source,
        },
    }
}

/// Every frame of a pcap or pcapng stream, Ethernet only.
pub fn read_pcap<R: BufRead>(reader: R) -> Result<Vec<Frame>, PcapError> {
    PcapSource::from_reader(reader, Path::new(STREAM))?.read_all()
}

/// Every frame of the pcap or pcapng file at `path`, Ethernet only.
pub fn read_pcap_file(path: impl AsRef<Path>) -> Result<Vec<Frame>, PcapError> {
    PcapSource::open(path.as_ref())?.read_all()
}

/// `frames` written in the order given as a pcap stream to `writer`, which is handed back.
pub fn write_pcap<W: Write>(writer: W, frames: &[Frame]) -> Result<W, PcapError> {
    let mut sink = PcapSink::from_writer(writer, Path::new(STREAM))?;
    for frame in frames {
        sink.write(frame.ts, &frame.data)?;
    }
    sink.finish()
}

/// `frames` written in the order given to a pcap file at `path` (created or truncated).
pub fn write_pcap_file(path: impl AsRef<Path>, frames: &[Frame]) -> Result<(), PcapError> {
    let mut sink = PcapSink::create(path.as_ref())?;
    for frame in frames {
        sink.write(frame.ts, &frame.data)?;
    }
    sink.finish()?;
    Ok(())
}

enum PcapngFrameError {
    Undeclared,
    LinkType(DataLink),
}

/// The frame a pcapng block holds, `None` for blocks that hold no packet.
fn pcapng_frame<R: BufRead>(
    r: &PcapNgReader<R>,
    block: Block<'_>,
) -> Result<Option<Frame>, PcapngFrameError> {
    let (interface, raw_ts, data) = match block {
        Block::EnhancedPacket(p) => (
            p.interface_id,
            p.timestamp.as_nanos() as u64,
            p.data.into_owned(),
        ),
        Block::SimplePacket(p) => (0, 0, p.data.into_owned()),
        Block::Packet(p) => (p.interface_id as u32, p.timestamp, p.data.into_owned()),
        _ => return Ok(None),
    };
    let idb = r
        .interfaces()
        .get(interface as usize)
        .ok_or(PcapngFrameError::Undeclared)?;
    if idb.linktype != DataLink::ETHERNET {
        return Err(PcapngFrameError::LinkType(idb.linktype));
    }
    // pcap-file hands over the raw 64-bit timestamp as if it counted nanoseconds; its
    // unit is really the interface's if_tsresol (microseconds when absent).
    let ts = timestamp(raw_ts, units_per_second(idb));
    Ok(Some(Frame { ts, data }))
}

/// `raw` units of `1 / per_second` s, split into whole seconds first so that no
/// resolution, however coarse, overflows.
fn timestamp(raw: u64, per_second: u128) -> Duration {
    let (raw, per_second) = (u128::from(raw), per_second.max(1));
    let secs = raw / per_second;
    let nanos = (raw % per_second) * 1_000_000_000 / per_second;
    // raw < 2^64 so secs fits u64, and nanos < 10^9.
    Duration::new(secs as u64, nanos as u32)
}

fn units_per_second(idb: &InterfaceDescriptionBlock) -> u128 {
    for opt in &idb.options {
        if let InterfaceDescriptionOption::IfTsResol(r) = *opt {
            let exp = (r & 0x7f) as u32;
            return if r & 0x80 == 0 {
                10u128.saturating_pow(exp)
            } else {
                2u128.saturating_pow(exp)
            };
        }
    }
    1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Vec<Frame> {
        vec![
            Frame {
                ts: Duration::new(1_704_067_200, 123_456_789),
                data: vec![0xff; 60],
            },
            Frame {
                ts: Duration::new(1_704_067_201, 999_999_999),
                data: (0..=255).collect(),
            },
            Frame {
                ts: Duration::new(1_704_067_202, 0),
                data: vec![0x5a; SNAPLEN as usize],
            },
        ]
    }

    #[test]
    fn round_trips_through_a_file_to_the_nanosecond() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcap");
        write_pcap_file(&path, &frames()).unwrap();
        assert_eq!(read_pcap_file(&path).unwrap(), frames());
    }

    #[test]
    fn round_trips_through_a_stream() {
        let bytes = write_pcap(Vec::new(), &frames()).unwrap();
        assert_eq!(read_pcap(&bytes[..]).unwrap(), frames());
        let empty = write_pcap(Vec::new(), &[]).unwrap();
        assert_eq!(read_pcap(&empty[..]).unwrap(), Vec::<Frame>::new());
    }

    #[test]
    fn header_is_little_endian_nanosecond_ethernet() {
        let bytes = write_pcap(Vec::new(), &frames()).unwrap();
        assert_eq!(&bytes[0..4], &[0x4d, 0x3c, 0xb2, 0xa1], "LE ns magic");
        assert_eq!(&bytes[16..20], &SNAPLEN.to_le_bytes(), "snap length");
        assert_eq!(&bytes[20..24], &1u32.to_le_bytes(), "link type Ethernet");
        // First record: ts_sec, ts_nsec, incl_len, orig_len.
        assert_eq!(&bytes[24..28], &1_704_067_200u32.to_le_bytes());
        assert_eq!(&bytes[28..32], &123_456_789u32.to_le_bytes());
        assert_eq!(&bytes[32..36], &60u32.to_le_bytes());
        assert_eq!(&bytes[36..40], &60u32.to_le_bytes());
    }

    #[test]
    fn reads_microsecond_pcap() {
        // A classic µs pcap as older tools write it: the fraction field counts µs.
        let mut bytes = write_pcap(Vec::new(), &frames()[..1]).unwrap();
        bytes[0..4].copy_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1]);
        bytes[28..32].copy_from_slice(&123_456u32.to_le_bytes());
        let read = read_pcap(&bytes[..]).unwrap();
        assert_eq!(read[0].ts, Duration::new(1_704_067_200, 123_456_000));
        assert_eq!(read[0].data, frames()[0].data);
    }

    /// A classic pcap exactly as scapy's `wrpcap` writes it on a little-endian host: the
    /// microsecond magic in native order, version 2.4, snap length 65535, Ethernet, and
    /// records of (sec, usec, caplen, wirelen). scapy computes the microseconds as
    /// `round(frac * 1e6)`, so a time just under a whole second gets usec = 1,000,000.
    fn scapy_pcap(frames: usize, whole_second_usec_at: usize) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(0xa1b2_c3d4u32.to_le_bytes());
        out.extend(2u16.to_le_bytes());
        out.extend(4u16.to_le_bytes());
        out.extend(0i32.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(65_535u32.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        for i in 0..frames {
            let data = [i as u8; 60];
            let (sec, usec) = if i == whole_second_usec_at {
                (1_700_000_000 + i as u32, 1_000_000)
            } else {
                (1_700_000_000 + i as u32, 500_000)
            };
            for v in [sec, usec, data.len() as u32, data.len() as u32] {
                out.extend(v.to_le_bytes());
            }
            out.extend(data);
        }
        out
    }

    #[test]
    fn scapy_usec_of_a_whole_second_is_carried_and_counted() {
        let bytes = scapy_pcap(22_000, 10_000);
        let mut source = PcapSource::from_reader(&bytes[..], Path::new("scapy.pcap")).unwrap();
        let mut frames = Vec::new();
        while source.read_burst(512, &mut frames).unwrap() > 0 {}
        assert_eq!(frames.len(), 22_000);
        assert_eq!(source.normalised_timestamps(), 1);
        assert_eq!(source.frames_read(), 22_000);
        assert_eq!(frames[10_000].ts, Duration::new(1_700_010_001, 0));
        assert_eq!(frames[9_999].ts, Duration::new(1_700_009_999, 500_000_000));
        assert_eq!(frames[10_000].data, [(10_000 % 256) as u8; 60]);
    }

    #[test]
    fn nanosecond_fraction_of_a_second_or_more_is_carried() {
        let mut bytes = write_pcap(Vec::new(), &frames()[..1]).unwrap();
        bytes[28..32].copy_from_slice(&2_500_000_000u32.to_le_bytes());
        let mut source = PcapSource::from_reader(&bytes[..], Path::new("t")).unwrap();
        let mut got = Vec::new();
        source.read_burst(8, &mut got).unwrap();
        assert_eq!(got[0].ts, Duration::new(1_704_067_202, 500_000_000));
        assert_eq!(source.normalised_timestamps(), 1);
    }

    #[test]
    fn truncated_capture_with_wire_length_over_the_snap_length_is_read() {
        // tcpdump -s 96 on a 1500-byte frame: caplen 96, wirelen 1500, snaplen 96.
        let mut bytes = write_pcap(Vec::new(), &frames()[..1]).unwrap();
        bytes[16..20].copy_from_slice(&40u32.to_le_bytes());
        bytes[36..40].copy_from_slice(&1500u32.to_le_bytes());
        let got = read_pcap(&bytes[..]).unwrap();
        assert_eq!(got, frames()[..1]);
    }

    #[test]
    fn unreadable_record_names_index_offset_and_frames_read_before_it() {
        let all = frames();
        let bytes = write_pcap(Vec::new(), &all).unwrap();
        // Record 2 starts after the header and records 0 (60 bytes) and 1 (256 bytes).
        let offset = 24 + (16 + 60) + (16 + 256);
        let cut = &bytes[..offset + 20];
        let mut source = PcapSource::from_reader(cut, Path::new("cut.pcap")).unwrap();
        let mut got = Vec::new();
        // The frames before the bad record are handed out first, then the error.
        assert_eq!(source.read_burst(64, &mut got).unwrap(), 2);
        assert_eq!(got, all[..2]);
        let err = source.read_burst(64, &mut got).unwrap_err();
        let PcapError::Record {
            index,
            offset: at,
            frames_before,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((*index, *at, *frames_before), (2, offset as u64, 2));
        let message = err.to_string();
        for part in [
            "cut.pcap",
            "record 2",
            &format!("byte offset {offset}"),
            "2 frames",
        ] {
            assert!(message.contains(part), "{message}");
        }
        // A captured length no libpcap would read is refused, not allocated.
        let mut huge = bytes.clone();
        huge[32..36].copy_from_slice(&(MAX_CAPTURED_LEN + 1).to_le_bytes());
        let err = read_pcap(&huge[..]).unwrap_err();
        assert!(
            matches!(
                err,
                PcapError::Record {
                    index: 0,
                    offset: 24,
                    frames_before: 0,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn unreadable_pcapng_block_names_its_offset() {
        let data = [7u8; 60];
        let mut bytes = pcapng(1, None, &[(1, &data), (2, &data)]);
        // Section header 28 bytes, interface block 20, first packet block 32 + 60.
        let second = 28 + 20 + 32 + 60;
        bytes.truncate(second + 12);
        let err = read_pcap(&bytes[..]).unwrap_err();
        assert!(
            matches!(err, PcapError::Record { index: 3, offset, frames_before: 1, .. } if offset == second as u64),
            "{err:?}"
        );
    }

    #[test]
    fn output_appears_under_its_name_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.pcap");
        let partial = dir.path().join("out.pcap.partial");
        let mut sink = PcapSink::create(&path).unwrap();
        sink.write(Duration::ZERO, &[0; 60]).unwrap();
        assert!(!path.exists() && partial.exists());
        sink.finish().unwrap();
        assert!(path.exists() && !partial.exists());
        assert_eq!(read_pcap_file(&path).unwrap().len(), 1);

        // A run that fails leaves the previous output as it was and no partial file.
        let mut sink = PcapSink::create(&path).unwrap();
        sink.write(Duration::ZERO, &[0; 60]).unwrap();
        sink.write(Duration::ZERO, &[0; 60]).unwrap();
        drop(sink);
        assert!(!partial.exists());
        assert_eq!(read_pcap_file(&path).unwrap().len(), 1);
    }

    #[test]
    fn reads_in_bursts() {
        let bytes = write_pcap(Vec::new(), &frames()).unwrap();
        let mut source = PcapSource::from_reader(&bytes[..], Path::new("t")).unwrap();
        let mut got = Vec::new();
        assert_eq!(source.read_burst(2, &mut got).unwrap(), 2);
        assert_eq!(source.read_burst(2, &mut got).unwrap(), 1);
        assert_eq!(source.read_burst(2, &mut got).unwrap(), 0);
        assert_eq!(got, frames());
    }

    #[test]
    fn unwritable_frames_are_errors_not_panics() {
        let too_long = Frame {
            ts: Duration::ZERO,
            data: vec![0; SNAPLEN as usize + 1],
        };
        let past_2106 = Frame {
            ts: Duration::from_secs(u64::from(u32::MAX) + 1),
            data: vec![0; 60],
        };
        for frame in [too_long, past_2106] {
            let err = write_pcap(Vec::new(), &[frame]).unwrap_err();
            assert!(matches!(err, PcapError::Write { .. }), "{err}");
            assert!(err.to_string().starts_with(STREAM), "{err}");
        }
    }

    #[test]
    fn garbage_and_empty_input_are_format_errors() {
        for bytes in [&b"not a pcap file at all, sorry"[..], &[]] {
            let err = read_pcap(bytes).unwrap_err();
            assert!(matches!(err, PcapError::Format { .. }), "{err}");
        }
        // A record cut short: an error, not a panic and not a silently shorter trace.
        let bytes = write_pcap(Vec::new(), &frames()).unwrap();
        assert!(read_pcap(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = read_pcap_file("/nonexistent/trace.pcap").unwrap_err();
        assert!(matches!(err, PcapError::Io { .. }));
        assert!(err.to_string().contains("/nonexistent/trace.pcap"), "{err}");
    }

    #[test]
    fn non_ethernet_link_type_is_refused_with_a_clear_error() {
        const LINKTYPE_RAW: u16 = 101;
        let mut pcap = write_pcap(Vec::new(), &frames()).unwrap();
        pcap[20..24].copy_from_slice(&u32::from(LINKTYPE_RAW).to_le_bytes());
        let pcapng = pcapng(LINKTYPE_RAW, None, &[(1, &[0x45; 20])]);
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [("raw.pcap", pcap), ("raw.pcapng", pcapng)] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let err = read_pcap_file(&path).unwrap_err();
            assert!(
                matches!(err, PcapError::LinkType { link, .. } if link == DataLink::RAW),
                "{name}: {err:?}"
            );
            let message = err.to_string();
            assert!(message.contains(name), "{message}");
            assert!(message.contains("not Ethernet"), "{message}");
        }
    }

    // Hand-built pcapng (little-endian): an independent check of what pcap-file parses.
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        body.resize(body.len().next_multiple_of(4), 0);
        let len = (12 + body.len() as u32).to_le_bytes();
        [&kind.to_le_bytes()[..], &len, &body, &len].concat()
    }

    /// A section with one interface and `packets` of (raw timestamp, data) on it.
    fn pcapng(linktype: u16, if_tsresol: Option<u8>, packets: &[(u64, &[u8])]) -> Vec<u8> {
        let shb = [
            &0x1a2b_3c4d_u32.to_le_bytes()[..],
            &1u16.to_le_bytes(),
            &0u16.to_le_bytes(),
            &(-1i64).to_le_bytes(),
        ]
        .concat();
        let mut idb = [&linktype.to_le_bytes()[..], &[0, 0], &SNAPLEN.to_le_bytes()].concat();
        if let Some(r) = if_tsresol {
            idb.extend([9, 0, 1, 0, r, 0, 0, 0]); // if_tsresol, length 1, padding
            idb.extend([0, 0, 0, 0]); // opt_endofopt
        }
        let mut out = [block(0x0a0d_0d0a, &shb), block(1, &idb)].concat();
        for &(raw_ts, data) in packets {
            let len = (data.len() as u32).to_le_bytes();
            let epb = [
                &0u32.to_le_bytes()[..],
                &((raw_ts >> 32) as u32).to_le_bytes(),
                &(raw_ts as u32).to_le_bytes(),
                &len,
                &len,
                data,
            ]
            .concat();
            out.extend(block(6, &epb));
        }
        out
    }

    #[test]
    fn pcapng_timestamps_scale_by_the_interface_resolution() {
        let data: Vec<u8> = (0..61).collect(); // odd length: the block pads it
        let at = |secs, nanos| Frame {
            ts: Duration::new(secs, nanos),
            data: data.clone(),
        };
        let cases = [
            (
                Some(9),
                1_704_067_200_123_456_789,
                at(1_704_067_200, 123_456_789),
            ),
            (None, 1_704_067_200_123_456, at(1_704_067_200, 123_456_000)),
            (
                Some(6),
                1_704_067_200_123_456,
                at(1_704_067_200, 123_456_000),
            ),
            // 2^-10 s units: 1.5 s is 1536 units.
            (Some(0x80 | 10), 1536, at(1, 500_000_000)),
            // One unit a second: nanoseconds would overflow u64, seconds do not.
            (Some(0), u64::MAX, at(u64::MAX, 0)),
        ];
        for (if_tsresol, raw_ts, want) in cases {
            let bytes = pcapng(1, if_tsresol, &[(raw_ts, &data), (raw_ts, &data)]);
            let got = read_pcap(&bytes[..]).unwrap();
            assert_eq!(got, [want.clone(), want], "if_tsresol {if_tsresol:?}");
        }
    }

    #[test]
    fn pcapng_packet_on_an_undeclared_interface_is_an_error() {
        let mut bytes = pcapng(1, None, &[(0, &[0; 60])]);
        let epb = bytes.len() - (12 + 20 + 60);
        bytes[epb + 8..epb + 12].copy_from_slice(&3u32.to_le_bytes()); // interface 3
        let err = read_pcap(&bytes[..]).unwrap_err();
        assert!(
            matches!(
                err,
                PcapError::Record {
                    index: 2,
                    offset: 48,
                    ..
                }
            ),
            "{err}"
        );
    }
}
