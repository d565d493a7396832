//! Replaying a pcap trace through a simulated top ([`super::open`]): the driver programs
//! the design through its AXI4-Lite registers ([`HwBus`]), frames stream in on `s_axis`
//! with their tick, and what leaves on `m_axis` is matched back to the input frame it
//! came from, so the output pcap carries the input's timestamps exactly as the software
//! engine's does.
//!
//! # Matching outputs to inputs
//! The design keeps input order and drops frames silently, so output `j` came from the
//! first input at or after the previous match whose bytes it can be the rewrite of:
//! * passed (`tuser` 1): the same bytes;
//! * forwarded by L2 DSR: same length, same bytes from offset 12 (only the MACs change);
//! * forwarded by IP-in-IP or GUE: ends with the input's IP datagram (`core::parse`'s
//!   `l3_offset` and `ip_len`) after an outer header of one of the lengths of
//!   `flowgate_core::rewrite::MODES` (20 or 40; 28 or 48 with UDP).
//!
//! Two inputs with the same bytes get the same verdict under the same tables, and the
//! tables only change between runs, so taking the first candidate is exact. An output that
//! matches no input is a design bug and an error.

use super::{HwBus, HwError, HwSim, OutFrame, RunConfig};
use flowgate_core::counters::Counters;
use flowgate_core::pipeline::tick_of;
use flowgate_core::tables::Tables;
use flowgate_driver::program::{self, ProgramError};
use flowgate_host::pcap_io::Frame;

/// Why a hardware replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Hw(#[from] HwError),
    #[error("programming the design: {0}")]
    Program(#[from] ProgramError),
    #[error(
        "frame {index} is {len} bytes; the design's frame FIFO holds {max} (a frame must fit \
         whole before it is decided)"
    )]
    FrameTooLong {
        index: usize,
        len: usize,
        max: usize,
    },
    #[error(
        "the config's flow table is {config_sets} sets × {config_ways} ways with {config_choices} \
         candidate set(s) per flow; the design's is {sets} × {ways} with up to {choices} (the \
         hardware's sets and ways are fixed when it is built: use a config with the \
         design's geometry, e.g. examples/hw-small.toml)"
    )]
    Geometry {
        config_sets: u32,
        config_ways: u32,
        config_choices: u32,
        sets: u32,
        ways: u32,
        choices: u32,
    },
    #[error("output frame {output} of this run ({len} bytes, tuser {tuser}) is no rewrite of any input frame: the design and the contract disagree")]
    Unmatched {
        output: usize,
        len: usize,
        tuser: u8,
    },
}

/// One frame the design sent out, with the index of the input frame it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    pub input: usize,
    pub frame: OutFrame,
}

/// A programmed design ready to replay frames.
pub struct HwReplay<E: HwSim> {
    bus: HwBus<E>,
    run: RunConfig,
    max_frame: usize,
    cycles: u64,
}

impl<E: HwSim> HwReplay<E> {
    /// Program `tables` into `engine` through its registers and enable balancing.
    /// `max_frame` is the longest frame the design can take (its frame FIFO).
    pub fn new(engine: E, tables: &Tables, max_frame: usize) -> Result<HwReplay<E>, ReplayError> {
        let mut replay = HwReplay {
            bus: HwBus::new(engine),
            run: RunConfig::default(),
            max_frame,
            cycles: 0,
        };
        let device = program::probe(&mut replay.bus);
        replay.check()?;
        let device = device?;
        let g = &tables.geometry;
        if g.sets != device.geometry.sets
            || g.ways != device.geometry.ways
            || !(1..=device.geometry.choices).contains(&g.choices)
        {
            return Err(ReplayError::Geometry {
                config_sets: tables.geometry.sets,
                config_ways: tables.geometry.ways,
                config_choices: tables.geometry.choices,
                sets: device.geometry.sets,
                ways: device.geometry.ways,
                choices: device.geometry.choices,
            });
        }
        replay.program(tables)?;
        program::set_enabled(&mut replay.bus, true);
        replay.check()?;
        Ok(replay)
    }

    fn check(&mut self) -> Result<(), ReplayError> {
        match self.bus.take_error() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Program new tables (a reload, a weight change): staged, committed at a frame
    /// boundary, up bits narrowed across the commit (`flowgate_driver::program`).
    pub fn program(&mut self, tables: &Tables) -> Result<(), ReplayError> {
        let result = program::program(&mut self.bus, tables);
        self.check()?;
        Ok(result?)
    }

    /// Mark a backend up or down at once (`UP_SET` / `UP_CLEAR`).
    pub fn set_backend_up(&mut self, backend: u16, up: bool) -> Result<(), ReplayError> {
        program::set_backend_up(&mut self.bus, backend, up);
        self.check()
    }

    /// The design's counters, read through the COUNTER window.
    pub fn counters(&mut self, vips: u16, backends: u16) -> Result<Counters, ReplayError> {
        let counters = program::read_counters(&mut self.bus, vips, backends);
        self.check()?;
        Ok(counters?)
    }

    /// Random `m_axis_tready` for the runs from now on (`None`: always ready). The
    /// outputs must not change: the design holds what it cannot send.
    pub fn set_backpressure(&mut self, backpressure: Option<super::Backpressure>) {
        self.run.backpressure = backpressure;
    }

    /// The register bus over the design (for reads the replay does not make itself).
    pub fn bus(&mut self) -> &mut HwBus<E> {
        &mut self.bus
    }

    /// Clocks spent streaming frames so far (register accesses excluded).
    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    /// Stream `frames` (`first` is the index of `frames[0]` in the whole trace, for the
    /// results and errors) back to back and collect what leaves, matched to its input.
    pub fn run(&mut self, first: usize, frames: &[Frame]) -> Result<Vec<Emitted>, ReplayError> {
        for (i, f) in frames.iter().enumerate() {
            if f.data.len() > self.max_frame {
                return Err(ReplayError::FrameTooLong {
                    index: first + i,
                    len: f.data.len(),
                    max: self.max_frame,
                });
            }
        }
        let engine = self.bus.engine();
        // A dropped frame leaves the frame FIFO one beat per clock with `m_axis` silent
        // (a 9 KB jumbo frame: over a thousand clocks on 64 bits), so silence on `m_axis`
        // means idle only after as many clocks as the FIFO can hold beats of this run.
        let data_bytes = engine.data_bytes();
        let beats: usize = frames
            .iter()
            .map(|f| f.data.len().div_ceil(data_bytes))
            .sum();
        let fifo_beats = flowgate_hdl::top::MAX_FRAME_BYTES.div_ceil(data_bytes);
        let run = RunConfig {
            idle_cycles: self.run.idle_cycles + beats.min(fifo_beats) as u32,
            ..self.run
        };
        for f in frames {
            engine.send(&f.data, tick_of(f.ts));
        }
        let report = engine.run(&run)?;
        if let Some(span) = report.span() {
            self.cycles += span;
        }
        let mut out = Vec::with_capacity(report.frames.len());
        let mut next = 0;
        for (j, frame) in report.frames.into_iter().enumerate() {
            let Some(k) = (next..frames.len()).find(|&k| is_rewrite_of(&frame, &frames[k].data))
            else {
                return Err(ReplayError::Unmatched {
                    output: j,
                    len: frame.data.len(),
                    tuser: frame.tuser,
                });
            };
            out.push(Emitted {
                input: first + k,
                frame,
            });
            next = k + 1;
        }
        Ok(out)
    }
}

/// `out` can be what the design made of `input` (see the module doc).
fn is_rewrite_of(out: &OutFrame, input: &[u8]) -> bool {
    let o = &out.data;
    if out.tuser == flowgate_hdl::rewrite::TUSER_PASSED {
        return o.as_slice() == input;
    }
    if o.len() == input.len() && o.len() >= 12 && o[12..] == input[12..] {
        return true;
    }
    let Ok(flowgate_core::parse::Parsed::Ip(p)) = flowgate_core::parse::parse(input) else {
        return false;
    };
    let (l3, ip_len) = (usize::from(p.l3_offset), usize::from(p.ip_len));
    let Some(datagram) = input.get(l3..l3 + ip_len) else {
        return false;
    };
    flowgate_core::rewrite::MODES
        .iter()
        .filter(|m| m.encapsulates())
        .flat_map(|m| [m.outer_len_v4, m.outer_len_v6])
        .any(|outer| o.len() == l3 + outer + ip_len && o.ends_with(datagram))
}
