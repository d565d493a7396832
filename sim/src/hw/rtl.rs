//! The rust-hdl engine: the design in rust-hdl's own simulator.
//!
//! rust-hdl 0.46 runs a `Simulation` to completion inside `run()`, with each testbench in
//! a thread of its own. [`RtlSim`] starts that simulation on a thread and makes the
//! testbench a server: it waits for commands on a channel, plays them clock by clock with
//! [`cycle::Driver`], and answers on another channel. Dropping the engine ends the
//! testbench, and with it the simulation.
//!
//! A design is simulated through [`TopPorts`], the top's port list as plain values;
//! [`impl_top_ports!`](crate::impl_top_ports) writes it for any block whose fields are
//! named as the top's ports.

use super::cycle::{Driver, Inputs, Outputs, Step};
use super::{HwError, HwSim, RunConfig, RunReport};
use rust_hdl::prelude::*;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;

/// Simulation time units per clock half-period (the period is twice this).
const HALF_PERIOD: u64 = 5;

/// A rust-hdl block with the flowgate top's ports, seen as plain values.
/// Stack of the simulation thread.
pub const SIM_STACK: usize = 512 << 20;

pub trait TopPorts: Block + Send + 'static {
    /// Bytes per stream beat.
    fn data_bytes(&self) -> usize;
    fn clock_high(&self) -> bool;
    fn toggle_clock(&mut self);
    /// Set every input port.
    fn drive(&mut self, inputs: &Inputs);
    /// Read every output port.
    fn sample(&self) -> Outputs;
}

/// `Bits<N>` from bytes, byte `j` in bits `8j..8j+8` (AXI4-Stream lane order).
pub fn bits_from_bytes<const N: usize>(bytes: &[u8]) -> Bits<N> {
    let mut bits = Bits::<N>::default();
    for (j, &byte) in bytes.iter().enumerate().take(N / 8) {
        if byte != 0 {
            bits.set_bits::<8>(8 * j, u64::from(byte).into());
        }
    }
    bits
}

/// The bytes of a `Bits<N>`, lane 0 first.
pub fn bytes_from_bits<const N: usize>(bits: Bits<N>) -> Vec<u8> {
    (0..N / 8)
        .map(|j| bits.get_bits::<8>(8 * j).to_u8())
        .collect()
}

/// Implements [`TopPorts`] for a block whose fields are the top's ports (`clock`,
/// `s_axis_*`, `m_axis_*`, `s_axil_*`, named as in the hardware plan). Generic
/// parameters go in brackets:
/// `impl_top_ports!([const D: usize, const K: usize] StandInTop<D, K>);`
#[macro_export]
macro_rules! impl_top_ports {
    ([$($generics:tt)*] $ty:ty) => {
        impl<$($generics)*> $crate::hw::rtl::TopPorts for $ty {
            fn data_bytes(&self) -> usize {
                self.s_axis_tdata.val().len() / 8
            }
            fn clock_high(&self) -> bool {
                self.clock.val().clk
            }
            fn toggle_clock(&mut self) {
                self.clock.next = !self.clock.val();
            }
            fn drive(&mut self, i: &$crate::hw::cycle::Inputs) {
                use $crate::hw::rtl::bits_from_bytes;
                self.s_axis_tdata.next = bits_from_bytes(&i.s_tdata);
                self.s_axis_tkeep.next = i.s_tkeep.into();
                self.s_axis_tvalid.next = i.s_tvalid;
                self.s_axis_tlast.next = i.s_tlast;
                self.s_axis_tuser.next = u64::from(i.s_tuser).into();
                self.m_axis_tready.next = i.m_tready;
                self.s_axil_awaddr.next = u64::from(i.awaddr).into();
                self.s_axil_awvalid.next = i.awvalid;
                self.s_axil_wdata.next = u64::from(i.wdata).into();
                self.s_axil_wstrb.next = u64::from(i.wstrb).into();
                self.s_axil_wvalid.next = i.wvalid;
                self.s_axil_bready.next = i.bready;
                self.s_axil_araddr.next = u64::from(i.araddr).into();
                self.s_axil_arvalid.next = i.arvalid;
                self.s_axil_rready.next = i.rready;
            }
            fn sample(&self) -> $crate::hw::cycle::Outputs {
                $crate::hw::cycle::Outputs {
                    s_tready: self.s_axis_tready.val(),
                    m_tdata: $crate::hw::rtl::bytes_from_bits(self.m_axis_tdata.val()),
                    m_tkeep: self.m_axis_tkeep.val().to_u64(),
                    m_tvalid: self.m_axis_tvalid.val(),
                    m_tlast: self.m_axis_tlast.val(),
                    m_tuser: self.m_axis_tuser.val().to_u8(),
                    awready: self.s_axil_awready.val(),
                    wready: self.s_axil_wready.val(),
                    bresp: self.s_axil_bresp.val().to_u8(),
                    bvalid: self.s_axil_bvalid.val(),
                    arready: self.s_axil_arready.val(),
                    rdata: self.s_axil_rdata.val().to_u32(),
                    rresp: self.s_axil_rresp.val().to_u8(),
                    rvalid: self.s_axil_rvalid.val(),
                }
            }
        }
    };
}

impl_top_ports!([const D: usize, const K: usize] flowgate_hdl::stand_in::StandInTop<D, K>);
impl_top_ports!([
    const D: usize, const K: usize, const FB: usize, const FB1: usize, const AB: usize,
    const AB1: usize, const VIPS: usize, const VIP_BITS: usize, const BACKENDS: usize,
    const BACKEND_BITS: usize, const SLOT_BITS: usize, const MAGLEV_BITS: usize,
    const UP_WORDS: usize, const SET_BITS: usize, const ROW_BITS: usize, const WAYS: usize,
    const PAIR_WAYS: usize, const CHUNK: usize, const WIN: usize, const HLAT: usize
] flowgate_hdl::top::Top<
    D, K, FB, FB1, AB, AB1, VIPS, VIP_BITS, BACKENDS, BACKEND_BITS, SLOT_BITS, MAGLEV_BITS,
    UP_WORDS, SET_BITS, ROW_BITS, WAYS, PAIR_WAYS, CHUNK, WIN, HLAT
>);

enum Command {
    Write {
        addr: u32,
        data: u32,
    },
    Read {
        addr: u32,
    },
    Run {
        frames: Vec<(Vec<u8>, u32)>,
        config: RunConfig,
    },
}

enum Reply {
    Write(Result<(), HwError>),
    Read(Result<u32, HwError>),
    Run(Result<RunReport, HwError>),
}

/// The design `T` in rust-hdl's simulator, served over channels (see the module docs).
pub struct RtlSim<T: TopPorts> {
    commands: Option<Sender<Command>>,
    replies: Receiver<(Reply, u64)>,
    thread: Option<JoinHandle<Result<(), SimError>>>,
    queued: Vec<(Vec<u8>, u32)>,
    data_bytes: usize,
    cycle: u64,
    _top: std::marker::PhantomData<fn() -> T>,
}

/// [`Step`] over a rust-hdl testbench endpoint: inputs set while the clock is low, one
/// time unit to settle, sample, then the rising and the falling edge.
struct SimStep<T: TopPorts> {
    sim: Sim<T>,
    x: Option<Box<T>>,
}

impl<T: TopPorts> Step for SimStep<T> {
    fn step(&mut self, inputs: &Inputs) -> Result<Outputs, HwError> {
        let died = |e: SimError| HwError::Died(format!("rust-hdl simulation: {e:?}"));
        let mut x = self
            .x
            .take()
            .ok_or_else(|| HwError::Died("rust-hdl simulation ended earlier".into()))?;
        x.drive(inputs);
        x = self.sim.wait(1, x).map_err(died)?;
        let out = x.sample();
        x = self.sim.watch(|x: &T| x.clock_high(), x).map_err(died)?;
        x = self.sim.watch(|x: &T| !x.clock_high(), x).map_err(died)?;
        self.x = Some(x);
        Ok(out)
    }
}

fn serve<T: TopPorts>(
    sim: Sim<T>,
    commands: Receiver<Command>,
    replies: Sender<(Reply, u64)>,
) -> Result<(), SimError> {
    let mut x = sim.init()?;
    let data_bytes = x.data_bytes();
    x.drive(&Inputs {
        s_tdata: vec![0; data_bytes],
        ..Inputs::default()
    });
    let mut stepper = SimStep { sim, x: Some(x) };
    // Start on a falling edge, where every step begins.
    let mut x = stepper.x.take().expect("just set");
    x = stepper.sim.watch(|x: &T| x.clock_high(), x)?;
    x = stepper.sim.watch(|x: &T| !x.clock_high(), x)?;
    stepper.x = Some(x);
    let mut driver = Driver::new(data_bytes);
    while let Ok(command) = commands.recv() {
        let reply = match command {
            Command::Write { addr, data } => {
                Reply::Write(driver.axil_write(&mut stepper, addr, data))
            }
            Command::Read { addr } => Reply::Read(driver.axil_read(&mut stepper, addr)),
            Command::Run { frames, config } => {
                for (frame, tick) in &frames {
                    driver.send(frame, *tick);
                }
                Reply::Run(driver.run(&mut stepper, &config))
            }
        };
        if replies.send((reply, driver.cycle())).is_err() || stepper.x.is_none() {
            break;
        }
    }
    match stepper.x.take() {
        Some(x) => stepper.sim.done(x),
        None => Ok(()),
    }
}

impl<T: TopPorts> RtlSim<T> {
    /// Start simulating `top` (reset state: every register zero, as rust-hdl starts).
    pub fn new(top: T) -> RtlSim<T> {
        Self::spawn(move || top)
    }

    /// Build the design with `make` inside the simulation thread and simulate it there.
    /// The thread has a large stack ([`SIM_STACK`]): rust-hdl keeps a design's signals
    /// inline, and a whole top on a 512-bit stream is megabytes.
    pub fn spawn<F: FnOnce() -> T + Send + 'static>(make: F) -> RtlSim<T> {
        let (command_tx, command_rx) = channel();
        let (reply_tx, reply_rx) = channel();
        let (width_tx, width_rx) = channel();
        // The testbench closure must be `Fn` and unwind-safe; the channel ends go in once.
        let ends = Mutex::new(Some((command_rx, reply_tx)));
        let thread = std::thread::Builder::new()
            .stack_size(SIM_STACK)
            .spawn(move || {
                let mut top = Box::new(make());
                top.connect_all();
                let _ = width_tx.send(top.data_bytes());
                let mut sim = Simulation::<T>::new();
                sim.add_clock(HALF_PERIOD, |x: &mut Box<T>| x.toggle_clock());
                sim.add_testbench(move |sim: Sim<T>| {
                    let taken = ends.lock().ok().and_then(|mut e| e.take());
                    match taken {
                        Some((commands, replies)) => serve(sim, commands, replies),
                        None => sim.done(sim.init()?),
                    }
                });
                sim.run(top, u64::MAX)
            })
            .expect("spawning the simulation thread");
        // If the thread died building the design, the first command reports it.
        let data_bytes = width_rx.recv().unwrap_or(0);
        RtlSim {
            commands: Some(command_tx),
            replies: reply_rx,
            thread: Some(thread),
            queued: Vec::new(),
            data_bytes,
            cycle: 0,
            _top: std::marker::PhantomData,
        }
    }

    fn call(&mut self, command: Command) -> Result<Reply, HwError> {
        let sent = self
            .commands
            .as_ref()
            .map(|c| c.send(command).is_ok())
            .unwrap_or(false);
        let answer = if sent { self.replies.recv().ok() } else { None };
        match answer {
            Some((reply, cycle)) => {
                self.cycle = cycle;
                Ok(reply)
            }
            None => Err(HwError::Died(self.stop())),
        }
    }

    /// End the simulation thread; returns how it ended, for messages.
    fn stop(&mut self) -> String {
        self.commands = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Ok(()))) | None => "rust-hdl simulation ended".into(),
            Some(Ok(Err(e))) => format!("rust-hdl simulation ended with {e:?}"),
            Some(Err(_)) => "rust-hdl simulation thread panicked".into(),
        }
    }
}

impl<T: TopPorts> Drop for RtlSim<T> {
    fn drop(&mut self) {
        self.stop();
    }
}

fn unexpected() -> HwError {
    HwError::Died("rust-hdl testbench answered a different command".into())
}

impl<T: TopPorts> HwSim for RtlSim<T> {
    fn data_bytes(&self) -> usize {
        self.data_bytes
    }

    fn cycle(&self) -> u64 {
        self.cycle
    }

    fn axil_write(&mut self, addr: u32, data: u32) -> Result<(), HwError> {
        match self.call(Command::Write { addr, data })? {
            Reply::Write(r) => r,
            _ => Err(unexpected()),
        }
    }

    fn axil_read(&mut self, addr: u32) -> Result<u32, HwError> {
        match self.call(Command::Read { addr })? {
            Reply::Read(r) => r,
            _ => Err(unexpected()),
        }
    }

    fn send(&mut self, frame: &[u8], tick: u32) {
        self.queued.push((frame.to_vec(), tick));
    }

    fn run(&mut self, config: &RunConfig) -> Result<RunReport, HwError> {
        let frames = std::mem::take(&mut self.queued);
        match self.call(Command::Run {
            frames,
            config: *config,
        })? {
            Reply::Run(r) => r,
            _ => Err(unexpected()),
        }
    }
}
