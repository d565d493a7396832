//! The per-frame contract on arbitrary bytes: `prepare` (parse, classify, hash), then the
//! whole `process` twice (a miss, then a hit on the flow it inserted), and the in-place
//! rewrite the DPDK path uses.
//!
//! Invariants: nothing panics; a frame is only read within its bytes (the input is its own
//! exactly-sized allocation, which AddressSanitizer guards); `process` agrees with
//! `prepare` on pass and drop; counters account for every frame; a forwarded frame carries
//! the input's IP datagram byte for byte (DSR: everything after the MACs; IP-in-IP: the
//! outer header's payload), its outer IPv4 header checksum verifies, and when the input's
//! IP and TCP/UDP checksums verify so do the output's; `rewrite_in_place` writes exactly
//! what `rewrite` does.
#![no_main]

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use flowgate_core::counters::Counters;
use flowgate_core::flow_table::FlowTable;
use flowgate_core::hash::FlowHasher;
use flowgate_core::pipeline::{prepare, process, Prepared};
use flowgate_core::rewrite::{rewrite_in_place, InPlace, Mode, RewriteParams};
use flowgate_core::{Tables, Verdict};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// examples/basic.toml's VIPs (IPv4 DSR TCP, IPv6 IP-in-IP UDP) plus the other two
/// combinations, with a small flow table so that a fresh one per input costs nothing.
fn tables() -> &'static (Tables, FlowHasher) {
    static TABLES: OnceLock<(Tables, FlowHasher)> = OnceLock::new();
    TABLES.get_or_init(|| {
        let basic = include_str!("../../examples/basic.toml")
            .replace("sets = 16384", "sets = 16")
            .replace("maglev_m = 65537", "maglev_m = 251");
        let extra = r#"
[[vip]]
name = "any4"
address = "192.0.2.20"
port = 0
protocol = "udp"
mode = "ipip"
  [[vip.backend]]
  address = "198.51.100.20"
  mac = "02:00:00:00:02:01"
  [[vip.backend]]
  address = "2001:db8:2::20"
  mac = "02:00:00:00:02:02"
[[vip]]
name = "web6"
address = "2001:db8::80"
port = 80
protocol = "tcp"
mode = "dsr"
  [[vip.backend]]
  address = "2001:db8:3::1"
  mac = "02:00:00:00:03:01"
"#;
        let config = flowgate_driver::parse_str(&(basic + extra), "fuzz.toml")
            .expect("the fuzz config is valid");
        let tables = flowgate_driver::compile(&config);
        let hasher = FlowHasher::new(&tables.keys);
        (tables, hasher)
    })
}

/// Whether the IP header checksum (IPv4) and the TCP/UDP checksum of `frame` verify;
/// `None` when there is nothing etherparse can check (not IP, a fragment, other L4).
fn checksums_verify(frame: &[u8]) -> Option<bool> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let (ip_ok, payload_ok) = match p.net? {
        NetSlice::Ipv4(ip) => {
            let h = ip.header().to_header();
            if ip.payload().fragmented {
                return None;
            }
            let l4 = match p.transport? {
                TransportSlice::Tcp(t) => {
                    t.calc_checksum_ipv4(h.source, h.destination).ok()? == t.checksum()
                }
                TransportSlice::Udp(u) => {
                    u.checksum() == 0
                        || u.to_header().calc_checksum_ipv4(&h, u.payload()).ok()? == u.checksum()
                }
                _ => return None,
            };
            (h.calc_header_checksum() == h.header_checksum, l4)
        }
        NetSlice::Ipv6(ip) => {
            if ip.is_payload_fragmented() {
                return None;
            }
            let h = ip.header().to_header();
            let l4 = match p.transport? {
                TransportSlice::Tcp(t) => {
                    t.calc_checksum_ipv6(h.source, h.destination).ok()? == t.checksum()
                }
                TransportSlice::Udp(u) => {
                    u.to_header().calc_checksum_ipv6(&h, u.payload()).ok()? == u.checksum()
                }
                _ => return None,
            };
            (true, l4)
        }
        _ => return None,
    };
    Some(ip_ok && payload_ok)
}

fuzz_target!(|data: &[u8]| {
    // Its own allocation of exactly the frame's length: any read past it is caught.
    let frame: Box<[u8]> = data.into();
    let (tables, hasher) = tables();
    let prepared = prepare(&frame, tables, hasher);
    let mut flows = FlowTable::new(tables.geometry.sets, tables.geometry.ways);
    let mut counters = Counters::new(tables.vips.len(), tables.backends.len());
    let mut out = Vec::new();
    for now in [1_000, 1_001] {
        let verdict = process(
            &frame,
            now,
            tables,
            hasher,
            &mut flows,
            &mut counters,
            &mut out,
        );
        let b = match (prepared, verdict) {
            (Prepared::Drop(r), v) => {
                assert_eq!(v, Verdict::Drop(r));
                continue;
            }
            (Prepared::Pass, v) => {
                assert_eq!(v, Verdict::Pass);
                continue;
            }
            (Prepared::Balance(_), Verdict::Pass) => panic!("a VIP's frame was passed"),
            (Prepared::Balance(_), Verdict::Drop(_)) => continue,
            (Prepared::Balance(b), Verdict::Forward { vip, backend }) => {
                assert_eq!(vip, b.vip);
                (b, backend)
            }
        };
        let (b, backend) = b;
        let l3 = b.datagram.l3_offset as usize;
        let inner = &frame[l3..l3 + b.datagram.ip_len as usize];
        let be = &tables.backends[backend as usize];
        let mode = tables.vips[b.vip as usize].mode;
        match mode {
            Mode::Dsr => {
                assert_eq!(out.len(), frame.len());
                assert_eq!(out[..6], be.mac);
                assert_eq!(out[6..12], tables.own_mac);
                assert_eq!(out[12..], frame[12..], "DSR changes only the MACs");
            }
            Mode::IpIp => {
                let p = SlicedPacket::from_ethernet(&out).expect("IP-in-IP output parses");
                match p.net.expect("an outer IP header") {
                    NetSlice::Ipv4(ip) => {
                        let h = ip.header().to_header();
                        assert_eq!(h.calc_header_checksum(), h.header_checksum);
                        assert_eq!(ip.payload().payload, inner, "inner datagram unchanged");
                    }
                    NetSlice::Ipv6(ip) => {
                        assert_eq!(ip.payload().payload, inner, "inner datagram unchanged");
                    }
                    NetSlice::Arp(_) => panic!("ARP out of IP-in-IP"),
                }
            }
            Mode::Gue { port } => {
                let p = SlicedPacket::from_ethernet(&out).expect("GUE output parses");
                let Some(TransportSlice::Udp(udp)) = p.transport else {
                    panic!("GUE output carries UDP")
                };
                assert_eq!(udp.destination_port(), port);
                assert_eq!(udp.payload(), inner, "inner datagram unchanged");
                match p.net.expect("an outer IP header") {
                    NetSlice::Ipv4(ip) => {
                        let h = ip.header().to_header();
                        assert_eq!(h.calc_header_checksum(), h.header_checksum);
                        assert_eq!(udp.checksum(), 0, "UDP checksum 0 under IPv4");
                    }
                    NetSlice::Ipv6(ip) => {
                        let h = ip.header().to_header();
                        let sum = udp
                            .to_header()
                            .calc_checksum_ipv6(&h, udp.payload())
                            .expect("a UDP length that fits");
                        assert_eq!(udp.checksum(), sum, "UDP checksum under IPv6");
                    }
                    NetSlice::Arp(_) => panic!("ARP out of GUE"),
                }
            }
        }
        if checksums_verify(&frame) == Some(true) && mode == Mode::Dsr {
            assert_eq!(checksums_verify(&out), Some(true));
        }
        // The DPDK path's in-place rewrite writes the same bytes.
        let params = RewriteParams {
            own_mac: tables.own_mac,
            backend_mac: be.mac,
            backend_addr: be.address,
            encap_src_v4: tables.encap_src_v4,
            encap_src_v6: tables.encap_src_v6,
            hash: b.flow.hash,
        };
        const HEADROOM: usize = 128;
        let mut buf = vec![0u8; HEADROOM + frame.len()];
        buf[HEADROOM..].copy_from_slice(&frame);
        match rewrite_in_place(&mut buf, HEADROOM, b.datagram, mode, &params) {
            Ok(InPlace::Done(range)) => assert_eq!(buf[range], out[..]),
            other => panic!("in-place rewrite with {HEADROOM} bytes of room: {other:?}"),
        }
    }
    let c = &counters;
    assert_eq!(c.frames_in, 2);
    assert_eq!(c.forwarded + c.passed + c.total_dropped(), c.frames_in);
});
