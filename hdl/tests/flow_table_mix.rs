//! The flow-table block against `flowgate_core`'s `FlowTable` on a realistic request mix:
//! 20 000 requests (and bubbles) through 64 sets × 4 ways with two candidate sets per flow
//! (two banks of 32 rows), every result and the final table compared.

use flowgate_core::flow_table::{FlowClass, Geometry, Timeouts};
use flowgate_hdl::flow_table::{assert_same_trace, model_trace, simulate, Request, Step, Tally};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

const SET_BITS: usize = 6;
const ROW_BITS: usize = SET_BITS - 1;
const WAYS: usize = 4;
const SLOTS: usize = 2 * WAYS;
const GEOMETRY: Geometry = Geometry {
    sets: 1 << SET_BITS,
    ways: WAYS as u32,
    choices: 2,
};
const BACKENDS: u16 = 16;

/// The contract's default timeouts scaled down 100× (the run spans ~20 s of ticks).
const TIMEOUTS: Timeouts = Timeouts {
    tcp_ms: 3_000,
    tcp_embryonic_ms: 150,
    udp_ms: 800,
};

struct Flow {
    digest: u64,
    set: u32,
    tcp: bool,
    seen: bool,
}

impl Flow {
    fn new(rng: &mut ChaCha8Rng) -> Flow {
        Flow {
            digest: rng.gen(),
            set: rng.gen_range(0..1 << SET_BITS),
            tcp: rng.gen_bool(0.75),
            seen: false,
        }
    }
}

/// Maglev stand-in: a primary and a secondary backend per flow, the first that is up.
fn select(digest: u64, up: &[bool]) -> Option<u16> {
    let primary = (digest % BACKENDS as u64) as u16;
    let secondary = ((digest >> 16) % BACKENDS as u64) as u16;
    [primary, secondary].into_iter().find(|&b| up[b as usize])
}

/// Popular flows come back often (skewed popularity), TCP flows open with a SYN, a SYN
/// flood from spoofed sources runs throughout, flows churn, backends fail and recover in
/// phases, and about one tick passes per request.
fn realistic_mix(seed: u64, requests: usize) -> Vec<Option<Step>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut flows: Vec<Flow> = (0..600).map(|_| Flow::new(&mut rng)).collect();
    let mut up: Arc<[bool]> = vec![true; BACKENDS as usize].into();
    let mut now: u32 = rng.gen();
    let mut steps = Vec::with_capacity(requests * 21 / 20);
    let mut issued = 0;
    while issued < requests {
        if issued % 2500 == 2499 && steps.last().is_some_and(|s: &Option<Step>| s.is_some()) {
            // A health-check phase: one to three backends down. The bubble keeps the
            // change off a request right behind a write (see the block's module doc).
            let mut next = vec![true; BACKENDS as usize];
            for _ in 0..rng.gen_range(1..=3) {
                next[rng.gen_range(0..BACKENDS as usize)] = false;
            }
            up = next.into();
            steps.push(None);
            continue;
        }
        if rng.gen_range(0..100) < 3 {
            steps.push(None);
            continue;
        }
        now = now.wrapping_add(rng.gen_range(0..=2));
        let (digest, set, class, vip) = match rng.gen_range(0..100) {
            0..=9 => {
                // SYN flood: a fresh spoofed source every time.
                let digest: u64 = rng.gen();
                (
                    digest,
                    rng.gen_range(0..1 << SET_BITS),
                    FlowClass::Embryonic,
                    0,
                )
            }
            10..=14 => {
                let i = rng.gen_range(0..flows.len());
                flows[i] = Flow::new(&mut rng);
                continue;
            }
            _ => {
                let u: f64 = rng.gen();
                let i = ((u * u * u) * flows.len() as f64) as usize;
                let flow = &mut flows[i];
                let class = match (flow.tcp, flow.seen) {
                    (false, _) => FlowClass::Udp,
                    (true, false) => FlowClass::Embryonic,
                    (true, true) => FlowClass::Tcp,
                };
                flow.seen = true;
                (flow.digest, flow.set, class, (i % 4) as u16)
            }
        };
        issued += 1;
        steps.push(Some(Step {
            req: Request {
                set,
                digest,
                now,
                class,
                vip,
                select: select(digest, &up),
            },
            up: up.clone(),
        }));
    }
    steps
}

#[test]
fn flow_table_matches_core_on_20k_realistic_requests() {
    let steps = realistic_mix(0x5eed_f10e, 20_000);
    let requests = steps.iter().flatten().count();
    let model = model_trace(&GEOMETRY, &steps, &TIMEOUTS);
    let started = std::time::Instant::now();
    let hardware = simulate::<SET_BITS, ROW_BITS, WAYS, SLOTS>(GEOMETRY.choices, &steps, &TIMEOUTS)
        .expect("simulation halted");
    println!(
        "{} clocks ({requests} requests) simulated in {:.1?}",
        steps.len(),
        started.elapsed()
    );
    assert_same_trace(&hardware, &model, &steps);
    let tally = Tally::of(&model.outcomes);
    println!("{tally:?}");
    assert_eq!(requests, 20_000);
    assert!(tally.covers_everything(), "{tally:?}");
}
