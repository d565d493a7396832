//! The sharded engine against the sequential oracle (`core::Engine`): same verdicts, same
//! bytes, same counters, for any worker count and burst size, on a flow-table small enough
//! that evictions and expirations happen.

use flowgate_core::flow_table::Geometry;
use flowgate_core::hash::Persistence;
use flowgate_core::maglev::MaglevTable;
use flowgate_core::pipeline::tick_of;
use flowgate_core::rewrite::Mode;
use flowgate_core::tables::{Backend, Vip};
use flowgate_core::{Engine, Tables, Verdict};
use flowgate_host::{Frame, ShardedEngine};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

fn tables() -> Tables {
    let mut t = Tables {
        geometry: Geometry {
            sets: 64,
            ways: 2,
            choices: 2,
        },
        ..Tables::default()
    };
    let v4_backends = (0..5u8)
        .map(|i| Backend {
            address: IpAddr::V4(Ipv4Addr::new(198, 51, 100, i + 1)),
            mac: [2, 0, 0, 0, 1, i],
            weight: 1 + i as u32 % 2,
            up: true,
            vip: 0,
        })
        .collect();
    let v6_backends = (0..3u16)
        .map(|i| Backend {
            address: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i + 1)),
            mac: [2, 0, 0, 0, 2, i as u8],
            weight: 1,
            up: true,
            vip: 0,
        })
        .collect();
    let vip = |name: &str, address: IpAddr, port, protocol, mode, persistence| Vip {
        name: name.into(),
        address,
        port,
        protocol,
        mode,
        persistence,
        maglev: MaglevTable::default(),
        backends: Vec::new(),
    };
    t.add_vip(
        vip(
            "web",
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
            80,
            6,
            Mode::Dsr,
            Persistence::FiveTuple,
        ),
        v4_backends,
        251,
    );
    t.add_vip(
        vip(
            "dns",
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53)),
            0,
            17,
            Mode::IpIp,
            Persistence::SrcIp,
        ),
        v6_backends,
        251,
    );
    t
}

/// A deterministic mix: TCP flows to the v4 VIP (SYN first), UDP to the v6 VIP, and frames
/// for no VIP, with time advancing so that some entries expire.
fn frames(n: u32) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut x: u32 = 12345;
    for i in 0..n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let flow = (x >> 8) % 300;
        let ts = Duration::from_millis(i as u64 * 50);
        let builder =
            etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 0xfe]);
        let mut data = Vec::new();
        match i % 5 {
            0..=2 => {
                let b = builder
                    .ipv4(
                        [100, 64, (flow >> 8) as u8, flow as u8],
                        [192, 0, 2, 10],
                        64,
                    )
                    .tcp(20000 + flow as u16, 80, 1, 1000);
                let b = if x & 3 == 0 { b.syn() } else { b.ack(1) };
                b.write(&mut data, &[1, 2, 3]).unwrap();
            }
            3 => {
                let src = Ipv6Addr::new(0x2001, 0xdb8, 0xc000, 0, 0, 0, 0, flow as u16 % 40);
                builder
                    .ipv6(
                        src.octets(),
                        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53).octets(),
                        64,
                    )
                    .udp(30000 + flow as u16, 53)
                    .write(&mut data, &[9; 20])
                    .unwrap();
            }
            _ => {
                builder
                    .ipv4([100, 64, 0, 1], [192, 0, 2, 99], 64)
                    .udp(1, 2)
                    .write(&mut data, &[])
                    .unwrap();
            }
        }
        out.push(Frame { ts, data });
    }
    out
}

#[test]
fn any_worker_count_matches_the_sequential_contract() {
    let input = frames(5000);
    let mut oracle = Engine::new(tables());
    let mut expected = Vec::new();
    for f in &input {
        let mut out = Vec::new();
        let v = oracle.process(&f.data, tick_of(f.ts), &mut out);
        expected.push((
            v,
            if matches!(v, Verdict::Forward { .. }) {
                out
            } else {
                Vec::new()
            },
        ));
    }
    assert!(
        oracle.counters.flow.evictions > 0,
        "the trace must exercise eviction"
    );
    assert!(
        oracle.counters.flow.expirations > 0,
        "the trace must exercise expiry"
    );
    assert!(oracle.counters.passed > 0 && oracle.counters.forwarded > 0);

    for (workers, burst) in [(1, 4096), (2, 100), (3, 64), (4, 1000), (7, 33)] {
        let mut engine = ShardedEngine::new(tables(), workers);
        let mut got = Vec::new();
        for chunk in input.chunks(burst) {
            got.extend(
                engine
                    .process_burst(chunk)
                    .into_iter()
                    .map(|o| (o.verdict, o.frame)),
            );
        }
        assert_eq!(got.len(), expected.len());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(
                g, e,
                "frame {i} differs with {workers} workers, burst {burst}"
            );
        }
        assert_eq!(
            engine.counters(),
            oracle.counters,
            "counters with {workers} workers"
        );
    }
}
