//! Pcap file I/O with the pure-Rust `pcap-file` crate: no system library needed.

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, TsResolution};
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub ts: Duration,
    pub data: Vec<u8>,
}

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
}

/// Reads frames from a pcap or pcapng file (told apart by their magic number), in bursts.
pub struct PcapSource {
    path: PathBuf,
    reader: Reader,
}

enum Reader {
    Pcap(PcapReader<Box<dyn BufRead>>),
    PcapNg(PcapNgReader<Box<dyn BufRead>>),
}

/// The pcapng section header block type, which is also the file's magic number.
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

impl PcapSource {
    pub fn open(path: &Path) -> Result<PcapSource, PcapError> {
        let file = File::open(path).map_err(|source| PcapError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_reader(Box::new(BufReader::with_capacity(1 << 20, file)), path)
    }

    pub fn from_reader(mut reader: Box<dyn BufRead>, path: &Path) -> Result<PcapSource, PcapError> {
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

    /// Every frame of the file.
    pub fn read_all(mut self) -> Result<Vec<Frame>, PcapError> {
        let mut frames = Vec::new();
        while self.read_burst(4096, &mut frames)? > 0 {}
        Ok(frames)
    }
}

/// Writes frames to an Ethernet pcap file (nanosecond timestamps, so replay output keeps
/// the input's time exactly whatever its resolution).
pub struct PcapSink {
    path: PathBuf,
    writer: PcapWriter<Box<dyn Write>>,
}

impl PcapSink {
    pub fn create(path: &Path) -> Result<PcapSink, PcapError> {
        let file = File::create(path).map_err(|source| PcapError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_writer(Box::new(BufWriter::with_capacity(1 << 20, file)), path)
    }

    pub fn from_writer(writer: Box<dyn Write>, path: &Path) -> Result<PcapSink, PcapError> {
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            snaplen: 65535,
            ..Default::default()
        };
        let writer =
            PcapWriter::with_header(writer, header).map_err(|source| PcapError::Format {
                path: path.into(),
                source,
            })?;
        Ok(PcapSink {
            path: path.into(),
            writer,
        })
    }

    pub fn write(&mut self, ts: Duration, data: &[u8]) -> Result<(), PcapError> {
        let packet = PcapPacket {
            timestamp: ts,
            orig_len: data.len() as u32,
            data: Cow::Borrowed(data),
        };
        self.writer
            .write_packet(&packet)
            .map_err(|source| PcapError::Format {
                path: self.path.clone(),
                source,
            })?;
        Ok(())
    }

    pub fn finish(self) -> Result<(), PcapError> {
        let path = self.path;
        let mut inner = self.writer.into_writer();
        inner
            .flush()
            .map_err(|source| PcapError::Io { path, source })
    }
}

/// The next packet of a pcapng file, skipping non-packet blocks.
fn next_pcapng_frame(
    r: &mut PcapNgReader<Box<dyn BufRead>>,
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
            Block::EnhancedPacket(p) => {
                (p.interface_id, p.timestamp.as_nanos(), p.data.into_owned())
            }
            Block::SimplePacket(p) => (0, 0, p.data.into_owned()),
            Block::Packet(p) => (
                p.interface_id as u32,
                p.timestamp as u128,
                p.data.into_owned(),
            ),
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
        let ts = std::time::Duration::from_nanos(
            (raw_ts * 1_000_000_000 / units_per_second(idb)) as u64,
        );
        return Ok(Some(Frame { ts, data }));
    }
}

fn units_per_second(idb: &InterfaceDescriptionBlock) -> u128 {
    for opt in &idb.options {
        if let InterfaceDescriptionOption::IfTsResol(r) = *opt {
            let exp = (r & 0x7f) as u32;
            return if r & 0x80 == 0 {
                10u128.saturating_pow(exp)
            } else {
                2u128.saturating_pow(exp)
            }
            .max(1);
        }
    }
    1_000_000
}
