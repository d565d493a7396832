//! Registered block-RAM reads on ECP5: a netlist step between yosys and nextpnr that
//! moves the flip-flops right after a DP16KD read port into the DP16KD's own output
//! register (`REGMODE_A/B = "OUTREG"`).
//!
//! Why a netlist step: yosys 0.23 maps every inferred RAM to DP16KD with `REGMODE
//! "NOREG"` (its `brams_map.v` hard-codes it; `memory_libmap` has no read-pipeline
//! option), so a read costs the RAM's 5.5–5.8 ns clock-to-out in the next stage's logic
//! (speed 6), against about 0.9 ns out of the output register. The designs already
//! register a slow read (`decide`'s `m_entry` after the Maglev RAM): a RAM with a
//! flip-flop on every used output bit and nothing else on them is a RAM of read latency 2,
//! and the second register can be the DP16KD's. Folding it here, instead of instantiating
//! DP16KD tiles from a Verilog wrapper, keeps the designs as they are (rust-hdl `RAM` +
//! `DFF`: the simulation, Verilator and `scripts/hw-diff` see the same logic, bit for bit)
//! and applies to every RAM in any design that registers its read, whatever the tiling
//! yosys chose. No tool does this for the yosys 0.23 + nextpnr 0.11 pair, so it is done by
//! hand on the JSON netlist (yosys's `write_json` format, which nextpnr reads).
//!
//! A read port is folded only when it is exactly equivalent:
//! * every used data output (`DOA0..17` / `DOB0..17` with any sink) drives one thing only,
//!   the `DI` of a `TRELLIS_FF`;
//! * each such flip-flop has the port's clock (same net, both non-inverted), no clock
//!   enable (`CEMUX "1"`, or `"CE"` on a constant 1), no set/reset (`LSR` constant 0 or
//!   unconnected) and resets to 0 (`REGSET "RESET"`: the output register's value after
//!   configuration);
//! * the port's output clock enable `OCE` is constant 1 and its reset `RST` constant 0.
//!
//! The read enable (`CE`) may be anything: with `NOREG` the output holds while `CE` is
//! low and the flip-flop resamples the held value, with `OUTREG` the output latch holds
//! and the output register resamples it, the same sequence.

use serde_json::{Map, Value};
use std::collections::HashMap;

/// What [`fold`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// DP16KD read ports now `OUTREG`.
    pub ports: usize,
    /// Flip-flops removed (moved into those ports).
    pub flip_flops: usize,
    /// DP16KD read ports with used outputs that did not qualify (see the module doc).
    pub left: usize,
}

/// A string parameter as yosys writes it: a value that looks like a bit vector gets a
/// trailing space, which is not part of it.
fn param<'a>(cell: &'a Value, name: &str) -> Option<&'a str> {
    cell.get("parameters")?
        .get(name)?
        .as_str()
        .map(str::trim_end)
}

/// The one bit on `port` of `cell`: a net number, or a constant as a string.
fn pin<'a>(cell: &'a Value, port: &str) -> Option<&'a Value> {
    let bits = cell.get("connections")?.get(port)?.as_array()?;
    (bits.len() == 1).then(|| &bits[0])
}

fn is_const(bit: Option<&Value>, c: &str) -> bool {
    bit.and_then(Value::as_str) == Some(c)
}

/// Folds every qualifying DP16KD read port's flip-flops into its output register, in
/// every module of the netlist. An error is a netlist not in yosys's JSON shape.
pub fn fold(netlist: &mut Value) -> Result<Folded, String> {
    let mut total = Folded::default();
    let modules = netlist
        .get_mut("modules")
        .and_then(Value::as_object_mut)
        .ok_or("the netlist has no \"modules\" object")?;
    for (name, module) in modules.iter_mut() {
        let f = fold_module(module).map_err(|e| format!("module {name}: {e}"))?;
        total.ports += f.ports;
        total.flip_flops += f.flip_flops;
        total.left += f.left;
    }
    Ok(total)
}

fn fold_module(module: &mut Value) -> Result<Folded, String> {
    let mut done = Folded::default();
    // Every net's sinks: (cell, port) for a cell input, ("", port) for a module output.
    let mut sinks: HashMap<u64, Vec<(String, String)>> = HashMap::new();
    if let Some(ports) = module.get("ports").and_then(Value::as_object) {
        for (pname, p) in ports {
            if p.get("direction").and_then(Value::as_str) != Some("input") {
                for bit in p
                    .get("bits")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(n) = bit.as_u64() {
                        sinks
                            .entry(n)
                            .or_default()
                            .push((String::new(), pname.clone()));
                    }
                }
            }
        }
    }
    let cells = match module.get_mut("cells").and_then(Value::as_object_mut) {
        Some(cells) => cells,
        None => return Ok(done),
    };
    for (cname, cell) in cells.iter() {
        let dirs = cell.get("port_directions").and_then(Value::as_object);
        let conns = cell
            .get("connections")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("cell {cname} has no connections"))?;
        for (port, bits) in conns {
            let dir = dirs.and_then(|d| d.get(port)).and_then(Value::as_str);
            if dir == Some("output") {
                continue;
            }
            for bit in bits.as_array().into_iter().flatten() {
                if let Some(n) = bit.as_u64() {
                    sinks
                        .entry(n)
                        .or_default()
                        .push((cname.clone(), port.clone()));
                }
            }
        }
    }

    let rams: Vec<String> = cells
        .iter()
        .filter(|(_, c)| c.get("type").and_then(Value::as_str) == Some("DP16KD"))
        .map(|(n, _)| n.clone())
        .collect();
    for ram in rams {
        for side in ["A", "B"] {
            let plan = plan_port(cells, &ram, side, &sinks);
            match plan {
                Plan::Unused => {}
                Plan::Keep => done.left += 1,
                Plan::Fold(moves) => {
                    for (out_port, ff) in &moves {
                        let q = pin(&cells[ff], "Q").cloned().ok_or("Q")?;
                        let cell = cells.get_mut(&ram).ok_or("ram")?;
                        cell["connections"][out_port.as_str()] = Value::Array(vec![q]);
                        cells.remove(ff);
                    }
                    let params = cells
                        .get_mut(&ram)
                        .and_then(|c| c.get_mut("parameters"))
                        .and_then(Value::as_object_mut)
                        .ok_or_else(|| format!("DP16KD {ram} has no parameters"))?;
                    params.insert(format!("REGMODE_{side}"), Value::from("OUTREG"));
                    done.ports += 1;
                    done.flip_flops += moves.len();
                }
            }
        }
    }
    Ok(done)
}

enum Plan {
    /// No used data output on this side.
    Unused,
    /// Used, but not every output qualifies.
    Keep,
    /// (data output port, the flip-flop cell it alone drives).
    Fold(Vec<(String, String)>),
}

fn plan_port(
    cells: &Map<String, Value>,
    ram: &str,
    side: &str,
    sinks: &HashMap<u64, Vec<(String, String)>>,
) -> Plan {
    let cell = &cells[ram];
    let mut moves = Vec::new();
    let mut qualifies = param(cell, &format!("REGMODE_{side}")) == Some("NOREG")
        && param(cell, &format!("CLK{side}MUX")) == Some(&format!("CLK{side}")[..])
        && is_const(pin(cell, &format!("OCE{side}")), "1")
        && is_const(pin(cell, &format!("RST{side}")), "0");
    let clk = pin(cell, &format!("CLK{side}")).and_then(Value::as_u64);
    for i in 0..18 {
        let out = format!("DO{side}{i}");
        let Some(net) = pin(cell, &out).and_then(Value::as_u64) else {
            continue;
        };
        let Some(users) = sinks.get(&net).filter(|u| !u.is_empty()) else {
            continue;
        };
        let ok = match &users[..] {
            [(ff, port)] if port == "DI" => cells.get(ff).is_some_and(|f| {
                f.get("type").and_then(Value::as_str) == Some("TRELLIS_FF")
                    && clk.is_some()
                    && pin(f, "CLK").and_then(Value::as_u64) == clk
                    && param(f, "CLKMUX") == Some("CLK")
                    && (param(f, "CEMUX") == Some("1")
                        || (param(f, "CEMUX") == Some("CE") && is_const(pin(f, "CE"), "1")))
                    && pin(f, "LSR").is_none_or(|b| b.as_str() == Some("0"))
                    && param(f, "REGSET") == Some("RESET")
                    && pin(f, "Q").and_then(Value::as_u64).is_some()
            }),
            _ => false,
        };
        qualifies &= ok;
        if ok {
            moves.push((out, users[0].0.clone()));
        } else {
            moves.push((out, String::new()));
        }
    }
    if moves.is_empty() {
        Plan::Unused
    } else if qualifies {
        Plan::Fold(moves)
    } else {
        Plan::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A DP16KD whose port B reads bits 10, 11 on DOB0, DOB1 (clock net 2), each into a
    /// flip-flop (`ffs`: (name, DI net, Q net, clock net, CEMUX)), and `extra` cells.
    fn netlist(ffs: &[(&str, u64, u64, u64, &str)], extra: Value) -> Value {
        let mut cells = json!({
            "ram": {
                "type": "DP16KD",
                "parameters": {"REGMODE_A": "NOREG", "REGMODE_B": "NOREG",
                               "CLKAMUX": "CLKA", "CLKBMUX": "CLKB"},
                "port_directions": {"CLKB": "input", "OCEB": "input", "RSTB": "input",
                                    "DOB0": "output", "DOB1": "output", "DOB2": "output"},
                "connections": {"CLKB": [2], "OCEB": ["1"], "RSTB": ["0"],
                                "DOB0": [10], "DOB1": [11], "DOB2": [12]}
            }
        });
        for (name, d, q, c, cemux) in ffs {
            cells[*name] = json!({
                "type": "TRELLIS_FF",
                "parameters": {"GSR": "AUTO", "CEMUX": format!("{cemux} "), "CLKMUX": "CLK",
                               "LSRMUX": "LSR", "REGSET": "RESET"},
                "port_directions": {"CLK": "input", "LSR": "input", "DI": "input",
                                    "Q": "output"},
                "connections": {"CLK": [c], "LSR": ["0"], "DI": [d], "Q": [q]}
            });
        }
        for (k, v) in extra.as_object().unwrap() {
            cells[k] = v.clone();
        }
        json!({"modules": {"top": {"ports": {"o": {"direction": "output", "bits": [20, 21]}},
                                   "cells": cells, "netnames": {}}}})
    }

    #[test]
    fn a_read_into_plain_flip_flops_moves_into_the_output_register() {
        let mut n = netlist(&[("f0", 10, 20, 2, "1"), ("f1", 11, 21, 2, "1")], json!({}));
        let done = fold(&mut n).unwrap();
        assert_eq!(
            done,
            Folded {
                ports: 1,
                flip_flops: 2,
                left: 0
            }
        );
        let cells = &n["modules"]["top"]["cells"];
        assert_eq!(cells["ram"]["parameters"]["REGMODE_B"], "OUTREG");
        assert_eq!(cells["ram"]["parameters"]["REGMODE_A"], "NOREG");
        assert_eq!(cells["ram"]["connections"]["DOB0"], json!([20]));
        assert_eq!(cells["ram"]["connections"]["DOB1"], json!([21]));
        // DOB2 drives nothing and stays as it was.
        assert_eq!(cells["ram"]["connections"]["DOB2"], json!([12]));
        assert!(cells.get("f0").is_none() && cells.get("f1").is_none());
    }

    #[test]
    fn a_port_with_one_output_read_by_logic_is_kept_whole() {
        let lut = json!({"lut": {"type": "LUT4", "port_directions": {"A": "input", "Z": "output"},
                                 "connections": {"A": [11], "Z": [30]}}});
        let mut n = netlist(&[("f0", 10, 20, 2, "1"), ("f1", 11, 21, 2, "1")], lut);
        let before = n.clone();
        assert_eq!(
            fold(&mut n).unwrap(),
            Folded {
                ports: 0,
                flip_flops: 0,
                left: 1
            }
        );
        assert_eq!(n, before);
    }

    #[test]
    fn flip_flops_on_another_clock_or_with_an_enable_are_kept() {
        for ffs in [
            [("f0", 10, 20, 2, "1"), ("f1", 11, 21, 3, "1")],
            [("f0", 10, 20, 2, "1"), ("f1", 11, 21, 2, "CE")],
        ] {
            let mut n = netlist(&ffs, json!({}));
            let before = n.clone();
            assert_eq!(fold(&mut n).unwrap().ports, 0);
            assert_eq!(n, before);
        }
    }

    #[test]
    fn a_port_with_its_reset_in_use_is_kept() {
        let mut n = netlist(&[("f0", 10, 20, 2, "1"), ("f1", 11, 21, 2, "1")], json!({}));
        n["modules"]["top"]["cells"]["ram"]["connections"]["RSTB"] = json!([5]);
        assert_eq!(fold(&mut n).unwrap().ports, 0);
    }

    #[test]
    fn a_netlist_without_modules_is_an_error() {
        assert!(fold(&mut json!({})).is_err());
    }
}
