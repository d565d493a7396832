//! Malformed frames, one named case per rule of the parse stage, plus fuzz.
//!
//! Each named case starts from a well-formed frame to a VIP (built by etherparse) and breaks
//! exactly one rule, so that [`MalformedCase::expected_drop`] names the one
//! [`DropReason`] `flowgate_core::parse` must give it; a parser that let the frame through
//! would balance it, which a trace diff shows at once. The fuzz cases (random bytes,
//! truncation and bit flips of valid frames) have no single expected reason: they only
//! check that no engine panics or disagrees with the others.
//!
//! Frames are not padded to the Ethernet minimum (padding would hide the truncations), and
//! where a case edits an IPv4 header field that etherparse can represent, the header
//! checksum is recomputed; the IHL and version cases keep the old checksum (flowgate does
//! not verify IPv4 checksums, so it plays no part in the verdict).

use super::frames::{self, Ip, Link, Segment, Vlans};
use super::VipTarget;
use super::{addresses, draw};
use etherparse::{
    ip_number, EtherType, Ethernet2Header, IpNumber, Ipv4Header, Ipv6Header, Ipv6RawExtHeader,
    TcpHeader, UdpHeader,
};
use flowgate_core::DropReason;
use rand::Rng;
use std::net::IpAddr;

/// The IP family a case needs in its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub fn of(addr: IpAddr) -> IpFamily {
        if addr.is_ipv6() {
            IpFamily::V6
        } else {
            IpFamily::V4
        }
    }
}

/// One kind of malformed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MalformedCase {
    /// 0–13 bytes: not even a whole Ethernet header.
    TruncatedEthernet,
    /// A VLAN tag announced (first or second) whose 4 bytes are cut short.
    TruncatedVlan,
    /// 802.1ad + 802.1Q + a third 802.1Q tag.
    ThreeVlanTags,
    /// IPv4 ethertype, 0–19 bytes of IPv4 header.
    TruncatedIpv4,
    /// A whole IP packet whose version nibble is not the ethertype's (4 under 0x0800, 6
    /// under 0x86dd).
    BadIpVersion,
    /// IPv4 IHL 0–4.
    Ipv4IhlBelowFive,
    /// IPv4 IHL 15 (60 bytes) on a 40-byte packet; total length still the bytes present.
    Ipv4IhlPastEnd,
    /// IPv4 total length 1–64 bytes more than the frame holds.
    Ipv4TotalLengthTooBig,
    /// IPv4 total length 0–19: less than the header itself.
    Ipv4TotalLengthTooSmall,
    /// IPv6 ethertype, 0–39 bytes of IPv6 header.
    TruncatedIpv6,
    /// IPv6 payload length 1–64 bytes more than the frame holds.
    Ipv6PayloadLengthTooBig,
    /// Five destination-options headers before TCP (one more than flowgate walks).
    Ipv6ExtensionChainTooDeep,
    /// A hop-by-hop header claiming 32 bytes with only 8 in the payload (payload length
    /// itself consistent with the frame).
    TruncatedIpv6Extension,
    /// Three 32-byte destination-options headers before TCP: every byte is present, but the
    /// TCP header starts past the 128-byte parse window.
    Ipv6HeaderPastWindow,
    /// 0–19 bytes of TCP header (IP lengths consistent).
    TruncatedTcp,
    /// TCP data offset 0–4.
    TcpDataOffsetBelowFive,
    /// TCP data offset 15 (60 bytes) in a 20-byte segment.
    TcpDataOffsetPastEnd,
    /// 0–7 bytes of UDP header.
    TruncatedUdp,
    /// UDP length 1–7 (0 is left out: it means "jumbogram" to some parsers).
    UdpLengthTooSmall,
    /// UDP length 1–64 bytes more than the IP payload.
    UdpLengthTooBig,
    /// ICMP (or ICMPv6) message of 0–3 bytes.
    TruncatedIcmp,
    /// 0–96 random bytes.
    RandomBytes,
    /// A valid frame to the VIP cut at a random length.
    TruncatedValid,
    /// A valid frame to the VIP with 1–4 random bits flipped in its first 64 bytes.
    BitFlips,
}

impl MalformedCase {
    /// Every case, in declaration order.
    pub const ALL: [MalformedCase; 24] = [
        MalformedCase::TruncatedEthernet,
        MalformedCase::TruncatedVlan,
        MalformedCase::ThreeVlanTags,
        MalformedCase::TruncatedIpv4,
        MalformedCase::BadIpVersion,
        MalformedCase::Ipv4IhlBelowFive,
        MalformedCase::Ipv4IhlPastEnd,
        MalformedCase::Ipv4TotalLengthTooBig,
        MalformedCase::Ipv4TotalLengthTooSmall,
        MalformedCase::TruncatedIpv6,
        MalformedCase::Ipv6PayloadLengthTooBig,
        MalformedCase::Ipv6ExtensionChainTooDeep,
        MalformedCase::TruncatedIpv6Extension,
        MalformedCase::Ipv6HeaderPastWindow,
        MalformedCase::TruncatedTcp,
        MalformedCase::TcpDataOffsetBelowFive,
        MalformedCase::TcpDataOffsetPastEnd,
        MalformedCase::TruncatedUdp,
        MalformedCase::UdpLengthTooSmall,
        MalformedCase::UdpLengthTooBig,
        MalformedCase::TruncatedIcmp,
        MalformedCase::RandomBytes,
        MalformedCase::TruncatedValid,
        MalformedCase::BitFlips,
    ];

    /// The drop reason the contract gives this case, or `None` for the fuzz cases (whose
    /// verdict depends on the bytes drawn).
    ///
    /// [`MalformedCase::Ipv4IhlPastEnd`] necessarily also has a total length smaller than
    /// the header it announces; the contract checks the header length against the frame
    /// first, so the reason is [`DropReason::BadIpv4Ihl`].
    pub fn expected_drop(self) -> Option<DropReason> {
        use MalformedCase as C;
        Some(match self {
            C::TruncatedEthernet => DropReason::TruncatedEthernet,
            C::TruncatedVlan => DropReason::TruncatedVlan,
            C::ThreeVlanTags => DropReason::TooManyVlans,
            C::TruncatedIpv4 => DropReason::TruncatedIpv4,
            C::BadIpVersion => DropReason::BadIpVersion,
            C::Ipv4IhlBelowFive | C::Ipv4IhlPastEnd => DropReason::BadIpv4Ihl,
            C::Ipv4TotalLengthTooBig | C::Ipv4TotalLengthTooSmall => DropReason::BadIpv4TotalLength,
            C::TruncatedIpv6 => DropReason::TruncatedIpv6,
            C::Ipv6PayloadLengthTooBig => DropReason::BadIpv6PayloadLength,
            C::Ipv6ExtensionChainTooDeep => DropReason::Ipv6ExtensionChainTooDeep,
            C::TruncatedIpv6Extension => DropReason::TruncatedIpv6Extension,
            C::Ipv6HeaderPastWindow => DropReason::HeaderTooLong,
            C::TruncatedTcp => DropReason::TruncatedTcp,
            C::TcpDataOffsetBelowFive | C::TcpDataOffsetPastEnd => DropReason::BadTcpDataOffset,
            C::TruncatedUdp => DropReason::TruncatedUdp,
            C::UdpLengthTooSmall | C::UdpLengthTooBig => DropReason::BadUdpLength,
            C::TruncatedIcmp => DropReason::TruncatedIcmp,
            C::RandomBytes | C::TruncatedValid | C::BitFlips => return None,
        })
    }

    /// The IP family the case is about, or `None` when it takes the VIP's family.
    pub fn family(self) -> Option<IpFamily> {
        use MalformedCase as C;
        match self {
            C::TruncatedIpv4
            | C::Ipv4IhlBelowFive
            | C::Ipv4IhlPastEnd
            | C::Ipv4TotalLengthTooBig
            | C::Ipv4TotalLengthTooSmall => Some(IpFamily::V4),
            C::TruncatedIpv6
            | C::Ipv6PayloadLengthTooBig
            | C::Ipv6ExtensionChainTooDeep
            | C::TruncatedIpv6Extension
            | C::Ipv6HeaderPastWindow => Some(IpFamily::V6),
            _ => None,
        }
    }

    /// Stable snake_case name (for reports and fixture file names).
    pub fn name(self) -> &'static str {
        use MalformedCase as C;
        match self {
            C::TruncatedEthernet => "truncated_ethernet",
            C::TruncatedVlan => "truncated_vlan",
            C::ThreeVlanTags => "three_vlan_tags",
            C::TruncatedIpv4 => "truncated_ipv4",
            C::BadIpVersion => "bad_ip_version",
            C::Ipv4IhlBelowFive => "ipv4_ihl_below_five",
            C::Ipv4IhlPastEnd => "ipv4_ihl_past_end",
            C::Ipv4TotalLengthTooBig => "ipv4_total_length_too_big",
            C::Ipv4TotalLengthTooSmall => "ipv4_total_length_too_small",
            C::TruncatedIpv6 => "truncated_ipv6",
            C::Ipv6PayloadLengthTooBig => "ipv6_payload_length_too_big",
            C::Ipv6ExtensionChainTooDeep => "ipv6_extension_chain_too_deep",
            C::TruncatedIpv6Extension => "truncated_ipv6_extension",
            C::Ipv6HeaderPastWindow => "ipv6_header_past_window",
            C::TruncatedTcp => "truncated_tcp",
            C::TcpDataOffsetBelowFive => "tcp_data_offset_below_five",
            C::TcpDataOffsetPastEnd => "tcp_data_offset_past_end",
            C::TruncatedUdp => "truncated_udp",
            C::UdpLengthTooSmall => "udp_length_too_small",
            C::UdpLengthTooBig => "udp_length_too_big",
            C::TruncatedIcmp => "truncated_icmp",
            C::RandomBytes => "random_bytes",
            C::TruncatedValid => "truncated_valid",
            C::BitFlips => "bit_flips",
        }
    }
}

/// A malformed frame and the case it was built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedFrame {
    pub case: MalformedCase,
    pub data: Vec<u8>,
}

/// One frame of every [`MalformedCase`], aimed at `vip`. Cases of the other IP family than
/// the VIP's cannot carry its address; they are aimed at
/// [`addresses::OTHER_FAMILY_V4`] / [`addresses::OTHER_FAMILY_V6`] instead.
pub fn malformed_frames<R: Rng + ?Sized>(rng: &mut R, vip: &VipTarget) -> Vec<MalformedFrame> {
    MalformedCase::ALL
        .iter()
        .map(|&case| MalformedFrame {
            case,
            data: malformed_frame(rng, case, vip),
        })
        .collect()
}

/// One frame of `case`, aimed at `vip` (see [`malformed_frames`] for the other family).
pub fn malformed_frame<R: Rng + ?Sized>(
    rng: &mut R,
    case: MalformedCase,
    vip: &VipTarget,
) -> Vec<u8> {
    use MalformedCase as C;
    let dst = match case.family() {
        Some(family) if family != IpFamily::of(vip.address) => match family {
            IpFamily::V4 => IpAddr::V4(addresses::OTHER_FAMILY_V4),
            IpFamily::V6 => IpAddr::V6(addresses::OTHER_FAMILY_V6),
        },
        _ => vip.address,
    };
    let ip = Ip {
        src: addresses::random_client(rng, IpFamily::of(dst)),
        dst,
        ttl: rng.gen_range(32..=128),
        ident: rng.gen(),
        flow_label: rng.gen(),
    };
    let l3 = Ethernet2Header::LEN;
    let l4 = l3 + ip.header_len();
    let src_port = rng.gen_range(addresses::EPHEMERAL_PORTS);
    let dst_port = vip.service_port();
    let seg = Segment {
        src_port,
        dst_port,
        seq: rng.gen(),
        syn: true,
        window: 64240,
        ..Default::default()
    };
    let syn = |link: &Link| frames::tcp(link, &ip, &seg, &[]);
    let udp = |rng: &mut R| {
        let len = draw::len_in(rng, 8, 64);
        frames::udp(
            &Link::UPSTREAM,
            &ip,
            src_port,
            dst_port,
            &draw::bytes(rng, len),
        )
    };
    let tcp_bytes = || {
        let mut h = TcpHeader::new(src_port, dst_port, seg.seq, seg.window);
        h.syn = true;
        h.to_bytes().to_vec()
    };

    match case {
        C::TruncatedEthernet => {
            let mut f = syn(&Link::UPSTREAM);
            f.truncate(draw::below(rng, Ethernet2Header::LEN));
            f
        }
        C::TruncatedVlan => {
            let (vlans, tags_before) = if rng.gen() {
                (Vlans::One(rng.gen_range(1..4095)), 0)
            } else {
                (
                    Vlans::Two(rng.gen_range(1..4095), rng.gen_range(1..4095)),
                    1,
                )
            };
            let mut f = syn(&Link::tagged(vlans));
            f.truncate(l3 + 4 * tags_before + draw::below(rng, 4));
            f
        }
        C::ThreeVlanTags => {
            // 88a8 outer | 8100 inner | here: 8100 third, then the IP ethertype.
            let mut f = syn(&Link::tagged(Vlans::Two(
                rng.gen_range(1..4095),
                rng.gen_range(1..4095),
            )));
            let third: u16 = rng.gen_range(1..4095);
            let at = l3 + 2 * 4 - 2; // the inner tag's ethertype field
            let [hi, lo] = third.to_be_bytes();
            f.splice(at..at, [0x81, 0x00, hi, lo]);
            f
        }
        C::TruncatedIpv4 | C::TruncatedIpv6 => {
            let mut f = syn(&Link::UPSTREAM);
            f.truncate(l3 + draw::below(rng, ip.header_len()));
            f
        }
        C::BadIpVersion => {
            let mut f = syn(&Link::UPSTREAM);
            let right = if ip.is_ipv6() { 6 } else { 4 };
            let version = loop {
                let v: u8 = rng.gen_range(0..16);
                if v != right {
                    break v;
                }
            };
            f[l3] = (version << 4) | (f[l3] & 0x0f);
            f
        }
        C::Ipv4IhlBelowFive => {
            let mut f = syn(&Link::UPSTREAM);
            f[l3] = 0x40 | rng.gen_range(0..5);
            f
        }
        C::Ipv4IhlPastEnd => {
            let mut f = syn(&Link::UPSTREAM); // 20 + 20 bytes of IP
            f[l3] = 0x4f;
            f
        }
        C::Ipv4TotalLengthTooBig | C::Ipv4TotalLengthTooSmall => {
            let mut f = syn(&Link::UPSTREAM);
            let present = (f.len() - l3) as u16;
            let total = if case == C::Ipv4TotalLengthTooBig {
                present + rng.gen_range(1..=64)
            } else {
                rng.gen_range(0..Ipv4Header::MIN_LEN as u16)
            };
            rewrite_ipv4_header(&mut f, l3, |h| h.total_len = total);
            f
        }
        C::Ipv6PayloadLengthTooBig => {
            let mut f = syn(&Link::UPSTREAM);
            let present = (f.len() - l4) as u16;
            let claimed = present + rng.gen_range(1..=64);
            f[l3 + 4..l3 + 6].copy_from_slice(&claimed.to_be_bytes());
            f
        }
        C::Ipv6ExtensionChainTooDeep => {
            ipv6_with_extensions(&ip, ip_number::IPV6_DEST_OPTIONS, 5, 8, &tcp_bytes(), None)
        }
        C::Ipv6HeaderPastWindow => {
            ipv6_with_extensions(&ip, ip_number::IPV6_DEST_OPTIONS, 3, 32, &tcp_bytes(), None)
        }
        C::TruncatedIpv6Extension => ipv6_with_extensions(
            &ip,
            ip_number::IPV6_HEADER_HOP_BY_HOP,
            1,
            32,
            &tcp_bytes(),
            Some(8),
        ),
        C::TruncatedTcp => {
            let tcp = tcp_bytes();
            let cut = draw::below(rng, TcpHeader::MIN_LEN);
            frames::ip_with_payload(&Link::UPSTREAM, &ip, ip_number::TCP, &tcp[..cut])
        }
        C::TcpDataOffsetBelowFive | C::TcpDataOffsetPastEnd => {
            let mut f = syn(&Link::UPSTREAM);
            let offset = if case == C::TcpDataOffsetBelowFive {
                rng.gen_range(0..5)
            } else {
                15
            };
            f[l4 + 12] = (offset << 4) | (f[l4 + 12] & 0x0f);
            f
        }
        C::TruncatedUdp => {
            let udp = UdpHeader {
                source_port: src_port,
                destination_port: dst_port,
                length: UdpHeader::LEN as u16,
                checksum: 0,
            }
            .to_bytes();
            let cut = draw::below(rng, UdpHeader::LEN);
            frames::ip_with_payload(&Link::UPSTREAM, &ip, ip_number::UDP, &udp[..cut])
        }
        C::UdpLengthTooSmall | C::UdpLengthTooBig => {
            let mut f = udp(rng);
            let present = (f.len() - l4) as u16;
            let length = if case == C::UdpLengthTooSmall {
                rng.gen_range(1..UdpHeader::LEN as u16)
            } else {
                present + rng.gen_range(1..=64)
            };
            f[l4 + 4..l4 + 6].copy_from_slice(&length.to_be_bytes());
            f
        }
        C::TruncatedIcmp => {
            let protocol = if ip.is_ipv6() {
                ip_number::IPV6_ICMP
            } else {
                ip_number::ICMP
            };
            let len = draw::below(rng, 4);
            frames::ip_with_payload(&Link::UPSTREAM, &ip, protocol, &draw::bytes(rng, len))
        }
        C::RandomBytes => {
            let len = draw::below(rng, 97);
            draw::bytes(rng, len)
        }
        C::TruncatedValid | C::BitFlips => {
            let mut f = if vip.protocol == 17 {
                udp(rng)
            } else {
                let opts = frames::syn_options(1400);
                let seg = Segment {
                    options: &opts,
                    ..seg
                };
                frames::tcp(&Link::UPSTREAM, &ip, &seg, &[])
            };
            if case == C::TruncatedValid {
                f.truncate(draw::below(rng, f.len()));
            } else {
                let span = f.len().min(64) as u32;
                for _ in 0..rng.gen_range(1..=4) {
                    let bit = rng.gen_range(0..span * 8);
                    f[(bit / 8) as usize] ^= 1 << (bit % 8);
                }
            }
            f
        }
    }
}

/// Parse the IPv4 header at `l3` with etherparse, edit it, and write it back with a fresh
/// header checksum.
fn rewrite_ipv4_header(frame: &mut [u8], l3: usize, edit: impl FnOnce(&mut Ipv4Header)) {
    let Ok((mut header, _)) = Ipv4Header::from_slice(&frame[l3..]) else {
        return;
    };
    edit(&mut header);
    header.header_checksum = header.calc_header_checksum();
    let bytes = header.to_bytes();
    frame[l3..l3 + bytes.len()].copy_from_slice(&bytes);
}

/// Ethernet + IPv6 + `count` extension headers of type `first` (each 8 bytes: a PadN
/// option) + `upper` as TCP. `cut_payload_to` truncates the IPv6 payload to that many bytes
/// and sets the payload length to match (a truncated extension header, not a bad length).
fn ipv6_with_extensions(
    ip: &Ip,
    first: IpNumber,
    count: usize,
    ext_len: usize,
    upper: &[u8],
    cut_payload_to: Option<usize>,
) -> Vec<u8> {
    let (IpAddr::V6(src), IpAddr::V6(dst)) = (ip.src, ip.dst) else {
        return Vec::new();
    };
    let mut payload = Vec::new();
    for i in 0..count {
        let next = if i + 1 == count {
            ip_number::TCP
        } else {
            first
        };
        // Each header is `ext_len` bytes: 2 of next header and length, then one PadN
        // option (type 1) filling the rest.
        let pad = ext_len - 2;
        let mut options = vec![0u8; pad];
        options[0] = 1;
        options[1] = (pad - 2) as u8;
        if let Ok(ext) = Ipv6RawExtHeader::new_raw(next, &options) {
            payload.extend_from_slice(&ext.to_bytes());
        }
    }
    payload.extend_from_slice(upper);
    if let Some(len) = cut_payload_to {
        payload.truncate(len);
    }
    let header = Ipv6Header {
        payload_length: payload.len() as u16,
        next_header: first,
        hop_limit: ip.ttl,
        source: src.octets(),
        destination: dst.octets(),
        ..Default::default()
    };
    let eth = Ethernet2Header {
        source: Link::UPSTREAM.src_mac,
        destination: Link::UPSTREAM.dst_mac,
        ether_type: EtherType::IPV6,
    };
    let mut out = eth.to_bytes().to_vec();
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{SlicedPacket, TransportSlice};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::BTreeSet;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn vips() -> [VipTarget; 2] {
        [
            VipTarget::tcp(Ipv4Addr::new(192, 0, 2, 10).into(), 443),
            VipTarget::udp("2001:db8::53".parse::<Ipv6Addr>().unwrap().into(), 53),
        ]
    }

    /// How etherparse, an independent parser, sees a frame of each named case: it must
    /// reject it, except for the two cases whose limits are flowgate's and not the
    /// standards': it walks all three VLAN tags, and all five extension headers.
    #[test]
    fn etherparse_rejects_every_named_case_but_flowgates_own_limits() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for round in 0..50 {
            for vip in &vips() {
                for m in malformed_frames(&mut rng, vip) {
                    let parsed = SlicedPacket::from_ethernet(&m.data);
                    let ctx = format!("round {round} {:?} {:02x?}", m.case, m.data);
                    match m.case {
                        MalformedCase::ThreeVlanTags => {
                            // etherparse 0.21 takes up to three link extensions, so it
                            // reaches the IP header; only flowgate's limit of two drops it.
                            let p = parsed.expect(&ctx);
                            let tags = p
                                .link_exts
                                .iter()
                                .filter(|e| matches!(e, etherparse::LinkExtSlice::Vlan(_)));
                            assert_eq!(tags.count(), 3, "{ctx}");
                            assert!(p.net.as_ref().is_some_and(|n| n.is_ip()), "{ctx}");
                        }
                        MalformedCase::Ipv6ExtensionChainTooDeep => {
                            // Standard IPv6 sets no depth limit, so etherparse walks all
                            // five headers to the TCP SYN; only flowgate's limit drops it.
                            let p = parsed.expect(&ctx);
                            let Some(etherparse::NetSlice::Ipv6(v6)) = &p.net else {
                                panic!("{ctx}")
                            };
                            assert_eq!(v6.extensions().clone().into_iter().count(), 5);
                            assert!(matches!(p.transport, Some(TransportSlice::Tcp(_))), "{ctx}");
                        }
                        MalformedCase::Ipv6HeaderPastWindow => {
                            // A valid IPv6 TCP SYN: only flowgate's parse window drops it.
                            let p = parsed.expect(&ctx);
                            assert!(matches!(p.transport, Some(TransportSlice::Tcp(_))), "{ctx}");
                        }
                        MalformedCase::RandomBytes | MalformedCase::BitFlips => {}
                        _ => assert!(parsed.is_err(), "{ctx}: {parsed:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn every_case_is_built_and_aimed_at_the_vip_when_the_family_allows() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for vip in &vips() {
            let frames = malformed_frames(&mut rng, vip);
            let cases: BTreeSet<_> = frames.iter().map(|m| m.case).collect();
            assert_eq!(cases.len(), MalformedCase::ALL.len());
            for m in &frames {
                let same_family = m
                    .case
                    .family()
                    .is_none_or(|f| f == IpFamily::of(vip.address));
                let dst_at = match vip.address {
                    IpAddr::V4(a) if same_family => Some((14 + 16, a.octets().to_vec())),
                    IpAddr::V6(a) if same_family => Some((14 + 24, a.octets().to_vec())),
                    _ => None,
                };
                let long_enough = |(at, addr): &(usize, Vec<u8>)| m.data.len() >= at + addr.len();
                if let Some((at, addr)) = dst_at.filter(long_enough) {
                    if !matches!(
                        m.case,
                        MalformedCase::RandomBytes
                            | MalformedCase::BitFlips
                            | MalformedCase::ThreeVlanTags
                            | MalformedCase::TruncatedVlan
                    ) {
                        assert_eq!(&m.data[at..at + addr.len()], &addr[..], "{:?}", m.case);
                    }
                }
            }
        }
    }

    #[test]
    fn named_cases_differ_from_a_valid_frame_in_the_intended_field_only() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let v4 = &vips()[0];
        let three = malformed_frame(&mut rng, MalformedCase::ThreeVlanTags, v4);
        assert_eq!(&three[12..14], &[0x88, 0xa8]);
        assert_eq!(&three[16..18], &[0x81, 0x00]);
        assert_eq!(&three[20..22], &[0x81, 0x00]);
        assert_eq!(&three[24..26], &[0x08, 0x00]);
        assert_eq!(three[26] >> 4, 4);

        let deep = malformed_frame(
            &mut rng,
            MalformedCase::Ipv6ExtensionChainTooDeep,
            &vips()[1],
        );
        assert_eq!(deep[14 + 6], 60, "first next header: destination options");
        let mut next = 14 + 40;
        for _ in 0..4 {
            assert_eq!(deep[next], 60);
            next += 8;
        }
        assert_eq!(deep[next], 6, "the fifth names TCP");
        let tcp = &deep[next + 8..];
        assert_eq!(tcp.len(), 20);

        let big = malformed_frame(&mut rng, MalformedCase::Ipv4TotalLengthTooBig, v4);
        let (h, _) = Ipv4Header::from_slice(&big[14..]).unwrap();
        assert!(usize::from(h.total_len) > big.len() - 14);
        assert_eq!(h.header_checksum, h.calc_header_checksum());

        let udp_big = malformed_frame(&mut rng, MalformedCase::UdpLengthTooBig, v4);
        let p = SlicedPacket::from_ethernet(&udp_big[..udp_big.len()]);
        assert!(p.is_err());
        let good_udp_len = udp_big.len() - 34;
        assert!(usize::from(u16::from_be_bytes([udp_big[38], udp_big[39]])) > good_udp_len);
    }

    #[test]
    fn fuzz_cases_are_reproducible() {
        let a = malformed_frames(&mut ChaCha8Rng::seed_from_u64(5), &vips()[0]);
        let b = malformed_frames(&mut ChaCha8Rng::seed_from_u64(5), &vips()[0]);
        assert_eq!(a, b);
        let syn_like = a
            .iter()
            .find(|m| m.case == MalformedCase::TruncatedValid)
            .unwrap();
        assert!(!matches!(
            SlicedPacket::from_ethernet(&syn_like.data)
                .ok()
                .and_then(|p| p.transport),
            Some(TransportSlice::Tcp(_))
        ));
    }
}
