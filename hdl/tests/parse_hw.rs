//! The hardware header parser against `flowgate_core::parse::parse`: frames streamed over
//! AXI4-Stream into [`AxisParser`] in rust-hdl's simulator, every result compared field by
//! field with the contract; then the emitted Verilog through yosys and Verilator.

use flowgate_core::parse::{parse, Parsed};
use flowgate_core::DropReason;
use flowgate_hdl::axis::HEADER_BYTES;
use flowgate_hdl::axis_parse::{AxisParser, LATENCY};
use flowgate_hdl::parse::{RESULT_HEADER_TOO_LONG, RESULT_NOT_IP};
use flowgate_hdl::toolchain::{
    verilator_lint, yosys_synth, SynthFlow, ToolError, RUST_HDL_LINT_WAIVERS,
};
use flowgate_hdl::{emit_verilog, Design};
use flowgate_traces::gen::{malformed_frames, MalformedCase};
use flowgate_traces::{generate_trace, TraceSpec, VipTarget};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_hdl::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// What the parser outputs for one frame, in the block's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HwParse {
    result: u8,
    /// Only compared when `result` is 0.
    fields: Fields,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Fields {
    vlan_count: u8,
    l3_offset: u16,
    is_v6: bool,
    src: u128,
    dst: u128,
    ip_len: u16,
    protocol: u8,
    l4_offset: u16,
    fragment: bool,
    src_port: u16,
    dst_port: u16,
    tcp_flags: u8,
    dscp_ecn: u8,
}

fn addr_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The contract's answer for `frame`, in the block's encoding.
fn contract(frame: &[u8]) -> HwParse {
    match parse(frame) {
        Ok(Parsed::NotIp) => HwParse {
            result: RESULT_NOT_IP,
            fields: Fields::default(),
        },
        Err(reason) => HwParse {
            result: reason.code(),
            fields: Fields::default(),
        },
        Ok(Parsed::Ip(p)) => HwParse {
            result: 0,
            fields: Fields {
                vlan_count: p.vlan_count,
                l3_offset: p.l3_offset,
                is_v6: p.is_ipv6(),
                src: addr_bits(p.src),
                dst: addr_bits(p.dst),
                ip_len: p.ip_len,
                protocol: p.protocol,
                l4_offset: p.l4_offset,
                fragment: p.fragment,
                src_port: p.src_port,
                dst_port: p.dst_port,
                tcp_flags: p.tcp_flags,
                dscp_ecn: p.dscp_ecn,
            },
        },
    }
}

fn read_outputs<const D: usize, const K: usize>(x: &AxisParser<D, K>) -> HwParse {
    HwParse {
        result: x.result.val().to_u8(),
        fields: Fields {
            vlan_count: x.vlan_count.val().to_u8(),
            l3_offset: x.l3_offset.val().to_u16(),
            is_v6: x.is_v6.val(),
            src: x.src.val().to_u128(),
            dst: x.dst.val().to_u128(),
            ip_len: x.ip_len.val().to_u16(),
            protocol: x.protocol.val().to_u8(),
            l4_offset: x.l4_offset.val().to_u16(),
            fragment: x.fragment.val(),
            src_port: x.src_port.val().to_u16(),
            dst_port: x.dst_port.val().to_u16(),
            tcp_flags: x.tcp_flags.val().to_u8(),
            dscp_ecn: x.dscp_ecn.val().to_u8(),
        },
    }
}

/// One beat's `tdata` and `tkeep`: byte `j` of `chunk` in lane `j` (`tdata[8j+7:8j]`).
fn lanes<const D: usize, const K: usize>(chunk: &[u8]) -> (Bits<D>, Bits<K>) {
    let mut data = Bits::<D>::default();
    let mut keep = Bits::<K>::default();
    for (j, &byte) in chunk.iter().enumerate() {
        data.set_bits::<8>(8 * j, u64::from(byte).into());
        keep = keep.replace_bit(j, true);
    }
    (data, keep)
}

/// Streams `frames` through an `AxisParser<D, K>` (`K` bytes a beat, back to back, with an
/// idle clock between beats now and then when `gaps`), and returns the block's parse of
/// each frame, in order. Panics if the block does not give exactly one result per frame.
fn run_hardware<const D: usize, const K: usize>(frames: &[Vec<u8>], gaps: bool) -> Vec<HwParse> {
    let mut uut = AxisParser::<D, K>::default();
    uut.connect_all();
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<AxisParser<D, K>>| {
        x.clock.next = !x.clock.val()
    });
    let beats: usize = frames.iter().map(|f| f.len().div_ceil(K).max(1)).sum();
    let out = Arc::new(Mutex::new(Vec::with_capacity(frames.len())));
    let frames_tb = frames.to_vec();
    let out_tb = out.clone();
    sim.add_testbench(move |mut sim: Sim<AxisParser<D, K>>| {
        let mut x = sim.init()?;
        let mut rng = ChaCha8Rng::seed_from_u64(0x9a95);
        // Every clock: collect a result if one is out, then drive the next beat.
        let collect = |x: &AxisParser<D, K>| {
            if x.valid.val() {
                out_tb.lock().unwrap().push(read_outputs(x));
            }
        };
        for frame in &frames_tb {
            // An empty frame is one beat with no byte kept.
            let chunks: Vec<&[u8]> = if frame.is_empty() {
                vec![&[]]
            } else {
                frame.chunks(K).collect()
            };
            for (n, chunk) in chunks.iter().enumerate() {
                while gaps && rng.gen_ratio(1, 8) {
                    wait_clock_false!(sim, clock, x);
                    collect(&x);
                    x.tvalid.next = false;
                    wait_clock_true!(sim, clock, x);
                }
                wait_clock_false!(sim, clock, x);
                collect(&x);
                let (data, keep) = lanes::<D, K>(chunk);
                x.tdata.next = data;
                x.tkeep.next = keep;
                x.tlast.next = n + 1 == chunks.len();
                x.tvalid.next = true;
                wait_clock_true!(sim, clock, x);
            }
        }
        for _ in 0..LATENCY + 2 {
            wait_clock_false!(sim, clock, x);
            collect(&x);
            x.tvalid.next = false;
            wait_clock_true!(sim, clock, x);
        }
        sim.done(x)
    });
    // 10 time units a clock; gaps add at most about one clock in seven.
    sim.run(Box::new(uut), 10 * (beats as u64 * 2 + 20 + LATENCY as u64))
        .expect("simulation ended early");
    let out = out.lock().unwrap().clone();
    assert_eq!(out.len(), frames.len(), "one result per frame");
    out
}

/// Runs `frames` through the hardware and lists every frame whose result differs from
/// the contract's (all fields for IP frames, the code otherwise).
fn mismatches(frames: &[Vec<u8>], gaps: bool, wide: bool) -> Vec<String> {
    let got = if wide {
        run_hardware::<512, 64>(frames, gaps)
    } else {
        run_hardware::<64, 8>(frames, gaps)
    };
    frames
        .iter()
        .zip(got)
        .enumerate()
        .filter_map(|(i, (frame, hw))| {
            let want = contract(frame);
            let same = hw.result == want.result && (want.result != 0 || hw.fields == want.fields);
            (!same).then(|| {
                format!(
                    "frame {i} (len {}): hw {hw:?}\n  core {want:?}\n  bytes {:02x?}",
                    frame.len(),
                    &frame[..frame.len().min(HEADER_BYTES)]
                )
            })
        })
        .collect()
}

/// Runs `frames` through the 64-bit build, or the 512-bit one when `wide`.
fn assert_matches_core(frames: &[Vec<u8>], gaps: bool, wide: bool) {
    let bad = mismatches(frames, gaps, wide);
    assert!(
        bad.is_empty(),
        "{} of {} frames differ from core:\n{}",
        bad.len(),
        frames.len(),
        bad.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn vips() -> Vec<VipTarget> {
    vec![
        VipTarget::tcp(Ipv4Addr::new(192, 0, 2, 10).into(), 443),
        VipTarget::udp(Ipv4Addr::new(192, 0, 2, 11).into(), 53),
        VipTarget::tcp("2001:db8::10".parse::<Ipv6Addr>().unwrap().into(), 80),
        VipTarget::udp("2001:db8::53".parse::<Ipv6Addr>().unwrap().into(), 0),
    ]
}

fn trace_frames() -> Vec<Vec<u8>> {
    let trace = generate_trace(&TraceSpec::mixed(vips(), 3000)).expect("valid spec");
    trace.frames.into_iter().map(|f| f.data).collect()
}

/// Every malformed case, against each VIP, with several seeds.
fn malformed_set() -> Vec<Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(0xbad_f00d);
    let mut frames = Vec::new();
    for _round in 0..4 {
        for vip in vips() {
            frames.extend(malformed_frames(&mut rng, &vip).into_iter().map(|m| m.data));
        }
    }
    frames
}

/// Trace frames cut at random lengths, most of them inside the headers.
fn truncations(frames: &[Vec<u8>], count: usize) -> Vec<Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x7c0a7);
    (0..count)
        .map(|_| {
            let frame = &frames[rng.gen_range(0..frames.len())];
            let cut = if rng.gen_ratio(3, 4) {
                rng.gen_range(0..=frame.len().min(HEADER_BYTES))
            } else {
                rng.gen_range(0..=frame.len())
            };
            frame[..cut].to_vec()
        })
        .collect()
}

#[test]
fn trace_frames_parse_as_core_parses_them() {
    let frames = trace_frames();
    assert!(frames.len() >= 2000, "{} frames", frames.len());
    // The trace has every kind the parser distinguishes.
    let results: std::collections::BTreeSet<u8> =
        frames.iter().map(|f| contract(f).result).collect();
    assert!(
        results.contains(&0) && results.contains(&RESULT_NOT_IP),
        "{results:?}"
    );
    assert!(results.len() > 8, "{results:?}");
    // Full frames stream through the 512-bit build (8 times fewer clocks than the 64-bit
    // one, which the other tests stream through); the first 200 through the 64-bit one too.
    assert_matches_core(&frames, true, true);
    assert_matches_core(&frames[..200], true, false);
}

#[test]
fn every_malformed_case_gets_cores_verdict() {
    let frames = malformed_set();
    assert_eq!(frames.len(), 4 * 4 * MalformedCase::ALL.len());
    // Every drop reason the parse stage has shows up in this set.
    let codes: std::collections::BTreeSet<u8> = frames.iter().map(|f| contract(f).result).collect();
    for reason in &DropReason::ALL[..16] {
        assert!(codes.contains(&reason.code()), "{reason:?} never occurs");
    }
    assert_matches_core(&frames, false, false);
}

#[test]
fn truncated_frames_get_cores_verdict() {
    let frames = truncations(&trace_frames(), 1000);
    assert_matches_core(&frames, false, false);
}

// ---- The parse window (HeaderTooLong) ----

const ETH_V6: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];

/// An IPv6 frame: `exts` are (type, length in bytes) extension headers in order, then a
/// 20-byte TCP header (or nothing when the chain ends in 59, "no next header").
fn ipv6_with_extensions(exts: &[(u8, usize)], last: u8) -> Vec<u8> {
    let l4_len = if last == 6 { 20 } else { 0 };
    let payload_len: usize = exts.iter().map(|e| e.1).sum::<usize>() + l4_len;
    let mut f = ETH_V6.to_vec();
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload_len as u16).to_be_bytes());
    f.push(exts.first().map_or(last, |e| e.0));
    f.push(64);
    f.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    for (i, &(kind, len)) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(last, |e| e.0);
        let mut ext = vec![0u8; len];
        ext[0] = next;
        if kind == 44 {
            assert_eq!(len, 8);
        } else {
            ext[1] = (len / 8 - 1) as u8;
        }
        f.extend_from_slice(&ext);
    }
    if last == 6 {
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&443u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x02;
        f.extend_from_slice(&tcp);
    }
    f
}

#[test]
fn headers_inside_the_window_match_core_even_with_long_extension_chains() {
    let frames = vec![
        // Four 8-byte extension headers + TCP: ends at byte 106.
        ipv6_with_extensions(&[(0, 8), (60, 8), (43, 8), (60, 8)], 6),
        // 16 + 16 + fragment (atomic) + 8, then TCP: ends at byte 126.
        ipv6_with_extensions(&[(0, 16), (43, 16), (44, 8), (60, 8)], 6),
        // A 2048-byte hop-by-hop header and no next header: only its prefix is read.
        ipv6_with_extensions(&[(0, 2048)], 59),
        // Five headers: too deep, decided at byte 86 + 8.
        ipv6_with_extensions(&[(60, 8); 5], 6),
    ];
    for f in &frames[..3] {
        assert_eq!(contract(f).result, 0, "core accepts it");
    }
    assert_eq!(
        contract(&frames[3]).result,
        DropReason::Ipv6ExtensionChainTooDeep.code()
    );
    assert_matches_core(&frames, false, false);
}

/// Headers the parser would read past byte 128: core and the block both drop them as
/// `HeaderTooLong`.
#[test]
fn headers_reaching_past_the_window_are_header_too_long() {
    let frames = vec![
        // A 64-byte hop-by-hop header puts TCP at 118: its 20 bytes end at 138.
        ipv6_with_extensions(&[(0, 64)], 6),
        // An 80-byte hop-by-hop header puts the next extension's prefix at 134.
        ipv6_with_extensions(&[(0, 80), (60, 8)], 6),
    ];
    let got = run_hardware::<64, 8>(&frames, false);
    for (f, hw) in frames.iter().zip(got) {
        assert_eq!(contract(f).result, DropReason::HeaderTooLong.code());
        assert_eq!(hw.result, RESULT_HEADER_TOO_LONG);
    }
    assert_matches_core(&frames, false, false);
    // A header cut short inside the window keeps its truncation reason.
    let mut cut = ipv6_with_extensions(&[(0, 64)], 6);
    cut.truncate(14 + 40 + 64 + 10);
    cut[18..20].copy_from_slice(&(64u16 + 10).to_be_bytes());
    assert_eq!(contract(&cut).result, DropReason::TruncatedTcp.code());
    assert_matches_core(&[cut], false, false);
}

// ---- Synthesis and lint ----

#[test]
fn axis_parser_synthesizes() {
    let verilog = emit_verilog(Design::AxisParser);
    let report = yosys_synth(&verilog, "top", SynthFlow::Generic).unwrap();
    println!("generic synth: {report}");
    let flops = report.flip_flops();
    // Capture: 1024 header + 16 length + beat counter + 2 flags, and the 32-bit tag. The
    // parser's six stage registers (L2, the IP header, four extension steps), each at most
    // 4 flags, twelve 32-bit offsets, lengths and codes (stored masked, so yosys drops
    // their constant upper bits), two addresses and the 1024-bit window; and the
    // registered outputs (1 + 8 + 2 + 16 + 1 + 256 + 16 +
    // 8 + 16 + 1 + 32 + 8 + 8 = 373, plus the 16-bit length and the 32-bit tag). The
    // parser never reads the two MAC addresses (header bytes 0..12), so yosys drops those
    // 96 header flops, and flops whose value is constant or never read: allow fewer,
    // never more.
    let stage = 4 + 12 * 32 + 2 * 128 + 1024;
    assert!(
        flops <= 1024 + 16 + 16 + 2 + 32 + 6 * stage + 373 + 16 + 32,
        "{report}"
    );
    assert!(flops >= 1024 + 16 + 300, "{report}");
}

/// The parser computes every offset and length in 32 bits (rust-hdl emits literals 32 bits
/// wide) and reads fields as 32-bit words, so some upper bits and unread bytes never reach
/// an output: UNUSEDSIGNAL, and nothing else.
const PARSER_WAIVERS: [&str; 2] = ["DECLFILENAME", "UNUSEDSIGNAL"];

#[test]
fn header_parse_passes_verilator_lint() {
    assert_eq!(RUST_HDL_LINT_WAIVERS, &PARSER_WAIVERS[..1]);
    let verilog = emit_verilog(Design::FlowHeaderParse);
    verilator_lint(&verilog, "top", &PARSER_WAIVERS).unwrap();
}

/// The capture widens each 64-bit beat to the header width, and rust-hdl's only widening
/// (`bit_cast`) emits `beat_bytes & 1024'hff..ff`, which Verilator calls WIDTH although
/// Verilog zero-extends it exactly. That one line is the only WIDTH warning; with WIDTH
/// waived the block is clean.
#[test]
fn header_capture_passes_verilator_lint_but_for_the_beat_widening() {
    let verilog = emit_verilog(Design::FlowHeaderCapture);
    let log = match verilator_lint(&verilog, "top", RUST_HDL_LINT_WAIVERS) {
        Err(ToolError::Rejected { log, .. }) => log,
        other => panic!("expected the WIDTH warning, got {other:?}"),
    };
    let warnings: Vec<&str> = log.lines().filter(|l| l.starts_with("%Warning")).collect();
    assert!(!warnings.is_empty(), "{log}");
    for w in &warnings {
        assert!(
            w.starts_with("%Warning-WIDTH") && w.contains("beat_bytes"),
            "{log}"
        );
    }
    let mut waivers = RUST_HDL_LINT_WAIVERS.to_vec();
    waivers.push("WIDTH");
    verilator_lint(&verilog, "top", &waivers).unwrap();
}

#[test]
fn axis_parser_passes_verilator_lint() {
    let verilog = emit_verilog(Design::AxisParser);
    let mut waivers = PARSER_WAIVERS.to_vec();
    waivers.push("WIDTH");
    verilator_lint(&verilog, "top", &waivers).unwrap();
}
