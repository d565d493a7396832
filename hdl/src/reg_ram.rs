//! A block RAM with a registered read: read latency 2, one clock, one write port.
//!
//! `read_data` after clock edge `k` is the word at the `read_address` of edge `k - 1`,
//! as it was before that edge's write (a read and a write of one address in the same
//! clock read the old word in simulation). The second register exists so that on ECP5 it
//! can be the DP16KD's own output register (`REGMODE "OUTREG"`, 0.9 ns clock-to-out
//! against the array's 5.8 ns): the synth flow's `outreg` step moves it there, since
//! nothing but that register reads the array.
//!
//! Why not rust-hdl's `RAM` and a `DFF`: yosys gives a `RAM` the read-old-on-collision
//! behaviour of its Verilog, which the DP16KD cannot give across its two ports, so it
//! emulates it with a bypass mux after the array (a register of the write data and a
//! LUT per bit) — and then the register is no longer alone after the read. The Verilog
//! here marks the array `no_rw_check` (yosys: a read and a write of one address in one
//! clock may return either word), which removes the emulation. **Use it only where no
//! read that matters meets a write of the same address in the same clock**: decide's
//! Maglev rows are written only with no frame in flight (the register map commits
//! between frames), and a read with no frame behind it is never used.

use rust_hdl::prelude::*;
use std::collections::BTreeMap;

#[derive(LogicBlock, Default)]
pub struct RegRam<D: Synth, const N: usize> {
    pub clock: Signal<In, Clock>,
    pub read_address: Signal<In, Bits<N>>,
    /// The word at the `read_address` of the clock before last.
    pub read_data: Signal<Out, D>,
    pub write_address: Signal<In, Bits<N>>,
    pub write_data: Signal<In, D>,
    pub write_enable: Signal<In, Bit>,
    _sim: BTreeMap<Bits<N>, D>,
    /// The array's read register (the first of the two), and the word the edge in
    /// progress reads into it.
    _stage: D,
    _pending: D,
}

impl<D: Synth, const N: usize> Logic for RegRam<D, N> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            // Everything at the edge from the values before it (the same order as
            // rust-hdl's `RAM`: read, then write).
            self.read_data.next = self._stage;
            self._pending = *self
                ._sim
                .get(&self.read_address.val())
                .unwrap_or(&D::default());
            if self.write_enable.val() {
                self._sim
                    .insert(self.write_address.val(), self.write_data.val());
            }
        } else {
            self._stage = self._pending;
        }
    }

    fn connect(&mut self) {
        self.read_data.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(format!(
            "\
(* no_rw_check *)
reg[{d}:0] mem[{a}:0];
reg[{d}:0] read_stage;

always @(posedge clock) begin
   read_stage <= mem[read_address];
   read_data <= read_stage;
end

always @(posedge clock) begin
   if (write_enable) begin
      mem[write_address] <= write_data;
   end
end
",
            d = D::BITS - 1,
            a = (1usize << N) - 1,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(LogicBlock, Default)]
    struct Bench {
        clock: Signal<In, Clock>,
        ram: RegRam<Bits<8>, 4>,
    }

    impl Logic for Bench {
        #[hdl_gen]
        fn update(&mut self) {
            self.ram.clock.next = self.clock.val();
        }
    }

    /// Reads two clocks late, sees a write from the clock after it, and reads the old
    /// word when the write and the read of one address share a clock.
    #[test]
    fn reads_arrive_two_clocks_late_in_write_order() {
        let mut uut = Bench::default();
        // The testbench drives the RAM's inputs.
        uut.ram.read_address.connect();
        uut.ram.write_address.connect();
        uut.ram.write_data.connect();
        uut.ram.write_enable.connect();
        uut.connect_all();
        let mut sim = Simulation::new();
        sim.add_clock(5, |x: &mut Box<Bench>| x.clock.next = !x.clock.val());
        sim.add_testbench(move |mut sim: Sim<Bench>| {
            let mut x = sim.init()?;
            // Write 0x11 to 3, and read 3 in the same clock: the old word (0).
            x.ram.write_address.next = 3.into();
            x.ram.write_data.next = 0x11.into();
            x.ram.write_enable.next = true;
            x.ram.read_address.next = 3.into();
            wait_clock_cycle!(sim, clock, x);
            x.ram.write_enable.next = false;
            // Read 3 again: now the new word, two clocks later.
            wait_clock_cycle!(sim, clock, x);
            sim_assert_eq!(sim, x.ram.read_data.val(), Bits::<8>::from(0), x);
            x.ram.read_address.next = 5.into();
            wait_clock_cycle!(sim, clock, x);
            sim_assert_eq!(sim, x.ram.read_data.val(), Bits::<8>::from(0x11), x);
            wait_clock_cycle!(sim, clock, x);
            sim_assert_eq!(sim, x.ram.read_data.val(), Bits::<8>::from(0), x);
            sim.done(x)
        });
        sim.run(Box::new(uut), 1_000).unwrap();
    }

    #[test]
    fn the_verilog_marks_the_array_for_yosys_and_registers_the_read_twice() {
        let v = match RegRam::<Bits<32>, 11>::default().hdl() {
            Verilog::Custom(v) => v,
            _ => panic!("custom Verilog"),
        };
        assert!(v.contains("(* no_rw_check *)\nreg[31:0] mem[2047:0];"));
        assert!(v.contains("read_stage <= mem[read_address];"));
        assert!(v.contains("read_data <= read_stage;"));
    }
}
