//! One packet buffer, owned: dropping an [`Mbuf`] returns it to its pool.
//!
//! The fields the fast path reads and adjusts per frame (data offset and lengths, segment
//! count) are accessed directly through [`MbufHead`], whose layout `shim.c` checks against
//! DPDK's `struct rte_mbuf` at build time; everything else goes through the shim.

use crate::port::RxTimestampField;
use dpdk_sys as sys;
use flowgate_core::pipeline::Prepared;
use flowgate_core::rewrite::{rewrite_in_place, Datagram, InPlace, Mode, RewriteParams};
use flowgate_core::DropReason;
use std::mem::{align_of, offset_of, size_of};
use std::ptr::NonNull;

/// The start of DPDK 22.11's `struct rte_mbuf` (first cache line, up to `buf_len`).
/// `shim.c` has `_Static_assert`s on these offsets.
#[repr(C)]
struct MbufHead {
    buf_addr: *mut u8,
    buf_iova: u64,
    data_off: u16,
    refcnt: u16,
    nb_segs: u16,
    port: u16,
    ol_flags: u64,
    packet_type: u32,
    pkt_len: u32,
    data_len: u16,
    vlan_tci: u16,
    hash: [u32; 2],
    vlan_tci_outer: u16,
    buf_len: u16,
}

const _: () = {
    assert!(offset_of!(MbufHead, data_off) == 16);
    assert!(offset_of!(MbufHead, nb_segs) == 20);
    assert!(offset_of!(MbufHead, pkt_len) == 36);
    assert!(offset_of!(MbufHead, data_len) == 40);
    assert!(offset_of!(MbufHead, buf_len) == 54);
};

/// `sizeof(struct rte_mbuf)`: the application's private area follows it.
const MBUF_SIZE: usize = 128;

/// Bytes of private area per mbuf that [`crate::Mempool`] reserves: room for the
/// [`Prepared`] that the RX lcore hands to a worker with the frame.
pub const PRIV_SIZE: u16 = size_of::<Prepared>().next_multiple_of(8) as u16;
const _: () = assert!(align_of::<Prepared>() <= 8);

/// An owned `rte_mbuf`. `repr(transparent)` over the pointer, so a `[Mbuf]` is the
/// `struct rte_mbuf **` array that the burst calls take.
#[derive(Debug)]
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

/// Why a rewritten frame could not be stored in its mbuf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("the frame does not fit the mbuf's headroom and tailroom")]
    NoRoom,
    #[error("the mbuf has several segments")]
    Segmented,
}

impl Mbuf {
    /// Take ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nothing else frees or uses afterwards.
    pub unsafe fn from_raw(raw: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf(raw)
    }

    /// Give up ownership (to a PMD's TX queue, say).
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let raw = self.0;
        std::mem::forget(self);
        raw
    }

    fn ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    fn head(&self) -> &MbufHead {
        // SAFETY: we own a valid mbuf, whose first bytes are laid out as MbufHead.
        unsafe { &*(self.ptr() as *const MbufHead) }
    }

    fn head_mut(&mut self) -> &mut MbufHead {
        // SAFETY: as above, and nobody else refers to the mbuf.
        unsafe { &mut *(self.ptr() as *mut MbufHead) }
    }

    /// Bytes in the whole packet (all segments).
    pub fn pkt_len(&self) -> usize {
        self.head().pkt_len as usize
    }

    pub fn is_contiguous(&self) -> bool {
        self.head().nb_segs == 1
    }

    /// The first segment's data (the whole frame when [`Mbuf::is_contiguous`]).
    pub fn data(&self) -> &[u8] {
        let h = self.head();
        // SAFETY: buf_addr + data_off is the first segment's data and data_len its
        // initialised length; they live as long as we own the mbuf.
        unsafe {
            std::slice::from_raw_parts(h.buf_addr.add(h.data_off as usize), h.data_len as usize)
        }
    }

    /// Start loading the frame's first cache line (its headers), so that parsing a burst
    /// does not wait for each frame's in turn (a NIC's DMA leaves them in memory, or at
    /// best in the last-level cache). Only a hint.
    #[inline]
    pub fn prefetch_data(&self) {
        let h = self.head();
        #[cfg(target_arch = "x86_64")]
        // SAFETY: prefetching never faults, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                h.buf_addr.wrapping_add(h.data_off as usize).cast(),
            )
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = h;
    }

    /// Rewrite the frame where it lies with the contract's [`rewrite_in_place`] (headroom
    /// for an IP-in-IP header, padding left out). `Ok(false)`: the mbuf has several
    /// segments or too little headroom, nothing changed (copy instead).
    pub fn rewrite_in_place(
        &mut self,
        datagram: Datagram,
        mode: Mode,
        params: &RewriteParams,
    ) -> Result<bool, DropReason> {
        if !self.is_contiguous() {
            return Ok(false);
        }
        let (start, len) = (self.head().data_off as usize, self.head().data_len as usize);
        // SAFETY: the buffer from buf_addr holds the headroom (data_off bytes) and the
        // data (data_len bytes); the headroom may be overwritten, it is ours.
        let buf = unsafe { std::slice::from_raw_parts_mut(self.head().buf_addr, start + len) };
        match rewrite_in_place(buf, start, datagram, mode, params)? {
            InPlace::Done(range) => {
                // Within the old headroom + data, so these fit their fields.
                let h = self.head_mut();
                h.data_off = range.start as u16;
                h.data_len = range.len() as u16;
                h.pkt_len = range.len() as u32;
                Ok(true)
            }
            InPlace::NoRoom => Ok(false),
        }
    }

    /// Keep `p` with the frame (in the mbuf's private area) for the lcore it is handed to.
    pub(crate) fn store_prepared(&mut self, p: Prepared, priv_size: u16) {
        assert!(
            priv_size >= PRIV_SIZE,
            "the mbuf pool has no room for Prepared"
        );
        // SAFETY: the private area (priv_size bytes, 8-aligned) follows the 128-byte
        // rte_mbuf, and we own the mbuf.
        unsafe { ((self.ptr() as *mut u8).add(MBUF_SIZE) as *mut Prepared).write(p) }
    }

    /// What [`Mbuf::store_prepared`] stored.
    ///
    /// # Safety
    /// `store_prepared` must have been called on this mbuf since it was received.
    pub(crate) unsafe fn load_prepared(&self) -> Prepared {
        ((self.ptr() as *const u8).add(MBUF_SIZE) as *const Prepared).read()
    }

    /// The whole frame: borrowed when contiguous, else gathered into `scratch`.
    pub fn bytes<'a>(&'a self, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        if self.is_contiguous() {
            return self.data();
        }
        let len = self.pkt_len();
        scratch.resize(len, 0);
        // SAFETY: scratch holds len bytes; rte_pktmbuf_read copies at most len bytes into it.
        let p = unsafe { sys::fg_pktmbuf_read(self.ptr(), 0, len as u32, scratch.as_mut_ptr()) };
        if p.is_null() {
            scratch.clear();
        }
        scratch
    }

    pub fn headroom(&self) -> usize {
        self.head().data_off as usize
    }

    pub fn tailroom(&self) -> usize {
        // SAFETY: we own a valid mbuf.
        unsafe { sys::fg_pktmbuf_tailroom(self.ptr()) as usize }
    }

    /// Replace the frame with `frame`: the data grows into the headroom first (so an
    /// IP-in-IP encapsulation is a prepend, as a NIC driver would do it) and the
    /// tailroom second, or shrinks at the tail, then the bytes are copied in.
    pub fn write(&mut self, frame: &[u8]) -> Result<(), WriteError> {
        if !self.is_contiguous() {
            return Err(WriteError::Segmented);
        }
        let old = self.data().len();
        let m = self.ptr();
        // SAFETY: prepend/append/trim keep the mbuf consistent and fail without change
        // when the room is missing; after them data_len == frame.len().
        unsafe {
            if frame.len() > old {
                let grow = frame.len() - old;
                let front = grow.min(self.headroom());
                if grow - front > self.tailroom() || grow > u16::MAX as usize {
                    return Err(WriteError::NoRoom);
                }
                if front > 0 && sys::fg_pktmbuf_prepend(m, front as u16).is_null() {
                    return Err(WriteError::NoRoom);
                }
                if grow > front && sys::fg_pktmbuf_append(m, (grow - front) as u16).is_null() {
                    return Err(WriteError::NoRoom);
                }
            } else if frame.len() < old && sys::fg_pktmbuf_trim(m, (old - frame.len()) as u16) != 0
            {
                return Err(WriteError::NoRoom);
            }
            std::ptr::copy_nonoverlapping(frame.as_ptr(), sys::fg_pktmbuf_mtod(m), frame.len());
        }
        Ok(())
    }

    /// The RX timestamp the PMD stored in the dynamic field at `offset` (flag `flag`).
    pub fn rx_timestamp(&self, offset: i32, flag: u64) -> Option<u64> {
        let mut present = 0;
        // SAFETY: the shim checks the flag before reading the field.
        let ts = unsafe { sys::fg_mbuf_rx_timestamp(self.ptr(), offset, flag, &mut present) };
        (present != 0).then_some(ts)
    }

    /// Stamp the frame with an RX time of `ns` nanoseconds in `field`, as a PMD with RX
    /// timestamps does: for frames a program makes itself (a test feeding a ring port)
    /// that the data path should age by their own clock ([`crate::datapath::Clock`]).
    pub fn set_rx_timestamp(&mut self, field: RxTimestampField, ns: u64) {
        // SAFETY: `field` was registered (RxTimestampField comes from a port or from
        // `RxTimestampField::register`), so its offset lies in every mbuf's dynamic area;
        // the shim refuses a negative one.
        unsafe { sys::fg_mbuf_set_rx_timestamp(self.ptr(), field.offset, field.flag, ns) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nobody else refers to it.
        unsafe { sys::fg_pktmbuf_free(self.ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every mode's outer header fits the headroom DPDK leaves in front of a received
    /// frame (`RTE_PKTMBUF_HEADROOM`), so no mode falls back to the copy-out rewrite on
    /// single-segment mbufs.
    #[test]
    fn the_default_headroom_holds_the_widest_outer_header() {
        // SAFETY: returns a compile-time constant; no EAL needed.
        let headroom = usize::from(unsafe { sys::fg_pktmbuf_headroom_default() });
        assert!(
            headroom >= flowgate_core::rewrite::MAX_OUTER_LEN,
            "headroom {headroom} < {}",
            flowgate_core::rewrite::MAX_OUTER_LEN
        );
        assert_eq!(
            flowgate_core::rewrite::MAX_OUTER_LEN,
            48,
            "IPv6 + UDP (GUE)"
        );
    }
}
