//! The Verilator engine: the emitted Verilog compiled by Verilator with a generated C++
//! harness, run as a child process and driven over a pipe.
//!
//! The harness (`harness.cpp`, completed for the design's port widths, which are read from
//! the Verilog's port list) plays the clock-by-clock rules of [`cycle`](super::cycle) and
//! answers a small binary protocol, all integers little-endian:
//!
//! | Command | Bytes | Answer |
//! |---|---|---|
//! | AXI4-Lite write | `'W'` addr:u32 data:u32 | status:u8 (0 done, 1 no response) bresp:u8 cycle:u64 |
//! | AXI4-Lite read | `'R'` addr:u32 | status:u8 rresp:u8 data:u32 cycle:u64 |
//! | queue a frame | `'F'` tick:u32 len:u32 bytes | none |
//! | run until idle | `'G'` idle:u32 max_cycles:u64 backpressure:u8 seed:u32 ready_percent:u8 | status:u8 (0 idle, 1 timed out) cycle:u64 has_first:u8 first_in:u64 has_last:u8 last_out:u64, then if status 0: frames:u32 × (tuser:u8 len:u32 bytes) |
//! | quit | `'Q'` | none (the process exits) |
//!
//! On start the harness writes the ready word `0x464c4748`. The build is cached under the
//! cargo target directory by a hash of the Verilog, the harness and the Verilator version
//! (see [`VerilatorBuild`]), so each design is compiled once.

use super::{HwError, HwSim, OutFrame, RunConfig, RunReport, AXIL_TIMEOUT_CYCLES, RESP_OKAY};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

const HARNESS: &str = include_str!("harness.cpp");
/// Bumped when the build command changes, so old cache entries are not reused.
const BUILD_RECIPE: &str = "verilator --cc --exe --build -j 1 -Wno-fatal -Wno-lint -Wno-style \
     --x-assign 0 --x-initial 0 --top-module top -Mdir obj -o Vharness top.v harness.cpp";
const READY: u32 = 0x464c_4748;
/// Largest frame the protocol carries (its length is a u32; anything near this is a bug).
const MAX_FRAME: usize = 1 << 24;

/// Direction of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    In,
    Out,
}

/// The ports of module `top` in `verilog`: name → (direction, width in bits), read from
/// the declarations rust-hdl emits (`input wire [511:0] s_axis_tdata;`).
pub fn top_ports(verilog: &str) -> Result<BTreeMap<String, (Dir, usize)>, HwError> {
    let mut lines = verilog
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("module top("));
    if lines.next().is_none() {
        return Err(HwError::Ports("no `module top(` in the Verilog".into()));
    }
    let mut ports = BTreeMap::new();
    for line in lines {
        let line = line.trim();
        if line.starts_with("module ") || line.starts_with("endmodule") {
            break;
        }
        let dir = if line.starts_with("input ") {
            Dir::In
        } else if line.starts_with("output ") {
            Dir::Out
        } else {
            continue;
        };
        let tokens: Vec<&str> = line.trim_end_matches(';').split_whitespace().collect();
        let name = tokens.last().copied().unwrap_or_default();
        let width = match tokens.iter().find(|t| t.starts_with('[')) {
            None => 1,
            Some(range) => range
                .trim_start_matches('[')
                .strip_suffix(":0]")
                .and_then(|msb| msb.parse::<usize>().ok())
                .map(|msb| msb + 1)
                .ok_or_else(|| HwError::Ports(format!("unreadable port range in `{line}`")))?,
        };
        ports.insert(name.to_string(), (dir, width));
    }
    Ok(ports)
}

/// The stream width in bytes, after checking every port the harness drives.
fn check_ports(ports: &BTreeMap<String, (Dir, usize)>) -> Result<usize, HwError> {
    let width = |name: &str, dir: Dir| -> Result<usize, HwError> {
        match ports.get(name) {
            Some(&(d, w)) if d == dir => Ok(w),
            Some(_) => Err(HwError::Ports(format!("`{name}` has the wrong direction"))),
            None => Err(HwError::Ports(format!("no port `{name}`"))),
        }
    };
    let exact = |name: &str, dir: Dir, want: usize| -> Result<(), HwError> {
        match width(name, dir)? {
            w if w == want => Ok(()),
            w => Err(HwError::Ports(format!("`{name}` is {w} bits, not {want}"))),
        }
    };
    let at_most = |name: &str, dir: Dir, max: usize| -> Result<(), HwError> {
        match width(name, dir)? {
            w if w <= max => Ok(()),
            w => Err(HwError::Ports(format!(
                "`{name}` is {w} bits, more than {max}"
            ))),
        }
    };
    let data_bits = width("s_axis_tdata", Dir::In)?;
    // `usize::is_multiple_of` needs Rust 1.87; the workspace's rust-version is 1.80.
    #[allow(clippy::manual_is_multiple_of)]
    let unsupported = data_bits % 8 != 0
        || !(16..=512).contains(&data_bits)
        || (data_bits > 64 && data_bits % 32 != 0);
    if unsupported {
        return Err(HwError::Ports(format!(
            "s_axis_tdata is {data_bits} bits; the harness takes whole bytes, 16 to 512 bits, \
             and a multiple of 32 above 64"
        )));
    }
    let keep = data_bits / 8;
    exact("clock", Dir::In, 1)?;
    exact("m_axis_tdata", Dir::Out, data_bits)?;
    exact("s_axis_tkeep", Dir::In, keep)?;
    exact("m_axis_tkeep", Dir::Out, keep)?;
    for (name, dir) in [
        ("s_axis_tvalid", Dir::In),
        ("s_axis_tlast", Dir::In),
        ("s_axis_tready", Dir::Out),
        ("m_axis_tvalid", Dir::Out),
        ("m_axis_tlast", Dir::Out),
        ("m_axis_tready", Dir::In),
        ("s_axil_awvalid", Dir::In),
        ("s_axil_awready", Dir::Out),
        ("s_axil_wvalid", Dir::In),
        ("s_axil_wready", Dir::Out),
        ("s_axil_bvalid", Dir::Out),
        ("s_axil_bready", Dir::In),
        ("s_axil_arvalid", Dir::In),
        ("s_axil_arready", Dir::Out),
        ("s_axil_rvalid", Dir::Out),
        ("s_axil_rready", Dir::In),
    ] {
        exact(name, dir, 1)?;
    }
    at_most("s_axis_tuser", Dir::In, 32)?;
    at_most("m_axis_tuser", Dir::Out, 8)?;
    at_most("s_axil_awaddr", Dir::In, 32)?;
    at_most("s_axil_araddr", Dir::In, 32)?;
    exact("s_axil_wdata", Dir::In, 32)?;
    exact("s_axil_rdata", Dir::Out, 32)?;
    exact("s_axil_wstrb", Dir::In, 4)?;
    exact("s_axil_bresp", Dir::Out, 2)?;
    exact("s_axil_rresp", Dir::Out, 2)?;
    Ok(keep)
}

/// The harness source for a `data_bytes`-wide stream. Verilator holds a port of up to 64
/// bits in an integer and a wider one in `VlWide` (32-bit words, word 0 = bits 31..0).
pub fn harness_source(data_bytes: usize) -> String {
    let mut put = String::new();
    let mut get = String::new();
    if data_bytes <= 8 {
        put.push_str("    uint64_t v = 0;\n");
        for j in 0..data_bytes {
            let _ = writeln!(put, "    v |= (uint64_t)b[{j}] << {};", 8 * j);
            let _ = writeln!(
                get,
                "    b[{j}] = (uint8_t)((uint64_t)top->m_axis_tdata >> {});",
                8 * j
            );
        }
        put.push_str("    top->s_axis_tdata = v;");
    } else {
        for w in 0..data_bytes / 4 {
            let _ = writeln!(
                put,
                "    top->s_axis_tdata[{w}] = (uint32_t)b[{0}] | ((uint32_t)b[{1}] << 8) | \
                 ((uint32_t)b[{2}] << 16) | ((uint32_t)b[{3}] << 24);",
                4 * w,
                4 * w + 1,
                4 * w + 2,
                4 * w + 3
            );
            for k in 0..4 {
                let _ = writeln!(
                    get,
                    "    b[{}] = (uint8_t)(top->m_axis_tdata[{w}] >> {});",
                    4 * w + k,
                    8 * k
                );
            }
        }
    }
    HARNESS
        .replace("@DATA_BYTES@", &data_bytes.to_string())
        .replace("@AXIL_TIMEOUT@", &AXIL_TIMEOUT_CYCLES.to_string())
        .replace("@PUT_TDATA@", &put)
        .replace("@GET_TDATA@", &get)
}

/// FNV-1a, 64 bits: a cache key that is the same on every build of this crate (std's
/// hashers promise no such thing across Rust releases).
fn fnv1a(parts: &[&[u8]], basis: u64) -> u64 {
    let mut h = basis;
    for part in parts {
        for &b in part.iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Where and with what a Verilator model is built.
#[derive(Debug, Clone)]
pub struct VerilatorBuild {
    /// The `verilator` program (default: `verilator` on `PATH`).
    pub verilator: OsString,
    /// Cache directory; default: `$FLOWGATE_VERILATOR_CACHE`, else
    /// `<cargo target dir>/flowgate-verilator` (`$CARGO_TARGET_DIR`, or the `target`
    /// directory the running executable is in), else the system temp directory.
    pub cache_dir: Option<PathBuf>,
}

impl Default for VerilatorBuild {
    fn default() -> Self {
        VerilatorBuild {
            verilator: "verilator".into(),
            cache_dir: None,
        }
    }
}

fn tool_output(
    program: &OsString,
    tool: &'static str,
    package: &'static str,
    args: &[&str],
) -> Result<std::process::Output, HwError> {
    Command::new(program)
        .args(args)
        .output()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => HwError::Missing { tool, package },
            _ => HwError::Io(e),
        })
}

fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FLOWGATE_VERILATOR_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("flowgate-verilator");
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(target) = exe
            .ancestors()
            .find(|p| p.file_name() == Some("target".as_ref()))
        {
            return target.join("flowgate-verilator");
        }
    }
    std::env::temp_dir().join("flowgate-verilator")
}

impl VerilatorBuild {
    /// The harness binary for `verilog`, built unless the cache has it.
    pub fn binary(&self, verilog: &str) -> Result<(PathBuf, usize), HwError> {
        let version = tool_output(&self.verilator, "verilator", "verilator", &["--version"])?;
        let data_bytes = check_ports(&top_ports(verilog)?)?;
        let harness = harness_source(data_bytes);
        let parts: [&[u8]; 4] = [
            verilog.as_bytes(),
            harness.as_bytes(),
            &version.stdout,
            BUILD_RECIPE.as_bytes(),
        ];
        let key = format!(
            "{:016x}{:016x}",
            fnv1a(&parts, 0xcbf2_9ce4_8422_2325),
            fnv1a(&parts, 0x6c62_272e_07bb_0142)
        );
        let cache = self.cache_dir.clone().unwrap_or_else(default_cache_dir);
        let dir = cache.join(&key);
        let binary = dir.join("obj").join("Vharness");
        if binary.is_file() {
            return Ok((binary, data_bytes));
        }
        for (tool, package) in [("make", "make"), ("g++", "g++")] {
            tool_output(&tool.into(), tool, package, &["--version"])?;
        }
        std::fs::create_dir_all(&cache)?;
        // Built beside the cache entry and renamed into place, so a concurrent build of
        // the same design (two tests at once) never sees a half-built model.
        let scratch = tempfile::Builder::new()
            .prefix(&format!("{key}.build-"))
            .tempdir_in(&cache)?;
        std::fs::write(scratch.path().join("top.v"), verilog)?;
        std::fs::write(scratch.path().join("harness.cpp"), &harness)?;
        let words: Vec<&str> = BUILD_RECIPE.split_whitespace().skip(1).collect();
        let output = Command::new(&self.verilator)
            .current_dir(scratch.path())
            .args(&words)
            .output()?;
        if !output.status.success() || !scratch.path().join("obj/Vharness").is_file() {
            return Err(HwError::Build {
                dir: scratch.path().to_path_buf(),
                log: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            });
        }
        let built = scratch.keep();
        if std::fs::rename(&built, &dir).is_err() {
            // Another build won the race; use its result.
            let _ = std::fs::remove_dir_all(&built);
        }
        if !binary.is_file() {
            return Err(HwError::Build {
                dir,
                log: "the built model disappeared from the cache".into(),
            });
        }
        Ok((binary, data_bytes))
    }

    /// Build (or reuse) the model of `verilog` and start it.
    pub fn start(&self, verilog: &str) -> Result<VerilatorSim, HwError> {
        let (binary, data_bytes) = self.binary(verilog)?;
        VerilatorSim::spawn(&binary, data_bytes)
    }
}

/// A running Verilator model of a flowgate top.
pub struct VerilatorSim {
    child: Child,
    to: BufWriter<ChildStdin>,
    from: BufReader<ChildStdout>,
    data_bytes: usize,
    cycle: u64,
}

impl VerilatorSim {
    /// Build (cached) and start `verilog` with the default [`VerilatorBuild`].
    pub fn build(verilog: &str) -> Result<VerilatorSim, HwError> {
        VerilatorBuild::default().start(verilog)
    }

    /// Start the harness at `binary` for a `data_bytes`-wide stream.
    pub fn spawn(binary: &Path, data_bytes: usize) -> Result<VerilatorSim, HwError> {
        let mut child = Command::new(binary)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HwError::Died("no pipes to the harness".into()));
        };
        let mut sim = VerilatorSim {
            child,
            to: BufWriter::new(stdin),
            from: BufReader::new(stdout),
            data_bytes,
            cycle: 0,
        };
        match sim.read_u32() {
            Ok(READY) => Ok(sim),
            Ok(other) => Err(HwError::Died(format!("harness said {other:#x}, not ready"))),
            Err(e) => Err(e),
        }
    }

    fn died(&mut self, e: io::Error) -> HwError {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => format!("harness exited ({status})"),
            _ => "harness stopped answering".into(),
        };
        HwError::Died(format!("{status}: {e}"))
    }

    fn read_bytes<const N: usize>(&mut self) -> Result<[u8; N], HwError> {
        let mut buf = [0; N];
        match self.from.read_exact(&mut buf) {
            Ok(()) => Ok(buf),
            Err(e) => Err(self.died(e)),
        }
    }
    fn read_u8(&mut self) -> Result<u8, HwError> {
        Ok(self.read_bytes::<1>()?[0])
    }
    fn read_u32(&mut self) -> Result<u32, HwError> {
        Ok(u32::from_le_bytes(self.read_bytes()?))
    }
    fn read_u64(&mut self) -> Result<u64, HwError> {
        Ok(u64::from_le_bytes(self.read_bytes()?))
    }

    fn send_command(&mut self, bytes: &[u8]) -> Result<(), HwError> {
        match self.to.write_all(bytes).and_then(|()| self.to.flush()) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.died(e)),
        }
    }
}

impl Drop for VerilatorSim {
    fn drop(&mut self) {
        let _ = self.to.write_all(b"Q").and_then(|()| self.to.flush());
        // The harness exits on 'Q' or on end of input; kill it only if it does not.
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HwSim for VerilatorSim {
    fn data_bytes(&self) -> usize {
        self.data_bytes
    }

    fn cycle(&self) -> u64 {
        self.cycle
    }

    fn axil_write(&mut self, addr: u32, data: u32) -> Result<(), HwError> {
        let mut cmd = vec![b'W'];
        cmd.extend(addr.to_le_bytes());
        cmd.extend(data.to_le_bytes());
        self.send_command(&cmd)?;
        let status = self.read_u8()?;
        let resp = self.read_u8()?;
        self.cycle = self.read_u64()?;
        match (status, resp) {
            (0, RESP_OKAY) => Ok(()),
            (0, resp) => Err(HwError::Response {
                op: "write",
                addr,
                resp,
            }),
            _ => Err(HwError::AxilTimeout { op: "write", addr }),
        }
    }

    fn axil_read(&mut self, addr: u32) -> Result<u32, HwError> {
        let mut cmd = vec![b'R'];
        cmd.extend(addr.to_le_bytes());
        self.send_command(&cmd)?;
        let status = self.read_u8()?;
        let resp = self.read_u8()?;
        let data = self.read_u32()?;
        self.cycle = self.read_u64()?;
        match (status, resp) {
            (0, RESP_OKAY) => Ok(data),
            (0, resp) => Err(HwError::Response {
                op: "read",
                addr,
                resp,
            }),
            _ => Err(HwError::AxilTimeout { op: "read", addr }),
        }
    }

    fn send(&mut self, frame: &[u8], tick: u32) {
        // Buffered until the next command flushes; an I/O error shows up there.
        let frame = &frame[..frame.len().min(MAX_FRAME)];
        let mut head = [0u8; 9];
        head[0] = b'F';
        head[1..5].copy_from_slice(&tick.to_le_bytes());
        head[5..9].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        let _ = self
            .to
            .write_all(&head)
            .and_then(|()| self.to.write_all(frame));
    }

    fn run(&mut self, config: &RunConfig) -> Result<RunReport, HwError> {
        let mut cmd = vec![b'G'];
        cmd.extend(config.idle_cycles.to_le_bytes());
        cmd.extend(config.max_cycles.to_le_bytes());
        let (bp, seed, percent) = match config.backpressure {
            Some(b) => (1u8, b.seed, b.ready_percent),
            None => (0, 0, 100),
        };
        cmd.push(bp);
        cmd.extend(seed.to_le_bytes());
        cmd.push(percent);
        self.send_command(&cmd)?;
        let status = self.read_u8()?;
        self.cycle = self.read_u64()?;
        let has_first = self.read_u8()? != 0;
        let first_in = self.read_u64()?;
        let has_last = self.read_u8()? != 0;
        let last_out = self.read_u64()?;
        if status != 0 {
            return Err(HwError::Timeout {
                cycles: config.max_cycles,
            });
        }
        let n = self.read_u32()?;
        let mut frames = Vec::new();
        for _ in 0..n {
            let tuser = self.read_u8()?;
            let len = self.read_u32()? as usize;
            if len > MAX_FRAME {
                return Err(HwError::Died(format!(
                    "harness sent a frame of {len} bytes"
                )));
            }
            let mut data = vec![0; len];
            if let Err(e) = self.from.read_exact(&mut data) {
                return Err(self.died(e));
            }
            frames.push(OutFrame { data, tuser });
        }
        Ok(RunReport {
            frames,
            first_in: has_first.then_some(first_in),
            last_out: has_last.then_some(last_out),
            end_cycle: self.cycle,
        })
    }
}
