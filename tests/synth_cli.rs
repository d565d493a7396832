//! `flowgate synth` for the vendor flows that cannot run here: what a user with Vivado
//! takes away must constrain the clock the 100 GbE shell runs the design at, for the design
//! the profile names.

use std::process::Command;

const FLOWGATE: &str = env!("CARGO_BIN_EXE_flowgate");

fn synth(args: &[&str]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(FLOWGATE)
        .arg("synth")
        .args(args)
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "flowgate synth {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (dir, stderr)
}

/// `--profile 100g` alone is the 512-bit top at the CMAC's 322.265625 MHz stream clock
/// (period 3.103 ns), and the wrapper carries the 512-bit stream.
#[test]
fn vivado_scripts_for_the_100g_profile_constrain_the_cmac_clock() {
    let (dir, stderr) = synth(&["--target", "vivado", "--profile", "100g"]);
    assert!(
        stderr.contains("top-100g on vivado at 322.265625 MHz"),
        "{stderr}"
    );
    let xdc = std::fs::read_to_string(dir.path().join("clock.xdc")).unwrap();
    assert!(xdc.contains("-period 3.103 "), "{xdc}");
    let wrapper = std::fs::read_to_string(dir.path().join("wrapper.v")).unwrap();
    assert!(wrapper.contains("[511:0]"), "no 512-bit port in {wrapper}");
    let tcl = std::fs::read_to_string(dir.path().join("build.tcl")).unwrap();
    assert!(tcl.contains("xcu250"), "{tcl}");

    // The small profile keeps the 64-bit top and the shell's 250 MHz user clock; an
    // explicit --freq wins.
    let (dir, stderr) = synth(&["--target", "vivado"]);
    assert!(stderr.contains("top on vivado at 250 MHz"), "{stderr}");
    let xdc = std::fs::read_to_string(dir.path().join("clock.xdc")).unwrap();
    assert!(xdc.contains("-period 4.000 "), "{xdc}");
    let (dir, _) = synth(&["--target", "vivado", "--profile", "100g", "--freq", "400"]);
    let xdc = std::fs::read_to_string(dir.path().join("clock.xdc")).unwrap();
    assert!(xdc.contains("-period 2.500 "), "{xdc}");
}
