//! Governance: the registry, config and switches of a process, kept by one thread
//! with one ZooKeeper session (or a local state file), and pushed to every core as
//! immutable snapshots.
//!
//! - [`layout`]: where things live in ZooKeeper.
//! - `mirror`: the followed folders and the snapshot they make; `ignored`: the
//!   nodes it leaves out, logged a few lines at a time; `cache`: the disk cache;
//!   [`state_file`]: the TOML file used without ZooKeeper.
//! - [`connect`]: the ZooKeeper connect string, checked before use.
//! - `keeper`: what both backends share — the mirror, publishing to the cores, the
//!   wanted registration; `zk`: the ZooKeeper session loop; `file`: the state-file
//!   loop; [`registrar`]: the registration and its health check.
//! - `log_routes`: config `log.routes` applied as it changes
//!   ([`Governance::follow_log_routes`]).
//!
//! The thread never touches a core's state and a core never waits on it: cores take
//! the newest snapshot from a mailbox on their own tick ([`crate::control::Governed`]).

mod auth;
mod cache;
pub mod connect;
mod file;
mod ignored;
mod keeper;
pub mod layout;
mod log_routes;
mod mirror;
mod reach;
pub mod registrar;
mod resolver;
pub mod state_file;
pub mod store;
mod tls;
mod zk;

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

pub use auth::ZkAuth;
pub use registrar::Registration;
pub use resolver::look_up_all;
pub use tls::ZkTls;

use crate::control::latest::{self, Publisher};
use crate::control::{Governed, Request, ServiceName, Snapshot};

/// Where governance state comes from.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A ZooKeeper ensemble: its connect string (`host:port,host:port`).
    ZooKeeper(String),
    /// A state file, watched for changes ([`state_file`]); it must read and parse
    /// at start.
    File(PathBuf),
    /// State-file text that never changes (a binary's embedded defaults).
    Embedded(String),
}

/// How the governance thread runs.
#[derive(Debug, Clone)]
pub struct GovernanceOptions {
    /// This process's app.
    pub app: String,
    /// This process's cluster.
    pub cluster: String,
    /// Where state comes from.
    pub backend: Backend,
    /// ZooKeeper root prefix.
    pub root: String,
    /// Disk cache folder (none: no cache).
    pub cache_dir: Option<PathBuf>,
    /// ZooKeeper session timeout.
    pub session_timeout: Duration,
    /// Credentials sent to ZooKeeper (`"digest:user:password".parse()`, or
    /// `"sasl:user:password"` for a SASL DIGEST-MD5 login; none by default). With
    /// any, what this process creates under an app (the app's folders, its
    /// registration) gives everything to the same credentials and reading to
    /// anyone, and the shared folders (a chroot, `<root>/apps`) let anyone add
    /// too; without, everything it creates is open to all.
    pub zk_auth: Vec<ZkAuth>,
    /// TLS to ZooKeeper's secure client port ([`ZkTls::from_files`]; none by
    /// default: plain TCP). With it, every host of the connect string is reached
    /// over TLS.
    pub zk_tls: Option<ZkTls>,
    /// A connect (TCP and session handshake) that takes longer is abandoned.
    pub connect_timeout: Duration,
    /// How long a start waits for ZooKeeper before serving from the disk cache.
    pub boot_wait: Duration,
    /// How long consumers get to see a deregistration before the drain starts.
    pub deregister_grace: Duration,
    /// The registered weight.
    pub weight: u32,
    /// The registered version string.
    pub version: String,
    /// The host others reach this process at (default: the listen IP, or this
    /// host's outward IP when listening on all addresses); checked at start by
    /// [`registrar::check_advertise`].
    pub advertise: Option<String>,
}

impl GovernanceOptions {
    /// Cuts every wait longer than a year to a year (see
    /// [`crate::deadline::MAX_WAIT`]), and the session timeout to what ZooKeeper's
    /// protocol holds (`i32::MAX` ms; a longer one wrapped, and the server gave the
    /// shortest session it allows). ZooKeeper cuts it further to its own
    /// `maxSessionTimeout` (40 s by default).
    fn bound_waits(&mut self) {
        let most = Duration::from_millis(i32::MAX as u64);
        if self.session_timeout > most {
            tracing::warn!(
                "session_timeout of {:?} cut to {most:?}: ZooKeeper takes no more",
                self.session_timeout
            );
            self.session_timeout = most;
        }
        crate::deadline::bound([
            ("connect_timeout", Some(&mut self.connect_timeout)),
            ("boot_wait", Some(&mut self.boot_wait)),
            ("deregister_grace", Some(&mut self.deregister_grace)),
        ]);
    }

    /// Defaults for `app`/`cluster` on `backend`.
    pub fn new(app: &str, cluster: &str, backend: Backend) -> Self {
        GovernanceOptions {
            app: app.into(),
            cluster: cluster.into(),
            backend,
            root: layout::DEFAULT_ROOT.into(),
            cache_dir: None,
            session_timeout: Duration::from_secs(6),
            zk_auth: Vec::new(),
            zk_tls: None,
            connect_timeout: Duration::from_secs(3),
            boot_wait: Duration::from_secs(3),
            deregister_grace: Duration::from_millis(1000),
            weight: crate::client::node::DEFAULT_WEIGHT,
            version: env!("CARGO_PKG_VERSION").into(),
            advertise: None,
        }
    }
}

/// The governance thread's state as the admin endpoint reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Connected to ZooKeeper now (always false for a file backend).
    pub connected: bool,
    /// The ZooKeeper session id, when there is one.
    pub session: Option<i64>,
    /// The registered node's path, when registered.
    pub registered: Option<String>,
    /// Why ZooKeeper cannot be reached, or why the wanted registration is not
    /// there (a failed health check, ZooKeeper's refusal), as the last attempt
    /// found; none once it succeeds.
    pub error: Option<String>,
}

/// What the governance thread is asked.
enum Command {
    Watch(ServiceName),
    Register(Registration),
    /// Delete the registration; the sender is told whether there was one. After a
    /// handover, first wait up to `successor` for the new process (on the same
    /// address) to register: then its node stays and nothing is deleted.
    Deregister {
        ack: mpsc::Sender<bool>,
        successor: Option<Duration>,
    },
    /// This process handed its sockets to another, which registers the address: a
    /// node of another session there is left alone until this one registers again.
    Yield,
}

/// What the thread shares with the rest of the process.
struct Shared {
    latest: Mutex<Arc<Snapshot>>,
    cores: Mutex<Vec<Publisher<Arc<Snapshot>>>>,
    /// Told of each new snapshot: the control threads that follow them.
    watchers: Mutex<Vec<crossbeam_channel::Sender<()>>>,
    status: Mutex<Status>,
    /// Set once the first snapshot is published.
    ready: (Mutex<bool>, Condvar),
    options: GovernanceOptions,
}

/// A running governance thread (cheap to clone; `Send` and `Sync`).
#[derive(Clone)]
pub struct Governance {
    shared: Arc<Shared>,
    commands: UnboundedSender<Command>,
}

impl Governance {
    /// Starts the governance thread. Returns at once; the first snapshot follows
    /// when the backend is read (or the disk cache, when ZooKeeper does not answer
    /// within the boot wait).
    pub fn start(mut options: GovernanceOptions) -> std::io::Result<Governance> {
        if let Some(host) = &options.advertise {
            let host = registrar::check_advertise(host)
                .map_err(|e| std::io::Error::other(format!("advertise {host:?}: {e}")))?;
            options.advertise = Some(host);
        }
        let layout = layout::Layout::new(&options.root).map_err(std::io::Error::other)?;
        ServiceName::new(&options.app, &options.cluster).map_err(std::io::Error::other)?;
        options.bound_waits();
        // A state file that cannot be used at start is refused here, as a typo in
        // its path would otherwise leave the process serving with nothing. Later
        // edits that fail are logged and the previous values stand.
        match &options.backend {
            Backend::File(path) => {
                state_file::load(path, &layout).map_err(std::io::Error::other)?;
            }
            Backend::Embedded(text) => {
                state_file::parse(text, &layout)
                    .map_err(|e| std::io::Error::other(format!("embedded state: {e}")))?;
            }
            Backend::ZooKeeper(hosts) => {
                connect::check(hosts).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("ZooKeeper connect string {hosts:?}: {e}"),
                    )
                })?;
                tls::require(hosts, options.zk_tls.as_ref())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            }
        }
        let shared = Arc::new(Shared {
            latest: Mutex::new(Arc::new(Snapshot::empty(&options.app, &options.cluster))),
            cores: Mutex::default(),
            watchers: Mutex::default(),
            status: Mutex::default(),
            ready: Default::default(),
            options,
        });
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let s = shared.clone();
        crate::runtime::spawn_control_thread("ringsoa-governance", move || async move {
            let keeper = keeper::Keeper::new(s.clone(), layout);
            match s.options.backend.clone() {
                Backend::ZooKeeper(hosts) => zk::run(keeper, hosts, rx).await,
                Backend::File(path) => file::run(keeper, Some(path), rx).await,
                Backend::Embedded(text) => file::run_embedded(keeper, text, rx).await,
            }
        })?;
        Ok(Governance {
            shared,
            commands: tx,
        })
    }

    /// The options it runs with.
    pub fn options(&self) -> &GovernanceOptions {
        &self.shared.options
    }

    /// The latest snapshot (for control threads; cores use [`Governance::core`]).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.latest.lock().expect("not poisoned").clone()
    }

    /// A message after each new snapshot (those published since the last receive
    /// make one), for a control thread that waits for them; disconnected once the
    /// governance thread has ended and every handle is dropped.
    pub fn changes(&self) -> crossbeam_channel::Receiver<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.shared.watchers.lock().expect("not poisoned").push(tx);
        rx
    }

    /// Waits until the first snapshot is published (from the backend, or from the
    /// disk cache once ZooKeeper failed to answer within the boot wait), at most
    /// `timeout`; whether it was.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let (lock, cv) = &self.shared.ready;
        let guard = lock.lock().expect("not poisoned");
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |ready| !*ready)
            .expect("not poisoned");
        *guard
    }

    /// The thread's connection and registration state.
    pub fn status(&self) -> Status {
        self.shared.status.lock().expect("not poisoned").clone()
    }

    /// A view for the current core (or any one thread): its own `Arc` of each new
    /// snapshot. Call [`Governed::follow`] on a monoio runtime to keep it current.
    pub fn core(&self) -> Governed {
        let (tx, rx) = latest::mailbox();
        let mut cores = self.shared.cores.lock().expect("not poisoned");
        let initial = Arc::new((*self.snapshot()).clone());
        cores.push(tx);
        drop(cores);
        let commands = self.commands.clone();
        Governed::new(
            initial,
            rx,
            Arc::new(move |r| match r {
                Request::Watch(s) => {
                    let _ = commands.send(Command::Watch(s));
                }
            }),
        )
    }

    /// [`Governance::core`], following on the current monoio runtime.
    ///
    /// # Panics
    /// When called outside a runtime (not inside `Runtime::block_on`, a server
    /// core's factory or a `SharedClient::spawn` closure), with monoio's message
    /// "cannot access a scoped thread local variable without calling `set` first".
    pub fn follow_here(&self) -> Rc<Governed> {
        let g = Rc::new(self.core());
        g.follow();
        g
    }

    /// Loads and follows `service`'s providers.
    pub fn watch(&self, service: ServiceName) {
        let _ = self.commands.send(Command::Watch(service));
    }

    /// Registers this process as a provider of its app/cluster listening on
    /// `listen` with `cores` cores (see [`Governance::register`]).
    pub fn register_server(&self, listen: std::net::SocketAddr, cores: usize) {
        let o = self.options();
        let service = ServiceName::new(&o.app, &o.cluster).expect("checked at start");
        self.register(Registration::new(
            service,
            listen,
            cores,
            o.weight,
            &o.version,
            o.advertise.as_deref(),
        ));
    }

    /// Registers a provider once its health check passes (retried until it does),
    /// and keeps it registered across reconnects and session expiry.
    pub fn register(&self, registration: Registration) {
        let _ = self.commands.send(Command::Register(registration));
    }

    /// Tells the thread that this process handed its listening sockets to another
    /// process, which registers the address (its node replacing this one's): from
    /// then on a reconnect does not take the node back, until [`Self::register`] or
    /// [`Self::register_server`] asks again (the sockets came back).
    pub fn handed_over(&self) {
        let _ = self.commands.send(Command::Yield);
    }

    /// Deletes the registration (waiting at most `timeout` for ZooKeeper), then
    /// gives consumers the deregister grace to see it. Blocks.
    pub fn deregister(&self, timeout: Duration) {
        self.leave(timeout, None);
    }

    /// Leaves the address to another process serving it (the new one after a
    /// handover, or the old one after a rollback): waits up to `successor` for it to
    /// register (its node replacing this one's) and leaves that node in place; if it
    /// does not register in time, deregisters as usual.
    /// Blocks.
    pub fn hand_over(&self, successor: Duration, timeout: Duration) {
        self.leave(timeout + successor, Some(successor));
    }

    fn leave(&self, timeout: Duration, successor: Option<Duration>) {
        let (ack, rx) = mpsc::channel();
        if self
            .commands
            .send(Command::Deregister { ack, successor })
            .is_err()
        {
            return;
        }
        match rx.recv_timeout(timeout) {
            Ok(true) => std::thread::sleep(self.shared.options.deregister_grace),
            Err(mpsc::RecvTimeoutError::Timeout) => tracing::warn!(
                ?timeout,
                session_timeout = ?self.shared.options.session_timeout,
                "ZooKeeper did not confirm the deregistration in time (connection lost?): \
                 the provider node goes when ZooKeeper ends this session, at most the \
                 session timeout after it last heard from this process, and consumers \
                 may call this address until then"
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_too_long_for_zookeeper_or_a_timer_are_cut() {
        let mut o = GovernanceOptions::new("a", "c", Backend::ZooKeeper("h:1".into()));
        o.session_timeout = Duration::from_millis(u64::MAX);
        o.deregister_grace = Duration::MAX;
        o.bound_waits();
        assert_eq!(o.session_timeout, Duration::from_millis(i32::MAX as u64));
        assert_eq!(o.deregister_grace, crate::deadline::MAX_WAIT);
        // Sensible values are left alone.
        let mut o = GovernanceOptions::new("a", "c", Backend::ZooKeeper("h:1".into()));
        o.bound_waits();
        assert_eq!(o.session_timeout, Duration::from_secs(6));
        assert_eq!(o.deregister_grace, Duration::from_secs(1));
    }
}
