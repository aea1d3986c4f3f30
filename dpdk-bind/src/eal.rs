//! The EAL token, lcore and socket ids, and the TSC clock.

use std::ffi::OsStr;
use std::ffi::{CStr, CString, c_char, c_int};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{EalError, Errno};
use crate::sys;

/// Proof that the DPDK Environment Abstraction Layer is initialised.
///
/// There is at most one `Eal` per process: [`Eal::init`] runs
/// `rte_eal_init` exactly once and every later call fails with
/// [`EalError::AlreadyInitialised`] (DPDK cannot be initialised twice, not
/// even after a failed attempt or a cleanup). Constructors of the other
/// DPDK-backed types take `&Eal`, so none of them can exist before the EAL.
///
/// Dropping an `Eal` does nothing: the EAL stays up until the process ends,
/// which suits a value that tests share through a `static`. To release
/// DPDK's resources explicitly, call [`Eal::cleanup`], which consumes the
/// token and refuses to run while any DPDK object is still alive.
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

/// Set by the first `Eal::init`, never cleared.
static INIT_ATTEMPTED: AtomicBool = AtomicBool::new(false);

/// Number of live objects that keep DPDK memory in use (mempool handles,
/// ports and their queues, ring halves, functions running on lcores).
static LIVE_OBJECTS: AtomicUsize = AtomicUsize::new(0);

/// Counts one more live DPDK object (see [`Eal::cleanup`]).
pub(crate) fn live_acquire() {
    LIVE_OBJECTS.fetch_add(1, Ordering::AcqRel);
}

/// Counts one live DPDK object less.
pub(crate) fn live_release() {
    LIVE_OBJECTS.fetch_sub(1, Ordering::AcqRel);
}

impl Eal {
    /// Initialises the EAL with `args` (EAL arguments only, without a
    /// program name: `["-l", "0,1", "--no-huge", ...]`).
    ///
    /// The thread calling this becomes the main lcore. The argument strings
    /// are leaked on purpose: EAL may keep pointers into `argv`.
    ///
    /// # Errors
    ///
    /// [`EalError::AlreadyInitialised`] on any call after the first,
    /// [`EalError::Init`] when `rte_eal_init` fails, and
    /// [`EalError::UnexpectedArguments`] when EAL left arguments unparsed
    /// (it is then cleaned up again).
    #[cold]
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal, EalError> {
        let mut argv = Vec::with_capacity(args.len() + 2);
        argv.push(c"rvs".to_owned());
        for (index, arg) in args.iter().enumerate() {
            argv.push(CString::new(arg.as_ref()).map_err(|_| EalError::NulInArgument { index })?);
        }
        // More than c_int::MAX arguments cannot be allocated in practice.
        let argc = c_int::try_from(argv.len()).unwrap_or(c_int::MAX);
        if INIT_ATTEMPTED.swap(true, Ordering::AcqRel) {
            return Err(EalError::AlreadyInitialised);
        }
        let mut raw: Vec<*mut c_char> = argv.into_iter().map(CString::into_raw).collect();
        raw.push(std::ptr::null_mut());
        let raw: &'static mut [*mut c_char] = raw.leak();

        // SAFETY: argc/argv form a NULL-terminated array of valid C strings
        // that are leaked, so they outlive EAL (which may keep pointers into
        // them or permute the array). INIT_ATTEMPTED guarantees that this
        // is the only call in the process.
        let parsed = unsafe { sys::rte_eal_init(argc, raw.as_mut_ptr()) };
        if parsed < 0 {
            return Err(EalError::Init(Errno::last()));
        }
        let first_unparsed = usize::try_from(parsed).unwrap_or(0) + 1;
        let given = raw.len() - 1;
        if first_unparsed < given {
            let leftover = raw[first_unparsed..given]
                .iter()
                .map(|&arg| {
                    // SAFETY: every entry before the terminator is one of
                    // the leaked C strings (EAL only permutes the array).
                    let arg = unsafe { CStr::from_ptr(arg) };
                    arg.to_string_lossy().into_owned()
                })
                .collect();
            // SAFETY: the EAL was initialised above, no DPDK object exists
            // yet and no `Eal` is handed out to make one.
            unsafe { release() };
            return Err(EalError::UnexpectedArguments(leftover));
        }
        Ok(Eal { _private: () })
    }

    /// The main lcore: the thread that called [`Eal::init`].
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: the EAL is initialised; no other precondition.
        LcoreId(unsafe { sys::rte_get_main_lcore() })
    }

    /// The enabled worker lcores in increasing order (the main lcore
    /// excluded), as `RTE_LCORE_FOREACH_WORKER`.
    pub fn worker_lcores(&self) -> WorkerLcores {
        WorkerLcores { previous: None }
    }

    /// Number of enabled lcores, the main lcore included.
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: the EAL is initialised; no other precondition.
        unsafe { sys::rte_lcore_count() }
    }

    /// The NUMA socket of an enabled lcore, `None` for any other id.
    pub fn lcore_socket(&self, lcore: LcoreId) -> Option<SocketId> {
        if !lcore.is_enabled() {
            return None;
        }
        // SAFETY: lcore is below RTE_MAX_LCORE (checked by is_enabled),
        // which is the bound of the array this reads.
        let socket = unsafe { sys::rte_lcore_to_socket_id(lcore.0) };
        Some(SocketId(i32::try_from(socket).unwrap_or(SocketId::ANY.0)))
    }

    /// TSC ticks per second, as measured by EAL at start-up.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: the EAL is initialised; no other precondition.
        unsafe { sys::rte_get_tsc_hz() }
    }

    /// Number of usable ethdev ports (`rte_eth_dev_count_avail`).
    pub fn port_count(&self) -> u16 {
        // SAFETY: the EAL is initialised; no other precondition.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// Where EAL keeps this process's runtime files: `/var/run/dpdk/PREFIX`
    /// for root, after `--file-prefix` (`rte_eal_get_runtime_dir`).
    pub fn runtime_dir(&self) -> PathBuf {
        // SAFETY: `self` exists, so the EAL is initialised.
        unsafe { runtime_dir() }
    }

    /// Releases DPDK's resources (`rte_eal_cleanup`) and removes the
    /// runtime directory the cleanup empties.
    ///
    /// Runs only when it is sound to: on the main lcore, with no mempool
    /// handle, port, queue, ring half or launched function alive and every
    /// mbuf back in its pool. Otherwise it returns an error and leaves the
    /// EAL as it is (the operating system reclaims everything at exit). In
    /// either case the EAL cannot be initialised again in this process.
    ///
    /// # Errors
    ///
    /// [`EalError::NotMainLcore`], [`EalError::InUse`], or
    /// [`EalError::Cleanup`] when `rte_eal_cleanup` fails.
    #[cold]
    pub fn cleanup(self) -> Result<(), EalError> {
        if current_lcore() != Some(self.main_lcore()) {
            return Err(EalError::NotMainLcore);
        }
        // `self` is owned, so no `&Eal` exists and no new object can be
        // created; objects can only go away from here on.
        let in_use = LIVE_OBJECTS.load(Ordering::Acquire) + crate::mempool::mbufs_in_use();
        if in_use > 0 {
            return Err(EalError::InUse(in_use));
        }
        // SAFETY: no DPDK object and no mbuf is alive (checked above), and
        // the token is consumed, so nothing can call into DPDK afterwards.
        let ret = unsafe { release() };
        if ret < 0 {
            return Err(EalError::Cleanup(Errno::from_negative(ret)));
        }
        Ok(())
    }
}

/// `rte_eal_get_runtime_dir`, copied.
///
/// # Safety
///
/// The EAL is initialised (the string lives in its configuration).
unsafe fn runtime_dir() -> PathBuf {
    // SAFETY: the EAL is initialised (the caller's promise), so the
    // function returns a NUL-terminated string.
    let dir = unsafe { CStr::from_ptr(sys::rte_eal_get_runtime_dir()) };
    PathBuf::from(OsStr::from_bytes(dir.to_bytes()))
}

/// `rte_eal_cleanup`, then removal of the runtime directory it empties
/// (`/var/run/dpdk/PREFIX`) but leaves: with a prefix per run, as tests
/// and benchmarks use, they pile up. A directory another process still
/// uses is not empty, and stays. Returns what `rte_eal_cleanup` returned.
///
/// # Safety
///
/// The EAL is initialised, no DPDK object or mbuf is alive, and nothing
/// calls into DPDK afterwards.
unsafe fn release() -> c_int {
    // SAFETY: the EAL is initialised (the caller's promise).
    let dir = unsafe { runtime_dir() };
    // SAFETY: the caller's promise.
    let ret = unsafe { sys::rte_eal_cleanup() };
    if ret >= 0 {
        let _ = std::fs::remove_dir(dir);
    }
    ret
}

/// Iterator over the worker lcores, from [`Eal::worker_lcores`].
#[derive(Debug, Clone)]
pub struct WorkerLcores {
    previous: Option<u32>,
}

impl Iterator for WorkerLcores {
    type Item = LcoreId;

    fn next(&mut self) -> Option<LcoreId> {
        // rte_get_next_lcore starts after its argument (u32::MAX wraps to 0).
        let start = self.previous.unwrap_or(u32::MAX);
        if start >= sys::RTE_MAX_LCORE && self.previous.is_some() {
            return None;
        }
        // SAFETY: the EAL is initialised (the iterator comes from an `Eal`);
        // rte_get_next_lcore bounds-checks its argument.
        let next = unsafe { sys::rte_get_next_lcore(start, 1, 0) };
        self.previous = Some(next);
        (next < sys::RTE_MAX_LCORE).then_some(LcoreId(next))
    }
}

/// An EAL logical core id. `Debug` and `Display` print `lcore3`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LcoreId(pub u32);

impl LcoreId {
    /// Whether this lcore is enabled in the running EAL.
    pub(crate) fn is_enabled(self) -> bool {
        // SAFETY: rte_lcore_is_enabled bounds-checks the id; it only reads
        // the lcore role table, which is valid before and after init.
        self.0 < sys::RTE_MAX_LCORE && unsafe { sys::rte_lcore_is_enabled(self.0) } != 0
    }
}

impl fmt::Debug for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lcore{}", self.0)
    }
}

impl fmt::Display for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A NUMA socket id. `Debug` and `Display` print `socket0`, or
/// `socket-any` for [`SocketId::ANY`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SocketId(pub i32);

impl SocketId {
    /// Any socket (`SOCKET_ID_ANY`): let DPDK choose.
    pub const ANY: SocketId = SocketId(sys::SOCKET_ID_ANY);

    /// The value DPDK's `unsigned int socket_id` parameters expect
    /// (`SOCKET_ID_ANY` is passed as its two's complement).
    pub(crate) fn as_raw(self) -> u32 {
        self.0.cast_unsigned()
    }
}

impl fmt::Debug for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == SocketId::ANY {
            f.write_str("socket-any")
        } else {
            write!(f, "socket{}", self.0)
        }
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The lcore the calling thread runs as, `None` on threads that are not
/// EAL lcores (`LCORE_ID_ANY`), including every thread before `Eal::init`.
pub fn current_lcore() -> Option<LcoreId> {
    // SAFETY: reads the calling thread's lcore id; it is LCORE_ID_ANY
    // until EAL assigns one, so this is valid at any time.
    let id = unsafe { sys::rvs_lcore_id() };
    (id != sys::LCORE_ID_ANY).then_some(LcoreId(id))
}

/// The CPU's time-stamp counter (`rte_rdtsc`), read without an FFI call on
/// x86_64. Convert with [`Eal::tsc_hz`].
#[inline]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc is available on every x86_64 CPU and has no
        // memory effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: rte_rdtsc reads a counter register; no preconditions.
        unsafe { sys::rvs_rdtsc() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_compactly() {
        assert_eq!(format!("{:?}", LcoreId(3)), "lcore3");
        assert_eq!(format!("{}", LcoreId(0)), "lcore0");
        assert_eq!(format!("{:?}", SocketId(1)), "socket1");
        assert_eq!(format!("{:?}", SocketId::ANY), "socket-any");
    }

    #[test]
    fn tsc_advances() {
        let a = tsc();
        let b = tsc();
        assert!(b >= a);
    }
}
