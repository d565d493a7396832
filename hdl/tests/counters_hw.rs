//! The counter block against `flowgate_core`'s `Counters`: a generated trace
//! (`TraceSpec::mixed` on the example config's VIPs, backends failing and recovering in
//! phases) runs through core's sequential `process()`, each frame's effect becomes one
//! event (verdict, reason, VIP, backend, length, flow outcome), the events stream into the
//! block one per clock (with occasional idle clocks), and every counter read back through
//! the read port must equal core's. Plus synthesis and lint.

use flowgate_core::counters::Counters;
use flowgate_core::flow_table::FlowTable;
use flowgate_core::hash::FlowHasher;
use flowgate_core::pipeline::{process, tick_of};
use flowgate_core::regmap::Counter;
use flowgate_core::verdict::Verdict;
use flowgate_core::Tables;
use flowgate_hdl::counters::{SmallCounters, VERDICT_DROP, VERDICT_FORWARD, VERDICT_PASS};
use flowgate_hdl::flow_table::InsertOutcome;
use flowgate_hdl::toolchain::{self, SynthFlow};
use flowgate_traces::{generate, TraceSpec, VipTarget};
use rust_hdl::prelude::*;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, Default)]
struct Event {
    verdict: u64,
    reason: u64,
    vip: u64,
    backend: u64,
    len: u64,
    flow: bool,
    hit: bool,
    insert: u64,
    reselect: bool,
}

fn example_tables() -> Tables {
    let text =
        include_str!("../../examples/basic.toml").replace("maglev_m = 65537", "maglev_m = 251");
    flowgate_driver::compile(&flowgate_driver::parse_str(&text, "basic.toml").unwrap())
}

/// The frame's event, from what `process()` did to core's counters.
fn event(verdict: Verdict, len: usize, before: &Counters, after: &Counters) -> Event {
    let (b, a) = (&before.flow, &after.flow);
    let d = |x: u64, y: u64| y - x;
    let insert = if d(b.expirations, a.expirations) == 1 {
        InsertOutcome::Expired
    } else if d(b.evictions, a.evictions) == 1 {
        InsertOutcome::Evicted
    } else if d(b.inserts, a.inserts) == 1 {
        InsertOutcome::Empty
    } else if d(b.refused, a.refused) == 1 {
        InsertOutcome::Refused
    } else {
        InsertOutcome::None
    };
    let mut e = Event {
        len: len as u64,
        flow: d(b.hits + b.misses, a.hits + a.misses) == 1,
        hit: d(b.hits, a.hits) == 1,
        insert: insert as u64,
        reselect: d(b.reselects, a.reselects) == 1,
        ..Event::default()
    };
    match verdict {
        Verdict::Forward { vip, backend } => {
            e.verdict = VERDICT_FORWARD;
            e.vip = vip.into();
            e.backend = backend.into();
        }
        Verdict::Pass => e.verdict = VERDICT_PASS,
        Verdict::Drop(r) => {
            e.verdict = VERDICT_DROP;
            e.reason = r.code().into();
        }
    }
    e
}

/// Core's events and final counters for the trace; a backend goes down for a phase every
/// 700 frames (so re-selects and no-healthy-backend drops happen).
fn core_run(frames: u32) -> (Vec<Event>, Counters) {
    let mut tables = example_tables();
    let trace = generate(&TraceSpec::mixed(VipTarget::for_tables(&tables), frames)).unwrap();
    let hasher = FlowHasher::new(&tables.keys);
    let mut flows = FlowTable::new(tables.geometry.sets, tables.geometry.ways);
    let mut counters = Counters::new(tables.vips.len(), tables.backends.len());
    let mut out = Vec::new();
    let mut events = Vec::with_capacity(trace.len());
    let n = tables.backends.len();
    for (i, f) in trace.iter().enumerate() {
        if i % 700 == 350 {
            let b = (i / 700) % n;
            tables.backends[b].up = false;
            // Both of a VIP's backends down at times: no healthy backend.
            if i % 1400 == 350 {
                tables.backends[(b + 1) % n].up = false;
            }
        }
        if i % 700 == 0 {
            tables.backends.iter_mut().for_each(|b| b.up = true);
        }
        let before = counters.clone();
        let verdict = process(
            &f.data,
            tick_of(f.ts),
            &tables,
            &hasher,
            &mut flows,
            &mut counters,
            &mut out,
        );
        events.push(event(verdict, f.data.len(), &before, &counters));
    }
    (events, counters)
}

/// Streams `events` (an idle clock after every 13th) and reads every counter of `indices`.
fn simulate(events: Vec<Event>, indices: Vec<u32>) -> Vec<u64> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let got_tb = got.clone();
    let mut uut = SmallCounters::default();
    uut.connect_all();
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<SmallCounters>| {
        x.clock.next = !x.clock.val()
    });
    sim.add_testbench(move |mut sim: Sim<SmallCounters>| {
        let mut x = sim.init()?;
        for (i, e) in events.iter().enumerate() {
            wait_clock_cycle!(sim, clock, x);
            if i % 13 == 12 {
                x.ev_valid.next = false;
                wait_clock_cycle!(sim, clock, x);
            }
            x.ev_valid.next = true;
            x.ev_verdict.next = e.verdict.into();
            x.ev_reason.next = e.reason.into();
            x.ev_vip.next = e.vip.into();
            x.ev_backend.next = e.backend.into();
            x.ev_len.next = e.len.into();
            x.ev_flow.next = e.flow;
            x.ev_hit.next = e.hit;
            x.ev_insert.next = e.insert.into();
            x.ev_reselect.next = e.reselect;
        }
        wait_clock_cycle!(sim, clock, x);
        x.ev_valid.next = false;
        for _ in 0..3 {
            wait_clock_cycle!(sim, clock, x);
        }
        // Pipelined reads: one index per clock, each answered one clock later.
        for k in 0..=indices.len() {
            if k > 0 {
                sim_assert!(sim, x.rd_valid.val(), x);
                got_tb.lock().unwrap().push(x.rd_data.val().to_u64());
            }
            x.rd_req.next = k < indices.len();
            x.rd_index.next = (indices.get(k).copied().unwrap_or(0) as u64).into();
            wait_clock_cycle!(sim, clock, x);
        }
        sim.done(x)
    });
    sim.run(Box::new(uut), 100_000_000).expect("simulation");
    let v = got.lock().unwrap().clone();
    v
}

#[test]
fn counters_match_core_on_a_generated_trace() {
    let (events, want) = core_run(3000);
    // Every counter the trace should move did move.
    let f = &want.flow;
    assert!(
        want.forwarded > 0 && want.passed > 0 && want.total_dropped() > 0,
        "{want:?}"
    );
    assert!(
        f.hits > 0 && f.misses > 0 && f.inserts > 0 && f.reselects > 0,
        "{want:?}"
    );
    assert!(want.dropped(flowgate_core::verdict::DropReason::NoHealthyBackend) > 0);
    let back_to_back = events
        .windows(2)
        .filter(|w| {
            w[0].verdict == VERDICT_FORWARD
                && w[1].verdict == VERDICT_FORWARD
                && w[0].backend == w[1].backend
        })
        .count();
    assert!(
        back_to_back > 10,
        "the trace must exercise forwarding ({back_to_back})"
    );
    // Counters of VIPs and backends the build has but the tables do not read 0.
    let all = Counter::all(8, 64);
    let indices: Vec<u32> = all.iter().map(|c| c.index()).collect();
    let got = simulate(events, indices);
    let mut mismatches = Vec::new();
    for (c, g) in all.iter().zip(&got) {
        let w = c.value(&want).unwrap_or(0);
        if w != *g {
            mismatches.push(format!("{c:?}: hardware {g}, core {w}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    println!("{} counters equal; {:?}", all.len(), want.flow);
}

#[test]
fn counters_synthesize() {
    let verilog = flowgate_hdl::emit_verilog(flowgate_hdl::Design::SmallCounters);
    let report = toolchain::yosys_synth(&verilog, "top", SynthFlow::Generic).expect("yosys");
    println!(
        "SmallCounters: {report}; {} flip-flops",
        report.flip_flops()
    );
    // UNUSEDSIGNAL: index arithmetic runs at 32 bits (rust-hdl literals and loop indices
    // are 32-bit) and is narrowed to the RAM address width with `get_bits`, leaving the
    // high bits of those locals unread on purpose.
    let waivers = [toolchain::RUST_HDL_LINT_WAIVERS, &["UNUSEDSIGNAL"]].concat();
    toolchain::verilator_lint(&verilog, "top", &waivers).expect("verilator lint");
}
