//! `ringsoa-demo`: the demo service of `demo.thrift`, on ringsoa's server.
//!
//! `cargo run --release --bin ringsoa-demo -- --listen 127.0.0.1:9090`

mod idl {
    ringsoa::include_idl!();
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
use ringsoa::rpc::{CallContext, CallError, MethodError};
use ringsoa::server::ServerBuilder;

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(version, about = "The ringsoa demo service (demo.thrift)")]
struct Args {
    /// Address every core listens on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Number of cores (default: all online cores).
    #[arg(long)]
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
    #[arg(long, default_value_t = 30_000)]
    read_timeout_ms: u64,
    /// Time a connection may sit idle between requests (0: no limit).
    #[arg(long, default_value_t = 0)]
    idle_timeout_ms: u64,
    /// Open connections per core; at the limit the longest-idle one is closed to
    /// admit a new one.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// ZooKeeper hosts (accepted; wired by the governance work).
    #[arg(long)]
    zk: Option<String>,
    /// Cluster name in the registry (accepted; wired by the governance work).
    #[arg(long)]
    cluster: Option<String>,
    /// Start even if another process listens on the port (zero-downtime restart).
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
}

/// The most recently used downstream clients of `relay_whoami`, at most
/// [`Relays::MAX`]; the least recently used is dropped to make room.
#[derive(Default)]
struct Relays {
    /// Most recently used last.
    clients: Vec<(SocketAddr, Rc<Client>)>,
}

impl Relays {
    const MAX: usize = 64;

    fn get(&mut self, addr: SocketAddr, make: impl FnOnce() -> Client) -> Rc<Client> {
        let entry = match self.clients.iter().position(|(a, _)| *a == addr) {
            Some(i) => self.clients.remove(i),
            None => {
                if self.clients.len() >= Self::MAX {
                    self.clients.remove(0);
                }
                (addr, Rc::new(make()))
            }
        };
        let client = entry.1.clone();
        self.clients.push(entry);
        client
    }
}

/// A relay target: `host:port` (an address), or `app/cluster` (discovery, which
/// needs the registry).
fn relay_target(target: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = target.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let is_name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match target.split_once('/') {
        Some((app, cluster)) if is_name(app) && is_name(cluster) => Err(format!(
            "target {target:?} names a service (app/cluster): discovery needs the registry, which this demo is not connected to"
        )),
        _ => Err(format!(
            "bad target {target:?}: expected host:port (e.g. 127.0.0.1:9090) or app/cluster"
        )),
    }
}

impl DemoHandler for Demo {
    async fn ping(&self, cx: &mut CallContext) -> Result<(), MethodError> {
        mark_core(cx);
        Ok(())
    }

    async fn echo(&self, cx: &mut CallContext, msg: String) -> Result<String, MethodError> {
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
                message: Some(format!("fail {code}")),
            }
            .into());
        }
        Ok(())
    }

    async fn sleep_ms(&self, cx: &mut CallContext, ms: i32) -> Result<String, MethodError> {
        mark_core(cx);
        if !(0..=MAX_SLEEP_MS).contains(&ms) {
            return Err(MethodError::internal(format!(
                "ms must be in 0..={MAX_SLEEP_MS}, got {ms}"
            )));
        }
        monoio::time::sleep(Duration::from_millis(ms as u64)).await;
        Ok(format!("slept {ms}"))
    }

    async fn fire(&self, _cx: &mut CallContext, _note: String) -> Result<(), MethodError> {
        self.fired.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn fired(&self, cx: &mut CallContext) -> Result<i64, MethodError> {
        mark_core(cx);
        Ok(self.fired.load(Ordering::Relaxed))
    }

    async fn whoami(&self, cx: &mut CallContext) -> Result<BTreeMap<String, String>, MethodError> {
        mark_core(cx);
        let mut out = BTreeMap::from([
            ("client".to_string(), cx.caller.to_string()),
            ("request_id".to_string(), cx.request_id.clone()),
            ("seq".to_string(), cx.seq.clone()),
            ("version".to_string(), cx.version.to_string()),
            ("core".to_string(), cx.core.to_string()),
        ]);
        for (k, v) in &cx.meta {
            out.insert(format!("meta.{k}"), v.clone());
        }
        Ok(out)
    }

    async fn relay_whoami(
        &self,
        cx: &mut CallContext,
        target: String,
    ) -> Result<BTreeMap<String, String>, MethodError> {
        mark_core(cx);
        let addr = relay_target(&target).map_err(MethodError::internal)?;
        let client = self.relays.borrow_mut().get(addr, || {
            Client::new([addr], ClientConfig::new(self.app.clone()))
        });
        let demo = DemoClient::new(client);
        demo.whoami(Some(cx))
            .await
            .map_err(|e: CallError| MethodError::internal(format!("relay to {target} failed: {e}")))
    }
}

/// The version-2 response header carries the serving core's index (only
/// connections at version 2 get a response header, so only they pay for it).
fn mark_core(cx: &mut CallContext) {
    if cx.version >= 2 {
        cx.response_meta.insert("core".into(), cx.core.to_string());
    }
}

fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.zk.is_some() || args.cluster.is_some() {
        tracing::warn!(
            "--zk/--cluster are accepted but not used yet: running with embedded defaults"
        );
    }
    let mut builder = ServerBuilder::new(args.name.clone())
        .listen(args.listen)
        .drain_timeout(Duration::from_millis(args.drain_timeout_ms))
        .call_timeout(
            (args.call_timeout_ms > 0).then(|| Duration::from_millis(args.call_timeout_ms)),
        )
        .read_timeout(Duration::from_millis(args.read_timeout_ms))
        .idle_timeout(
            (args.idle_timeout_ms > 0).then(|| Duration::from_millis(args.idle_timeout_ms)),
        )
        .max_connections(args.max_connections)
        .handover(args.handover);
    if let Some(n) = args.cores {
        builder = builder.cores(n);
    }
    let fired = Arc::new(AtomicI64::new(0));
    let app = args.name.clone();
    let server = builder.start(move |_core| {
        DemoServer::new(Demo {
            app: app.clone(),
            fired: fired.clone(),
            relays: RefCell::default(),
        })
    })?;
    tracing::info!(listen = %server.local_addr(), "ringsoa-demo serving");
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
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let make = || Client::new(Vec::<SocketAddr>::new(), ClientConfig::new("t"));
        let first = relays.get(addr(1), make);
        for port in 2..=5000 {
            relays.get(addr(port), make);
            if port == 3000 {
                // Using a client keeps it.
                assert!(Rc::ptr_eq(
                    &relays.get(addr(4990), make),
                    &relays.get(addr(4990), make)
                ));
            }
        }
        assert_eq!(relays.clients.len(), Relays::MAX);
        assert!(relays.clients.iter().all(|(a, _)| a.port() > 5000 - 64));
        assert!(
            !Rc::ptr_eq(&relays.get(addr(1), make), &first),
            "evicted, then made anew"
        );
    }

    #[test]
    fn relay_targets_are_addresses_or_service_names() {
        assert!(relay_target("127.0.0.1:9090").is_ok());
        assert!(relay_target("demo/main")
            .unwrap_err()
            .contains("discovery needs the registry"));
        for bad in ["", "nonsense", "a/b/c", "/x", "host:notaport", "x y/z"] {
            assert!(
                relay_target(bad).unwrap_err().contains("bad target"),
                "{bad}"
            );
        }
    }
}
