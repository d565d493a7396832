//! Seed → case: a random config within the small hardware profile, a random frame stream
//! (the trace generator's valid, malformed and flood frames, then mutated: bytes flipped,
//! frames cut short, IPv4 options inserted, frames repeated back to back), and random
//! control events at random frame times, and in a quarter of the cases random backpressure
//! on the hardware's output. The same seed gives the same case on every
//! machine (ChaCha8, as the trace generator).

use super::case::{
    reload_name, BackendSpec, Case, ConfigSpec, EventSpec, FlowTableSpec, StreamSpec, TimeoutsSpec,
    VipSpec,
};
use flowgate_hdl::profile::HwProfile;
use flowgate_host::pcap_io::Frame;
use flowgate_traces::{generate_trace, TraceSpec, VipTarget};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// How big the cases of a run are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// About this many frames in an ordinary case (each case draws 1/4 to 2 times it).
    pub frames: u32,
    /// One case in this many overflows the flow table (more flows than it has entries:
    /// 1.25 to 2 times `sets × ways`); 0: never.
    pub overflow_every: u32,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            frames: 3000,
            overflow_every: 16,
        }
    }
}

/// Backends a case may use in all (base config, reloads' additions), kept below the
/// profile's slots: a reload that removes a backend keeps its slot (a tombstone).
fn backend_budget(profile: &HwProfile) -> usize {
    profile.backends / 2
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(rng: &mut ChaCha8Rng) -> String {
    let b: [u8; 5] = rng.gen();
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4]
    )
}

/// A backend address not yet used by `vip` (fresh addresses from a counter).
fn backend_address(rng: &mut ChaCha8Rng, next: &mut u32) -> String {
    *next += 1;
    let n = *next;
    if rng.gen_bool(0.7) {
        Ipv4Addr::new(198, 51, (n >> 8) as u8, n as u8).to_string()
    } else {
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, (n >> 16) as u16, n as u16).to_string()
    }
}

fn weight(rng: &mut ChaCha8Rng) -> u32 {
    // Mostly small weights; now and then 0 (draining) or a large one.
    match rng.gen_range(0..20) {
        0 => 0,
        1 => rng.gen_range(100..=1000),
        _ => rng.gen_range(1..=4),
    }
}

fn config(rng: &mut ChaCha8Rng, profile: &HwProfile, next: &mut u32) -> ConfigSpec {
    let vips = rng.gen_range(1..=profile.vips.min(8));
    let budget = backend_budget(profile);
    let mut backends_left = budget / 2;
    let mut vip = Vec::with_capacity(vips);
    for i in 0..vips {
        let v6 = rng.gen_bool(0.35);
        // Two VIPs may share an address (different port or protocol): the lookup must
        // tell them apart.
        let host = rng.gen_range(10..14u8);
        let address = if v6 {
            format!("2001:db8::{host:x}")
        } else {
            Ipv4Addr::new(192, 0, 2, host).to_string()
        };
        let protocol = if rng.gen_bool(0.6) { "tcp" } else { "udp" };
        let port = *[80u16, 443, 53, 8080, 0, 65535]
            .choose(rng)
            .expect("non-empty");
        let mode = *["dsr", "ipip", "gue"].choose(rng).expect("non-empty");
        let n = rng.gen_range(1..=6).min(backends_left.max(1));
        backends_left = backends_left.saturating_sub(n);
        let backend = (0..n)
            .map(|_| BackendSpec {
                address: backend_address(rng, next),
                mac: mac(rng),
                weight: weight(rng),
            })
            .collect();
        vip.push(VipSpec {
            name: format!("v{i}"),
            address,
            port,
            protocol: protocol.into(),
            mode: mode.into(),
            gue_port: (mode == "gue").then(|| rng.gen_range(1024..=65535)),
            persistence: if rng.gen_bool(0.3) {
                "src-ip"
            } else {
                "5tuple"
            }
            .into(),
            backend,
        });
    }
    // Drop a VIP whose service repeats an earlier one's (the config refuses duplicates).
    let mut seen = std::collections::HashSet::new();
    vip.retain(|v| seen.insert((v.address.clone(), v.port, v.protocol.clone())));
    let hash_key = if rng.gen_bool(0.5) {
        // The default RSS key (examples/hw-small.toml).
        "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa"
            .to_string()
    } else {
        let key: [u8; 32] = rng.gen();
        let rest: [u8; 20] = rng.gen();
        hex(&[&key[..], &rest[..]].concat())
    };
    // Short timeouts now and then, so entries expire within a case.
    let short = rng.gen_bool(0.4);
    let tcp = if short {
        rng.gen_range(200..=3000)
    } else {
        300_000
    };
    ConfigSpec {
        own_mac: mac(rng),
        encap_src_v4: "172.16.0.0/16".into(),
        encap_src_v6: "fc00::/64".into(),
        hash_key,
        maglev_m: profile.maglev_m,
        flow_table: FlowTableSpec {
            sets: profile.sets,
            ways: profile.ways,
            choices: rng.gen_range(1..=flowgate_driver::program::HW_CHOICES),
        },
        timeouts: TimeoutsSpec {
            tcp,
            tcp_embryonic: if short { rng.gen_range(50..=tcp) } else { 5000 },
            udp: if short {
                rng.gen_range(100..=3000)
            } else {
                30_000
            },
        },
        vip,
    }
}

/// A reload: the config with a backend added, one removed, weights changed, a VIP's
/// mode or persistence changed, or a VIP removed.
fn reload(
    rng: &mut ChaCha8Rng,
    base: &ConfigSpec,
    profile: &HwProfile,
    next: &mut u32,
    used: &mut usize,
) -> ConfigSpec {
    let mut c = base.clone();
    for _ in 0..rng.gen_range(1..=3) {
        let vi = rng.gen_range(0..c.vip.len());
        match rng.gen_range(0..6) {
            0 | 1 if *used < backend_budget(profile) => {
                *used += 1;
                let b = BackendSpec {
                    address: backend_address(rng, next),
                    mac: mac(rng),
                    weight: weight(rng),
                };
                c.vip[vi].backend.push(b);
            }
            2 if c.vip[vi].backend.len() > 1 => {
                let bi = rng.gen_range(0..c.vip[vi].backend.len());
                c.vip[vi].backend.remove(bi);
            }
            3 => {
                for b in &mut c.vip[vi].backend {
                    b.weight = weight(rng);
                }
            }
            4 => {
                let v = &mut c.vip[vi];
                v.persistence = if v.persistence == "5tuple" {
                    "src-ip"
                } else {
                    "5tuple"
                }
                .into();
            }
            _ if c.vip.len() > 1 => {
                c.vip.remove(vi);
            }
            _ => {}
        }
    }
    c
}

/// The VIPs of `config` as the trace generator aims at them.
fn targets(config: &ConfigSpec) -> Vec<VipTarget> {
    config
        .vip
        .iter()
        .map(|v| {
            let address: IpAddr = v.address.parse().expect("generated address");
            if v.protocol == "tcp" {
                VipTarget::tcp(address, v.port)
            } else {
                VipTarget::udp(address, v.port)
            }
        })
        .collect()
}

/// Insert `n` (a multiple of 4) bytes of IPv4 options after an untagged IPv4 header of 20
/// bytes, fixing IHL and total length (the header checksum is left as it was: the
/// balancer does not check it).
fn insert_ipv4_options(frame: &mut Vec<u8>, n: usize, fill: u8) -> bool {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[14] != 0x45 {
        return false;
    }
    let total = u16::from_be_bytes([frame[16], frame[17]]) as usize + n;
    frame[14] = 0x40 | (5 + n / 4) as u8;
    frame[16..18].copy_from_slice(&(total.min(0xffff) as u16).to_be_bytes());
    let options = vec![fill; n];
    frame.splice(34..34, options);
    true
}

/// Mutate some frames and repeat some back to back.
fn mutate(rng: &mut ChaCha8Rng, frames: Vec<Frame>, max_frame: usize) -> Vec<Frame> {
    let rate = *[0.0, 0.01, 0.05, 0.2].choose(rng).expect("non-empty");
    let repeat = *[0.0, 0.01, 0.05].choose(rng).expect("non-empty");
    let mut out = Vec::with_capacity(frames.len() * 11 / 10);
    for mut f in frames {
        if rng.gen_bool(rate) && !f.data.is_empty() {
            match rng.gen_range(0..5) {
                0 => {
                    // Flip a byte of the headers (most of what the parser reads).
                    let i = rng.gen_range(0..f.data.len().min(96));
                    f.data[i] ^= 1 << rng.gen_range(0..8);
                }
                1 => {
                    let i = rng.gen_range(0..f.data.len().min(96));
                    f.data[i] = rng.gen();
                }
                2 => {
                    let len = rng.gen_range(0..f.data.len());
                    f.data.truncate(len);
                }
                3 => {
                    let n = 4 * rng.gen_range(1..=10);
                    let fill = *[0u8, 1, 0x44, 0x94].choose(rng).expect("non-empty");
                    insert_ipv4_options(&mut f.data, n, fill);
                }
                _ => {
                    // Padding past the IP packet, up to a jumbo frame now and then.
                    let extra = if rng.gen_bool(0.1) {
                        rng.gen_range(1000..=9000)
                    } else {
                        rng.gen_range(1..64)
                    };
                    let fill: u8 = rng.gen();
                    f.data.resize(f.data.len() + extra, fill);
                }
            }
            f.data.truncate(max_frame);
        }
        let copies = if rng.gen_bool(repeat) {
            rng.gen_range(1..=8)
        } else {
            0
        };
        for _ in 0..copies {
            out.push(f.clone());
        }
        out.push(f);
    }
    out
}

/// The case of `seed` for `profile`.
pub fn generate(seed: u64, profile: &HwProfile, sizes: Sizes) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6877_2d66_757a_7a00);
    let mut next = 0;
    let base = config(&mut rng, profile, &mut next);
    let mut used = base.vip.iter().map(|v| v.backend.len()).sum::<usize>();

    let overflow = sizes.overflow_every > 0 && rng.gen_range(0..sizes.overflow_every) == 0;
    let target = if overflow {
        0
    } else {
        rng.gen_range(sizes.frames / 4..=sizes.frames * 2).max(20)
    };
    let vips = targets(&base);
    let mut spec = TraceSpec::mixed(vips.clone(), target.max(20));
    spec.seed = rng.gen();
    let has = |v6: bool| vips.iter().any(|t| t.address.is_ipv6() == v6);
    spec.ipv6_fraction = match (has(false), has(true)) {
        (true, true) => rng.gen_range(0.0..=1.0),
        (false, true) => 1.0,
        _ => 0.0,
    };
    spec.vlan_fraction = rng.gen_range(0.0..=0.5);
    spec.fragment_fraction = rng.gen_range(0.0..=0.3);
    spec.zipf_exponent = rng.gen_range(0.5..=2.0);
    spec.clients = rng.gen_range(1..=spec.flows.max(1));
    if overflow {
        // More flows than the table has entries, two or three packets each.
        let entries = u64::from(profile.sets) * u64::from(profile.ways);
        spec.flows = (entries * rng.gen_range(5..=8) / 4) as u32;
        spec.clients = spec.flows;
        spec.max_packets_per_flow = 3;
        spec.malformed = 100;
        spec.passthrough = 100;
        spec.duration_us = rng.gen_range(2_000_000..=10_000_000);
        spec.syn_flood = None;
    } else {
        spec.duration_us = rng.gen_range(200_000..=8_000_000);
        spec.mean_gap_us = rng.gen_range(1..=20_000);
        if let Some(f) = &mut spec.syn_flood {
            f.start_us = rng.gen_range(0..spec.duration_us);
            f.packets = rng.gen_range(0..=target / 4).max(1);
            f.rate_pps = rng.gen_range(1_000..=1_000_000);
        }
    }
    let trace = match generate_trace(&spec) {
        Ok(t) => t.frames,
        // A spec the generator refuses (too many frames for its bound): a smaller one.
        Err(_) => generate_trace(&TraceSpec::mixed(vips, 1000))
            .map(|t| t.frames)
            .unwrap_or_default(),
    };
    let mut frames = mutate(&mut rng, trace, profile.max_frame_bytes());
    // Now and then the millisecond tick wraps (2^32 ms) within the trace.
    if rng.gen_bool(0.1) {
        if let Some(first) = frames.first().map(|f| f.ts) {
            let wrap = Duration::from_millis(1 << 32);
            let before = Duration::from_millis(rng.gen_range(0..=spec.duration_us / 1000));
            let shift = (wrap * rng.gen_range(1..=3)).saturating_sub(before);
            for f in &mut frames {
                f.ts = f.ts - first + shift;
            }
        }
    }
    let span_ms = match (frames.first(), frames.last()) {
        (Some(a), Some(b)) => (b.ts - a.ts).as_millis() as u64,
        _ => 0,
    };

    // Events: down, up, weight (0 drains), reload (adds, removes, re-weights).
    let mut reloads = Vec::new();
    let mut current = base.clone();
    let mut events = Vec::new();
    let mut times: Vec<u64> = (0..rng.gen_range(0..=12))
        .map(|_| rng.gen_range(0..=span_ms))
        .collect();
    times.sort_unstable();
    for at_ms in times {
        let vi = rng.gen_range(0..current.vip.len());
        let v = &current.vip[vi];
        let b = &v.backend[rng.gen_range(0..v.backend.len())];
        let key = |action: &str| EventSpec {
            at_ms,
            action: action.into(),
            vip: Some(v.name.clone()),
            backend: Some(b.address.clone()),
            weight: None,
            config: None,
        };
        let event = match rng.gen_range(0..8) {
            0 | 1 => key("down"),
            2 | 3 => key("up"),
            4 | 5 => EventSpec {
                weight: Some(weight(&mut rng)),
                ..key("weight")
            },
            _ => {
                let next_config = reload(&mut rng, &current, profile, &mut next, &mut used);
                reloads.push(next_config.clone());
                current = next_config;
                EventSpec {
                    at_ms,
                    action: "reload".into(),
                    vip: None,
                    backend: None,
                    weight: None,
                    config: Some(reload_name(reloads.len() - 1)),
                }
            }
        };
        if let (Some(w), "weight") = (event.weight, event.action.as_str()) {
            // Keep `current` in step, so later reloads start from what is programmed.
            if let Some(b) = current
                .vip
                .iter_mut()
                .find(|v| Some(&v.name) == event.vip.as_ref())
                .and_then(|v| {
                    v.backend
                        .iter_mut()
                        .find(|b| Some(&b.address) == event.backend.as_ref())
                })
            {
                b.weight = w;
            }
        }
        events.push(event);
    }
    // A quarter of the cases hold the hardware's output back now and then.
    let stream = rng.gen_bool(0.25).then(|| StreamSpec {
        ready_seed: rng.gen_range(1..=u32::MAX),
        ready_percent: rng.gen_range(20..=95),
    });
    Case {
        config: base,
        reloads,
        events,
        frames,
        stream,
    }
}
