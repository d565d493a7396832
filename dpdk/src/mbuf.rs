//! One packet buffer, owned: dropping an [`Mbuf`] returns it to its pool.

use dpdk_sys as sys;
use std::ptr::NonNull;

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

    /// Bytes in the whole packet (all segments).
    pub fn pkt_len(&self) -> usize {
        // SAFETY: we own a valid mbuf.
        unsafe { sys::fg_pktmbuf_pkt_len(self.ptr()) as usize }
    }

    pub fn is_contiguous(&self) -> bool {
        // SAFETY: as above.
        unsafe { sys::fg_pktmbuf_nb_segs(self.ptr()) == 1 }
    }

    /// The first segment's data (the whole frame when [`Mbuf::is_contiguous`]).
    pub fn data(&self) -> &[u8] {
        // SAFETY: mtod and data_len describe the initialised bytes of the first segment,
        // which live as long as we own the mbuf.
        unsafe {
            let len = sys::fg_pktmbuf_data_len(self.ptr()) as usize;
            std::slice::from_raw_parts(sys::fg_pktmbuf_mtod(self.ptr()), len)
        }
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
        // SAFETY: we own a valid mbuf.
        unsafe { sys::fg_pktmbuf_headroom(self.ptr()) as usize }
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
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nobody else refers to it.
        unsafe { sys::fg_pktmbuf_free(self.ptr()) }
    }
}
