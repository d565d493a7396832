//! Frames with timestamps, and their pcap files.
//!
//! Traces are classic pcap (not pcapng), link type 1 (Ethernet), microsecond timestamps and
//! little-endian headers whatever the host: tcpdump, Wireshark and DPDK's `net_pcap` all read
//! that, and fixing the byte order keeps a written trace byte-identical on every platform.

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest frame a trace may hold; also the pcap snap length written to the header.
pub const SNAPLEN: u32 = 65_535;

/// One captured Ethernet frame and the time it was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Time since the Unix epoch. Written with microsecond resolution: a timestamp with a
    /// sub-microsecond part does not read back identically.
    pub ts: Duration,
    /// The whole frame from the destination MAC on, without the FCS.
    pub data: Vec<u8>,
}

/// Why a pcap file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadPcapError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("not a readable pcap file: {0}")]
    Pcap(#[from] PcapError),
    /// Only Ethernet captures can be replayed: the data path starts at the Ethernet header.
    #[error("link type {0} is not Ethernet (1)")]
    NotEthernet(u32),
}

/// Write `frames` as a pcap stream to `writer`, in the order given.
///
/// Fails with [`io::ErrorKind::InvalidInput`] for a frame longer than [`SNAPLEN`] or a
/// timestamp past what pcap's 32-bit seconds field holds (year 2106).
pub fn write_pcap<W: Write>(writer: W, frames: &[Frame]) -> io::Result<W> {
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
        snaplen: SNAPLEN,
        ..PcapHeader::default()
    };
    let mut pcap = PcapWriter::with_header(writer, header).map_err(into_io)?;
    for frame in frames {
        let orig_len = u32::try_from(frame.data.len()).unwrap_or(u32::MAX);
        pcap.write_packet(&PcapPacket::new(frame.ts, orig_len, &frame.data))
            .map_err(into_io)?;
    }
    Ok(pcap.into_writer())
}

/// [`write_pcap`] to a file at `path` (created or truncated).
pub fn write_pcap_file(path: impl AsRef<Path>, frames: &[Frame]) -> io::Result<()> {
    let file = File::create(path)?;
    write_pcap(BufWriter::new(file), frames)?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
}

/// Read every frame of an Ethernet pcap stream (either timestamp resolution, either byte
/// order).
pub fn read_pcap<R: Read>(reader: R) -> Result<Vec<Frame>, ReadPcapError> {
    let mut pcap = PcapReader::new(reader)?;
    let datalink = pcap.header().datalink;
    if datalink != DataLink::ETHERNET {
        return Err(ReadPcapError::NotEthernet(u32::from(datalink)));
    }
    let mut frames = Vec::new();
    while let Some(packet) = pcap.next_packet() {
        let packet = packet?;
        frames.push(Frame {
            ts: packet.timestamp,
            data: packet.data.into_owned(),
        });
    }
    Ok(frames)
}

/// [`read_pcap`] from the file at `path`.
pub fn read_pcap_file(path: impl AsRef<Path>) -> Result<Vec<Frame>, ReadPcapError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| ReadPcapError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    read_pcap(BufReader::new(file))
}

fn into_io(error: PcapError) -> io::Error {
    match error {
        PcapError::IoError(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidInput, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Vec<Frame> {
        vec![
            Frame {
                ts: Duration::new(1_704_067_200, 123_000),
                data: vec![0xff; 60],
            },
            Frame {
                ts: Duration::new(1_704_067_201, 999_999_000),
                data: (0..=255).collect(),
            },
        ]
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcap");
        write_pcap_file(&path, &frames()).unwrap();
        assert_eq!(read_pcap_file(&path).unwrap(), frames());
    }

    #[test]
    fn header_is_little_endian_microsecond_ethernet() {
        let bytes = write_pcap(Vec::new(), &frames()).unwrap();
        assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1], "LE µs magic");
        assert_eq!(&bytes[20..24], &1u32.to_le_bytes(), "link type Ethernet");
        // First record: ts_sec, ts_usec, incl_len, orig_len.
        assert_eq!(&bytes[24..28], &1_704_067_200u32.to_le_bytes());
        assert_eq!(&bytes[28..32], &123u32.to_le_bytes());
        assert_eq!(&bytes[32..36], &60u32.to_le_bytes());
    }

    #[test]
    fn oversized_frame_is_an_error_not_a_panic() {
        let big = Frame {
            ts: Duration::ZERO,
            data: vec![0; SNAPLEN as usize + 1],
        };
        let err = write_pcap(Vec::new(), &[big]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn rejects_garbage_and_other_link_types() {
        assert!(matches!(
            read_pcap(&b"not a pcap file at all, sorry"[..]),
            Err(ReadPcapError::Pcap(_))
        ));
        let mut bytes = write_pcap(Vec::new(), &frames()).unwrap();
        bytes[20..24].copy_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
        assert!(matches!(
            read_pcap(&bytes[..]),
            Err(ReadPcapError::NotEthernet(101))
        ));
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = read_pcap_file("/nonexistent/trace.pcap").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/trace.pcap"));
    }
}
