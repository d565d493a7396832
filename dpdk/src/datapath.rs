//! The forwarding loop: RX burst → contract → rewrite in the mbuf → TX burst, run to
//! completion on every forwarding lcore.
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
//! (`-l 0-2`: workers on 1 and 2) every worker runs to completion: it polls its own RX
//! queues (`q % workers == w`), prepares each frame, balances the frames of the sets it
//! owns and sends them on its own TX queue. The main lcore only supervises (stop, idle
//! exit, counters for the admin API); it sleeps between checks, so it can share a CPU with
//! a worker. The port's RSS redirection table is laid out so that a frame arrives on the
//! queue of the worker that owns its set ([`crate::port::RetaLayout`]); what the NIC
//! cannot steer — a port without RSS (net_pcap, net_ring: one input per queue), a
//! src-IP-persistence VIP whose rte_flow rule the driver refused ([`crate::steer`]), a RETA that
//! cannot express the split — is handed off in software: the receiving worker stores the
//! frame's `Prepared` in the mbuf's private area and passes it through a single-producer
//! single-consumer `rte_ring` to the owner. Hand-offs are counted (`IoCounters`, the JSON's
//! `ports[].rss`). A flow's frames arrive on one queue, so they all take one path (local,
//! or the same ring to the same owner): per-flow order is kept.
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
use flowgate_core::pipeline::{prepare, tick_of, Balance, Prepared};
use flowgate_core::rewrite::{rewrite, MAX_FRAME_LEN};
use flowgate_core::{Tables, Verdict};
use flowgate_host::handoff::{CountersBoard, TablesWatch};
use flowgate_host::idle::{IdleBackoff, IdlePolicy};
use flowgate_host::shard::{Located, SetSplit, Shard};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The stateful half for a balanced frame of `shard`, rewritten in its mbuf `m`.
/// Returns the verdict and, for `Forward`, whether the rewritten frame is in `m` (false: it
/// did not fit, free it). `scratch` and `out` are only used for multi-segment mbufs
/// (gather, copy-out rewrite).
// Always inlined: called once per frame, the call (seven arguments then, the pair returned
// in memory) cost about 25 instructions a frame.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn balance_mbuf(
    shard: &mut Shard,
    m: &mut Mbuf,
    b: &Balance,
    at: Located,
    now: u32,
    tables: &Tables,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> (Verdict, bool) {
    let mut fits = true;
    let verdict = if m.is_contiguous() {
        shard.balance_with(m.pkt_len(), b, at, now, tables, |mode, params| {
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
    /// Balanced frames that arrived on a queue of the lcore owning their flow-table set
    /// (steered by the NIC, or by one input per queue).
    pub steered: u64,
    /// Balanced frames handed off in software to the lcore owning their set.
    pub handed_off: u64,
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
        self.steered += o.steered;
        self.handed_off += o.handed_off;
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

/// An lcore's RX queues of the port, one burst from each in turn. Each queue keeps its
/// frames in order and a flow's frames arrive on one queue (RSS, or one input per queue),
/// so per-flow order survives the interleaving.
struct RxQueues<'a> {
    port: &'a Port,
    queues: Vec<u16>,
    next: usize,
}

impl<'a> RxQueues<'a> {
    /// The queues `q % lcores == index` of `port`.
    fn new(port: &'a Port, index: u32, lcores: u32) -> RxQueues<'a> {
        let queues = (0..port.rx_queue_count().max(1))
            .filter(|&q| u32::from(q) % lcores.max(1) == index)
            .collect();
        RxQueues {
            port,
            queues,
            next: 0,
        }
    }

    #[inline]
    fn burst(&mut self, out: &mut Vec<Mbuf>, max: u16) -> usize {
        let Some(&queue) = self.queues.get(self.next) else {
            return 0;
        };
        self.next = if self.next + 1 == self.queues.len() {
            0
        } else {
            self.next + 1
        };
        self.port.rx_burst(queue, out, max)
    }
}

/// One TX queue of a port; locked only when lcores share it (more senders than queues).
struct TxQueue<'a> {
    port: &'a Port,
    queue: u16,
    lock: Option<Mutex<()>>,
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
            let _guard = self
                .lock
                .as_ref()
                .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()));
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

/// The TX queues of the run's ports; sender `i` of `senders` uses queue `i % queues` of a
/// port.
struct TxQueues<'a> {
    queues: Vec<TxQueue<'a>>,
}

impl<'a> TxQueues<'a> {
    fn new(ports: &Ports<'a>, senders: usize) -> TxQueues<'a> {
        let mut queues: Vec<TxQueue<'a>> = Vec::new();
        for port in std::iter::once(ports.tx).chain(ports.pass) {
            if queues.iter().any(|q| q.port.id() == port.id()) {
                continue;
            }
            let count = port.tx_queue_count().max(1);
            for queue in 0..count {
                queues.push(TxQueue {
                    port,
                    queue,
                    lock: (senders > usize::from(count)).then(|| Mutex::new(())),
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

/// What a worker shares with the main lcore while it runs; a cache-line pair of its own,
/// so that one worker's stores never invalidate another's line.
#[repr(align(128))]
struct Slot {
    /// The worker's counters, and the table version it was running when it took them.
    published: Mutex<(Counters, u64)>,
    /// TSC of the worker's last non-empty poll (a plain store per burst), for the idle
    /// exit.
    active: AtomicU64,
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
///   2) becomes a worker owning a shard of the flow table and polling its own RX queues;
///   with none, the main lcore does everything.
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
        run_workers(eal, ports, tables, config, board, stop, &workers)
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
    let txq = TxQueues::new(ports, 1);
    let (tx, pass_tx) = (txq.get(ports.tx, 0), ports.pass.map(|p| txq.get(p, 0)));
    let mut io = IoCounters::default();
    let burst = config.burst.max(1);
    let mut rx: Vec<Mbuf> = Vec::with_capacity(burst as usize);
    let mut forward: Vec<Mbuf> = Vec::with_capacity(burst as usize);
    let mut pass: Vec<Mbuf> = Vec::with_capacity(burst as usize);
    let mut batch: Vec<(Mbuf, Balance, Located)> = Vec::with_capacity(burst as usize);
    let mut out = Vec::with_capacity(MAX_FRAME_LEN);
    let mut scratch = Vec::new();
    let mut rx_queues = RxQueues::new(ports.rx, 0, 1);
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
            // An empty poll: `backoff` has spun, yielded or slept.
            continue;
        }
        first_rx.get_or_insert(now);
        io.received += n as u64;
        let burst_ms = ticks.ms(now);
        for m in &rx {
            m.prefetch_data();
        }
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
                    let at = shard.locate(&b, tables);
                    batch.push((m, b, at));
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
        // One input (the main lcore owns every set): every balanced frame is steered.
        io.steered += batch.len() as u64;
        for (mut m, b, at) in batch.drain(..) {
            let now = tick(config.clock, &m, burst_ms);
            match balance_mbuf(
                &mut shard,
                &mut m,
                &b,
                at,
                now,
                tables,
                &mut scratch,
                &mut out,
            ) {
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

/// What the lcores of a run with workers share besides their rings.
struct Shared {
    /// Main lcore → workers: stop receiving (stop asked, idle exit).
    rx_stop: AtomicBool,
    /// Workers that stopped receiving and have handed off every frame they received.
    rx_done: AtomicU32,
    /// A worker panicked: the others stop without draining.
    failed: AtomicBool,
    /// Frames still to receive with `max_frames` (taken per burst, the unused part of a
    /// reservation given back).
    budget: Option<AtomicU64>,
    /// Frames of `max_frames` not received yet. The budget can be 0 while another worker
    /// holds a reservation it will partly give back: a worker stops receiving only once
    /// this is 0, else the frames on its queues would never be received.
    unreceived: Option<AtomicU64>,
}

impl Shared {
    /// Reserve up to `burst` frames of the budget: `None` once it is spent.
    fn reserve(&self, burst: u16) -> Option<u16> {
        let Some(budget) = &self.budget else {
            return Some(burst);
        };
        let mut left = budget.load(Ordering::Relaxed);
        loop {
            if left == 0 {
                return None;
            }
            let take = left.min(u64::from(burst));
            match budget.compare_exchange_weak(
                left,
                left - take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(take as u16),
                Err(now) => left = now,
            }
        }
    }

    /// Give back the part of a reservation that was not received (`received` of it were).
    fn unreserve(&self, unused: u16, received: usize) {
        if let (Some(budget), true) = (&self.budget, unused > 0) {
            budget.fetch_add(u64::from(unused), Ordering::Relaxed);
        }
        if let (Some(unreceived), true) = (&self.unreceived, received > 0) {
            unreceived.fetch_sub(received as u64, Ordering::Relaxed);
        }
    }

    /// Every frame of `max_frames` was received.
    fn all_received(&self) -> bool {
        self.unreceived
            .as_ref()
            .is_some_and(|u| u.load(Ordering::Relaxed) == 0)
    }
}

/// Sets `Shared::failed` if the worker unwinds, so the others do not wait for it.
struct PanicFlag<'a>(&'a Shared);

impl Drop for PanicFlag<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.failed.store(true, Ordering::Release);
        }
    }
}

/// What a worker lcore needs; shared by reference with it.
struct WorkerCtx<'a> {
    index: u32,
    count: u32,
    rx: &'a Port,
    /// `to[w]`: the ring to worker `w` (`None` for itself).
    to: Vec<Option<&'a Ring>>,
    /// The rings from the other workers.
    from: Vec<&'a Ring>,
    shared: &'a Shared,
    watch: &'a TablesWatch,
    tx: &'a TxQueue<'a>,
    pass_tx: Option<&'a TxQueue<'a>>,
    config: &'a LoopConfig,
    ticks: Ticks,
    slot: &'a Slot,
    priv_size: u16,
}

/// What a worker did, for the main lcore after it returned.
struct WorkerResult {
    counters: Counters,
    io: IoCounters,
    frames: u64,
    /// TSC when it first received a frame, and when it last handled one.
    first: Option<u64>,
    last: u64,
    /// The table version it last took.
    version: u64,
}

/// One worker lcore's loop state: its shard, hasher, tables and burst buffers.
struct Worker<'a> {
    ctx: &'a WorkerCtx<'a>,
    seen: u64,
    tables: Arc<Tables>,
    hasher: FlowHasher,
    shard: Shard,
    split: SetSplit,
    rx_queues: RxQueues<'a>,
    receiving: bool,
    io: IoCounters,
    burst: u16,
    rx: Vec<Mbuf>,
    batch: Vec<(Mbuf, Balance, Located)>,
    forward: Vec<Mbuf>,
    pass: Vec<Mbuf>,
    /// Frames for each other worker, handed off after the burst.
    hand_off: Vec<Vec<Mbuf>>,
    out: Vec<u8>,
    scratch: Vec<u8>,
    frames: u64,
    first: Option<u64>,
    last: u64,
}

impl<'a> Worker<'a> {
    fn new(ctx: &'a WorkerCtx<'a>) -> Worker<'a> {
        let seen = ctx.watch.version();
        let tables = ctx.watch.load();
        let burst = ctx.config.burst.max(1);
        let cap = burst as usize;
        Worker {
            ctx,
            seen,
            hasher: FlowHasher::new(&tables.keys),
            shard: Shard::new(&tables, ctx.index, ctx.count),
            split: SetSplit::new(ctx.count, &tables.geometry),
            tables,
            rx_queues: RxQueues::new(ctx.rx, ctx.index, ctx.count),
            receiving: true,
            io: IoCounters::default(),
            burst,
            rx: Vec::with_capacity(cap),
            // Own frames and hand-offs from every other worker in one balancing pass.
            batch: Vec::with_capacity(cap * ctx.count as usize),
            forward: Vec::with_capacity(cap * ctx.count as usize),
            pass: Vec::with_capacity(cap),
            hand_off: (0..ctx.count).map(|_| Vec::with_capacity(cap)).collect(),
            out: Vec::with_capacity(MAX_FRAME_LEN),
            scratch: Vec::new(),
            frames: 0,
            first: None,
            last: 0,
        }
    }

    fn follow_tables(&mut self) {
        if let Some(new) = self.ctx.watch.changed(&mut self.seen) {
            if new.keys != *self.hasher.keys() {
                self.hasher = FlowHasher::new(&new.keys);
            }
            self.shard.update_tables(&new);
            self.tables = new;
        }
    }

    /// One RX burst from the next own queue: prepared, the own sets' frames into the batch
    /// (prefetched), the others' into their hand-off lists. Returns the frames received.
    fn receive(&mut self) -> usize {
        let ctx = self.ctx;
        let Some(want) = ctx.shared.reserve(self.burst) else {
            // The budget is spent, or held by another worker for now.
            if ctx.shared.all_received() {
                self.stop_receiving();
            }
            return 0;
        };
        let n = self.rx_queues.burst(&mut self.rx, want);
        ctx.shared.unreserve(want - n as u16, n);
        if n == 0 {
            return 0;
        }
        self.io.received += n as u64;
        for m in &self.rx {
            m.prefetch_data();
        }
        let tables = &*self.tables;
        for mut m in self.rx.drain(..) {
            let prepared = if m.is_contiguous() {
                prepare(m.data(), tables, &self.hasher)
            } else {
                prepare(m.bytes(&mut self.scratch), tables, &self.hasher)
            };
            match prepared {
                Prepared::Balance(b) => {
                    let owner = self.split.owner(b.sets[0]);
                    if owner == ctx.index {
                        let at = self.shard.locate(&b, tables);
                        self.batch.push((m, b, at));
                        self.io.steered += 1;
                    } else {
                        m.store_prepared(prepared, ctx.priv_size);
                        self.hand_off[owner as usize].push(m);
                        self.io.handed_off += 1;
                    }
                }
                Prepared::Pass => {
                    self.shard.count_unbalanced(Verdict::Pass);
                    if ctx.pass_tx.is_some() {
                        self.pass.push(m);
                    }
                }
                Prepared::Drop(r) => self.shard.count_unbalanced(Verdict::Drop(r)),
            }
        }
        n
    }

    /// Frames the other workers handed to this one, into the batch. Returns how many.
    fn take_handed(&mut self) -> usize {
        let ctx = self.ctx;
        let mut taken = 0;
        for ring in &ctx.from {
            let n = ring.dequeue(&mut self.rx, self.burst as usize);
            taken += n;
            for m in self.rx.drain(..) {
                // SAFETY: the sending worker stored a Prepared in every mbuf it handed off.
                let Prepared::Balance(b) = (unsafe { m.load_prepared() }) else {
                    unreachable!("only balanced frames are handed off")
                };
                let at = self.shard.locate(&b, &self.tables);
                self.batch.push((m, b, at));
            }
        }
        taken
    }

    /// Balance the batch in order and send it (and the passed frames) on the own queues.
    fn balance_and_send(&mut self, burst_ms: u32) {
        self.frames += self.batch.len() as u64;
        let clock = self.ctx.config.clock;
        for (mut m, b, at) in self.batch.drain(..) {
            let now = tick(clock, &m, burst_ms);
            let (shard, tables) = (&mut self.shard, &*self.tables);
            match balance_mbuf(
                shard,
                &mut m,
                &b,
                at,
                now,
                tables,
                &mut self.scratch,
                &mut self.out,
            ) {
                (Verdict::Forward { .. }, true) => self.forward.push(m),
                (Verdict::Forward { .. }, false) => self.io.rewrite_no_room += 1,
                _ => {}
            }
        }
        let retries = self.ctx.config.tx_retries;
        let (sent, unsent) = self.ctx.tx.send(&mut self.forward, retries);
        self.io.sent += sent;
        self.io.tx_unsent += unsent;
        if let Some(p) = self.ctx.pass_tx {
            let (sent, unsent) = p.send(&mut self.pass, retries);
            self.io.passed_sent += sent;
            self.io.tx_unsent += unsent;
        }
    }

    /// Put the hand-off lists into the owners' rings. A full ring waits for its owner,
    /// which always drains it (back pressure, never a silent drop); meanwhile this worker
    /// drains its own rings, so two workers handing off to each other cannot deadlock.
    fn hand_off(&mut self, burst_ms: u32) {
        let ctx = self.ctx;
        for (w, ring) in ctx.to.iter().enumerate() {
            let Some(ring) = ring else { continue };
            while !self.hand_off[w].is_empty() {
                if ctx.shared.failed.load(Ordering::Relaxed) {
                    // The owner may be gone: free the frames, the run is failing anyway.
                    self.hand_off[w].clear();
                    break;
                }
                if ring.enqueue(&mut self.hand_off[w]) == 0 {
                    if self.take_handed() > 0 {
                        self.balance_and_send(burst_ms);
                    } else {
                        std::hint::spin_loop();
                    }
                }
            }
        }
    }

    fn stop_receiving(&mut self) {
        if self.receiving {
            self.receiving = false;
            // Every hand-off of this worker is in a ring (`hand_off` runs after each
            // burst), so the owners see them once they see this count.
            self.ctx.shared.rx_done.fetch_add(1, Ordering::Release);
        }
    }

    fn run(mut self) -> WorkerResult {
        let ctx = self.ctx;
        let _flag = PanicFlag(ctx.shared);
        let publish_every = ctx.ticks.cycles(ctx.config.publish_every);
        let mut published = tsc();
        let mut backoff = IdleBackoff::new(ctx.config.idle);
        loop {
            // Before the polls, so that every frame taken after a publication is balanced
            // under it, and an idle worker still takes new versions (for the board).
            self.follow_tables();
            if self.receiving && ctx.shared.rx_stop.load(Ordering::Relaxed) {
                self.stop_receiving();
            }
            let now = tsc();
            if now.wrapping_sub(published) >= publish_every {
                ctx.slot.publish(self.shard.counters(), self.seen);
                published = now;
            }
            let received = if self.receiving { self.receive() } else { 0 };
            let handed = self.take_handed();
            backoff.polled(received + handed);
            if received + handed == 0 {
                if ctx.shared.failed.load(Ordering::Acquire) {
                    break;
                }
                // Done when every worker stopped receiving (all hand-offs are in the rings
                // then) and no ring holds a frame for this one.
                if !self.receiving
                    && ctx.shared.rx_done.load(Ordering::Acquire) == ctx.count
                    && ctx.from.iter().all(|r| r.is_empty())
                {
                    break;
                }
                // An empty poll: `backoff` has spun, yielded or slept.
                continue;
            }
            if received > 0 {
                self.first.get_or_insert(now);
            }
            let burst_ms = ctx.ticks.ms(now);
            self.balance_and_send(burst_ms);
            self.hand_off(burst_ms);
            self.last = tsc();
            ctx.slot.active.store(self.last, Ordering::Relaxed);
        }
        let counters = self.shard.counters().clone();
        ctx.slot.publish(&counters, self.seen);
        WorkerResult {
            counters,
            io: self.io,
            frames: self.frames,
            first: self.first,
            last: self.last,
            version: self.seen,
        }
    }
}

fn run_workers(
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
    let count = lcores.len();
    let ring_size = config.ring_size.max(64).next_power_of_two();
    // rings[from * count + to], none from a worker to itself.
    let mut rings: Vec<Option<Ring>> = Vec::with_capacity(count * count);
    for from in lcores {
        for to in lcores {
            rings.push(if from == to {
                None
            } else {
                Some(Ring::new(
                    eal,
                    &format!("fg_{from}_to_{to}"),
                    ring_size,
                    true,
                )?)
            });
        }
    }
    let ticks = Ticks::new(eal);
    let start = tsc();
    let slots: Vec<Slot> = lcores
        .iter()
        .map(|_| Slot {
            published: Mutex::new((Counters::new(0, 0), watch.version())),
            active: AtomicU64::new(start),
        })
        .collect();
    let shared = Shared {
        rx_stop: AtomicBool::new(false),
        rx_done: AtomicU32::new(0),
        failed: AtomicBool::new(false),
        budget: config.max_frames.map(AtomicU64::new),
        unreceived: config.max_frames.map(AtomicU64::new),
    };
    let txq = TxQueues::new(ports, count);
    let contexts: Vec<WorkerCtx<'_>> = (0..count)
        .map(|w| WorkerCtx {
            index: w as u32,
            count: count as u32,
            rx: ports.rx,
            to: (0..count)
                .map(|to| rings[w * count + to].as_ref())
                .collect(),
            from: (0..count)
                .filter_map(|from| rings[from * count + w].as_ref())
                .collect(),
            shared: &shared,
            watch,
            tx: txq.get(ports.tx, w),
            pass_tx: ports.pass.map(|p| txq.get(p, w)),
            config,
            ticks,
            slot: &slots[w],
            priv_size,
        })
        .collect();
    let mut results: Vec<Option<WorkerResult>> = (0..count).map(|_| None).collect();
    let mut jobs: Vec<_> = contexts
        .iter()
        .zip(results.iter_mut())
        .map(|(ctx, result)| move || *result = Some(Worker::new(ctx).run()))
        .collect();
    let mut launched = Launched::new(eal);
    let mut follow = Follow::new(watch);
    let mut launch_error = None;
    for (job, &lcore) in jobs.iter_mut().zip(lcores) {
        if let Err(e) = launched.launch(lcore, job) {
            launch_error = Some(e);
            break;
        }
    }
    if launch_error.is_none() {
        supervise(&mut follow, config, board, stop, &shared, &slots, &ticks);
    }
    // Launched workers stop receiving and drain; with a launch error the others must not
    // wait for the missing one.
    shared.rx_stop.store(true, Ordering::Relaxed);
    if launch_error.is_some() {
        shared.failed.store(true, Ordering::Release);
    }
    let all_ok = launched.wait();
    drop(jobs);
    if let Some(e) = launch_error {
        return Err(e);
    }
    if !all_ok {
        return Err(DpdkError::WorkerPanicked);
    }
    let tables = follow.tables;
    let mut counters = Counters::new(tables.vips.len(), tables.backends.len());
    let mut io = IoCounters::default();
    let (mut first, mut last) = (None::<u64>, 0u64);
    let mut version = follow.seen;
    let mut reports = Vec::new();
    for (r, &lcore) in results.into_iter().zip(lcores) {
        let r = r.ok_or(DpdkError::WorkerPanicked)?;
        counters.merge(&r.counters);
        io.add(&r.io);
        first = match (first, r.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last = last.max(r.last);
        version = version.min(r.version);
        reports.push(WorkerReport {
            lcore,
            frames: r.frames,
        });
    }
    io.busy = first.map_or(Duration::ZERO, |f| ticks.duration(last.saturating_sub(f)));
    if let Some(b) = board {
        b.publish(counters.clone(), version);
    }
    Ok(RunReport {
        counters,
        io,
        tables,
        table_updates: follow.updates,
        shards: count as u32,
        workers: reports,
    })
}

/// The main lcore while the workers forward: tells them to stop receiving when `stop` is
/// set or the input stayed idle for `idle_exit`, and publishes their summed counters.
/// Returns once every worker has stopped receiving (or one failed). It sleeps between
/// checks (a millisecond: far below any idle exit or publication period), so it costs a
/// CPU it shares with a worker next to nothing.
fn supervise(
    follow: &mut Follow<'_>,
    config: &LoopConfig,
    board: Option<&CountersBoard>,
    stop: &AtomicBool,
    shared: &Shared,
    slots: &[Slot],
    ticks: &Ticks,
) {
    let idle = config.idle_exit.map(|d| ticks.cycles(d));
    let publish_every = ticks.cycles(config.publish_every);
    let mut published = tsc();
    let workers = slots.len() as u32;
    while shared.rx_done.load(Ordering::Acquire) < workers && !shared.failed.load(Ordering::Acquire)
    {
        follow.poll();
        let now = tsc();
        if stop.load(Ordering::Relaxed) {
            shared.rx_stop.store(true, Ordering::Relaxed);
        }
        if let Some(i) = idle {
            let active = slots
                .iter()
                .map(|s| s.active.load(Ordering::Relaxed))
                .max()
                .unwrap_or(now);
            if now.wrapping_sub(active) >= i && now > active {
                shared.rx_stop.store(true, Ordering::Relaxed);
            }
        }
        if let Some(b) = board {
            if now.wrapping_sub(published) >= publish_every {
                let tables = &follow.tables;
                let mut total = Counters::new(tables.vips.len(), tables.backends.len());
                let mut version = follow.seen;
                for s in slots {
                    let p = s.published.lock().unwrap_or_else(|e| e.into_inner());
                    total.merge(&p.0);
                    version = version.min(p.1);
                }
                b.publish(total, version);
                published = now;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(max_frames: u64) -> Shared {
        Shared {
            rx_stop: AtomicBool::new(false),
            rx_done: AtomicU32::new(0),
            failed: AtomicBool::new(false),
            budget: Some(AtomicU64::new(max_frames)),
            unreceived: Some(AtomicU64::new(max_frames)),
        }
    }

    /// The bug the flood test found: worker 1 found the budget spent while worker 0 held
    /// a reservation it was about to give back in part, and stopped receiving for good,
    /// leaving frames on its queue. The budget being spent is not every frame received.
    #[test]
    fn max_frames_budget_held_by_another_worker_does_not_stop_receiving() {
        let s = shared(40);
        // Worker 0 reserves a burst; its queue holds 8 frames.
        assert_eq!(s.reserve(32), Some(32));
        // Worker 1 takes the rest, receives all 8, and finds the budget spent.
        assert_eq!(s.reserve(32), Some(8));
        s.unreserve(0, 8);
        assert_eq!(s.reserve(32), None);
        assert!(!s.all_received(), "24 frames are still to be received");
        // Worker 0 received 8 of its 32 and gives 24 back: worker 1 can receive them.
        s.unreserve(24, 8);
        assert_eq!(s.reserve(32), Some(24));
        s.unreserve(0, 24);
        assert_eq!(s.reserve(32), None);
        assert!(s.all_received());
    }

    #[test]
    fn without_max_frames_nothing_is_ever_all_received() {
        let s = Shared {
            budget: None,
            unreceived: None,
            ..shared(0)
        };
        assert_eq!(s.reserve(32), Some(32));
        s.unreserve(0, 32);
        assert!(!s.all_received());
    }
}
