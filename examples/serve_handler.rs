//! A demo-contract server with the README's handler (Serving): declared exceptions
//! and `?` on ordinary errors; and a per-core control that refuses the caller
//! `blocked` and counts how every call ended. The contract's code comes from this package's build
//! script, as a service's own `build.rs` would make it (`ringsoa_build::compile`).
//!
//! Run: `cargo run --example serve_handler -- 127.0.0.1:9191`

mod idl {
    ringsoa::include_idl!();
}

use idl::demo::DemoServer;
use ringsoa::control::{CoreControl, Outcome, Ticket};
use ringsoa::protocol::ApplicationException;
use std::cell::Cell;
use std::time::Duration;

// The README's handler, from here to the end of `impl DemoHandler`.
use idl::demo::{DemoError, DemoFailException, DemoHandler, Item};
use ringsoa::rpc::{CallContext, MethodError};
use std::collections::BTreeMap;

struct MyHandler;

impl DemoHandler for MyHandler {
    async fn ping(&self, _cx: &mut CallContext) -> Result<(), MethodError> {
        Ok(())
    }
    async fn echo(&self, _cx: &mut CallContext, msg: String) -> Result<String, MethodError> {
        Ok(msg)
    }
    async fn roundtrip(&self, _cx: &mut CallContext, item: Item) -> Result<Item, MethodError> {
        Ok(item)
    }
    async fn add(&self, _cx: &mut CallContext, a: i32, b: i64) -> Result<i64, MethodError> {
        (a as i64)
            .checked_add(b)
            .ok_or_else(|| MethodError::internal("overflow"))
    }
    async fn fail(
        &self,
        _cx: &mut CallContext,
        code: i32,
    ) -> Result<(), MethodError<DemoFailException>> {
        let limit: i32 = std::env::var("LIMIT").unwrap_or("10".into()).parse()?; // any error: INTERNAL_ERROR
        if code > limit {
            Err(DemoError {
                code: Some(code),
                message: Some("too big".into()),
            })?; // declared
        }
        Ok(())
    }
    async fn sleep_ms(&self, _cx: &mut CallContext, ms: i32) -> Result<String, MethodError> {
        monoio::time::sleep(std::time::Duration::from_millis(ms.max(0) as u64)).await;
        Ok(format!("slept {ms}"))
    }
    async fn fire(&self, _cx: &mut CallContext, _note: String) -> Result<(), MethodError> {
        Ok(())
    }
    async fn fired(&self, _cx: &mut CallContext) -> Result<i64, MethodError> {
        Ok(0)
    }
    async fn whoami(&self, cx: &mut CallContext) -> Result<BTreeMap<String, String>, MethodError> {
        Ok(BTreeMap::from([("client".into(), cx.caller.to_string())]))
    }
    async fn relay_whoami(
        &self,
        cx: &mut CallContext,
        _to: String,
    ) -> Result<BTreeMap<String, String>, MethodError> {
        self.whoami(cx).await
    }
}

/// One per core: admission and outcome counts, with no lock (the core owns it).
struct MyControl {
    core: usize,
    calls: Cell<u64>,
    failed: Cell<u64>,
}

impl MyControl {
    fn new(core: usize) -> Self {
        MyControl {
            core,
            calls: Cell::new(0),
            failed: Cell::new(0),
        }
    }

    fn refuses(&self, caller: &str, _method: &str) -> bool {
        caller == "blocked"
    }

    fn count(&self, method: &str, outcome: Outcome, took: Duration) {
        self.calls.set(self.calls.get() + 1);
        if !matches!(outcome, Outcome::Result | Outcome::Declared) {
            self.failed.set(self.failed.get() + 1);
            tracing::warn!(
                core = self.core,
                method,
                ?outcome,
                ?took,
                failed = self.failed.get(),
                "a call failed"
            );
        }
    }
}

impl CoreControl for MyControl {
    fn admit(&self, cx: &CallContext, method: &str) -> Result<Ticket, ApplicationException> {
        if self.refuses(&cx.caller, method) {
            return Err(ApplicationException::internal(format!(
                "{method}: refused for {}",
                cx.caller
            )));
        }
        Ok(Ticket::default()) // handed back to record
    }
    fn record(
        &self,
        _cx: &CallContext,
        method: &str,
        _ticket: Ticket,
        outcome: Outcome,
        took: Duration,
    ) {
        self.count(method, outcome, took); // plain per-core counters
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
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9191".into());
    let addr: std::net::SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("serve_handler: {addr:?} is not HOST:PORT: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match serve(addr) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve_handler: cannot serve on {addr}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(addr: std::net::SocketAddr) -> std::io::Result<()> {
    let server = ringsoa::server::ServerBuilder::new("my-app")
        .listen(addr)
        .cores(1)
        .call_timeout(Some(std::time::Duration::from_secs(2)))
        .catch_signals() // a SIGTERM from now on drains (run_until_signal below)
        // Optional, built on each core: admit or refuse each call, and be told how
        // every call ended (result, declared or application exception, panic,
        // timeout, refused).
        .control(|init: &ringsoa::control::CoreInit| MyControl::new(init.index))
        // Built on each core from its CoreInit (index, core count), before it listens.
        .start(|_init| DemoServer::new(MyHandler))?;
    server.run_until_signal()
}
