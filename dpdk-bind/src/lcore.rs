//! Running closures on worker lcores.

use std::any::Any;
use std::ffi::{c_int, c_void};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::eal::{self, Eal, LcoreId};
use crate::error::{Errno, LaunchError};
use crate::sys;

/// Lcores with a live `LcoreHandle`.
static LCORE_CLAIMED: [AtomicBool; sys::RTE_MAX_LCORE as usize] =
    [const { AtomicBool::new(false) }; sys::RTE_MAX_LCORE as usize];

impl Eal {
    /// Runs `f` on worker lcore `lcore` (`rte_eal_remote_launch`) and
    /// returns at once; [`LcoreHandle::wait`] gives `f`'s result.
    ///
    /// A panic in `f` never crosses into C: it is caught, reported on
    /// stderr (after the panic hook's own message) and turned into the
    /// result -1.
    ///
    /// Any thread may call this: DPDK documents `rte_eal_remote_launch` as
    /// main-lcore only, but its 22.11 implementation only needs a single
    /// launcher per target lcore at a time, which the handle guarantees:
    /// each lcore has at most one `LcoreHandle` at a time. Dropping the
    /// handle detaches the function (it keeps running); the lcore can be
    /// launched again once it has returned.
    ///
    /// # Errors
    ///
    /// [`LaunchError::NotWorker`] for the main lcore or an id that is not
    /// an enabled lcore, [`LaunchError::Busy`] while the lcore has a handle
    /// or still runs a function, [`LaunchError::Launch`] otherwise.
    #[cold]
    pub fn launch_on<F>(&self, lcore: LcoreId, f: F) -> Result<LcoreHandle, LaunchError>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        if !lcore.is_enabled() || lcore == self.main_lcore() {
            return Err(LaunchError::NotWorker(lcore));
        }
        // is_enabled checked lcore < RTE_MAX_LCORE.
        let claim = &LCORE_CLAIMED[lcore.0 as usize];
        if claim.swap(true, Ordering::AcqRel) {
            return Err(LaunchError::Busy(lcore));
        }
        let handle = LcoreHandle { lcore };

        let arg = Box::into_raw(Box::new(f)).cast::<c_void>();
        eal::live_acquire();
        // SAFETY: trampoline::<F> matches lcore_function_t and takes back
        // the Box<F> passed as arg exactly once, on the worker. The claim
        // bit makes this thread the only one launching on this lcore.
        let ret = unsafe { sys::rte_eal_remote_launch(Some(trampoline::<F>), arg, lcore.0) };
        if ret < 0 {
            eal::live_release();
            // SAFETY: the launch failed, so the worker never received arg;
            // it is still the Box created above.
            drop(unsafe { Box::from_raw(arg.cast::<F>()) });
            return Err(if ret == -(sys::EBUSY as c_int) {
                LaunchError::Busy(lcore)
            } else {
                LaunchError::Launch {
                    lcore,
                    errno: Errno::from_negative(ret),
                }
            });
        }
        Ok(handle)
    }
}

/// Runs the boxed closure on the worker lcore, never unwinding into C.
///
/// # Safety
///
/// `arg` must come from `Box::<F>::into_raw` and be passed exactly once.
unsafe extern "C" fn trampoline<F>(arg: *mut c_void) -> c_int
where
    F: FnOnce() -> i32 + Send + 'static,
{
    // SAFETY: guaranteed by the caller (launch_on).
    let f = unsafe { Box::from_raw(arg.cast::<F>()) };
    let ret = match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(ret) => ret,
        Err(payload) => {
            report_panic(&*payload);
            // A payload whose drop panics must not unwind into C either.
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
            -1
        }
    };
    eal::live_release();
    ret
}

#[cold]
fn report_panic(payload: &(dyn Any + Send)) {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload");
    let lcore =
        eal::current_lcore().map_or_else(|| "an unknown lcore".to_owned(), |id| id.to_string());
    // Ignore stderr errors: nothing else can be done from here.
    let _ = writeln!(
        std::io::stderr(),
        "dpdk-bind: function launched on {lcore} panicked: {message}"
    );
}

/// A function running on a worker lcore, from [`Eal::launch_on`].
///
/// Dropping the handle detaches the function.
#[must_use = "dropping an LcoreHandle detaches the function; call wait() for its result"]
#[derive(Debug)]
pub struct LcoreHandle {
    lcore: LcoreId,
}

impl LcoreHandle {
    /// The lcore the function runs on.
    pub fn lcore(&self) -> LcoreId {
        self.lcore
    }

    /// Waits until the function returns (`rte_eal_wait_lcore`, which spins)
    /// and gives its result; -1 if it panicked.
    pub fn wait(self) -> i32 {
        // SAFETY: lcore is an enabled worker (checked at launch), and this
        // handle's claim means no other launch on it happened since ours.
        unsafe { sys::rte_eal_wait_lcore(self.lcore.0) }
    }
}

impl Drop for LcoreHandle {
    fn drop(&mut self) {
        LCORE_CLAIMED[self.lcore.0 as usize].store(false, Ordering::Release);
    }
}
