//! The whole hardware top against the software engine: the same config programmed through
//! the registers, the same frames, the same output bytes and counters.

use flowgate_host::pcap_io::Frame;
use flowgate_host::ShardedEngine;
use flowgate_sim::hw::replay::HwReplay;
use flowgate_sim::hw::{open, Engine};
use std::path::Path;

fn tables() -> flowgate_core::tables::Tables {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = flowgate_driver::load(&root.join("examples/hw-small.toml")).unwrap();
    flowgate_driver::compile(&config)
}

fn example_frames() -> Vec<Frame> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    flowgate_sim::read_pcap_file(&root.join("examples/basic.pcap")).unwrap()
}

#[test]
fn rtl_top_forwards_the_example_like_the_model() {
    let tables = tables();
    let frames: Vec<Frame> = example_frames().into_iter().take(200).collect();
    let mut model = ShardedEngine::new(tables.clone(), 1);
    let outcomes = model.process_burst(&frames);
    let engine = open(Engine::Rtl, flowgate_hdl::Design::Top).unwrap();
    let mut hw = HwReplay::new(engine, &tables, 9216).unwrap();
    let out = hw.run(0, &frames).unwrap();
    let mut expected = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        match o.verdict {
            flowgate_core::Verdict::Forward { .. } => expected.push((i, o.frame.clone())),
            flowgate_core::Verdict::Pass => expected.push((i, frames[i].data.clone())),
            flowgate_core::Verdict::Drop(_) => {}
        }
    }
    let got: Vec<(usize, Vec<u8>)> = out.iter().map(|e| (e.input, e.frame.data.clone())).collect();
    for (k, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(e, g, "output {k}");
    }
    assert_eq!(expected.len(), got.len());
    let counters = hw
        .counters(tables.vips.len() as u16, tables.backends.len() as u16)
        .unwrap();
    assert_eq!(counters, model.counters());
}
