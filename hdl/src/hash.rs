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

/// Both hash blocks: the key covers the last input bit's window, and the key offsets fit
/// their 32-bit constants.
fn assert_key_geometry(in_bits: usize, key_bits: usize) {
    assert!(
        key_bits >= in_bits + 32,
        "key must cover the last input bit's window"
    );
    assert!(key_bits < 1 << 31, "offsets are 32-bit constants");
}

/// A one-clock Toeplitz block: 39-byte input, 52-byte key.
pub type FlowToeplitz = ToeplitzHash<INPUT_BITS, KEY_BITS>;

impl<const IN_BITS: usize, const KEY_BITS: usize> Default for ToeplitzHash<IN_BITS, KEY_BITS> {
    fn default() -> Self {
        assert!(
            IN_BITS > 0 && IN_BITS / 8 * 8 == IN_BITS,
            "input must be whole bytes"
        );
        assert_key_geometry(IN_BITS, KEY_BITS);
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

/// The Toeplitz hash of [`ToeplitzHash`] over `IN_BITS / CHUNK_BITS` clocks: each clock
/// ANDs one `CHUNK_BITS`-wide slice of the input with its key window and XORs the result
/// into an accumulator. Same result as [`ToeplitzHash`] for the same `key` and `data`;
/// about `1 / chunks` of its AND/XOR terms.
///
/// Why: on ECP5 the three one-clock trees of the balancer top were 20 k LUT4, a third of
/// the top, and its densest wiring (every input bit fans out to 32 AND gates per hash),
/// which kept the whole top from routing on the 85F (`docs/SYNTHESIS.md`). On the 64-bit
/// stream a minimum frame takes 8 beats, so the decision block ([`crate::decide`]) has 8
/// clocks per frame to spend; on a 512-bit stream it uses one slice (a tree with a load
/// register).
///
/// Protocol: present `key` and `data` with `start` high for one clock while `ready` is
/// high. The hash is on `hash`, with `done` high for one clock, `LATENCY = CHUNKS + 1`
/// clocks later (`CHUNKS = IN_BITS / CHUNK_BITS`: one clock loads, one per slice); `hash`
/// then holds until the next `done`. `ready` is high when idle and in the clock of the
/// last slice, so starts can follow each other every `CHUNKS` clocks. `key` and `data`
/// are latched at `start`.
///
/// How: `data` and `key` are loaded into shift registers at `start`. The input slice is
/// the top `CHUNK_BITS` of the data register; the key bits it needs for output bit `k`
/// are the `CHUNK_BITS` bits at `k` of the key register's top `WIN_BITS = CHUNK_BITS +
/// 31` (see [`ToeplitzHash`]'s bit order). Both registers shift up by `CHUNK_BITS` a
/// clock, which brings the next slice and its window to the same place: the AND terms
/// read fixed bits, and the only muxes are the registers' load/shift choice.
#[derive(LogicBlock)]
pub struct SerialToeplitz<
    const IN_BITS: usize,
    const KEY_BITS: usize,
    const CHUNK_BITS: usize,
    const WIN_BITS: usize,
> {
    pub clock: Signal<In, Clock>,
    /// The hash key, byte 0 in the top bits; latched at `start`.
    pub key: Signal<In, Bits<KEY_BITS>>,
    /// The bytes to hash, byte 0 in the top bits, zeros after the last byte; latched at
    /// `start`.
    pub data: Signal<In, Bits<IN_BITS>>,
    pub start: Signal<In, Bit>,
    /// A `start` is taken in this clock.
    pub ready: Signal<Out, Bit>,
    /// `hash` is the result of the last `start` (one clock).
    pub done: Signal<Out, Bit>,
    pub hash: Signal<Out, Bits<32>>,
    // Numbers the body needs, as constants (hdl_gen emits a const-generic name verbatim).
    data_top: Constant<Bits<32>>,
    key_top: Constant<Bits<32>>,
    chunk: Constant<Bits<32>>,
    chunks: Constant<Bits<8>>,
    one: Constant<Bits<32>>,
    zero: Constant<Bits<32>>,
    /// `left` when idle, and in the clock of the last slice.
    idle: Constant<Bits<8>>,
    last: Constant<Bits<8>>,
    slice: Signal<Local, Bits<CHUNK_BITS>>,
    window: Signal<Local, Bits<WIN_BITS>>,
    part: Signal<Local, Bits<32>>,
    data_sr: DFF<Bits<IN_BITS>>,
    key_sr: DFF<Bits<KEY_BITS>>,
    acc: DFF<Bits<32>>,
    /// Slices still to add; 0 when idle.
    left: DFF<Bits<8>>,
    hash_reg: DFF<Bits<32>>,
    done_reg: DFF<Bit>,
}

/// The 39-byte, 52-byte-key hash in 8 clocks of 39 input bits (five bytes minus one bit).
pub type FlowToeplitzSerial =
    SerialToeplitz<INPUT_BITS, KEY_BITS, { INPUT_BITS / 8 }, { INPUT_BITS / 8 + 31 }>;

impl<
        const IN_BITS: usize,
        const KEY_BITS: usize,
        const CHUNK_BITS: usize,
        const WIN_BITS: usize,
    > SerialToeplitz<IN_BITS, KEY_BITS, CHUNK_BITS, WIN_BITS>
{
    /// Slices per hash: the least spacing of two starts.
    pub const CHUNKS: usize = IN_BITS / CHUNK_BITS;
    /// Clocks from `start` to `done`: one to load, one per slice.
    pub const LATENCY: usize = IN_BITS / CHUNK_BITS + 1;
}

impl<
        const IN_BITS: usize,
        const KEY_BITS: usize,
        const CHUNK_BITS: usize,
        const WIN_BITS: usize,
    > Default for SerialToeplitz<IN_BITS, KEY_BITS, CHUNK_BITS, WIN_BITS>
{
    fn default() -> Self {
        assert!(
            CHUNK_BITS > 0 && IN_BITS.is_multiple_of(CHUNK_BITS),
            "the input must split into whole slices"
        );
        assert!(IN_BITS / CHUNK_BITS < 256, "at most 255 slices");
        assert_eq!(
            WIN_BITS,
            CHUNK_BITS + 31,
            "a slice's key window is 31 bits wider"
        );
        assert_key_geometry(IN_BITS, KEY_BITS);
        Self {
            clock: Default::default(),
            key: Default::default(),
            data: Default::default(),
            start: Default::default(),
            ready: Default::default(),
            done: Default::default(),
            hash: Default::default(),
            data_top: Constant::new(((IN_BITS - CHUNK_BITS) as u64).into()),
            key_top: Constant::new(((KEY_BITS - WIN_BITS) as u64).into()),
            chunk: Constant::new((CHUNK_BITS as u64).into()),
            chunks: Constant::new(((IN_BITS / CHUNK_BITS) as u64).into()),
            one: Constant::new(1.into()),
            zero: Constant::new(0.into()),
            idle: Constant::new(0.into()),
            last: Constant::new(1.into()),
            slice: Default::default(),
            window: Default::default(),
            part: Default::default(),
            data_sr: Default::default(),
            key_sr: Default::default(),
            acc: Default::default(),
            left: Default::default(),
            hash_reg: Default::default(),
            done_reg: Default::default(),
        }
    }
}

impl<
        const IN_BITS: usize,
        const KEY_BITS: usize,
        const CHUNK_BITS: usize,
        const WIN_BITS: usize,
    > Logic for SerialToeplitz<IN_BITS, KEY_BITS, CHUNK_BITS, WIN_BITS>
{
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, data_sr, key_sr, acc, left, hash_reg, done_reg);
        self.slice.next = self
            .data_sr
            .q
            .val()
            .get_bits::<CHUNK_BITS>(self.data_top.val().index());
        self.window.next = self
            .key_sr
            .q
            .val()
            .get_bits::<WIN_BITS>(self.key_top.val().index());
        // Output bit k: this slice's input bits AND key bits [k, k + CHUNK_BITS) of the
        // window, XORed (as in ToeplitzHash, one reduction per output bit).
        self.part.next = 0.into();
        for k in 0..32_u64 {
            if (self.slice.val()
                & self
                    .window
                    .val()
                    .get_bits::<CHUNK_BITS>((self.zero.val() + k).index()))
            .xor()
            {
                self.part.next = self.part.val() | (self.one.val() << k);
            }
        }
        self.ready.next = self.left.q.val() <= self.last.val();
        self.done_reg.d.next = false;
        if self.left.q.val() != self.idle.val() {
            self.acc.d.next = self.acc.q.val() ^ self.part.val();
            self.data_sr.d.next = self.data_sr.q.val() << self.chunk.val();
            self.key_sr.d.next = self.key_sr.q.val() << self.chunk.val();
            self.left.d.next = self.left.q.val() - self.last.val();
            if self.left.q.val() == self.last.val() {
                self.hash_reg.d.next = self.acc.q.val() ^ self.part.val();
                self.done_reg.d.next = true;
            }
        }
        if self.start.val() && self.ready.val() {
            self.data_sr.d.next = self.data.val();
            self.key_sr.d.next = self.key.val();
            self.acc.d.next = 0.into();
            self.left.d.next = self.chunks.val();
        }
        self.hash.next = self.hash_reg.q.val();
        self.done.next = self.done_reg.q.val();
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

    /// Starts `cases` into the serial block, each `gap` clocks after the previous one
    /// (`gap >= CHUNKS`), and checks that `done` rises exactly `LATENCY` clocks after each
    /// start (and at no other time) with the contract's hash. The key and data inputs
    /// change to junk right after each start: the block must have latched them.
    fn run_serial(cases: Vec<Case>, gap: usize) {
        type S = FlowToeplitzSerial;
        assert!(gap >= S::CHUNKS);
        let mut uut = S::default();
        uut.connect_all();
        let mut sim = Simulation::new();
        sim.add_clock(5, |x: &mut Box<S>| x.clock.next = !x.clock.val());
        let total = cases.len();
        sim.add_testbench(move |mut sim: Sim<S>| {
            let mut x = sim.init()?;
            let junk_key: Bits<KEY_BITS> = left_aligned(&[0xa5; KEY_LEN]).unwrap();
            let junk_data: Bits<INPUT_BITS> = left_aligned(&[0x5a; MAX_INPUT_LEN]).unwrap();
            // (rising edges after which `done` must show, the case's hash), oldest first.
            let mut due = std::collections::VecDeque::<(usize, u32)>::new();
            let mut next = cases.iter().peekable();
            let (mut edges, mut last_start, mut dones) = (0usize, None::<usize>, 0usize);
            while next.peek().is_some() || !due.is_empty() {
                wait_clock_false!(sim, clock, x);
                if due.front().is_some_and(|&(at, _)| at == edges) {
                    let (_, want) = due.pop_front().unwrap();
                    sim_assert!(sim, x.done.val(), x);
                    if x.hash.val().to_u32() != want {
                        println!("hash {:08x} want {want:08x}", x.hash.val().to_u32());
                    }
                    sim_assert_eq!(sim, x.hash.val().to_u32(), want, x);
                    dones += 1;
                } else {
                    sim_assert!(sim, !x.done.val(), x);
                }
                x.start.next = false;
                x.key.next = junk_key;
                x.data.next = junk_data;
                if last_start.is_none_or(|s| edges >= s + gap) {
                    if let Some(case) = next.next() {
                        sim_assert!(sim, x.ready.val(), x);
                        x.start.next = true;
                        x.key.next = left_aligned(&case.key).unwrap();
                        x.data.next = left_aligned(&case.input).unwrap();
                        due.push_back((edges + S::LATENCY, case.want));
                        last_start = Some(edges);
                    }
                }
                wait_clock_true!(sim, clock, x);
                edges += 1;
            }
            sim_assert_eq!(sim, dones, total, x);
            sim.done(x)
        });
        sim.run(Box::new(uut), 10 * ((total * (gap + 2)) as u64 + 16))
            .expect("simulation ended early: a serial hash differed from core (see the HALT line)");
    }

    #[test]
    fn serial_hash_matches_rss_verification_suite() {
        run_serial(rss_verification_cases(), FlowToeplitzSerial::CHUNKS + 3);
    }

    #[test]
    fn serial_hash_matches_core_on_random_keys_and_inputs() {
        run_serial(random_cases(200, 0x5e7_1a1), FlowToeplitzSerial::CHUNKS);
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
    fn serial_toeplitz_synthesizes_at_a_fraction_of_the_tree() {
        let verilog = crate::emit(FlowToeplitzSerial::default());
        yosys_validate("flowgate_hdl_flow_toeplitz_serial", &verilog)
            .unwrap_or_else(|e| panic!("yosys_validate: {e:?}"));
        let report = yosys_synth(&verilog, "top", SynthFlow::Generic).unwrap();
        println!("generic synth: {report}");
        // The point of the block: the one-clock tree is 19 968 gates (see
        // `flow_toeplitz_synthesizes`); one slice of 39 bits is 32 × 39 AND terms and
        // their XORs, plus the registers and their load/shift muxes.
        let tree = 32 * INPUT_BITS as u64 * 2;
        assert!(report.total_cells() * 4 < tree, "{report}");
        // Every input bit still reaches the result: the data register is kept whole.
        assert!(report.flip_flops() >= INPUT_BITS as u64 + 32, "{report}");
    }

    #[test]
    fn serial_toeplitz_passes_verilator_lint() {
        let verilog = crate::emit(FlowToeplitzSerial::default());
        // UNUSEDSIGNAL: as for the tree, the key's last bits are never in a window.
        let mut waivers = crate::toolchain::RUST_HDL_LINT_WAIVERS.to_vec();
        waivers.push("UNUSEDSIGNAL");
        verilator_lint(&verilog, "top", &waivers).unwrap();
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
