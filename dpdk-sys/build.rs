//! Without feature `dpdk` this does nothing, so the workspace builds on machines without
//! DPDK. With it: find DPDK with `pkg-config libdpdk`, build the C shim with the same flags
//! (DPDK's headers need `-include rte_config.h -march=...`, which pkg-config supplies),
//! and generate bindings with bindgen under those flags too.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_DPDK");
    #[cfg(feature = "dpdk")]
    dpdk::build();
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::path::PathBuf;
    use std::process::Command;

    fn pkg_config(arg: &str) -> Vec<String> {
        let out = Command::new("pkg-config")
            .args([arg, "libdpdk"])
            .output()
            .unwrap_or_else(|e| panic!("running pkg-config: {e} (install pkg-config)"));
        if !out.status.success() {
            panic!(
                "pkg-config {arg} libdpdk failed: {}\nfeature `dpdk` needs DPDK's development files: \
                 apt-get install dpdk-dev libdpdk-dev libclang-dev clang",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// pkg-config splits `-include rte_config.h` into two words; keep them together.
    fn compiler_flags(cflags: &[String]) -> Vec<String> {
        let mut flags = Vec::new();
        let mut words = cflags.iter();
        while let Some(w) = words.next() {
            if w == "-include" {
                if let Some(file) = words.next() {
                    flags.push(format!("-include{file}"));
                }
            } else {
                flags.push(w.clone());
            }
        }
        flags
    }

    pub fn build() {
        for f in ["wrapper.h", "shim.h", "shim.c"] {
            println!("cargo:rerun-if-changed={f}");
        }
        let cflags = compiler_flags(&pkg_config("--cflags"));
        for word in pkg_config("--libs") {
            if let Some(dir) = word.strip_prefix("-L") {
                println!("cargo:rustc-link-search=native={dir}");
            } else if let Some(lib) = word.strip_prefix("-l") {
                println!("cargo:rustc-link-lib={lib}");
            }
            // -Wl,--as-needed is Debian's default already; PMDs are not linked at all:
            // the EAL loads them from its driver directory at run time.
        }

        let mut shim = cc::Build::new();
        shim.file("shim.c")
            .include(".")
            .opt_level(3)
            .warnings(false);
        for f in &cflags {
            shim.flag(f);
        }
        shim.compile("flowgate_dpdk_shim");

        let bindings = bindgen::Builder::default()
            .header("wrapper.h")
            .clang_args(&cflags)
            .clang_arg("-I.")
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
            .allowlist_function("rte_eal_(init|cleanup|process_type)")
            .allowlist_function("rte_eth_(dev_.*|rx_queue_setup|tx_queue_setup|stats_get|stats_reset|macaddr_get|promiscuous_enable|link_get_nowait|find_next_owned_by)")
            .allowlist_function("rte_pktmbuf_pool_create|rte_mempool_(free|avail_count|in_use_count)")
            .allowlist_function("rte_socket_id|rte_lcore_count|rte_strerror|rte_mbuf_dyn_rx_timestamp_register")
            .allowlist_function("fg_.*")
            // rte_flow: one RSS rule per src-IP-persistence VIP (flowgate-dpdk's `steer`).
            .allowlist_function("rte_flow_(validate|create|destroy|flush)")
            .allowlist_type("rte_flow_(attr|item|item_eth|item_ipv4|item_ipv6|action|action_rss|error)")
            .allowlist_type("rte_flow_(item|action)_type|rte_eth_hash_function")
            .allowlist_type("rte_eth_(conf|dev_info|stats|rss_conf|rxconf|txconf|link)")
            .allowlist_type("rte_ether_addr")
            .allowlist_var("RTE_MAX_ETHPORTS|RTE_ETH_NAME_MAX_LEN|RTE_MAX_LCORE")
            // The shim reaches into mbufs; Rust only passes pointers around.
            .opaque_type("rte_mbuf")
            .opaque_type("rte_mempool")
            .opaque_type("rte_ring")
            .derive_default(true)
            .layout_tests(false)
            .generate_comments(false)
            .generate()
            .expect("bindgen over DPDK's headers (needs libclang-dev)");
        let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
        bindings
            .write_to_file(out.join("bindings.rs"))
            .expect("writing bindings.rs");
    }
}
