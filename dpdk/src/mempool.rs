//! Packet-buffer pools (`rte_pktmbuf_pool_create`).

use crate::eal::{error_text, DpdkError, Eal};
use crate::mbuf::{Mbuf, PRIV_SIZE};
use dpdk_sys as sys;
use std::ffi::CString;
use std::ptr::NonNull;

/// A pool of mbufs. Without hugepages (`--no-huge -m 512`) keep it small: a few thousand
/// 2 KiB buffers.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
    data_room: u16,
    priv_size: u16,
}

impl Mempool {
    /// `count` mbufs of DPDK's default size (2048 bytes of data after 128 bytes of
    /// headroom), with a per-lcore cache of `cache` (at most 512), each with
    /// [`crate::mbuf::PRIV_SIZE`] bytes of private area (for handing frames to workers).
    pub fn new(_eal: &Eal, name: &str, count: u32, cache: u32) -> Result<Mempool, DpdkError> {
        // SAFETY: constant getters.
        let data_room = unsafe { sys::fg_mbuf_default_buf_size() };
        let err = |reason: String| DpdkError::Mempool {
            name: name.to_string(),
            reason,
        };
        let cname = CString::new(name).map_err(|_| err("name contains NUL".into()))?;
        // SAFETY: the EAL is up; the name is copied.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                count,
                cache.min(512),
                PRIV_SIZE,
                data_room,
                sys::rte_socket_id() as i32,
            )
        };
        match NonNull::new(raw) {
            Some(raw) => Ok(Mempool {
                raw,
                data_room,
                priv_size: PRIV_SIZE,
            }),
            // SAFETY: plain read of the per-lcore errno.
            None => Err(err(error_text(unsafe { sys::fg_errno() }))),
        }
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }

    /// Buffer size per mbuf (headroom + data).
    pub fn data_room(&self) -> u16 {
        self.data_room
    }

    /// Private bytes per mbuf.
    pub fn priv_size(&self) -> u16 {
        self.priv_size
    }

    /// A new mbuf from the pool holding a copy of `frame` behind the default headroom, as
    /// a PMD hands a received frame over: for frames a program makes itself (a test
    /// feeding a ring port). `None` when the pool is empty or `frame` does not fit one
    /// buffer.
    pub fn frame(&self, frame: &[u8]) -> Option<Mbuf> {
        let len = u16::try_from(frame.len()).ok()?;
        // SAFETY: the pool is alive; a fresh mbuf belongs to us alone, and `Mbuf` frees it
        // on every path below.
        let raw = NonNull::new(unsafe { sys::fg_pktmbuf_alloc(self.as_ptr()) })?;
        let m = unsafe { Mbuf::from_raw(raw) };
        // SAFETY: `m` is a valid empty mbuf; append returns room for `len` bytes or null.
        let data = unsafe { sys::fg_pktmbuf_append(raw.as_ptr(), len) };
        if data.is_null() {
            return None;
        }
        // SAFETY: `data` has room for `len` = frame.len() bytes; the two do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), data, frame.len()) };
        Some(m)
    }

    /// Free mbufs in the pool (caches included).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive.
        unsafe { sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }
}

// SAFETY: DPDK mempools are built for concurrent use from several lcores (per-lcore
// caches, lock-free rings); the handle is only a pointer to one.
unsafe impl Send for Mempool {}
// SAFETY: as above.
unsafe impl Sync for Mempool {}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: ports holding the pool keep it alive through an Arc, so no queue uses it.
        unsafe { sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
