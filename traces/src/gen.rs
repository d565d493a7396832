//! Seeded synthetic traces: what a load balancer's upstream port sees.
//!
//! A [`TraceSpec`] describes the mix — client flows to VIPs (TCP connections and UDP
//! datagram streams, some over IPv6, some VLAN-tagged, some UDP datagrams fragmented),
//! a SYN flood, malformed frames and frames for no VIP — and [`generate`] turns it into
//! frames in time order. The same spec gives the same bytes on every platform: randomness
//! is `ChaCha8Rng` from the seed (one independent stream per part of the trace, so adding
//! malformed frames does not change the flows), integer draws only for anything that shapes
//! bytes, and flow sizes from a Zipf table computed without libm (see `zipf`).
//!
//! ```
//! use flowgate_traces::gen::{generate, TraceSpec, VipTarget};
//! use flowgate_traces::write_pcap;
//!
//! let vips = vec![
//!     VipTarget::tcp("192.0.2.10".parse().unwrap(), 80),
//!     VipTarget::udp("2001:db8::53".parse().unwrap(), 53),
//! ];
//! let spec = TraceSpec { seed: 7, ..TraceSpec::example(vips) };
//! let frames = generate(&spec).unwrap();
//! let pcap = write_pcap(Vec::new(), &frames).unwrap();
//! assert!(frames.len() > 1000 && pcap.len() > 24);
//! ```

mod addresses;
mod draw;
mod frames;
pub mod malformed;
mod zipf;

pub use addresses::{
    EPHEMERAL_PORTS, MAX_CLIENTS, OTHER_FAMILY_V4, OTHER_FAMILY_V6, OTHER_HOSTS_V4, OTHER_HOSTS_V6,
};
pub use frames::{LB_MAC, MIN_FRAME, MTU, ROUTER_MAC};
pub use malformed::{malformed_frame, malformed_frames, IpFamily, MalformedCase, MalformedFrame};

use crate::Frame;
use addresses::ClientPool;
use etherparse::TcpOptionElement;
use frames::{Ip, Link, Segment, Vlans};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use zipf::Zipf;

/// The time of a trace's offset 0: 2024-01-01T00:00:00Z (so tcpdump shows a plausible date).
pub const TRACE_EPOCH: Duration = Duration::from_secs(1_704_067_200);
/// A generated trace is held in memory; this bounds it (about 10 GB of frames at worst).
pub const MAX_FRAMES: u64 = 20_000_000;
/// Upper bound of [`TraceSpec::max_packets_per_flow`] (the Zipf table has one entry each).
pub const MAX_PACKETS_PER_FLOW: u32 = 1 << 20;
/// Upper bound of `duration_us` and of a SYN flood's start and length (about 3 years; keeps
/// every timestamp within pcap's 32-bit seconds).
pub const MAX_SPAN_US: u64 = 100_000_000_000_000;
/// Upper bound of [`TraceSpec::mean_gap_us`] (100 s).
pub const MAX_MEAN_GAP_US: u32 = 100_000_000;
/// Destination port of flows to a VIP whose port is 0 (any).
pub const DEFAULT_SERVICE_PORT: u16 = 80;

const TCP: u8 = 6;
const UDP: u8 = 17;

/// A service the trace sends flows to: flowgate's VIP key (address, port or 0 = any,
/// protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VipTarget {
    pub address: IpAddr,
    /// 0 = any port; flows then go to [`DEFAULT_SERVICE_PORT`].
    pub port: u16,
    /// 6 (TCP) or 17 (UDP).
    pub protocol: u8,
}

impl VipTarget {
    /// The service of every VIP of programmed `tables`, in VIP order.
    pub fn for_tables(tables: &flowgate_core::Tables) -> Vec<VipTarget> {
        tables
            .vips
            .iter()
            .map(|v| VipTarget {
                address: v.address,
                port: v.port,
                protocol: v.protocol,
            })
            .collect()
    }

    pub fn tcp(address: IpAddr, port: u16) -> VipTarget {
        VipTarget {
            address,
            port,
            protocol: TCP,
        }
    }

    pub fn udp(address: IpAddr, port: u16) -> VipTarget {
        VipTarget {
            address,
            port,
            protocol: UDP,
        }
    }

    /// The destination port flows to this VIP use.
    pub fn service_port(&self) -> u16 {
        if self.port == 0 {
            DEFAULT_SERVICE_PORT
        } else {
            self.port
        }
    }

    pub fn family(&self) -> IpFamily {
        IpFamily::of(self.address)
    }

    /// Whether flowgate would classify a packet (dst, protocol, dst port) to this VIP.
    fn matches(&self, dst: IpAddr, protocol: u8, dst_port: u16) -> bool {
        self.address == dst
            && self.protocol == protocol
            && (self.port == 0 || self.port == dst_port)
    }
}

/// TCP SYN-only packets from random spoofed sources (IPv4 or IPv6, the VIP's family) and
/// ports, at a fixed rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynFlood {
    /// Index into [`TraceSpec::vips`] of the (TCP) VIP under attack.
    pub vip: usize,
    pub packets: u32,
    /// Offset of the first SYN from the trace start.
    pub start_us: u64,
    pub rate_pps: u32,
}

/// Everything that shapes a trace. Same spec → byte-identical trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSpec {
    pub seed: u64,
    /// The services flows go to. IPv4 and IPv6 VIPs may be mixed; each flow picks a VIP of
    /// its family uniformly.
    pub vips: Vec<VipTarget>,
    /// Distinct client addresses per family (IPv4 from 100.64.0.0/10, IPv6 from
    /// 2001:db8:c000::/40); each flow picks one uniformly.
    pub clients: u32,
    /// Number of flows: TCP connections or UDP datagram streams, one per VIP pick.
    pub flows: u32,
    /// Packets per flow ~ Zipf(`max_packets_per_flow`, `zipf_exponent`): P(k) ∝ k^-s.
    pub zipf_exponent: f64,
    pub max_packets_per_flow: u32,
    /// Fraction of flows over IPv6 (to IPv6 VIPs), 0..=1.
    pub ipv6_fraction: f64,
    /// Fraction of flows carried with VLAN tags (a quarter of them with two), 0..=1.
    pub vlan_fraction: f64,
    /// Fraction of UDP datagrams sent as 2–3 IP fragments, 0..=1.
    pub fragment_fraction: f64,
    pub syn_flood: Option<SynFlood>,
    /// Malformed frames mixed in, cycling through [`MalformedCase::ALL`].
    pub malformed: u32,
    /// Frames for no VIP mixed in (ARP, other hosts, ICMP echo to a VIP address, a VIP's
    /// address on another port).
    pub passthrough: u32,
    /// Flows start uniformly over `[0, duration_us)`; stray frames land there too.
    pub duration_us: u64,
    /// Mean gap between a flow's packets (exponentially distributed, ≥ 1 µs, capped at 8×).
    pub mean_gap_us: u32,
}

/// Why a [`TraceSpec`] cannot be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("no VIPs: flows, floods and malformed frames all need a VIP to aim at")]
    NoVips,
    #[error("VIP {index}: protocol {protocol} is neither TCP (6) nor UDP (17)")]
    BadProtocol { index: usize, protocol: u8 },
    #[error("{name} = {value}: must be between 0 and 1")]
    BadFraction { name: &'static str, value: f64 },
    #[error("zipf_exponent = {0}: must be finite and ≥ 0")]
    BadZipfExponent(f64),
    #[error("max_packets_per_flow = {0}: must be between 1 and {MAX_PACKETS_PER_FLOW}")]
    BadMaxPackets(u32),
    #[error("clients = {0}: must be between 1 and {MAX_CLIENTS} when there are flows")]
    BadClients(u32),
    #[error("{fraction} of the flows are {family:?}, but no VIP is")]
    NoVipForFamily { family: IpFamily, fraction: f64 },
    #[error("syn_flood.vip = {0}: not the index of a TCP VIP")]
    BadFloodTarget(usize),
    #[error("syn_flood.rate_pps must be at least 1")]
    ZeroFloodRate,
    #[error("{name} = {value} µs: at most {MAX_SPAN_US} µs")]
    TooLong { name: &'static str, value: u64 },
    #[error("mean_gap_us = {0}: at most {MAX_MEAN_GAP_US}")]
    GapTooLong(u32),
    #[error("the spec needs up to {0} frames; at most {MAX_FRAMES} are generated")]
    TooManyFrames(u64),
}

/// What a generated frame is (the trace's ground truth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// A packet (or IP fragment) of flow `n`, an index into [`Trace::flows`].
    Flow(u32),
    /// A spoofed SYN of the flood.
    SynFlood,
    Malformed(MalformedCase),
    /// A frame for no VIP.
    Passthrough(PassthroughKind),
}

/// The kinds of frames for no VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PassthroughKind {
    /// Broadcast ARP request (not IP).
    Arp,
    /// TCP or UDP to an address that is no VIP's.
    OtherHost,
    /// ICMP / ICMPv6 echo request to a VIP's address (VIPs are TCP or UDP).
    IcmpEchoToVip,
    /// TCP or UDP to a VIP's address and protocol, on a port it does not serve.
    OtherPortOnVip,
}

/// One flow of the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSummary {
    /// Index into [`TraceSpec::vips`].
    pub vip: usize,
    pub client: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    pub vlan_tags: u8,
    /// Offset of the flow's first packet from the trace start.
    pub start_us: u64,
    /// TCP segments or UDP datagrams (the Zipf draw).
    pub packets: u32,
    /// Frames on the wire: `packets` plus the extra fragments of fragmented datagrams.
    pub frames: u32,
}

/// A generated trace with its ground truth: `kinds[i]` says what `frames[i]` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub frames: Vec<Frame>,
    pub kinds: Vec<FrameKind>,
    pub flows: Vec<FlowSummary>,
}

impl TraceSpec {
    /// A small trace (about 2000 frames) with every ingredient that the VIPs allow.
    pub fn example(vips: Vec<VipTarget>) -> TraceSpec {
        TraceSpec::mixed(vips, 2000)
    }

    /// A realistic mix of about `frames_target` frames: ~1 % malformed (at least one of
    /// each case when the target allows), 2 % passthrough, 5 % SYN flood on the first TCP
    /// VIP, the rest flows with Zipf(1.3) sizes; 25 % IPv6 when both families have VIPs,
    /// 10 % VLAN-tagged, 10 % of UDP datagrams fragmented. Seed 1.
    pub fn mixed(vips: Vec<VipTarget>, frames_target: u32) -> TraceSpec {
        let target = u64::from(frames_target);
        let has = |family| vips.iter().any(|v| v.family() == family);
        let ipv6_fraction = match (has(IpFamily::V4), has(IpFamily::V6)) {
            (true, true) => 0.25,
            (false, true) => 1.0,
            _ => 0.0,
        };
        let cases = MalformedCase::ALL.len() as u64;
        let malformed = (target / 100).max(cases.min(target / 20));
        let passthrough = target / 50;
        let flood_target = vips.iter().position(|v| v.protocol == TCP);
        let flood_packets = if flood_target.is_some() {
            target / 20
        } else {
            0
        };
        let duration_us = (target * 500).max(1_000_000);
        let syn_flood = flood_target
            .filter(|_| flood_packets > 0)
            .map(|vip| SynFlood {
                vip,
                packets: flood_packets as u32,
                start_us: duration_us / 2,
                // The flood lasts a tenth of the trace.
                rate_pps: (flood_packets * 10_000_000 / duration_us).max(1) as u32,
            });

        let zipf_exponent = 1.3;
        let max_packets_per_flow = (frames_target / 20).clamp(10, 10_000);
        let fragment_fraction = 0.1;
        let udp_share = if vips.is_empty() {
            0.0
        } else {
            vips.iter().filter(|v| v.protocol == UDP).count() as f64 / vips.len() as f64
        };
        // A fragmented datagram is 2.5 frames on average.
        let frames_per_packet = 1.0 + udp_share * fragment_fraction * 1.5;
        let frames_per_flow =
            Zipf::new(max_packets_per_flow, zipf_exponent).mean() * frames_per_packet;
        let for_flows = target.saturating_sub(malformed + passthrough + flood_packets);
        let flows = ((for_flows as f64 / frames_per_flow) as u32).max(1);

        TraceSpec {
            seed: 1,
            vips,
            clients: (flows / 2).max(1),
            flows,
            zipf_exponent,
            max_packets_per_flow,
            ipv6_fraction,
            vlan_fraction: 0.1,
            fragment_fraction,
            syn_flood,
            malformed: malformed as u32,
            passthrough: passthrough as u32,
            duration_us,
            mean_gap_us: 1000,
        }
    }

    /// Check the spec without generating anything.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.vips.is_empty() {
            return Err(SpecError::NoVips);
        }
        if let Some((index, v)) = self
            .vips
            .iter()
            .enumerate()
            .find(|(_, v)| v.protocol != TCP && v.protocol != UDP)
        {
            return Err(SpecError::BadProtocol {
                index,
                protocol: v.protocol,
            });
        }
        for (name, value) in [
            ("ipv6_fraction", self.ipv6_fraction),
            ("vlan_fraction", self.vlan_fraction),
            ("fragment_fraction", self.fragment_fraction),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(SpecError::BadFraction { name, value });
            }
        }
        if !(self.zipf_exponent.is_finite() && self.zipf_exponent >= 0.0) {
            return Err(SpecError::BadZipfExponent(self.zipf_exponent));
        }
        if !(1..=MAX_PACKETS_PER_FLOW).contains(&self.max_packets_per_flow) {
            return Err(SpecError::BadMaxPackets(self.max_packets_per_flow));
        }
        if self.flows > 0 {
            if !(1..=MAX_CLIENTS).contains(&self.clients) {
                return Err(SpecError::BadClients(self.clients));
            }
            let has = |family| self.vips.iter().any(|v| v.family() == family);
            for (family, fraction) in [
                (IpFamily::V6, self.ipv6_fraction),
                (IpFamily::V4, 1.0 - self.ipv6_fraction),
            ] {
                if fraction > 0.0 && !has(family) {
                    return Err(SpecError::NoVipForFamily { family, fraction });
                }
            }
        }
        if self.duration_us > MAX_SPAN_US {
            return Err(SpecError::TooLong {
                name: "duration_us",
                value: self.duration_us,
            });
        }
        if self.mean_gap_us > MAX_MEAN_GAP_US {
            return Err(SpecError::GapTooLong(self.mean_gap_us));
        }
        if let Some(flood) = &self.syn_flood {
            if self.vips.get(flood.vip).is_none_or(|v| v.protocol != TCP) {
                return Err(SpecError::BadFloodTarget(flood.vip));
            }
            if flood.rate_pps == 0 {
                return Err(SpecError::ZeroFloodRate);
            }
            if flood.start_us > MAX_SPAN_US {
                return Err(SpecError::TooLong {
                    name: "syn_flood.start_us",
                    value: flood.start_us,
                });
            }
            let length = u64::from(flood.packets) * 1_000_000 / u64::from(flood.rate_pps);
            if length > MAX_SPAN_US {
                return Err(SpecError::TooLong {
                    name: "syn_flood length",
                    value: length,
                });
            }
        }
        // Every flow is at least one frame; the exact bound is checked once sizes are drawn.
        let at_least = self.stray_frames() + u64::from(self.flows);
        if at_least > MAX_FRAMES {
            return Err(SpecError::TooManyFrames(at_least));
        }
        Ok(())
    }

    /// Frames that are not part of a flow.
    fn stray_frames(&self) -> u64 {
        let flood = self.syn_flood.map_or(0, |f| u64::from(f.packets));
        flood + u64::from(self.malformed) + u64::from(self.passthrough)
    }
}

/// Generate the trace's frames in time order (see [`generate_trace`] for the ground truth).
pub fn generate(spec: &TraceSpec) -> Result<Vec<Frame>, SpecError> {
    generate_trace(spec).map(|trace| trace.frames)
}

/// Generate the trace with what every frame is and a summary of every flow.
pub fn generate_trace(spec: &TraceSpec) -> Result<Trace, SpecError> {
    spec.validate()?;
    let mut events = Vec::new();
    let flows = emit_flows(spec, &mut events)?;
    emit_syn_flood(spec, &mut events);
    emit_passthrough(spec, &mut events);
    emit_malformed(spec, &mut events);

    // Stable: frames at the same microsecond keep their generation order (a flow's
    // fragments, then flows in index order, flood, passthrough, malformed).
    events.sort_by_key(|e| e.at_us);
    let (frames, kinds) = events
        .into_iter()
        .map(|e| {
            let frame = Frame {
                ts: TRACE_EPOCH + Duration::from_micros(e.at_us),
                data: e.data,
            };
            (frame, e.kind)
        })
        .unzip();
    Ok(Trace {
        frames,
        kinds,
        flows,
    })
}

struct Event {
    at_us: u64,
    data: Vec<u8>,
    kind: FrameKind,
}

/// Independent random streams of one seed, one per part of the trace.
#[derive(Clone, Copy)]
enum Stream {
    Clients = 0,
    Flows = 1,
    SynFlood = 2,
    Passthrough = 3,
    Malformed = 4,
}

fn rng_for(spec: &TraceSpec, stream: Stream) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    rng.set_stream(stream as u64);
    rng
}

fn ttl<R: Rng>(rng: &mut R) -> u8 {
    draw::pick(rng, &[64u8, 128, 255]) - rng.gen_range(1..20)
}

fn random_vlans<R: Rng>(rng: &mut R) -> Vlans {
    let mut id = || rng.gen_range(1..4095u16);
    let (outer, inner) = (id(), id());
    if rng.gen_ratio(1, 4) {
        Vlans::Two(outer, inner)
    } else {
        Vlans::One(outer)
    }
}

struct FlowPlan {
    summary: FlowSummary,
    link: Link,
}

fn emit_flows(spec: &TraceSpec, events: &mut Vec<Event>) -> Result<Vec<FlowSummary>, SpecError> {
    if spec.flows == 0 {
        return Ok(Vec::new());
    }
    let pool = ClientPool::new(&mut rng_for(spec, Stream::Clients));
    let mut rng = rng_for(spec, Stream::Flows);
    let zipf = Zipf::new(spec.max_packets_per_flow, spec.zipf_exponent);
    let by_family = |family| -> Vec<usize> {
        (0..spec.vips.len())
            .filter(|&i| spec.vips[i].family() == family)
            .collect()
    };
    let (v4_vips, v6_vips) = (by_family(IpFamily::V4), by_family(IpFamily::V6));

    // Plan every flow first, so the frame bound is checked before any frame is built.
    let mut five_tuples = HashSet::new();
    let mut plans = Vec::with_capacity(spec.flows as usize);
    for _ in 0..spec.flows {
        let family = if rng.gen_bool(spec.ipv6_fraction) {
            IpFamily::V6
        } else {
            IpFamily::V4
        };
        let vip_index = draw::pick(
            &mut rng,
            if family == IpFamily::V6 {
                &v6_vips
            } else {
                &v4_vips
            },
        );
        let vip = spec.vips[vip_index];
        let client_index = rng.gen_range(0..spec.clients);
        let client = pool.address(client_index, family);
        // Distinct 5-tuples, unless a client's ports are all but exhausted.
        let mut src_port = rng.gen_range(EPHEMERAL_PORTS);
        for _ in 0..64 {
            if five_tuples.insert((client, src_port, vip_index)) {
                break;
            }
            src_port = rng.gen_range(EPHEMERAL_PORTS);
        }
        let vlans = if rng.gen_bool(spec.vlan_fraction) {
            random_vlans(&mut rng)
        } else {
            Vlans::None
        };
        let start_us = draw::instant(&mut rng, spec.duration_us);
        let packets = zipf.sample(&mut rng);
        plans.push(FlowPlan {
            summary: FlowSummary {
                vip: vip_index,
                client,
                src_port,
                dst_port: vip.service_port(),
                protocol: vip.protocol,
                vlan_tags: vlans.count(),
                start_us,
                packets,
                frames: 0,
            },
            link: Link::tagged(vlans),
        });
    }
    let bound = plans.iter().fold(spec.stray_frames(), |sum, p| {
        let per_packet = if p.summary.protocol == UDP { 3 } else { 1 };
        sum + u64::from(p.summary.packets) * per_packet
    });
    if bound > MAX_FRAMES {
        return Err(SpecError::TooManyFrames(bound));
    }

    let mut summaries = Vec::with_capacity(plans.len());
    for (index, plan) in plans.into_iter().enumerate() {
        let kind = FrameKind::Flow(index as u32);
        let vip = spec.vips[plan.summary.vip];
        let ip = Ip {
            src: plan.summary.client,
            dst: vip.address,
            ttl: ttl(&mut rng),
            ident: rng.gen(),
            flow_label: rng.gen(),
        };
        let before = events.len();
        let mut push = |at_us, data| {
            events.push(Event {
                at_us,
                data: frames::pad(data),
                kind,
            })
        };
        if plan.summary.protocol == TCP {
            emit_tcp_flow(&mut rng, spec, &plan, ip, &mut push);
        } else {
            emit_udp_flow(&mut rng, spec, &plan, ip, &mut push);
        }
        let mut summary = plan.summary;
        summary.frames = (events.len() - before) as u32;
        summaries.push(summary);
    }
    Ok(summaries)
}

/// The client half of a TCP connection: SYN; the ACK completing the handshake; data
/// segments and pure ACKs (of the server's data, which is not in the trace); FIN.
/// One packet is a lone SYN, two are SYN + FIN.
fn emit_tcp_flow<R: Rng>(
    rng: &mut R,
    spec: &TraceSpec,
    plan: &FlowPlan,
    mut ip: Ip,
    push: &mut impl FnMut(u64, Vec<u8>),
) {
    let flow = &plan.summary;
    let mss: u16 = if ip.is_ipv6() { 1440 } else { 1460 };
    let options = frames::syn_options(mss);
    let mut seq: u32 = rng.gen();
    let mut ack: u32 = rng.gen();
    let window = rng.gen_range(502..=u16::MAX);
    let mut at = flow.start_us;
    let base = Segment {
        src_port: flow.src_port,
        dst_port: flow.dst_port,
        window,
        ..Segment::default()
    };

    let syn = Segment {
        seq,
        syn: true,
        window: 64240,
        options: &options,
        ..base
    };
    push(at, frames::tcp(&plan.link, &ip, &syn, &[]));
    seq = seq.wrapping_add(1);
    ack = ack.wrapping_add(1);

    for i in 1..flow.packets {
        at += draw::gap(rng, spec.mean_gap_us);
        ip.ident = ip.ident.wrapping_add(1);
        let last = i + 1 == flow.packets;
        let payload = if last || i == 1 || rng.gen_bool(0.5) {
            Vec::new() // FIN, handshake ACK, or a pure ACK
        } else if rng.gen_bool(0.5) {
            draw::bytes(rng, usize::from(mss))
        } else {
            let len = rng.gen_range(1..=mss);
            draw::bytes(rng, usize::from(len))
        };
        let seg = Segment {
            seq,
            ack: Some(ack),
            psh: !payload.is_empty() && (payload.len() < usize::from(mss) || rng.gen_bool(0.3)),
            fin: last,
            ..base
        };
        push(at, frames::tcp(&plan.link, &ip, &seg, &payload));
        seq = seq.wrapping_add(payload.len() as u32);
        if payload.is_empty() && !last && i > 1 {
            // A pure ACK acknowledges more of the server's data.
            ack = ack.wrapping_add(rng.gen_range(1..=4 * u32::from(mss)));
        }
    }
}

/// A UDP datagram stream; each datagram is fragmented with `fragment_fraction`.
fn emit_udp_flow<R: Rng>(
    rng: &mut R,
    spec: &TraceSpec,
    plan: &FlowPlan,
    mut ip: Ip,
    push: &mut impl FnMut(u64, Vec<u8>),
) {
    let flow = &plan.summary;
    let chunk = frames::fragment_chunk(ip.is_ipv6());
    let mut at = flow.start_us;
    for i in 0..flow.packets {
        if i > 0 {
            at += draw::gap(rng, spec.mean_gap_us);
        }
        ip.ident = if ip.is_ipv6() {
            rng.gen()
        } else {
            ip.ident.wrapping_add(1)
        };
        if rng.gen_bool(spec.fragment_fraction) {
            // 2 or 3 fragments: UDP header + payload in (chunk, 3 × chunk].
            let len = draw::len_in(rng, chunk - 7, 3 * chunk - 8);
            let payload = draw::bytes(rng, len);
            let fragments =
                frames::udp_fragments(&plan.link, &ip, flow.src_port, flow.dst_port, &payload);
            for (k, fragment) in fragments.into_iter().enumerate() {
                push(at + k as u64, fragment);
            }
            at += 2;
        } else {
            let len = draw::len_in(rng, 16, 1200);
            let payload = draw::bytes(rng, len);
            push(
                at,
                frames::udp(&plan.link, &ip, flow.src_port, flow.dst_port, &payload),
            );
        }
    }
}

fn emit_syn_flood(spec: &TraceSpec, events: &mut Vec<Event>) {
    let Some(flood) = spec.syn_flood else {
        return;
    };
    let mut rng = rng_for(spec, Stream::SynFlood);
    let vip = spec.vips[flood.vip];
    let mss = [TcpOptionElement::MaximumSegmentSize(1460)];
    for i in 0..flood.packets {
        let offset = u64::from(i) * 1_000_000 / u64::from(flood.rate_pps);
        let ip = Ip {
            src: addresses::spoofed(&mut rng, vip.family()),
            dst: vip.address,
            ttl: ttl(&mut rng),
            ident: rng.gen(),
            flow_label: rng.gen(),
        };
        let seg = Segment {
            src_port: rng.gen_range(1024..=u16::MAX),
            dst_port: vip.service_port(),
            seq: rng.gen(),
            syn: true,
            window: draw::pick(&mut rng, &[1024, 5840, 29200, 64240, 65535]),
            // Flood tools send bare SYNs or an MSS option only.
            options: if rng.gen() { &mss } else { &[] },
            ..Segment::default()
        };
        events.push(Event {
            at_us: flood.start_us + offset,
            data: frames::pad(frames::tcp(&Link::UPSTREAM, &ip, &seg, &[])),
            kind: FrameKind::SynFlood,
        });
    }
}

fn emit_passthrough(spec: &TraceSpec, events: &mut Vec<Event>) {
    if spec.passthrough == 0 {
        return;
    }
    let mut rng = rng_for(spec, Stream::Passthrough);
    let vip_addresses: Vec<IpAddr> = spec.vips.iter().map(|v| v.address).collect();
    let v4_vips: Vec<Ipv4Addr> = spec
        .vips
        .iter()
        .filter_map(|v| match v.address {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
        .collect();
    let families: &[IpFamily] = if spec.vips.iter().any(|v| v.family() == IpFamily::V6) {
        &[IpFamily::V4, IpFamily::V6]
    } else {
        &[IpFamily::V4]
    };
    // A VIP's address and protocol on another port is for no VIP only when no VIP with
    // that address and protocol takes any port.
    let other_port_vips: Vec<VipTarget> = spec
        .vips
        .iter()
        .filter(|v| {
            v.port != 0
                && !spec
                    .vips
                    .iter()
                    .any(|w| w.address == v.address && w.protocol == v.protocol && w.port == 0)
        })
        .copied()
        .collect();
    let mut kinds = vec![
        PassthroughKind::Arp,
        PassthroughKind::OtherHost,
        PassthroughKind::IcmpEchoToVip,
    ];
    if !other_port_vips.is_empty() {
        kinds.push(PassthroughKind::OtherPortOnVip);
    }

    for i in 0..spec.passthrough {
        let at_us = draw::instant(&mut rng, spec.duration_us);
        let mut kind = kinds[i as usize % kinds.len()];
        let family = draw::pick(&mut rng, families);
        let data = loop {
            match kind {
                PassthroughKind::Arp => {
                    let target = if v4_vips.is_empty() {
                        OTHER_FAMILY_V4
                    } else {
                        draw::pick(&mut rng, &v4_vips)
                    };
                    let sender = Ipv4Addr::new(100, 64, 0, 1);
                    break frames::arp_request(ROUTER_MAC, sender, target);
                }
                PassthroughKind::OtherHost => {
                    let Some(dst) = addresses::other_host(&mut rng, family, &vip_addresses) else {
                        kind = PassthroughKind::Arp;
                        continue;
                    };
                    let protocol = draw::pick(&mut rng, &[TCP, UDP]);
                    let port = draw::pick(&mut rng, &[22, 53, 80, 443, 8080]);
                    break stray_packet(&mut rng, dst, protocol, port);
                }
                PassthroughKind::IcmpEchoToVip => {
                    let dst = draw::pick(&mut rng, &vip_addresses);
                    let ip = stray_ip(&mut rng, dst);
                    let (id, seq) = (rng.gen(), rng.gen());
                    break frames::icmp_echo(
                        &Link::UPSTREAM,
                        &ip,
                        id,
                        seq,
                        &draw::bytes(&mut rng, 56),
                    );
                }
                PassthroughKind::OtherPortOnVip => {
                    let vip = draw::pick(&mut rng, &other_port_vips);
                    let port = loop {
                        let p = rng.gen_range(1..=u16::MAX);
                        if !spec
                            .vips
                            .iter()
                            .any(|v| v.matches(vip.address, vip.protocol, p))
                        {
                            break p;
                        }
                    };
                    break stray_packet(&mut rng, vip.address, vip.protocol, port);
                }
            }
        };
        events.push(Event {
            at_us,
            data: frames::pad(data),
            kind: FrameKind::Passthrough(kind),
        });
    }
}

/// IP fields of a frame from a random client to `dst`.
fn stray_ip<R: Rng>(rng: &mut R, dst: IpAddr) -> Ip {
    Ip {
        src: addresses::random_client(rng, IpFamily::of(dst)),
        dst,
        ttl: ttl(rng),
        ident: rng.gen(),
        flow_label: rng.gen(),
    }
}

/// A lone TCP SYN or UDP datagram.
fn stray_packet<R: Rng>(rng: &mut R, dst: IpAddr, protocol: u8, dst_port: u16) -> Vec<u8> {
    let ip = stray_ip(rng, dst);
    let src_port = rng.gen_range(EPHEMERAL_PORTS);
    if protocol == TCP {
        let options = frames::syn_options(1460);
        let seg = Segment {
            src_port,
            dst_port,
            seq: rng.gen(),
            syn: true,
            window: 64240,
            options: &options,
            ..Segment::default()
        };
        frames::tcp(&Link::UPSTREAM, &ip, &seg, &[])
    } else {
        let len = draw::len_in(rng, 16, 512);
        frames::udp(
            &Link::UPSTREAM,
            &ip,
            src_port,
            dst_port,
            &draw::bytes(rng, len),
        )
    }
}

fn emit_malformed(spec: &TraceSpec, events: &mut Vec<Event>) {
    let mut rng = rng_for(spec, Stream::Malformed);
    let all: Vec<usize> = (0..spec.vips.len()).collect();
    for i in 0..spec.malformed {
        let case = MalformedCase::ALL[i as usize % MalformedCase::ALL.len()];
        let at_us = draw::instant(&mut rng, spec.duration_us);
        // Aim at a VIP of the family the case needs, when there is one.
        let fitting: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&v| case.family().is_none_or(|f| f == spec.vips[v].family()))
            .collect();
        let vip = spec.vips[draw::pick(&mut rng, if fitting.is_empty() { &all } else { &fitting })];
        events.push(Event {
            at_us,
            data: malformed_frame(&mut rng, case, &vip),
            kind: FrameKind::Malformed(case),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{read_pcap_file, write_pcap, write_pcap_file};
    use etherparse::{Ipv6ExtensionSlice, NetSlice, SlicedPacket, TransportSlice};
    use std::collections::{BTreeSet, HashMap};
    use std::net::Ipv6Addr;

    fn vips() -> Vec<VipTarget> {
        vec![
            VipTarget::tcp(Ipv4Addr::new(192, 0, 2, 10).into(), 80),
            VipTarget::udp(Ipv4Addr::new(192, 0, 2, 20).into(), 53),
            VipTarget::tcp("2001:db8::10".parse::<Ipv6Addr>().unwrap().into(), 443),
            VipTarget::udp("2001:db8::20".parse::<Ipv6Addr>().unwrap().into(), 0),
        ]
    }

    fn spec() -> TraceSpec {
        TraceSpec {
            seed: 42,
            ipv6_fraction: 0.3,
            vlan_fraction: 0.2,
            fragment_fraction: 0.3,
            ..TraceSpec::mixed(vips(), 6000)
        }
    }

    fn pcap_bytes(spec: &TraceSpec) -> Vec<u8> {
        write_pcap(Vec::new(), &generate(spec).unwrap()).unwrap()
    }

    /// (destination, protocol, destination port, TCP flags byte-ish) of a parsed frame.
    struct Seen {
        dst: IpAddr,
        protocol: u8,
        dst_port: Option<u16>,
        syn_only: bool,
        fin: bool,
        fragment: bool,
        vlans: u8,
    }

    fn see(data: &[u8]) -> Option<Seen> {
        let p = SlicedPacket::from_ethernet(data).ok()?;
        let vlans = p
            .link_exts
            .iter()
            .filter(|ext| matches!(ext, etherparse::LinkExtSlice::Vlan(_)))
            .count() as u8;
        let (dst, protocol, fragment) = match p.net.as_ref()? {
            NetSlice::Ipv4(v4) => (
                IpAddr::V4(v4.header().destination_addr()),
                v4.payload().ip_number.0,
                v4.is_payload_fragmented(),
            ),
            NetSlice::Ipv6(v6) => (
                IpAddr::V6(v6.header().destination_addr()),
                v6.payload().ip_number.0,
                v6.is_payload_fragmented(),
            ),
            NetSlice::Arp(_) => return None,
        };
        let (dst_port, syn_only, fin) = match &p.transport {
            Some(TransportSlice::Tcp(t)) => {
                (Some(t.destination_port()), t.syn() && !t.ack(), t.fin())
            }
            Some(TransportSlice::Udp(u)) => (Some(u.destination_port()), false, false),
            _ => (None, false, false),
        };
        Some(Seen {
            dst,
            protocol,
            dst_port,
            syn_only,
            fin,
            fragment,
            vlans,
        })
    }

    fn for_a_vip(vips: &[VipTarget], s: &Seen) -> bool {
        vips.iter().any(|v| match s.dst_port {
            Some(port) => v.matches(s.dst, s.protocol, port),
            None => v.address == s.dst && v.protocol == s.protocol,
        })
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = pcap_bytes(&spec());
        assert_eq!(a, pcap_bytes(&spec()));
        let other = TraceSpec { seed: 43, ..spec() };
        assert_ne!(a, pcap_bytes(&other));
    }

    /// The bytes of the example trace are part of the format: the same on every platform
    /// and release. A deliberate change to the generator updates this digest.
    #[test]
    fn example_trace_is_pinned() {
        let bytes = pcap_bytes(&TraceSpec::example(vips()));
        let fnv1a = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        assert_eq!((bytes.len(), fnv1a), PINNED_EXAMPLE);
    }
    const PINNED_EXAMPLE: (usize, u64) = (1_071_750, 16_084_942_014_743_604_160);

    #[test]
    fn parts_of_the_trace_draw_from_independent_streams() {
        let flows_of = |spec: &TraceSpec| -> Vec<Frame> {
            let t = generate_trace(spec).unwrap();
            t.frames
                .into_iter()
                .zip(t.kinds)
                .filter(|(_, k)| matches!(k, FrameKind::Flow(_)))
                .map(|(f, _)| f)
                .collect()
        };
        let more_noise = TraceSpec {
            malformed: 500,
            passthrough: 300,
            syn_flood: None,
            ..spec()
        };
        assert_eq!(flows_of(&spec()), flows_of(&more_noise));
    }

    #[test]
    fn frame_counts_match_the_spec() {
        let spec = spec();
        let t = generate_trace(&spec).unwrap();
        assert_eq!(t.frames.len(), t.kinds.len());
        assert_eq!(t.flows.len(), spec.flows as usize);
        let mut counts: HashMap<&'static str, u64> = HashMap::new();
        let mut per_flow = vec![0u32; t.flows.len()];
        for k in &t.kinds {
            let name = match k {
                FrameKind::Flow(n) => {
                    per_flow[*n as usize] += 1;
                    "flow"
                }
                FrameKind::SynFlood => "flood",
                FrameKind::Malformed(_) => "malformed",
                FrameKind::Passthrough(_) => "passthrough",
            };
            *counts.entry(name).or_default() += 1;
        }
        assert_eq!(counts["flood"], u64::from(spec.syn_flood.unwrap().packets));
        assert_eq!(counts["malformed"], u64::from(spec.malformed));
        assert_eq!(counts["passthrough"], u64::from(spec.passthrough));
        for (f, &frames) in t.flows.iter().zip(&per_flow) {
            assert_eq!(f.frames, frames);
            if f.protocol == TCP {
                assert_eq!(f.frames, f.packets);
            } else {
                assert!((f.packets..=3 * f.packets).contains(&f.frames));
            }
            assert!((1..=spec.max_packets_per_flow).contains(&f.packets));
        }
        let v6 = t.flows.iter().filter(|f| f.client.is_ipv6()).count() as f64;
        let tagged = t.flows.iter().filter(|f| f.vlan_tags > 0).count() as f64;
        let n = t.flows.len() as f64;
        assert!((v6 / n - 0.3).abs() < 0.1, "IPv6 share {}", v6 / n);
        assert!((tagged / n - 0.2).abs() < 0.08, "VLAN share {}", tagged / n);
    }

    #[test]
    fn every_generated_frame_but_the_malformed_parses_to_its_destination() {
        let spec = spec();
        let t = generate_trace(&spec).unwrap();
        let mut passthrough_kinds = BTreeSet::new();
        for (frame, kind) in t.frames.iter().zip(&t.kinds) {
            assert!(frame.data.len() >= MIN_FRAME || matches!(kind, FrameKind::Malformed(_)));
            let seen = see(&frame.data);
            match *kind {
                FrameKind::Flow(n) => {
                    let flow = &t.flows[n as usize];
                    let s = seen.unwrap_or_else(|| panic!("flow {n}: {:02x?}", frame.data));
                    let vip = spec.vips[flow.vip];
                    assert_eq!((s.dst, s.protocol), (vip.address, vip.protocol));
                    assert_eq!(s.vlans, flow.vlan_tags);
                    if !s.fragment {
                        assert_eq!(s.dst_port, Some(flow.dst_port));
                    }
                    assert!(!s.fragment || flow.protocol == UDP);
                    assert!(for_a_vip(&spec.vips, &s));
                }
                FrameKind::SynFlood => {
                    let s = seen.unwrap();
                    let vip = spec.vips[spec.syn_flood.unwrap().vip];
                    assert_eq!((s.dst, s.dst_port), (vip.address, Some(vip.service_port())));
                    assert!(s.syn_only);
                }
                FrameKind::Passthrough(k) => {
                    passthrough_kinds.insert(k);
                    let p = SlicedPacket::from_ethernet(&frame.data).unwrap();
                    if k == PassthroughKind::Arp {
                        assert!(matches!(p.net, Some(NetSlice::Arp(_))));
                        assert_eq!(&frame.data[12..14], &[0x08, 0x06]);
                    } else {
                        assert!(!for_a_vip(&spec.vips, &seen.unwrap()), "{k:?} hits a VIP");
                    }
                }
                FrameKind::Malformed(_) => {}
            }
        }
        assert_eq!(passthrough_kinds.len(), 4, "{passthrough_kinds:?}");
    }

    #[test]
    fn flow_sizes_have_a_heavy_tail() {
        let t = generate_trace(&TraceSpec::mixed(vips(), 50_000)).unwrap();
        let mut sizes: Vec<u32> = t.flows.iter().map(|f| f.packets).collect();
        sizes.sort_unstable();
        let (median, largest) = (sizes[sizes.len() / 2], sizes[sizes.len() - 1]);
        assert!(median <= 10, "median {median}");
        assert!(largest >= 50 * median, "largest {largest}, median {median}");
        // The top 1 % of flows carry a large share of the packets.
        let total: u64 = sizes.iter().map(|&s| u64::from(s)).sum();
        let top: u64 = sizes[sizes.len() * 99 / 100..]
            .iter()
            .map(|&s| u64::from(s))
            .sum();
        assert!(top * 4 > total, "top 1 % carry {top} of {total}");
    }

    #[test]
    fn timestamps_are_in_order_and_flows_start_on_time() {
        let t = generate_trace(&spec()).unwrap();
        assert!(t.frames.windows(2).all(|w| w[0].ts <= w[1].ts));
        assert!(t.frames[0].ts >= TRACE_EPOCH);
        let mut first_seen = vec![None; t.flows.len()];
        for (frame, kind) in t.frames.iter().zip(&t.kinds) {
            if let FrameKind::Flow(n) = kind {
                first_seen[*n as usize].get_or_insert(frame.ts);
            }
        }
        for (flow, first) in t.flows.iter().zip(first_seen) {
            assert_eq!(
                first,
                Some(TRACE_EPOCH + Duration::from_micros(flow.start_us))
            );
            assert!(flow.start_us < spec().duration_us);
        }
    }

    #[test]
    fn tcp_flows_open_with_one_syn_and_close_with_fin() {
        let spec = spec();
        let t = generate_trace(&spec).unwrap();
        let mut by_flow: HashMap<u32, Vec<Seen>> = HashMap::new();
        let mut syns_to_vips = 0u64;
        for (frame, kind) in t.frames.iter().zip(&t.kinds) {
            if matches!(kind, FrameKind::Malformed(_)) {
                continue;
            }
            let Some(s) = see(&frame.data) else { continue };
            if s.syn_only && for_a_vip(&spec.vips, &s) {
                syns_to_vips += 1;
            }
            if let FrameKind::Flow(n) = kind {
                by_flow.entry(*n).or_default().push(s);
            }
        }
        let mut tcp_flows = 0;
        for (n, frames) in &by_flow {
            if t.flows[*n as usize].protocol != TCP {
                continue;
            }
            tcp_flows += 1;
            assert!(frames[0].syn_only, "flow {n} starts without SYN");
            assert_eq!(frames.iter().filter(|s| s.syn_only).count(), 1);
            assert_eq!(frames.len() > 1, frames.last().unwrap().fin, "flow {n}");
        }
        let flood = u64::from(spec.syn_flood.unwrap().packets);
        assert!(tcp_flows > 50);
        assert_eq!(syns_to_vips, tcp_flows + flood);
    }

    #[test]
    fn fragment_fraction_is_honoured() {
        let t = generate_trace(&spec()).unwrap();
        let (mut datagrams, mut fragmented) = (0u32, 0u32);
        for (frame, kind) in t.frames.iter().zip(&t.kinds) {
            if let FrameKind::Flow(n) = kind {
                if t.flows[*n as usize].protocol != UDP {
                    continue;
                }
                let p = SlicedPacket::from_ethernet(&frame.data).unwrap();
                // Count each datagram at its first (or only) frame: the one with a UDP header.
                if matches!(p.transport, Some(TransportSlice::Udp(_))) || first_fragment(&p) {
                    datagrams += 1;
                    fragmented += u32::from(p.is_ip_payload_fragmented());
                }
            }
        }
        let share = f64::from(fragmented) / f64::from(datagrams);
        assert!(
            datagrams > 200 && (share - 0.3).abs() < 0.06,
            "{fragmented}/{datagrams}"
        );
    }

    fn first_fragment(p: &SlicedPacket) -> bool {
        match &p.net {
            Some(NetSlice::Ipv4(v4)) => {
                v4.is_payload_fragmented() && v4.header().fragments_offset().value() == 0
            }
            Some(NetSlice::Ipv6(v6)) => v6.extensions().clone().into_iter().any(|ext| {
                matches!(ext, Ipv6ExtensionSlice::Fragment(f) if f.fragment_offset().value() == 0)
            }),
            Some(NetSlice::Arp(_)) | None => false,
        }
    }

    #[test]
    fn written_pcap_reads_back_identically() {
        let frames = generate(&spec()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.pcap");
        write_pcap_file(&path, &frames).unwrap();
        assert_eq!(read_pcap_file(&path).unwrap(), frames);
    }

    #[test]
    fn presets_hit_their_size_and_include_every_ingredient() {
        let example = generate_trace(&TraceSpec::example(vips())).unwrap();
        let n = example.frames.len();
        assert!((1500..=2600).contains(&n), "example has {n} frames");
        let cases: BTreeSet<_> = example
            .kinds
            .iter()
            .filter_map(|k| match k {
                FrameKind::Malformed(c) => Some(*c),
                _ => None,
            })
            .collect();
        assert_eq!(cases.len(), MalformedCase::ALL.len());
        for target in [20_000u32, 200_000] {
            let n = generate(&TraceSpec::mixed(vips(), target)).unwrap().len() as f64;
            let ratio = n / f64::from(target);
            assert!((0.7..1.3).contains(&ratio), "mixed({target}) gave {n}");
        }
    }

    #[test]
    fn single_family_vip_sets_work() {
        for vips in [vec![vips()[0]], vec![vips()[3]]] {
            let t = generate_trace(&TraceSpec::example(vips.clone())).unwrap();
            let family = vips[0].family();
            assert!(t.flows.iter().all(|f| IpFamily::of(f.client) == family));
            assert!(!t.flows.is_empty());
            assert_eq!(
                TraceSpec::example(vips.clone()).syn_flood.is_some(),
                vips[0].protocol == TCP
            );
        }
    }

    #[test]
    fn degenerate_but_valid_specs_generate() {
        let only_noise = TraceSpec {
            flows: 0,
            clients: 0,
            duration_us: 0,
            ..spec()
        };
        let t = generate_trace(&only_noise).unwrap();
        assert!(t.flows.is_empty());
        assert!(t.frames.iter().all(|f| f.ts >= TRACE_EPOCH));
        // One client, many flows: 5-tuples stay distinct while ports last.
        let one_client = TraceSpec {
            clients: 1,
            flows: 500,
            ..spec()
        };
        let t = generate_trace(&one_client).unwrap();
        let tuples: BTreeSet<_> = t
            .flows
            .iter()
            .map(|f| (f.client, f.src_port, f.vip))
            .collect();
        assert_eq!(tuples.len(), 500);
    }

    #[test]
    fn bad_specs_are_errors_not_panics() {
        let base = spec();
        let cases: Vec<(TraceSpec, SpecError)> = vec![
            (
                TraceSpec {
                    vips: vec![],
                    ..base.clone()
                },
                SpecError::NoVips,
            ),
            (
                TraceSpec {
                    vips: vec![VipTarget {
                        protocol: 1,
                        ..vips()[0]
                    }],
                    ..base.clone()
                },
                SpecError::BadProtocol {
                    index: 0,
                    protocol: 1,
                },
            ),
            (
                TraceSpec {
                    vlan_fraction: f64::NAN,
                    ..base.clone()
                },
                SpecError::BadFraction {
                    name: "vlan_fraction",
                    value: f64::NAN,
                },
            ),
            (
                TraceSpec {
                    fragment_fraction: 1.5,
                    ..base.clone()
                },
                SpecError::BadFraction {
                    name: "fragment_fraction",
                    value: 1.5,
                },
            ),
            (
                TraceSpec {
                    zipf_exponent: -1.0,
                    ..base.clone()
                },
                SpecError::BadZipfExponent(-1.0),
            ),
            (
                TraceSpec {
                    max_packets_per_flow: 0,
                    ..base.clone()
                },
                SpecError::BadMaxPackets(0),
            ),
            (
                TraceSpec {
                    clients: 0,
                    ..base.clone()
                },
                SpecError::BadClients(0),
            ),
            (
                TraceSpec {
                    vips: vec![vips()[0]],
                    ..base.clone()
                },
                SpecError::NoVipForFamily {
                    family: IpFamily::V6,
                    fraction: 0.3,
                },
            ),
            (
                TraceSpec {
                    syn_flood: Some(SynFlood {
                        vip: 1,
                        ..base.syn_flood.unwrap()
                    }),
                    ..base.clone()
                },
                SpecError::BadFloodTarget(1),
            ),
            (
                TraceSpec {
                    syn_flood: Some(SynFlood {
                        vip: 9,
                        ..base.syn_flood.unwrap()
                    }),
                    ..base.clone()
                },
                SpecError::BadFloodTarget(9),
            ),
            (
                TraceSpec {
                    syn_flood: Some(SynFlood {
                        rate_pps: 0,
                        ..base.syn_flood.unwrap()
                    }),
                    ..base.clone()
                },
                SpecError::ZeroFloodRate,
            ),
            (
                TraceSpec {
                    duration_us: u64::MAX,
                    ..base.clone()
                },
                SpecError::TooLong {
                    name: "duration_us",
                    value: u64::MAX,
                },
            ),
            (
                TraceSpec {
                    mean_gap_us: u32::MAX,
                    ..base.clone()
                },
                SpecError::GapTooLong(u32::MAX),
            ),
            (
                TraceSpec {
                    malformed: u32::MAX,
                    ..base.clone()
                },
                SpecError::TooManyFrames(0),
            ),
            (
                TraceSpec {
                    flows: 100_000,
                    zipf_exponent: 0.0,
                    max_packets_per_flow: MAX_PACKETS_PER_FLOW,
                    ..base.clone()
                },
                SpecError::TooManyFrames(0),
            ),
        ];
        for (spec, expected) in cases {
            let got = generate(&spec).unwrap_err();
            match (&got, &expected) {
                (SpecError::TooManyFrames(n), SpecError::TooManyFrames(_)) => {
                    assert!(*n > MAX_FRAMES)
                }
                (
                    SpecError::BadFraction { name, value },
                    SpecError::BadFraction {
                        name: n2,
                        value: v2,
                    },
                ) => {
                    assert_eq!(name, n2);
                    assert!(value == v2 || (value.is_nan() && v2.is_nan()));
                }
                _ => assert_eq!(got, expected),
            }
            assert!(!got.to_string().is_empty());
        }
    }
}
