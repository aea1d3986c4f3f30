//! Packet mbuf pools.

use std::ffi::CString;
use std::fmt;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, PoisonError};

use crate::eal::{self, Eal, SocketId};
use crate::error::{Errno, MempoolError};
use crate::mbuf::Mbuf;
use crate::sys;

/// A pool of packet mbufs (`rte_pktmbuf_pool_create`), shared by cheap
/// clones.
///
/// DPDK mempools are thread-safe: any thread may allocate and free. EAL
/// lcores go through a per-lcore cache of up to `cache_size` mbufs; other
/// threads (`current_lcore()` is `None`) use the shared ring directly,
/// which is slower but correct.
///
/// # Lifetime
///
/// The pool is never freed (`rte_mempool_free` is not called): mbufs carry
/// a raw pointer to their pool and may outlive every `Mempool` handle, in a
/// ring, a NIC descriptor or another thread, and there is no race-free way
/// to know when the last one came back. rvs creates its pools once at
/// start-up, so the leak is bounded; the pool's name stays taken until the
/// process exits. [`Eal::cleanup`] checks that every pool ever created has
/// all its mbufs back before it frees DPDK's memory.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<PoolHandle>,
}

/// The live part of a `Mempool`: counts as a live DPDK object until the last
/// clone is gone.
struct PoolHandle {
    raw: PoolPtr,
    name: String,
}

/// A pointer to an `rte_mempool`.
#[derive(Clone, Copy)]
struct PoolPtr(NonNull<sys::rte_mempool>);

// SAFETY: DPDK mempools are safe to use from any thread (the common pool is
// a multi-producer/multi-consumer ring; per-lcore caches are only touched by
// their own lcore).
unsafe impl Send for PoolPtr {}
// SAFETY: as above; every operation through a shared pointer is thread-safe.
unsafe impl Sync for PoolPtr {}

/// Every pool created in this process, for [`mbufs_in_use`].
static POOLS: Mutex<Vec<PoolPtr>> = Mutex::new(Vec::new());

/// Mbufs out of their pools, summed over every pool ever created.
pub(crate) fn mbufs_in_use() -> usize {
    let pools = POOLS.lock().unwrap_or_else(PoisonError::into_inner);
    pools
        .iter()
        // SAFETY: pools are never freed, so every pointer is valid.
        .map(|pool| unsafe { sys::rte_mempool_in_use_count(pool.0.as_ptr()) } as usize)
        .sum()
}

impl Mempool {
    /// Room for packet data that fits a standard 1500-byte MTU frame after
    /// the headroom (`RTE_MBUF_DEFAULT_BUF_SIZE`: 2048 + headroom).
    pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

    /// Bytes reserved in front of the packet data of a fresh mbuf
    /// (`RTE_PKTMBUF_HEADROOM`), available to [`Mbuf::prepend`].
    pub const HEADROOM: u16 = sys::RTE_PKTMBUF_HEADROOM as u16;

    /// Creates a pool of `n_mbufs` mbufs named `name` (unique in the
    /// process), with per-lcore caches of `cache_size` mbufs and
    /// `data_room_size` bytes of buffer per mbuf, headroom included,
    /// allocated on `socket`.
    ///
    /// DPDK recommends `n_mbufs` of the form 2^q - 1 and a `cache_size`
    /// that divides it, at most 512 and at most `n_mbufs / 1.5`.
    ///
    /// # Errors
    ///
    /// [`MempoolError::Create`] with DPDK's errno.
    #[cold]
    pub fn new(
        _eal: &Eal,
        name: &str,
        n_mbufs: u32,
        cache_size: u32,
        data_room_size: u16,
        socket: SocketId,
    ) -> Result<Mempool, MempoolError> {
        let c_name = CString::new(name).map_err(|_| MempoolError::NulInName(name.to_owned()))?;
        // SAFETY: the EAL is initialised (we hold `&Eal`) and c_name is a
        // valid C string; DPDK copies the name.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(
                c_name.as_ptr(),
                n_mbufs,
                cache_size,
                0,
                data_room_size,
                socket.0,
            )
        };
        let Some(raw) = NonNull::new(raw) else {
            return Err(MempoolError::Create {
                name: name.to_owned(),
                errno: Errno::last(),
            });
        };
        let raw = PoolPtr(raw);
        POOLS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(raw);
        eal::live_acquire();
        Ok(Mempool {
            inner: Arc::new(PoolHandle {
                raw,
                name: name.to_owned(),
            }),
        })
    }

    /// Takes one mbuf from the pool, reset (empty data, headroom of
    /// [`Mempool::HEADROOM`] or less for tiny data rooms), or `None` when
    /// the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool pointer is valid for the process's lifetime.
        let raw = unsafe { sys::rvs_pktmbuf_alloc(self.as_ptr()) };
        // SAFETY: a non-NULL result is a fresh mbuf that nothing else owns.
        NonNull::new(raw).map(|raw| unsafe { Mbuf::from_raw(raw) })
    }

    /// Fills every slot of `out` with a fresh mbuf, all or nothing.
    ///
    /// Mbufs already in `out` are freed first. Returns `false`, with every
    /// slot `None`, when the pool does not hold enough mbufs.
    pub fn alloc_bulk(&self, out: &mut [Option<Mbuf>]) -> bool {
        out.fill_with(|| None);
        let Ok(count) = u32::try_from(out.len()) else {
            return false;
        };
        // `Option<Mbuf>` has the layout of `*mut rte_mbuf` (Mbuf is a
        // transparent NonNull and None is NULL), so DPDK can fill `out`.
        let slots = out.as_mut_ptr().cast::<*mut sys::rte_mbuf>();
        // SAFETY: slots points to `count` writable pointer-sized slots and
        // the pool pointer is valid.
        let ret = unsafe { sys::rvs_pktmbuf_alloc_bulk(self.as_ptr(), slots, count) };
        if ret != 0 {
            // DPDK gives no guarantee about the slots on failure: forget
            // whatever it wrote, it owns none of it.
            for slot in out.iter_mut() {
                std::mem::forget(slot.take());
            }
            return false;
        }
        true
    }

    /// Mbufs currently in the pool, per-lcore caches included.
    pub fn available(&self) -> u32 {
        // SAFETY: the pool pointer is valid for the process's lifetime.
        unsafe { sys::rte_mempool_avail_count(self.as_ptr()) }
    }

    /// Mbufs currently out of the pool (allocated, in NIC rings, in flight).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool pointer is valid for the process's lifetime.
        unsafe { sys::rte_mempool_in_use_count(self.as_ptr()) }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.raw.0.as_ptr()
    }
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        // The pool itself is leaked on purpose (see `Mempool`).
        eal::live_release();
    }
}

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.inner.name)
            .field("available", &self.available())
            .field("in_use", &self.in_use())
            .finish()
    }
}
