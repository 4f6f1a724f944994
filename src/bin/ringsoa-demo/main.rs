//! `ringsoa-demo`: the demo service of `demo.thrift`, on ringsoa's server.
//!
//! `cargo run --release --bin ringsoa-demo -- --listen 127.0.0.1:9090`

/// The demo contract with `string` as `Text` (a view of the request buffer), so an
/// echoed string is copied once, into the reply.
mod idl {
    ringsoa::include_idl!("ringsoa_demo_text.rs");
}

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use idl::demo::*;
use ringsoa::client::{Client, ClientConfig};
use ringsoa::control::ClientControl;
use ringsoa::control::{Governed, ServiceName};
use ringsoa::governance::{Backend, Governance, GovernanceOptions, ZkTls};
use ringsoa::logs::Router;
use ringsoa::metrics::{CoreMetrics, Metrics, MetricsOptions};
use ringsoa::protocol::Text;
use ringsoa::rpc::{CallContext, CallError, MethodError};
use ringsoa::server::ServerBuilder;

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(version, about = "The ringsoa demo service (demo.thrift)")]
struct Args {
    /// Address every core listens on (HOST:PORT; a host name is resolved).
    #[arg(long, default_value = "127.0.0.1:9090", value_parser = ringsoa::addr::resolve)]
    listen: SocketAddr,
    /// Number of cores (default: all online cores).
    #[arg(long, value_parser = at_least_one::<usize>)]
    cores: Option<usize>,
    /// App id: used in logs and as the caller id of downstream calls.
    #[arg(long, default_value = "ringsoa-demo")]
    name: String,
    /// Time in-flight calls get after SIGTERM.
    #[arg(long, default_value_t = 10_000)]
    drain_timeout_ms: u64,
    /// Per-call timeout (0: none).
    #[arg(long, default_value_t = 0)]
    call_timeout_ms: u64,
    /// Time a started request has to arrive completely, however slowly its bytes
    /// trickle in (slow-client defence).
    #[arg(long, default_value_t = 30_000, value_parser = at_least_one::<u64>)]
    read_timeout_ms: u64,
    /// Time a connection's replies may make no progress (its client reads none of
    /// them) before it is closed.
    #[arg(long, default_value_t = 30_000, value_parser = at_least_one::<u64>)]
    write_timeout_ms: u64,
    /// Time a connection may sit idle between requests (0: no limit).
    #[arg(long, default_value_t = 0)]
    idle_timeout_ms: u64,
    /// Open connections per core; at the limit the longest-idle one is closed to
    /// admit a new one.
    #[arg(long, default_value_t = 10_000, value_parser = at_least_one::<usize>)]
    max_connections: usize,
    /// ZooKeeper connect string (host:port,host:port[/chroot]); without it, the state
    /// file (--state) or the embedded defaults provide config, switches and providers.
    #[arg(long, value_parser = ringsoa::governance::connect::check)]
    zk: Option<String>,
    /// This process's cluster in the registry.
    #[arg(long, default_value = "default")]
    cluster: String,
    /// ZooKeeper root prefix.
    #[arg(long, default_value = ringsoa::governance::layout::DEFAULT_ROOT, value_parser = ringsoa::governance::layout::check_root)]
    zk_root: String,
    /// ZooKeeper session timeout.
    #[arg(long, default_value_t = 6000)]
    zk_session_timeout_ms: u64,
    /// ZooKeeper credentials, SCHEME:AUTH (digest:user:password, or
    /// sasl:user:password for a SASL DIGEST-MD5 login); the nodes this
    /// process creates then give everything to the same credentials and reading to
    /// anyone.
    #[arg(long, env = "RINGSOA_ZK_AUTH", hide_env_values = true)]
    zk_auth: Option<ringsoa::governance::ZkAuth>,
    /// TLS to ZooKeeper: the CA (PEM) that signs its certificate; every host of
    /// --zk is then reached over TLS (its secureClientPort).
    #[arg(long, env = "RINGSOA_ZK_TLS_CA", value_name = "FILE")]
    zk_tls_ca: Option<std::path::PathBuf>,
    /// With --zk-tls-ca: this process's certificate (PEM), for a ZooKeeper that
    /// asks for one (ssl.clientAuth=need).
    #[arg(long, env = "RINGSOA_ZK_TLS_CERT", value_name = "FILE")]
    zk_tls_cert: Option<std::path::PathBuf>,
    /// With --zk-tls-cert: its private key (PEM).
    #[arg(long, env = "RINGSOA_ZK_TLS_KEY", value_name = "FILE")]
    zk_tls_key: Option<std::path::PathBuf>,
    /// A state file (TOML) with config, switches and static providers, watched for
    /// changes; used when --zk is not given.
    #[arg(long, conflicts_with = "zk")]
    state: Option<std::path::PathBuf>,
    /// Disk cache of governance state, read at start when ZooKeeper does not answer.
    #[arg(long)]
    cache_dir: Option<std::path::PathBuf>,
    /// Admin HTTP endpoint: HOST:PORT, or PORT for loopback.
    #[arg(long, value_parser = ringsoa::admin::parse_addr)]
    admin: Option<SocketAddr>,
    /// Admin connections open at most; past it a new one is closed at once.
    #[arg(long, default_value_t = 64, value_parser = at_least_one::<usize>)]
    admin_max_connections: usize,
    /// Time an admin connection has to send a request's headers, idle time
    /// before it included.
    #[arg(long, default_value_t = 10_000, value_parser = at_least_one::<u64>)]
    admin_header_timeout_ms: u64,
    /// Registered weight: a share of callers' calls (0: none while another node can
    /// take them).
    #[arg(long, default_value_t = 100)]
    weight: u32,
    /// Host registered for others to reach this process (default: the listen IP).
    #[arg(long, value_parser = ringsoa::governance::registrar::check_advertise)]
    advertise: Option<String>,
    /// Time consumers get to see the deregistration before the drain.
    #[arg(long, default_value_t = 1000)]
    deregister_grace_ms: u64,
    /// No governance thread at all (no registry, config or switches): for
    /// measuring what governance costs.
    #[arg(long, conflicts_with_all = ["zk", "state"])]
    no_governance: bool,
    /// One log line per call (target `ringsoa::access`).
    #[arg(long)]
    access_log: bool,
    /// Also serve clients that send non-strict binary (no protocol version in their
    /// message headers); replies stay strict.
    #[arg(long)]
    accept_non_strict_binary: bool,
    /// No call metrics or circuit breakers.
    #[arg(long)]
    no_metrics: bool,
    /// Send statsd lines (every second) to this UDP address.
    #[arg(long, value_parser = ringsoa::addr::resolve)]
    statsd: Option<SocketAddr>,
    /// Prefix of every statsd name (default: the app id).
    #[arg(long)]
    statsd_prefix: Option<String>,
    /// Take over the port from the server running on it (zero-downtime restart): its
    /// listening sockets are handed over; then SIGTERM the old process.
    #[arg(long)]
    handover: bool,
}

/// One core's handler.
struct Demo {
    app: String,
    /// `fire` calls received by this process (all cores).
    fired: Arc<AtomicI64>,
    /// Downstream clients for `relay_whoami`, by target, on this core.
    relays: RefCell<Relays>,
    /// This core's config, switches and providers (none with --no-governance).
    governance: Option<Rc<Governed>>,
    /// This core's recorder, for the relay clients' calls (none with --no-metrics).
    metrics: Option<CoreMetrics>,
}

/// The most recently used downstream clients of `relay_whoami`, at most
/// [`Relays::MAX`]; the least recently used is dropped to make room.
#[derive(Default)]
struct Relays {
    /// Most recently used last.
    clients: Vec<(Target, Rc<Client>)>,
}

impl Relays {
    const MAX: usize = 64;

    fn get(&mut self, target: &Target, make: impl FnOnce() -> Client) -> Rc<Client> {
        let entry = match self.clients.iter().position(|(t, _)| t == target) {
            Some(i) => self.clients.remove(i),
            None => {
                if self.clients.len() >= Self::MAX {
                    self.clients.remove(0);
                }
                (target.clone(), Rc::new(make()))
            }
        };
        let client = entry.1.clone();
        self.clients.push(entry);
        client
    }
}

/// Where `relay_whoami` calls.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// One address.
    Addr(SocketAddr),
    /// A service's live providers, from the registry.
    Service(ServiceName),
}

/// A relay target: `host:port` (an address), or `app/cluster` (discovery).
fn relay_target(target: &str) -> Result<Target, String> {
    if let Ok(addr) = target.parse::<SocketAddr>() {
        return Ok(Target::Addr(addr));
    }
    if target.contains('/') {
        if let Ok(s) = target.parse() {
            return Ok(Target::Service(s));
        }
    }
    Err(format!(
        "bad target {target:?}: expected host:port (e.g. 127.0.0.1:9090) or app/cluster"
    ))
}

/// A number that must be at least 1 (`--cores`, `--max-connections`,
/// `--read-timeout-ms`, `--admin-max-connections`).
fn at_least_one<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialEq + From<u8>,
    T::Err: std::fmt::Display,
{
    let n: T = text.parse().map_err(|e: T::Err| e.to_string())?;
    if n == T::from(0) {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

impl DemoHandler for Demo {
    async fn ping(&self, cx: &mut CallContext) -> Result<(), MethodError> {
        mark_core(cx);
        Ok(())
    }

    async fn echo(&self, cx: &mut CallContext, msg: Text) -> Result<Text, MethodError> {
        mark_core(cx);
        Ok(msg)
    }

    async fn roundtrip(&self, cx: &mut CallContext, item: Item) -> Result<Item, MethodError> {
        mark_core(cx);
        Ok(item)
    }

    async fn add(&self, cx: &mut CallContext, a: i32, b: i64) -> Result<i64, MethodError> {
        mark_core(cx);
        (a as i64)
            .checked_add(b)
            .ok_or_else(|| MethodError::internal(format!("{a} + {b} overflows i64")))
    }

    async fn fail(
        &self,
        cx: &mut CallContext,
        code: i32,
    ) -> Result<(), MethodError<DemoFailException>> {
        mark_core(cx);
        if code != 0 {
            return Err(DemoError {
                code: Some(code),
                message: Some(format!("fail {code}").into()),
            }
            .into());
        }
        Ok(())
    }

    async fn sleep_ms(&self, cx: &mut CallContext, ms: i32) -> Result<Text, MethodError> {
        mark_core(cx);
        if !(0..=MAX_SLEEP_MS).contains(&ms) {
            return Err(MethodError::internal(format!(
                "ms must be in 0..={MAX_SLEEP_MS}, got {ms}"
            )));
        }
        monoio::time::sleep(Duration::from_millis(ms as u64)).await;
        Ok(format!("slept {ms}").into())
    }

    async fn fire(&self, _cx: &mut CallContext, _note: Text) -> Result<(), MethodError> {
        self.fired.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn fired(&self, cx: &mut CallContext) -> Result<i64, MethodError> {
        mark_core(cx);
        Ok(self.fired.load(Ordering::Relaxed))
    }

    async fn whoami(&self, cx: &mut CallContext) -> Result<BTreeMap<Text, Text>, MethodError> {
        // Always, so that a header transport's reply (which carries response meta
        // whatever the tracking version) shows it too.
        cx.response_meta.insert("core".into(), cx.core.to_string());
        let mut out = BTreeMap::from([
            ("client".into(), (*cx.caller).into()),
            ("request_id".into(), cx.request_id.as_str().into()),
            ("seq".into(), cx.seq.as_str().into()),
            ("version".into(), cx.version.to_string().into()),
            ("core".into(), cx.core.to_string().into()),
        ]);
        for (k, v) in &cx.meta {
            out.insert(format!("meta.{k}").into(), v.as_str().into());
        }
        // Asked for with request meta: a config value or switch as this core sees it.
        if let Some(gov) = &self.governance {
            gov.with(|snap| {
                for (ask, prefix, values) in [
                    ("demo.config", "config", &snap.config),
                    ("demo.switch", "switch", &snap.switches),
                ] {
                    if let Some(key) = cx.meta.get(ask) {
                        let value = values.get(key).map_or("", String::as_str);
                        out.insert(format!("{prefix}.{key}").into(), value.into());
                    }
                }
            });
        }
        Ok(out)
    }

    async fn relay_whoami(
        &self,
        cx: &mut CallContext,
        target: Text,
    ) -> Result<BTreeMap<Text, Text>, MethodError> {
        mark_core(cx);
        let to = relay_target(&target).map_err(MethodError::internal)?;
        let gov = self.governance.as_ref();
        if gov.is_some_and(|g| !g.with(|s| s.switch_on("relay", true))) {
            return Err(MethodError::internal(
                "relay is switched off (switch \"relay\")",
            ));
        }
        let config = || {
            let mut c = ClientConfig::new(self.app.clone());
            c.control = self
                .metrics
                .clone()
                .map(|m| Rc::new(m) as Rc<dyn ClientControl>);
            if let Target::Addr(a) = &to {
                c.service = a.to_string();
            }
            c
        };
        let client = match (&to, gov) {
            (Target::Service(s), None) => {
                return Err(MethodError::internal(format!(
                    "{s} names a service: discovery needs the registry, and this demo runs with --no-governance"
                )))
            }
            (Target::Service(s), Some(gov)) => {
                let client = self.relays.borrow_mut().get(&to, || {
                    Client::discover(gov, s.clone(), config())
                });
                let loaded = gov.loaded(s, Duration::from_secs(3)).await;
                if !loaded || gov.with(|snap| snap.providers(s).is_none_or(<[_]>::is_empty)) {
                    return Err(MethodError::internal(format!("no live provider of {s}")));
                }
                client
            }
            (Target::Addr(addr), _) => self
                .relays
                .borrow_mut()
                .get(&to, || Client::new([*addr], config())),
        };
        let demo = DemoClient::new(client);
        demo.whoami(Some(cx))
            .await
            .map_err(|e: CallError| MethodError::internal(format!("relay to {target} failed: {e}")))
    }
}

/// Starts the governance thread on ZooKeeper, the state file, or the embedded
/// defaults.
fn start_governance(args: &Args) -> std::io::Result<Governance> {
    let backend = match (&args.zk, &args.state) {
        (Some(hosts), _) => Backend::ZooKeeper(hosts.clone()),
        (None, Some(path)) => Backend::File(path.clone()),
        (None, None) => Backend::Embedded(include_str!("state.toml").into()),
    };
    let mut o = GovernanceOptions::new(&args.name, &args.cluster, backend);
    o.root = args.zk_root.clone();
    o.cache_dir = args.cache_dir.clone();
    o.session_timeout = Duration::from_millis(args.zk_session_timeout_ms);
    o.zk_auth = Vec::from_iter(args.zk_auth.clone());
    o.zk_tls = ZkTls::from_flags(
        args.zk_tls_ca.as_deref(),
        args.zk_tls_cert.as_deref(),
        args.zk_tls_key.as_deref(),
    )
    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    o.deregister_grace = Duration::from_millis(args.deregister_grace_ms);
    o.weight = args.weight;
    o.advertise = args.advertise.clone();
    Governance::start(o)
}

/// The version-2 response header carries the serving core's index (only
/// connections at version 2 get a response header, so only they pay for it).
fn mark_core(cx: &mut CallContext) {
    if cx.version >= 2 {
        cx.response_meta.insert("core".into(), cx.core.to_string());
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringsoa-demo: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// `RUST_LOG`'s levels (default `info`). zookeeper-client's own lines count only
/// from `warn` unless `RUST_LOG` names it (it logs two INFO lines at every
/// reconnect, and governance logs a lost and a returned connection itself, once
/// per interval), and each of its lines at most once per 10 s (it warns at every
/// connect attempt, about once a second while an ensemble has lost its quorum).
fn log_filter<S>() -> impl tracing_subscriber::layer::Filter<S> {
    use tracing_subscriber::filter::FilterExt;
    let spec = std::env::var(tracing_subscriber::EnvFilter::DEFAULT_ENV).unwrap_or_default();
    let spec = if spec.trim().is_empty() {
        "info"
    } else {
        &spec
    };
    let spec = if spec.contains("zookeeper_client") {
        spec.to_string()
    } else {
        format!("{spec},zookeeper_client=warn")
    };
    let levels = tracing_subscriber::EnvFilter::try_new(spec)
        .unwrap_or_else(|_| "info,zookeeper_client=warn".into());
    levels.and(ringsoa::logs::Sparse::new("zookeeper_client"))
}

fn run() -> std::io::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let router = Router::default();
    // Written by a thread of its own: a stderr nobody reads never stops a core.
    let (stderr, _flushed_at_exit) = ringsoa::logs::non_blocking(std::io::stderr(), "stderr");
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(stderr)
                // Colour only on a terminal: no escape codes in redirected logs.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_filter(log_filter()),
        )
        // Routed copies of what is logged (config `log.routes`).
        .with(router.layer().with_filter(log_filter()))
        .init();
    let args = Args::parse();
    let governance = if args.no_governance {
        None
    } else {
        Some(start_governance(&args)?)
    };
    if let Some(g) = &governance {
        g.follow_log_routes(router)?;
    }
    let mut builder = ServerBuilder::new(args.name.clone())
        .catch_signals()
        .listen(args.listen)
        .drain_timeout(Duration::from_millis(args.drain_timeout_ms))
        .call_timeout(
            (args.call_timeout_ms > 0).then(|| Duration::from_millis(args.call_timeout_ms)),
        )
        .read_timeout(Duration::from_millis(args.read_timeout_ms))
        .write_timeout(Duration::from_millis(args.write_timeout_ms))
        .idle_timeout(
            (args.idle_timeout_ms > 0).then(|| Duration::from_millis(args.idle_timeout_ms)),
        )
        .max_connections(args.max_connections)
        .handover(args.handover)
        .access_log(args.access_log)
        .accept_non_strict_binary(args.accept_non_strict_binary);
    if let Some(g) = &governance {
        builder = builder.governance(g.clone());
    }
    let metrics = if args.no_metrics {
        None
    } else {
        let mut o = MetricsOptions::new(&args.name);
        o.governance = governance.clone();
        o.knows_method = Some(DemoServer::<Demo>::knows_method);
        o.statsd = args.statsd.map(|to| {
            (
                to,
                args.statsd_prefix
                    .clone()
                    .unwrap_or_else(|| args.name.clone()),
            )
        });
        Some(Metrics::start(o)?)
    };
    if let Some(m) = metrics.clone() {
        builder = builder.control(move |init| m.core(init));
    }
    if let Some(n) = args.cores {
        builder = builder.cores(n);
    }
    // Bound before the cores start: a taken admin port stops the process before
    // it serves or registers.
    let limits = ringsoa::admin::AdminLimits {
        max_connections: args.admin_max_connections,
        header_timeout: Duration::from_millis(args.admin_header_timeout_ms),
    };
    let admin = args
        .admin
        .map(|a| ringsoa::admin::AdminListener::bind(a).and_then(|l| l.limits(limits)))
        .transpose()?;
    let fired = Arc::new(AtomicI64::new(0));
    let app = args.name.clone();
    let core_metrics = metrics.clone();
    let server = builder.start(move |core| {
        DemoServer::new(Demo {
            app: app.clone(),
            fired: fired.clone(),
            relays: RefCell::default(),
            governance: core.governance.clone(),
            metrics: core_metrics.as_ref().map(|m| m.core(core)),
        })
    })?;
    tracing::info!(listen = %server.local_addr(), "ringsoa-demo serving");
    if let Some(admin) = admin {
        admin.serve(ringsoa::admin::AdminState {
            governance,
            metrics,
            health: server.health(),
        })?;
    }
    server.run_until_signal()?;
    tracing::info!("ringsoa-demo stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_keep_the_most_recently_used_clients_only() {
        let mut relays = Relays::default();
        let addr = |port: u16| Target::Addr(SocketAddr::from(([127, 0, 0, 1], port)));
        let make = || Client::new(Vec::<SocketAddr>::new(), ClientConfig::new("t"));
        let first = relays.get(&addr(1), make);
        for port in 2..=5000 {
            relays.get(&addr(port), make);
            if port == 3000 {
                // Using a client keeps it.
                assert!(Rc::ptr_eq(
                    &relays.get(&addr(4990), make),
                    &relays.get(&addr(4990), make)
                ));
            }
        }
        assert_eq!(relays.clients.len(), Relays::MAX);
        assert!(relays
            .clients
            .iter()
            .all(|(t, _)| matches!(t, Target::Addr(a) if a.port() > 5000 - 64)));
        assert!(
            !Rc::ptr_eq(&relays.get(&addr(1), make), &first),
            "evicted, then made anew"
        );
    }

    #[test]
    fn relay_targets_are_addresses_or_service_names() {
        assert!(relay_target("127.0.0.1:9090").is_ok());
        assert_eq!(
            relay_target("demo/main"),
            Ok(Target::Service("demo/main".parse().unwrap()))
        );
        for bad in ["", "nonsense", "a/b/c", "/x", "host:notaport", "x y/z"] {
            assert!(
                relay_target(bad).unwrap_err().contains("bad target"),
                "{bad}"
            );
        }
    }
}
