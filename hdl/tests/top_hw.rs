//! The whole top as a user takes it to a shell project (`flowgate hdl emit --design top`):
//! the emitted core and wrapper elaborate in yosys with no latch, no combinational loop,
//! no undriven or multiply driven net (`proc; flatten; check -assert`: a full `synth` of
//! the whole top takes yosys over a quarter of an hour here, and every block's own test
//! runs the full `synth`), and pass Verilator `--lint-only -Wall`, with the wrapper as top. Its behaviour is checked against `core` by `sim/tests/hw_top.rs` and
//! `scripts/hw-diff` (replays of whole traces through the Verilator and rust-hdl engines).

use flowgate_hdl::emit::{self, WRAPPER_MODULE};
use flowgate_hdl::toolchain::{verilator_lint, yosys_check, RUST_HDL_LINT_WAIVERS};
use flowgate_hdl::Design;

#[test]
fn the_emitted_tops_elaborate_cleanly_and_lint() {
    // `top-100g` is linted, not elaborated here: yosys takes over ten minutes on its 64
    // parallel VIP compares and 1024-bit up planes; its behaviour is checked under
    // Verilator by scripts/hw-diff.
    for (design, elaborate) in [(Design::Top, true), (Design::Top100g, false)] {
        let dir = tempfile::tempdir().unwrap();
        let out = emit::write(design, dir.path()).unwrap();
        let core = std::fs::read_to_string(&out.core).unwrap();
        let wrapper = std::fs::read_to_string(&out.wrapper).unwrap();
        let both = format!("{core}\n{wrapper}");
        if elaborate {
            let start = std::time::Instant::now();
            let report = yosys_check(&both, WRAPPER_MODULE).unwrap();
            eprintln!(
                "yosys check of {}: {report} ({:.0?})",
                design.name(),
                start.elapsed()
            );
            assert!(report.total_cells() > 5_000, "{report}");
        }
        // Waived, all from blocks whose own tests say why: WIDTH (rust-hdl's `bit_cast`
        // and its FIFO widgets' 32-bit literals), UNUSEDSIGNAL (fields of table entries and
        // FIFO status the pipeline does not read), UNOPTFLAT (one always block per rust-hdl
        // module reads a FIFO's `full`/`empty` and drives its `write`/`read`: a loop only at
        // Verilator's signal granularity, which yosys `check -assert` above rules out).
        let mut waivers = RUST_HDL_LINT_WAIVERS.to_vec();
        waivers.extend(["WIDTH", "UNUSEDSIGNAL", "UNOPTFLAT"]);
        let start = std::time::Instant::now();
        verilator_lint(&both, WRAPPER_MODULE, &waivers).unwrap();
        eprintln!(
            "verilator lint of {}: {:.0?}",
            design.name(),
            start.elapsed()
        );
    }
}
