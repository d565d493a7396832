//! Well-formed frames, built with etherparse's `PacketBuilder` (lengths, checksums and
//! ethertypes are etherparse's, not ours). Frames come back unpadded; the trace pads them to
//! the Ethernet minimum as a NIC would deliver them, and the malformed cases edit them.

use etherparse::{
    ip_number, ArpHardwareId, ArpOperation, ArpPacket, EtherType, IpFragOffset, IpHeaders,
    IpNumber, Ipv4Header, Ipv6Extensions, Ipv6FlowLabel, Ipv6FragmentHeader, Ipv6Header,
    PacketBuilder, PacketBuilderStep, TcpOptionElement, UdpHeader, VlanId,
};
use std::net::{IpAddr, Ipv4Addr};

/// Smallest Ethernet frame without FCS; shorter frames are padded with zeros.
pub const MIN_FRAME: usize = 60;
/// The IP MTU every generated link has.
pub const MTU: usize = 1500;

/// The upstream router every client frame arrives from.
pub const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// The load balancer's own MAC (`flowgate_core::Tables::default().own_mac`).
pub const LB_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xfe];

/// VLAN tags on a frame: none, one 802.1Q tag, or an 802.1ad outer + 802.1Q inner pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vlans {
    None,
    One(u16),
    Two(u16, u16),
}

impl Vlans {
    pub(crate) fn count(self) -> u8 {
        match self {
            Vlans::None => 0,
            Vlans::One(_) => 1,
            Vlans::Two(..) => 2,
        }
    }
}

/// The Ethernet envelope of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Link {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub vlans: Vlans,
}

impl Link {
    /// Router → load balancer, untagged.
    pub(crate) const UPSTREAM: Link = Link {
        src_mac: ROUTER_MAC,
        dst_mac: LB_MAC,
        vlans: Vlans::None,
    };

    pub(crate) fn tagged(vlans: Vlans) -> Link {
        Link {
            vlans,
            ..Link::UPSTREAM
        }
    }
}

/// The IP layer of a frame: addresses of one family and per-flow header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ip {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    /// IPv4 identification (low 16 bits) or IPv6 fragment identification.
    pub ident: u32,
    /// IPv6 flow label (20 bits); unused for IPv4.
    pub flow_label: u32,
}

impl Ip {
    pub(crate) fn is_ipv6(&self) -> bool {
        self.dst.is_ipv6()
    }

    /// Bytes of IP header in an unfragmented packet built from this.
    pub(crate) fn header_len(&self) -> usize {
        if self.is_ipv6() {
            Ipv6Header::LEN
        } else {
            Ipv4Header::MIN_LEN
        }
    }

    fn headers(&self, dont_fragment: bool) -> IpHeaders {
        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => IpHeaders::Ipv4(
                Ipv4Header {
                    source: src.octets(),
                    destination: dst.octets(),
                    time_to_live: self.ttl,
                    identification: self.ident as u16,
                    dont_fragment,
                    ..Default::default()
                },
                Default::default(),
            ),
            (src, dst) => IpHeaders::Ipv6(
                Ipv6Header {
                    source: v6_octets(src),
                    destination: v6_octets(dst),
                    hop_limit: self.ttl,
                    flow_label: Ipv6FlowLabel::try_new(self.flow_label & 0xf_ffff)
                        .unwrap_or_default(),
                    ..Default::default()
                },
                Default::default(),
            ),
        }
    }
}

/// A v4 address in a v6 header (never generated: families are chosen per flow) is mapped
/// rather than panicking.
fn v6_octets(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// Ethernet (+ VLANs) + the given IP header, ready for a transport header.
pub(crate) fn ip_step(link: &Link, ip: IpHeaders) -> PacketBuilderStep<IpHeaders> {
    let eth = PacketBuilder::ethernet2(link.src_mac, link.dst_mac);
    match link.vlans {
        Vlans::None => eth.ip(ip),
        Vlans::One(id) => eth.single_vlan(vlan_id(id)).ip(ip),
        Vlans::Two(outer, inner) => eth.double_vlan(vlan_id(outer), vlan_id(inner)).ip(ip),
    }
}

fn vlan_id(id: u16) -> VlanId {
    VlanId::try_new(id & 0x0fff).unwrap_or_default()
}

/// One TCP segment's header fields.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Segment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    /// `Some` sets ACK.
    pub ack: Option<u32>,
    pub syn: bool,
    pub psh: bool,
    pub fin: bool,
    pub window: u16,
    pub options: &'a [TcpOptionElement],
}

/// Options of a Linux-like SYN: MSS, window scale, SACK permitted (12 bytes, data offset 8).
pub(crate) fn syn_options(mss: u16) -> [TcpOptionElement; 6] {
    [
        TcpOptionElement::MaximumSegmentSize(mss),
        TcpOptionElement::Noop,
        TcpOptionElement::WindowScale(7),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Noop,
        TcpOptionElement::Noop,
    ]
}

pub(crate) fn tcp(link: &Link, ip: &Ip, seg: &Segment, payload: &[u8]) -> Vec<u8> {
    let mut step =
        ip_step(link, ip.headers(true)).tcp(seg.src_port, seg.dst_port, seg.seq, seg.window);
    if seg.syn {
        step = step.syn();
    }
    if let Some(ack) = seg.ack {
        step = step.ack(ack);
    }
    if seg.psh {
        step = step.psh();
    }
    if seg.fin {
        step = step.fin();
    }
    if !seg.options.is_empty() {
        step = step
            .options(seg.options)
            .expect("the generator's option lists fit in 40 bytes");
    }
    let mut out = Vec::with_capacity(step.size(payload.len()));
    step.write(&mut out, payload)
        .expect("sizes are bounded by the MTU");
    out
}

pub(crate) fn udp(link: &Link, ip: &Ip, src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let step = ip_step(link, ip.headers(false)).udp(src_port, dst_port);
    let mut out = Vec::with_capacity(step.size(payload.len()));
    step.write(&mut out, payload)
        .expect("sizes are bounded by the MTU");
    out
}

/// Largest fragment payload (a multiple of 8) that keeps each fragment within the MTU.
pub(crate) fn fragment_chunk(ipv6: bool) -> usize {
    if ipv6 {
        (MTU - Ipv6Header::LEN - Ipv6FragmentHeader::LEN) / 8 * 8
    } else {
        (MTU - Ipv4Header::MIN_LEN) / 8 * 8
    }
}

/// One UDP datagram (checksum over the whole datagram) cut into IP fragments of at most
/// [`fragment_chunk`] bytes, in order. Callers pass datagrams larger than one chunk; one
/// that fits would come back as a single, unfragmented-looking IPv4 packet.
pub(crate) fn udp_fragments(
    link: &Link,
    ip: &Ip,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
) -> Vec<Vec<u8>> {
    let udp = match ip.headers(false) {
        IpHeaders::Ipv4(h, _) => UdpHeader::with_ipv4_checksum(src_port, dst_port, &h, payload),
        IpHeaders::Ipv6(h, _) => UdpHeader::with_ipv6_checksum(src_port, dst_port, &h, payload),
    }
    .expect("datagram sizes are bounded by the generator");
    let mut datagram = udp.to_bytes().to_vec();
    datagram.extend_from_slice(payload);

    let chunk = fragment_chunk(ip.is_ipv6());
    let pieces = datagram.len().div_ceil(chunk);
    datagram
        .chunks(chunk)
        .enumerate()
        .map(|(i, piece)| {
            let more = i + 1 < pieces;
            let offset = IpFragOffset::try_new(((i * chunk) / 8) as u16).unwrap_or_default();
            let headers = match ip.headers(false) {
                IpHeaders::Ipv4(mut h, exts) => {
                    h.more_fragments = more;
                    h.fragment_offset = offset;
                    IpHeaders::Ipv4(h, exts)
                }
                IpHeaders::Ipv6(h, _) => IpHeaders::Ipv6(
                    h,
                    Ipv6Extensions {
                        fragment: Some(Ipv6FragmentHeader::new(
                            ip_number::UDP,
                            offset,
                            more,
                            ip.ident,
                        )),
                        ..Default::default()
                    },
                ),
            };
            raw_ip(link, headers, ip_number::UDP, piece)
        })
        .collect()
}

/// Ethernet + IP headers + `payload` as the upper layer `protocol`, whatever it holds.
pub(crate) fn raw_ip(
    link: &Link,
    headers: IpHeaders,
    protocol: IpNumber,
    payload: &[u8],
) -> Vec<u8> {
    let step = ip_step(link, headers);
    let mut out = Vec::with_capacity(step.size(payload.len()));
    step.write(&mut out, protocol, payload)
        .expect("sizes are bounded by the MTU");
    out
}

/// Ethernet + IP header of `ip` + `payload` as `protocol` (truncated transport headers).
pub(crate) fn ip_with_payload(link: &Link, ip: &Ip, protocol: IpNumber, payload: &[u8]) -> Vec<u8> {
    raw_ip(link, ip.headers(true), protocol, payload)
}

/// An ICMP (v4) or ICMPv6 echo request.
pub(crate) fn icmp_echo(link: &Link, ip: &Ip, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let step = ip_step(link, ip.headers(false));
    let mut out = Vec::new();
    if ip.is_ipv6() {
        let step = step.icmpv6_echo_request(id, seq);
        out.reserve(step.size(payload.len()));
        step.write(&mut out, payload)
    } else {
        let step = step.icmpv4_echo_request(id, seq);
        out.reserve(step.size(payload.len()));
        step.write(&mut out, payload)
    }
    .expect("sizes are bounded by the MTU");
    out
}

/// A broadcast ARP request "who has `target`, tell `sender`" (RFC 826).
pub(crate) fn arp_request(sender_mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let arp = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        ArpOperation::REQUEST,
        &sender_mac,
        &sender.octets(),
        &[0; 6],
        &target.octets(),
    )
    .expect("Ethernet and IPv4 addresses have ARP's lengths");
    let step = PacketBuilder::ethernet2(sender_mac, [0xff; 6]).arp(arp);
    let mut out = Vec::with_capacity(step.size());
    step.write(&mut out).expect("writing to a Vec cannot fail");
    out
}

/// Zero-pad to the Ethernet minimum, as a receiving NIC hands short frames up.
pub(crate) fn pad(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() < MIN_FRAME {
        frame.resize(MIN_FRAME, 0);
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use std::net::Ipv6Addr;

    fn ip4() -> Ip {
        Ip {
            src: Ipv4Addr::new(100, 64, 0, 1).into(),
            dst: Ipv4Addr::new(192, 0, 2, 10).into(),
            ttl: 64,
            ident: 0x1234,
            flow_label: 0,
        }
    }

    fn ip6() -> Ip {
        Ip {
            src: "2001:db8:c000::1".parse::<Ipv6Addr>().unwrap().into(),
            dst: "2001:db8::10".parse::<Ipv6Addr>().unwrap().into(),
            ttl: 64,
            ident: 0xdead_beef,
            flow_label: 0x12345,
        }
    }

    #[test]
    fn double_tagged_syn_has_the_tags_and_options() {
        let opts = syn_options(1460);
        let seg = Segment {
            src_port: 40000,
            dst_port: 80,
            seq: 1,
            syn: true,
            window: 64240,
            options: &opts,
            ..Default::default()
        };
        let frame = tcp(&Link::tagged(Vlans::Two(100, 200)), &ip4(), &seg, &[]);
        assert_eq!(&frame[12..14], &[0x88, 0xa8]);
        assert_eq!(&frame[16..18], &[0x81, 0x00]);
        let p = SlicedPacket::from_ethernet(&frame).unwrap();
        let Some(TransportSlice::Tcp(t)) = p.transport else {
            panic!("no TCP")
        };
        assert!(t.syn() && !t.ack());
        assert_eq!(t.data_offset(), 8);
    }

    #[test]
    fn fragments_reassemble_to_the_datagram() {
        for ip in [ip4(), ip6()] {
            let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
            let frags = udp_fragments(&Link::UPSTREAM, &ip, 5000, 53, &payload);
            assert_eq!(frags.len(), 3);
            let mut reassembled = Vec::new();
            for (i, f) in frags.iter().enumerate() {
                assert!(f.len() <= 14 + MTU);
                let p = SlicedPacket::from_ethernet(f).unwrap();
                assert!(p.is_ip_payload_fragmented());
                let net = p.net.unwrap();
                let (more, offset, body) = match &net {
                    NetSlice::Ipv4(v4) => (
                        v4.header().more_fragments(),
                        v4.header().fragments_offset().byte_offset(),
                        v4.payload().payload,
                    ),
                    NetSlice::Ipv6(v6) => {
                        let frag = Ipv6FragmentHeader::from_slice(&f[14 + 40..]).unwrap().0;
                        assert_eq!(frag.identification, 0xdead_beef);
                        (
                            frag.more_fragments,
                            frag.fragment_offset.byte_offset(),
                            v6.payload().payload,
                        )
                    }
                    NetSlice::Arp(_) => panic!("a UDP fragment sliced as ARP"),
                };
                assert_eq!(more, i + 1 < frags.len());
                assert_eq!(usize::from(offset), reassembled.len());
                reassembled.extend_from_slice(body);
            }
            assert_eq!(&reassembled[8..], &payload[..]);
            assert_eq!(u16::from_be_bytes([reassembled[4], reassembled[5]]), 3008);
        }
    }

    /// RFC 8200 §4.5 on the wire, read from raw bytes rather than through etherparse
    /// (whose releases before 0.20 wrote this word with another layout, etherparse#150,
    /// and read it back the same way): next header, reserved byte, then a 16-bit word with
    /// the offset in 8-byte units in its top 13 bits, two reserved bits and M in bit 0,
    /// then the identification.
    #[test]
    fn ipv6_fragment_header_follows_rfc_8200() {
        let payload = vec![0u8; 3000]; // 3008-byte datagram in 1448-byte pieces
        let frags = udp_fragments(&Link::UPSTREAM, &ip6(), 5000, 53, &payload);
        let headers: Vec<&[u8]> = frags.iter().map(|f| &f[14 + 40..14 + 48]).collect();
        for f in &frags {
            assert_eq!(f[14 + 6], 44, "IPv6 next header: Fragment");
        }
        let ident = [0xde, 0xad, 0xbe, 0xef];
        // Offsets 0, 181 and 362 (× 8 = 0, 1448, 2896 bytes); M on all but the last.
        let want: [[u8; 2]; 3] = [[0x00, 0x01], [0x05, 0xa9], [0x0b, 0x50]];
        assert_eq!(headers.len(), want.len());
        for (h, word) in headers.iter().zip(want) {
            assert_eq!(h[..2], [17, 0], "next header UDP, reserved byte zero");
            assert_eq!(h[2..4], word);
            assert_eq!(h[4..8], ident);
        }
        // The offsets agree with where each piece sits in the datagram.
        let mut at = 0;
        for (f, h) in frags.iter().zip(&headers) {
            assert_eq!(usize::from(u16::from_be_bytes([h[2], h[3]]) >> 3) * 8, at);
            at += f.len() - (14 + 48);
        }
        assert_eq!(at, 3008);
    }

    #[test]
    fn arp_and_padding() {
        let arp = pad(arp_request(
            ROUTER_MAC,
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 10),
        ));
        assert_eq!(arp.len(), MIN_FRAME);
        assert_eq!(&arp[12..14], &[0x08, 0x06]);
        assert_eq!(&arp[38..42], &[192, 0, 2, 10]);
        let p = SlicedPacket::from_ethernet(&arp).unwrap();
        let Some(NetSlice::Arp(a)) = p.net else {
            panic!("not ARP: {:?}", p.net)
        };
        assert_eq!(a.operation(), ArpOperation::REQUEST);
        assert_eq!(a.sender_hw_addr(), ROUTER_MAC);
        assert_eq!(a.sender_protocol_addr(), [192, 0, 2, 1]);
        assert_eq!(a.target_protocol_addr(), [192, 0, 2, 10]);
    }

    #[test]
    fn icmp_echo_both_families() {
        for ip in [ip4(), ip6()] {
            let f = icmp_echo(&Link::UPSTREAM, &ip, 1, 2, b"ping");
            let p = SlicedPacket::from_ethernet(&f).unwrap();
            assert!(matches!(
                p.transport,
                Some(TransportSlice::Icmpv4(_)) | Some(TransportSlice::Icmpv6(_))
            ));
        }
    }
}
