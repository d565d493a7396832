//! Logic depth before placement: the deepest combinational paths of an ECP5 netlist
//! (yosys's `write_json`, flattened), counted in logic levels and named by the register
//! (or RAM, or pin) they start from and the one they end at.
//!
//! Why: nextpnr names a critical path only after routing, which takes hours on the whole
//! top, and its post-placement estimate gives one figure, not the path. A path's levels
//! are known from the netlist alone, in seconds, and on this part a level costs about
//! 1–1.5 ns with its route (0.4 ns of LUT, the rest wire), so a path far deeper than the
//! rest is what sets the clock. Session 21 found the whole top's 16 MHz this way: one
//! block 66 levels deep where every other was at most 19.
//!
//! Levels are counted as [`crate::report::PathSummary`] counts them on a routed path:
//! each LUT4 and each PFUMX / L6MUX21 mux is one level, a carry chain one level where it
//! is entered (its `CIN` ripple adds none, but is counted in `carry_steps`), a
//! distributed-RAM read (`TRELLIS_DPR16X4`, address to data) one level, a multiplier or
//! ALU one level. Flip-flops, block RAMs and pins start and end paths. No tool of the
//! yosys 0.23 + nextpnr 0.11 pair reports this on a mapped ECP5 netlist (yosys's `ltp`
//! walks through the vendor flip-flops, which it takes for logic), hence this module.

use serde_json::Value;
use std::collections::HashMap;

/// One path: the deepest into its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeepPath {
    pub levels: u32,
    /// Carry-chain ripple steps along it (not counted as levels).
    pub carry_steps: u32,
    /// Where it starts: the net a flip-flop, RAM or pin drives (`dut.inner_sum.beat.q[17]`).
    pub from: String,
    /// The register (its output net, without the bit), RAM or pin it ends at.
    pub to: String,
    /// The design's block the endpoint belongs to (`inner_sum`), `harness` outside it.
    pub block: String,
}

/// The `(level, carry)` cost of going from `port` (an input) to the outputs of a cell of
/// type `kind`; `None`: not a combinational arc (a flip-flop's, a RAM's, a write port's).
fn arc(kind: &str, port: &str) -> Option<(u32, u32)> {
    match kind {
        "LUT4" | "PFUMX" | "L6MUX21" | "MULT18X18D" | "ALU54B" => Some((1, 0)),
        "CCU2C" if port == "CIN" => Some((0, 1)),
        "CCU2C" => Some((1, 0)),
        "TRELLIS_DPR16X4" if port.starts_with("RAD") => Some((1, 0)),
        _ => None,
    }
}

fn is_logic(kind: &str) -> bool {
    arc(kind, "A").is_some() || kind == "TRELLIS_DPR16X4"
}

/// The `n` deepest paths to distinct endpoints of the netlist's top module, deepest first,
/// and after them the deepest path of every block not among those (so each block's depth
/// is in the list). An error is a netlist not in yosys's JSON shape.
pub fn deepest(netlist: &Value, n: usize) -> Result<Vec<DeepPath>, String> {
    let modules = netlist
        .get("modules")
        .and_then(Value::as_object)
        .ok_or("the netlist has no \"modules\" object")?;
    let top = modules
        .values()
        .find(|m| {
            m.pointer("/attributes/top")
                .and_then(Value::as_str)
                .is_some_and(|t| t.trim_start_matches('0') == "1")
        })
        .ok_or("the netlist has no top module")?;
    let names = net_names(top);
    let name = |bit: u64| {
        names
            .get(&bit)
            .cloned()
            .unwrap_or_else(|| format!("net {bit}"))
    };

    // Every logic cell's arcs, by the bit they drive: (input bit, level, carry).
    let mut arcs: HashMap<u64, Vec<(u64, u32, u32)>> = HashMap::new();
    // Endpoints: (bit, the endpoint's name).
    let mut ends: Vec<(u64, String)> = Vec::new();
    let cells = top.get("cells").and_then(Value::as_object);
    for (cname, cell) in cells.into_iter().flatten() {
        let kind = cell.get("type").and_then(Value::as_str).unwrap_or("");
        let dirs = cell.get("port_directions").and_then(Value::as_object);
        let conns = cell
            .get("connections")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("cell {cname} has no connections"))?;
        let bits_of = |dir: &'static str| {
            conns
                .iter()
                .filter(move |(p, _)| {
                    dirs.and_then(|d| d.get(*p)).and_then(Value::as_str) == Some(dir)
                })
                .flat_map(|(p, bits)| {
                    bits.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_u64)
                        .map(move |b| (p.as_str(), b))
                })
        };
        if is_logic(kind) {
            let outs: Vec<u64> = bits_of("output").map(|(_, b)| b).collect();
            for (port, b) in bits_of("input") {
                if let Some((level, carry)) = arc(kind, port) {
                    for &o in &outs {
                        arcs.entry(o).or_default().push((b, level, carry));
                    }
                }
            }
        } else {
            // A flip-flop is named by the register it holds (its output net); anything
            // else by its cell.
            let end = match (kind, bits_of("output").next()) {
                ("TRELLIS_FF", Some((_, q))) => strip_bit(&name(q)),
                _ => cname.clone(),
            };
            for (_, b) in bits_of("input") {
                ends.push((b, end.clone()));
            }
        }
    }
    if let Some(ports) = top.get("ports").and_then(Value::as_object) {
        for (pname, p) in ports {
            if p.get("direction").and_then(Value::as_str) == Some("output") {
                for b in p
                    .get("bits")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(b) = b.as_u64() {
                        ends.push((b, pname.clone()));
                    }
                }
            }
        }
    }

    let depth = Depth::walk(&arcs, ends.iter().map(|&(b, _)| b));
    let mut best: HashMap<&str, (u32, u32, u64)> = HashMap::new();
    for (b, end) in &ends {
        let (levels, carry) = depth.at(*b);
        let e = best.entry(end).or_insert((0, 0, *b));
        if (levels, carry) > (e.0, e.1) {
            *e = (levels, carry, *b);
        }
    }
    let mut paths: Vec<DeepPath> = best
        .into_iter()
        .filter(|&(_, (levels, _, _))| levels > 0)
        .map(|(end, (levels, carry_steps, b))| DeepPath {
            levels,
            carry_steps,
            from: name(depth.start(b)),
            to: end.to_string(),
            block: block_of(end).to_string(),
        })
        .collect();
    paths.sort_by(|a, b| (b.levels, b.carry_steps, &a.to).cmp(&(a.levels, a.carry_steps, &b.to)));
    let mut out: Vec<DeepPath> = paths.iter().take(n).cloned().collect();
    for p in &paths[n.min(paths.len())..] {
        if !out.iter().any(|q| q.block == p.block) {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// The paths as a Markdown section (`report.md`, and `levels.md` as soon as yosys is done).
pub fn to_markdown(paths: &[DeepPath]) -> String {
    let mut m = String::from(
        "## Deepest logic by levels (the netlist, before placement)\n\n\
         A LUT4 or mux is a level, a carry chain one where it is entered; about 1–1.5 ns a \
         level with its route on ECP5 speed 6. Each endpoint once, deepest first, then the \
         deepest path of every other block.\n\n\
         | Levels | Carry steps | Block | From | To |\n|---:|---:|---|---|---|\n",
    );
    for p in paths {
        m.push_str(&format!(
            "| {} | {} | {} | `{}` | `{}` |\n",
            p.levels, p.carry_steps, p.block, p.from, p.to
        ));
    }
    m
}

/// Depth of every bit reached from the endpoints: (levels, carry steps) and the input bit
/// of the deepest arc into it.
struct Depth {
    at: HashMap<u64, (u32, u32, Option<u64>)>,
}

impl Depth {
    /// Depth-first from every endpoint, with an explicit stack (paths hundreds of nets
    /// long would overflow a recursive walk); a combinational loop (none in a synchronous
    /// design) is cut where it closes.
    fn walk(arcs: &HashMap<u64, Vec<(u64, u32, u32)>>, ends: impl Iterator<Item = u64>) -> Depth {
        let mut at: HashMap<u64, (u32, u32, Option<u64>)> = HashMap::new();
        let none: &[(u64, u32, u32)] = &[];
        for end in ends {
            if at.contains_key(&end) {
                continue;
            }
            // (bit, its arcs' next index); a bit on the stack is in `at` as (0, 0, None).
            let mut stack: Vec<(u64, usize)> = vec![(end, 0)];
            at.insert(end, (0, 0, None));
            while let Some(&mut (bit, ref mut next)) = stack.last_mut() {
                let ins = arcs.get(&bit).map_or(none, Vec::as_slice);
                if let Some(&(input, _, _)) = ins.get(*next) {
                    *next += 1;
                    if let std::collections::hash_map::Entry::Vacant(e) = at.entry(input) {
                        e.insert((0, 0, None));
                        stack.push((input, 0));
                    }
                    continue;
                }
                let mut d = (0, 0, None);
                for &(input, level, carry) in ins {
                    let (l, c, _) = at[&input];
                    if (l + level, c + carry) > (d.0, d.1) {
                        d = (l + level, c + carry, Some(input));
                    }
                }
                at.insert(bit, d);
                stack.pop();
            }
        }
        Depth { at }
    }

    fn at(&self, bit: u64) -> (u32, u32) {
        self.at.get(&bit).map_or((0, 0), |&(l, c, _)| (l, c))
    }

    /// The bit the deepest path into `bit` starts from.
    fn start(&self, mut bit: u64) -> u64 {
        while let Some(&(_, _, Some(prev))) = self.at.get(&bit) {
            bit = prev;
        }
        bit
    }
}

/// A name for every bit: the netlist's own names first (not yosys's `$`-names), the
/// shortest of them.
fn net_names(module: &Value) -> HashMap<u64, String> {
    let mut names: HashMap<u64, String> = HashMap::new();
    for (net, v) in module
        .get("netnames")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let bits = v.get("bits").and_then(Value::as_array);
        let width = bits.map_or(0, Vec::len);
        for (i, b) in bits.into_iter().flatten().enumerate() {
            let Some(b) = b.as_u64() else { continue };
            let candidate = if width == 1 {
                net.clone()
            } else {
                format!("{net}[{i}]")
            };
            let better = |old: &String| {
                (candidate.starts_with('$'), candidate.len()) < (old.starts_with('$'), old.len())
            };
            if names.get(&b).is_none_or(better) {
                names.insert(b, candidate);
            }
        }
    }
    names
}

fn strip_bit(name: &str) -> String {
    match name.strip_suffix(']').and_then(|n| n.rsplit_once('[')) {
        Some((base, _)) => base.to_string(),
        None => name.to_string(),
    }
}

/// The block below the harness's `dut` an endpoint belongs to (`dut.inner_sum.acc.q` →
/// `inner_sum`, `dut.parser$result` → `parser`); `dut` for the design's own registers
/// whose names carry no block, `harness` outside it.
fn block_of(name: &str) -> &str {
    match name.strip_prefix("dut.") {
        // `dut.parser$result` (a block's port) belongs to `parser` too.
        Some(rest) => match rest.split_once(['.', '$']) {
            Some((block, _)) if !block.contains('[') => block,
            _ => "dut",
        },
        None => "harness",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ff(d: u64, q: u64) -> Value {
        json!({"type": "TRELLIS_FF",
               "port_directions": {"CLK": "input", "DI": "input", "Q": "output"},
               "connections": {"CLK": [1], "DI": [d], "Q": [q]}})
    }
    fn lut(a: u64, b: u64, z: u64) -> Value {
        json!({"type": "LUT4",
               "port_directions": {"A": "input", "B": "input", "Z": "output"},
               "connections": {"A": [a], "B": [b], "Z": [z]}})
    }
    fn ccu(a0: u64, cin: u64, s0: u64, cout: u64) -> Value {
        json!({"type": "CCU2C",
               "port_directions": {"A0": "input", "CIN": "input", "S0": "output", "COUT": "output"},
               "connections": {"A0": [a0], "CIN": [cin], "S0": [s0], "COUT": [cout]}})
    }

    /// Two registers feed a chain: three LUT levels, then a carry chain entered once and
    /// rippled twice, into `dut.deep.acc`; a one-LUT path into `dut.shallow.r`. Each path
    /// is named by its start and end, and the shallow block is listed though beyond `n`.
    #[test]
    fn the_deepest_path_is_counted_and_named_by_its_registers() {
        let netlist = json!({"modules": {"harness": {
            "attributes": {"top": "00000000000000000000000000000001"},
            "ports": {},
            "netnames": {
                "dut.deep.beat.q": {"bits": [10, 11]},
                "dut.deep.acc.q": {"bits": [20]},
                "dut.shallow.r.q": {"bits": [30]},
                "$auto$x": {"bits": [12, 13, 14, 15, 16, 17, 18]},
            },
            "cells": {
                "beat0": ff(2, 10), "beat1": ff(3, 11),
                "l1": lut(10, 11, 12), "l2": lut(12, 11, 13), "l3": lut(13, 10, 14),
                "c1": ccu(14, 4, 15, 16), "c2": ccu(5, 16, 17, 18), "c3": ccu(6, 18, 19, 7),
                "acc": ff(19, 20),
                "s1": lut(11, 10, 21), "short": ff(21, 30),
            }
        }}});
        let paths = deepest(&netlist, 1).unwrap();
        assert_eq!(
            paths,
            vec![
                DeepPath {
                    levels: 4,
                    carry_steps: 2,
                    from: "dut.deep.beat.q[0]".into(),
                    to: "dut.deep.acc.q".into(),
                    block: "deep".into(),
                },
                DeepPath {
                    levels: 1,
                    carry_steps: 0,
                    from: "dut.deep.beat.q[1]".into(),
                    to: "dut.shallow.r.q".into(),
                    block: "shallow".into(),
                },
            ]
        );
    }

    #[test]
    fn a_netlist_without_a_top_module_is_an_error() {
        assert!(deepest(&json!({"modules": {}}), 5).is_err());
        assert!(deepest(&json!({}), 5).is_err());
    }
}
