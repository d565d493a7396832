//! The checked-in `docs/REGISTERS.md` and `docs/flowgate_regs.h` are generated from
//! `core/src/regmap/`; this test fails when they are stale, so a register change cannot
//! land without its docs and header. With `FLOWGATE_BLESS=1` it rewrites them instead.

use flowgate_core::regmap::{self, REGISTERS, WINDOWS};
use std::path::{Path, PathBuf};
use std::process::Command;

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn blessing() -> bool {
    std::env::var("FLOWGATE_BLESS").is_ok_and(|v| v == "1")
}

/// Compare `path` with `expected`, or write it when blessing.
fn check_generated(file: &str, expected: &str) {
    let path = docs_dir().join(file);
    if blessing() {
        std::fs::create_dir_all(docs_dir()).expect("create docs/");
        std::fs::write(&path, expected).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
        eprintln!("regenerated {}", path.display());
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    if actual != expected {
        let first_diff = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .map(|i| i + 1)
            .unwrap_or(actual.lines().count().min(expected.lines().count()) + 1);
        panic!(
            "docs/{file} is stale (or missing): it differs from what core/src/regmap/ \
             generates, first at line {first_diff}.\nRegenerate it with:\n    {}\n",
            regmap::REGENERATE
        );
    }
}

#[test]
fn registers_md_is_up_to_date() {
    check_generated("REGISTERS.md", &regmap::markdown());
}

#[test]
fn c_header_is_up_to_date() {
    check_generated("flowgate_regs.h", &regmap::c_header());
}

/// A C file that includes the header and checks, at compile time, that its macros carry
/// the values of the Rust table.
fn c_probe(header: &Path) -> String {
    let mut c = format!("#include \"{}\"\n", header.display());
    let mut check = |expr: String, what: &str| {
        c.push_str(&format!("_Static_assert({expr}, \"{what}\");\n"));
    };
    for r in REGISTERS {
        check(
            format!("FLOWGATE_REG_{} == {:#x}u", r.name, r.offset),
            r.name,
        );
        check(
            format!("FLOWGATE_REG_{}_RESET == {:#x}u", r.name, r.reset),
            r.name,
        );
    }
    for w in WINDOWS {
        check(
            format!("FLOWGATE_WIN_{}_BASE == {:#x}u", w.name, w.base),
            w.name,
        );
        if w.kind == regmap::WindowKind::Indexed {
            let last = w.data_words - 1;
            check(
                format!(
                    "FLOWGATE_WIN_{}_DATA({last}) == {:#x}u",
                    w.name,
                    w.data_reg(last)
                ),
                w.name,
            );
        }
    }
    let dropped = flowgate_core::DropReason::NoHealthyBackend;
    check(
        format!(
            "FLOWGATE_CTR_DROP({}) == FLOWGATE_CTR_DROP_NO_HEALTHY_BACKEND",
            dropped.code()
        ),
        "drop counter",
    );
    c.push_str("int main(void) { return 0; }\n");
    c
}

#[test]
fn c_header_compiles_and_matches_the_table() {
    let dir = std::env::temp_dir().join(format!("flowgate-regs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let header = dir.join("flowgate_regs.h");
    std::fs::write(&header, regmap::c_header()).expect("write header");
    let probe = dir.join("probe.c");
    std::fs::write(&probe, c_probe(&header)).expect("write probe");
    let result = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only"])
        .arg(&probe)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "\n********************************************************************\n\
                 SKIPPED: `cc` is not on PATH, so docs/flowgate_regs.h was NOT compiled.\n\
                 ********************************************************************\n"
            );
        }
        Err(e) => panic!("running cc: {e}"),
        Ok(out) => assert!(
            out.status.success(),
            "the generated C header does not compile or disagrees with the table:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
