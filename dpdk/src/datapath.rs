//! The forwarding loop: RX burst → contract → rewrite in the mbuf → TX burst, on one lcore
//! or on one worker per EAL lcore.
//!
//! Per frame this runs exactly what `ShardedEngine`'s workers run: `prepare` (parse,
//! classify, hash), then the stateful half on the [`Shard`] (the engine layer's, shared
//! with the software engine) that owns the frame's flow-table set (`set % workers`, at
//! local index `set / workers`). The rewrite is done
//! in the frame's own mbuf ([`flowgate_core::rewrite::rewrite_in_place`] through
//! [`flowgate_core::pipeline::balance_with`]): DSR writes the two MACs, IP-in-IP and GUE
//! write their outer headers into the headroom; only multi-segment mbufs (and an mbuf
//! without `MAX_OUTER_LEN` = 48 bytes of headroom) take the contract's copy-out `rewrite`.
//!
//! **Lcores.** With the main lcore alone (`-l 0`), it does everything. With worker lcores
//! (`-l 0-2`: workers on 1 and 2), the main lcore receives, runs `prepare`, handles pass
//! and drop verdicts, and hands every balanced frame — its `Prepared` in the mbuf's
//! private area — through a single-producer single-consumer `rte_ring` to the worker
//! owning its set; each worker owns the sets `s % workers == w` with its own flow table
//! and counters (summed on read). This software dispatch works for any port, with or
//! without RSS. The RX lcore polls every RX queue of the port in turn (one burst each);
//! a flow's frames arrive on one queue (RSS, or one input per queue), so interleaving the
//! queues keeps each flow's order. Each flow's frames take one path (RX → its owner's ring →
//! that worker's TX burst), so per-flow order is kept; frames of different workers
//! interleave on the TX port. Workers share a TX queue under a lock when the port has
//! fewer queues than senders.
//!
//! **Tables.** Every lcore follows the [`TablesWatch`] between bursts (one atomic load),
//! so control-plane changes (health failover, drain, weights, reloads) take effect within
//! a burst; a frame already in a ring when new tables are published was prepared under the
//! old ones and is balanced under the new ones, as in a pipelined hardware engine.
//!
//! **Time.** The flow table's tick is the TSC in milliseconds, read once per burst (or the
//! PMD's RX timestamp per frame with [`Clock::RxTimestamp`]).

use crate::eal::DpdkError;
use crate::lcore::{worker_lcores, Launched, Ring};
use crate::mbuf::Mbuf;
use crate::port::{Port, RxTimestampField};
use crate::Eal;
use dpdk_sys as sys;
use flowgate_core::counters::Counters;
use flowgate_core::hash::FlowHasher;
use flowgate_core::pipeline::{count_unbalanced, prepare, tick_of, Balance, Prepared};
use flowgate_core::rewrite::{rewrite, MAX_FRAME_LEN};
use flowgate_core::{Tables, Verdict};
use flowgate_host::handoff::{CountersBoard, TablesWatch};
use flowgate_host::idle::{IdleBackoff, IdlePolicy};
use flowgate_host::shard::{fit_counters, SetSplit, Shard};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The stateful half for a balanced frame of `shard`, rewritten in its mbuf `m`.
/// Returns the verdict and, for `Forward`, whether the rewritten frame is in `m` (false: it
/// did not fit, free it). `scratch` and `out` are only used for multi-segment mbufs
/// (gather, copy-out rewrite).
#[inline]
fn balance_mbuf(
    shard: &mut Shard,
    m: &mut Mbuf,
    b: &Balance,
    now: u32,
    tables: &Tables,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> (Verdict, bool) {
    let mut fits = true;
    let verdict = if m.is_contiguous() {
        shard.balance_with(m.pkt_len(), b, now, tables, |mode, params| {
            if !m.rewrite_in_place(b.datagram, mode, params)? {
                // No headroom for the outer header: the copy-out rewrite.
                rewrite(m.data(), b.datagram, mode, params, out)?;
                fits = m.write(out).is_ok();
            }
            Ok(())
        })
    } else {
        let v = shard.balance(m.bytes(scratch), b, now, tables, out);
        if matches!(v, Verdict::Forward { .. }) {
            fits = m.write(out).is_ok();
        }
        v
    };
    (verdict, fits)
}

/// Where the flow table's ticks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Milliseconds of the TSC since the loop started, read once per burst: for live
    /// traffic.
    Tsc,
    /// The RX timestamp the PMD stored, in nanoseconds (net_pcap: the capture time, so a
    /// replay through DPDK ages flows exactly as `flowgate replay` does). Frames without
    /// one fall back to the TSC.
    RxTimestamp(RxTimestampField),
}

#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// Frames per RX burst (DPDK's usual 32).
    pub burst: u16,
    /// Stop after this many frames.
    pub max_frames: Option<u64>,
    /// Stop when no frame arrived for this long (a pcap input has ended).
    pub idle_exit: Option<Duration>,
    pub clock: Clock,
    /// TX attempts before unsent frames are dropped (and counted in `tx_unsent`).
    pub tx_retries: u32,
    /// Slots of each worker's ring (a power of two).
    pub ring_size: u32,
    /// How often the summed counters go to the [`CountersBoard`] given to [`run`].
    pub publish_every: Duration,
    /// How an lcore whose polls come back empty backs off (spin, yield, then sleep).
    pub idle: IdlePolicy,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            burst: 32,
            max_frames: None,
            idle_exit: None,
            clock: Clock::Tsc,
            tx_retries: 64,
            ring_size: 2048,
            publish_every: Duration::from_millis(200),
            idle: IdlePolicy::default(),
        }
    }
}

/// The ports of one run: RX, where forwarded frames go, and optionally where passed
/// frames go (else they are counted and freed). `tx` and `pass` may be `rx` itself.
pub struct Ports<'a> {
    pub rx: &'a Port,
    pub tx: &'a Port,
    pub pass: Option<&'a Port>,
}

/// What happened besides the contract's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoCounters {
    /// Frames taken from the RX port.
    pub received: u64,
    /// Forwarded frames the TX port accepted.
    pub sent: u64,
    /// Passed frames the pass port accepted.
    pub passed_sent: u64,
    /// Frames the TX (or pass) port would not take after all retries: freed.
    pub tx_unsent: u64,
    /// Forwarded frames whose rewrite did not fit their mbuf: freed.
    pub rewrite_no_room: u64,
    /// Time from the first frame received to the last frame handled.
    pub busy: Duration,
}

impl IoCounters {
    /// Millions of frames per second over [`IoCounters::busy`].
    pub fn mpps(&self) -> f64 {
        let s = self.busy.as_secs_f64();
        if s > 0.0 {
            self.received as f64 / s / 1e6
        } else {
            0.0
        }
    }

    fn add(&mut self, o: &IoCounters) {
        self.received += o.received;
        self.sent += o.sent;
        self.passed_sent += o.passed_sent;
        self.tx_unsent += o.tx_unsent;
        self.rewrite_no_room += o.rewrite_no_room;
    }
}

/// One worker lcore's share of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerReport {
    pub lcore: u32,
    /// Frames the worker balanced.
    pub frames: u64,
}

/// The result of [`run`].
#[derive(Debug, Clone)]
pub struct RunReport {
    /// All lcores' counters, summed.
    pub counters: Counters,
    pub io: IoCounters,
    /// The tables in force at the end.
    pub tables: Arc<Tables>,
    /// Table versions the main lcore took after the first.
    pub table_updates: u64,
    /// Flow-table shards: the worker lcores, or 1 when the main lcore did everything.
    pub shards: u32,
    /// Empty when the main lcore did everything.
    pub workers: Vec<WorkerReport>,
}

fn tsc() -> u64 {
    // SAFETY: reads the time-stamp counter.
    unsafe { sys::fg_tsc_cycles() }
}

/// The flow table's clock: TSC milliseconds since the start of the run.
#[derive(Debug, Clone, Copy)]
struct Ticks {
    start: u64,
    per_ms: u64,
    hz: u64,
}

impl Ticks {
    fn new(eal: &Eal) -> Ticks {
        let hz = eal.tsc_hz().max(1000);
        Ticks {
            start: tsc(),
            per_ms: hz / 1000,
            hz,
        }
    }

    fn ms(&self, now: u64) -> u32 {
        (now.wrapping_sub(self.start) / self.per_ms) as u32
    }

    fn cycles(&self, d: Duration) -> u64 {
        (d.as_nanos() * u128::from(self.hz) / 1_000_000_000).min(u64::MAX as u128) as u64
    }

    fn duration(&self, cycles: u64) -> Duration {
        Duration::from_nanos((u128::from(cycles) * 1_000_000_000 / u128::from(self.hz)) as u64)
    }
}

/// The flow-table tick of a frame received at TSC `burst_ms`.
#[inline]
fn tick(clock: Clock, m: &Mbuf, burst_ms: u32) -> u32 {
    match clock {
        Clock::Tsc => burst_ms,
        Clock::RxTimestamp(f) => m
            .rx_timestamp(f.offset, f.flag)
            .map_or(burst_ms, |ns| tick_of(Duration::from_nanos(ns))),
    }
}

/// The RX port's queues, one burst from each in turn. Each queue keeps its frames in
/// order and a flow's frames arrive on one queue (RSS, or one input per queue), so
/// per-flow order survives the interleaving.
struct RxQueues<'a> {
    port: &'a Port,
    count: u16,
    next: u16,
}

impl<'a> RxQueues<'a> {
    fn new(port: &'a Port) -> RxQueues<'a> {
        RxQueues {
            port,
            count: port.rx_queue_count().max(1),
            next: 0,
        }
    }

    #[inline]
    fn burst(&mut self, out: &mut Vec<Mbuf>, max: u16) -> usize {
        let queue = self.next;
        self.next = if queue + 1 == self.count {
            0
        } else {
            queue + 1
        };
        self.port.rx_burst(queue, out, max)
    }
}

/// One TX queue of a port, shared by the lcores that send on it.
struct TxQueue<'a> {
    port: &'a Port,
    queue: u16,
    lock: Mutex<()>,
}

impl TxQueue<'_> {
    /// Send all of `frames`, retrying; returns (sent, unsent); unsent frames are freed.
    fn send(&self, frames: &mut Vec<Mbuf>, retries: u32) -> (u64, u64) {
        if frames.is_empty() {
            return (0, 0);
        }
        let mut sent = 0;
        {
            // A poisoned lock only means another sender panicked; the queue is fine.
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            for _ in 0..=retries {
                if frames.is_empty() {
                    break;
                }
                sent += self.port.tx_burst(self.queue, frames) as u64;
            }
        }
        let unsent = frames.len() as u64;
        frames.clear();
        (sent, unsent)
    }
}

/// The TX queues of the run's ports; sender `i` uses queue `i % queues` of a port.
struct TxQueues<'a> {
    queues: Vec<TxQueue<'a>>,
}

impl<'a> TxQueues<'a> {
    fn new(ports: &Ports<'a>) -> TxQueues<'a> {
        let mut queues: Vec<TxQueue<'a>> = Vec::new();
        for port in std::iter::once(ports.tx).chain(ports.pass) {
            if queues.iter().any(|q| q.port.id() == port.id()) {
                continue;
            }
            for queue in 0..port.tx_queue_count().max(1) {
                queues.push(TxQueue {
                    port,
                    queue,
                    lock: Mutex::new(()),
                });
            }
        }
        TxQueues { queues }
    }

    fn get(&self, port: &Port, sender: usize) -> &TxQueue<'a> {
        let n = port.tx_queue_count().max(1) as usize;
        let queue = (sender % n) as u16;
        self.queues
            .iter()
            .find(|q| q.port.id() == port.id() && q.queue == queue)
            .expect("every port's queues are listed")
    }
}

/// Counters a worker shares with the main lcore while it runs.
struct Slot {
    /// The worker's counters, and the table version it was running when it took them.
    published: Mutex<(Counters, u64)>,
}

impl Slot {
    fn publish(&self, counters: &Counters, version: u64) {
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = (counters.clone(), version);
    }
}

/// Forward until `stop` is set, `max_frames` were read or the input stayed idle for
/// `idle_exit`.
///
/// * `tables`: the control plane's [`TablesWatch`] (a fixed config: `ControlPlane::new`'s
///   watch); every lcore takes new versions between bursts.
/// * `board`: where the summed counters are published every `config.publish_every`
///   (the admin API's), or `None`; each publication carries the oldest table version an
///   lcore was running when it took its share (`BoardSnapshot::tables_version`).
/// * Lcores: call on the EAL's main lcore. Every worker lcore of the EAL (`-l 0-2`: 1 and
///   2) becomes a worker owning a shard of the flow table; with none, the main lcore does
///   everything.
pub fn run(
    eal: &Eal,
    ports: &Ports<'_>,
    tables: &TablesWatch,
    config: &LoopConfig,
    board: Option<&CountersBoard>,
    stop: &AtomicBool,
) -> Result<RunReport, DpdkError> {
    let workers = worker_lcores(eal);
    if workers.is_empty() {
        Ok(run_single(eal, ports, tables, config, board, stop))
    } else {
        run_dispatch(eal, ports, tables, config, board, stop, &workers)
    }
}

/// The main lcore's tables, following the watch.
struct Follow<'w> {
    watch: &'w TablesWatch,
    seen: u64,
    tables: Arc<Tables>,
    updates: u64,
}

impl<'w> Follow<'w> {
    fn new(watch: &'w TablesWatch) -> Follow<'w> {
        let seen = watch.version();
        Follow {
            watch,
            seen,
            tables: watch.load(),
            updates: 0,
        }
    }

    /// New tables, if published since the last call.
    fn poll(&mut self) -> Option<&Arc<Tables>> {
        let new = self.watch.changed(&mut self.seen)?;
        self.tables = new;
        self.updates += 1;
        Some(&self.tables)
    }
}

/// How many frames to ask for: `None` once `max_frames` were received.
fn want(config: &LoopConfig, received: u64, burst: u16) -> Option<u16> {
    match config.max_frames {
        Some(max) if received >= max => None,
        Some(max) => Some((max - received).min(u64::from(burst)) as u16),
        None => Some(burst),
    }
}

fn run_single(
    eal: &Eal,
    ports: &Ports<'_>,
    watch: &TablesWatch,
    config: &LoopConfig,
    board: Option<&CountersBoard>,
    stop: &AtomicBool,
) -> RunReport {
    let mut follow = Follow::new(watch);
    let mut hasher = FlowHasher::new(&follow.tables.keys);
    let mut shard = Shard::new(&follow.tables, 0, 1);
    let txq = TxQueues::new(ports);
    let (tx, pass_tx) = (txq.get(ports.tx, 0), ports.pass.map(|p| txq.get(p, 0)));
    let mut io = IoCounters::default();
    let burst = config.burst.max(1);
    let mut rx: Vec<Mbuf> = Vec::with_capacity(burst as usize);
    let mut forward: Vec<Mbuf> = Vec::with_capacity(burst as usize);
    let mut pass: Vec<Mbuf> = Vec::with_capacity(burst as usize);
    let mut batch: Vec<(Mbuf, Balance)> = Vec::with_capacity(burst as usize);
    let mut out = Vec::with_capacity(MAX_FRAME_LEN);
    let mut scratch = Vec::new();
    let mut rx_queues = RxQueues::new(ports.rx);
    let mut backoff = IdleBackoff::new(config.idle);
    let ticks = Ticks::new(eal);
    let idle = config.idle_exit.map(|d| ticks.cycles(d));
    let publish_every = ticks.cycles(config.publish_every);
    let (mut first_rx, mut last_rx, mut published) = (None, tsc(), tsc());
    if let Some(b) = board {
        b.publish(shard.counters().clone(), follow.seen);
    }

    while !stop.load(Ordering::Relaxed) {
        if let Some(new) = follow.poll() {
            if new.keys != *hasher.keys() {
                hasher = FlowHasher::new(&new.keys);
            }
            shard.update_tables(new);
        }
        let tables = &*follow.tables;
        let Some(want) = want(config, io.received, burst) else {
            break;
        };
        let n = rx_queues.burst(&mut rx, want);
        backoff.polled(n);
        let now = tsc();
        if let Some(b) = board {
            if now.wrapping_sub(published) >= publish_every {
                b.publish(shard.counters().clone(), follow.seen);
                published = now;
            }
        }
        if n == 0 {
            if idle.is_some_and(|i| now.wrapping_sub(last_rx) >= i) {
                break;
            }
            continue;
        }
        first_rx.get_or_insert(now);
        io.received += n as u64;
        let burst_ms = ticks.ms(now);
        // The burst in two passes: prepare every frame (and prefetch what balancing it
        // will read), then balance them in arrival order. Only the stateful half is
        // order-sensitive, and it still sees the frames in the order they came.
        for m in rx.drain(..) {
            let prepared = if m.is_contiguous() {
                prepare(m.data(), tables, &hasher)
            } else {
                prepare(m.bytes(&mut scratch), tables, &hasher)
            };
            match prepared {
                Prepared::Balance(b) => {
                    shard.prefetch(&b, tables);
                    batch.push((m, b));
                }
                Prepared::Pass => {
                    shard.count_unbalanced(Verdict::Pass);
                    if pass_tx.is_some() {
                        pass.push(m);
                    }
                }
                Prepared::Drop(r) => shard.count_unbalanced(Verdict::Drop(r)),
            }
        }
        for (mut m, b) in batch.drain(..) {
            let now = tick(config.clock, &m, burst_ms);
            match balance_mbuf(&mut shard, &mut m, &b, now, tables, &mut scratch, &mut out) {
                (Verdict::Forward { .. }, true) => forward.push(m),
                (Verdict::Forward { .. }, false) => io.rewrite_no_room += 1,
                _ => {}
            }
        }
        let (sent, unsent) = tx.send(&mut forward, config.tx_retries);
        io.sent += sent;
        io.tx_unsent += unsent;
        if let Some(p) = pass_tx {
            let (sent, unsent) = p.send(&mut pass, config.tx_retries);
            io.passed_sent += sent;
            io.tx_unsent += unsent;
        }
        last_rx = tsc();
    }
    io.busy = first_rx.map_or(Duration::ZERO, |f| ticks.duration(last_rx.wrapping_sub(f)));
    let counters = shard.counters().clone();
    if let Some(b) = board {
        b.publish(counters.clone(), follow.seen);
    }
    RunReport {
        counters,
        io,
        tables: follow.tables,
        table_updates: follow.updates,
        shards: 1,
        workers: Vec::new(),
    }
}

/// What a worker lcore needs; shared by reference with it.
struct WorkerCtx<'a> {
    index: u32,
    count: u32,
    ring: &'a Ring,
    /// Set by the main lcore after its last enqueue.
    done: &'a AtomicBool,
    watch: &'a TablesWatch,
    tx: &'a TxQueue<'a>,
    config: &'a LoopConfig,
    ticks: Ticks,
    slot: &'a Slot,
}

/// What a worker did, for the main lcore after it returned.
struct WorkerResult {
    counters: Counters,
    io: IoCounters,
    frames: u64,
    /// TSC when it last handled a frame.
    last: u64,
    /// The table version it last took.
    version: u64,
}

fn worker(ctx: &WorkerCtx<'_>) -> WorkerResult {
    let mut seen = ctx.watch.version();
    let mut tables = ctx.watch.load();
    let mut shard = Shard::new(&tables, ctx.index, ctx.count);
    let burst = ctx.config.burst.max(1) as usize;
    let mut frames: Vec<Mbuf> = Vec::with_capacity(burst);
    let mut forward: Vec<Mbuf> = Vec::with_capacity(burst);
    let mut batch: Vec<(Mbuf, Balance)> = Vec::with_capacity(burst);
    let mut out = Vec::with_capacity(MAX_FRAME_LEN);
    let mut scratch = Vec::new();
    let mut io = IoCounters::default();
    let publish_every = ctx.ticks.cycles(ctx.config.publish_every);
    let (mut published, mut last, mut handled) = (tsc(), 0, 0u64);
    let mut backoff = IdleBackoff::new(ctx.config.idle);
    loop {
        // Before the dequeue, so that every frame dequeued after a publication is balanced
        // under it, and an idle worker still takes new versions (for the board's version).
        if let Some(new) = ctx.watch.changed(&mut seen) {
            shard.update_tables(&new);
            tables = new;
        }
        let n = ctx.ring.dequeue(&mut frames, burst);
        backoff.polled(n);
        let now = tsc();
        if now.wrapping_sub(published) >= publish_every {
            ctx.slot.publish(shard.counters(), seen);
            published = now;
        }
        if n == 0 {
            // Everything enqueued before `done` was set is visible once it reads true.
            if ctx.done.load(Ordering::Acquire) && ctx.ring.is_empty() {
                break;
            }
            continue;
        }
        handled += n as u64;
        let burst_ms = ctx.ticks.ms(now);
        // As in the single-lcore loop: prefetch the whole burst's state, then balance.
        for m in frames.drain(..) {
            // SAFETY: the main lcore stored a Prepared in every mbuf it put in the ring.
            let Prepared::Balance(b) = (unsafe { m.load_prepared() }) else {
                unreachable!("only balanced frames are handed to workers")
            };
            shard.prefetch(&b, &tables);
            batch.push((m, b));
        }
        for (mut m, b) in batch.drain(..) {
            let now = tick(ctx.config.clock, &m, burst_ms);
            match balance_mbuf(&mut shard, &mut m, &b, now, &tables, &mut scratch, &mut out) {
                (Verdict::Forward { .. }, true) => forward.push(m),
                (Verdict::Forward { .. }, false) => io.rewrite_no_room += 1,
                _ => {}
            }
        }
        let (sent, unsent) = ctx.tx.send(&mut forward, ctx.config.tx_retries);
        io.sent += sent;
        io.tx_unsent += unsent;
        last = tsc();
    }
    let counters = shard.counters().clone();
    ctx.slot.publish(&counters, seen);
    WorkerResult {
        counters,
        io,
        frames: handled,
        last,
        version: seen,
    }
}

fn run_dispatch(
    eal: &Eal,
    ports: &Ports<'_>,
    watch: &TablesWatch,
    config: &LoopConfig,
    board: Option<&CountersBoard>,
    stop: &AtomicBool,
    lcores: &[u32],
) -> Result<RunReport, DpdkError> {
    let rx_pool = ports.rx.pool();
    if rx_pool.priv_size() < crate::mbuf::PRIV_SIZE {
        return Err(DpdkError::NoPrivArea(ports.rx.id()));
    }
    let priv_size = rx_pool.priv_size();
    let count = lcores.len() as u32;
    let ring_size = config.ring_size.max(64).next_power_of_two();
    let rings: Vec<Ring> = lcores
        .iter()
        .map(|l| Ring::new(eal, &format!("fg_worker_{l}"), ring_size, true))
        .collect::<Result<_, _>>()?;
    let slots: Vec<Slot> = lcores
        .iter()
        .map(|_| Slot {
            published: Mutex::new((Counters::new(0, 0), watch.version())),
        })
        .collect();
    let txq = TxQueues::new(ports);
    let done = AtomicBool::new(false);
    let ticks = Ticks::new(eal);
    let contexts: Vec<WorkerCtx<'_>> = (0..lcores.len())
        .map(|w| WorkerCtx {
            index: w as u32,
            count,
            ring: &rings[w],
            done: &done,
            watch,
            // Worker w is sender w + 1: the main lcore (sender 0) sends passed frames.
            tx: txq.get(ports.tx, w + 1),
            config,
            ticks,
            slot: &slots[w],
        })
        .collect();
    let mut results: Vec<Option<WorkerResult>> = (0..lcores.len()).map(|_| None).collect();
    let mut jobs: Vec<_> = contexts
        .iter()
        .zip(results.iter_mut())
        .map(|(ctx, result)| move || *result = Some(worker(ctx)))
        .collect();
    let mut launched = Launched::new(eal);
    let follow = Follow::new(watch);
    let mut main = Dispatcher {
        front: Counters::new(follow.tables.vips.len(), follow.tables.backends.len()),
        follow,
        io: IoCounters::default(),
        first_rx: None,
        last_rx: 0,
    };
    let mut launch_error = None;
    for (job, &lcore) in jobs.iter_mut().zip(lcores) {
        if let Err(e) = launched.launch(lcore, job) {
            launch_error = Some(e);
            break;
        }
    }
    if launch_error.is_none() {
        main.run(
            ports, config, board, stop, &rings, &slots, &txq, &ticks, priv_size,
        );
    }
    done.store(true, Ordering::Release);
    let all_ok = launched.wait();
    drop(jobs);
    if let Some(e) = launch_error {
        return Err(e);
    }
    if !all_ok {
        return Err(DpdkError::WorkerPanicked);
    }
    let mut counters = main.front.clone();
    let mut io = main.io;
    let mut last = 0u64;
    let mut version = main.follow.seen;
    let mut reports = Vec::new();
    for (r, &lcore) in results.into_iter().zip(lcores) {
        let r = r.ok_or(DpdkError::WorkerPanicked)?;
        counters.merge(&r.counters);
        io.add(&r.io);
        last = last.max(r.last);
        version = version.min(r.version);
        reports.push(WorkerReport {
            lcore,
            frames: r.frames,
        });
    }
    io.busy = main.first_rx.map_or(Duration::ZERO, |f| {
        ticks.duration(last.max(main.last_rx).saturating_sub(f))
    });
    if let Some(b) = board {
        b.publish(counters.clone(), version);
    }
    Ok(RunReport {
        counters,
        io,
        tables: main.follow.tables,
        table_updates: main.follow.updates,
        shards: count,
        workers: reports,
    })
}

/// The main lcore with workers: RX, `prepare`, pass / drop, dispatch.
struct Dispatcher<'w> {
    follow: Follow<'w>,
    /// Counters of frames `prepare` decided (pass, drop).
    front: Counters,
    io: IoCounters,
    first_rx: Option<u64>,
    last_rx: u64,
}

impl Dispatcher<'_> {
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        ports: &Ports<'_>,
        config: &LoopConfig,
        board: Option<&CountersBoard>,
        stop: &AtomicBool,
        rings: &[Ring],
        slots: &[Slot],
        txq: &TxQueues<'_>,
        ticks: &Ticks,
        priv_size: u16,
    ) {
        let mut hasher = FlowHasher::new(&self.follow.tables.keys);
        let pass_tx = ports.pass.map(|p| txq.get(p, 0));
        let burst = config.burst.max(1);
        let split = SetSplit::new(rings.len() as u32);
        let mut rx: Vec<Mbuf> = Vec::with_capacity(burst as usize);
        let mut to: Vec<Vec<Mbuf>> = rings
            .iter()
            .map(|_| Vec::with_capacity(burst as usize))
            .collect();
        let mut pass: Vec<Mbuf> = Vec::with_capacity(burst as usize);
        let mut scratch = Vec::new();
        let mut rx_queues = RxQueues::new(ports.rx);
        let mut backoff = IdleBackoff::new(config.idle);
        let idle = config.idle_exit.map(|d| ticks.cycles(d));
        let publish_every = ticks.cycles(config.publish_every);
        let (mut last_rx, mut published) = (tsc(), tsc());
        while !stop.load(Ordering::Relaxed) {
            if let Some(new) = self.follow.poll() {
                if new.keys != *hasher.keys() {
                    hasher = FlowHasher::new(&new.keys);
                }
                fit_counters(&mut self.front, new);
            }
            let tables = &*self.follow.tables;
            let Some(want) = want(config, self.io.received, burst) else {
                break;
            };
            let n = rx_queues.burst(&mut rx, want);
            backoff.polled(n);
            let now = tsc();
            if let Some(b) = board {
                if now.wrapping_sub(published) >= publish_every {
                    let mut total = self.front.clone();
                    let mut version = self.follow.seen;
                    for s in slots {
                        let p = s.published.lock().unwrap_or_else(|e| e.into_inner());
                        total.merge(&p.0);
                        version = version.min(p.1);
                    }
                    b.publish(total, version);
                    published = now;
                }
            }
            if n == 0 {
                if idle.is_some_and(|i| now.wrapping_sub(last_rx) >= i) {
                    break;
                }
                continue;
            }
            last_rx = now;
            self.last_rx = now;
            self.first_rx.get_or_insert(now);
            self.io.received += n as u64;
            for mut m in rx.drain(..) {
                let prepared = if m.is_contiguous() {
                    prepare(m.data(), tables, &hasher)
                } else {
                    prepare(m.bytes(&mut scratch), tables, &hasher)
                };
                match prepared {
                    Prepared::Balance(b) => {
                        m.store_prepared(prepared, priv_size);
                        to[split.owner(b.set) as usize].push(m);
                    }
                    Prepared::Pass => {
                        count_unbalanced(Verdict::Pass, &mut self.front);
                        if pass_tx.is_some() {
                            pass.push(m);
                        }
                    }
                    Prepared::Drop(r) => count_unbalanced(Verdict::Drop(r), &mut self.front),
                }
            }
            for (frames, ring) in to.iter_mut().zip(rings) {
                // A full ring waits for its worker (which always drains it): back
                // pressure, never a silent drop.
                while !frames.is_empty() {
                    if ring.enqueue(frames) == 0 {
                        std::hint::spin_loop();
                    }
                }
            }
            if let Some(p) = pass_tx {
                let (sent, unsent) = p.send(&mut pass, config.tx_retries);
                self.io.passed_sent += sent;
                self.io.tx_unsent += unsent;
            }
        }
    }
}
