//! src-IP-persistence VIPs steered by the NIC: one rte_flow rule per VIP.
//!
//! The port's RSS hashes the 5-tuple (IP, TCP and UDP types) while a src-IP-persistence
//! VIP's flow hash leaves the ports out (they are zeroed in the contract's tuple), so the
//! two disagree and the NIC would put such a VIP's frames on any worker's queue. A rule
//! `ETH / IPV4 (dst = VIP) / END` (or IPV6) with an RSS action over the L3 types only and
//! the contract's Toeplitz key makes the NIC hash exactly the contract's tuple (Toeplitz
//! over zero bytes adds nothing, so the zeroed ports drop out): its hash is then the
//! contract's `FlowHash::hash`, and the action's queue list, laid out like the RETA
//! ([`RetaLayout::queue`]), sends it to the worker that owns the flow's set.
//!
//! What the rule assumes of the NIC: the queue list acts as an indirection table indexed
//! by the hash's low bits (`queue[h % n]`, `n` = 64 entries, a power of two). mlx5 does
//! this: its indirection table has `2^⌈log2 n⌉` entries filled with the list in order and
//! repeated, so 64 entries are the list itself. i40e and ice refuse a queue list on a rule
//! with a pattern ("RSS Queues not supported when pattern specified"), and net_pcap,
//! net_ring and net_null have no rte_flow at all: [`steer_src_ip_vips`] validates each
//! rule first and any refusal leaves that VIP to the software hand-off, reported per VIP
//! ([`VipSteering::Software`] with the driver's reason) in the JSON's `ports[].rss.vips`.
//! The hand-offs themselves are counted with the others (`rss.handed_off`). Frames with a
//! VLAN tag do not match `ETH / IPV4` and keep the port's 5-tuple RSS (software hand-off).
//! The rules follow the tables the port was started with; a VIP added by a reload takes
//! the software hand-off until the next start.

use crate::port::RetaLayout;
use dpdk_sys as sys;
use flowgate_core::hash::{Persistence, KEY_LEN};
use flowgate_core::Tables;
use std::ffi::CStr;
use std::net::IpAddr;

/// Entries of a rule's queue list: the RETA's layout over the 64 set classes the owner
/// reads (`Geometry::shared_bits` is at most 6), so every hash reaches its owner.
pub const RULE_QUEUES: u32 = 64;

/// How one src-IP-persistence VIP's frames reach the worker that owns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VipSteering {
    /// An rte_flow rule steers them in the NIC.
    Nic,
    /// The driver refused the rule (its reason): frames on another worker's queue are
    /// handed off in software.
    Software { reason: String },
}

/// A src-IP-persistence VIP of the port's tables and how it is steered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipRule {
    pub vip: u16,
    pub name: String,
    pub address: IpAddr,
    pub steering: VipSteering,
}

/// The src-IP-persistence VIPs of `tables`, as (index, name, address).
pub fn src_ip_vips(tables: &Tables) -> Vec<(u16, String, IpAddr)> {
    tables
        .vips
        .iter()
        .enumerate()
        .filter(|(_, v)| v.persistence == Persistence::SrcIp)
        .map(|(i, v)| (i as u16, v.name.clone(), v.address))
        .collect()
}

/// Validate and create one rule per VIP of `vips` on started port `port` (`queues` RX
/// queues, RSS key `key`, queue list from `layout`). Never fails: a refused rule is a VIP
/// steered in software. The rules live until the port is closed (`rte_flow_flush` on drop).
pub fn steer_src_ip_vips(
    port: u16,
    vips: &[(u16, String, IpAddr)],
    key: &[u8; KEY_LEN],
    key_len: usize,
    layout: RetaLayout,
    queues: u16,
) -> Vec<VipRule> {
    let queue_list: Vec<u16> = (0..RULE_QUEUES).map(|i| layout.queue(i, queues)).collect();
    vips.iter()
        .map(|(vip, name, address)| VipRule {
            vip: *vip,
            name: name.clone(),
            address: *address,
            steering: match install(port, *address, &key[..key_len], &queue_list) {
                Ok(()) => VipSteering::Nic,
                Err(reason) => VipSteering::Software { reason },
            },
        })
        .collect()
}

/// `rte_flow_validate` then `rte_flow_create` of the rule for `address`; the driver's
/// message on refusal.
fn install(port: u16, address: IpAddr, key: &[u8], queues: &[u16]) -> Result<(), String> {
    let mut attr = sys::rte_flow_attr::default();
    attr.set_ingress(1);
    let (mut v4, mut v4_mask) = (
        sys::rte_flow_item_ipv4::default(),
        sys::rte_flow_item_ipv4::default(),
    );
    let (mut v6, mut v6_mask) = (
        sys::rte_flow_item_ipv6::default(),
        sys::rte_flow_item_ipv6::default(),
    );
    // SAFETY (whole function): every struct passed by pointer lives across the calls that
    // read it; the pattern and the actions end with END.
    let (l3_type, spec, mask, types): (_, *const std::ffi::c_void, *const std::ffi::c_void, _) =
        match address {
            IpAddr::V4(a) => {
                // Network order in memory: the octets as they are.
                v4.hdr.dst_addr = u32::from_ne_bytes(a.octets());
                v4_mask.hdr.dst_addr = u32::MAX;
                (
                    sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_IPV4,
                    (&v4 as *const sys::rte_flow_item_ipv4).cast(),
                    (&v4_mask as *const sys::rte_flow_item_ipv4).cast(),
                    unsafe { sys::fg_eth_rss_ipv4() },
                )
            }
            IpAddr::V6(a) => {
                v6.hdr.dst_addr = a.octets();
                v6_mask.hdr.dst_addr = [0xff; 16];
                (
                    sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_IPV6,
                    (&v6 as *const sys::rte_flow_item_ipv6).cast(),
                    (&v6_mask as *const sys::rte_flow_item_ipv6).cast(),
                    unsafe { sys::fg_eth_rss_ipv6() },
                )
            }
        };
    let item = |type_, spec, mask| sys::rte_flow_item {
        type_,
        spec,
        last: std::ptr::null(),
        mask,
    };
    let null = std::ptr::null();
    let pattern = [
        item(sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_ETH, null, null),
        item(l3_type, spec, mask),
        item(sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_END, null, null),
    ];
    let rss = sys::rte_flow_action_rss {
        func: sys::rte_eth_hash_function_RTE_ETH_HASH_FUNCTION_TOEPLITZ,
        level: 0,
        types,
        key_len: key.len() as u32,
        queue_num: queues.len() as u32,
        key: key.as_ptr(),
        queue: queues.as_ptr(),
    };
    let actions = [
        sys::rte_flow_action {
            type_: sys::rte_flow_action_type_RTE_FLOW_ACTION_TYPE_RSS,
            conf: (&rss as *const sys::rte_flow_action_rss).cast(),
        },
        sys::rte_flow_action {
            type_: sys::rte_flow_action_type_RTE_FLOW_ACTION_TYPE_END,
            conf: null,
        },
    ];
    let mut error = sys::rte_flow_error::default();
    let rc = unsafe {
        sys::rte_flow_validate(port, &attr, pattern.as_ptr(), actions.as_ptr(), &mut error)
    };
    if rc != 0 {
        return Err(refusal("rte_flow_validate", rc, &error));
    }
    let flow = unsafe {
        sys::rte_flow_create(port, &attr, pattern.as_ptr(), actions.as_ptr(), &mut error)
    };
    if flow.is_null() {
        return Err(refusal(
            "rte_flow_create",
            -unsafe { sys::fg_errno() },
            &error,
        ));
    }
    Ok(())
}

/// "OP: the driver's message (rc)", or DPDK's text for `rc` without a message.
fn refusal(op: &str, rc: i32, error: &sys::rte_flow_error) -> String {
    let message = if error.message.is_null() {
        String::new()
    } else {
        // SAFETY: the driver sets `message` to a NUL-terminated static string or leaves it
        // null.
        unsafe { CStr::from_ptr(error.message) }
            .to_string_lossy()
            .into_owned()
    };
    if message.is_empty() {
        format!("{op}: {}", crate::eal::error_text(rc))
    } else {
        format!("{op}: {message} ({rc})")
    }
}

/// Remove every rule of `port` (before it is stopped and closed).
pub fn flush(port: u16) {
    let mut error = sys::rte_flow_error::default();
    // SAFETY: `error` lives across the call; a port without rte_flow returns an error,
    // which changes nothing.
    unsafe { sys::rte_flow_flush(port, &mut error) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowgate_core::flow_table::Geometry;
    use flowgate_host::shard::SetSplit;

    /// What a driver that indexes the action's queue list with the hash's low bits (mlx5)
    /// does with the rule: every hash reaches the queue of the worker owning its set, for
    /// any number of workers, so a steered VIP takes no hand-off.
    #[test]
    fn the_rules_queue_list_sends_every_hash_to_its_owner() {
        for (sets, workers) in [
            (16384, 1),
            (16384, 2),
            (16384, 3),
            (1024, 5),
            (64, 3),
            (8, 3),
        ] {
            let layout = RetaLayout { sets, workers };
            let queues = workers as u16;
            let list: Vec<u16> = (0..RULE_QUEUES).map(|i| layout.queue(i, queues)).collect();
            let geometry = Geometry {
                sets,
                ..Geometry::DEFAULT
            };
            let split = SetSplit::new(workers, &geometry);
            let mut h = 0x9e37_79b9u32;
            for _ in 0..50_000 {
                h = h.wrapping_mul(0x0019_660d).wrapping_add(0x3c6e_f35f);
                assert_eq!(
                    u32::from(list[(h % RULE_QUEUES) as usize]),
                    split.owner(h & (sets - 1)),
                    "sets {sets}, workers {workers}, hash {h:#x}"
                );
            }
        }
    }
}
