//! The report every `flowgate synth` run writes: clock achieved against the target,
//! resources used against the part, flow entries the part's block RAM holds, and the line
//! rate the clock supports at one frame per clock. `report.json` for tools, `report.md`
//! for people; both from one [`Report`].

use super::parts::{Part, Target, FLOW_ENTRY_BITS};
use super::{DesignSpec, Options, SynthError};
use flowgate_hdl::toolchain::SynthReport;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// A minimum Ethernet frame (64 bytes with FCS) and what it takes on the wire: + 8 bytes
/// preamble/SFD + 12 bytes inter-frame gap. 100 Gb/s / (84 × 8 bit) = 148.8 Mpps.
pub const MIN_FRAME_BYTES: u64 = 64;
pub const WIRE_OVERHEAD_BYTES: u64 = 20;

/// One resource class: used (None when the tool did not run) against the part.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// "LUT", "FF", "BRAM", "URAM", "DSP".
    pub class: &'static str,
    /// The primitive counted ("LUT4", "DP16KD", ...).
    pub kind: String,
    pub used: Option<u64>,
    pub available: u64,
}

impl Resource {
    pub fn percent(&self) -> Option<f64> {
        let used = self.used?;
        (self.available > 0).then(|| used as f64 * 100.0 / self.available as f64)
    }
}

/// One step of nextpnr's critical path.
#[derive(Debug, Clone, PartialEq)]
pub struct PathStep {
    /// "clk-to-q", "logic", "routing", "setup", ...
    pub kind: String,
    pub delay_ns: f64,
    /// The cell (and port) the step ends at, or the net it routes.
    pub at: String,
}

/// One bin of nextpnr's slack histogram: endpoints whose slack lies in `[from, to)` ns.
/// nextpnr draws the bins as bars of `*` (each `per_star` endpoints) and a `+` for a
/// remainder, without the count, so `endpoints` is the bar read back as a lower bound
/// (a `+` counts one): exact when a star is one endpoint, else short by less than a star.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackBin {
    pub from_ns: f64,
    pub to_ns: f64,
    pub endpoints: u64,
    /// The most endpoints the bar can stand for (equal to `endpoints` when exact).
    pub endpoints_max: u64,
}

/// What a developer reads first about a critical path: how many cells deep it is,
/// where its time goes, and which blocks it crosses.
#[derive(Debug, Clone, PartialEq)]
pub struct PathSummary {
    pub total_ns: f64,
    /// Logic levels on the path: each LUT4 and PFUMX/L6MUX21 mux level, and each carry
    /// chain once (however many CCU2C cells it ripples through).
    pub logic_levels: usize,
    /// Carry-chain steps among them (CCU2C halves a chain ripples through).
    pub carry_steps: usize,
    pub clk_to_q_ns: f64,
    pub logic_ns: f64,
    pub routing_ns: f64,
    pub setup_ns: f64,
    /// The blocks in path order (a block again after another one is a new segment).
    pub segments: Vec<PathSegment>,
}

/// The part of a critical path inside one block of the design.
#[derive(Debug, Clone, PartialEq)]
pub struct PathSegment {
    /// The design's child instance the cells belong to (`fifo`, `rewriter`, ...), or
    /// `harness` for the serial harness around the design.
    pub block: String,
    pub ns: f64,
    pub logic_levels: usize,
}

impl PathSummary {
    pub fn of(path: &[PathStep]) -> PathSummary {
        let sum = |kind: &str| -> f64 {
            path.iter()
                .filter(|s| s.kind == kind)
                .map(|s| s.delay_ns)
                .sum()
        };
        let mut segments: Vec<PathSegment> = Vec::new();
        let (mut levels, mut carry_steps, mut in_carry) = (0, 0, false);
        for step in path {
            // A carry chain's cells and the nets between them all carry `CCU2` in their
            // names; anything else ends the chain.
            let carry = step.at.contains("CCU2");
            let level = match (step.kind == "logic", carry) {
                (true, true) => {
                    carry_steps += 1;
                    usize::from(!std::mem::replace(&mut in_carry, true))
                }
                (true, false) => 1,
                (false, _) => 0,
            };
            if !carry {
                in_carry = false;
            }
            levels += level;
            let block = block_of(&step.at);
            match (segments.last_mut(), block) {
                (Some(seg), None) => {
                    seg.ns += step.delay_ns;
                    seg.logic_levels += level;
                }
                (Some(seg), Some(b)) if seg.block == b => {
                    seg.ns += step.delay_ns;
                    seg.logic_levels += level;
                }
                _ => segments.push(PathSegment {
                    block: block.unwrap_or("(top level)").to_string(),
                    ns: step.delay_ns,
                    logic_levels: level,
                }),
            }
        }
        PathSummary {
            total_ns: path.iter().map(|s| s.delay_ns).sum(),
            logic_levels: levels,
            carry_steps,
            clk_to_q_ns: sum("clk-to-q"),
            logic_ns: sum("logic"),
            routing_ns: sum("routing"),
            setup_ns: sum("setup"),
            segments,
        }
    }

    /// "fifo 11.5 ns (0) → rewriter 4.2 ns (6) → …": block, time, logic levels.
    pub fn route(&self) -> String {
        self.segments
            .iter()
            .map(|s| format!("{} {:.2} ns ({})", s.block, s.ns, s.logic_levels))
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

/// The block a step's cell or net belongs to: the child instance below the harness's
/// `dut` (`dut.fifo.last_ram.mem.0.0.DOB0` → `fifo`; in a block alone its registers,
/// `dut.r2_now.q` → `r2_now`); a name outside `dut` is the harness's own. A cell or net
/// of the design's own level (`dut.w3_age_CCU2C_S0$CCU2_COMB0`, no instance in its name)
/// has none: it stays with the block before it.
fn block_of(at: &str) -> Option<&str> {
    // A cell step ends in `.PORT`; a routing step names its net.
    let name = match at.strip_prefix("net ") {
        Some(net) => net,
        None => at.rsplit_once('.').map_or(at, |(cell, _port)| cell),
    };
    // Cells nextpnr adds itself (`$nextpnr_CCU2C_55`, a carry chain's feed-in) belong
    // to the logic around them.
    if name.starts_with('$') {
        return None;
    }
    match name.strip_prefix("dut.") {
        Some(rest) => {
            let end = rest.find('.')?;
            let block = &rest[..end];
            // A bit index is part of a net name, never an instance.
            (!block.contains('[')).then_some(block)
        }
        None => Some("harness"),
    }
}

/// Reads the last slack histogram out of nextpnr's log (the one after routing when the
/// run routed). Lines look like `Info: [-17083, -14791) |*****+` in ps, after a legend
/// `Info:  legend: * represents 7 endpoint(s)`.
pub fn parse_slack_histogram(log: &str) -> Vec<SlackBin> {
    let mut bins = Vec::new();
    let mut per_star = 1u64;
    for line in log.lines() {
        let text = line.trim_start_matches("Info:").trim();
        if text.starts_with("Slack histogram") {
            bins.clear();
            per_star = 1;
        } else if let Some(rest) = text.strip_prefix("legend: * represents ") {
            per_star = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
        } else if let Some(bin) = text.strip_prefix('[').and_then(|t| slack_bin(t, per_star)) {
            bins.push(bin);
        }
    }
    bins
}

/// `-17083, -14791) |*****+` → the bin (ps → ns).
fn slack_bin(text: &str, per_star: u64) -> Option<SlackBin> {
    let (range, bar) = text.split_once(')')?;
    let (from, to) = range.split_once(',')?;
    let from: f64 = from.trim().parse().ok()?;
    let to: f64 = to.trim().parse().ok()?;
    let bar = bar.trim().strip_prefix('|')?;
    let stars = bar.chars().filter(|&c| c == '*').count() as u64;
    let rest = u64::from(bar.contains('+'));
    Some(SlackBin {
        from_ns: from / 1000.0,
        to_ns: to / 1000.0,
        endpoints: stars * per_star + rest,
        endpoints_max: stars * per_star + rest * per_star.saturating_sub(1),
    })
}

#[derive(Debug, Clone)]
pub struct Report {
    pub design: String,
    pub design_about: String,
    pub target: Target,
    pub part: &'static Part,
    pub profile: super::Profile,
    pub freq_target_mhz: f64,
    /// nextpnr's achieved Fmax for the design clock (ECP5 only).
    pub fmax_mhz: Option<f64>,
    pub resources: Vec<Resource>,
    /// Flow entries the design holds.
    pub flow_entries: u64,
    pub critical_path: Vec<PathStep>,
    /// nextpnr's slack histogram after routing (from its log), worst bin first.
    pub slack_histogram: Vec<SlackBin>,
    /// The netlist's deepest paths by logic levels, before placement ([`crate::levels`]).
    pub deepest: Vec<crate::levels::DeepPath>,
    pub bitstream: Option<(String, u64)>,
    /// (step, seconds).
    pub steps: Vec<(String, f64)>,
    pub files: Vec<String>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(spec: &DesignSpec, opts: &Options) -> Report {
        let part = opts.target.part();
        let resource = |class, kind: &str, available| Resource {
            class,
            kind: kind.to_string(),
            used: None,
            available,
        };
        let mut resources = vec![
            resource("LUT", part.lut_kind, part.luts),
            resource("FF", "FF", part.ffs),
            resource("BRAM", part.bram_kind, part.bram),
        ];
        if part.uram > 0 {
            resources.push(resource("URAM", "URAM288", part.uram));
        }
        resources.push(resource("DSP", part.dsp_kind, part.dsp));
        Report {
            design: spec.name.to_string(),
            design_about: spec.about.to_string(),
            target: opts.target,
            part,
            profile: opts.profile,
            freq_target_mhz: opts.freq_mhz,
            fmax_mhz: None,
            resources,
            flow_entries: spec.flow_entries,
            critical_path: Vec::new(),
            slack_histogram: Vec::new(),
            deepest: Vec::new(),
            bitstream: None,
            steps: Vec::new(),
            files: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn resource(&self, class: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.class == class)
    }

    fn set(&mut self, class: &str, used: u64, available: Option<u64>) {
        if let Some(r) = self.resources.iter_mut().find(|r| r.class == class) {
            r.used = Some(used);
            if let Some(a) = available {
                r.available = a;
            }
        }
    }

    /// Takes Fmax, utilization and the critical path from nextpnr's `--report` JSON.
    pub fn apply_nextpnr(&mut self, json: &str) -> Result<(), SynthError> {
        let unreadable = |detail: String| SynthError::Unreadable {
            what: "nextpnr report",
            detail,
        };
        let v: Value = serde_json::from_str(json).map_err(|e| unreadable(e.to_string()))?;
        let util = v
            .get("utilization")
            .and_then(Value::as_object)
            .ok_or_else(|| unreadable("no utilization".into()))?;
        for (class, bel) in [
            ("LUT", "TRELLIS_COMB"),
            ("FF", "TRELLIS_FF"),
            ("BRAM", "DP16KD"),
            ("DSP", "MULT18X18D"),
        ] {
            let entry = util.get(bel);
            let used = entry.and_then(|e| e.get("used")).and_then(Value::as_u64);
            let available = entry
                .and_then(|e| e.get("available"))
                .and_then(Value::as_u64);
            self.set(class, used.unwrap_or(0), available);
        }
        // The harness has one clock; take the slowest if a design ever has more.
        self.fmax_mhz = v.get("fmax").and_then(Value::as_object).and_then(|clocks| {
            clocks
                .values()
                .filter_map(|c| c.get("achieved").and_then(Value::as_f64))
                .min_by(f64::total_cmp)
        });
        if self.fmax_mhz.is_none() {
            return Err(unreadable("no fmax for the clock".into()));
        }
        self.critical_path = v
            .pointer("/critical_paths/0/path")
            .and_then(Value::as_array)
            .map(|steps| steps.iter().map(path_step).collect())
            .unwrap_or_default();
        Ok(())
    }

    /// Takes yosys's `synth_ecp5` cell counts, before placement: LUT = LUT4 plus two per
    /// carry cell (CCU2C holds two LUT4s), FF = TRELLIS_FF, BRAM = DP16KD, DSP =
    /// MULT18X18D. A lower bound of what nextpnr will count (it adds route-through
    /// LUTs), so a design over the part here cannot be placed; nextpnr's counts replace
    /// these when it runs.
    pub fn apply_ecp5_stat(&mut self, stat: &SynthReport) {
        let luts = stat.cell_count("LUT4") + 2 * stat.cell_count("CCU2C");
        self.set("LUT", luts, None);
        self.set("FF", stat.cell_count("TRELLIS_FF"), None);
        self.set("BRAM", stat.cell_count("DP16KD"), None);
        self.set("DSP", stat.cell_count("MULT18X18D"), None);
    }

    /// The resources used beyond what the part has, as "LUT4: 105 743 of 83 640 (126 %)".
    pub fn over_capacity(&self) -> Vec<String> {
        self.resources
            .iter()
            .filter(|r| r.used.is_some_and(|u| u > r.available))
            .map(|r| {
                format!(
                    "{}: {} of {} ({:.0} %)",
                    r.kind,
                    r.used.unwrap_or(0),
                    r.available,
                    r.percent().unwrap_or(0.0)
                )
            })
            .collect()
    }

    /// Takes the resource counts of a `synth_xilinx` run.
    pub fn apply_xilinx_stat(&mut self, stat: &SynthReport) {
        let sum = |pred: &dyn Fn(&str) -> bool, weight: &dyn Fn(&str) -> u64| -> u64 {
            stat.cells
                .iter()
                .filter(|(k, _)| pred(k))
                .map(|(k, n)| n * weight(k))
                .sum()
        };
        // LUTs: logic LUT1..6 plus LUTs used as distributed RAM or shift registers.
        let luts = sum(&|k| k.starts_with("LUT"), &|_| 1)
            + sum(&|k| k.starts_with("SRL"), &|_| 1)
            + sum(&|k| k.starts_with("RAM") && !k.starts_with("RAMB"), &|k| {
                lutram_luts(k)
            });
        let ffs = sum(&|k| k.starts_with("FD") || k.starts_with("LD"), &|_| 1);
        // RAMB18 is half a RAMB36 site.
        let bram = stat.cell_count("RAMB36E2") + stat.cell_count("RAMB18E2").div_ceil(2);
        let uram = stat.cell_count("URAM288");
        let dsp = stat.cell_count("DSP48E2");
        self.set("LUT", luts, None);
        self.set("FF", ffs, None);
        self.set("BRAM", bram, None);
        self.set("URAM", uram, None);
        self.set("DSP", dsp, None);
    }

    /// Flow entries the part's block RAM (and URAM) holds in the flow table's layout,
    /// after what the rest of the design uses: the block RAM the design uses beyond its
    /// own flow table (its table at the part's layout) is taken off first.
    pub fn flow_entries_fit(&self) -> u64 {
        let bram = self.resource("BRAM").expect("every part has block RAM");
        let table_blocks =
            self.flow_entries.div_ceil(self.part.bram_depth) * self.part.blocks_per_way();
        let other = bram.used.unwrap_or(0).saturating_sub(table_blocks);
        self.part
            .flow_entries_in(bram.available.saturating_sub(other))
    }

    /// The clock the line-rate figures use: achieved if measured, else the target.
    pub fn rate_clock_mhz(&self) -> (f64, &'static str) {
        match self.fmax_mhz {
            Some(f) => (f, "achieved"),
            None => (self.freq_target_mhz, "target (not measured)"),
        }
    }

    /// Beats of the profile's stream a minimum frame takes.
    pub fn beats_per_min_frame(&self) -> u64 {
        (MIN_FRAME_BYTES * 8).div_ceil(self.profile.stream_bits())
    }

    pub fn to_json(&self) -> Value {
        let (clock, clock_source) = self.rate_clock_mhz();
        let fps = clock * 1e6;
        let beats = self.beats_per_min_frame();
        let resources: Vec<Value> = self
            .resources
            .iter()
            .map(|r| {
                json!({
                    "class": r.class, "kind": r.kind, "used": r.used,
                    "available": r.available, "percent": r.percent().map(round2),
                })
            })
            .collect();
        let path: Vec<Value> = self
            .critical_path
            .iter()
            .map(|s| json!({"type": s.kind, "delay_ns": round3(s.delay_ns), "at": s.at}))
            .collect();
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|(s, t)| json!({"step": s, "seconds": round2(*t)}))
            .collect();
        let summary = (!self.critical_path.is_empty()).then(|| {
            let p = PathSummary::of(&self.critical_path);
            let segments: Vec<Value> = p
                .segments
                .iter()
                .map(|s| json!({"block": s.block, "ns": round3(s.ns), "logic_levels": s.logic_levels}))
                .collect();
            json!({
                "total_ns": round3(p.total_ns),
                "logic_levels": p.logic_levels,
                "carry_steps": p.carry_steps,
                "clk_to_q_ns": round3(p.clk_to_q_ns),
                "logic_ns": round3(p.logic_ns),
                "routing_ns": round3(p.routing_ns),
                "setup_ns": round3(p.setup_ns),
                "blocks": segments,
            })
        });
        let deepest: Vec<Value> = self
            .deepest
            .iter()
            .map(|p| {
                json!({
                    "logic_levels": p.levels, "carry_steps": p.carry_steps,
                    "from": p.from, "to": p.to, "block": p.block,
                })
            })
            .collect();
        let histogram: Vec<Value> = self
            .slack_histogram
            .iter()
            .map(|b| {
                json!({
                    "from_ns": round3(b.from_ns), "to_ns": round3(b.to_ns),
                    "endpoints": b.endpoints, "endpoints_max": b.endpoints_max,
                })
            })
            .collect();
        json!({
            "design": self.design,
            "design_about": self.design_about,
            "target": self.target.name(),
            "part": self.part.title,
            "device": self.part.device,
            "profile": self.profile.name(),
            "stream_bits": self.profile.stream_bits(),
            "clock": {
                "target_mhz": self.freq_target_mhz,
                "fmax_mhz": self.fmax_mhz.map(round2),
                "met": self.fmax_mhz.map(|f| f >= self.freq_target_mhz),
            },
            "resources": resources,
            "flow_table": {
                "entries": self.flow_entries,
                "entry_bits": FLOW_ENTRY_BITS,
                "entries_fit": self.flow_entries_fit(),
            },
            "line_rate": {
                "clock_mhz": round2(clock),
                "clock_source": clock_source,
                "pipeline_frames_per_s": fps.round(),
                "pipeline_gbps_64b_frames": round2(fps * (MIN_FRAME_BYTES * 8) as f64 / 1e9),
                "pipeline_gbps_64b_on_wire": round2(
                    fps * ((MIN_FRAME_BYTES + WIRE_OVERHEAD_BYTES) * 8) as f64 / 1e9
                ),
                "stream_beats_per_64b_frame": beats,
                "stream_frames_per_s": (fps / beats as f64).round(),
            },
            "critical_path": path,
            "critical_path_summary": summary,
            "slack_histogram": histogram,
            "deepest_paths": deepest,
            "bitstream": self.bitstream.as_ref().map(|(f, n)| json!({"file": f, "bytes": n})),
            "steps": steps,
            "files": self.files,
            "notes": self.notes,
        })
    }

    pub fn to_json_string(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        s.push('\n');
        s
    }

    pub fn to_markdown(&self) -> String {
        let mut m = String::new();
        let (clock, clock_source) = self.rate_clock_mhz();
        let fps = clock * 1e6;
        let beats = self.beats_per_min_frame();
        let _ = writeln!(
            m,
            "# flowgate synth: `{}` on `{}`\n",
            self.design, self.target
        );
        let _ = writeln!(m, "| | |\n|---|---|");
        let _ = writeln!(m, "| Design | `{}`: {} |", self.design, self.design_about);
        let _ = writeln!(m, "| Part | {} |", self.part.title);
        let _ = writeln!(
            m,
            "| Profile | {} ({}-bit stream) |",
            self.profile,
            self.profile.stream_bits()
        );
        let clock_line = match self.fmax_mhz {
            Some(f) if f >= self.freq_target_mhz => format!(
                "target {:.1} MHz, **achieved {f:.1} MHz** (met)",
                self.freq_target_mhz
            ),
            Some(f) => format!(
                "target {:.1} MHz, **achieved {f:.1} MHz** (not met)",
                self.freq_target_mhz
            ),
            None => format!("target {:.1} MHz, not measured", self.freq_target_mhz),
        };
        let _ = writeln!(m, "| Clock | {clock_line} |");
        let _ = writeln!(
            m,
            "| Flow entries | {} in the design; {} fit the part's block RAM ({} bits each) |",
            self.flow_entries,
            self.flow_entries_fit(),
            FLOW_ENTRY_BITS
        );
        if let Some((file, bytes)) = &self.bitstream {
            let _ = writeln!(m, "| Bitstream | `{file}` ({bytes} bytes) |");
        }
        let _ = writeln!(m, "\n## Utilization\n");
        let _ = writeln!(m, "| Resource | Primitive | Used | Available | % |");
        let _ = writeln!(m, "|---|---|---:|---:|---:|");
        for r in &self.resources {
            let used = r.used.map_or("—".into(), |u| u.to_string());
            let pct = r.percent().map_or("—".into(), |p| format!("{p:.1}"));
            let _ = writeln!(
                m,
                "| {} | {} | {used} | {} | {pct} |",
                r.class, r.kind, r.available
            );
        }
        let _ = writeln!(
            m,
            "\n## Line rate at II = 1 ({clock:.1} MHz, {clock_source})\n"
        );
        let _ = writeln!(
            m,
            "| | frames/s | Gb/s (64-byte frames) | Gb/s on the wire |"
        );
        let _ = writeln!(m, "|---|---:|---:|---:|");
        let row = |fps: f64| {
            format!(
                "{:.1} M | {:.1} | {:.1}",
                fps / 1e6,
                fps * 512.0 / 1e9,
                fps * 672.0 / 1e9
            )
        };
        let _ = writeln!(m, "| header pipeline, 1 frame / clock | {} |", row(fps));
        let _ = writeln!(
            m,
            "| {}-bit stream, {beats} beat(s) / 64-byte frame | {} |",
            self.profile.stream_bits(),
            row(fps / beats as f64)
        );
        let _ = writeln!(
            m,
            "\n100 GbE at minimum frames is 148.8 Mpps (64 + 20 bytes on the wire)."
        );
        if !self.critical_path.is_empty() {
            let p = PathSummary::of(&self.critical_path);
            let _ = writeln!(m, "\n## Critical path ({:.2} ns, nextpnr)\n", p.total_ns);
            let _ = writeln!(
                m,
                "{} logic levels ({} carry-chain steps, a chain counted once); clock-to-out \
                 {:.2} ns, logic {:.2} ns, routing {:.2} ns, setup {:.2} ns.\n\n\
                 Blocks it crosses (time, logic levels): {}\n",
                p.logic_levels,
                p.carry_steps,
                p.clk_to_q_ns,
                p.logic_ns,
                p.routing_ns,
                p.setup_ns,
                p.route()
            );
            let _ = writeln!(m, "| Step | ns | At |\n|---|---:|---|");
            for s in &self.critical_path {
                let _ = writeln!(m, "| {} | {:.3} | `{}` |", s.kind, s.delay_ns, s.at);
            }
        }
        if !self.deepest.is_empty() {
            let _ = writeln!(m, "\n{}", crate::levels::to_markdown(&self.deepest));
        }
        if !self.slack_histogram.is_empty() {
            let _ = writeln!(
                m,
                "\n## Endpoints by slack (nextpnr's histogram at {:.1} MHz)\n",
                self.freq_target_mhz
            );
            let _ = writeln!(
                m,
                "| Slack from (ns) | to (ns) | Endpoints | Fmax if they were the worst |"
            );
            let _ = writeln!(m, "|---:|---:|---:|---:|");
            let period = 1000.0 / self.freq_target_mhz;
            for b in &self.slack_histogram {
                let path_ns = period - b.from_ns;
                let fmax = if path_ns > 0.0 {
                    format!("{:.1} MHz", 1000.0 / path_ns)
                } else {
                    "—".into()
                };
                let count = if b.endpoints == b.endpoints_max {
                    b.endpoints.to_string()
                } else {
                    format!("{}–{}", b.endpoints, b.endpoints_max)
                };
                let _ = writeln!(
                    m,
                    "| {:.2} | {:.2} | {count} | {fmax} |",
                    b.from_ns, b.to_ns
                );
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(m, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(m, "- {n}");
            }
        }
        let _ = writeln!(m, "\n## Steps\n\n| Step | s |\n|---|---:|");
        for (s, t) in &self.steps {
            let _ = writeln!(m, "| {s} | {t:.1} |");
        }
        let _ = writeln!(m, "\nFiles: {}", self.files.join(", "));
        m
    }
}

/// LUTs a distributed-RAM primitive takes (UltraScale+ CLB: 8 LUT6 per SLICEM).
fn lutram_luts(kind: &str) -> u64 {
    match kind {
        "RAM32M" | "RAM64M" | "RAM128X1D" => 4,
        "RAM32M16" | "RAM64M8" | "RAM256X1D" => 8,
        "RAM32X1D" | "RAM64X1D" | "RAM256X1S" => 2,
        _ => 1,
    }
}

fn path_step(step: &Value) -> PathStep {
    let text = |p: &str| step.pointer(p).and_then(Value::as_str).unwrap_or("");
    let at = if text("/type") == "routing" && !text("/net").is_empty() {
        format!("net {}", text("/net"))
    } else {
        format!("{}.{}", text("/to/cell"), text("/to/port"))
    };
    PathStep {
        kind: text("/type").to_string(),
        delay_ns: step.get("delay").and_then(Value::as_f64).unwrap_or(0.0),
        at,
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{design, Profile};
    use std::path::PathBuf;

    /// The shape of nextpnr-ecp5 0.11's `--report` (cut down from a real run of the
    /// 16K flow table).
    const NEXTPNR: &str = r#"{
      "utilization": {
        "DP16KD": {"available": 208, "used": 116},
        "TRELLIS_COMB": {"available": 83640, "used": 6271},
        "TRELLIS_FF": {"available": 83640, "used": 2478},
        "TRELLIS_IO": {"available": 365, "used": 3}
      },
      "fmax": {"$glbnet$clk$TRELLIS_IO_IN": {"achieved": 50.725372314453125, "constraint": 150}},
      "critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [
        {"type": "clk-to-q", "delay": 0.525, "from": {"cell": "dut.r2_set.q_FF", "port": "Q"},
         "to": {"cell": "dut.r2_set.q_FF", "port": "Q"}},
        {"type": "routing", "delay": 1.144, "net": "dut.r2_set.q[6]",
         "from": {"cell": "dut.r2_set.q_FF", "port": "Q"}, "to": {"cell": "dut.lut", "port": "A"}},
        {"type": "setup", "delay": 0.0, "to": {"cell": "dut.s_live.q_FF", "port": "DI"}}
      ]}]
    }"#;

    fn report(target: Target, profile: Profile, name: &'static str) -> Report {
        let opts = Options {
            design: name,
            target,
            profile,
            freq_mhz: 150.0,
            out_dir: PathBuf::new(),
            seed: 1,
            router: Default::default(),
        };
        Report::new(design(name).unwrap(), &opts)
    }

    #[test]
    fn nextpnr_figures_land_in_the_report() {
        let mut r = report(Target::Ecp5_85F, Profile::Small, "flow-table-16k");
        r.apply_nextpnr(NEXTPNR).unwrap();
        assert_eq!(r.fmax_mhz.map(round2), Some(50.73));
        let bram = r.resource("BRAM").unwrap();
        assert_eq!((bram.used, bram.available), (Some(116), 208));
        assert_eq!(r.resource("LUT").unwrap().used, Some(6271));
        assert_eq!(r.resource("DSP").unwrap().used, Some(0));
        // The table's 116 blocks are its own: 208 / 29 = 7 ways of 4096.
        assert_eq!(r.flow_entries_fit(), 7 * 4096);
        assert_eq!(r.critical_path.len(), 3);
        assert_eq!(r.critical_path[1].at, "net dut.r2_set.q[6]");
        let json = r.to_json();
        assert_eq!(json["clock"]["met"], false);
        // 64-bit stream: 8 beats per minimum frame.
        assert_eq!(json["line_rate"]["stream_beats_per_64b_frame"], 8);
        let md = r.to_markdown();
        assert!(md.contains("achieved 50.7 MHz** (not met)"), "{md}");
        assert!(md.contains("| BRAM | DP16KD | 116 | 208 | 55.8 |"), "{md}");
    }

    /// nextpnr-ecp5 0.11's log around its slack histograms (after placement and after
    /// routing; the last one counts).
    const NEXTPNR_LOG: &str = "\
Info: Slack histogram:
Info:  legend: * represents 1 endpoint(s)
Info:          + represents [1,1) endpoint(s)
Info: [ -9000,  -8000) |*
Info: Routing..
Info: Max frequency for clock '$glbnet$clk$TRELLIS_IO_IN': 42.86 MHz (FAIL at 150.00 MHz)
Info: Slack histogram:
Info:  legend: * represents 7 endpoint(s)
Info:          + represents [1,7) endpoint(s)
Info: [-17083, -14791) |*+
Info: [-14791, -12499) |***
Info: [-12499, -10207) |
Info: [  4100,   6392) |************************************************************
Info: Program finished normally.
";

    #[test]
    fn the_last_slack_histogram_is_read_from_the_log() {
        let bins = parse_slack_histogram(NEXTPNR_LOG);
        assert_eq!(bins.len(), 4, "{bins:?}");
        assert_eq!(
            bins[0],
            SlackBin {
                from_ns: -17.083,
                to_ns: -14.791,
                endpoints: 8,
                endpoints_max: 13,
            }
        );
        assert_eq!(bins[1].endpoints_max, 21);
        assert_eq!(bins[1].endpoints, 21);
        assert_eq!(bins[2].endpoints, 0);
        assert_eq!(bins[3].endpoints, 420);
        assert!(parse_slack_histogram("no histogram here").is_empty());
    }

    #[test]
    fn the_critical_path_is_summed_by_kind_and_by_block() {
        let step = |kind: &str, ns, at: &str| PathStep {
            kind: kind.into(),
            delay_ns: ns,
            at: at.into(),
        };
        // The routed top's path (d548365), shortened.
        let path = [
            step("clk-to-q", 5.83, "dut.fifo.last_ram.mem.0.0.DOB0"),
            step("routing", 5.627, "net dut.fifo.last_ram.mem.0.0_DOB0[1]"),
            step("logic", 0.236, "dut.rewriter.in_done_after_LUT4_Z.F"),
            step("routing", 1.324, "net dut.rewriter.in_done_after"),
            step("logic", 0.239, "dut.act_take_d1.d_L6MUX21_Z.OFX"),
            step("routing", 1.291, "net dut.act_take_d1.d"),
            step("logic", 0.236, "dut.act.addr_ram.read_address_LUT4_Z_6.F"),
            step(
                "routing",
                0.371,
                "net dut.act.inner_v6_ram.read_data_TRELLIS_FF_Q_DI",
            ),
            step(
                "setup",
                0.0,
                "dut.act.inner_v6_ram.read_data_TRELLIS_FF_Q.M",
            ),
            step("logic", 0.2, "si_reg_LUT4_Z.F"),
            // A carry chain at the design's own level: one level, and no block of its own.
            step("logic", 0.45, "dut.w3_age_CCU2C_S0_1$CCU2_COMB0.FCO"),
            step("routing", 0.0, "net dut.w3_age_CCU2C_S0_3_COUT[1]"),
            step("logic", 0.07, "dut.w3_age_CCU2C_S0$CCU2_COMB0.FCO"),
            step("routing", 0.5, "net dut.w3_age[3]"),
            step("logic", 0.44, "$nextpnr_CCU2C_55$CCU2_COMB0.F"),
        ];
        let p = PathSummary::of(&path);
        assert_eq!((p.logic_levels, p.carry_steps), (6, 3));
        assert!((p.routing_ns - 9.113).abs() < 1e-9, "{p:?}");
        assert!((p.clk_to_q_ns - 5.83).abs() < 1e-9);
        let blocks: Vec<(&str, usize)> = p
            .segments
            .iter()
            .map(|s| (s.block.as_str(), s.logic_levels))
            .collect();
        assert_eq!(
            blocks,
            [
                ("fifo", 0),
                ("rewriter", 1),
                ("act_take_d1", 1),
                ("act", 1),
                ("harness", 3)
            ]
        );
        assert!((p.segments[0].ns - 11.457).abs() < 1e-9);
        assert!(p
            .route()
            .starts_with("fifo 11.46 ns (0) → rewriter 1.56 ns (1)"));

        let mut r = report(Target::Ecp5_85F, Profile::Small, "top");
        r.critical_path = path.to_vec();
        r.slack_histogram = parse_slack_histogram(NEXTPNR_LOG);
        let md = r.to_markdown();
        assert!(md.contains("6 logic levels (3 carry-chain steps"), "{md}");
        // 150 MHz is 6.67 ns; a slack of −17.08 ns is a 23.75 ns path.
        assert!(md.contains("| -17.08 | -14.79 | 8–13 | 42.1 MHz |"), "{md}");
        assert!(md.contains("| -14.79 | -12.50 | 21 | "), "{md}");
        let json = r.to_json();
        assert_eq!(json["critical_path_summary"]["logic_levels"], 6);
        assert_eq!(json["critical_path_summary"]["blocks"][0]["block"], "fifo");
        assert_eq!(json["slack_histogram"][1]["endpoints"], 21);
    }

    #[test]
    fn block_ram_outside_the_table_reduces_what_fits() {
        let mut r = report(Target::Ecp5_85F, Profile::Small, "toeplitz");
        r.resources[2].used = Some(29);
        assert_eq!(r.flow_entries_fit(), 6 * 4096);
    }

    #[test]
    fn unreadable_nextpnr_reports_are_errors() {
        let mut r = report(Target::Ecp5_85F, Profile::Small, "flow-table-16k");
        assert!(r.apply_nextpnr("not json").is_err());
        assert!(r.apply_nextpnr(r#"{"utilization": {}}"#).is_err());
    }

    #[test]
    fn line_rate_at_150_mhz_covers_100_gbe_minimum_frames() {
        let mut r = report(Target::Ecp5_85F, Profile::Hundred, "flow-table-16k");
        r.fmax_mhz = Some(150.0);
        let json = r.to_json();
        assert!(json["line_rate"]["pipeline_frames_per_s"].as_f64().unwrap() >= 148.8e6);
        assert_eq!(json["line_rate"]["pipeline_gbps_64b_on_wire"], 100.8);
    }
}
