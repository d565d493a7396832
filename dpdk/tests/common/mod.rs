//! What every DPDK test binary shares: the EAL arguments that run DPDK without hugepages or
//! a PCI device, on the vdevs a test names.

/// EAL arguments with `--lcores LCORES` (e.g. `0@0,1@1,2@1`: main lcore 0 and two workers,
/// more lcores than this machine's CPUs if need be), `--no-huge -m 512 --no-pci`, a file
/// prefix unique to this process (`PREFIX-PID`, so test binaries running at once never share
/// DPDK's runtime files) and one `--vdev` per entry of `vdevs`.
pub fn eal_args_on(lcores: &str, prefix: &str, vdevs: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--lcores",
        lcores,
        "--no-huge",
        "-m",
        "512",
        "--no-pci",
        "--log-level",
        "lib.*:notice",
        "--file-prefix",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("{prefix}-{}", std::process::id()));
    for v in vdevs {
        args.push("--vdev".into());
        args.push(v.clone());
    }
    args
}
