//! The two hardware engines (rust-hdl simulation and Verilator) on the stand-in top: the
//! same generated trace and register accesses give the same frames, the same register
//! values and the same clock counts in both, and both match what the stand-in is
//! documented to do; the driver's RegisterBus works through AXI4-Lite; back-to-back
//! minimum-size frames measure the initiation interval.

use flowgate_core::regmap;
use flowgate_driver::bus::{regs, BusExt, RegisterBus};
use flowgate_driver::program::{probe, program, ProgramError};
use flowgate_hdl::stand_in::{StandIn512, StandIn64};
use flowgate_hdl::{emit_verilog, Design};
use flowgate_sim::hw::rtl::RtlSim;
use flowgate_sim::hw::verilator::{VerilatorBuild, VerilatorSim};
use flowgate_sim::hw::{Backpressure, HwBus, HwError, HwSim, OutFrame, RunConfig, RunReport};
use flowgate_traces::{generate_trace, TraceSpec, VipTarget};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

const SCRATCH: u32 = 0x0bc;
/// An address the stand-in does not decode (reads 0).
const UNMAPPED: u32 = 0x0c0;

fn vips() -> Vec<VipTarget> {
    vec![
        VipTarget::tcp(Ipv4Addr::new(192, 0, 2, 10).into(), 443),
        VipTarget::udp(Ipv4Addr::new(192, 0, 2, 11).into(), 53),
        VipTarget::tcp("2001:db8::10".parse::<Ipv6Addr>().unwrap().into(), 80),
    ]
}

/// `n` frames of the mixed trace with their ticks (ms, as the top takes them).
fn trace(n: usize) -> Vec<(Vec<u8>, u32)> {
    let trace = generate_trace(&TraceSpec::mixed(vips(), n as u32 + 100)).expect("valid spec");
    assert!(trace.frames.len() >= n, "trace too short");
    trace
        .frames
        .into_iter()
        .take(n)
        .map(|f| (f.data, (f.ts.as_millis() & 0xffff_ffff) as u32))
        .collect()
}

/// What the stand-in makes of a frame (see `flowgate_hdl::stand_in`).
fn stand_in_output(frame: &[u8], tick: u32, scratch: u32) -> OutFrame {
    let mut data = frame.to_vec();
    if let Some(b) = data.get_mut(0) {
        *b = scratch as u8;
    }
    if let Some(b) = data.get_mut(1) {
        *b = tick as u8;
    }
    OutFrame {
        data,
        tuser: (scratch >> 8) as u8,
    }
}

/// Everything an engine says in one session: register reads, then two runs (the second
/// under random backpressure, after SCRATCH changed).
#[derive(Debug, PartialEq, Eq)]
struct Session {
    reads: Vec<u32>,
    runs: Vec<RunReport>,
    cycles: u64,
}

fn session(engine: &mut dyn HwSim, frames: &[(Vec<u8>, u32)]) -> Session {
    let mut reads = Vec::new();
    reads.push(engine.axil_read(0x000).unwrap());
    reads.push(engine.axil_read(0x004).unwrap());
    reads.push(engine.axil_read(SCRATCH).unwrap());
    engine.axil_write(SCRATCH, 0x0000_5aa5).unwrap();
    engine.axil_write(UNMAPPED, 0xdead_beef).unwrap();
    reads.push(engine.axil_read(SCRATCH).unwrap());
    reads.push(engine.axil_read(UNMAPPED).unwrap());

    let (first, second) = frames.split_at(frames.len() * 3 / 4);
    for (frame, tick) in first {
        engine.send(frame, *tick);
    }
    let mut runs = vec![engine.run(&RunConfig::default()).unwrap()];
    engine.axil_write(SCRATCH, 0x0000_c33c).unwrap();
    reads.push(engine.axil_read(SCRATCH).unwrap());
    for (frame, tick) in second {
        engine.send(frame, *tick);
    }
    let config = RunConfig {
        backpressure: Some(Backpressure {
            seed: 0x5eed,
            ready_percent: 60,
        }),
        ..RunConfig::default()
    };
    runs.push(engine.run(&config).unwrap());
    Session {
        reads,
        runs,
        cycles: engine.cycle(),
    }
}

fn check_against_stand_in(s: &Session, frames: &[(Vec<u8>, u32)]) {
    assert_eq!(
        s.reads,
        [
            regmap::BLOCK_TYPE,
            regmap::BLOCK_VERSION,
            0,
            0x5aa5,
            0,
            0xc33c
        ]
    );
    let (first, second) = frames.split_at(frames.len() * 3 / 4);
    let want = |part: &[(Vec<u8>, u32)], scratch| -> Vec<OutFrame> {
        part.iter()
            .map(|(f, t)| stand_in_output(f, *t, scratch))
            .collect()
    };
    assert_eq!(s.runs[0].frames.len(), first.len());
    assert!(s.runs[0].frames == want(first, 0x5aa5), "first run frames");
    assert!(
        s.runs[1].frames == want(second, 0xc33c),
        "second run frames"
    );
}

fn engines_agree(design: Design, rtl: &mut dyn HwSim, frames: usize) {
    let frames = trace(frames);
    let t = Instant::now();
    let from_rtl = session(rtl, &frames);
    let rtl_time = t.elapsed();
    let t = Instant::now();
    let mut verilator = VerilatorSim::build(&emit_verilog(design)).expect("Verilator model");
    let build_time = t.elapsed();
    let t = Instant::now();
    let from_verilator = session(&mut verilator, &frames);
    eprintln!(
        "{design:?}: {} frames, {} clocks; rust-hdl {rtl_time:.1?}, Verilator build/cache {build_time:.1?} + run {:.1?}",
        frames.len(),
        from_rtl.cycles,
        t.elapsed()
    );
    check_against_stand_in(&from_rtl, &frames);
    check_against_stand_in(&from_verilator, &frames);
    assert_eq!(from_rtl.reads, from_verilator.reads);
    for (a, b) in from_rtl.runs.iter().zip(&from_verilator.runs) {
        assert_eq!(
            (a.first_in, a.last_out, a.end_cycle),
            (b.first_in, b.last_out, b.end_cycle),
            "clock counts differ between the engines"
        );
    }
    assert_eq!(from_rtl, from_verilator);
}

#[test]
fn engines_agree_on_a_generated_trace_64() {
    engines_agree(
        Design::StandIn64,
        &mut RtlSim::new(StandIn64::default()),
        120,
    );
}

#[test]
fn engines_agree_on_a_generated_trace_512() {
    engines_agree(
        Design::StandIn512,
        &mut RtlSim::new(StandIn512::default()),
        200,
    );
}

fn bus_round_trip(engine: &mut dyn HwSim) {
    let mut bus = HwBus::new(engine);
    assert_eq!(bus.read_reg(&regs::BLOCK_TYPE), regmap::BLOCK_TYPE);
    for value in [0x1234_5678, 0xffff_ffff, 0] {
        bus.write_reg(&regs::SCRATCH, value);
        assert_eq!(bus.read_reg(&regs::SCRATCH), value);
    }
    // Offsets the block does not decode never reach the design.
    let before = bus.engine().cycle();
    assert_eq!(bus.read32(SCRATCH + 1), u32::MAX);
    assert_eq!(bus.read32(regmap::MAP_SIZE), u32::MAX);
    bus.write32(regmap::MAP_SIZE + SCRATCH, 7);
    assert_eq!(bus.engine().cycle(), before);
    // The driver finds the block through AXI4-Lite; the stand-in reports no tables
    // (capacities 0), so programming stops at the capacity check, before any write.
    let device = probe(&mut bus).unwrap();
    assert_eq!(device.version, regmap::BLOCK_VERSION);
    assert_eq!((device.vip_capacity, device.backend_capacity), (0, 0));
    let err = program(&mut bus, &flowgate_core::Tables::default()).unwrap_err();
    assert!(
        !matches!(
            err,
            ProgramError::NotFlowgate { .. } | ProgramError::UnsupportedVersion { .. }
        ),
        "{err}"
    );
    assert!(bus.take_error().is_none());
    assert_eq!(bus.read_reg(&regs::SCRATCH), 0, "program wrote nothing");
}

#[test]
fn register_bus_round_trips_through_axi4_lite() {
    bus_round_trip(&mut RtlSim::new(StandIn64::default()));
    bus_round_trip(&mut VerilatorSim::build(&emit_verilog(Design::StandIn64)).unwrap());
}

/// Clocks from the first beat in to the last beat out for `n` back-to-back frames.
fn span(engine: &mut dyn HwSim, frame: &[u8], n: usize) -> u64 {
    for k in 0..n {
        engine.send(frame, k as u32);
    }
    let report = engine.run(&RunConfig::default()).unwrap();
    assert_eq!(report.frames.len(), n);
    report.span().unwrap()
}

fn measure_ii(name: &str, engine: &mut dyn HwSim) {
    // 60 bytes: the minimum Ethernet frame without its FCS.
    let frame: Vec<u8> = (0..60).collect();
    let beats = frame.len().div_ceil(engine.data_bytes()) as u64;
    let one = span(engine, &frame, 1);
    let latency = one - beats;
    let n = 64;
    let many = span(engine, &frame, n);
    eprintln!(
        "{name}: {n} back-to-back 60-byte frames ({beats} beats each) left in {many} clocks \
         = {n}·{beats} + {}; latency {latency} clocks; {:.3} frames/clock",
        many - n as u64 * beats,
        n as f64 / many as f64
    );
    assert!(latency >= 1);
    assert_eq!(many, n as u64 * beats + latency, "not one beat per clock");
}

#[test]
fn back_to_back_minimum_frames_leave_one_beat_per_clock() {
    measure_ii("rust-hdl 64-bit", &mut RtlSim::new(StandIn64::default()));
    measure_ii("rust-hdl 512-bit", &mut RtlSim::new(StandIn512::default()));
    for design in [Design::StandIn64, Design::StandIn512] {
        let mut engine = VerilatorSim::build(&emit_verilog(design)).unwrap();
        measure_ii(&format!("Verilator {design:?}"), &mut engine);
    }
}

#[test]
fn a_stalled_sink_times_out_instead_of_hanging() {
    let mut engine = RtlSim::new(StandIn64::default());
    engine.send(&[1, 2, 3], 0);
    let config = RunConfig {
        max_cycles: 200,
        backpressure: Some(Backpressure {
            seed: 1,
            ready_percent: 0,
        }),
        ..RunConfig::default()
    };
    assert!(matches!(
        engine.run(&config),
        Err(HwError::Timeout { cycles: 200 })
    ));
}

#[test]
fn missing_verilator_names_the_debian_package() {
    let build = VerilatorBuild {
        verilator: "flowgate-no-such-verilator".into(),
        cache_dir: None,
    };
    let err = build
        .start(&emit_verilog(Design::StandIn64))
        .err()
        .expect("no such program");
    assert!(matches!(err, HwError::Missing { .. }), "{err}");
    assert!(
        err.to_string().contains("Debian package `verilator`"),
        "{err}"
    );
}

#[test]
fn designs_without_the_top_ports_are_refused() {
    let err = flowgate_sim::hw::open(flowgate_sim::hw::Simulator::Rtl, Design::FlowToeplitz)
        .err()
        .expect("not a top");
    assert!(matches!(err, HwError::NotATop(_)), "{err}");
    let err = VerilatorBuild::default()
        .binary(&emit_verilog(Design::FlowToeplitz))
        .unwrap_err();
    assert!(matches!(err, HwError::Ports(_)), "{err}");
}
