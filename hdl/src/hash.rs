//! Stage 3 — hash: the Toeplitz (RSS) hash as one XOR tree with a registered output.
//!
//! Computes exactly [`flowgate_core::hash::toeplitz`]`(key, &data[..n])` for any
//! `n <= 39`, given `data` with zeros after byte `n`.
//!
//! # One block for every input length
//!
//! The contract hashes four inputs: the 12- or 36-byte tuple (RSS hash) and the same tuple
//! plus protocol and VIP index, 15 or 39 bytes (digest halves). Toeplitz is linear in the
//! input bits — input bit `i` set XORs key bits `[i, i + 32)` into the result — so zero
//! bytes after the input change nothing: the hash of a short input equals the hash of
//! that input left-aligned in a wider field with zeros after it. One block sized for the
//! longest input ([`MAX_INPUT_LEN`] = 39 bytes) therefore serves every length, and two
//! fixed-width blocks (12 and 36 bytes) would cost more together and still need a mux.
//!
//! There is deliberately no length input: the caller zero-fills. The stage that assembles
//! the tuple is a mux of parsed fields, where "no field here" is a constant zero for free,
//! whereas a `len` port gating every input bit inside the block made yosys/ABC map the XOR
//! trees about four times worse on ECP5 (28.3 k LUT4 against 6.8 k without; see
//! `hdl/README.md`).
//!
//! # Bit order
//!
//! Byte vectors travel left-aligned: byte 0 of `key` or `data` sits in the top 8 bits of
//! the signal, as the bytes arrive on the wire. Input bit `i` (MSB of byte 0 is `i = 0`) is
//! signal bit `IN_BITS - 1 - i`; the key window it selects is the 32-bit slice whose top
//! bit is key bit `i`, i.e. signal bits `[KEY_BITS - 32 - i, KEY_BITS - i)`.
//! [`left_aligned`] packs bytes this way.
//!
//! # Timing and cost
//!
//! Latency 1 clock, initiation interval 1: `hash` shows, one rising edge later, the hash
//! of the `key`/`data` present before that edge. Between the input pins and the output
//! register sit, per output bit, one AND per input bit feeding a reduction XOR that
//! synthesis builds as a balanced tree: ⌈log₂ 312⌉ = 9 levels of 2-input XOR, about 5
//! levels of LUT4. Registering the inputs as well, if the surrounding stage needs it, is
//! the caller's choice.
//!
//! The key is a signal, so every (input bit, output bit) pair costs an AND: 32 × 312 AND
//! and 32 × 311 XOR gates, ≈ 6.8 k LUT4 on ECP5 (`hdl/README.md` has the figures). A key
//! fixed at synthesis would drop the ANDs, but the contract keeps the key in registers.

use flowgate_core::hash::{KEY_LEN, MAX_INPUT_LEN};
use rust_hdl::prelude::*;

/// Bits in the contract's hash key (52 bytes).
pub const KEY_BITS: usize = KEY_LEN * 8;
/// Bits in the longest hash input (39 bytes).
pub const INPUT_BITS: usize = MAX_INPUT_LEN * 8;

/// A Toeplitz hash over an `IN_BITS`-wide left-aligned input with a `KEY_BITS`-wide key.
///
/// `IN_BITS` must be a multiple of 8 and `KEY_BITS >= IN_BITS + 32` (the key must cover the
/// window of the last input bit); [`Default`] asserts both, as rust-hdl widgets do.
#[derive(LogicBlock)]
pub struct ToeplitzHash<const IN_BITS: usize, const KEY_BITS: usize> {
    pub clock: Signal<In, Clock>,
    /// The hash key, byte 0 in the top bits (from the key registers).
    pub key: Signal<In, Bits<KEY_BITS>>,
    /// The bytes to hash, byte 0 in the top bits, zeros after the last byte.
    pub data: Signal<In, Bits<IN_BITS>>,
    /// Toeplitz(`key`, `data`) of the previous clock's inputs.
    pub hash: Signal<Out, Bits<32>>,
    // Numbers the body needs, as constants: hdl_gen emits a const-generic name verbatim (an
    // undeclared Verilog identifier), never its value.
    window_lsb: Constant<Bits<32>>,
    one: Constant<Bits<32>>,
    sum: Signal<Local, Bits<32>>,
    hash_reg: DFF<Bits<32>>,
}

/// The block the pipeline instantiates: 39-byte input, 52-byte key.
pub type FlowToeplitz = ToeplitzHash<INPUT_BITS, KEY_BITS>;

impl<const IN_BITS: usize, const KEY_BITS: usize> Default for ToeplitzHash<IN_BITS, KEY_BITS> {
    fn default() -> Self {
        assert!(
            IN_BITS > 0 && IN_BITS / 8 * 8 == IN_BITS,
            "input must be whole bytes"
        );
        assert!(
            KEY_BITS >= IN_BITS + 32,
            "key must cover the last input bit's window"
        );
        assert!(KEY_BITS < 1 << 31, "offsets are 32-bit constants");
        Self {
            clock: Default::default(),
            key: Default::default(),
            data: Default::default(),
            hash: Default::default(),
            window_lsb: Constant::new(((KEY_BITS - IN_BITS - 31) as u64).into()),
            one: Constant::new(1.into()),
            sum: Default::default(),
            hash_reg: Default::default(),
        }
    }
}

impl<const IN_BITS: usize, const KEY_BITS: usize> Logic for ToeplitzHash<IN_BITS, KEY_BITS> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, hash_reg);
        // Hash bit k XORs, over every input bit i, data bit i AND key bit i + 31 - k (bits
        // counted from the MSB of byte 0). Those key bits form one contiguous slice, so each
        // output bit is a reduction XOR, which synthesis builds as a balanced tree (a running
        // `sum ^= window` per input bit gave a 312-deep chain instead).
        self.sum.next = 0.into();
        for k in 0..32_u64 {
            if (self.data.val()
                & self
                    .key
                    .val()
                    .get_bits::<IN_BITS>((self.window_lsb.val() + k).index()))
            .xor()
            {
                self.sum.next = self.sum.val() | (self.one.val() << k);
            }
        }
        self.hash_reg.d.next = self.sum.val();
        self.hash.next = self.hash_reg.q.val();
    }
}

/// Packs `bytes` left-aligned into an `N`-bit signal value (byte 0 in the top 8 bits, zeros
/// after the last byte), the layout of [`ToeplitzHash`]'s `key` and `data`. `None` when
/// the bytes do not fit.
pub fn left_aligned<const N: usize>(bytes: &[u8]) -> Option<Bits<N>> {
    if bytes.len() * 8 > N {
        return None;
    }
    let mut value = Bits::<N>::default();
    for (i, &byte) in bytes.iter().enumerate() {
        value.set_bits::<8>(N - 8 * (i + 1), (byte as u64).into());
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolchain::{verilator_lint, yosys_synth, SynthFlow};
    use flowgate_core::hash::{rss_verification_vectors, toeplitz, HashKeys};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// One hash request and the contract's answer for it.
    #[derive(Clone)]
    struct Case {
        key: [u8; KEY_LEN],
        input: [u8; MAX_INPUT_LEN],
        want: u32,
    }

    impl Case {
        /// Hashes `input[..len]`: the block gets it zero-filled to 39 bytes, the contract
        /// gets it at its true length.
        fn new(key: [u8; KEY_LEN], mut input: [u8; MAX_INPUT_LEN], len: usize) -> Case {
            input[len..].fill(0);
            let want = toeplitz(&key, &input[..len]);
            Case { key, input, want }
        }
    }

    /// The RSS verification suite's vectors (the ones `core` checks its own Toeplitz with),
    /// zero-filled to the block's input width.
    fn rss_verification_cases() -> Vec<Case> {
        let key = HashKeys::default().rss;
        rss_verification_vectors()
            .into_iter()
            .map(|v| {
                let mut input = [0u8; MAX_INPUT_LEN];
                input[..v.tuple.len()].copy_from_slice(&v.tuple);
                let case = Case::new(key, input, v.tuple.len());
                assert_eq!(case.want, v.hash, "core disagrees with the RSS suite");
                case
            })
            .collect()
    }

    /// Random keys and inputs of random length. Lengths favour the four the
    /// contract uses (12, 15, 36, 39) but cover 0..=39.
    fn random_cases(count: usize, seed: u64) -> Vec<Case> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count)
            .map(|_| {
                let mut key = [0u8; KEY_LEN];
                rng.fill(&mut key[..]);
                let mut input = [0u8; MAX_INPUT_LEN];
                rng.fill(&mut input[..]);
                let len = match rng.gen_range(0..8) {
                    0 => 12,
                    1 => 15,
                    2 => 36,
                    3 => 39,
                    _ => rng.gen_range(0..=MAX_INPUT_LEN),
                };
                Case::new(key, input, len)
            })
            .collect()
    }

    /// Streams `cases` into the block, one per clock, and checks every `hash` one clock
    /// later: latency 1 and II 1 together.
    fn run_stream(cases: Vec<Case>) {
        let mut uut = FlowToeplitz::default();
        uut.connect_all();
        let mut sim = Simulation::new();
        sim.add_clock(5, |x: &mut Box<FlowToeplitz>| x.clock.next = !x.clock.val());
        let total = cases.len();
        sim.add_testbench(move |mut sim: Sim<FlowToeplitz>| {
            let mut x = sim.init()?;
            let mut expected: Option<(usize, u32)> = None;
            for (n, case) in cases.iter().enumerate() {
                wait_clock_false!(sim, clock, x);
                if let Some((m, want)) = expected {
                    if x.hash.val().to_u32() != want {
                        println!(
                            "case {m}: hash {:08x} want {want:08x}",
                            x.hash.val().to_u32()
                        );
                    }
                    sim_assert_eq!(sim, x.hash.val().to_u32(), want, x);
                }
                x.key.next = left_aligned(&case.key).unwrap();
                x.data.next = left_aligned(&case.input).unwrap();
                expected = Some((n, case.want));
                wait_clock_true!(sim, clock, x);
            }
            wait_clock_false!(sim, clock, x);
            let (_, want) = expected.unwrap();
            sim_assert_eq!(sim, x.hash.val().to_u32(), want, x);
            sim.done(x)
        });
        // 10 time units per clock, plus slack for the start and the last check.
        sim.run(Box::new(uut), 10 * (total as u64 + 4))
            .expect("simulation ended early: a hash differed from core (see the HALT line)");
    }

    #[test]
    fn hash_matches_rss_verification_suite_in_simulation() {
        run_stream(rss_verification_cases());
    }

    #[test]
    fn hash_matches_core_on_random_keys_and_inputs() {
        run_stream(random_cases(1200, 0x70e_b117));
    }

    #[test]
    fn left_aligned_puts_byte_zero_on_top_and_rejects_overflow() {
        let v: Bits<24> = left_aligned(&[0xab, 0xcd]).unwrap();
        assert_eq!(v.to_u32(), 0xabcd00);
        assert!(left_aligned::<16>(&[1, 2, 3]).is_none());
    }

    #[test]
    #[should_panic(expected = "key must cover")]
    fn default_rejects_a_key_too_short_for_the_input() {
        let _ = ToeplitzHash::<96, 120>::default();
    }

    #[test]
    fn flow_toeplitz_synthesizes() {
        let verilog = crate::emit_verilog(crate::Design::FlowToeplitz);
        // rust-hdl's own check: parses as Verilog-95, no latches, no undriven wires.
        yosys_validate("flowgate_hdl_flow_toeplitz", &verilog)
            .unwrap_or_else(|e| panic!("yosys_validate: {e:?}"));
        let report = yosys_synth(&verilog, "top", SynthFlow::Generic).unwrap();
        println!("generic synth: {report}");
        // 32 output flops (yosys may fold logic into one as a set/reset flop), and per
        // output bit a 312-input XOR tree of 311 gates: an input bit the tree lost, or a
        // slice that ran off the key, would show up as fewer.
        let flops = report.flip_flops();
        assert_eq!(flops, 32, "{report}");
        let xors = report.cell_count("$_XOR_") + report.cell_count("$_XNOR_");
        assert_eq!(xors, 32 * (INPUT_BITS as u64 - 1), "{report}");
        // Everything else is the key AND data terms, one per (input bit, output bit).
        let terms = report.total_cells() - flops - xors;
        assert_eq!(terms, 32 * INPUT_BITS as u64, "{report}");
    }

    #[test]
    fn flow_toeplitz_passes_verilator_lint() {
        let verilog = crate::emit_verilog(crate::Design::FlowToeplitz);
        // UNUSEDSIGNAL: the key port is the contract's whole 52-byte key register, but a
        // 39-byte input only reaches key bits [0, 39 * 8 + 31]; the last 73 go unread.
        let mut waivers = crate::toolchain::RUST_HDL_LINT_WAIVERS.to_vec();
        waivers.push("UNUSEDSIGNAL");
        verilator_lint(&verilog, "top", &waivers).unwrap();
    }
}
