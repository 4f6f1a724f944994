//! [`ServerHandle`]: a running server — its address, the drain, waiting for exit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use signal_hook::iterator::Signals;

use super::handover::Offer;
use super::shutdown::Shutdown;
use super::watchdog::Beats;
use super::Config;
use crate::governance::Governance;

/// How long a drain waits for ZooKeeper to delete the registration.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a drain that leaves the address to another process (the new one after
/// a handover, or the old one after a rollback) waits for it to register.
const SUCCESSOR_WAIT: Duration = Duration::from_secs(5);

/// How long after the drain's deadline [`ServerHandle::join`] waits for a core
/// whose thread a handler blocks (a core ends within milliseconds of it otherwise).
const BLOCKED_GRACE: Duration = Duration::from_secs(2);

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    drain_timeout: Duration,
    threads: Vec<JoinHandle<()>>,
    drain: Drain,
    beats: Arc<Beats>,
    /// The watchdog's threshold (none: no heartbeats).
    watchdog: Option<Duration>,
    /// The signals caught since before the cores listened
    /// ([`ServerBuilder::catch_signals`](super::ServerBuilder::catch_signals)).
    signals: Option<Signals>,
}

/// What starting the drain takes, shared with the signal thread.
#[derive(Clone)]
struct Drain {
    shutdown: Arc<Shutdown>,
    governance: Option<Governance>,
    offer: Arc<Offer>,
}

impl Drain {
    /// Starts the drain with `timeout`: the registration is deleted first (the first
    /// time; after a handover it is left to the new process once that registers, and
    /// a new process stopping before the old one drained gives it back to the old
    /// one), and the listening sockets are no longer offered to a successor.
    fn begin(&self, timeout: Duration) {
        if let (Some(g), false) = (&self.governance, self.shutdown.draining()) {
            // After a handover, or in a rollback (the process this one took over
            // from still serves the address and registers it again at once).
            let other = if self.offer.handed() {
                Some("leaving the registration to the process this one handed over to")
            } else if self.offer.give_back() {
                Some("giving the address back to the process this one took over from")
            } else {
                None
            };
            if let Some(what) = other {
                tracing::info!("{what}");
                g.hand_over(SUCCESSOR_WAIT, DEREGISTER_TIMEOUT);
            } else {
                tracing::info!("deregistering before the drain");
                g.deregister(DEREGISTER_TIMEOUT);
            }
        }
        self.offer.withdraw();
        self.shutdown.begin(timeout);
    }
}

impl ServerHandle {
    pub(crate) fn new(
        config: &Config,
        shutdown: Arc<Shutdown>,
        beats: Arc<Beats>,
        threads: Vec<JoinHandle<()>>,
        governance: Option<Governance>,
        offer: Arc<Offer>,
        signals: Option<Signals>,
    ) -> Self {
        ServerHandle {
            addr: config.listen,
            drain_timeout: config.drain_timeout,
            threads,
            drain: Drain {
                shutdown,
                governance,
                offer,
            },
            beats,
            watchdog: config.watchdog,
            signals,
        }
    }

    /// The address the cores listen on (with the port picked, when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the server serves now, for health checks on other threads: `Ok`
    /// until the drain starts, except while a core's event loop has not ticked for
    /// the watchdog's threshold (a handler blocking its thread: the connections the
    /// kernel gives that core's listener wait); else why not, in one line.
    pub fn health(&self) -> Arc<dyn Fn() -> Result<(), String> + Send + Sync> {
        let (shutdown, beats, watchdog) = (
            self.drain.shutdown.clone(),
            self.beats.clone(),
            self.watchdog,
        );
        Arc::new(move || {
            if shutdown.draining() {
                return Err("draining".into());
            }
            match watchdog.and_then(|threshold| beats.blocked(threshold)) {
                Some(why) => Err(why),
                None => Ok(()),
            }
        })
    }

    /// Starts the drain with the configured timeout. With governance, the
    /// registration is deleted first and consumers get the deregister grace to see
    /// it (this blocks for that long); otherwise it returns at once.
    pub fn shutdown(&self) {
        self.drain.begin(self.drain_timeout);
    }

    /// Stops at once and waits for the cores (a failed start).
    pub(crate) fn abort(self) {
        self.drain.offer.withdraw();
        self.drain.shutdown.begin(Duration::ZERO);
        let _ = self.join();
    }

    /// Waits for every core to finish; returns the cores left running. Once the
    /// drain has begun it waits at most 2 s past the drain's deadline: a core whose
    /// thread a handler still blocks then (an endless loop, a lock never released)
    /// is logged at ERROR with the method in flight and left to end with the
    /// process, which would otherwise never exit.
    pub fn join(self) -> Vec<usize> {
        let blocked = self.drain.shutdown.wait_cores(BLOCKED_GRACE);
        for &core in &blocked {
            let method = self.beats.core(core).method().unwrap_or_default();
            tracing::error!(core, method = method.as_str(), "core still blocked {BLOCKED_GRACE:?} after the drain timeout: its thread is left to end with the process");
        }
        for (core, t) in self.threads.into_iter().enumerate() {
            if !blocked.contains(&core) {
                let _ = t.join();
            }
        }
        self.drain.shutdown.stop();
        blocked
    }

    /// Serves until SIGTERM (drain with the configured timeout) or SIGINT or
    /// SIGQUIT (drain with at most 1 s: gunicorn's quick stop), then waits for the
    /// drain to finish. The other signals gunicorn gives a meaning (HUP reload,
    /// USR1 reopen logs, USR2 upgrade, TTIN and TTOU more or fewer workers) would
    /// end or freeze the process on the spot, with its registry node left behind:
    /// they change nothing, and HUP, USR1 and USR2 are logged saying what to do
    /// instead. Config is followed live, and a restart is a new process taking over with
    /// [`ServerBuilder::handover`](super::ServerBuilder::handover).
    /// An error when a core was left blocked (see [`ServerHandle::join`]).
    /// The signals are caught from this call on, or from before the cores listened
    /// with [`ServerBuilder::catch_signals`](super::ServerBuilder::catch_signals)
    /// (without it, a SIGTERM between the two ends the process without a drain).
    pub fn run_until_signal(mut self) -> std::io::Result<()> {
        let mut signals = match self.signals.take() {
            Some(caught) => caught,
            None => catch_signals()?,
        };
        let ignored = ignored_signals();
        let (drain, timeout) = (self.drain.clone(), self.drain_timeout);
        std::thread::Builder::new()
            .name("ringsoa-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if let Some(&(_, name, why, handover)) = ignored.iter().find(|i| i.0 == sig) {
                        let instead = match handover {
                            true => "; to restart, start the new process with handover (ServerBuilder::handover, or ringsoa-demo --handover) and SIGTERM this one",
                            false => "",
                        };
                        tracing::warn!("{name} ignored: {why}{instead}");
                        continue;
                    }
                    let timeout = if sig == signal_hook::consts::SIGTERM {
                        timeout
                    } else {
                        timeout.min(Duration::from_secs(1))
                    };
                    let name = STOPS.iter().find(|s| s.0 == sig).map_or("?", |s| s.1);
                    tracing::info!(signal = name, ?timeout, "draining");
                    drain.begin(timeout);
                }
            })?;
        let blocked = self.join();
        if blocked.is_empty() {
            return Ok(());
        }
        let cores: Vec<String> = blocked.iter().map(usize::to_string).collect();
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the drain ended with {} {} still blocked by a handler (its method is logged above)",
                if cores.len() == 1 { "core" } else { "cores" },
                cores.join(", ")
            ),
        ))
    }
}

/// The signals that drain, and their names.
const STOPS: [(i32, &str); 3] = [
    (signal_hook::consts::SIGTERM, "SIGTERM"),
    (signal_hook::consts::SIGINT, "SIGINT"),
    (signal_hook::consts::SIGQUIT, "SIGQUIT"),
];

/// Catches the signals [`ServerHandle::run_until_signal`] answers, from now on (those
/// that come before it runs wait for it), and ignores the job-control ones.
pub(crate) fn catch_signals() -> std::io::Result<Signals> {
    let ignored = ignored_signals();
    let all = STOPS.iter().map(|s| s.0).chain(ignored.iter().map(|i| i.0));
    let signals = Signals::new(all)?;
    ignore_job_control();
    Ok(signals)
}

/// The signals gunicorn gives a meaning that ringsoa does not share, caught and
/// logged: each number, name, why it changes nothing, and whether a handover is
/// what to do instead.
fn ignored_signals() -> [(i32, &'static str, &'static str, bool); 3] {
    use signal_hook::consts::{SIGHUP, SIGUSR1, SIGUSR2};
    [
        (
            SIGHUP,
            "SIGHUP",
            "config, switches and the state file are followed live",
            true,
        ),
        (
            SIGUSR1,
            "SIGUSR1",
            "logs go to stderr, with no file to reopen: rotate them where stderr is collected",
            false,
        ),
        (
            SIGUSR2,
            "SIGUSR2",
            "a new binary takes over by handover",
            true,
        ),
    ]
}

/// Ignores SIGTTIN and SIGTTOU (gunicorn's "one worker more or less"), which by
/// default stop the process. They are not caught and logged: a background
/// process writing to its terminal is sent SIGTTOU at each write while it is
/// caught, for ever, where an ignored one lets the write through.
fn ignore_job_control() {
    for sig in [libc::SIGTTIN, libc::SIGTTOU] {
        // SAFETY: setting a signal's disposition to SIG_IGN runs no code in the
        // handler's context.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
}
