//! The whole hardware top against the software engine: the same config programmed through
//! the registers, the same frames, the same output bytes and counters.

use flowgate_host::pcap_io::Frame;
use flowgate_host::ShardedEngine;
use flowgate_sim::hw::replay::HwReplay;
use flowgate_sim::hw::{open, Simulator};
use std::path::Path;

fn tables() -> flowgate_core::tables::Tables {
    example_tables("examples/hw-small.toml")
}

fn example_tables(config: &str) -> flowgate_core::tables::Tables {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = flowgate_driver::load(&root.join(config)).unwrap();
    flowgate_driver::compile(&config)
}

fn example_frames() -> Vec<Frame> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    flowgate_traces::read_pcap_file(root.join("examples/basic.pcap")).unwrap()
}

#[test]
fn rtl_top_forwards_the_example_like_the_model() {
    let frames: Vec<Frame> = example_frames().into_iter().take(200).collect();
    forwards_like_the_model(Simulator::Rtl, &frames);
}

/// Runs `frames` through the small top on `engine` and asserts the output frames (which
/// input, which bytes) and the counters are the model's.
fn forwards_like_the_model(engine: Simulator, frames: &[Frame]) {
    forwards_like_the_model_with(engine, &tables(), frames);
}

fn forwards_like_the_model_with(
    engine: Simulator,
    tables: &flowgate_core::tables::Tables,
    frames: &[Frame],
) {
    forwards_like_the_model_on(engine, flowgate_hdl::Design::Top, tables, frames);
}

/// As [`forwards_like_the_model_with`] on `design`; returns the frames it sent out.
fn forwards_like_the_model_on(
    engine: Simulator,
    design: flowgate_hdl::Design,
    tables: &flowgate_core::tables::Tables,
    frames: &[Frame],
) -> Vec<Vec<u8>> {
    let tables = tables.clone();
    let mut model = ShardedEngine::new(tables.clone(), 1);
    let outcomes = model.process_burst(frames);
    let engine = open(engine, design).unwrap();
    let mut hw = HwReplay::new(engine, &tables, 9216).unwrap();
    let out = hw.run(0, frames).unwrap();
    let mut expected = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        match o.verdict {
            flowgate_core::Verdict::Forward { .. } => expected.push((i, o.frame.clone())),
            flowgate_core::Verdict::Pass => expected.push((i, frames[i].data.clone())),
            flowgate_core::Verdict::Drop(_) => {}
        }
    }
    let got: Vec<(usize, Vec<u8>)> = out
        .iter()
        .map(|e| (e.input, e.frame.data.clone()))
        .collect();
    for (k, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(e, g, "output {k}");
    }
    assert_eq!(
        expected.len(),
        got.len(),
        "expected inputs {:?}, got {:?}",
        expected
            .iter()
            .map(|e| (e.0, e.1.len()))
            .collect::<Vec<_>>(),
        got.iter().map(|g| (g.0, g.1.len())).collect::<Vec<_>>()
    );
    let counters = hw
        .counters(tables.vips.len() as u16, tables.backends.len() as u16)
        .unwrap();
    assert_eq!(counters, model.counters());
    got.into_iter().map(|(_, frame)| frame).collect()
}

/// `n` minimum-size (60-byte) TCP frames of `flows` flows to the web VIP (DSR).
fn min_frames(n: usize, flows: u16) -> Vec<Frame> {
    tcp_frames(n, flows, 60)
}

/// `n` TCP frames of `flows` flows to the web VIP (DSR), padded to `len` bytes (54 = no
/// padding).
fn tcp_frames(n: usize, flows: u16, len: usize) -> Vec<Frame> {
    (0..n)
        .map(|i| {
            let port = 10_000 + (i as u16 % flows);
            let builder =
                etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 0xfe])
                    .ipv4([10, 1, 2, 3], [192, 0, 2, 10], 64)
                    .tcp(port, 80, 1000 + i as u32, 4096);
            let mut data = Vec::new();
            builder.write(&mut data, &[]).unwrap();
            data.resize(len, 0);
            Frame {
                ts: std::time::Duration::from_millis(1_000 + i as u64),
                data,
            }
        })
        .collect()
}

/// Clocks from the first beat in to the last beat out for `frames`, on a freshly
/// programmed `design`.
fn span(design: flowgate_hdl::Design, frames: &[Frame]) -> u64 {
    let tables = tables();
    let engine = open(Simulator::Verilator, design).unwrap();
    let mut hw = HwReplay::new(engine, &tables, 9216).unwrap();
    let before = hw.cycles();
    let out = hw.run(0, frames).unwrap();
    assert_eq!(out.len(), frames.len(), "every frame is forwarded");
    hw.cycles() - before
}

/// II = 1: N back-to-back minimum-size frames take N × (beats per frame) + L clocks, where
/// L is the latency of one frame alone. Printed for docs/BENCHMARKS.md.
#[test]
fn the_top_takes_a_frame_every_beat_slot_back_to_back() {
    for (design, beats) in [
        (flowgate_hdl::Design::WideTop, 1u64),
        (flowgate_hdl::Design::Top, 8),
    ] {
        let one = span(design, &min_frames(1, 1));
        for (n, flows) in [(512usize, 1u16), (512, 64)] {
            let frames = min_frames(n, flows);
            let got = span(design, &frames);
            eprintln!(
                "{design:?}: {n} back-to-back 60-byte frames ({flows} flows) in {got} clocks \
                 = {n} × {beats} + {}; one frame alone: {one} clocks; {:.3} frames per clock",
                got - n as u64 * beats,
                n as f64 / got as f64
            );
            assert_eq!(
                got,
                (n as u64 - 1) * beats + one,
                "{design:?}, {flows} flows"
            );
        }
    }
}

/// Runt frames (54 bytes: 7 beats of 64 bits) back to back: the small top takes one
/// every `MIN_GAP` clocks (its decision block's serial hash), holding each `tlast` that
/// would come sooner, and forwards every frame as the model does.
#[test]
fn the_small_top_spaces_runt_frames_for_its_serial_hash() {
    let gap = flowgate_hdl::decide::FlowDecide::MIN_GAP as u64;
    assert_eq!(gap, 8, "one 64-byte frame's beats");
    let one = span(flowgate_hdl::Design::Top, &tcp_frames(1, 1, 54));
    let n = 256;
    let frames = tcp_frames(n, 16, 54);
    let got = span(flowgate_hdl::Design::Top, &frames);
    eprintln!("Top: {n} back-to-back 54-byte frames in {got} clocks; one alone: {one}");
    assert_eq!(got, (n as u64 - 1) * gap + one);
    forwards_like_the_model(Simulator::Verilator, &frames);
}

/// An IPv6 UDP frame of `len` bytes (at least 62) from client `client` to the dns VIP
/// (IP-in-IP over IPv6: the outer header adds 40 bytes).
fn dns_frame(len: usize, client: u8, ms: u64) -> Frame {
    let builder = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 0xfe])
        .ipv6(
            [0x20, 1, 0xd, 0xb8, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, client],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53],
            64,
        )
        .udp(40_000 + u16::from(client), 53);
    let payload = vec![0x5a; len - 62];
    let mut data = Vec::new();
    builder.write(&mut data, &payload).unwrap();
    assert_eq!(data.len(), len);
    Frame {
        ts: std::time::Duration::from_millis(ms),
        data,
    }
}

/// GUE through the whole top (Verilator): examples/hw-gue.toml sends the web service by
/// GUE to IPv4 backends; the example trace's frames come out as the model's, byte for
/// byte, counters included, and the GUE frames decode as IPv4 / UDP to port 6080.
#[test]
fn verilator_top_forwards_gue_like_the_model() {
    let tables = example_tables("examples/hw-gue.toml");
    assert!(matches!(
        tables.vips[0].mode,
        flowgate_core::rewrite::Mode::Gue { port: 6080 }
    ));
    let frames: Vec<Frame> = example_frames().into_iter().take(800).collect();
    forwards_like_the_model_with(Simulator::Verilator, &tables, &frames);
    let mut model = ShardedEngine::new(tables, 1);
    let gue = model
        .process_burst(&frames)
        .iter()
        .filter(|o| {
            let packet = etherparse::SlicedPacket::from_ethernet(&o.frame);
            matches!(o.verdict, flowgate_core::Verdict::Forward { .. })
                && matches!(
                    packet.map(|p| p.transport),
                    Ok(Some(etherparse::TransportSlice::Udp(u))) if u.destination_port() == 6080
                )
        })
        .count();
    assert!(gue > 100, "{gue} GUE frames in the first 800");
}

/// Checks every GUE-over-IPv6 frame of `outputs` with etherparse (an independent decoder):
/// outer IPv6 + UDP to `ports`, the UDP checksum over the pseudo-header, the UDP header
/// and the whole inner datagram as etherparse computes it, never 0. Returns how many.
fn gue6_frames_decode(outputs: &[Vec<u8>], ports: &[u16]) -> usize {
    let mut n = 0;
    for frame in outputs {
        let packet = etherparse::SlicedPacket::from_ethernet(frame).expect("output parses");
        let (Some(etherparse::NetSlice::Ipv6(ip)), Some(etherparse::TransportSlice::Udp(udp))) =
            (&packet.net, &packet.transport)
        else {
            continue;
        };
        if !ports.contains(&udp.destination_port()) {
            continue;
        }
        let h = ip.header();
        let expected = udp
            .to_header()
            .calc_checksum_ipv6_raw(h.source(), h.destination(), udp.payload())
            .unwrap();
        assert_ne!(udp.checksum(), 0, "a zero UDP checksum under IPv6");
        assert_eq!(
            udp.checksum(),
            expected,
            "outer UDP checksum of {frame:02x?}"
        );
        assert_eq!(usize::from(udp.length()), 8 + udp.payload().len());
        // Variant 1: the inner datagram right behind UDP, and it parses.
        etherparse::SlicedPacket::from_ip(udp.payload()).expect("inner datagram parses");
        n += 1;
    }
    n
}

/// GUE over IPv6 through both tops (64-bit small, 512-bit wide) on Verilator:
/// examples/hw-gue6.toml sends both services (IPv4 and IPv6 clients) by GUE to IPv6
/// backends; the example trace's frames come out as the model's, byte for byte, counters
/// included, and every GUE frame's outer UDP checksum is etherparse's.
#[test]
fn verilator_tops_forward_gue_over_ipv6_like_the_model() {
    let tables = example_tables("examples/hw-gue6.toml");
    assert!(tables.backends.iter().all(|b| b.address.is_ipv6()));
    assert!(tables
        .vips
        .iter()
        .all(|v| matches!(v.mode, flowgate_core::rewrite::Mode::Gue { .. })));
    let frames: Vec<Frame> = example_frames().into_iter().take(800).collect();
    for design in [flowgate_hdl::Design::Top, flowgate_hdl::Design::WideTop] {
        let got = forwards_like_the_model_on(Simulator::Verilator, design, &tables, &frames);
        let n = gue6_frames_decode(&got, &[6080, 7000]);
        assert!(
            n > 100,
            "{design:?}: {n} GUE-over-IPv6 frames in the first 800"
        );
    }
}

/// The same through rust-hdl's own simulator (slow: the first 40 frames), both widths.
#[test]
fn rtl_tops_forward_gue_over_ipv6_like_the_model() {
    let tables = example_tables("examples/hw-gue6.toml");
    let frames: Vec<Frame> = example_frames().into_iter().take(40).collect();
    for design in [flowgate_hdl::Design::Top, flowgate_hdl::Design::WideTop] {
        let got = forwards_like_the_model_on(Simulator::Rtl, design, &tables, &frames);
        let n = gue6_frames_decode(&got, &[6080, 7000]);
        assert!(
            n > 10,
            "{design:?}: {n} GUE-over-IPv6 frames in the first 40"
        );
    }
}

/// An IP-in-IP forward whose outer frame would exceed `MAX_FRAME_LEN` (9 216 bytes) is
/// dropped and counted as `EncapTooLarge` by the top (its MTU rule at stage A, the
/// counter event one clock later at stage B), exactly at the boundary, with minimum
/// frames right behind each jumbo frame: output bytes and every counter as the model's.
#[test]
fn the_top_drops_and_counts_encapsulations_over_the_max_frame_like_the_model() {
    let max = flowgate_core::rewrite::MAX_FRAME_LEN;
    let mut frames = Vec::new();
    for (i, len) in [max - 40, max - 39, max, 1500, max - 40, max - 39]
        .into_iter()
        .enumerate()
    {
        let ms = 1_000 + 10 * i as u64;
        frames.push(dns_frame(len, i as u8 % 3, ms));
        // Three minimum frames right behind it, in time as well as on the stream.
        for (j, mut frame) in tcp_frames(3, 3, 60).into_iter().enumerate() {
            frame.ts = std::time::Duration::from_millis(ms + 1 + j as u64);
            frames.push(frame);
        }
    }
    let mut model = ShardedEngine::new(tables(), 1);
    let too_large = model
        .process_burst(&frames)
        .iter()
        .filter(|o| {
            o.verdict == flowgate_core::Verdict::Drop(flowgate_core::DropReason::EncapTooLarge)
        })
        .count();
    assert_eq!(too_large, 3, "the frames one byte over and at the maximum");
    forwards_like_the_model(Simulator::Verilator, &frames);
}

/// Every register of the map and every VIP / BACKEND / MAGLEV entry, as the driver reads
/// them (the shadow copy, which equals the active one between commits).
fn registers(
    bus: &mut dyn flowgate_driver::RegisterBus,
) -> (Vec<(u32, u32)>, flowgate_core::tables::Tables) {
    use flowgate_core::regmap;
    let words = regmap::REGISTERS
        .iter()
        .map(|r| (r.offset, bus.read32(r.offset)))
        .collect();
    (words, flowgate_driver::read_shadow(bus).unwrap())
}

/// The same config programmed by the driver into the software model of the register page
/// (`SoftBus`) and into the hardware top gives the same register contents, before and
/// after a reconfiguration (a weight change and a backend down, through the control plane).
#[test]
fn the_driver_programs_the_top_and_the_software_bus_alike() {
    use flowgate_driver::{events, ControlPlane, SoftBus};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("examples/hw-small.toml");
    let control = ControlPlane::new(flowgate_driver::load(&path).unwrap(), Some(path));
    let engine = open(Simulator::Verilator, flowgate_hdl::Design::Top).unwrap();
    let mut hw = HwReplay::new(engine, &control.tables(), 9216).unwrap();
    let device = flowgate_driver::probe(hw.bus()).unwrap();
    assert_eq!(device.maglev_m, 251);
    let mut soft = SoftBus::new(device).unwrap();
    flowgate_driver::program(&mut soft, &control.tables()).unwrap();
    flowgate_driver::set_enabled(&mut soft, true);
    assert_eq!(registers(hw.bus()), registers(&mut soft));

    let events = events::parse_str(
        "[[event]]\nat_ms = 0\naction = \"weight\"\nvip = \"web\"\nbackend = \"198.51.100.3\"\nweight = 7\n\
         [[event]]\nat_ms = 0\naction = \"down\"\nvip = \"dns\"\nbackend = \"2001:db8:1::2\"\n",
        "inline",
        Path::new("."),
    )
    .unwrap();
    for event in &events {
        events::apply(&control, event).unwrap();
        hw.program(&control.tables()).unwrap();
        flowgate_driver::program(&mut soft, &control.tables()).unwrap();
        assert_eq!(
            registers(hw.bus()),
            registers(&mut soft),
            "after {:?}",
            event.action
        );
    }
    // And the data path follows: frames after the changes still match the model.
    let frames: Vec<Frame> = example_frames().into_iter().take(300).collect();
    let mut model = ShardedEngine::new((*control.tables()).clone(), 1);
    let outcomes = model.process_burst(&frames);
    let out = hw.run(0, &frames).unwrap();
    let expected: Vec<Vec<u8>> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o.verdict {
            flowgate_core::Verdict::Forward { .. } => Some(o.frame.clone()),
            flowgate_core::Verdict::Pass => Some(frames[i].data.clone()),
            flowgate_core::Verdict::Drop(_) => None,
        })
        .collect();
    let got: Vec<Vec<u8>> = out.into_iter().map(|e| e.frame.data).collect();
    assert_eq!(got, expected);
}
