//! Worker lcores and the rings between them: what the data path needs to run one worker
//! per EAL lcore.

use crate::eal::{error_text, DpdkError, Eal};
use crate::mbuf::Mbuf;
use dpdk_sys as sys;
use std::ffi::CString;
use std::os::raw::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

/// The EAL's worker lcores (every lcore of `-l` / `--lcores` but the main one), in order.
pub fn worker_lcores(_eal: &Eal) -> Vec<u32> {
    let mut lcores = Vec::new();
    let mut prev = -1;
    loop {
        // SAFETY: the EAL is up; plain query.
        let next = unsafe { sys::fg_next_worker_lcore(prev) };
        if next < 0 {
            return lcores;
        }
        lcores.push(next as u32);
        prev = next;
    }
}

/// A ring of mbufs from one lcore to another (`rte_ring`). Mbufs left in it when it
/// drops are freed.
#[derive(Debug)]
pub struct Ring {
    raw: NonNull<sys::rte_ring>,
}

// SAFETY: rte_rings are made for passing objects between lcores; `single` rings are used
// by one producer and one consumer (two worker lcores of the data path).
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// A ring of `count` slots (a power of two; it holds `count - 1` mbufs). `single`:
    /// one producer lcore and one consumer lcore (cheaper), else many producers.
    pub fn new(_eal: &Eal, name: &str, count: u32, single: bool) -> Result<Ring, DpdkError> {
        let err = |reason: String| DpdkError::Ring {
            name: name.to_string(),
            reason,
        };
        let cname = CString::new(name).map_err(|_| err("name contains NUL".into()))?;
        // SAFETY: the EAL is up; the name is copied.
        let raw = unsafe {
            sys::fg_ring_create(
                cname.as_ptr(),
                count,
                sys::rte_socket_id() as i32,
                i32::from(single),
            )
        };
        // SAFETY: plain read of the per-lcore errno.
        NonNull::new(raw).map_or_else(
            || Err(err(error_text(unsafe { sys::fg_errno() }))),
            |raw| Ok(Ring { raw }),
        )
    }

    /// Move as many mbufs from the front of `frames` into the ring as fit; returns how
    /// many (they leave `frames`).
    pub fn enqueue(&self, frames: &mut Vec<Mbuf>) -> usize {
        let len = frames.len();
        if len == 0 {
            return 0;
        }
        // SAFETY: the array holds `len` owned mbufs (Mbuf is a transparent pointer); the
        // first `n` now belong to the ring and are removed without being freed.
        unsafe {
            let base = frames.as_mut_ptr();
            let n = sys::fg_ring_enqueue_burst(self.raw.as_ptr(), base.cast(), len as u32) as usize;
            std::ptr::copy(base.add(n), base, len - n);
            frames.set_len(len - n);
            n
        }
    }

    /// Take up to `max` mbufs, appended to `out`; returns how many.
    pub fn dequeue(&self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        out.reserve(max);
        let spare = out.spare_capacity_mut();
        // SAFETY: spare has room for `max` pointers; the ring hands over `n` valid mbufs.
        unsafe {
            let n = sys::fg_ring_dequeue_burst(
                self.raw.as_ptr(),
                spare.as_mut_ptr().cast(),
                max as u32,
            ) as usize;
            out.set_len(out.len() + n);
            n
        }
    }

    pub fn is_empty(&self) -> bool {
        // SAFETY: the ring is alive.
        unsafe { sys::fg_ring_count(self.raw.as_ptr()) == 0 }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let mut left = Vec::new();
        while self.dequeue(&mut left, 64) > 0 {
            left.clear();
        }
        // SAFETY: no lcore uses the ring any more (the data path waited for them).
        unsafe { sys::fg_ring_free(self.raw.as_ptr()) }
    }
}

extern "C" fn trampoline<F: FnMut()>(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `F` that `Launched::launch` was given, alive until waited for.
    let f = unsafe { &mut *(arg as *mut F) };
    // A panic must not unwind into DPDK's C thread; the lcore reports failure instead.
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// Jobs running on worker lcores; dropping it waits for all of them, so what they borrow
/// outlives them.
pub struct Launched<'a> {
    lcores: Vec<u32>,
    _borrows: std::marker::PhantomData<&'a mut ()>,
}

impl<'a> Launched<'a> {
    pub fn new(_eal: &'a Eal) -> Launched<'a> {
        Launched {
            lcores: Vec::new(),
            _borrows: std::marker::PhantomData,
        }
    }

    /// Run `job` on worker lcore `lcore`, which must be idle.
    pub fn launch<F: FnMut() + Send + 'a>(
        &mut self,
        lcore: u32,
        job: &'a mut F,
    ) -> Result<(), DpdkError> {
        // SAFETY: `job` lives for 'a and `self` (also 'a) waits for the lcore before it
        // goes; the trampoline is instantiated for exactly F.
        let rc = unsafe {
            sys::fg_remote_launch(Some(trampoline::<F>), job as *mut F as *mut c_void, lcore)
        };
        if rc != 0 {
            return Err(DpdkError::Launch {
                lcore,
                reason: error_text(rc),
            });
        }
        self.lcores.push(lcore);
        Ok(())
    }

    /// Wait for every job; true when all returned normally (none panicked).
    pub fn wait(mut self) -> bool {
        self.wait_all()
    }

    fn wait_all(&mut self) -> bool {
        let mut ok = true;
        for lcore in self.lcores.drain(..) {
            // SAFETY: the lcore was launched by us.
            ok &= unsafe { sys::fg_wait_lcore(lcore) } == 0;
        }
        ok
    }
}

impl Drop for Launched<'_> {
    fn drop(&mut self) {
        self.wait_all();
    }
}
