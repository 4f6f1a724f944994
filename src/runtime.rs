//! The per-thread io_uring runtime that ringsoa's cores, clients and tools run on.
//!
//! The ring is set up, in order of preference:
//! - `COOP_TASKRUN` (Linux 5.19+): completions are processed when the thread next
//!   enters the kernel for the ring, instead of interrupting it with a signal-style
//!   task-work notification (without it every other syscall first runs the ring's
//!   pending task work under the signal lock, which profiles showed as a hot spot);
//! - neither; and without io_uring at all, monoio's epoll driver.
//!
//! `RINGSOA_RING=defer` tries `DEFER_TASKRUN | SINGLE_ISSUER` (6.1+) first:
//! completions are then processed only when the thread waits on the ring. Every
//! test passes with it, but an A/B on the project's machine (perf/RESULTS.md) showed
//! no difference beyond noise, and monoio's guard against a task that never stops
//! yielding submits without waiting, which under `DEFER_TASKRUN` delivers no
//! completions: so it is not the default. `RINGSOA_RING=plain` uses neither flag,
//! and `RINGSOA_RING=epoll` no ring at all: the epoll driver, as where io_uring is
//! missing or blocked (Docker's default seccomp profile blocks it), for trying a
//! service there. The raw echo limit (`ringsoa-perf echo-server`) uses the same list.

use monoio::time::TimeDriver;
use monoio::{FusionDriver, IoUringDriver, LegacyDriver, RuntimeBuilder};

/// A thread's runtime, with its timer.
pub type Runtime = monoio::FusionRuntime<TimeDriver<IoUringDriver>, TimeDriver<LegacyDriver>>;

/// The ring setups to try, best first, each with its name for the log.
pub fn ring_setups() -> Vec<(&'static str, io_uring::Builder)> {
    let mut defer = io_uring::IoUring::builder();
    defer.setup_defer_taskrun().setup_single_issuer();
    let mut coop = io_uring::IoUring::builder();
    coop.setup_coop_taskrun();
    let all = vec![
        ("defer", defer),
        ("coop", coop),
        ("plain", io_uring::IoUring::builder()),
    ];
    // `defer` only when asked for; none for `epoll`.
    let start = std::env::var("RINGSOA_RING")
        .ok()
        .filter(|r| ["defer", "coop", "plain", "epoll"].contains(&r.as_str()))
        .unwrap_or_else(|| "coop".into());
    if start == "epoll" {
        return Vec::new();
    }
    let skip = all.iter().position(|(name, _)| *name == start).unwrap_or(1);
    all.into_iter().skip(skip).collect()
}

/// Entries of each thread's ring (monoio's default), for [`build`] and for
/// [`why_not_io_uring`]'s trial of the same setups.
const RING_ENTRIES: u32 = 1024;

/// Why [`build`] runs on epoll rather than io_uring, or `None` when it runs on
/// io_uring: `RINGSOA_RING=epoll`, or the error the last of [`build`]'s ring setups
/// gets (a seccomp profile's EPERM, a kernel without io_uring's ENOSYS). It tries
/// the very rings [`build`] makes: a small plain ring that sets up where those do
/// not would have the start line say io_uring while the cores run on epoll.
pub fn why_not_io_uring() -> Option<String> {
    let mut last = None;
    for (_, setup) in ring_setups() {
        match setup.build(RING_ENTRIES) {
            Ok(_) => return None,
            Err(e) => last = Some(e),
        }
    }
    let Some(e) = last else {
        return Some("RINGSOA_RING=epoll".into());
    };
    Some(match e.raw_os_error() {
        Some(libc::EPERM) => {
            format!("io_uring_setup: {e}; blocked by a seccomp profile, as containers' default ones do, or by sysctl kernel.io_uring_disabled")
        }
        Some(libc::ENOSYS) => format!("io_uring_setup: {e}; the kernel has no io_uring"),
        _ => format!("io_uring_setup: {e}"),
    })
}

/// Builds the runtime for the calling thread.
pub fn build() -> std::io::Result<Runtime> {
    for (name, setup) in ring_setups() {
        match RuntimeBuilder::<FusionDriver>::new()
            .enable_timer()
            .with_entries(RING_ENTRIES)
            .uring_builder(setup)
            .build()
        {
            Ok(rt) => return Ok(rt),
            Err(e) => tracing::debug!("io_uring setup {name} unavailable ({e})"),
        }
    }
    Ok(RuntimeBuilder::<LegacyDriver>::new()
        .enable_timer()
        .build()?
        .into())
}

/// The most threads a control-plane thread's blocking pool starts (host-name
/// lookups, probes).
const CONTROL_BLOCKING_THREADS: usize = 64;

/// Starts a control-plane thread named `name` that runs the future `make` builds on
/// a current-thread tokio runtime (never a core: the governance and admin threads).
pub fn spawn_control_thread<F>(
    name: &str,
    make: impl FnOnce() -> F + Send + 'static,
) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Tokio's default is 512: host-name lookups of thousands of providers (32
        // at a time, `governance::resolver`) made some 160 threads, since a finished
        // lookup's thread is not idle yet when the next one starts.
        .max_blocking_threads(CONTROL_BLOCKING_THREADS)
        .build()?;
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || rt.block_on(make()))?;
    Ok(())
}

/// Raises the soft open-file limit (RLIMIT_NOFILE) to the hard one where allowed, as
/// servers and load generators that hold many connections need; returns the soft
/// limit now in force (`None`: unlimited, or it could not be read).
pub fn raise_open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                tracing::debug!(
                    from = lim.rlim_cur,
                    to = lim.rlim_max,
                    "raised the open-file limit"
                );
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}
