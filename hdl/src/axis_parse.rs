//! Stages 0 + 1 joined: an AXI4-Stream in, one parsed header out per frame.
//!
//! [`AxisParser`] is [`crate::axis::HeaderCapture`] feeding
//! [`crate::parse::FlowHeaderParse`] (128-byte header window), for any stream width:
//! [`FlowAxisParser`] is the 64-bit build, [`WideAxisParser`] the 512-bit one of 100G
//! shells. The parse of a
//! frame appears two rising edges after its `tlast` beat is accepted (one for the capture
//! register, one for the parser's output register), with `valid` high for that one clock;
//! frames may follow each other back to back, one beat each, and still get one result
//! per clock.

use crate::axis::{HeaderCapture, HEADER_BITS};
use crate::parse::FlowHeaderParse;
use rust_hdl::prelude::*;

/// The AXI4-Stream header parser: capture + parse, latency 2 clocks after `tlast`, on a
/// `DATA_BITS`-wide stream (`KEEP_BITS = DATA_BITS / 8`).
#[derive(LogicBlock, Default)]
pub struct AxisParser<const DATA_BITS: usize, const KEEP_BITS: usize> {
    pub clock: Signal<In, Clock>,
    pub tdata: Signal<In, Bits<DATA_BITS>>,
    pub tkeep: Signal<In, Bits<KEEP_BITS>>,
    pub tlast: Signal<In, Bit>,
    pub tvalid: Signal<In, Bit>,
    pub tready: Signal<Out, Bit>,
    /// High for one clock per frame: the fields below describe it.
    pub valid: Signal<Out, Bit>,
    /// 0 = IP, [`crate::parse::RESULT_NOT_IP`], or a `DropReason` code.
    pub result: Signal<Out, Bits<8>>,
    pub vlan_count: Signal<Out, Bits<2>>,
    pub l3_offset: Signal<Out, Bits<16>>,
    pub is_v6: Signal<Out, Bit>,
    pub src: Signal<Out, Bits<128>>,
    pub dst: Signal<Out, Bits<128>>,
    pub ip_len: Signal<Out, Bits<16>>,
    pub protocol: Signal<Out, Bits<8>>,
    pub l4_offset: Signal<Out, Bits<16>>,
    pub fragment: Signal<Out, Bit>,
    pub src_port: Signal<Out, Bits<16>>,
    pub dst_port: Signal<Out, Bits<16>>,
    pub tcp_flags: Signal<Out, Bits<8>>,
    pub dscp_ecn: Signal<Out, Bits<8>>,
    /// The frame's length in bytes (saturating at 65 535), with `valid`.
    pub frame_len: Signal<Out, Bits<16>>,
    len_q: DFF<Bits<32>>,
    capture: HeaderCapture<DATA_BITS, KEEP_BITS, HEADER_BITS>,
    parse: FlowHeaderParse,
}

/// The 64-bit build (small FPGAs).
pub type FlowAxisParser = AxisParser<64, 8>;
/// The 512-bit build (100G shells such as Corundum or OpenNIC).
pub type WideAxisParser = AxisParser<512, 64>;

impl<const DATA_BITS: usize, const KEEP_BITS: usize> Logic for AxisParser<DATA_BITS, KEEP_BITS> {
    #[hdl_gen]
    fn update(&mut self) {
        clock!(self, clock, capture, parse);
        dff_setup!(self, clock, len_q);
        // The parser's output register is one clock behind the capture: so is the length.
        self.len_q.d.next = self.capture.frame_len.val();
        self.frame_len.next = self.len_q.q.val().get_bits::<16>(0);
        self.capture.tdata.next = self.tdata.val();
        self.capture.tkeep.next = self.tkeep.val();
        self.capture.tlast.next = self.tlast.val();
        self.capture.tvalid.next = self.tvalid.val();
        self.tready.next = self.capture.tready.val();
        self.parse.header.next = self.capture.header.val();
        self.parse.frame_len.next = self.capture.frame_len.val();
        self.parse.header_valid.next = self.capture.header_valid.val();
        self.valid.next = self.parse.valid.val();
        self.result.next = self.parse.result.val();
        self.vlan_count.next = self.parse.vlan_count.val();
        self.l3_offset.next = self.parse.l3_offset.val();
        self.is_v6.next = self.parse.is_v6.val();
        self.src.next = self.parse.src.val();
        self.dst.next = self.parse.dst.val();
        self.ip_len.next = self.parse.ip_len.val();
        self.protocol.next = self.parse.protocol.val();
        self.l4_offset.next = self.parse.l4_offset.val();
        self.fragment.next = self.parse.fragment.val();
        self.src_port.next = self.parse.src_port.val();
        self.dst_port.next = self.parse.dst_port.val();
        self.tcp_flags.next = self.parse.tcp_flags.val();
        self.dscp_ecn.next = self.parse.dscp_ecn.val();
    }
}
