//! The clock-by-clock rules both engines follow (see the [module docs](super)): how frames
//! become beats, what is driven each clock, which handshakes happened, and when a run or
//! a register access ends. [`rtl`](super::rtl) runs this code directly; the Verilator
//! harness (`harness.cpp`) is a line-by-line C++ copy, and the engine-equality tests pin
//! the two together (same frames, same clock counts).

use super::{
    Backpressure, HwError, OutFrame, RunConfig, RunReport, AXIL_TIMEOUT_CYCLES, RESP_OKAY,
};
use std::collections::VecDeque;

/// One beat on `s_axis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    /// `data_bytes` bytes, lane 0 first, zero past the frame's end.
    pub data: Vec<u8>,
    /// `tkeep`: bit `j` for lane `j`.
    pub keep: u64,
    pub last: bool,
    pub tuser: u32,
}

/// The beats of `frame` on a `data_bytes`-wide stream (at most 64 lanes).
pub fn beats(frame: &[u8], tick: u32, data_bytes: usize) -> Vec<Beat> {
    debug_assert!((1..=64).contains(&data_bytes));
    if frame.is_empty() {
        return vec![Beat {
            data: vec![0; data_bytes],
            keep: 0,
            last: true,
            tuser: tick,
        }];
    }
    let n = frame.len().div_ceil(data_bytes);
    frame
        .chunks(data_bytes)
        .enumerate()
        .map(|(i, chunk)| {
            let mut data = chunk.to_vec();
            data.resize(data_bytes, 0);
            Beat {
                data,
                keep: lane_mask(chunk.len()),
                last: i + 1 == n,
                tuser: if i == 0 { tick } else { 0 },
            }
        })
        .collect()
}

/// `tkeep` with the low `lanes` bits set.
pub fn lane_mask(lanes: usize) -> u64 {
    if lanes >= 64 {
        u64::MAX
    } else {
        (1u64 << lanes) - 1
    }
}

/// The next value of a xorshift32 generator (a zero state is replaced by a fixed seed,
/// since xorshift never leaves zero). The harness has the same function.
pub fn xorshift32(state: &mut u32) -> u32 {
    if *state == 0 {
        *state = 0x9e37_79b9;
    }
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    x
}

/// Every input port of the top for one clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    pub s_tdata: Vec<u8>,
    pub s_tkeep: u64,
    pub s_tvalid: bool,
    pub s_tlast: bool,
    pub s_tuser: u32,
    pub m_tready: bool,
    pub awaddr: u32,
    pub awvalid: bool,
    pub wdata: u32,
    pub wstrb: u8,
    pub wvalid: bool,
    pub bready: bool,
    pub araddr: u32,
    pub arvalid: bool,
    pub rready: bool,
}

/// Every output port of the top, sampled after the inputs settled, before the edge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    pub s_tready: bool,
    pub m_tdata: Vec<u8>,
    pub m_tkeep: u64,
    pub m_tvalid: bool,
    pub m_tlast: bool,
    pub m_tuser: u8,
    pub awready: bool,
    pub wready: bool,
    pub bresp: u8,
    pub bvalid: bool,
    pub arready: bool,
    pub rdata: u32,
    pub rresp: u8,
    pub rvalid: bool,
}

/// One clock of the design: drive `inputs`, settle, sample, rising edge.
pub trait Step {
    fn step(&mut self, inputs: &Inputs) -> Result<Outputs, HwError>;
}

/// The engine-side state: queued beats, the frame leaving, the clock count.
#[derive(Debug)]
pub struct Driver {
    data_bytes: usize,
    queue: VecDeque<Beat>,
    done: Vec<OutFrame>,
    leaving: Option<OutFrame>,
    cycle: u64,
    idle_beat: Vec<u8>,
}

impl Driver {
    pub fn new(data_bytes: usize) -> Driver {
        Driver {
            data_bytes,
            queue: VecDeque::new(),
            done: Vec::new(),
            leaving: None,
            cycle: 0,
            idle_beat: vec![0; data_bytes],
        }
    }

    pub fn cycle(&self) -> u64 {
        self.cycle
    }

    pub fn send(&mut self, frame: &[u8], tick: u32) {
        self.queue.extend(beats(frame, tick, self.data_bytes));
    }

    /// Inputs with the AXI4-Lite master idle and the head beat (if any) offered.
    fn stream_inputs(&self, m_tready: bool) -> Inputs {
        let mut inputs = Inputs {
            m_tready,
            ..Inputs::default()
        };
        match self.queue.front() {
            Some(beat) => {
                inputs.s_tdata = beat.data.clone();
                inputs.s_tkeep = beat.keep;
                inputs.s_tvalid = true;
                inputs.s_tlast = beat.last;
                inputs.s_tuser = beat.tuser;
            }
            None => inputs.s_tdata = self.idle_beat.clone(),
        }
        inputs
    }

    /// One clock; returns whether `s_axis` and `m_axis` moved a beat.
    fn clock(
        &mut self,
        stepper: &mut impl Step,
        inputs: &Inputs,
    ) -> Result<(Outputs, bool, bool), HwError> {
        let out = stepper.step(inputs)?;
        let s_fire = inputs.s_tvalid && out.s_tready;
        let m_fire = out.m_tvalid && inputs.m_tready;
        if s_fire {
            self.queue.pop_front();
        }
        if m_fire {
            let frame = self.leaving.get_or_insert_with(|| OutFrame {
                data: Vec::new(),
                tuser: out.m_tuser,
            });
            for (lane, &byte) in out.m_tdata.iter().enumerate().take(64) {
                if out.m_tkeep >> lane & 1 == 1 {
                    frame.data.push(byte);
                }
            }
            if out.m_tlast {
                self.done.extend(self.leaving.take());
            }
        }
        self.cycle += 1;
        Ok((out, s_fire, m_fire))
    }

    pub fn axil_write(
        &mut self,
        stepper: &mut impl Step,
        addr: u32,
        data: u32,
    ) -> Result<(), HwError> {
        let (mut aw, mut w) = (true, true);
        for _ in 0..AXIL_TIMEOUT_CYCLES {
            let mut inputs = self.stream_inputs(true);
            inputs.s_tvalid = false;
            inputs.awaddr = addr;
            inputs.awvalid = aw;
            inputs.wdata = data;
            inputs.wstrb = 0xf;
            inputs.wvalid = w;
            inputs.bready = true;
            let (out, _, _) = self.clock(stepper, &inputs)?;
            aw &= !out.awready;
            w &= !out.wready;
            if out.bvalid {
                return match out.bresp {
                    RESP_OKAY => Ok(()),
                    resp => Err(HwError::Response {
                        op: "write",
                        addr,
                        resp,
                    }),
                };
            }
        }
        Err(HwError::AxilTimeout { op: "write", addr })
    }

    pub fn axil_read(&mut self, stepper: &mut impl Step, addr: u32) -> Result<u32, HwError> {
        let mut ar = true;
        for _ in 0..AXIL_TIMEOUT_CYCLES {
            let mut inputs = self.stream_inputs(true);
            inputs.s_tvalid = false;
            inputs.araddr = addr;
            inputs.arvalid = ar;
            inputs.rready = true;
            let (out, _, _) = self.clock(stepper, &inputs)?;
            ar &= !out.arready;
            if out.rvalid {
                return match out.rresp {
                    RESP_OKAY => Ok(out.rdata),
                    resp => Err(HwError::Response {
                        op: "read",
                        addr,
                        resp,
                    }),
                };
            }
        }
        Err(HwError::AxilTimeout { op: "read", addr })
    }

    pub fn run(
        &mut self,
        stepper: &mut impl Step,
        config: &RunConfig,
    ) -> Result<RunReport, HwError> {
        let start = self.cycle;
        let mut rng = config.backpressure.map(|Backpressure { seed, .. }| seed);
        let mut idle: u64 = 0;
        let (mut first_in, mut last_out) = (None, None);
        while !(self.queue.is_empty()
            && self.leaving.is_none()
            && idle >= u64::from(config.idle_cycles))
        {
            if self.cycle - start >= config.max_cycles {
                return Err(HwError::Timeout {
                    cycles: config.max_cycles,
                });
            }
            let m_tready = match (&mut rng, config.backpressure) {
                (Some(state), Some(bp)) => xorshift32(state) % 100 < u32::from(bp.ready_percent),
                _ => true,
            };
            let inputs = self.stream_inputs(m_tready);
            let cycle = self.cycle;
            let (out, s_fire, m_fire) = self.clock(stepper, &inputs)?;
            if s_fire && first_in.is_none() {
                first_in = Some(cycle);
            }
            if m_fire {
                last_out = Some(cycle);
            }
            idle = if s_fire || out.m_tvalid { 0 } else { idle + 1 };
        }
        Ok(RunReport {
            frames: std::mem::take(&mut self.done),
            first_in,
            last_out,
            end_cycle: self.cycle,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_into_beats_with_the_tick_on_the_first() {
        let frame: Vec<u8> = (0..20).collect();
        let b = beats(&frame, 7, 8);
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].keep, b[0].tuser, b[0].last), (0xff, 7, false));
        assert_eq!((b[2].keep, b[2].tuser, b[2].last), (0x0f, 0, true));
        assert_eq!(b[2].data, [16, 17, 18, 19, 0, 0, 0, 0]);
        let empty = beats(&[], 9, 64);
        assert_eq!((empty.len(), empty[0].keep, empty[0].last), (1, 0, true));
        assert_eq!(beats(&[0; 64], 0, 64)[0].keep, u64::MAX);
    }

    #[test]
    fn xorshift_is_the_reference_sequence() {
        // Marsaglia's xorshift32 (13, 17, 5) from 1: the harness must give the same.
        let mut s = 1;
        assert_eq!(
            [xorshift32(&mut s), xorshift32(&mut s), xorshift32(&mut s)],
            [270_369, 67_634_689, 2_647_435_461]
        );
    }
}
