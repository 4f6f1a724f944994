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

use std::cell::Cell;
use std::time::{Duration, Instant};

use monoio::time::TimeDriver;
use monoio::{FusionDriver, IoUringDriver, LegacyDriver, RuntimeBuilder};

/// A thread's runtime, with its timer.
pub struct Runtime(monoio::FusionRuntime<TimeDriver<IoUringDriver>, TimeDriver<LegacyDriver>>);

impl Runtime {
    /// Runs `future` to its end on this thread, with the tasks it spawns.
    pub fn block_on<F: std::future::Future>(&mut self, future: F) -> F::Output {
        /// Puts the mark back as it was, a panic included.
        struct Restore(bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                RUNNING.set(self.0);
            }
        }
        let _restore = Restore(RUNNING.replace(true));
        self.0.block_on(future)
    }
}

/// Whether this thread is inside [`Runtime::block_on`]: its tasks then take no
/// wake-ups from other threads (monoio without its `sync` feature).
pub(crate) fn running_here() -> bool {
    RUNNING.get()
}

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
    let rt = build_runtime()?;
    ORIGIN.set(Some(Instant::now()));
    Ok(rt)
}

fn build_runtime() -> std::io::Result<Runtime> {
    for (name, setup) in ring_setups() {
        match RuntimeBuilder::<FusionDriver>::new()
            .enable_timer()
            .with_entries(RING_ENTRIES)
            .uring_builder(setup)
            .build()
        {
            Ok(rt) => return Ok(Runtime(rt)),
            Err(e) => tracing::debug!("io_uring setup {name} unavailable ({e})"),
        }
    }
    let legacy = RuntimeBuilder::<LegacyDriver>::new()
        .enable_timer()
        .build()?;
    Ok(Runtime(legacy.into()))
}

thread_local! {
    /// Whether this thread is inside [`Runtime::block_on`].
    static RUNNING: Cell<bool> = const { Cell::new(false) };
    /// When [`build`] last built this thread's runtime, just after monoio read
    /// its timer wheel's origin near the end of the build: the origin, a little
    /// late (a tick's half millisecond early covers the gap, [`next_tick`]).
    static ORIGIN: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The width of the timer wheel's second level (its first holds 64 slots of 1 ms).
const SLOT: Duration = Duration::from_millis(64);

/// `period` in whole slots of the timer wheel's second level (rounded up) when it
/// is at least one slot long; a shorter one as it is.
pub(crate) fn in_slots(period: Duration) -> Duration {
    if period < SLOT {
        return period;
    }
    SLOT * period.as_nanos().div_ceil(SLOT.as_nanos()) as u32
}

/// When a periodic timer of `period` ([`in_slots`]) next ticks: about `period` from
/// now (more than half of it, at most one and a half), on a whole number of
/// periods from the timer wheel's origin (so on the start of one of its 64 ms
/// slots, and with every timer whose period divides it) when it is at least one
/// slot long; a tick taken at the last one's deadline comes exactly `period` later.
/// monoio's wheel (tokio's) wakes for a timer 64 ms or more away first at the
/// start of its slot, to move it to the finest level, and again at its deadline:
/// two wake-ups of an idle core for each tick, where one does when the deadline is
/// the slot's start. Half a millisecond early, as the wheel rounds a deadline up to
/// the next millisecond from its origin. Unaligned on a runtime [`build`] did not
/// make.
pub(crate) fn next_tick(period: Duration) -> Instant {
    let now = Instant::now();
    match ORIGIN.get() {
        Some(origin) if period >= SLOT => on_grid(now + period / 2, origin, period),
        _ => now + period,
    }
}

/// The first whole number of `grid`s from `origin`, less half a millisecond, after
/// `after` (see [`next_tick`]).
fn on_grid(after: Instant, origin: Instant, grid: Duration) -> Instant {
    let half = Duration::from_micros(500);
    let since = (after + half).saturating_duration_since(origin);
    match u32::try_from(since.as_nanos() / grid.as_nanos() + 1) {
        Ok(steps) => origin + grid * steps - half,
        // Billions of periods on: unaligned.
        Err(_) => after + grid / 2,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_the_wheels_slots_and_a_periodic_timer_wakes_once() {
        assert_eq!(
            in_slots(Duration::from_millis(10)),
            Duration::from_millis(10)
        );
        assert_eq!(
            in_slots(Duration::from_millis(250)),
            Duration::from_millis(256)
        );
        assert_eq!(
            in_slots(Duration::from_secs(1)),
            Duration::from_millis(1024)
        );
        let mut rt = build().unwrap();
        let origin = ORIGIN.get().unwrap();
        let now = Instant::now();
        for ms in [0, 1, 63, 64, 250, 1000, 4097] {
            let at = now + Duration::from_millis(ms);
            let slot = on_grid(at, origin, SLOT);
            assert!(slot > at && slot <= at + SLOT, "{ms} ms");
            let tick = on_grid(at, origin, 4 * SLOT);
            let from_origin = (tick + Duration::from_micros(500) - origin).as_micros();
            assert_eq!(from_origin % (4 * SLOT).as_micros(), 0, "{ms} ms");
            let from_origin = (slot + Duration::from_micros(500) - origin).as_micros();
            assert_eq!(from_origin % SLOT.as_micros(), 0, "{ms} ms");
        }
        let short = Duration::from_millis(20);
        let late = next_tick(short).saturating_duration_since(Instant::now());
        assert!(late <= short, "a short period is not stretched");
        // Five ticks of a quarter second: five wake-ups of this thread, where the
        // same sleeps unaligned take about ten (a slot's start, then the deadline).
        let switches = || {
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap()
        };
        rt.block_on(async {
            let every = in_slots(Duration::from_millis(250));
            monoio::time::sleep_until(next_tick(every).into()).await;
            let (before, started) = (switches(), Instant::now());
            for _ in 0..5 {
                monoio::time::sleep_until(next_tick(every).into()).await;
            }
            let (woke, took) = (switches() - before, started.elapsed());
            assert!(woke <= 7, "{woke} wake-ups for 5 ticks");
            // A period apart, not more (at most a slot late each, as timers are).
            assert!(
                took >= every * 5 - SLOT && took < every * 5 + SLOT,
                "{took:?}"
            );
        });
    }
}
