//! The inner datagram's ones' complement sum, taken as a frame enters the frame FIFO, for
//! GUE's UDP checksum under an outer IPv6 header (RFC 8200 §8.1: it covers the whole
//! inner datagram, and the rewriter writes it in the outer header, before the datagram
//! leaves).
//!
//! The datagram is `ip_len` bytes from `l3_offset`, which the parser only knows after the
//! frame's last beat. This block reads just what it needs from the frame's first 28 bytes
//! as they pass: the ethertype and up to two VLAN tags (TPIDs 0x8100, 0x88a8, 0x9100, as
//! `flowgate_core::parse`) give the L3 offset (14, 18 or 22), and the IPv4 total length or
//! 40 + the IPv6 payload length gives the datagram's end. Every byte from 22 up to that end
//! is summed as it streams (big-endian 16-bit words: the L3 offsets are even, so a byte's
//! lane parity is its place in its word); bytes 14..22 are added at the end as far as they
//! belong to the datagram. So Ethernet padding, which the rewrite drops, is not counted.
//!
//! The end is known once byte 27 has passed (the last length field), but a datagram
//! cannot end before byte 34 (a 20-byte IPv4 header behind 14 bytes), so bytes 22..34
//! are always summed and the end is first needed at byte 34: on a 64-bit stream its beat
//! comes after byte 27's; on wider streams both sit in one beat and the fields are read
//! from that beat directly.
//!
//! On frames the parser rejects (not IP, lengths that do not fit) the sum is meaningless,
//! and no rewrite reads it: only a GUE forward to an IPv6 backend does, and only frames
//! the parser accepted are forwarded.
//!
//! Timing: `sum_valid` is high for one clock, the clock after the frame's `tlast` beat is
//! taken, with `sum` (unfolded: at most `ip_len / 2 · 0xFFFF`, within 32 bits for any
//! frame the FIFO holds).

use rust_hdl::prelude::*;

/// Frame bytes 12..28 are read: ethertype / TPIDs at 12, 16, 20; the IP header's first
/// bytes behind up to two tags.
const HEADER_FROM: usize = 12;
const HEADER_BYTES: usize = 16;

/// The summer on a `DATA_BITS`-wide stream (`KEEP_BITS = DATA_BITS / 8`).
#[derive(LogicBlock)]
pub struct InnerSum<const DATA_BITS: usize, const KEEP_BITS: usize> {
    pub clock: Signal<In, Clock>,
    pub tdata: Signal<In, Bits<DATA_BITS>>,
    pub tkeep: Signal<In, Bits<KEEP_BITS>>,
    pub tlast: Signal<In, Bit>,
    /// The beat is taken (`tvalid` and `tready`).
    pub take: Signal<In, Bit>,
    /// One clock, the clock after a frame's last beat is taken.
    pub sum_valid: Signal<Out, Bit>,
    /// The frame's inner datagram summed as big-endian 16-bit words, unfolded.
    pub sum: Signal<Out, Bits<32>>,

    zero: Constant<Bits<32>>,
    zero_view: Constant<Bits<128>>,
    byte_mask: Constant<Bits<DATA_BITS>>,
    keep_bytes: Constant<Bits<32>>,
    /// Header byte `HEADER_FROM + i`: its beat, its lane shift, its place in `view`.
    hb_beat: [Constant<Bits<32>>; HEADER_BYTES],
    hb_shift: [Constant<Bits<32>>; HEADER_BYTES],
    hb_place: [Constant<Bits<32>>; HEADER_BYTES],
    tpid_vlan: Constant<Bits<32>>,
    tpid_qinq: Constant<Bits<32>>,
    tpid_qinq_old: Constant<Bits<32>>,
    ethertype_v6: Constant<Bits<32>>,
    l3_14: Constant<Bits<32>>,
    l3_18: Constant<Bits<32>>,
    l3_22: Constant<Bits<32>>,
    v6_header: Constant<Bits<32>>,
    /// Where the streamed sum starts, and before which no datagram ends.
    from_22: Constant<Bits<32>>,
    min_end: Constant<Bits<32>>,

    in_frame: DFF<Bit>,
    beat: DFF<Bits<32>>,
    beat_pos: DFF<Bits<32>>,
    hdr: [DFF<Bits<8>>; HEADER_BYTES],
    acc: DFF<Bits<32>>,
    extra: DFF<Bits<32>>,
    done: DFF<Bit>,

    cur_beat: Signal<Local, Bits<32>>,
    cur_pos: Signal<Local, Bits<32>>,
    lane: Signal<Local, Bits<DATA_BITS>>,
    hbyte: Signal<Local, Bits<8>>,
    /// Header bytes 12..28 as seen now (this beat's where it has them), byte 12 in bits
    /// 7..0.
    view: Signal<Local, Bits<128>>,
    et0: Signal<Local, Bits<32>>,
    et1: Signal<Local, Bits<32>>,
    et2: Signal<Local, Bits<32>>,
    tag0: Signal<Local, Bit>,
    tag1: Signal<Local, Bit>,
    l3: Signal<Local, Bits<32>>,
    ethertype: Signal<Local, Bits<32>>,
    len_v4: Signal<Local, Bits<32>>,
    len_v6: Signal<Local, Bits<32>>,
    dgram_end: Signal<Local, Bits<32>>,
    pos: Signal<Local, Bits<32>>,
    word_hi: Signal<Local, Bits<DATA_BITS>>,
    word_lo: Signal<Local, Bits<DATA_BITS>>,
    beat_sum: Signal<Local, Bits<32>>,
    head_a: Signal<Local, Bits<32>>,
    head_b: Signal<Local, Bits<32>>,
}

impl<const DATA_BITS: usize, const KEEP_BITS: usize> Default for InnerSum<DATA_BITS, KEEP_BITS> {
    fn default() -> Self {
        assert!(
            KEEP_BITS * 8 == DATA_BITS && KEEP_BITS.is_multiple_of(2),
            "whole 16-bit words a beat, one keep bit a byte"
        );
        let bits32 = |v: usize| Constant::new((v as u64).into());
        Self {
            clock: Default::default(),
            tdata: Default::default(),
            tkeep: Default::default(),
            tlast: Default::default(),
            take: Default::default(),
            sum_valid: Default::default(),
            sum: Default::default(),
            zero: bits32(0),
            zero_view: Constant::new(Bits::default()),
            byte_mask: Constant::new(0xff_u64.into()),
            keep_bytes: bits32(KEEP_BITS),
            hb_beat: std::array::from_fn(|i| bits32((HEADER_FROM + i) / KEEP_BITS)),
            hb_shift: std::array::from_fn(|i| bits32(8 * ((HEADER_FROM + i) % KEEP_BITS))),
            hb_place: std::array::from_fn(|i| bits32(8 * i)),
            tpid_vlan: bits32(flowgate_core::parse::ETHERTYPE_VLAN.into()),
            tpid_qinq: bits32(flowgate_core::parse::ETHERTYPE_QINQ.into()),
            tpid_qinq_old: bits32(flowgate_core::parse::ETHERTYPE_QINQ_OLD.into()),
            ethertype_v6: bits32(flowgate_core::parse::ETHERTYPE_IPV6.into()),
            l3_14: bits32(14),
            l3_18: bits32(18),
            l3_22: bits32(22),
            v6_header: bits32(40),
            from_22: bits32(22),
            min_end: bits32(34),
            in_frame: Default::default(),
            beat: Default::default(),
            beat_pos: Default::default(),
            hdr: Default::default(),
            acc: Default::default(),
            extra: Default::default(),
            done: Default::default(),
            cur_beat: Default::default(),
            cur_pos: Default::default(),
            lane: Default::default(),
            hbyte: Default::default(),
            view: Default::default(),
            et0: Default::default(),
            et1: Default::default(),
            et2: Default::default(),
            tag0: Default::default(),
            tag1: Default::default(),
            l3: Default::default(),
            ethertype: Default::default(),
            len_v4: Default::default(),
            len_v6: Default::default(),
            dgram_end: Default::default(),
            pos: Default::default(),
            word_hi: Default::default(),
            word_lo: Default::default(),
            beat_sum: Default::default(),
            head_a: Default::default(),
            head_b: Default::default(),
        }
    }
}

impl<const DATA_BITS: usize, const KEEP_BITS: usize> Logic for InnerSum<DATA_BITS, KEEP_BITS> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, in_frame, beat, beat_pos, acc, extra, done);
        for i in 0..HEADER_BYTES {
            self.hdr[i].clock.next = self.clock.val();
            self.hdr[i].d.next = self.hdr[i].q.val();
        }
        self.done.d.next = false;
        self.cur_beat.next = self.zero.val();
        self.cur_pos.next = self.zero.val();
        if self.in_frame.q.val() {
            self.cur_beat.next = self.beat.q.val();
            self.cur_pos.next = self.beat_pos.q.val();
        }

        // ---- Header bytes 12..28: from this beat where it carries them, else as kept.
        self.view.next = self.zero_view.val();
        for i in 0..HEADER_BYTES {
            self.lane.next = (self.tdata.val() >> self.hb_shift[i].val()) & self.byte_mask.val();
            self.hbyte.next = self.hdr[i].q.val();
            if self.cur_beat.val() == self.hb_beat[i].val() {
                self.hbyte.next = self.lane.val().get_bits::<8>(0);
                if self.take.val() {
                    self.hdr[i].d.next = self.lane.val().get_bits::<8>(0);
                }
            }
            self.view.next =
                self.view.val() | (bit_cast::<128, 8>(self.hbyte.val()) << self.hb_place[i].val());
        }
        // Big-endian 16-bit fields of the view: bytes 12, 16 and 20.
        self.et0.next = (bit_cast::<32, 8>(self.view.val().get_bits::<8>(0)) << 8)
            | bit_cast::<32, 8>(self.view.val().get_bits::<8>(8));
        self.et1.next = (bit_cast::<32, 8>(self.view.val().get_bits::<8>(32)) << 8)
            | bit_cast::<32, 8>(self.view.val().get_bits::<8>(40));
        self.et2.next = (bit_cast::<32, 8>(self.view.val().get_bits::<8>(64)) << 8)
            | bit_cast::<32, 8>(self.view.val().get_bits::<8>(72));
        self.tag0.next = (self.et0.val() == self.tpid_vlan.val())
            | (self.et0.val() == self.tpid_qinq.val())
            | (self.et0.val() == self.tpid_qinq_old.val());
        self.tag1.next = self.tag0.val()
            & ((self.et1.val() == self.tpid_vlan.val())
                | (self.et1.val() == self.tpid_qinq.val())
                | (self.et1.val() == self.tpid_qinq_old.val()));
        // IPv4 total length at L3 + 2, IPv6 payload length at L3 + 4 (bytes 16/18, 20/22,
        // 24/26); the bytes 14..22 that belong to the datagram (A: 14..18, B: 18..22).
        self.head_a.next = (bit_cast::<32, 8>(self.view.val().get_bits::<8>(16)) << 8)
            + bit_cast::<32, 8>(self.view.val().get_bits::<8>(24))
            + (bit_cast::<32, 8>(self.view.val().get_bits::<8>(32)) << 8)
            + bit_cast::<32, 8>(self.view.val().get_bits::<8>(40));
        self.head_b.next = (bit_cast::<32, 8>(self.view.val().get_bits::<8>(48)) << 8)
            + bit_cast::<32, 8>(self.view.val().get_bits::<8>(56))
            + (bit_cast::<32, 8>(self.view.val().get_bits::<8>(64)) << 8)
            + bit_cast::<32, 8>(self.view.val().get_bits::<8>(72));
        self.l3.next = self.l3_14.val();
        self.ethertype.next = self.et0.val();
        self.len_v4.next = (bit_cast::<32, 8>(self.view.val().get_bits::<8>(32)) << 8)
            | bit_cast::<32, 8>(self.view.val().get_bits::<8>(40));
        self.len_v6.next = (bit_cast::<32, 8>(self.view.val().get_bits::<8>(48)) << 8)
            | bit_cast::<32, 8>(self.view.val().get_bits::<8>(56));
        if self.tag1.val() {
            self.l3.next = self.l3_22.val();
            self.ethertype.next = self.et2.val();
            self.len_v4.next = (bit_cast::<32, 8>(self.view.val().get_bits::<8>(96)) << 8)
                | bit_cast::<32, 8>(self.view.val().get_bits::<8>(104));
            self.len_v6.next = (bit_cast::<32, 8>(self.view.val().get_bits::<8>(112)) << 8)
                | bit_cast::<32, 8>(self.view.val().get_bits::<8>(120));
        } else if self.tag0.val() {
            self.l3.next = self.l3_18.val();
            self.ethertype.next = self.et1.val();
            self.len_v4.next = (bit_cast::<32, 8>(self.view.val().get_bits::<8>(64)) << 8)
                | bit_cast::<32, 8>(self.view.val().get_bits::<8>(72));
            self.len_v6.next = (bit_cast::<32, 8>(self.view.val().get_bits::<8>(80)) << 8)
                | bit_cast::<32, 8>(self.view.val().get_bits::<8>(88));
        }
        self.dgram_end.next = self.l3.val() + self.len_v4.val();
        if self.ethertype.val() == self.ethertype_v6.val() {
            self.dgram_end.next = self.l3.val() + self.v6_header.val() + self.len_v6.val();
        }
        if self.dgram_end.val() < self.min_end.val() {
            self.dgram_end.next = self.min_end.val();
        }

        // ---- This beat's words from byte 22 to the end, kept lanes only.
        self.beat_sum.next = self.zero.val();
        for w in 0..((KEEP_BITS / 2) as u64) {
            self.pos.next = self.cur_pos.val() + 2 * w;
            self.word_hi.next = (self.tdata.val() >> (16 * w)) & self.byte_mask.val();
            self.word_lo.next = (self.tdata.val() >> (16 * w + 8)) & self.byte_mask.val();
            if (self.pos.val() >= self.from_22.val()) & (self.pos.val() < self.dgram_end.val()) {
                if self.tkeep.val().get_bit((self.zero.val() + 2 * w).index()) {
                    self.beat_sum.next =
                        self.beat_sum.val() + (self.word_hi.val().get_bits::<32>(0) << 8);
                }
                if self
                    .tkeep
                    .val()
                    .get_bit((self.zero.val() + 2 * w + 1).index())
                    & (self.pos.val() + 1 < self.dgram_end.val())
                {
                    self.beat_sum.next = self.beat_sum.val() + self.word_lo.val().get_bits::<32>(0);
                }
            }
        }

        if self.take.val() {
            self.acc.d.next = self.acc.q.val() + self.beat_sum.val();
            if !self.in_frame.q.val() {
                self.acc.d.next = self.beat_sum.val();
            }
            self.extra.d.next = self.zero.val();
            if self.l3.val() == self.l3_14.val() {
                self.extra.d.next = self.head_a.val() + self.head_b.val();
            } else if self.l3.val() == self.l3_18.val() {
                self.extra.d.next = self.head_b.val();
            }
            self.beat.d.next = self.cur_beat.val() + 1;
            self.beat_pos.d.next = self.cur_pos.val() + self.keep_bytes.val();
            self.in_frame.d.next = !self.tlast.val();
            self.done.d.next = self.tlast.val();
        }
        self.sum_valid.next = self.done.q.val();
        self.sum.next = self.acc.q.val() + self.extra.q.val();
    }
}

/// The 64-bit build.
pub type SmallInnerSum = InnerSum<64, 8>;
/// The 512-bit build.
pub type WideInnerSum = InnerSum<512, 64>;

#[cfg(test)]
mod tests {
    use super::*;
    use flowgate_core::parse::{parse, Parsed};

    /// The datagram's sum as the rewrite's contract defines it (big-endian words, an odd
    /// last byte high).
    fn expected(frame: &[u8]) -> Option<u32> {
        let Ok(Parsed::Ip(p)) = parse(frame) else {
            return None;
        };
        let (l3, len) = (usize::from(p.l3_offset), usize::from(p.ip_len));
        Some(
            frame[l3..l3 + len]
                .chunks(2)
                .map(|w| u32::from(w[0]) << 8 | u32::from(w.get(1).copied().unwrap_or(0)))
                .sum(),
        )
    }

    /// Streams `frames` back to back (beat `j` of a frame: bytes `j·K..`) and returns the
    /// sums in order.
    fn run<const D: usize, const K: usize>(frames: &[Vec<u8>]) -> Vec<u32> {
        let mut uut = InnerSum::<D, K>::default();
        uut.connect_all();
        let mut beats = Vec::new();
        for f in frames {
            let chunks: Vec<&[u8]> = f.chunks(K).collect();
            for (j, chunk) in chunks.iter().enumerate() {
                let mut data = Bits::<D>::default();
                let mut keep = Bits::<K>::default();
                for (q, &b) in chunk.iter().enumerate() {
                    data.set_bits::<8>(8 * q, u64::from(b).into());
                    keep = keep.replace_bit(q, true);
                }
                beats.push((data, keep, j + 1 == chunks.len()));
            }
        }
        let total = beats.len();
        let mut sim = Simulation::new();
        let sums = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = sums.clone();
        sim.add_clock(5, |x: &mut Box<InnerSum<D, K>>| {
            x.clock.next = !x.clock.val()
        });
        sim.add_testbench(move |mut sim: Sim<InnerSum<D, K>>| {
            let mut x = sim.init()?;
            for &(data, keep, last) in &beats {
                x.tdata.next = data;
                x.tkeep.next = keep;
                x.tlast.next = last;
                x.take.next = true;
                wait_clock_cycle!(sim, clock, x);
                if x.sum_valid.val() {
                    out.lock().unwrap().push(x.sum.val().index() as u32);
                }
            }
            x.take.next = false;
            for _ in 0..3 {
                wait_clock_cycle!(sim, clock, x);
                if x.sum_valid.val() {
                    out.lock().unwrap().push(x.sum.val().index() as u32);
                }
            }
            sim.done(x)
        });
        sim.run(Box::new(uut), 10 * (total as u64 + 8))
            .expect("simulation runs");
        let v = sums.lock().unwrap().clone();
        v
    }

    #[test]
    fn sums_the_datagram_of_every_parsed_frame_of_a_trace() {
        use flowgate_traces::{generate_trace, TraceSpec, VipTarget};
        use std::net::{Ipv4Addr, Ipv6Addr};
        let vips = vec![
            VipTarget::tcp(Ipv4Addr::new(192, 0, 2, 10).into(), 443),
            VipTarget::udp("2001:db8::53".parse::<Ipv6Addr>().unwrap().into(), 0),
        ];
        let trace = generate_trace(&TraceSpec::mixed(vips, 150)).expect("valid spec");
        let mut frames: Vec<Vec<u8>> = trace.frames.into_iter().map(|f| f.data).collect();
        // Ethernet padding (not summed) behind a short datagram, and an odd length.
        let mut padded = frames
            .iter()
            .find(|f| expected(f).is_some())
            .expect("an IP frame")
            .clone();
        padded.extend_from_slice(&[0xab; 7]);
        frames.push(padded);
        let want: Vec<Option<u32>> = frames.iter().map(|f| expected(f)).collect();
        assert!(want.iter().filter(|w| w.is_some()).count() > 100);
        for got in [run::<64, 8>(&frames), run::<512, 64>(&frames)] {
            assert_eq!(got.len(), frames.len(), "one sum a frame");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                if let Some(w) = w {
                    assert_eq!(g, w, "frame {i}");
                }
            }
        }
    }

    /// Both widths pass Verilator's lint (WIDTH waived: rust-hdl's only widening,
    /// `bit_cast`, emits a mask wider than its operand) and synthesize in yosys with the
    /// state this module keeps: the 16 header bytes, the sum, the L3 bytes' sum, the beat
    /// counters.
    #[test]
    fn both_widths_lint_and_synthesize() {
        use crate::toolchain::{verilator_lint, yosys_synth, SynthFlow, RUST_HDL_LINT_WAIVERS};
        let mut waivers = RUST_HDL_LINT_WAIVERS.to_vec();
        waivers.push("WIDTH");
        // UNUSEDSIGNAL: `lane`, `word_hi` and `word_lo` are beat-wide locals of which the
        // low byte (or 32 bits) is read; the rest is masked to zero by construction.
        waivers.push("UNUSEDSIGNAL");
        for verilog in [
            crate::emit(SmallInnerSum::default()),
            crate::emit(WideInnerSum::default()),
        ] {
            verilator_lint(&verilog, "top", &waivers).unwrap();
            let report = yosys_synth(&verilog, "top", SynthFlow::Generic).unwrap();
            println!("generic synth: {report}");
            assert!(report.flip_flops() >= 16 * 8 + 32, "{report}");
        }
    }
}
