//! The whole top as a user takes it to a shell project (`flowgate hdl emit --design top`):
//! the emitted core and wrapper pass yosys `synth; check -assert` (no latches, no
//! combinational loops, no undriven nets) and Verilator `--lint-only -Wall` with the
//! wrapper as top. Its behaviour is checked against `core` by `sim/tests/hw_top.rs` and
//! `scripts/hw-diff` (replays of whole traces through the Verilator and rust-hdl engines).

use flowgate_hdl::emit::{self, WRAPPER_MODULE};
use flowgate_hdl::toolchain::{verilator_lint, yosys_synth, SynthFlow, RUST_HDL_LINT_WAIVERS};
use flowgate_hdl::Design;

#[test]
fn the_emitted_top_synthesizes_and_lints() {
    let dir = tempfile::tempdir().unwrap();
    // Emission recurses through the whole design: a big stack, as `flowgate_sim` gives it.
    let path = dir.path().to_path_buf();
    let out = std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(move || emit::write(Design::Top, &path).unwrap())
        .unwrap()
        .join()
        .unwrap();
    let core = std::fs::read_to_string(&out.core).unwrap();
    let wrapper = std::fs::read_to_string(&out.wrapper).unwrap();
    let both = format!("{core}\n{wrapper}");
    let start = std::time::Instant::now();
    let report = yosys_synth(&both, WRAPPER_MODULE, SynthFlow::Generic).unwrap();
    eprintln!("yosys synth of the top: {report} ({:.0?})", start.elapsed());
    // Three Toeplitz trees alone are ~60k gates; the flow table's RAMs stay memories.
    assert!(report.total_cells() > 60_000, "{report}");
    // Waived, all from blocks whose own tests say why: WIDTH (rust-hdl's `bit_cast` and
    // its FIFO widgets' 32-bit literals), UNUSEDSIGNAL (fields of table entries and FIFO
    // status the pipeline does not read), UNOPTFLAT (one always block per rust-hdl module
    // reads a FIFO's `full`/`empty` and drives its `write`/`read`: a loop only at
    // Verilator's signal granularity, which yosys `check -assert` above rules out).
    let mut waivers = RUST_HDL_LINT_WAIVERS.to_vec();
    waivers.extend(["WIDTH", "UNUSEDSIGNAL", "UNOPTFLAT"]);
    verilator_lint(&both, WRAPPER_MODULE, &waivers).unwrap();
}
