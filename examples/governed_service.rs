//! A governed service (README, Governance and Interface control): config and
//! switches from ZooKeeper, registration as a provider, a client that finds its
//! back end in the registry, and the metrics aggregator's recorders, breakers and
//! ACL on every core.
//!
//! Needs ZooKeeper (`tools/zk.sh start` prints one's address) and a registered
//! `Demo` back end (`ringsoa-demo --zk HOSTS --name users --cluster main`); then
//! `cargo run --example governed_service -- HOSTS 127.0.0.1:9393` and
//! `cargo run --bin ringsoa -- call --idl examples/idl/front.thrift --addr 127.0.0.1:9393 Front.trace`.

mod idl {
    ringsoa::include_idl!("ringsoa_examples.rs");
}

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use idl::demo::DemoClient;
use idl::front::{FrontHandler, FrontServer as MyServer};
use ringsoa::client::Client;
use ringsoa::control::Governed;
use ringsoa::governance::{Backend, Governance, GovernanceOptions};
use ringsoa::rpc::{CallContext, MethodError};

/// One per core: the core's view of config and switches, and its client.
struct MyHandler {
    gov: Rc<Governed>,
    limit: u32,
    users: Client,
    /// Calls this core has served.
    served: Cell<u32>,
}

impl FrontHandler for MyHandler {
    async fn trace(&self, cx: &mut CallContext) -> Result<BTreeMap<String, String>, MethodError> {
        if !self.gov.with(|s| s.switch_on("trace", true)) {
            return Err(MethodError::internal(
                "trace is switched off (switch \"trace\")",
            ));
        }
        let served = self.served.replace(self.served.get() + 1);
        if served >= self.limit {
            return Err(MethodError::internal(format!(
                "this core served its {} calls",
                self.limit
            )));
        }
        Ok(DemoClient::new(&self.users).whoami(Some(cx)).await?)
    }
}

fn main() -> std::process::ExitCode {
    // Logs on stderr, written by a thread of their own: a stderr nobody reads
    // never stops a core.
    let (stderr, _flushed_at_exit) = ringsoa::logs::non_blocking(std::io::stderr(), "stderr");
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(stderr)
        .init();
    match serve() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("governed_service: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let zk = args.next().unwrap_or_else(|| "127.0.0.1:2181".into());
    let addr = ringsoa::addr::resolve(args.next().as_deref().unwrap_or("127.0.0.1:9393"))?;
    let mut options = GovernanceOptions::new("my-app", "main", Backend::ZooKeeper(zk));
    options.cache_dir = Some(std::env::temp_dir().join("my-app-cache"));
    let governance = Governance::start(options)?;
    let mut options = ringsoa::metrics::MetricsOptions::new("my-app");
    options.governance = Some(governance.clone()); // live breaker settings and switches
    options.knows_method = Some(MyServer::<MyHandler>::knows_method); // typos in rules are named
    let metrics = ringsoa::metrics::Metrics::start(options)?;
    let server = ringsoa::server::ServerBuilder::new("my-app")
        .listen(addr)
        .governance(governance.clone()) // wait for config, register after ping, deregister first on drain
        .catch_signals() // a SIGTERM from now on drains
        .control(move |init| metrics.core(init)) // each core's recorder and breaker check
        .start(|init| {
            let gov = init.governance.clone().expect("governed"); // this core's view
            let limit: u32 = gov
                .with(|s| s.config("limit"))
                .ok()
                .flatten()
                .unwrap_or(100);
            gov.subscribe(|snap| {
                tracing::info!(version = snap.version, "new config");
                true
            });
            let users = ringsoa::client::Client::discover(
                &gov,
                "users/main".parse().unwrap(),
                ringsoa::client::ClientConfig::new("my-app"),
            );
            let served = Cell::new(0);
            MyServer::new(MyHandler {
                gov,
                limit,
                users,
                served,
            })
        })?;
    server.run_until_signal()?;
    Ok(())
}
