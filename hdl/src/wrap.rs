//! The Verilog that goes around an emitted design for synthesis: its port list read back
//! from rust-hdl's output, a serial I/O harness for a standalone bitstream, and the
//! shell-integration wrapper the vendor scripts build.

/// A Verilog module header this reader does not understand: rust-hdl's output has a
/// fixed shape, so anything else is a bug upstream, reported with the line.
#[derive(Debug, thiserror::Error)]
#[error("emitted Verilog: {0}")]
pub struct PortListError(pub String);

/// The module rust-hdl gives every top level.
pub const EMITTED_TOP: &str = "top";
/// The serial harness module (ECP5 standalone bitstreams).
pub const HARNESS_TOP: &str = "flowgate_harness";
/// The wrapper module (vendor scripts; what a NIC shell instantiates).
pub const WRAPPER_TOP: &str = "flowgate_wrapper";
/// The clock input rust-hdl designs name `clock`.
pub const CLOCK_PORT: &str = "clock";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

/// One port of the emitted top module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub direction: Direction,
    pub width: u32,
}

/// The ports of module `top` in rust-hdl's Verilog, in declaration order.
///
/// rust-hdl declares every port on its own line right after the module header
/// (`input wire  [415:0] key;`, `output reg  hash;`), so a line scan of the top module
/// suffices; anything else in the header is an error rather than a guess.
pub fn top_ports(verilog: &str) -> Result<Vec<Port>, PortListError> {
    let header = format!("module {EMITTED_TOP}(");
    let start = verilog
        .find(&header)
        .ok_or_else(|| PortListError(format!("no `{header}` in the emitted Verilog")))?;
    let mut ports = Vec::new();
    for line in verilog[start..].lines().skip(1) {
        let line = line.trim();
        if line.starts_with("endmodule") {
            break;
        }
        let Some(decl) = line.strip_suffix(';') else {
            continue;
        };
        let mut words = decl.split_whitespace();
        let direction = match words.next() {
            Some("input") => Direction::Input,
            Some("output") => Direction::Output,
            Some("inout") => {
                return Err(PortListError(format!("inout port: `{line}`")));
            }
            _ => continue,
        };
        let rest: Vec<&str> = words.filter(|w| *w != "wire" && *w != "reg").collect();
        let (width, name) = match rest.as_slice() {
            [name] => (1, *name),
            [range, name] => (range_width(range).ok_or_else(|| bad(line))?, *name),
            _ => return Err(bad(line)),
        };
        ports.push(Port {
            name: name.to_string(),
            direction,
            width,
        });
    }
    if !ports.iter().any(|p| p.name == CLOCK_PORT) {
        return Err(PortListError(format!(
            "module `{EMITTED_TOP}` has no `{CLOCK_PORT}` input"
        )));
    }
    if !ports.iter().any(|p| p.direction == Direction::Output) {
        return Err(PortListError(format!(
            "module `{EMITTED_TOP}` has no outputs"
        )));
    }
    Ok(ports)
}

fn bad(line: &str) -> PortListError {
    PortListError(format!("unexpected port declaration `{line}`"))
}

/// `[hi:lo]` → hi - lo + 1.
fn range_width(range: &str) -> Option<u32> {
    let (hi, lo) = range
        .strip_prefix('[')?
        .strip_suffix(']')?
        .split_once(':')?;
    let (hi, lo): (u32, u32) = (hi.trim().parse().ok()?, lo.trim().parse().ok()?);
    hi.checked_sub(lo)?.checked_add(1)
}

/// A harness with three pins (`clk`, `si`, `so`) around `top`, so a block with hundreds
/// of ports fits a 381-ball package and still keeps every gate: each input comes from a
/// shift register fed by `si`, and every output bit is XORed into a shift register read out
/// on `so`. Inputs and outputs are thus registered, which is how the block sits in a
/// pipeline, so nextpnr's Fmax is the block's own register-to-register figure.
///
/// The inputs reach the design through one more register, `in_q`, a parallel copy of the
/// chain: the chain is a line of flip-flops from the `si` pad, and without the copy each
/// input's logic had to start at a chain flip-flop wherever the chain lay (the parser
/// alone measured one 16 ns route from the chain into its capture's `len_reg`, on a
/// 20.0 ns path). The copy is free to sit by the logic it feeds, as the register of
/// the block before it would be, while the chain → copy hop has a whole period of its own.
pub fn serial_harness(ports: &[Port]) -> String {
    let inputs: Vec<&Port> = data_ports(ports, Direction::Input).collect();
    let outputs: Vec<&Port> = data_ports(ports, Direction::Output).collect();
    let in_bits: u32 = inputs.iter().map(|p| p.width).sum::<u32>().max(1);
    let out_bits: u32 = outputs.iter().map(|p| p.width).sum();
    let mut v = String::new();
    v.push_str(&format!(
        "// Serial I/O harness around `{EMITTED_TOP}` (generated by flowgate synth).\n\
         module {HARNESS_TOP}(input wire clk, input wire si, output wire so);\n\
         \x20   reg [{}:0] in_chain;\n\
         \x20   reg [{}:0] in_q;\n\
         \x20   reg [{}:0] out_chain;\n\
         \x20   wire [{}:0] outs;\n\
         \x20   always @(posedge clk) in_chain <= {};\n\
         \x20   always @(posedge clk) in_q <= in_chain;\n\
         \x20   always @(posedge clk) out_chain <= {} ^ outs;\n\
         \x20   assign so = out_chain[{}];\n\
         \x20   {EMITTED_TOP} dut(\n",
        in_bits - 1,
        in_bits - 1,
        out_bits - 1,
        out_bits - 1,
        shift_in("in_chain", in_bits, "si"),
        shift_in("out_chain", out_bits, "1'b0"),
        out_bits - 1,
    ));
    let mut conns = vec![format!("        .{CLOCK_PORT}(clk)")];
    let mut at = 0;
    for p in &inputs {
        conns.push(format!(
            "        .{}(in_q{})",
            p.name,
            slice(at, p.width)
        ));
        at += p.width;
    }
    at = 0;
    for p in &outputs {
        conns.push(format!("        .{}(outs{})", p.name, slice(at, p.width)));
        at += p.width;
    }
    v.push_str(&conns.join(",\n"));
    v.push_str("\n    );\nendmodule\n");
    v
}

/// `{reg[n-2:0], bit}`, or just `bit` for a one-bit register.
fn shift_in(reg: &str, bits: u32, bit: &str) -> String {
    if bits == 1 {
        bit.to_string()
    } else {
        format!("{{{reg}[{}:0], {bit}}}", bits - 2)
    }
}

fn slice(at: u32, width: u32) -> String {
    format!("[{}:{}]", at + width - 1, at)
}

fn data_ports(ports: &[Port], direction: Direction) -> impl Iterator<Item = &Port> {
    ports
        .iter()
        .filter(move |p| p.direction == direction && p.name != CLOCK_PORT)
}

/// `flowgate_wrapper`: the same ports as `top`, under a name that cannot collide inside a
/// NIC shell (rust-hdl always calls its top `top`). The shell instantiates this module and
/// drives `clock` from its user clock; the balancer's top keeps the AXI4-Stream and
/// AXI4-Lite port names shells use (`s_axis_*`, `m_axis_*`, `s_axil_*`), so the
/// connection is by name.
pub fn wrapper(ports: &[Port]) -> String {
    let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    let mut v = format!(
        "// Shell-integration wrapper around `{EMITTED_TOP}` (generated by flowgate synth).\n\
         module {WRAPPER_TOP}({});\n",
        names.join(", ")
    );
    for p in ports {
        let dir = match p.direction {
            Direction::Input => "input",
            Direction::Output => "output",
        };
        let range = if p.width == 1 {
            String::new()
        } else {
            format!("[{}:0] ", p.width - 1)
        };
        v.push_str(&format!("    {dir} wire {range}{};\n", p.name));
    }
    let conns: Vec<String> = names.iter().map(|n| format!("        .{n}({n})")).collect();
    v.push_str(&format!(
        "    {EMITTED_TOP} core(\n{}\n    );\nendmodule\n",
        conns.join(",\n")
    ));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMITTED: &str = "\n\nmodule top(clock,key,data,ok,hash);\n    \n    // Module arguments\n    input wire  clock;\n    input wire  [415:0] key;\n    input wire  [311:0] data;\n    output reg  ok;\n    output reg  [31:0] hash;\n    \n    // Constant declarations\n    localparam  one = 32'h1;\n    reg  [31:0] sum;\nendmodule // top\n\nmodule top$sub(d, q);\n    input wire [7:0] d;\nendmodule\n";

    #[test]
    fn reads_the_ports_of_the_top_module_only() {
        let ports = top_ports(EMITTED).unwrap();
        let summary: Vec<(&str, Direction, u32)> = ports
            .iter()
            .map(|p| (p.name.as_str(), p.direction, p.width))
            .collect();
        assert_eq!(
            summary,
            [
                ("clock", Direction::Input, 1),
                ("key", Direction::Input, 416),
                ("data", Direction::Input, 312),
                ("ok", Direction::Output, 1),
                ("hash", Direction::Output, 32),
            ]
        );
    }

    #[test]
    fn odd_netlists_are_errors_not_guesses() {
        assert!(top_ports("module other(a); input wire a; endmodule").is_err());
        let no_clock = "module top(a, b);\n input wire a;\n output wire b;\nendmodule\n";
        assert!(top_ports(no_clock)
            .unwrap_err()
            .to_string()
            .contains("clock"));
        let reversed =
            "module top(clock, b);\n input wire clock;\n output wire [0:7] b;\nendmodule\n";
        assert!(top_ports(reversed).is_err());
    }

    #[test]
    fn the_harness_feeds_every_input_bit_and_observes_every_output_bit() {
        let harness = serial_harness(&top_ports(EMITTED).unwrap());
        assert!(harness.contains("reg [727:0] in_chain;"), "{harness}");
        assert!(harness.contains("reg [32:0] out_chain;"), "{harness}");
        assert!(harness.contains("in_q <= in_chain;"), "{harness}");
        assert!(harness.contains(".key(in_q[415:0])"), "{harness}");
        assert!(harness.contains(".data(in_q[727:416])"), "{harness}");
        assert!(harness.contains(".ok(outs[0:0])"), "{harness}");
        assert!(harness.contains(".hash(outs[32:1])"), "{harness}");
        assert!(harness.contains(".clock(clk)"), "{harness}");
    }
}
