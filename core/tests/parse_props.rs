//! Property tests for `flowgate_core::parse`: it never panics, its output is always
//! internally consistent, and on valid frames it agrees with an independent parser.
//!
//! The independent parser and the frame builder are etherparse 0.21 (`SlicedPacket::
//! from_ethernet`, `PacketBuilder`); the places where the contract deliberately differs from
//! it are listed at `expected_from_etherparse`. A major etherparse upgrade must re-check
//! those notes: its behaviour on fragments and extension headers has changed between
//! releases before. Before 0.20 it even wrote and read the IPv6 fragment header's offset/M
//! word with the wrong bit layout (JulianSchmid/etherparse#150), symmetrically, so a
//! round trip through etherparse alone could not catch it; that is why the RFC 8200 layout
//! is pinned on raw bytes by `ipv6_fragment_word_is_read_as_rfc_8200_lays_it_out` in
//! `core/src/parse.rs`, independently of etherparse.

use etherparse::{
    IpFragOffset, IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header, Ipv6ExtensionSlice,
    Ipv6Extensions, Ipv6FragmentHeader, Ipv6Header, Ipv6RawExtHeader, Ipv6RoutingExtensions,
    LinkExtSlice, NetSlice, PacketBuilder, SlicedPacket, TcpHeader, TcpHeaderSlice, TransportSlice,
    UdpHeaderSlice, VlanId,
};
use flowgate_core::parse::{
    parse, Parsed, ParsedFrame, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_QINQ_OLD,
    ETHERTYPE_VLAN, IPPROTO_TCP, IPPROTO_UDP, MAX_IPV6_EXTENSIONS, PARSE_WINDOW,
};
use flowgate_core::DropReason;
use proptest::prelude::*;
use proptest::sample::Index;
use std::net::IpAddr;

// ---------------------------------------------------------------------------------------
// Valid frames, described by a spec and built by etherparse.

#[derive(Debug, Clone)]
enum IpSpec {
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
        dscp: u8,
        ecn: u8,
        options: Vec<u8>,
        /// (more fragments, fragment offset in 8-byte units)
        frag: Option<(bool, u16)>,
    },
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
        traffic_class: u8,
        flow_label: u32,
        hop_by_hop: Option<Vec<u8>>,
        dest_opts: Option<Vec<u8>>,
        routing: Option<(Vec<u8>, Option<Vec<u8>>)>,
        /// (fragment offset in 8-byte units, more fragments)
        frag: Option<(u16, bool)>,
    },
}

#[derive(Debug, Clone)]
enum L4Spec {
    Tcp(TcpHeader),
    Udp {
        src: u16,
        dst: u16,
    },
    /// Echo request: ICMP over IPv4, ICMPv6 over IPv6.
    Icmp {
        id: u16,
        seq: u16,
    },
}

#[derive(Debug, Clone)]
struct FrameSpec {
    vlans: Vec<u16>,
    ip: IpSpec,
    l4: L4Spec,
    payload: Vec<u8>,
    /// Ethernet padding after the IP datagram.
    padding: Vec<u8>,
}

/// Body of a hop-by-hop / routing / destination options header: 6 + 8k bytes.
fn ext_body() -> impl Strategy<Value = Vec<u8>> {
    (0usize..3).prop_flat_map(|k| prop::collection::vec(any::<u8>(), 6 + 8 * k))
}

fn ip_spec() -> impl Strategy<Value = IpSpec> {
    let v4 = (
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        0u8..64,
        0u8..4,
        (0usize..=10).prop_flat_map(|words| prop::collection::vec(any::<u8>(), words * 4)),
        prop_oneof![
            3 => Just(None),
            1 => (any::<bool>(), 0u16..0x2000).prop_map(Some),
            1 => Just(Some((true, 0))),
        ],
    )
        .prop_map(|(src, dst, dscp, ecn, options, frag)| IpSpec::V4 {
            src,
            dst,
            dscp,
            ecn,
            options,
            frag,
        });
    let v6 = (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<u8>(),
        0u32..(1 << 20),
        prop::option::of(ext_body()),
        prop::option::of(ext_body()),
        prop::option::of((ext_body(), prop::option::of(ext_body()))),
        prop::option::weighted(
            0.4,
            prop_oneof![(0u16..0x2000, any::<bool>()), (Just(0u16), any::<bool>())],
        ),
    )
        .prop_map(
            |(src, dst, traffic_class, flow_label, hop_by_hop, dest_opts, routing, frag)| {
                IpSpec::V6 {
                    src,
                    dst,
                    traffic_class,
                    flow_label,
                    hop_by_hop,
                    dest_opts,
                    routing,
                    frag,
                }
            },
        );
    prop_oneof![v4, v6]
}

fn l4_spec() -> impl Strategy<Value = L4Spec> {
    let tcp = (
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        any::<u16>(),
        any::<u8>(),
        (0usize..=10).prop_flat_map(|words| prop::collection::vec(any::<u8>(), words * 4)),
    )
        .prop_map(|(src, dst, seq, window, flags, options)| {
            let mut h = TcpHeader::new(src, dst, seq, window);
            h.fin = flags & 0x01 != 0;
            h.syn = flags & 0x02 != 0;
            h.rst = flags & 0x04 != 0;
            h.psh = flags & 0x08 != 0;
            h.ack = flags & 0x10 != 0;
            h.urg = flags & 0x20 != 0;
            h.ece = flags & 0x40 != 0;
            h.cwr = flags & 0x80 != 0;
            h.set_options_raw(&options)
                .expect("options are whole words, <= 40 bytes");
            L4Spec::Tcp(h)
        });
    prop_oneof![
        tcp,
        (any::<u16>(), any::<u16>()).prop_map(|(src, dst)| L4Spec::Udp { src, dst }),
        (any::<u16>(), any::<u16>()).prop_map(|(id, seq)| L4Spec::Icmp { id, seq }),
    ]
}

fn frame_spec() -> impl Strategy<Value = FrameSpec> {
    (
        prop::collection::vec(0u16..0x1000, 0..=2),
        ip_spec(),
        l4_spec(),
        prop::collection::vec(any::<u8>(), 0..300),
        prop_oneof![
            3 => Just(Vec::new()),
            1 => prop::collection::vec(any::<u8>(), 1..40),
        ],
    )
        .prop_map(|(vlans, ip, l4, payload, padding)| FrameSpec {
            vlans,
            ip,
            l4,
            payload,
            padding,
        })
}

fn raw_ext(body: &[u8]) -> Ipv6RawExtHeader {
    // The next header is set by the builder.
    Ipv6RawExtHeader::new_raw(IpNumber::UDP, body).expect("6 + 8k bytes")
}

fn ip_headers(ip: &IpSpec) -> IpHeaders {
    match ip {
        IpSpec::V4 {
            src,
            dst,
            dscp,
            ecn,
            options,
            frag,
        } => {
            // Payload length and protocol are set by the builder.
            let mut h = Ipv4Header::new(0, 64, IpNumber::UDP, *src, *dst).unwrap();
            h.dscp = (*dscp).try_into().unwrap();
            h.ecn = (*ecn).try_into().unwrap();
            h.options = options.as_slice().try_into().unwrap();
            if let Some((more, offset)) = frag {
                h.more_fragments = *more;
                h.fragment_offset = IpFragOffset::try_new(*offset).unwrap();
            }
            IpHeaders::Ipv4(h, Ipv4Extensions::default())
        }
        IpSpec::V6 {
            src,
            dst,
            traffic_class,
            flow_label,
            hop_by_hop,
            dest_opts,
            routing,
            frag,
        } => {
            let h = Ipv6Header {
                traffic_class: *traffic_class,
                flow_label: (*flow_label).try_into().unwrap(),
                hop_limit: 64,
                source: *src,
                destination: *dst,
                ..Default::default()
            };
            let exts = Ipv6Extensions {
                hop_by_hop_options: hop_by_hop.as_deref().map(raw_ext),
                destination_options: dest_opts.as_deref().map(raw_ext),
                routing: routing.as_ref().map(|(r, fin)| Ipv6RoutingExtensions {
                    routing: raw_ext(r),
                    final_destination_options: fin.as_deref().map(raw_ext),
                }),
                fragment: frag.map(|(offset, more)| {
                    let offset = IpFragOffset::try_new(offset).unwrap();
                    Ipv6FragmentHeader::new(IpNumber::UDP, offset, more, 0x1234_5678)
                }),
                auth: None,
            };
            IpHeaders::Ipv6(h, exts)
        }
    }
}

fn build(spec: &FrameSpec) -> Vec<u8> {
    let ip = ip_headers(&spec.ip);
    let is_v6 = matches!(ip, IpHeaders::Ipv6(..));
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let vlan = |id: u16| VlanId::try_new(id).unwrap();
    let step = match spec.vlans[..] {
        [] => eth.ip(ip),
        [a] => eth.single_vlan(vlan(a)).ip(ip),
        [a, b, ..] => eth.double_vlan(vlan(a), vlan(b)).ip(ip),
    };
    let mut frame = Vec::new();
    let payload = &spec.payload;
    match &spec.l4 {
        L4Spec::Tcp(h) => step.tcp_header(h.clone()).write(&mut frame, payload),
        L4Spec::Udp { src, dst } => step.udp(*src, *dst).write(&mut frame, payload),
        L4Spec::Icmp { id, seq } if is_v6 => step
            .icmpv6_echo_request(*id, *seq)
            .write(&mut frame, payload),
        L4Spec::Icmp { id, seq } => step
            .icmpv4_echo_request(*id, *seq)
            .write(&mut frame, payload),
    }
    .expect("etherparse builds every spec");
    frame.extend_from_slice(&spec.padding);
    frame
}

// ---------------------------------------------------------------------------------------
// What must hold for every Ok result, whatever the input.

fn check_consistent(frame: &[u8], result: Result<Parsed, DropReason>) -> Result<(), TestCaseError> {
    let Ok(Parsed::Ip(p)) = result else {
        return Ok(());
    };
    let l3 = usize::from(p.l3_offset);
    let l4 = usize::from(p.l4_offset);
    let end = l3 + usize::from(p.ip_len);
    prop_assert!(p.vlan_count as usize <= 2);
    prop_assert_eq!(l3, 14 + 4 * usize::from(p.vlan_count));
    prop_assert!(end <= frame.len(), "datagram past the frame: {:?}", p);
    let min_header = if p.is_ipv6() { 40 } else { 20 };
    prop_assert!(l3 + min_header <= l4 && l4 <= end, "{:?}", p);
    prop_assert_eq!(p.src.is_ipv6(), p.dst.is_ipv6());
    if p.protocol != IPPROTO_TCP {
        prop_assert_eq!(p.tcp_flags, 0);
    }
    if p.protocol != IPPROTO_TCP && p.protocol != IPPROTO_UDP {
        prop_assert_eq!((p.src_port, p.dst_port), (0, 0));
    }
    // Ethernet padding is ignored: the frame cut right after the datagram parses the same.
    prop_assert_eq!(parse(&frame[..end]), result);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The oracle.

fn offset_in(frame: &[u8], part: &[u8]) -> u16 {
    (part.as_ptr() as usize - frame.as_ptr() as usize) as u16
}

/// What the contract says about a valid frame, read off etherparse's slicing of it.
///
/// Where the contract and etherparse 0.21 legitimately differ:
/// * IPv6 fragments: etherparse calls a datagram fragmented only if a fragment header has
///   offset ≠ 0 or M set; the contract counts any fragment header, including an atomic
///   fragment (RFC 6946), as a fragment (so it is hashed on L3 only, like its siblings).
/// * IPv6 non-first fragments: etherparse keeps walking extension headers after the fragment
///   header; the contract stops there, since what follows is fragment data.
/// * First fragments (offset 0, MF/M set): etherparse does not slice the transport header;
///   the contract reads ports from it. The oracle then reads it with etherparse's header
///   slices.
/// * More than `MAX_IPV6_EXTENSIONS` extension headers: etherparse accepts any number (the
///   builder can write five); the contract drops with `Ipv6ExtensionChainTooDeep`.
/// * Not produced by this generator, documented for completeness: etherparse walks through
///   AH (the contract stops, protocol 51), rejects hop-by-hop after the first position (the
///   contract accepts it), treats IPv6 payload length 0 as "rest of the frame" (the
///   contract: 0 bytes), and needs 8 bytes for ICMP (the contract: 4).
fn expected_from_etherparse(frame: &[u8]) -> Result<Result<Parsed, DropReason>, TestCaseError> {
    let sliced = SlicedPacket::from_ethernet(frame)
        .map_err(|e| TestCaseError::fail(format!("etherparse rejects a built frame: {e}")))?;
    let vlan_count = sliced
        .link_exts
        .iter()
        .filter(|ext| matches!(ext, LinkExtSlice::Vlan(_)))
        .count() as u8;
    let net = sliced
        .net
        .as_ref()
        .ok_or_else(|| TestCaseError::fail("etherparse found no IP header"))?;
    let (l3_offset, src, dst, ip_len, dscp_ecn, payload) = match net {
        NetSlice::Ipv4(ip) => {
            let h = ip.header();
            (
                offset_in(frame, h.slice()),
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                h.total_len(),
                h.dcp().value() << 2 | h.ecn().value(),
                ip.payload().clone(),
            )
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header();
            (
                offset_in(frame, h.slice()),
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                40 + h.payload_length(),
                h.traffic_class(),
                ip.payload().clone(),
            )
        }
        NetSlice::Arp(_) => return Err(TestCaseError::fail("etherparse found ARP, not IP")),
    };
    let mut protocol = payload.ip_number.0;
    let mut l4_offset = offset_in(frame, payload.payload);
    let mut fragment = payload.fragmented;
    // The upper-layer bytes in this datagram, when the contract reads ports from them.
    let mut upper = Some(payload.payload);
    match net {
        NetSlice::Ipv4(ip) => {
            if ip.header().fragments_offset().value() != 0 {
                upper = None;
            }
        }
        NetSlice::Arp(_) => {}
        NetSlice::Ipv6(ip) => {
            fragment = false;
            // The contract walks extension headers up to a later fragment's header, and
            // counts only those it walks.
            for (walked, ext) in ip.extensions().clone().into_iter().enumerate() {
                if walked == MAX_IPV6_EXTENSIONS {
                    return Ok(Err(DropReason::Ipv6ExtensionChainTooDeep));
                }
                // The parse window: the part read to walk on (2 bytes, a fragment's 8).
                let (start, read) = match &ext {
                    Ipv6ExtensionSlice::HopByHop(e)
                    | Ipv6ExtensionSlice::Routing(e)
                    | Ipv6ExtensionSlice::DestinationOptions(e) => {
                        (usize::from(offset_in(frame, e.slice())), 2)
                    }
                    Ipv6ExtensionSlice::Fragment(f) => {
                        (usize::from(offset_in(frame, f.slice())), 8)
                    }
                    Ipv6ExtensionSlice::Authentication(a) => {
                        (usize::from(offset_in(frame, a.slice())), 2)
                    }
                };
                if start + read > PARSE_WINDOW {
                    return Ok(Err(DropReason::HeaderTooLong));
                }
                if let Ipv6ExtensionSlice::Fragment(f) = ext {
                    fragment = true;
                    if f.fragment_offset().value() != 0 {
                        protocol = f.next_header().0;
                        l4_offset = offset_in(frame, f.slice()) + 8;
                        upper = None;
                        break;
                    }
                }
            }
        }
    }
    // etherparse slices the transport header only when the datagram is not fragmented in
    // its view (an atomic IPv6 fragment is not), so its transport slice is used only where
    // the contract reads ports, and a first fragment's header is read with etherparse's
    // header slices.
    let fixed_part = match protocol {
        IPPROTO_TCP => 20,
        IPPROTO_UDP => 8,
        _ => 0,
    };
    if upper.is_some() && fixed_part > 0 && usize::from(l4_offset) + fixed_part > PARSE_WINDOW {
        return Ok(Err(DropReason::HeaderTooLong));
    }
    let transport = if upper.is_some() {
        sliced.transport.as_ref()
    } else {
        None
    };
    let (src_port, dst_port, tcp_flags) = match (transport, upper) {
        (Some(TransportSlice::Tcp(t)), _) => (
            t.source_port(),
            t.destination_port(),
            tcp_flags_byte(
                t.fin(),
                t.syn(),
                t.rst(),
                t.psh(),
                t.ack(),
                t.urg(),
                t.ece(),
                t.cwr(),
            ),
        ),
        (Some(TransportSlice::Udp(u)), _) => (u.source_port(), u.destination_port(), 0),
        (Some(_), _) => (0, 0, 0),
        (None, Some(bytes)) if protocol == IPPROTO_TCP => {
            let t = TcpHeaderSlice::from_slice(bytes)
                .map_err(|e| TestCaseError::fail(format!("first-fragment TCP: {e}")))?;
            (
                t.source_port(),
                t.destination_port(),
                tcp_flags_byte(
                    t.fin(),
                    t.syn(),
                    t.rst(),
                    t.psh(),
                    t.ack(),
                    t.urg(),
                    t.ece(),
                    t.cwr(),
                ),
            )
        }
        (None, Some(bytes)) if protocol == IPPROTO_UDP => {
            let u = UdpHeaderSlice::from_slice(bytes)
                .map_err(|e| TestCaseError::fail(format!("first-fragment UDP: {e}")))?;
            (u.source_port(), u.destination_port(), 0)
        }
        (None, _) => (0, 0, 0),
    };
    Ok(Ok(Parsed::Ip(ParsedFrame {
        vlan_count,
        l3_offset,
        src,
        dst,
        ip_len,
        protocol,
        l4_offset,
        fragment,
        src_port,
        dst_port,
        tcp_flags,
        dscp_ecn,
    })))
}

#[allow(clippy::too_many_arguments)]
fn tcp_flags_byte(
    fin: bool,
    syn: bool,
    rst: bool,
    psh: bool,
    ack: bool,
    urg: bool,
    ece: bool,
    cwr: bool,
) -> u8 {
    [fin, syn, rst, psh, ack, urg, ece, cwr]
        .iter()
        .enumerate()
        .fold(0, |acc, (bit, &set)| acc | (u8::from(set) << bit))
}

// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any byte string: no panic, and a consistent result.
    #[test]
    fn arbitrary_bytes(frame in prop::collection::vec(any::<u8>(), 0..2000)) {
        let result = parse(&frame);
        check_consistent(&frame, result)?;
    }

    /// Random bytes behind an IP or VLAN ethertype, so the IP and L4 rules are reached.
    #[test]
    fn arbitrary_bytes_behind_an_ethertype(
        ethertype in prop::sample::select(vec![
            ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, ETHERTYPE_QINQ, ETHERTYPE_QINQ_OLD,
        ]),
        version in prop::sample::select(vec![0x45u8, 0x4f, 0x60, 0x46, 0x00]),
        rest in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.push(version);
        frame.extend_from_slice(&rest);
        let result = parse(&frame);
        check_consistent(&frame, result)?;
    }

    /// Valid frames with bytes overwritten and the end cut: no panic, consistent result.
    #[test]
    fn mutated_valid_frames(
        spec in frame_spec(),
        mutations in prop::collection::vec((any::<Index>(), any::<u8>()), 0..8),
        cut in prop::option::of(any::<Index>()),
    ) {
        let mut frame = build(&spec);
        for (at, byte) in mutations {
            let at = at.index(frame.len());
            frame[at] = byte;
        }
        if let Some(cut) = cut {
            frame.truncate(cut.index(frame.len() + 1));
        }
        let result = parse(&frame);
        check_consistent(&frame, result)?;
    }

    /// A valid frame cut inside its datagram is always dropped, never half-parsed; cut
    /// inside its padding it parses exactly as before.
    #[test]
    fn truncated_valid_frames(spec in frame_spec(), cut in any::<Index>()) {
        let frame = build(&spec);
        let whole = parse(&frame);
        if let Ok(Parsed::Ip(p)) = whole {
            let end = usize::from(p.l3_offset) + usize::from(p.ip_len);
            let cut = cut.index(frame.len() + 1);
            if cut < end {
                prop_assert!(parse(&frame[..cut]).is_err(), "cut at {} of {}", cut, end);
            } else {
                prop_assert_eq!(parse(&frame[..cut]), whole);
            }
        }
    }

    /// On valid frames, the contract agrees with etherparse field for field.
    #[test]
    fn agrees_with_etherparse(spec in frame_spec()) {
        let frame = build(&spec);
        let expected = expected_from_etherparse(&frame)?;
        prop_assert_eq!(parse(&frame), expected, "frame {:02x?}", frame);
    }
}

/// The generator must reach every case the oracle distinguishes, or the differential test
/// proves less than it claims.
#[test]
fn generator_covers_the_interesting_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = frame_spec();
    let mut seen = [false; 9];
    for _ in 0..4000 {
        let frame = build(&strategy.new_tree(&mut runner).unwrap().current());
        match parse(&frame) {
            Ok(Parsed::Ip(p)) => {
                seen[usize::from(p.vlan_count)] = true; // 0, 1, 2
                seen[3] |= p.fragment && p.src_port | p.dst_port != 0 && !p.is_ipv6();
                seen[4] |= p.fragment && p.src_port | p.dst_port != 0 && p.is_ipv6();
                seen[5] |= p.fragment && p.src_port | p.dst_port == 0 && p.protocol == IPPROTO_TCP;
                seen[6] |= p.is_ipv6() && usize::from(p.l4_offset - p.l3_offset) > 40 + 24;
            }
            Err(DropReason::Ipv6ExtensionChainTooDeep) => seen[7] = true,
            Err(DropReason::HeaderTooLong) => seen[8] = true,
            other => panic!("a built frame gave {other:?}"),
        }
    }
    assert_eq!(seen, [true; 9]);
}
