//! Ethernet ports: configuration (queues, RSS with the contract's Toeplitz key, RX
//! timestamps), start/stop, bursts and statistics.

use crate::datapath::Ports;
use crate::eal::{error_text, DpdkError, Eal};
use crate::mbuf::Mbuf;
use crate::mempool::Mempool;
use crate::steer::{self, VipRule, VipSteering};
use dpdk_sys as sys;
use flowgate_core::flow_table::Geometry;
use flowgate_core::hash::KEY_LEN;
use flowgate_core::Tables;
use flowgate_host::shard::SetSplit;
use std::net::IpAddr;
use std::sync::Arc;

/// Bytes of the RSS key most NICs take (Toeplitz over the IPv6 5-tuple needs 40); some
/// (i40e, ice) take 52. Any length from 40 to the contract's 52 gives the contract's hash
/// for every input the NIC hashes (at most 36 bytes), so the key's first
/// `hash_key_size` bytes are programmed.
pub const RSS_KEY_LEN: usize = 40;

#[derive(Debug, Clone)]
pub struct PortConfig {
    /// RX queues wanted; a port gets at most what its PMD offers (net_pcap: one per
    /// `rx_pcap=` file).
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    /// Program this Toeplitz key (the contract's `HashKeys::rss`) for RSS when the PMD
    /// supports it, so the NIC's queue choice agrees with the contract's flow hash.
    pub rss_key: Option<[u8; KEY_LEN]>,
    /// Ask the PMD for RX timestamps (net_pcap gives the capture time).
    pub rx_timestamp: bool,
    /// Lay the RSS redirection table out for these worker lcores (see [`RetaLayout`]);
    /// `None`: the PMD's default (queues in turn).
    pub reta: Option<RetaLayout>,
    /// The src-IP-persistence VIPs (index, name, address) to steer with one rte_flow rule
    /// each ([`crate::steer`]) when the port has several RX queues, an RSS key and a
    /// `reta` layout; a refused rule leaves the VIP to the software hand-off.
    pub src_ip_vips: Vec<(u16, String, IpAddr)>,
}

/// How the data path's workers share the flow table: worker `w` owns the sets whose
/// shared low bits name one of its classes (the engine layer's [`SetSplit`]) and polls the
/// RX queues `q % workers == w`. The redirection table is programmed so that a frame whose
/// RSS hash is `h` goes to queue `owner(set(h))`, i.e. to the worker that balances it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetaLayout {
    /// Flow-table sets (a power of two; `set(h) = h & (sets - 1)`).
    pub sets: u32,
    /// Worker lcores.
    pub workers: u32,
}

impl RetaLayout {
    fn split(&self) -> (SetSplit, Geometry) {
        let geometry = Geometry {
            sets: self.sets.max(1),
            ..Geometry::DEFAULT
        };
        (SetSplit::new(self.workers, &geometry), geometry)
    }

    /// The queue for RETA entry `i` of a port with `queues` RX queues. NICs index the
    /// RETA with the hash's low bits (`h % reta_size`), so entry `i` stands for every hash
    /// with those low bits.
    pub fn queue(&self, i: u32, queues: u16) -> u16 {
        let owner = self.split().0.owner(i & (self.sets.max(1) - 1));
        (owner % u32::from(queues.max(1))) as u16
    }

    /// Whether a RETA of `reta_size` entries steers every hash to its owner's queue: the
    /// owner must depend only on the hash bits the RETA sees. The owner reads only the
    /// set bits a flow's candidate sets share (the low 6 at most), as class `c % workers`,
    /// so any RETA of 64 entries or more is exact for any number of workers, and a smaller
    /// one when the workers divide it (`c % workers` is then fixed by `c % reta`); any
    /// other may not be (then some frames arrive on another worker's queue and take the
    /// software hand-off).
    pub fn exact(&self, reta_size: u16, queues: u16) -> bool {
        let reta = u32::from(reta_size);
        let (split, geometry) = self.split();
        reta.is_power_of_two()
            && u32::from(queues) >= self.workers
            && (reta >= 1 << geometry.shared_bits() || reta % split.count() == 0)
    }
}

/// The redirection table a port was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reta {
    pub size: u16,
    /// See [`RetaLayout::exact`].
    pub exact: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            rss_key: None,
            rx_timestamp: false,
            reta: None,
            src_ip_vips: Vec::new(),
        }
    }
}

/// How frames are spread over RX queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RssMode {
    /// One RX queue: nothing to spread.
    SingleQueue,
    /// The NIC hashes with the contract's key (`rss_hf` = the hash types enabled).
    Hardware { rss_hf: u64 },
    /// The PMD has no RSS (net_pcap, net_null, ...): spreading is software's job.
    Software,
}

/// Where the PMD puts RX timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxTimestampField {
    pub offset: i32,
    pub flag: u64,
}

impl RxTimestampField {
    /// DPDK's RX timestamp field and flag, registered (once per process; later calls get
    /// the same): for a program that stamps the frames it feeds in itself
    /// ([`Mbuf::set_rx_timestamp`]) on a port whose PMD has no timestamps (net_ring).
    pub fn register(_eal: &Eal) -> Result<RxTimestampField, DpdkError> {
        let (mut offset, mut flag) = (-1, 0u64);
        // SAFETY: the EAL is up; both outputs live across the call.
        let rc = unsafe { sys::rte_mbuf_dyn_rx_timestamp_register(&mut offset, &mut flag) };
        if rc < 0 || offset < 0 {
            // SAFETY: plain read of the per-lcore errno.
            return Err(DpdkError::RxTimestamp(error_text(unsafe {
                sys::fg_errno()
            })));
        }
        Ok(RxTimestampField { offset, flag })
    }
}

/// Packet and byte counts of a port (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Dropped by the NIC because no RX descriptor was free.
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_no_mbuf: u64,
}

/// A configured, started port; stopped and closed on drop (which is when net_pcap
/// flushes and closes its output file).
#[derive(Debug)]
pub struct Port {
    id: u16,
    rss: RssMode,
    reta: Option<Reta>,
    vip_rules: Vec<VipRule>,
    timestamp: Option<RxTimestampField>,
    mac: [u8; 6],
    rx_queues: u16,
    tx_queues: u16,
    pool: Arc<Mempool>,
}

fn check(port: u16, op: &'static str, rc: i32) -> Result<(), DpdkError> {
    if rc < 0 {
        Err(DpdkError::Port {
            port,
            op,
            reason: error_text(rc),
        })
    } else {
        Ok(())
    }
}

impl Port {
    /// Configure port `id` with `config`'s queues (RX buffers from `pool`) and start it.
    pub fn configure(
        eal: &Eal,
        id: u16,
        config: &PortConfig,
        pool: &Arc<Mempool>,
    ) -> Result<Port, DpdkError> {
        // SAFETY (whole function): the EAL is up, `id` is checked to be a valid port, and
        // every struct passed by pointer lives across the call that reads it.
        if unsafe { sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(DpdkError::NoSuchPort(id, eal.port_count()));
        }
        let mut info = sys::rte_eth_dev_info::default();
        check(id, "rte_eth_dev_info_get", unsafe {
            sys::rte_eth_dev_info_get(id, &mut info)
        })?;
        let mut conf = sys::rte_eth_conf::default();
        let rx_queues = config.rx_queues.clamp(1, info.max_rx_queues.max(1));
        // The key must outlive rte_eth_dev_configure, which copies it.
        let mut key = config.rss_key.unwrap_or([0; KEY_LEN]);
        let key_len = info.hash_key_size as usize;
        // The PMD's key length is one the contract's key can fill (hash_key_size 0: the PMD
        // does not say; the rte_flow rules then use the contract's 40 bytes).
        let key_fits = (RSS_KEY_LEN..=KEY_LEN).contains(&key_len);
        let wanted_hf =
            unsafe { sys::fg_eth_rss_ip() | sys::fg_eth_rss_tcp() | sys::fg_eth_rss_udp() };
        let rss_hf = wanted_hf & info.flow_type_rss_offloads;
        let rss = if rx_queues <= 1 {
            RssMode::SingleQueue
        } else if rss_hf != 0 && config.rss_key.is_some() && key_fits {
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
            conf.rx_adv_conf.rss_conf.rss_key_len = key_len as u8;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            RssMode::Hardware { rss_hf }
        } else {
            RssMode::Software
        };
        let ts_offload = unsafe { sys::fg_eth_rx_offload_timestamp() };
        let timestamp = if config.rx_timestamp && info.rx_offload_capa & ts_offload != 0 {
            conf.rxmode.offloads |= ts_offload;
            let (mut offset, mut flag) = (-1, 0u64);
            check(id, "rte_mbuf_dyn_rx_timestamp_register", unsafe {
                sys::rte_mbuf_dyn_rx_timestamp_register(&mut offset, &mut flag)
            })?;
            Some(RxTimestampField { offset, flag })
        } else {
            None
        };
        // One TX queue per sending lcore where the PMD has them (net_pcap has one per
        // tx_pcap file); lcores share the rest (see datapath's TxQueue).
        let tx_queues = config.tx_queues.clamp(1, info.max_tx_queues.max(1));
        check(id, "rte_eth_dev_configure", unsafe {
            sys::rte_eth_dev_configure(id, rx_queues, tx_queues, &conf)
        })?;
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) }.max(0) as u32;
        for q in 0..rx_queues {
            check(id, "rte_eth_rx_queue_setup", unsafe {
                sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    config.rx_descriptors,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            })?;
        }
        for q in 0..tx_queues {
            check(id, "rte_eth_tx_queue_setup", unsafe {
                sys::rte_eth_tx_queue_setup(id, q, config.tx_descriptors, socket, std::ptr::null())
            })?;
        }
        check(id, "rte_eth_dev_start", unsafe {
            sys::rte_eth_dev_start(id)
        })?;
        let reta = match (rss, config.reta) {
            (RssMode::Hardware { .. }, Some(layout)) if info.reta_size > 0 => {
                Some(program_reta(id, info.reta_size, layout, rx_queues)?)
            }
            _ => None,
        };
        let vip_rules = match (config.rss_key, config.reta) {
            (Some(key), Some(layout)) if rx_queues > 1 && !config.src_ip_vips.is_empty() => {
                let key_len = if key_fits { key_len } else { RSS_KEY_LEN };
                steer::steer_src_ip_vips(id, &config.src_ip_vips, &key, key_len, layout, rx_queues)
            }
            _ => Vec::new(),
        };
        // Some PMDs (net_pcap on files) have no promiscuous mode; that is not an error.
        unsafe { sys::rte_eth_promiscuous_enable(id) };
        let mut mac = sys::rte_ether_addr::default();
        unsafe { sys::rte_eth_macaddr_get(id, &mut mac) };
        Ok(Port {
            id,
            rss,
            reta,
            vip_rules,
            timestamp,
            mac: mac.addr_bytes,
            rx_queues,
            tx_queues,
            pool: Arc::clone(pool),
        })
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    pub fn rss(&self) -> RssMode {
        self.rss
    }

    /// The redirection table programmed for the workers, if the port has RSS and was
    /// given a [`RetaLayout`].
    pub fn reta(&self) -> Option<Reta> {
        self.reta
    }

    /// The src-IP-persistence VIPs and how each is steered (empty with one RX queue).
    pub fn vip_rules(&self) -> &[VipRule] {
        &self.vip_rules
    }

    /// Where RX timestamps are, if the port was asked for them and its PMD provides them.
    pub fn rx_timestamp_field(&self) -> Option<RxTimestampField> {
        self.timestamp
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// RX queues configured: `PortConfig::rx_queues`, at most what the PMD offers. Worker
    /// `w` of `n` polls the queues `q % n == w` (one lcore alone polls them all).
    pub fn rx_queue_count(&self) -> u16 {
        self.rx_queues
    }

    /// TX queues configured: `PortConfig::tx_queues`, at most what the PMD offers.
    pub fn tx_queue_count(&self) -> u16 {
        self.tx_queues
    }

    /// The pool RX buffers come from.
    pub fn pool(&self) -> &Mempool {
        &self.pool
    }

    /// Receive up to `max` frames from `queue`, appended to `out`; returns how many.
    pub fn rx_burst(&self, queue: u16, out: &mut Vec<Mbuf>, max: u16) -> usize {
        out.reserve(max as usize);
        let spare = out.spare_capacity_mut();
        // SAFETY: spare has room for `max` pointers; Mbuf is repr(transparent) over a
        // non-null pointer and the PMD writes exactly `n` valid mbufs it hands over to us.
        unsafe {
            let n = sys::fg_eth_rx_burst(self.id, queue, spare.as_mut_ptr().cast(), max) as usize;
            out.set_len(out.len() + n);
            n
        }
    }

    /// Send the frames of `frames` from the front; sent ones leave the vector (the PMD
    /// owns them now), unsent ones stay for the caller to retry or drop.
    pub fn tx_burst(&self, queue: u16, frames: &mut Vec<Mbuf>) -> usize {
        let len = frames.len();
        if len == 0 {
            return 0;
        }
        let n = len.min(u16::MAX as usize) as u16;
        // SAFETY: the array holds `n` valid owned mbufs; the first `sent` of them now
        // belong to the PMD, so they are removed without running their destructor.
        unsafe {
            let base = frames.as_mut_ptr();
            let sent = sys::fg_eth_tx_burst(self.id, queue, base.cast(), n) as usize;
            std::ptr::copy(base.add(sent), base, len - sent);
            frames.set_len(len - sent);
            sent
        }
    }

    pub fn stats(&self) -> PortStats {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port, `s` lives across the call.
        unsafe { sys::rte_eth_stats_get(self.id, &mut s) };
        PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_no_mbuf: s.rx_nombuf,
        }
    }
}

/// Which port plays which role in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRoles {
    /// Port frames are read from.
    pub rx: u16,
    /// Port forwarded frames are sent on; `None`: 1 when the EAL found two ports or more,
    /// else the RX port.
    pub tx: Option<u16>,
    /// Port frames for no VIP are sent on; `None`: they are counted and freed.
    pub pass: Option<u16>,
}

/// The configuration every port of a run gets: the contract's RSS key, a redirection
/// table laid out for the forwarding lcores (over the flow table's sets) and an rte_flow
/// rule per src-IP-persistence VIP of `tables` where the driver takes one, one TX queue per
/// forwarding lcore (none shares a queue where the port allows), `rx_queues` RX queues
/// (`None`: one per forwarding lcore), RX timestamps if asked for. The forwarding lcores
/// are the workers, or the main lcore alone when there are none.
pub fn run_port_config(
    eal: &Eal,
    tables: &Tables,
    rx_queues: Option<u16>,
    rx_timestamp: bool,
) -> PortConfig {
    let lcores = (crate::lcore::worker_lcores(eal).len() as u16).max(1);
    PortConfig {
        rss_key: Some(tables.keys.rss),
        rx_queues: rx_queues.unwrap_or(lcores).max(1),
        tx_queues: lcores,
        rx_timestamp,
        reta: Some(RetaLayout {
            sets: tables.geometry.sets,
            workers: u32::from(lcores),
        }),
        src_ip_vips: steer::src_ip_vips(tables),
        ..PortConfig::default()
    }
}

/// Program port `id`'s RETA (`size` entries) so that entry `i` names the queue of
/// `layout`'s owner of `i`.
fn program_reta(id: u16, size: u16, layout: RetaLayout, queues: u16) -> Result<Reta, DpdkError> {
    const GROUP: usize = 64;
    let groups = (size as usize).div_ceil(GROUP);
    let mut conf = vec![sys::rte_eth_rss_reta_entry64::default(); groups];
    for i in 0..size as usize {
        let entry = &mut conf[i / GROUP];
        entry.mask |= 1 << (i % GROUP);
        entry.reta[i % GROUP] = layout.queue(i as u32, queues);
    }
    // SAFETY: the port is started; `conf` holds `size` entries and lives across the call.
    check(id, "rte_eth_dev_rss_reta_update", unsafe {
        sys::rte_eth_dev_rss_reta_update(id, conf.as_mut_ptr(), size)
    })?;
    Ok(Reta {
        size,
        exact: layout.exact(size, queues),
    })
}

/// The started ports of a run; each distinct port is configured once, whatever roles it
/// plays. Dropping this stops and closes them (net_pcap then flushes its files).
#[derive(Debug)]
pub struct OpenPorts {
    ports: Vec<Port>,
    rx: u16,
    tx: u16,
    pass: Option<u16>,
}

/// Configure and start the ports `roles` names with `config`, RX buffers from `pool`.
pub fn open_ports(
    eal: &Eal,
    roles: PortRoles,
    config: &PortConfig,
    pool: &Arc<Mempool>,
) -> Result<OpenPorts, DpdkError> {
    let count = eal.port_count();
    if count == 0 {
        return Err(DpdkError::NoPort);
    }
    let tx = roles.tx.unwrap_or(if count >= 2 { 1 } else { roles.rx });
    let mut ids = vec![roles.rx, tx];
    ids.extend(roles.pass);
    ids.sort_unstable();
    ids.dedup();
    let ports = ids
        .iter()
        .map(|&id| Port::configure(eal, id, config, pool))
        .collect::<Result<_, _>>()?;
    Ok(OpenPorts {
        ports,
        rx: roles.rx,
        tx,
        pass: roles.pass,
    })
}

impl OpenPorts {
    fn by_id(&self, id: u16) -> &Port {
        self.ports
            .iter()
            .find(|p| p.id() == id)
            .expect("every role's port is configured")
    }

    /// Every distinct port, by id.
    pub fn all(&self) -> &[Port] {
        &self.ports
    }

    pub fn rx(&self) -> &Port {
        self.by_id(self.rx)
    }

    /// The ports by role, for [`crate::datapath::run`].
    pub fn roles(&self) -> Ports<'_> {
        Ports {
            rx: self.by_id(self.rx),
            tx: self.by_id(self.tx),
            pass: self.pass.map(|id| self.by_id(id)),
        }
    }
}

/// `RssMode` as the JSON summaries name it (`ports[].rss.mode`).
pub fn rss_name(rss: RssMode) -> &'static str {
    match rss {
        RssMode::SingleQueue => "single-queue",
        RssMode::Hardware { .. } => "hardware",
        RssMode::Software => "software",
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // The rules go before the port stops (drivers free their resources with it).
        if self
            .vip_rules
            .iter()
            .any(|r| r.steering == VipSteering::Nic)
        {
            steer::flush(self.id);
        }
        // SAFETY: the port was started by us; no queue is used after this.
        unsafe {
            sys::rte_eth_dev_stop(self.id);
            sys::rte_eth_dev_close(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the NIC does with the RETA: queue = reta[h % size]; the worker owning the
    /// frame's set is `SetSplit::owner(set(h))`. Where `exact` says so, the two agree for every
    /// hash; where it does not, some hashes land on another worker's queue.
    #[test]
    fn reta_sends_each_hash_to_its_owner_exactly_when_it_says_so() {
        for (sets, workers, size) in [
            (16384, 1, 128),
            (16384, 2, 128),
            (16384, 4, 512),
            (16384, 3, 512),
            (256, 3, 512),
            (1024, 3, 128),
            (16384, 3, 32),
            (16384, 2, 32),
            (64, 3, 32),
        ] {
            let layout = RetaLayout { sets, workers };
            let queues = workers as u16;
            let reta: Vec<u16> = (0..u32::from(size))
                .map(|i| layout.queue(i, queues))
                .collect();
            let split = layout.split().0;
            let mut h = 0x9e37_79b9u32;
            let mut agree = true;
            for _ in 0..100_000 {
                h = h.wrapping_mul(0x0019_660d).wrapping_add(0x3c6e_f35f);
                let queue = reta[(h % u32::from(size)) as usize];
                agree &= u32::from(queue) == split.owner(h & (sets - 1));
            }
            assert_eq!(
                agree,
                layout.exact(size, queues),
                "sets {sets}, workers {workers}, RETA {size}"
            );
        }
    }
}
