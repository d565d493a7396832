//! `datapath::run` follows the control plane's tables while it runs: a backend marked
//! down gets no frame once the lcores took the new version (health failover), with the
//! main lcore and a worker lcore each following the same `TablesWatch`, and the counters
//! board says when every lcore has taken it.
//!
//! In-process (one EAL per process, so one test in this file), on a net_pcap vdev that
//! replays a trace endlessly; every wait is bounded.

use flowgate_dpdk::datapath::{self, LoopConfig, Ports};
use flowgate_dpdk::{Eal, Mempool, Port, PortConfig};
use flowgate_driver::{BackendKey, ControlPlane};
use flowgate_host::{BoardSnapshot, CountersBoard};
use flowgate_traces::{generate, write_pcap_file, TraceSpec, VipTarget};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::eal_args_on;

#[test]
fn a_backend_marked_down_gets_no_more_frames() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/basic.toml");
    let config = flowgate_driver::load(&path).expect("examples/basic.toml loads");
    let control = ControlPlane::new(config, None);
    let tables = control.tables();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("in.pcap");
    let frames = generate(&TraceSpec::mixed(VipTarget::for_tables(&tables), 3000)).unwrap();
    write_pcap_file(&trace, &frames).unwrap();

    let web0 = BackendKey {
        vip: "web".into(),
        address: "198.51.100.1".parse().unwrap(),
    };
    let b0 = control.index_of(&web0).expect("web's first backend") as usize;
    let args = eal_args_on(
        "0@0,1@1",
        "fg-follow",
        &[format!(
            "net_pcap0,rx_pcap={},infinite_rx=1",
            trace.display()
        )],
    );
    let (eal, _) = Eal::init(&args).expect("EAL");
    let pool = Arc::new(Mempool::new(&eal, "follow", 8191, 256).unwrap());
    let port = Port::configure(&eal, 0, &PortConfig::default(), &pool).unwrap();
    let board = CountersBoard::default();
    let stop = AtomicBool::new(false);
    let watch = control.watch();
    let loop_config = LoopConfig {
        publish_every: Duration::from_millis(10),
        ..LoopConfig::default()
    };
    let ports = Ports {
        rx: &port,
        tx: &port,
        pass: None,
    };

    let (report, seen) = std::thread::scope(|s| {
        let observer = s.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(60);
            // Wait (bounded) until a snapshot of the board meets `cond`; returns it.
            let wait_until = |cond: &dyn Fn(&BoardSnapshot) -> bool| loop {
                let snap = board.load();
                if cond(&snap) || Instant::now() >= deadline {
                    return snap;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            let b0_count = |s: &BoardSnapshot| s.counters.backends.get(b0).map_or(0, |c| c.packets);
            let before = b0_count(&wait_until(&|s| b0_count(s) > 0));
            assert!(control.set_up(&web0, false).unwrap(), "marked down");
            let down = control.watch().version();
            // The published counters lag the lcores (each publishes every 10 ms, or later
            // when it is not scheduled), so only a snapshot that every lcore took under
            // the new version holds backend 0's final count.
            let switched = wait_until(&|s| s.tables_version >= down);
            let after_switch = b0_count(&switched);
            // Then watch the count stand still while 60 000 more frames are balanced.
            let from = switched.counters.forwarded;
            let later = wait_until(&|s| s.counters.forwarded >= from + 60_000);
            let reached = later.counters.forwarded >= from + 60_000;
            stop.store(true, Ordering::Relaxed);
            let took = switched.tables_version >= down;
            (before, took, after_switch, b0_count(&later), reached)
        });
        let report = datapath::run(&eal, &ports, &watch, &loop_config, Some(&board), &stop);
        stop.store(true, Ordering::Relaxed);
        (report, observer.join().unwrap())
    });
    let report = report.expect("run");
    let (before, took, after_switch, later, reached) = seen;
    assert!(before > 0, "backend 0 got frames while up");
    assert!(
        took,
        "within 60 s, every lcore took the tables with backend 0 down"
    );
    assert!(reached, "the data path forwarded too slowly for this test");
    assert_eq!(
        after_switch, later,
        "frames to backend 0 after it went down"
    );
    assert!(
        report.table_updates >= 1,
        "the main lcore took the new tables"
    );
    assert!(!report.tables.backends[b0].up);
    assert!(
        report.counters.flow.reselects > 0,
        "its established flows moved"
    );
    assert_eq!(report.workers.len(), 1);
    let total = report.counters.frames_in;
    assert_eq!(
        total, report.io.received,
        "every frame received was counted"
    );
    drop(port);
    drop(pool);
    drop(eal);
}
