//! Stages 0 + 1 joined: an AXI4-Stream in, one parsed header out per frame.
//!
//! [`AxisParser`] is [`crate::axis::HeaderCapture`] feeding
//! [`crate::parse::FlowHeaderParse`] (128-byte header window), for any stream width:
//! [`FlowAxisParser`] is the 64-bit build, [`WideAxisParser`] the 512-bit one of 100G
//! shells. The parse of a frame appears [`LATENCY`] rising edges after its `tlast` beat is
//! accepted (one for the capture register, [`crate::parse::LATENCY`] for the parser's
//! stages), with `valid` high for that one clock; frames may follow each other back to
//! back, one beat each, and still get one result per clock.

use crate::axis::{HeaderCapture, HEADER_BITS};
use crate::parse::FlowHeaderParse;
use rust_hdl::prelude::*;

/// Clocks from a frame's accepted `tlast` beat to its parse's `valid`.
pub const LATENCY: usize = 1 + crate::parse::LATENCY;

/// The AXI4-Stream header parser: capture + parse, [`LATENCY`] clocks after `tlast`, on a
/// `DATA_BITS`-wide stream (`KEEP_BITS = DATA_BITS / 8`).
#[derive(LogicBlock, Default)]
pub struct AxisParser<const DATA_BITS: usize, const KEEP_BITS: usize> {
    pub clock: Signal<In, Clock>,
    pub tdata: Signal<In, Bits<DATA_BITS>>,
    pub tkeep: Signal<In, Bits<KEEP_BITS>>,
    pub tlast: Signal<In, Bit>,
    pub tvalid: Signal<In, Bit>,
    pub tready: Signal<Out, Bit>,
    /// Sampled with the `tlast` beat; shown on `tag_out` with the frame's parse (the top
    /// passes the frame's tick through).
    pub tag: Signal<In, Bits<32>>,
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
    /// `tag` of the frame, with `valid`.
    pub tag_out: Signal<Out, Bits<32>>,
    /// A frame's last beat has been accepted and its parse has not left the outputs yet.
    pub busy: Signal<Out, Bit>,
    tag_q: DFF<Bits<32>>,
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
        dff_setup!(self, clock, tag_q);
        // The capture registers the header with the `tlast` beat: so is the tag.
        if self.tvalid.val() && self.tlast.val() {
            self.tag_q.d.next = self.tag.val();
        }
        self.parse.tag.next = self.tag_q.q.val();
        self.frame_len.next = self.parse.len_out.val();
        self.tag_out.next = self.parse.tag_out.val();
        self.busy.next = self.parse.busy.val();
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
