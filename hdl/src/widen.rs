//! Two wiring blocks that `#[hdl_gen]` cannot express without a Verilator `WIDTH`
//! warning: joining 32-bit words into one wide vector ([`Concat32`]) and zero-extending a
//! narrow vector ([`ZeroExtend`]). rust-hdl only widens through `bit_cast`, which emits
//! `x & W'hff..` with `x` narrower than the mask; these emit a concatenation instead.
//! Each is its own Verilog module (`always @(*) out = {...};`: rust-hdl declares outputs `reg`), simulated by the `update` below.

use rust_hdl::prelude::*;

/// `N` 32-bit words joined into `W = 32 × N` bits: word 0 in the low bits, or, built with
/// [`Concat32::msb_first`], word 0 in the top bits (the layout of byte strings such as hash
/// keys, where register word 0 holds the first bytes).
#[derive(LogicBlock)]
pub struct Concat32<const N: usize, const W: usize> {
    pub words: [Signal<In, Bits<32>>; N],
    pub out: Signal<Out, Bits<W>>,
    _msb_first: bool,
}

impl<const N: usize, const W: usize> Concat32<N, W> {
    fn build(msb_first: bool) -> Self {
        assert_eq!(N * 32, W, "Concat32<N, W> needs W = 32 × N");
        Concat32 {
            words: std::array::from_fn(|_| Default::default()),
            out: Default::default(),
            _msb_first: msb_first,
        }
    }

    /// Word 0 in bits 31..0.
    pub fn lsb_first() -> Self {
        Self::build(false)
    }

    /// Word 0 in the top 32 bits.
    pub fn msb_first() -> Self {
        Self::build(true)
    }

    /// Word positions from the top word down.
    fn order(&self) -> Vec<usize> {
        if self._msb_first {
            (0..N).collect()
        } else {
            (0..N).rev().collect()
        }
    }
}

impl<const N: usize, const W: usize> Default for Concat32<N, W> {
    fn default() -> Self {
        Self::lsb_first()
    }
}

impl<const N: usize, const W: usize> Logic for Concat32<N, W> {
    fn update(&mut self) {
        let mut v = Bits::<W>::default();
        for i in self.order() {
            v = (v << 32) | bit_cast::<W, 32>(self.words[i].val());
        }
        self.out.next = v;
    }

    fn connect(&mut self) {
        self.out.connect();
    }

    fn hdl(&self) -> Verilog {
        let parts: Vec<String> = self.order().iter().map(|i| format!("words${i}")).collect();
        Verilog::Custom(format!("always @(*) out = {{{}}};", parts.join(", ")))
    }
}

/// `N` bits zero-extended to `M`.
#[derive(LogicBlock, Default)]
pub struct ZeroExtend<const N: usize, const M: usize> {
    pub narrow: Signal<In, Bits<N>>,
    pub wide: Signal<Out, Bits<M>>,
}

impl<const N: usize, const M: usize> Logic for ZeroExtend<N, M> {
    fn update(&mut self) {
        self.wide.next = bit_cast::<M, N>(self.narrow.val());
    }

    fn connect(&mut self) {
        self.wide.connect();
    }

    fn hdl(&self) -> Verilog {
        assert!(M > N, "ZeroExtend<N, M> needs M > N");
        Verilog::Custom(format!(
            "always @(*) wide = {{{{{}{{1'b0}}}}, narrow}};",
            M - N
        ))
    }
}
