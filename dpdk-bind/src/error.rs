//! Error types: one small enum per operation, each carrying the errno that
//! DPDK reported and its `rte_strerror` text.
//!
//! DPDK reports failures two ways: `-1` (or NULL) with the per-lcore
//! `rte_errno` set, or a negative errno as the return value. Both end up in
//! [`Errno`]. Everything here is built on setup paths only, hence `#[cold]`.

use std::ffi::{CStr, c_int};
use std::fmt;

use thiserror::Error;

use crate::eal::LcoreId;
use crate::port::{PortId, QueueId};
use crate::sys;

/// An errno value reported by DPDK, with its description.
#[derive(Clone, PartialEq, Eq)]
pub struct Errno {
    code: i32,
    text: String,
}

impl Errno {
    /// The errno value (positive, e.g. `libc::EINVAL`).
    pub fn code(&self) -> i32 {
        self.code
    }

    /// The description from `rte_strerror`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The errno for a positive errno value.
    #[cold]
    pub(crate) fn new(code: i32) -> Self {
        // SAFETY: rte_strerror accepts any value and returns a pointer to a
        // static string or to a thread-local buffer that stays valid until
        // the next call on this thread; it is copied out at once.
        let text = unsafe { CStr::from_ptr(sys::rte_strerror(code)) }
            .to_string_lossy()
            .into_owned();
        Self { code, text }
    }

    /// The errno for a function that returned `-1` (or NULL) and set
    /// `rte_errno`.
    #[cold]
    pub(crate) fn last() -> Self {
        // SAFETY: reads the calling thread's rte_errno; no preconditions.
        Self::new(unsafe { sys::rvs_errno() })
    }

    /// The errno for a function that returned a negative errno.
    #[cold]
    pub(crate) fn from_negative(ret: c_int) -> Self {
        Self::new(ret.saturating_neg())
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", self.text, self.code)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why the EAL could not be initialised or cleaned up.
#[derive(Debug, Error)]
pub enum EalError {
    /// An argument cannot be passed to C.
    #[error("EAL argument {index} contains a NUL byte")]
    NulInArgument {
        /// Position of the argument in the list given to `Eal::init`.
        index: usize,
    },
    /// `Eal::init` was already called in this process (whatever its result).
    #[error("the EAL can be initialised only once per process")]
    AlreadyInitialised,
    /// `rte_eal_init` failed.
    #[error("rte_eal_init failed: {0}")]
    Init(Errno),
    /// `rte_eal_init` left arguments it did not understand; the EAL was
    /// cleaned up again.
    #[error("EAL arguments not understood: {0:?}")]
    UnexpectedArguments(Vec<String>),
    /// `Eal::cleanup` was refused because DPDK objects are still alive (or
    /// mbufs are still out of their pools); the EAL was left as is.
    #[error("EAL cleanup refused: {0} DPDK objects or mbufs are still in use")]
    InUse(usize),
    /// `Eal::cleanup` must run on the main lcore (the thread that called
    /// `Eal::init`).
    #[error("EAL cleanup must run on the main lcore")]
    NotMainLcore,
    /// `rte_eal_cleanup` failed.
    #[error("rte_eal_cleanup failed: {0}")]
    Cleanup(Errno),
}

/// Why a mempool could not be created.
#[derive(Debug, Error)]
pub enum MempoolError {
    /// The name cannot be passed to C.
    #[error("mempool name {0:?} contains a NUL byte")]
    NulInName(String),
    /// `rte_pktmbuf_pool_create` failed (for example `EEXIST` for a name in
    /// use, `ENOMEM`, `ENAMETOOLONG`, or `EINVAL` for a cache size too large).
    #[error("cannot create mempool {name:?}: {errno}")]
    Create {
        /// The pool's name.
        name: String,
        /// What DPDK reported.
        errno: Errno,
    },
}

/// Why a port operation failed.
#[derive(Debug, Error)]
pub enum PortError {
    /// The name cannot be passed to C.
    #[error("port name {0:?} contains a NUL byte")]
    NulInName(String),
    /// No ethdev port has this name.
    #[error("no DPDK port named {name:?}: {errno}")]
    NotFound {
        /// The name looked up.
        name: String,
        /// What DPDK reported.
        errno: Errno,
    },
    /// The port id is out of range.
    #[error("{0} does not exist")]
    NoSuchPort(PortId),
    /// A `Port` for this id already exists in the process.
    #[error("{0} is already configured by another Port value")]
    PortInUse(PortId),
    /// More queues were asked for than the device has.
    #[error("{port}: {requested} {kind} queues requested, the device has at most {max}")]
    TooManyQueues {
        /// The port.
        port: PortId,
        /// "rx" or "tx".
        kind: &'static str,
        /// Requested count.
        requested: u16,
        /// The device's maximum.
        max: u16,
    },
    /// The MTU is outside the device's range.
    #[error("{port}: MTU {mtu} is outside the device's range {min}..={max}")]
    Mtu {
        /// The port.
        port: PortId,
        /// Requested MTU.
        mtu: u16,
        /// The device's minimum MTU.
        min: u16,
        /// The device's maximum MTU.
        max: u16,
    },
    /// A queue id beyond the configured queues.
    #[error("{port}: no such queue {queue}")]
    NoSuchQueue {
        /// The port.
        port: PortId,
        /// The queue.
        queue: QueueId,
    },
    /// The queue was already handed out (queues are single-consumer).
    #[error("{port}: {queue} is already in use")]
    QueueTaken {
        /// The port.
        port: PortId,
        /// The queue.
        queue: QueueId,
    },
    /// The port cannot be stopped or closed while queue handles exist.
    #[error("{0}: rx/tx queue handles are still alive")]
    QueuesInUse(PortId),
    /// A DPDK ethdev call failed.
    #[error("{port}: {operation} failed: {errno}")]
    Dpdk {
        /// The port.
        port: PortId,
        /// The DPDK function that failed.
        operation: &'static str,
        /// What DPDK reported.
        errno: Errno,
    },
}

impl PortError {
    /// Whether DPDK said the device does not offer the operation
    /// (`ENOTSUP`), as opposed to failing at it.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, PortError::Dpdk { errno, .. } if errno.code() == libc::ENOTSUP)
    }
}

/// Why an mbuf ring could not be created.
#[derive(Debug, Error)]
pub enum RingError {
    /// The name cannot be passed to C.
    #[error("ring name {0:?} contains a NUL byte")]
    NulInName(String),
    /// `rte_ring_create` failed (for example `EEXIST`, `ENOMEM`, or
    /// `EINVAL` for a bad size).
    #[error("cannot create ring {name:?}: {errno}")]
    Create {
        /// The ring's name.
        name: String,
        /// What DPDK reported.
        errno: Errno,
    },
}

/// Why a function could not be launched on an lcore.
#[derive(Debug, Error)]
pub enum LaunchError {
    /// The lcore is not an enabled worker lcore of this EAL.
    #[error("{0} is not a worker lcore")]
    NotWorker(LcoreId),
    /// The lcore is still running a function, or its previous
    /// `LcoreHandle` was not dropped yet.
    #[error("{0} is busy")]
    Busy(LcoreId),
    /// `rte_eal_remote_launch` failed.
    #[error("launch on {lcore} failed: {errno}")]
    Launch {
        /// The lcore.
        lcore: LcoreId,
        /// What DPDK reported.
        errno: Errno,
    },
}
