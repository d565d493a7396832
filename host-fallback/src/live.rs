//! Live capture through libpcap (the `pcap` crate), behind the `live-capture` feature so
//! the default build needs no system library. A capture yields the same [`Frame`]s as a
//! pcap file, so the engine cannot tell the two apart.

use crate::pcap_io::Frame;
use pcap::{Activated, Capture, Linktype};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{source_name}: {error}")]
    Pcap {
        source_name: String,
        error: pcap::Error,
    },
    #[error("{source_name}: link type {link} is not Ethernet; flowgate balances Ethernet frames")]
    LinkType { source_name: String, link: i32 },
}

/// A libpcap capture: a live interface or a file read by libpcap itself.
pub struct LiveSource {
    name: String,
    idle_poll: Duration,
    capture: Capture<dyn Activated>,
}

impl LiveSource {
    /// Open interface `device` (promiscuous, immediate delivery, full frames). `poll` is
    /// how long a read sleeps between polls of an idle interface.
    pub fn open_device(device: &str, poll: Duration) -> Result<LiveSource, LiveError> {
        let err = |error| LiveError::Pcap {
            source_name: device.to_string(),
            error,
        };
        let capture = Capture::from_device(device)
            .map_err(err)?
            .promisc(true)
            .immediate_mode(true)
            .snaplen(65535)
            .open()
            .map_err(err)?
            // Non-blocking: libpcap's read timeout is not honoured in immediate mode on
            // every platform (a blocking read on an idle `lo` can wait forever), so reads
            // poll and `read_burst` bounds the wait itself.
            .setnonblock()
            .map_err(err)?;
        let mut source = Self::checked(device, capture.into())?;
        source.idle_poll = poll;
        Ok(source)
    }

    /// Read a capture file through libpcap (the reference reader for the pcap format).
    pub fn open_file(path: &std::path::Path) -> Result<LiveSource, LiveError> {
        let name = path.display().to_string();
        let capture = Capture::from_file(path).map_err(|error| LiveError::Pcap {
            source_name: name.clone(),
            error,
        })?;
        Self::checked(&name, capture.into())
    }

    fn checked(name: &str, capture: Capture<dyn Activated>) -> Result<LiveSource, LiveError> {
        let link = capture.get_datalink();
        if link != Linktype::ETHERNET {
            return Err(LiveError::LinkType {
                source_name: name.to_string(),
                link: link.0,
            });
        }
        Ok(LiveSource {
            name: name.to_string(),
            idle_poll: Duration::from_millis(1),
            capture,
        })
    }

    /// Restrict the capture with a BPF filter (tcpdump syntax).
    pub fn set_filter(&mut self, filter: &str) -> Result<(), LiveError> {
        self.capture
            .filter(filter, true)
            .map_err(|error| LiveError::Pcap {
                source_name: self.name.clone(),
                error,
            })
    }

    /// Append up to `max` frames to `into`, waiting at most `wait` in all; returns how
    /// many. `Ok(0)` with `finished() == true` means a file has ended.
    pub fn read_burst(
        &mut self,
        max: usize,
        wait: Duration,
        into: &mut Vec<Frame>,
    ) -> Result<usize, LiveError> {
        let deadline = Instant::now() + wait;
        let mut n = 0;
        while n < max {
            match self.capture.next_packet() {
                Ok(p) => {
                    let ts = Duration::new(
                        p.header.ts.tv_sec.max(0) as u64,
                        (p.header.ts.tv_usec.max(0) as u32).min(999_999) * 1000,
                    );
                    into.push(Frame {
                        ts,
                        data: p.data.to_vec(),
                    });
                    n += 1;
                }
                Err(pcap::Error::TimeoutExpired) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    std::thread::sleep(self.idle_poll.min(deadline - now));
                }
                Err(pcap::Error::NoMorePackets) => break,
                Err(error) => {
                    return Err(LiveError::Pcap {
                        source_name: self.name.clone(),
                        error,
                    })
                }
            }
        }
        Ok(n)
    }
}
