//! The per-thread io_uring runtime that ringsoa's cores, clients and tools run on.
//!
//! io_uring is set up with `COOP_TASKRUN`: completions are processed when the
//! thread next enters the kernel for the ring, instead of interrupting it with a
//! signal-style task-work notification. Without it every other syscall the thread
//! makes (a socket peek, a clock read that misses the vDSO) first runs the ring's
//! pending task work under the signal lock, which profiles showed as a hot spot. On
//! kernels without the flag (before 5.19) the ring is built without it; without
//! io_uring at all, monoio's epoll driver is used.

use monoio::time::TimeDriver;
use monoio::{FusionDriver, IoUringDriver, LegacyDriver, RuntimeBuilder};

/// A thread's runtime, with its timer.
pub type Runtime = monoio::FusionRuntime<TimeDriver<IoUringDriver>, TimeDriver<LegacyDriver>>;

/// Builds the runtime for the calling thread.
pub fn build() -> std::io::Result<Runtime> {
    let mut coop = io_uring::IoUring::builder();
    coop.setup_coop_taskrun();
    match RuntimeBuilder::<FusionDriver>::new()
        .enable_timer()
        .uring_builder(coop)
        .build()
    {
        Ok(rt) => Ok(rt),
        Err(e) => {
            tracing::debug!("io_uring without COOP_TASKRUN ({e})");
            RuntimeBuilder::<FusionDriver>::new().enable_timer().build()
        }
    }
}
