//! [`ServerBuilder`]: settings, hooks and the per-core factories; `start` runs the
//! cores.

use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use super::core::{self, CoreRun};
use super::handle::ServerHandle;
use super::handover::{self, Offer};
use super::hooks::Hooks;
use super::shutdown::{CoreEnded, Shutdown};
use super::state::ControlFactory;
use super::{alloc, fds, memory, watchdog, Config};
use crate::control::{CoreControl, CoreInit};
use crate::governance::Governance;
use crate::rpc::{CallContext, Dispatch};

/// Builds and starts a server ([`ServerBuilder::start`]).
pub struct ServerBuilder {
    config: Config,
    hooks: Hooks,
    control: Option<Arc<ControlFactory>>,
    governance: Option<Governance>,
    catch_signals: bool,
}

impl ServerBuilder {
    /// A server for `app` with the defaults of [`Config::new`].
    pub fn new(app: impl Into<String>) -> Self {
        ServerBuilder {
            config: Config::new(app.into()),
            hooks: Hooks::default(),
            control: None,
            governance: None,
            catch_signals: false,
        }
    }

    /// Catches the signals [`ServerHandle::run_until_signal`] answers (SIGTERM,
    /// SIGINT, SIGQUIT, and those it ignores) from the start, before the cores
    /// listen: one that comes before that call waits for it, where it would
    /// otherwise have its default action (SIGTERM: the process ends without a
    /// drain). For a process that calls `run_until_signal`; one that does not
    /// would not stop on SIGTERM.
    pub fn catch_signals(mut self) -> Self {
        self.catch_signals = true;
        self
    }

    /// Address to listen on. Port 0 picks one free port, which every core serves
    /// ([`ServerHandle::local_addr`] names it).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config.listen = addr;
        self
    }

    /// Number of cores (at least 1).
    pub fn cores(mut self, n: usize) -> Self {
        self.config.cores = n.max(1);
        self
    }

    /// Largest request accepted and reply sent.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.config.max_message = bytes;
        self
    }

    /// Connection limit per core.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n.max(1);
        self
    }

    /// Idle timeout between requests.
    pub fn idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.config.idle_timeout = t;
        self
    }

    /// Time a started request has to arrive (above zero: checked at start).
    pub fn read_timeout(mut self, t: Duration) -> Self {
        self.config.read_timeout = t;
        self
    }

    /// Time a connection's replies may make no progress (its peer reads none of
    /// them) before the connection is closed (30 s by default; above zero: checked
    /// at start).
    pub fn write_timeout(mut self, t: Duration) -> Self {
        self.config.write_timeout = t;
        self
    }

    /// Per-call timeout.
    pub fn call_timeout(mut self, t: Option<Duration>) -> Self {
        self.config.call_timeout = t;
        self
    }

    /// Drain timeout.
    pub fn drain_timeout(mut self, t: Duration) -> Self {
        self.config.drain_timeout = t;
        self
    }

    /// Also serves clients that send non-strict binary (see
    /// [`Config::accept_non_strict_binary`]).
    pub fn accept_non_strict_binary(mut self, accept: bool) -> Self {
        self.config.accept_non_strict_binary = accept;
        self
    }

    /// The health-check method answered "shutting down" during a drain.
    pub fn health_method(mut self, name: impl Into<String>) -> Self {
        self.config.health_method = name.into();
        self
    }

    /// Limits on what peers may put in tracking fields.
    pub fn tracking_limits(mut self, limits: crate::tracking::Limits) -> Self {
        self.config.tracking_limits = limits;
        self
    }

    /// Memory the decoded containers of one request may take, and of all the calls
    /// in flight on one core. The per-core budgets (this, [`Self::max_buffered`]
    /// and [`Self::spare_buffers`]) are lowered, with a warning, when all cores'
    /// together would hold more than half the process's cgroup memory limit: at
    /// start, and within a second or two of the limit changing while it runs
    /// (raised again, they are back as set).
    pub fn max_decoded(mut self, per_request: usize, per_core: usize) -> Self {
        self.config.max_decoded = per_request;
        self.config.core_decoded = per_core;
        self
    }

    /// What one core's connections may buffer together of requests still arriving,
    /// beyond each connection's first 64 KiB; past it, one connection at a time
    /// goes on (so that partly arrived requests never wait on each other) and the
    /// others wait, within their read timeout, for requests to arrive whole. At
    /// least `max_message` less 64 KiB (checked at start). Fitted to the memory
    /// limit (see [`Self::max_decoded`]).
    pub fn max_buffered(mut self, per_core: usize) -> Self {
        self.config.core_buffered = per_core;
        self
    }

    /// Large buffers (over 64 KiB) one core keeps, up to `per_core` bytes together,
    /// after the large messages that grew them, for the next large request or reply
    /// on any of its connections to take whole: no pages faulted in afresh, no
    /// growing step by step. Those nobody takes for a second are let go. Default
    /// 64 MiB; 0 keeps none. Fitted to the memory limit (see [`Self::max_decoded`]).
    pub fn spare_buffers(mut self, per_core: usize) -> Self {
        self.config.spare_buffers = per_core;
        self
    }

    /// Takes over the port from the ringsoa server running on it (zero-downtime
    /// restart): that server hands over its listening sockets, which this one then
    /// accepts on too, so none closes when the old one drains. With no ringsoa server
    /// to ask, this one joins the port's SO_REUSEPORT group instead.
    pub fn handover(mut self, yes: bool) -> Self {
        self.config.handover = yes;
        self
    }

    /// Logs one line per call (`info`, target `ringsoa::access`: method, caller,
    /// request id, rpc id, core, outcome, microseconds). Off by default: a line per
    /// call costs far more than the call.
    pub fn access_log(mut self, yes: bool) -> Self {
        self.config.access_log = yes;
        self
    }

    /// Reports a core whose loop has not ticked for `threshold` (default 1 s).
    pub fn watchdog(mut self, threshold: Duration) -> Self {
        self.config.watchdog = Some(threshold);
        self
    }

    /// Called by the watchdog with the core, the method in flight and how long the
    /// core has been blocked (besides the warning it logs).
    pub fn on_stall(mut self, f: impl Fn(usize, &str, Duration) + Send + Sync + 'static) -> Self {
        self.hooks.on_stall = Some(Arc::new(f));
        self
    }

    /// Called on the core before each call is dispatched, with the method's name
    /// ([`UNKNOWN_METHOD`](crate::rpc::UNKNOWN_METHOD) for a name the service does
    /// not have).
    pub fn before_call(mut self, f: impl Fn(&CallContext, &str) + Send + Sync + 'static) -> Self {
        self.hooks.before_call = Some(Box::new(f));
        self
    }

    /// Called on the core after each call (not for the handshake), with the name
    /// as [`ServerBuilder::before_call`] has it.
    pub fn after_call(
        mut self,
        f: impl Fn(&CallContext, &str, Duration, bool) + Send + Sync + 'static,
    ) -> Self {
        self.hooks.after_call = Some(Box::new(f));
        self
    }

    /// Called on the core when it accepts a connection.
    pub fn on_connected(mut self, f: impl Fn(usize, SocketAddr) + Send + Sync + 'static) -> Self {
        self.hooks.on_connected = Some(Box::new(f));
        self
    }

    /// Called on the core when a connection ends.
    pub fn on_closed(mut self, f: impl Fn(usize, SocketAddr) + Send + Sync + 'static) -> Self {
        self.hooks.on_closed = Some(Box::new(f));
        self
    }

    /// Called on each core when the drain starts.
    pub fn on_drain_start(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.hooks.on_drain_start = Some(Box::new(f));
        self
    }

    /// Freed memory glibc's malloc keeps at the top of each thread's heap for the
    /// next large buffer (`M_TOP_PAD`, process-wide; default 16 MiB), so that
    /// large messages one after another reuse pages instead of faulting them in
    /// afresh; a core may hold that much after its last large message. `None`
    /// leaves glibc's own (128 KiB); `MALLOC_TOP_PAD_` in the environment wins.
    pub fn malloc_top_pad(mut self, bytes: Option<usize>) -> Self {
        self.config.malloc_top_pad = bytes;
        self
    }

    /// Builds each core's admission rules and outcome recorder, on that core.
    pub fn control<C: CoreControl + 'static>(
        mut self,
        f: impl Fn(&CoreInit) -> C + Send + Sync + 'static,
    ) -> Self {
        self.control = Some(Arc::new(move |init: &CoreInit| {
            Box::new(f(init)) as Box<dyn CoreControl>
        }));
        self
    }

    /// Runs with governance: each core's [`CoreInit::governance`] follows it; once
    /// the cores listen the process registers itself (after its health check), and
    /// a drain deregisters it first.
    pub fn governance(mut self, governance: Governance) -> Self {
        self.governance = Some(governance);
        self
    }

    /// Starts the cores; `factory` builds each core's service on that core from its
    /// [`CoreInit`]. Returns once every core listens. Fails if the port is taken by
    /// another process (unless [`handover`](Self::handover)), or if more than a
    /// third of the cores fail to start; with fewer failures it runs degraded and
    /// logs it.
    pub fn start<S, F>(mut self, factory: F) -> std::io::Result<ServerHandle>
    where
        S: Dispatch + 'static,
        F: Fn(&CoreInit) -> S + Send + Sync + 'static,
    {
        self.config.bound_waits();
        self.config
            .check()
            .map_err(|why| std::io::Error::new(std::io::ErrorKind::InvalidInput, why))?;
        let signals = match self.catch_signals {
            true => Some(super::handle::catch_signals()?),
            false => None,
        };
        crate::clock::calibrate();
        let mut inherited = Vec::new();
        if self.config.listen.port() == 0 {
            // Port 0: one free port for every core (each would otherwise get a port
            // of its own), taken by a first listener that core 0 accepts on.
            let first = core::bind(self.config.listen, self.config.backlog)?;
            self.config.listen = first.local_addr()?;
            inherited.push(first);
        } else if !self.config.handover {
            handover::refuse_a_live_listener(self.config.listen)?;
        }
        let offer = Offer::new(self.config.listen);
        if self.config.handover && inherited.is_empty() {
            inherited = offer.take();
            if inherited.is_empty() && !handover::migrates_queued_connections() {
                tracing::warn!("handover: net.ipv4.tcp_migrate_req is not 1, so connections queued on the old process's listener when it closes are reset (set it with `sysctl -w net.ipv4.tcp_migrate_req=1`)");
            }
        }
        self.config.max_connections = fds::fit_connections(&self.config);
        let memory = memory::fit_budgets(&mut self.config);
        let budgets = memory.live();
        if let Some(pad) = self.config.malloc_top_pad {
            alloc::keep_top_pad(pad);
        }
        let config = Arc::new(self.config);
        match crate::runtime::why_not_io_uring() {
            None => {
                tracing::info!(app = %config.app, cores = config.cores, listen = %config.listen, "starting on io_uring")
            }
            Some(why) => {
                tracing::warn!(app = %config.app, cores = config.cores, listen = %config.listen, "starting on the epoll driver, not io_uring ({why})")
            }
        }
        if cfg!(panic = "abort") {
            tracing::warn!("built with panic = \"abort\": a handler that panics ends the process (each call's panic is answered with an exception only where panics unwind)");
        }
        if let Some(g) = &self.governance {
            // Load before listen: config and switches first (bounded: ZooKeeper's
            // loss falls back to the disk cache after the boot wait).
            let o = g.options();
            if !g.wait_ready(o.boot_wait + o.connect_timeout + Duration::from_secs(1)) {
                tracing::warn!("governance state not loaded yet: starting without it");
            }
        }
        let shutdown = Arc::new(Shutdown::new(config.cores));
        let beats = Arc::new(watchdog::Beats::new(config.cores));
        if let Some(threshold) = config.watchdog {
            let (beats, sd, on_stall) =
                (beats.clone(), shutdown.clone(), self.hooks.on_stall.clone());
            std::thread::Builder::new()
                .name("ringsoa-watchdog".into())
                .spawn(move || watchdog::watch(beats, threshold, on_stall, || sd.stopped()))?;
        }
        let sd = shutdown.clone();
        std::thread::Builder::new()
            .name("ringsoa-memory".into())
            .spawn(move || memory.run(|| sd.stopped()))?;
        let hooks = Arc::new(self.hooks);
        let factory = Arc::new(factory);
        let cpus = core_affinity::get_core_ids().unwrap_or_default();
        if !cpus.is_empty() && config.cores > cpus.len() {
            tracing::warn!(
                "{} cores on {} CPUs: cores share CPUs (pinned in turn), and a busy one slows the others on its CPU",
                config.cores,
                cpus.len()
            );
        }
        // Every listener handed over is accepted on by some core: none may close.
        let mut listeners: Vec<Vec<_>> = (0..config.cores).map(|_| Vec::new()).collect();
        for (i, l) in inherited.into_iter().enumerate() {
            listeners[i % config.cores].push(l);
        }
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        for (index, listeners) in listeners.into_iter().enumerate() {
            let run = CoreRun {
                index,
                config: config.clone(),
                factory: factory.clone(),
                control: self.control.clone(),
                governance: self.governance.clone(),
                shutdown: shutdown.clone(),
                hooks: hooks.clone(),
                beats: beats.clone(),
                budgets: budgets.clone(),
                listeners,
                offer: offer.clone(),
                ready: tx.clone(),
            };
            let cpu = (!cpus.is_empty()).then(|| cpus[index % cpus.len()]);
            let t = std::thread::Builder::new()
                .name(format!("ringsoa-core-{index}"))
                .spawn(move || {
                    let _ended = CoreEnded::new(run.shutdown.clone(), index);
                    if let Some(cpu) = cpu {
                        core_affinity::set_for_current(cpu);
                    }
                    core::run(run)
                })?;
            threads.push(t);
        }
        drop(tx);
        // One report per core (a core that dies before reporting drops its sender).
        let reports: Vec<_> = rx.iter().take(config.cores).collect();
        let missing = config.cores - reports.len();
        let mut offered = Vec::new();
        let mut failures = Vec::new();
        for report in reports {
            match report {
                Ok(fds) => offered.extend(fds),
                Err(why) => failures.push(why),
            }
        }
        failures.extend((0..missing).map(|_| "a core thread exited before reporting".to_string()));
        let handle = ServerHandle::new(
            &config,
            shutdown,
            beats,
            threads,
            self.governance.clone(),
            offer.clone(),
            signals,
        );
        if failures.len() * 3 > config.cores {
            handle.abort();
            return Err(std::io::Error::other(format!(
                "too many cores failed to start: {}",
                failures.join("; ")
            )));
        }
        for f in &failures {
            tracing::error!("running degraded: {f}");
        }
        if let Some(g) = &self.governance {
            let (g, listen, cores) = (g.clone(), config.listen, config.cores - failures.len());
            g.register_server(listen, cores);
            offer.on_move(move |handed| {
                if handed {
                    g.handed_over()
                } else {
                    g.register_server(listen, cores)
                }
            });
        }
        offer.open(offered);
        Ok(handle)
    }
}
