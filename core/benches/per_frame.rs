//! Per-frame cost of the contract on one core: the flow-table hit path (established
//! flows) and the miss path (new flows: Maglev select + insert), for DSR and IP-in-IP.
//! Frames/s = criterion's "elements" throughput.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flowgate_core::hash::Persistence;
use flowgate_core::maglev::{MaglevTable, DEFAULT_M};
use flowgate_core::rewrite::Mode;
use flowgate_core::tables::{Backend, Vip};
use flowgate_core::{Engine, Tables};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

const FLOWS: u32 = 4096;

fn tables(mode: Mode) -> Tables {
    let mut t = Tables::default();
    let backends = (0..8u8)
        .map(|i| Backend {
            address: IpAddr::V4(Ipv4Addr::new(198, 51, 100, i + 1)),
            mac: [2, 0, 0, 0, 0, i + 1],
            weight: 1,
            up: true,
            vip: 0,
        })
        .collect();
    let vip = Vip {
        name: "web".into(),
        address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        port: 80,
        protocol: 6,
        mode,
        persistence: Persistence::FiveTuple,
        maglev: MaglevTable::default(),
        backends: Vec::new(),
    };
    t.add_vip(vip, backends, DEFAULT_M);
    t
}

fn frames() -> Vec<Vec<u8>> {
    (0..FLOWS)
        .map(|i| {
            let src = Ipv4Addr::from(0x6440_0000 + i);
            let b =
                etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 0xfe])
                    .ipv4(src.octets(), [192, 0, 2, 10], 64)
                    .tcp(10000 + (i % 50000) as u16, 80, 1, 65535)
                    .ack(1);
            let payload = [0u8; 6];
            let mut out = Vec::with_capacity(b.size(payload.len()));
            b.write(&mut out, &payload).unwrap();
            out
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let frames = frames();
    let mut group = c.benchmark_group("per_frame");
    group.throughput(Throughput::Elements(frames.len() as u64));
    for (name, mode) in [("dsr", Mode::Dsr), ("ipip", Mode::IpIp)] {
        // Hit path: every flow already in the table, time standing still.
        let mut engine = Engine::new(tables(mode));
        let mut out = Vec::with_capacity(2048);
        for f in &frames {
            engine.process(f, 0, &mut out);
        }
        group.bench_function(BenchmarkId::new("hit", name), |b| {
            b.iter(|| {
                for f in &frames {
                    black_box(engine.process(black_box(f), 0, &mut out));
                }
            })
        });
        assert_eq!(
            engine.counters.flow.misses, FLOWS as u64,
            "the hit bench must only hit"
        );

        // Miss path: each pass jumps past the TCP timeout, so every lookup misses and
        // re-inserts (select + insert over an expired entry).
        let mut engine = Engine::new(tables(mode));
        let mut now = 0u32;
        let step = engine.tables().timeouts.tcp_ms + 1;
        group.bench_function(BenchmarkId::new("miss", name), |b| {
            b.iter(|| {
                now = now.wrapping_add(step);
                for f in &frames {
                    black_box(engine.process(black_box(f), now, &mut out));
                }
            })
        });
        assert_eq!(
            engine.counters.flow.hits, 0,
            "the miss bench must only miss"
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
