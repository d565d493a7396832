//! A file standing in for the PCIe BAR: what the driver writes through [`MmapBus`] lands
//! at the offsets `docs/REGISTERS.md` gives, and a file that reads like a fresh device
//! reads back the documented reset values. The doc is parsed here, not the regmap table,
//! because the doc is what users of other drivers read.

use flowgate_core::regmap::{self, Window, CMD_WRITE, MAP_SIZE};
use flowgate_driver::bus::BusExt;
use flowgate_driver::{
    compile, parse_str, probe, program, read_layout, DeviceInfo, MmapBus, MmapError, ProgramError,
    RegisterBus,
};

const DOC: &str = include_str!("../../docs/REGISTERS.md");

struct DocRegister {
    offset: u32,
    name: String,
    width: u32,
    reset: u32,
}

struct DocWindow {
    name: String,
    base: u32,
    indexed: bool,
    data_words: u32,
}

fn hex(s: &str) -> u32 {
    u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap()
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split(" | ")
        .map(|c| c.trim().trim_matches('`').to_string())
        .collect()
}

/// The rows of the table that follows `heading` in the doc.
fn table_after(heading: &str) -> Vec<Vec<String>> {
    let start = DOC
        .find(heading)
        .unwrap_or_else(|| panic!("{heading} in the doc"));
    DOC[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(cells)
        .collect()
}

fn doc_registers() -> Vec<DocRegister> {
    table_after("## Registers")
        .into_iter()
        .map(|c| DocRegister {
            offset: hex(&c[0]),
            name: c[1].clone(),
            width: c[2].parse().unwrap(),
            reset: hex(&c[4]),
        })
        .collect()
}

fn doc_windows() -> Vec<DocWindow> {
    table_after("## Windows")
        .into_iter()
        .map(|c| DocWindow {
            name: c[0].clone(),
            base: hex(&c[1]),
            indexed: c[2] == "indexed",
            data_words: c[5].parse().unwrap(),
        })
        .collect()
}

fn mask(width: u32) -> u32 {
    if width >= 32 {
        u32::MAX
    } else {
        (1 << width) - 1
    }
}

fn raw_word(bytes: &[u8], offset: u32) -> u32 {
    let at = offset as usize;
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

#[test]
fn the_doc_lists_every_register_the_driver_knows() {
    let doc = doc_registers();
    assert_eq!(doc.len(), regmap::REGISTERS.len());
    assert!(doc.len() > 60, "parsed {} rows", doc.len());
    for d in &doc {
        let r = regmap::register(&d.name).unwrap_or_else(|| panic!("{} in regmap", d.name));
        assert_eq!(
            (r.offset, r.width, r.reset),
            (d.offset, d.width, d.reset),
            "{}",
            d.name
        );
    }
}

#[test]
fn a_reset_image_reads_back_the_documented_reset_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut bus = MmapBus::create_image(dir.path().join("bar0")).unwrap();
    let layout = read_layout(&mut bus);
    let doc = doc_registers();
    assert_eq!(layout.len(), doc.len());
    for ((reg, value), d) in layout.iter().zip(&doc) {
        assert_eq!((reg.name, reg.offset), (d.name.as_str(), d.offset));
        assert_eq!(*value, d.reset, "{}", d.name);
    }
    // So the driver accepts the file as a device of the default build.
    assert_eq!(probe(&mut bus), Ok(DeviceInfo::default()));
}

#[test]
fn register_writes_land_at_the_documented_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bar0");
    std::fs::write(&path, vec![0u8; MAP_SIZE as usize]).unwrap();
    let mut bus = MmapBus::open(&path).unwrap();
    let doc = doc_registers();
    let value =
        |d: &DocRegister| (d.offset.wrapping_mul(0x9e37_79b9) ^ 0x5a5a_a5a5) & mask(d.width);
    // Through the driver's accessors, found by name in the regmap table.
    for d in &doc {
        bus.write_reg(regmap::register(&d.name).unwrap(), value(d));
    }
    bus.flush().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), MAP_SIZE as usize);
    for d in &doc {
        assert_eq!(
            raw_word(&bytes, d.offset),
            value(d),
            "{} at {:#x}",
            d.name,
            d.offset
        );
    }
    // Reading through the bus gives the same.
    for (reg, v) in read_layout(&mut bus) {
        assert_eq!(v, raw_word(&bytes, reg.offset), "{}", reg.name);
    }
}

#[test]
fn window_accesses_land_at_the_documented_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bar0");
    let mut bus = MmapBus::create_image(&path).unwrap();
    let windows = doc_windows();
    assert_eq!(windows.len(), regmap::WINDOWS.len());
    for (d, w) in windows.iter().zip(regmap::WINDOWS) {
        assert_eq!((d.name.as_str(), d.base), (w.name, w.base));
        if d.indexed {
            let data: Vec<u32> = (0..d.data_words).map(|k| 0x1000 * d.base + k + 1).collect();
            bus.write_entry(w, 0xabc0 + d.base, &data);
            bus.flush().unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                raw_word(&bytes, d.base),
                0xabc0 + d.base,
                "{} INDEX",
                d.name
            );
            assert_eq!(raw_word(&bytes, d.base + 4), CMD_WRITE, "{} CMD", d.name);
            for (k, &word) in data.iter().enumerate() {
                let at = d.base + 8 + 4 * k as u32;
                assert_eq!(raw_word(&bytes, at), word, "{} DATA{k}", d.name);
            }
        } else {
            // The doc's "Words 0x1000..0x107c": entry i at base + 4i.
            for i in 0..w.entries {
                bus.write32(w.data_reg(i), !i);
            }
            bus.flush().unwrap();
            let bytes = std::fs::read(&path).unwrap();
            for i in 0..w.entries {
                assert_eq!(raw_word(&bytes, d.base + 4 * i), !i, "{} word {i}", d.name);
            }
        }
    }
    assert_eq!(Window::DATA_OFFSET, 8);
}

#[test]
fn a_file_shorter_than_the_block_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for len in [0, 4, MAP_SIZE as usize - 4] {
        let path = dir.path().join(format!("short{len}"));
        std::fs::write(&path, vec![0u8; len]).unwrap();
        match MmapBus::open(&path) {
            Err(MmapError::TooShort { len: got, .. }) => assert_eq!(got, len as u64),
            other => panic!("{len} bytes: {other:?}"),
        }
    }
    let missing = MmapBus::open(dir.path().join("missing"));
    assert!(matches!(missing, Err(MmapError::Open { .. })));
    // A longer file (a BAR larger than the block) is fine: only the block is mapped.
    let path = dir.path().join("long");
    std::fs::write(&path, vec![0u8; 2 * MAP_SIZE as usize]).unwrap();
    assert!(MmapBus::open(&path).is_ok());
}

#[test]
fn a_file_that_is_not_a_flowgate_block_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zero");
    std::fs::write(&path, vec![0u8; MAP_SIZE as usize]).unwrap();
    let mut bus = MmapBus::open(&path).unwrap();
    assert_eq!(probe(&mut bus), Err(ProgramError::NotFlowgate { found: 0 }));
    // Same type, unknown major version.
    bus.write32(
        regmap::register("BLOCK_TYPE").unwrap().offset,
        regmap::BLOCK_TYPE,
    );
    bus.write32(
        regmap::register("BLOCK_VERSION").unwrap().offset,
        0x0100_0000,
    );
    assert_eq!(
        probe(&mut bus),
        Err(ProgramError::UnsupportedVersion { found: 0x0100_0000 })
    );
}

#[test]
fn programming_a_plain_file_stops_at_the_commit_instead_of_hanging() {
    // Nothing behind a file executes COMMIT, so COMMIT_GENERATION never moves: the
    // bounded poll gives up.
    let dir = tempfile::tempdir().unwrap();
    let mut bus = MmapBus::create_image(dir.path().join("bar0")).unwrap();
    let mut tables =
        compile(&parse_str(include_str!("../../examples/basic.toml"), "basic.toml").unwrap());
    // The software example's two choices would be refused before the commit.
    tables.geometry.choices = flowgate_driver::program::HW_CHOICES;
    let err = program(&mut bus, &tables).unwrap_err();
    assert!(matches!(err, ProgramError::CommitTimeout(_)), "{err}");
}
