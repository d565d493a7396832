//! The hardware rewriter against `flowgate_core::rewrite::rewrite`: the IP frames of a
//! generated trace, each with a random action (DSR, IP-in-IP or GUE, IPv4 or IPv6 backend,
//! random MACs, prefixes and hash; some forced to pass or drop; jumbo frames at the
//! `MAX_FRAME_LEN` edge), streamed through [`Rewriter`] in rust-hdl's simulator and
//! compared byte for byte with core; the frame FIFO under random traffic; then the emitted
//! Verilog through yosys and Verilator.

use flowgate_core::parse::{parse, Parsed, ParsedFrame};
use flowgate_core::rewrite::{rewrite, EncapSource, Mode, RewriteParams, MAX_FRAME_LEN};
use flowgate_core::DropReason;
use flowgate_hdl::frame_fifo::FrameFifo;
use flowgate_hdl::rewrite::{
    Rewriter, KIND_DROP, KIND_FORWARD, KIND_PASS, TUSER_FORWARDED, TUSER_PASSED, VERDICT_DROPPED,
    VERDICT_ENCAP_TOO_LARGE, VERDICT_FORWARDED, VERDICT_PASSED,
};
use flowgate_hdl::toolchain::{
    verilator_lint, yosys_synth, SynthFlow, ToolError, RUST_HDL_LINT_WAIVERS,
};
use flowgate_hdl::{emit_verilog, Design};
use flowgate_traces::{generate_trace, TraceSpec, VipTarget};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_hdl::prelude::*;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// A frame and core's parse of it.
type IpFrame = (Vec<u8>, ParsedFrame);

/// One frame and what the block is told to do with it.
#[derive(Debug, Clone)]
struct Case {
    frame: Vec<u8>,
    parsed: ParsedFrame,
    kind: u64,
    mode: Mode,
    params: RewriteParams,
}

/// What leaves the block for a frame: its bytes and `tuser`, or nothing; and the event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    out: Option<(Vec<u8>, u8)>,
    verdict: u8,
}

impl Case {
    /// The contract's answer, in the block's encoding.
    fn expected(&self) -> Expected {
        match self.kind {
            KIND_PASS => Expected {
                out: Some((self.frame.clone(), TUSER_PASSED)),
                verdict: VERDICT_PASSED,
            },
            KIND_FORWARD => {
                let mut out = Vec::new();
                match rewrite(&self.frame, &self.parsed, self.mode, &self.params, &mut out) {
                    Ok(()) => Expected {
                        out: Some((out, TUSER_FORWARDED)),
                        verdict: VERDICT_FORWARDED,
                    },
                    Err(DropReason::EncapTooLarge) => Expected {
                        out: None,
                        verdict: VERDICT_ENCAP_TOO_LARGE,
                    },
                    Err(other) => panic!("a parsed frame cannot fail with {other:?}"),
                }
            }
            _ => Expected {
                out: None,
                verdict: VERDICT_DROPPED,
            },
        }
    }
}

fn bits128(v: u128) -> Bits<128> {
    (Bits::<128>::from((v >> 64) as u64) << 64) | Bits::<128>::from(v as u64)
}

fn mac_bits(mac: [u8; 6]) -> Bits<48> {
    let mut v = [0u8; 8];
    v[2..].copy_from_slice(&mac);
    Bits::from(u64::from_be_bytes(v))
}

fn addr_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Drives the action ports with `case`'s action.
fn drive_action<const D: usize, const K: usize>(x: &mut Rewriter<D, K>, case: &Case) {
    let p = &case.params;
    x.act_kind.next = case.kind.into();
    x.act_mode.next = u64::from(case.mode.code()).into();
    x.act_gue_port.next = u64::from(case.mode.param()).into();
    x.act_own_mac.next = mac_bits(p.own_mac);
    x.act_backend_mac.next = mac_bits(p.backend_mac);
    x.act_backend_addr.next = bits128(addr_bits(p.backend_addr));
    x.act_backend_v6.next = p.backend_addr.is_ipv6();
    x.act_encap_v4_prefix.next = u64::from(u32::from(p.encap_src_v4.prefix)).into();
    x.act_encap_v4_len.next = u64::from(p.encap_src_v4.len).into();
    x.act_encap_v6_prefix.next = bits128(u128::from(p.encap_src_v6.prefix));
    x.act_encap_v6_len.next = u64::from(p.encap_src_v6.len).into();
    x.act_hash.next = u64::from(p.hash).into();
    x.act_l3_offset.next = u64::from(case.parsed.l3_offset).into();
    x.act_ip_len.next = u64::from(case.parsed.ip_len).into();
    x.act_inner_v6.next = case.parsed.is_ipv6();
    x.act_dscp_ecn.next = u64::from(case.parsed.dscp_ecn).into();
    x.act_inner_sum.next = u64::from(inner_sum(case)).into();
}

/// What the top's inner summer hands the rewriter with the action: the inner datagram
/// as big-endian 16-bit words added up, unfolded (`flowgate_hdl::inner_sum`, tested
/// against the parser on its own).
fn inner_sum(case: &Case) -> u32 {
    let l3 = usize::from(case.parsed.l3_offset);
    let datagram = &case.frame[l3..l3 + usize::from(case.parsed.ip_len)];
    datagram
        .chunks(2)
        .map(|w| u32::from(w[0]) << 8 | u32::from(w.get(1).copied().unwrap_or(0)))
        .sum()
}

/// One beat's `tdata` and `tkeep`: byte `j` of `chunk` in lane `j`.
fn lanes<const D: usize, const K: usize>(chunk: &[u8]) -> (Bits<D>, Bits<K>) {
    let mut data = Bits::<D>::default();
    let mut keep = Bits::<K>::default();
    for (j, &byte) in chunk.iter().enumerate() {
        data.set_bits::<8>(8 * j, u64::from(byte).into());
        keep = keep.replace_bit(j, true);
    }
    (data, keep)
}

/// What the block did: the frames out (bytes, tuser), the events, and the clocks from
/// the first input beat taken to the last output beat.
#[derive(Debug, Default)]
struct Run {
    frames: Vec<(Vec<u8>, u8)>,
    events: Vec<u8>,
    /// Malformed output: tkeep not contiguous, tuser changing inside a frame.
    faults: Vec<String>,
    clocks: u64,
}

/// How the testbench paces the block.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    /// Out of 8: chance that the output is not ready in a clock.
    stall_out: u32,
    /// Out of 8: chance that the input has no beat in a clock.
    gap_in: u32,
}

const FULL_SPEED: Pacing = Pacing {
    stall_out: 0,
    gap_in: 0,
};

/// Streams `cases` through a `Rewriter<D, K>`: actions are offered as soon as the block
/// takes them (so before or with their frame's first beat), beats back to back unless
/// `pacing` says otherwise.
fn run_rewriter<const D: usize, const K: usize>(cases: &[Case], pacing: Pacing) -> Run {
    let mut uut = Rewriter::<D, K>::default();
    uut.connect_all();
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<Rewriter<D, K>>| {
        x.clock.next = !x.clock.val()
    });
    let beats: usize = cases
        .iter()
        .map(|c| c.frame.len().div_ceil(K) + 40usize.div_ceil(K) + 1)
        .sum();
    let result = Arc::new(Mutex::new(Run::default()));
    let cases_tb = cases.to_vec();
    let result_tb = result.clone();
    sim.add_testbench(move |mut sim: Sim<Rewriter<D, K>>| {
        let mut x = sim.init()?;
        let mut rng = ChaCha8Rng::seed_from_u64(0x005e_717e);
        let mut input: VecDeque<(Bits<D>, Bits<K>, bool)> = VecDeque::new();
        for c in &cases_tb {
            let chunks: Vec<&[u8]> = c.frame.chunks(K).collect();
            for (n, chunk) in chunks.iter().enumerate() {
                let (data, keep) = lanes::<D, K>(chunk);
                input.push_back((data, keep, n + 1 == chunks.len()));
            }
        }
        let mut actions = 0usize;
        let mut frames_out = 0usize;
        let expected_out = cases_tb
            .iter()
            .filter(|c| c.expected().out.is_some())
            .count();
        let mut partial: Vec<u8> = Vec::new();
        let mut partial_user: Option<u8> = None;
        let mut clock = 0u64;
        let mut first_in: Option<u64> = None;
        let mut last_out = 0u64;
        let mut idle = 0u32;
        let limit = 4 * beats as u64 + 4 * cases_tb.len() as u64 + 90;
        loop {
            wait_clock_false!(sim, clock, x);
            clock += 1;
            // Drive this clock's inputs.
            let offer_beat = !input.is_empty() && !rng.gen_ratio(pacing.gap_in, 8);
            if offer_beat {
                let (data, keep, last) = input[0];
                x.s_axis_tdata.next = data;
                x.s_axis_tkeep.next = keep;
                x.s_axis_tlast.next = last;
            }
            x.s_axis_tvalid.next = offer_beat;
            if actions < cases_tb.len() {
                drive_action(&mut x, &cases_tb[actions]);
            }
            x.act_valid.next = actions < cases_tb.len();
            x.m_axis_tready.next = !rng.gen_ratio(pacing.stall_out, 8);
            // Let it settle, then see what the coming rising edge transfers.
            x = sim.wait(1, x)?;
            let mut r = result_tb.lock().unwrap();
            if x.ev_valid.val() {
                r.events.push(x.ev_verdict.val().to_u8());
            }
            if offer_beat && x.s_axis_tready.val() {
                input.pop_front();
                first_in.get_or_insert(clock);
            }
            if x.act_valid.val() && x.act_ready.val() {
                actions += 1;
            }
            if x.m_axis_tvalid.val() && x.m_axis_tready.val() {
                let data = x.m_axis_tdata.val();
                let keep = x.m_axis_tkeep.val();
                let user = x.m_axis_tuser.val().to_u8();
                if partial_user.is_some_and(|u| u != user) {
                    r.faults.push(format!(
                        "frame {frames_out}: tuser changes inside the frame"
                    ));
                }
                partial_user = Some(user);
                let kept = (0..K).take_while(|&j| keep.get_bit(j)).count();
                if (kept..K).any(|j| keep.get_bit(j)) {
                    r.faults
                        .push(format!("frame {frames_out}: tkeep not contiguous"));
                }
                for j in 0..kept {
                    partial.push(data.get_bits::<8>(8 * j).to_u8());
                }
                if x.m_axis_tlast.val() {
                    r.frames.push((std::mem::take(&mut partial), user));
                    partial_user = None;
                    frames_out += 1;
                }
                last_out = clock;
            }
            let done = input.is_empty()
                && actions == cases_tb.len()
                && frames_out >= expected_out
                && r.events.len() >= cases_tb.len();
            drop(r);
            wait_clock_true!(sim, clock, x);
            sim_assert!(sim, clock < limit, x);
            if done {
                idle += 1;
                // A few idle clocks: nothing else may come out.
                if idle > 8 {
                    break;
                }
            }
        }
        let mut r = result_tb.lock().unwrap();
        r.clocks = last_out + 1 - first_in.unwrap_or(0);
        drop(r);
        sim.done(x)
    });
    // 10 time units a clock; stalls and gaps cost at most a few clocks in eight.
    sim.run(
        Box::new(uut),
        10 * (beats as u64 * 4 + cases.len() as u64 * 4 + 100),
    )
    .expect("simulation ended early (a frame or an event never came)");
    let r = std::mem::take(&mut *result.lock().unwrap());
    r
}

/// Runs `cases` and asserts every frame and every event is core's.
fn assert_matches_core<const D: usize, const K: usize>(cases: &[Case], pacing: Pacing) -> Run {
    let run = run_rewriter::<D, K>(cases, pacing);
    assert!(
        run.faults.is_empty(),
        "{:?}",
        &run.faults[..run.faults.len().min(5)]
    );
    let expected: Vec<Expected> = cases.iter().map(Case::expected).collect();
    let verdicts: Vec<u8> = expected.iter().map(|e| e.verdict).collect();
    assert_eq!(run.events, verdicts, "one event per frame, core's verdict");
    let mut out = run.frames.iter();
    for (i, (case, e)) in cases.iter().zip(&expected).enumerate() {
        let Some((want, want_user)) = &e.out else {
            continue;
        };
        let (got, user) = out
            .next()
            .unwrap_or_else(|| panic!("frame {i} never came out"));
        assert!(
            got == want && user == want_user,
            "frame {i} ({:?}, {:?}, backend {}, vlans {}, len {}, ip_len {}):\n  hw   {user} {:02x?}\n  core {want_user} {:02x?}",
            case.kind,
            case.mode,
            case.params.backend_addr,
            case.parsed.vlan_count,
            case.frame.len(),
            case.parsed.ip_len,
            got,
            want
        );
    }
    assert!(
        out.next().is_none(),
        "more frames out than core forwards and passes"
    );
    run
}

fn vips() -> Vec<VipTarget> {
    vec![
        VipTarget::tcp(Ipv4Addr::new(192, 0, 2, 10).into(), 443),
        VipTarget::udp(Ipv4Addr::new(192, 0, 2, 11).into(), 53),
        VipTarget::tcp("2001:db8::10".parse::<Ipv6Addr>().unwrap().into(), 80),
        VipTarget::udp("2001:db8::53".parse::<Ipv6Addr>().unwrap().into(), 0),
    ]
}

/// The IP frames (what the pipeline can forward) of a generated mixed trace.
fn trace_ip_frames(count: u32) -> Vec<(Vec<u8>, ParsedFrame)> {
    let trace = generate_trace(&TraceSpec::mixed(vips(), count)).expect("valid spec");
    trace
        .frames
        .into_iter()
        .filter_map(|f| match parse(&f.data) {
            Ok(Parsed::Ip(p)) => Some((f.data, p)),
            _ => None,
        })
        .collect()
}

fn random_params<R: Rng>(rng: &mut R) -> RewriteParams {
    let backend_addr = if rng.gen_bool(0.5) {
        IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>()))
    } else {
        IpAddr::V6(Ipv6Addr::from(rng.gen::<u128>()))
    };
    // Mostly real prefix lengths; now and then one past the width (no host bits).
    let len4 = if rng.gen_ratio(1, 8) {
        rng.gen()
    } else {
        rng.gen_range(0..=32)
    };
    let len6 = if rng.gen_ratio(1, 8) {
        rng.gen()
    } else {
        rng.gen_range(0..=128)
    };
    RewriteParams {
        own_mac: rng.gen(),
        backend_mac: rng.gen(),
        backend_addr,
        encap_src_v4: EncapSource {
            prefix: Ipv4Addr::from(rng.gen::<u32>()),
            len: len4,
        },
        encap_src_v6: EncapSource {
            prefix: Ipv6Addr::from(rng.gen::<u128>()),
            len: len6,
        },
        hash: rng.gen(),
    }
}

/// Each frame with a random action: 80 % forward (DSR, IP-in-IP or, to IPv4 backends,
/// GUE, to either family), 10 % pass, 10 % drop.
fn random_cases(frames: Vec<(Vec<u8>, ParsedFrame)>, seed: u64) -> Vec<Case> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    frames
        .into_iter()
        .map(|(frame, parsed)| {
            let roll = rng.gen_range(0..10);
            let kind = match roll {
                0 => KIND_PASS,
                1 => KIND_DROP,
                _ => KIND_FORWARD,
            };
            let mode = if rng.gen_bool(0.6) {
                Mode::IpIp
            } else {
                Mode::Dsr
            };
            let params = random_params(&mut rng);
            let mode = if mode == Mode::IpIp && rng.gen_bool(0.5) {
                Mode::Gue { port: rng.gen() }
            } else {
                mode
            };
            Case {
                frame,
                parsed,
                kind,
                mode,
                params,
            }
        })
        .collect()
}

/// An IPv4/UDP frame whose datagram is `ip_len` bytes, behind `vlans` tags.
fn udp_frame(ip_len: usize, vlans: usize) -> (Vec<u8>, ParsedFrame) {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for _ in 0..vlans {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0u8; ip_len];
    ip[0] = 0x45;
    ip[1] = 0x2e;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[100, 64, 0, 1]);
    ip[16..20].copy_from_slice(&[192, 0, 2, 11]);
    ip[20..22].copy_from_slice(&40000u16.to_be_bytes());
    ip[22..24].copy_from_slice(&53u16.to_be_bytes());
    ip[24..26].copy_from_slice(&((ip_len - 20) as u16).to_be_bytes());
    for (i, b) in ip[28..].iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    f.extend_from_slice(&ip);
    let parsed = match parse(&f) {
        Ok(Parsed::Ip(p)) => p,
        other => panic!("test frame does not parse: {other:?}"),
    };
    (f, parsed)
}

/// Jumbo frames at the edge of `MAX_FRAME_LEN`: for each outer family, one whose
/// encapsulation is exactly `MAX_FRAME_LEN` and one a byte over (dropped).
fn jumbo_cases(seed: u64) -> Vec<Case> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cases = Vec::new();
    for (mode, v6) in [
        (Mode::IpIp, false),
        (Mode::IpIp, true),
        (Mode::Gue { port: 6080 }, false),
        (Mode::Gue { port: 6080 }, true),
    ] {
        for (vlans, over) in [(0, 0), (2, 1), (1, 1), (0, 0)] {
            let outer = mode.spec().outer_len(v6);
            let ip_len = MAX_FRAME_LEN - (14 + 4 * vlans) - outer + over;
            let (frame, parsed) = udp_frame(ip_len, vlans);
            let mut params = random_params(&mut rng);
            params.backend_addr = if v6 {
                IpAddr::V6(Ipv6Addr::from(rng.gen::<u128>()))
            } else {
                IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>()))
            };
            cases.push(Case {
                frame,
                parsed,
                kind: KIND_FORWARD,
                mode,
                params,
            });
        }
    }
    cases
}

/// The trace covers what the rewriter distinguishes.
fn assert_coverage(cases: &[Case]) {
    let has = |f: &dyn Fn(&Case) -> bool| cases.iter().any(f);
    assert!(has(&|c| c.parsed.vlan_count == 1), "no 1-tag frame");
    assert!(has(&|c| c.parsed.vlan_count == 2), "no 2-tag frame");
    assert!(has(&|c| c.parsed.is_ipv6()) && has(&|c| !c.parsed.is_ipv6()));
    assert!(
        has(&|c| c.frame.len() > usize::from(c.parsed.l3_offset + c.parsed.ip_len)),
        "no padded frame"
    );
    for (mode, v6) in [
        (Mode::IpIp, false),
        (Mode::IpIp, true),
        (Mode::Dsr, false),
        (Mode::Gue { port: 0 }, false),
        (Mode::Gue { port: 0 }, true),
    ] {
        assert!(
            has(&|c| c.kind == KIND_FORWARD
                && c.mode.code() == mode.code()
                && c.params.backend_addr.is_ipv6() == v6),
            "no {mode:?} frame to an IPv{} backend",
            if v6 { 6 } else { 4 }
        );
    }
    assert!(has(&|c| c.kind == KIND_PASS) && has(&|c| c.kind == KIND_DROP));
}

/// Every vlan count, padding and family, a few of each kind, from the trace: a
/// manageable set with all the shapes.
fn trace_cases(count: usize, seed: u64) -> Vec<Case> {
    let frames = trace_ip_frames(2000);
    // Tagged and padded frames are rarer: up to a sixth of the set each, then the rest.
    let groups: [&dyn Fn(&IpFrame) -> bool; 4] = [
        &|(_, p)| p.vlan_count == 2,
        &|(_, p)| p.vlan_count == 1,
        &|(f, p)| p.vlan_count == 0 && f.len() > usize::from(p.l3_offset + p.ip_len),
        &|_| true,
    ];
    let mut left = frames;
    let mut picked = Vec::new();
    for (g, in_group) in groups.iter().enumerate() {
        let share = if g == 3 {
            count - picked.len()
        } else {
            count / 6
        };
        let (mut take, rest): (Vec<_>, Vec<_>) = left.into_iter().partition(|f| in_group(f));
        left = rest;
        left.extend(take.drain(share.min(take.len())..));
        picked.extend(take);
    }
    // Interleave the kinds rather than grouping them.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5);
    for i in (1..picked.len()).rev() {
        picked.swap(i, rng.gen_range(0..=i));
    }
    let cases = random_cases(picked, seed);
    assert_coverage(&cases);
    cases
}

#[test]
fn trace_frames_rewrite_as_core_does_64bit() {
    let mut cases = trace_cases(300, 0x64);
    cases.extend(jumbo_cases(0x64));
    let run = assert_matches_core::<64, 8>(&cases, FULL_SPEED);
    eprintln!("64-bit: {} frames in {} clocks", cases.len(), run.clocks);
}

#[test]
fn trace_frames_rewrite_as_core_does_64bit_with_backpressure() {
    let cases = trace_cases(200, 0x6464);
    assert_matches_core::<64, 8>(
        &cases,
        Pacing {
            stall_out: 3,
            gap_in: 2,
        },
    );
}

#[test]
fn trace_frames_rewrite_as_core_does_512bit() {
    let mut cases = trace_cases(400, 0x512);
    cases.extend(jumbo_cases(0x512));
    let run = assert_matches_core::<512, 64>(&cases, FULL_SPEED);
    eprintln!("512-bit: {} frames in {} clocks", cases.len(), run.clocks);
}

#[test]
fn trace_frames_rewrite_as_core_does_512bit_with_backpressure() {
    let cases = trace_cases(200, 0x5125);
    assert_matches_core::<512, 64>(
        &cases,
        Pacing {
            stall_out: 3,
            gap_in: 2,
        },
    );
}

// ---- Throughput: back-to-back minimum-size frames ----

/// `n` minimum-size frames (60 bytes, as the MAC delivers them) with one action each.
fn min_size_cases(n: usize, kind: u64, mode: Mode, v6: bool, padded: bool) -> Vec<Case> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x60);
    (0..n)
        .map(|_| {
            // A 46-byte datagram fills the minimum frame; a 28-byte one is padded to it.
            let (mut frame, parsed) = udp_frame(if padded { 28 } else { 46 }, 0);
            frame.resize(60, 0);
            let mut params = random_params(&mut rng);
            params.backend_addr = if v6 {
                IpAddr::V6(Ipv6Addr::from(rng.gen::<u128>()))
            } else {
                IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>()))
            };
            Case {
                frame,
                parsed,
                kind,
                mode,
                params,
            }
        })
        .collect()
}

/// Clocks the block needs at one beat per clock with no bubble: per frame, the larger
/// of its input and output beat counts.
fn ideal_clocks(cases: &[Case], keep: usize) -> u64 {
    cases
        .iter()
        .map(|c| {
            let out = c.expected().out.map_or(0, |(f, _)| f.len().div_ceil(keep));
            out.max(c.frame.len().div_ceil(keep)) as u64
        })
        .sum()
}

fn throughput<const D: usize, const K: usize>() {
    const N: usize = 64;
    // Input to output: the first beat is taken the clock after its action (prepare
    // register), and leaves through the output register.
    const LATENCY: u64 = 3;
    for (name, kind, mode, v6, padded) in [
        ("pass", KIND_PASS, Mode::Dsr, false, false),
        ("DSR", KIND_FORWARD, Mode::Dsr, false, false),
        ("IPv4-in-IPv4", KIND_FORWARD, Mode::IpIp, false, false),
        ("IPv4-in-IPv6", KIND_FORWARD, Mode::IpIp, true, false),
        (
            "IPv4-in-UDP-in-IPv4 (GUE)",
            KIND_FORWARD,
            Mode::Gue { port: 6080 },
            false,
            false,
        ),
        (
            "IPv4-in-UDP-in-IPv6 (GUE)",
            KIND_FORWARD,
            Mode::Gue { port: 6080 },
            true,
            false,
        ),
        (
            "IPv4-in-IPv4, padded",
            KIND_FORWARD,
            Mode::IpIp,
            false,
            true,
        ),
    ] {
        let cases = min_size_cases(N, kind, mode, v6, padded);
        let run = assert_matches_core::<D, K>(&cases, FULL_SPEED);
        let ideal = ideal_clocks(&cases, K);
        eprintln!(
            "{D}-bit {name}: {N} frames of 60 bytes in {} clocks ({:.3} frames/clock; {} beats out per frame)",
            run.clocks,
            N as f64 / run.clocks as f64,
            ideal / N as u64
        );
        assert!(
            run.clocks <= ideal + LATENCY,
            "{D}-bit {name}: {} clocks, {ideal} beats: a bubble between frames",
            run.clocks
        );
    }
}

#[test]
fn min_size_frames_stream_without_bubbles_64bit() {
    throughput::<64, 8>();
}

#[test]
fn min_size_frames_stream_without_bubbles_512bit() {
    throughput::<512, 64>();
}

// ---- The frame FIFO ----

/// Beats through a `FrameFifo` with random gaps and stalls: every beat out in order, and
/// the FIFO fills up (so `s_axis_tready` was exercised).
fn fifo_roundtrip<const D: usize, const K: usize, const A: usize, const A1: usize>(
    frames: &[Vec<u8>],
) {
    let mut uut = FrameFifo::<D, K, A, A1>::default();
    uut.connect_all();
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<FrameFifo<D, K, A, A1>>| {
        x.clock.next = !x.clock.val()
    });
    let mut beats: Vec<(Bits<D>, Bits<K>, bool)> = Vec::new();
    for f in frames {
        let chunks: Vec<&[u8]> = f.chunks(K).collect();
        for (n, c) in chunks.iter().enumerate() {
            let (d, k) = lanes::<D, K>(c);
            beats.push((d, k, n + 1 == chunks.len()));
        }
    }
    let total = beats.len();
    let got = Arc::new(Mutex::new((Vec::new(), 0u64)));
    let got_tb = got.clone();
    let beats_tb = beats.clone();
    sim.add_testbench(move |mut sim: Sim<FrameFifo<D, K, A, A1>>| {
        let beats = beats_tb.clone();
        let mut x = sim.init()?;
        let mut rng = ChaCha8Rng::seed_from_u64(0xf1f0);
        let mut next = 0usize;
        let mut out = Vec::new();
        let mut max_fill = 0u64;
        let mut clock = 0u64;
        while out.len() < total {
            wait_clock_false!(sim, clock, x);
            clock += 1;
            // Slow reader in bursts, so the FIFO fills and drains.
            let phase = (clock / 64).is_multiple_of(2);
            let offer = next < total && !rng.gen_ratio(1, 8);
            if offer {
                x.s_axis_tdata.next = beats[next].0;
                x.s_axis_tkeep.next = beats[next].1;
                x.s_axis_tlast.next = beats[next].2;
            }
            x.s_axis_tvalid.next = offer;
            x.m_axis_tready.next = if phase {
                rng.gen_ratio(1, 4)
            } else {
                !rng.gen_ratio(1, 8)
            };
            x = sim.wait(1, x)?;
            max_fill = max_fill.max(x.fill.val().to_u64());
            if offer && x.s_axis_tready.val() {
                next += 1;
            }
            if x.m_axis_tvalid.val() && x.m_axis_tready.val() {
                out.push((
                    x.m_axis_tdata.val(),
                    x.m_axis_tkeep.val(),
                    x.m_axis_tlast.val(),
                ));
            }
            wait_clock_true!(sim, clock, x);
            sim_assert!(sim, clock < 100 * total as u64 + 100, x);
        }
        *got_tb.lock().unwrap() = (out, max_fill);
        sim.done(x)
    });
    sim.run(Box::new(uut), 1000 * (beats.len() as u64 + 10))
        .expect("FIFO simulation");
    let (out, max_fill) = std::mem::take(&mut *got.lock().unwrap());
    assert_eq!(out.len(), beats.len());
    for (i, (o, b)) in out.iter().zip(&beats).enumerate() {
        assert!(o == b, "beat {i} differs");
    }
    assert_eq!(max_fill, 1 << A, "the FIFO never filled up");
}

#[test]
fn frame_fifo_keeps_every_beat_in_order() {
    let frames: Vec<Vec<u8>> = trace_ip_frames(300)
        .into_iter()
        .take(60)
        .map(|(f, _)| f)
        .collect();
    fifo_roundtrip::<64, 8, 4, 5>(&frames);
    fifo_roundtrip::<512, 64, 3, 4>(&frames);
}

// ---- Synthesis and lint ----

/// rust-hdl's only widening, `bit_cast`, emits `(x) & N'hff..ff` (N = the wider width),
/// which Verilator calls WIDTH although Verilog zero-extends it exactly. The rewriter
/// widens its narrow action fields into the 512-bit template this way; every WIDTH
/// warning must be on such a line, and with WIDTH waived the block is clean.
fn lint_but_for_widening(verilog: &str) {
    let lines: Vec<&str> = verilog.lines().collect();
    match verilator_lint(verilog, "top", RUST_HDL_LINT_WAIVERS) {
        Ok(()) => {}
        Err(ToolError::Rejected { log, .. }) => {
            for w in log.lines().filter(|l| l.starts_with("%Warning")) {
                assert!(w.starts_with("%Warning-WIDTH"), "{log}");
                let line_no: usize = w
                    .split(':')
                    .nth(2)
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or_else(|| panic!("no line number in {w}"));
                let line = lines[line_no - 1];
                let is_cast = [32usize, 128, 512, 576]
                    .iter()
                    .any(|&n| line.contains(&format!("& {n}'h{})", "f".repeat(n / 4))));
                assert!(is_cast, "WIDTH warning not from a bit_cast:\n{w}\n{line}");
            }
        }
        Err(other) => panic!("{other}"),
    }
    let mut waivers = RUST_HDL_LINT_WAIVERS.to_vec();
    waivers.push("WIDTH");
    verilator_lint(verilog, "top", &waivers).unwrap();
}

fn synthesizes(design: Design) {
    let verilog = emit_verilog(design);
    lint_but_for_widening(&verilog);
    let report = yosys_synth(&verilog, "top", SynthFlow::Generic).unwrap();
    eprintln!("{design:?}: {report}");
    assert!(report.flip_flops() > 0, "{report}");
}

#[test]
fn rewriter_64bit_synthesizes() {
    synthesizes(Design::FlowRewriter);
}

#[test]
fn rewriter_512bit_synthesizes() {
    synthesizes(Design::WideRewriter);
}

#[test]
fn frame_fifo_synthesizes() {
    // The 2048-deep FIFO is block RAM on an FPGA but flip-flops in a generic synthesis, so
    // yosys gets a 16-deep one; Verilator lints the real one.
    let mut small = FrameFifo::<64, 8, 4, 5>::default();
    small.connect_all();
    let verilog = generate_verilog(&small);
    let report = yosys_synth(&verilog, "top", SynthFlow::Generic).unwrap();
    eprintln!("FrameFifo<64, 8, 16 deep>: {report}");
    // 16 × (64 + 8 + 1) bits of storage at least.
    assert!(report.flip_flops() >= 16 * 73, "{report}");
    // rust-hdl's own FIFO pointer logic adds a 32-bit `1` to its pointers and masks them
    // with narrower constants: WIDTH warnings, all of them inside those two instances.
    // UNUSEDSIGNAL: the FIFO halves' flags and clock outputs this wrapper has no use for.
    let mut waivers = RUST_HDL_LINT_WAIVERS.to_vec();
    waivers.push("UNUSEDSIGNAL");
    let verilog = emit_verilog(Design::FlowFrameFifo);
    let log = match verilator_lint(&verilog, "top", &waivers) {
        Err(ToolError::Rejected { log, .. }) => log,
        other => panic!("expected rust-hdl's FIFO WIDTH warnings, got {other:?}"),
    };
    let lines: Vec<&str> = log.lines().collect();
    for (i, w) in lines.iter().enumerate() {
        if w.starts_with("%Warning") {
            assert!(w.starts_with("%Warning-WIDTH"), "{log}");
            let instance = lines.get(i + 1).copied().unwrap_or_default();
            assert!(
                instance.contains("top.read_logic") || instance.contains("top.write_logic"),
                "WIDTH outside rust-hdl's FIFO logic:\n{w}\n{instance}"
            );
        }
    }
    waivers.push("WIDTH");
    verilator_lint(&verilog, "top", &waivers).unwrap();
}
