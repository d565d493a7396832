//! libpcap sources (feature `live-capture`): a file read through libpcap gives exactly the
//! frames the pure-Rust reader gives, and a live capture on loopback sees real traffic.
#![cfg(feature = "live-capture")]

use flowgate_host::live::LiveSource;
use flowgate_host::pcap_io::{PcapSink, PcapSource};
use flowgate_host::Frame;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn sample_frames() -> Vec<Frame> {
    (0..50u16)
        .map(|i| {
            let mut data = Vec::new();
            etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ipv4([10, 0, 0, 1], [192, 0, 2, 10], 64)
                .udp(1000 + i, 53)
                .write(&mut data, &vec![i as u8; i as usize])
                .unwrap();
            // Microsecond timestamps: what a classic pcap file holds.
            Frame {
                ts: Duration::from_micros(1_700_000_000_000_000 + i as u64 * 1234),
                data,
            }
        })
        .collect()
}

#[test]
fn libpcap_reads_what_pcap_file_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.pcap");
    let frames = sample_frames();
    let mut sink = PcapSink::create(&path).unwrap();
    for f in &frames {
        sink.write(f.ts, &f.data).unwrap();
    }
    sink.finish().unwrap();

    let ours = PcapSource::open(&path).unwrap().read_all().unwrap();
    let mut theirs = Vec::new();
    let mut live = LiveSource::open_file(&path).unwrap();
    while live
        .read_burst(7, Duration::from_millis(10), &mut theirs)
        .unwrap()
        > 0
    {}
    assert_eq!(ours, frames);
    assert_eq!(theirs, frames);
}

#[test]
fn captures_real_frames_on_loopback() {
    if is_not_root() {
        eprintln!("SKIPPED captures_real_frames_on_loopback: capturing on `lo` needs root (CAP_NET_RAW); CI runs as root");
        return;
    }
    let mut live = LiveSource::open_device("lo", Duration::from_millis(50)).expect("open lo");
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    live.set_filter(&format!("udp and dst port {port}"))
        .unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0;
    // Bounded in count (20 datagrams) and time (10 s).
    while got.len() < 20 && Instant::now() < deadline {
        if sent < 20 {
            sender.send_to(b"flowgate", ("127.0.0.1", port)).unwrap();
            sent += 1;
        }
        live.read_burst(20, Duration::from_millis(100), &mut got)
            .unwrap();
    }
    assert_eq!(got.len(), 20, "all 20 datagrams seen on lo");
    for f in &got {
        let p = etherparse::SlicedPacket::from_ethernet(&f.data).expect("an Ethernet frame");
        match p.transport {
            Some(etherparse::TransportSlice::Udp(u)) => assert_eq!(u.destination_port(), port),
            other => panic!("not UDP: {other:?}"),
        }
    }
}

fn is_not_root() -> bool {
    // /proc/self/status "Uid:" real uid; no libc call needed.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) != Some("0"))
        })
        .unwrap_or(true)
}
