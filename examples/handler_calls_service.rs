//! A handler that calls another service with its own call's context, so the call
//! downstream carries the same request id, the next rpc id in the chain (`1` → `1.1`),
//! the caller's meta and what is left of its deadline.
//!
//! The `Front` service (`examples/idl/front.thrift`) answers `trace()` by calling
//! `Demo.whoami` on a back end and returning what the back end saw. Run a back end
//! (`cargo run --release --bin ringsoa-demo`), then
//! `cargo run --example handler_calls_service -- 127.0.0.1:9292 127.0.0.1:9090` and
//! `cargo run --bin ringsoa -- call --idl examples/idl/front.thrift --addr 127.0.0.1:9292 Front.trace`.

mod idl {
    ringsoa::include_idl!("ringsoa_examples.rs");
}

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;

use idl::demo::DemoClient;
use idl::front::{FrontHandler, FrontServer};
use ringsoa::client::{Client, ClientConfig};
use ringsoa::rpc::{CallContext, MethodError};

/// One per core: the handler and its core-local client of the back end.
struct Front {
    backend: DemoClient<Rc<Client>>,
}

impl FrontHandler for Front {
    async fn trace(&self, cx: &mut CallContext) -> Result<BTreeMap<String, String>, MethodError> {
        // `Some(cx)`: the downstream call continues this call's chain. A call error
        // (the back end down, its deadline passed) becomes this call's INTERNAL_ERROR.
        let mut seen = self.backend.whoami(Some(cx)).await?;
        seen.insert("front.request_id".into(), cx.request_id.clone());
        seen.insert("front.seq".into(), cx.seq.clone());
        seen.insert("front.caller".into(), cx.caller.to_string());
        Ok(seen)
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
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:9292".into());
    let backend = args.next().unwrap_or_else(|| "127.0.0.1:9090".into());
    let (listen, backend): (SocketAddr, SocketAddr) = match (listen.parse(), backend.parse()) {
        (Ok(l), Ok(b)) => (l, b),
        _ => {
            eprintln!("handler_calls_service: usage: LISTEN_HOST:PORT BACKEND_HOST:PORT");
            return std::process::ExitCode::from(2);
        }
    };
    let started = ringsoa::server::ServerBuilder::new("front")
        .listen(listen)
        .cores(1)
        .catch_signals()
        .start(move |_| {
            // One client per core, built on that core: pools, health and budget are core-local.
            let mut config = ClientConfig::new("front"); // app_id sent in the handshake
            config.retry.idempotent = vec!["whoami".into()]; // may run twice
            let client = Client::new([backend], config);
            FrontServer::new(Front {
                backend: DemoClient::new(Rc::new(client)), // a generated stub
            })
        });
    match started.and_then(|server| server.run_until_signal()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("handler_calls_service: cannot serve on {listen}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
