//! The header capture ([`HeaderCapture`]) on beats with any `tkeep`: null bytes inside a
//! beat, beats with no byte kept, and frames longer than 65 535 bytes. Its header vector and
//! frame length must be what the kept bytes make (the module doc's conventions), whatever
//! the lanes: the byte count is an adder tree over `tkeep`, and the saturation at 65 535 a
//! sticky flag beside a 16-bit sum, so both are checked against a plain count here.

use flowgate_hdl::axis::{HeaderCapture, HEADER_BITS, HEADER_BYTES};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_hdl::prelude::*;
use std::sync::{Arc, Mutex};

/// A beat as it goes on the wire: its lanes' bytes and which are kept.
#[derive(Clone)]
struct Beat {
    bytes: Vec<u8>,
    keep: Vec<bool>,
}

/// What the capture must report for a frame: the first `HEADER_BYTES` kept bytes (zeros
/// after) and the count of kept bytes, saturating at 65 535.
fn expected(beats: &[Beat]) -> (Vec<u8>, u64) {
    let kept: Vec<u8> = beats
        .iter()
        .flat_map(|b| {
            b.bytes
                .iter()
                .zip(&b.keep)
                .filter(|(_, &k)| k)
                .map(|(&x, _)| x)
        })
        .collect();
    // Bytes land per beat position, not packed: a beat's null bytes leave zeros in the
    // header (the module doc: beat `b` goes to bytes [b × D, (b + 1) × D)).
    let mut header = vec![0u8; HEADER_BYTES];
    for (b, beat) in beats.iter().enumerate() {
        for (j, (&x, &k)) in beat.bytes.iter().zip(&beat.keep).enumerate() {
            let at = b * beat.bytes.len() + j;
            if k && at < HEADER_BYTES {
                header[at] = x;
            }
        }
    }
    (header, (kept.len() as u64).min(65_535))
}

/// Random frames of `k`-lane beats: each beat's lanes kept with probability 3/4 or all
/// kept, now and then a beat with no byte kept; one frame in `long_every` is longer than
/// 65 535 bytes.
fn frames(k: usize, count: usize, long_every: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<Beat>> {
    (0..count)
        .map(|i| {
            let beats = if long_every > 0 && i % long_every == long_every - 1 {
                100_000 / k
            } else {
                rng.gen_range(1..=(256 / k).max(3))
            };
            (0..beats)
                .map(|_| {
                    let bytes: Vec<u8> = (0..k).map(|_| rng.gen()).collect();
                    let keep: Vec<bool> = match rng.gen_range(0..8) {
                        0 => vec![false; k],
                        1..=3 => (0..k).map(|_| rng.gen_ratio(3, 4)).collect(),
                        _ => vec![true; k],
                    };
                    Beat { bytes, keep }
                })
                .collect()
        })
        .collect()
}

/// Streams `frames` through `HeaderCapture<D, K, HEADER_BITS>` back to back and returns
/// each frame's header (byte 0 first) and length.
fn run<const D: usize, const K: usize>(frames: &[Vec<Beat>]) -> Vec<(Vec<u8>, u64)> {
    let mut uut = HeaderCapture::<D, K, HEADER_BITS>::default();
    uut.connect_all();
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<HeaderCapture<D, K, HEADER_BITS>>| {
        x.clock.next = !x.clock.val()
    });
    let beats: usize = frames.iter().map(Vec::len).sum();
    let out = Arc::new(Mutex::new(Vec::new()));
    let (frames_tb, out_tb) = (frames.to_vec(), out.clone());
    sim.add_testbench(move |mut sim: Sim<HeaderCapture<D, K, HEADER_BITS>>| {
        let mut x = sim.init()?;
        let collect = |x: &HeaderCapture<D, K, HEADER_BITS>| {
            if x.header_valid.val() {
                let h = x.header.val();
                let header = (0..HEADER_BYTES)
                    .map(|i| h.get_bits::<8>(HEADER_BITS - 8 * (i + 1)).index() as u8)
                    .collect();
                out_tb
                    .lock()
                    .unwrap()
                    .push((header, x.frame_len.val().index() as u64));
            }
        };
        for frame in &frames_tb {
            for (n, beat) in frame.iter().enumerate() {
                wait_clock_false!(sim, clock, x);
                collect(&x);
                let mut data = Bits::<D>::default();
                let mut keep = Bits::<K>::default();
                for j in 0..K {
                    data.set_bits::<8>(8 * j, u64::from(beat.bytes[j]).into());
                    keep = keep.replace_bit(j, beat.keep[j]);
                }
                x.tdata.next = data;
                x.tkeep.next = keep;
                x.tlast.next = n + 1 == frame.len();
                x.tvalid.next = true;
                wait_clock_true!(sim, clock, x);
            }
        }
        for _ in 0..3 {
            wait_clock_false!(sim, clock, x);
            collect(&x);
            x.tvalid.next = false;
            wait_clock_true!(sim, clock, x);
        }
        sim.done(x)
    });
    sim.run(Box::new(uut), 10 * (beats as u64 + 10))
        .expect("simulation ended early");
    let out = out.lock().unwrap().clone();
    out
}

fn check<const D: usize, const K: usize>(count: usize, long_every: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let frames = frames(K, count, long_every, &mut rng);
    let got = run::<D, K>(&frames);
    assert_eq!(got.len(), frames.len(), "one header per frame");
    let mut saturated = 0;
    for (i, (frame, got)) in frames.iter().zip(&got).enumerate() {
        let want = expected(frame);
        assert_eq!(got.1, want.1, "{K} lanes, frame {i}: length");
        assert_eq!(got.0, want.0, "{K} lanes, frame {i}: header");
        saturated += usize::from(want.1 == 65_535);
    }
    assert!(
        long_every == 0 || saturated > 0,
        "a frame passed 65 535 bytes"
    );
}

#[test]
fn the_64_bit_capture_counts_every_kept_byte_and_saturates_at_65535() {
    check::<64, 8>(400, 200, 1);
}

#[test]
fn the_512_bit_capture_counts_every_kept_byte_and_saturates_at_65535() {
    check::<512, 64>(300, 150, 2);
}
