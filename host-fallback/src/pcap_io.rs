//! Pcap file I/O with the pure-Rust `pcap-file` crate: no system library needed. This is
//! flowgate's one reader and writer of capture files; replay and the trace generator both
//! go through it.
//!
//! Reading takes classic pcap (either timestamp resolution, either byte order) and pcapng
//! (told apart by the magic number), Ethernet link type only: the data path starts at the
//! Ethernet header, so anything else is refused with [`PcapError::LinkType`].
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
}

enum Reader<R: BufRead> {
    Pcap(PcapReader<R>),
    PcapNg(PcapNgReader<R>),
}

/// The pcapng section header block type, which is also the file's magic number.
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

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
        let reader = if head.starts_with(&PCAPNG_MAGIC) {
            Reader::PcapNg(PcapNgReader::new(reader).map_err(format)?)
        } else {
            let r = PcapReader::new(reader).map_err(format)?;
            let link = r.header().datalink;
            if link != DataLink::ETHERNET {
                return Err(PcapError::LinkType {
                    path: path.into(),
                    link,
                });
            }
            Reader::Pcap(r)
        };
        Ok(PcapSource {
            path: path.into(),
            reader,
        })
    }

    /// Up to `max` frames appended to `into`; returns how many (0 at the end).
    pub fn read_burst(&mut self, max: usize, into: &mut Vec<Frame>) -> Result<usize, PcapError> {
        let mut n = 0;
        while n < max {
            let frame = match &mut self.reader {
                Reader::Pcap(r) => match r.next_packet() {
                    None => None,
                    Some(Ok(p)) => Some(Frame {
                        ts: p.timestamp,
                        data: p.data.into_owned(),
                    }),
                    Some(Err(source)) => {
                        return Err(PcapError::Format {
                            path: self.path.clone(),
                            source,
                        })
                    }
                },
                Reader::PcapNg(r) => next_pcapng_frame(r, &self.path)?,
            };
            let Some(frame) = frame else { break };
            into.push(frame);
            n += 1;
        }
        Ok(n)
    }

    /// Every frame of the stream.
    pub fn read_all(mut self) -> Result<Vec<Frame>, PcapError> {
        let mut frames = Vec::new();
        while self.read_burst(4096, &mut frames)? > 0 {}
        Ok(frames)
    }
}

/// Writes frames as an Ethernet pcap stream (nanosecond timestamps, so replay output keeps
/// the input's time exactly whatever its resolution).
pub struct PcapSink<W: Write = BufWriter<File>> {
    path: PathBuf,
    writer: PcapWriter<W>,
}

impl PcapSink {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> Result<PcapSink, PcapError> {
        let file = File::create(path).map_err(|source| PcapError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_writer(BufWriter::with_capacity(1 << 20, file), path)
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

    /// Flushes what is buffered and hands back the writer.
    pub fn finish(self) -> Result<W, PcapError> {
        let mut inner = self.writer.into_writer();
        inner.flush().map_err(|source| PcapError::Io {
            path: self.path,
            source,
        })?;
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

/// The next packet of a pcapng file, skipping non-packet blocks.
fn next_pcapng_frame<R: BufRead>(
    r: &mut PcapNgReader<R>,
    path: &Path,
) -> Result<Option<Frame>, PcapError> {
    loop {
        let block = match r.next_block() {
            None => return Ok(None),
            Some(Err(source)) => {
                return Err(PcapError::Format {
                    path: path.into(),
                    source,
                })
            }
            Some(Ok(b)) => b,
        };
        let (interface, raw_ts, data) = match block {
            Block::EnhancedPacket(p) => (
                p.interface_id,
                p.timestamp.as_nanos() as u64,
                p.data.into_owned(),
            ),
            Block::SimplePacket(p) => (0, 0, p.data.into_owned()),
            Block::Packet(p) => (p.interface_id as u32, p.timestamp, p.data.into_owned()),
            _ => continue,
        };
        let Some(idb) = r.interfaces().get(interface as usize) else {
            let source = pcap_file::PcapError::InvalidField("packet names an undeclared interface");
            return Err(PcapError::Format {
                path: path.into(),
                source,
            });
        };
        if idb.linktype != DataLink::ETHERNET {
            return Err(PcapError::LinkType {
                path: path.into(),
                link: idb.linktype,
            });
        }
        // pcap-file hands over the raw 64-bit timestamp as if it counted nanoseconds; its
        // unit is really the interface's if_tsresol (microseconds when absent).
        let ts = timestamp(raw_ts, units_per_second(idb));
        return Ok(Some(Frame { ts, data }));
    }
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
        assert!(matches!(err, PcapError::Format { .. }), "{err}");
    }
}
