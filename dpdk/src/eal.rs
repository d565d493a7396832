//! The Environment Abstraction Layer: initialised once per process (DPDK cannot
//! re-initialise it, even after cleanup), cleaned up when [`Eal`] drops.

use dpdk_sys as sys;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};

static INITIALISED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    #[error("the EAL is initialised once per process; this process already did")]
    AlreadyInitialised,
    #[error("EAL argument {0:?} contains a NUL byte")]
    BadArgument(String),
    #[error("rte_eal_init failed: {0}")]
    EalInit(String),
    #[error("creating mempool {name}: {reason}")]
    Mempool { name: String, reason: String },
    #[error("port {port}: {op} failed: {reason}")]
    Port {
        port: u16,
        op: &'static str,
        reason: String,
    },
    #[error("creating ring {name}: {reason}")]
    Ring { name: String, reason: String },
    #[error("launching a worker on lcore {lcore}: {reason}")]
    Launch { lcore: u32, reason: String },
    #[error("a worker lcore panicked")]
    WorkerPanicked,
    #[error("the mbuf pool of port {0} has no private area for handing frames to workers (create it with Mempool::new)")]
    NoPrivArea(u16),
    #[error("registering the RX timestamp field: {0}")]
    RxTimestamp(String),
    #[error("the EAL found no port: give --vdev or PCI devices after `--`")]
    NoPort,
    #[error("port {0} does not exist (the EAL found {1} ports; give --vdev or PCI devices)")]
    NoSuchPort(u16, u16),
}

/// DPDK's message for an error code (negative return values or `rte_errno`).
pub(crate) fn error_text(code: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or per-lcore NUL-terminated string.
    let text = unsafe { CStr::from_ptr(sys::rte_strerror(code.abs())) };
    format!("{} ({})", text.to_string_lossy(), code)
}

/// Proof that the EAL is up; the safe layer's entry point. Not `Send`: the thread that
/// initialised the EAL is its main lcore.
#[derive(Debug)]
pub struct Eal {
    _not_send: PhantomData<*const ()>,
}

impl Eal {
    /// Initialise the EAL with `args` (EAL options only, e.g. `-l 0 --no-huge -m 512
    /// --no-pci --vdev net_pcap0,...`; the program name is added here). Returns the EAL
    /// and how many of `args` it consumed.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<(Eal, usize), DpdkError> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::AlreadyInitialised);
        }
        let owned: Vec<CString> = std::iter::once("flowgate-dpdk")
            .chain(args.iter().map(AsRef::as_ref))
            .map(|a| CString::new(a).map_err(|_| DpdkError::BadArgument(a.to_string())))
            .collect::<Result<_, _>>()?;
        // rte_eal_init may permute argv; it gets its own array of pointers into `owned`.
        let mut argv: Vec<*mut std::os::raw::c_char> =
            owned.iter().map(|a| a.as_ptr() as *mut _).collect();
        // SAFETY: argv points at NUL-terminated strings that outlive the call; the EAL
        // copies what it keeps.
        let parsed = unsafe { sys::rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
        if parsed < 0 {
            // SAFETY: plain read of the per-lcore errno.
            return Err(DpdkError::EalInit(error_text(unsafe { sys::fg_errno() })));
        }
        Ok((
            Eal {
                _not_send: PhantomData,
            },
            (parsed as usize).saturating_sub(1),
        ))
    }

    /// Ports the EAL probed (physical devices and `--vdev`s).
    pub fn port_count(&self) -> u16 {
        // SAFETY: the EAL is initialised.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// TSC ticks per second, as the EAL measured them.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: the EAL is initialised.
        unsafe { sys::fg_tsc_hz() }
    }

    pub fn tsc_cycles(&self) -> u64 {
        // SAFETY: reads the time-stamp counter.
        unsafe { sys::fg_tsc_cycles() }
    }

    /// The lcore this thread runs as.
    pub fn lcore_id(&self) -> u32 {
        // SAFETY: reads a per-thread variable.
        unsafe { sys::fg_lcore_id() }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: every port, pool and mbuf borrows the Eal, so they are gone by now.
        unsafe {
            sys::rte_eal_cleanup();
        }
    }
}
