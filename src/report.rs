//! The replay summary: one structure, printed as a table for people or as JSON for tools.

use flowgate_core::counters::Counters;
use flowgate_core::hash::Persistence;
use flowgate_core::rewrite::Mode;
use flowgate_core::{DropReason, Tables};
use serde_json::{json, Value};

pub struct Summary<'a> {
    tables: &'a Tables,
    counters: &'a Counters,
    workers: usize,
}

fn protocol_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        other => other.to_string(),
    }
}

/// The mode as the config writes it: its name, and `key=value` of its parameter if it has
/// one (`gue gue_port=6080`).
fn mode_label(m: Mode) -> String {
    match m.spec().param {
        Some(param) => format!("{} {}={}", m.name(), param.key, m.param()),
        None => m.name().to_string(),
    }
}

fn persistence_name(p: Persistence) -> &'static str {
    match p {
        Persistence::FiveTuple => "5tuple",
        Persistence::SrcIp => "src-ip",
    }
}

impl<'a> Summary<'a> {
    pub fn new(tables: &'a Tables, counters: &'a Counters, workers: usize) -> Self {
        Summary {
            tables,
            counters,
            workers,
        }
    }

    pub fn to_json(&self) -> Value {
        let c = self.counters;
        let dropped: serde_json::Map<String, Value> = DropReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), json!(c.dropped(*r))))
            .collect();
        let vips: Vec<Value> = self
            .tables
            .vips
            .iter()
            .zip(&c.vips)
            .map(|(v, pb)| {
                let mut vip = json!({
                    "name": v.name, "address": v.address.to_string(), "port": v.port,
                    "protocol": protocol_name(v.protocol), "mode": v.mode.name(),
                    "persistence": persistence_name(v.persistence),
                    "packets": pb.packets, "bytes": pb.bytes,
                });
                if let Some(param) = v.mode.spec().param {
                    vip[param.key] = json!(v.mode.param());
                }
                vip
            })
            .collect();
        let backends: Vec<Value> = self
            .tables
            .backends
            .iter()
            .zip(&c.backends)
            .map(|(b, pb)| {
                json!({
                    "vip": self.tables.vips[b.vip as usize].name, "address": b.address.to_string(),
                    "weight": b.weight, "up": b.up, "packets": pb.packets, "bytes": pb.bytes,
                })
            })
            .collect();
        let f = &c.flow;
        json!({
            "frames_in": c.frames_in,
            "forwarded": c.forwarded,
            "passed": c.passed,
            "dropped": dropped,
            "dropped_total": c.total_dropped(),
            "vips": vips,
            "backends": backends,
            "flows": {
                "hits": f.hits, "misses": f.misses, "inserts": f.inserts, "evictions": f.evictions,
                "expirations": f.expirations, "refused": f.refused, "reselects": f.reselects,
                "capacity": self.tables.geometry.capacity(),
            },
            "workers": self.workers,
        })
    }

    pub fn print(&self) {
        let c = self.counters;
        println!(
            "frames in {:>12}   forwarded {:>12}   passed {:>12}   dropped {:>12}   ({} workers)",
            c.frames_in,
            c.forwarded,
            c.passed,
            c.total_dropped(),
            self.workers
        );
        println!();
        println!(
            "{:<16} {:<40} {:>12} {:>14}",
            "VIP", "address", "packets", "bytes"
        );
        for (v, pb) in self.tables.vips.iter().zip(&c.vips) {
            let addr = format!(
                "{} {}",
                protocol_name(v.protocol),
                std::net::SocketAddr::new(v.address, v.port)
            );
            println!(
                "{:<16} {:<40} {:>12} {:>14}",
                v.name, addr, pb.packets, pb.bytes
            );
        }
        println!();
        println!(
            "{:<16} {:<40} {:>6} {:>4} {:>12} {:>14} {:>7}",
            "backend of", "address", "weight", "up", "packets", "bytes", "share"
        );
        for (b, pb) in self.tables.backends.iter().zip(&c.backends) {
            let vip_packets = c.vips[b.vip as usize].packets.max(1);
            let share = 100.0 * pb.packets as f64 / vip_packets as f64;
            println!(
                "{:<16} {:<40} {:>6} {:>4} {:>12} {:>14} {:>6.1}%",
                self.tables.vips[b.vip as usize].name,
                b.address,
                b.weight,
                if b.up { "yes" } else { "no" },
                pb.packets,
                pb.bytes,
                share
            );
        }
        let f = &c.flow;
        println!();
        println!("flow table ({} entries): hits {}  misses {}  inserts {}  evictions {}  expirations {}  refused {}  reselects {}",
            self.tables.geometry.capacity(), f.hits, f.misses, f.inserts, f.evictions, f.expirations, f.refused, f.reselects);
        if c.total_dropped() > 0 {
            println!();
            println!("{:<32} {:>12}", "drop reason", "frames");
            for r in DropReason::ALL {
                let n = c.dropped(r);
                if n > 0 {
                    println!("{:<32} {:>12}", r.name(), n);
                }
            }
        }
    }
}

/// `check-config` output: what the config programs.
pub fn print_tables(t: &Tables) {
    println!(
        "flow table {} sets x {} ways; {} VIPs, {} backends",
        t.geometry.sets,
        t.geometry.ways,
        t.vips.len(),
        t.backends.len()
    );
    for v in &t.vips {
        println!(
            "  vip {:<12} {} {}:{} mode {} persistence {} maglev M {}",
            v.name,
            protocol_name(v.protocol),
            v.address,
            v.port,
            mode_label(v.mode),
            persistence_name(v.persistence),
            v.maglev.len()
        );
        for &b in &v.backends {
            let be = &t.backends[b as usize];
            let mac = be
                .mac
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":");
            println!(
                "    backend {:<40} mac {} weight {}",
                be.address, mac, be.weight
            );
        }
    }
}
