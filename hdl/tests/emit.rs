//! `emit::write`: the files a user takes to a shell project must build as they are —
//! the renamed core and the wrapper together pass yosys `synth; check -assert` and a
//! Verilator lint with the wrapper as top, and the manifest describes the wrapper's ports.

use flowgate_hdl::emit::{self, CORE_MODULE, WRAPPER_MODULE};
use flowgate_hdl::toolchain::{verilator_lint, yosys_synth, SynthFlow};

use flowgate_hdl::Design;

#[test]
fn emitted_core_and_wrapper_build_with_the_wrapper_as_top() {
    let dir = tempfile::tempdir().unwrap();
    let out = emit::write(Design::StandIn64, dir.path()).unwrap();
    let core = std::fs::read_to_string(&out.core).unwrap();
    let wrapper = std::fs::read_to_string(&out.wrapper).unwrap();
    assert!(core.contains(&format!("module {CORE_MODULE}(")));
    assert!(!core.contains("module top("), "the generic name is gone");
    let both = format!("{core}\n{wrapper}");
    let report = yosys_synth(&both, WRAPPER_MODULE, SynthFlow::Generic).unwrap();
    assert!(report.total_cells() > 100, "{report:?}");
    // The stand-in's own lint waivers (hdl/src/stand_in.rs says why: rust-hdl's FIFO
    // widget); the wrapper adds nothing to waive.
    let mut waivers = flowgate_hdl::toolchain::RUST_HDL_LINT_WAIVERS.to_vec();
    waivers.extend(["WIDTH", "UNUSEDSIGNAL", "UNOPTFLAT"]);
    verilator_lint(&both, WRAPPER_MODULE, &waivers).unwrap();

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out.manifest).unwrap()).unwrap();
    assert_eq!(manifest["design"], "stand-in-64");
    assert_eq!(manifest["modules"]["wrapper"], WRAPPER_MODULE);
    let ports = manifest["ports"].as_array().unwrap();
    assert_eq!(ports.len(), out.ports.len());
    // Every manifest port is a port of the wrapper, with its width.
    for p in ports {
        let name = p["name"].as_str().unwrap();
        let width = p["width"].as_u64().unwrap();
        let decl = if width > 1 {
            format!("wire [{}:0] {name}", width - 1)
        } else {
            format!("wire {name}")
        };
        assert!(wrapper.contains(&decl), "{decl} in\n{wrapper}");
    }
    // The top's ports: AXI names, the clock renamed.
    for name in [
        "clk",
        "s_axis_tdata",
        "m_axis_tuser",
        "s_axil_awaddr",
        "s_axil_rdata",
    ] {
        assert!(ports.iter().any(|p| p["name"] == name), "{name}");
    }
    assert_eq!(
        manifest["register_map"]["registers"]
            .as_array()
            .unwrap()
            .len(),
        flowgate_core::regmap::REGISTERS.len()
    );
}

#[test]
fn every_design_has_a_name_that_finds_it() {
    for &d in Design::ALL {
        assert_eq!(Design::from_name(&d.name()), Some(d));
    }
    assert_eq!(Design::FlowTable16K.name(), "flow-table-16k");
}
