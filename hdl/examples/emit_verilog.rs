//! Prints the Toeplitz hash block's Verilog: `cargo run -p flowgate-hdl --example
//! emit_verilog > toeplitz.v`, e.g. to feed it to a vendor tool by hand.

fn main() {
    print!(
        "{}",
        flowgate_hdl::emit_verilog(flowgate_hdl::Design::FlowToeplitz)
    );
}
