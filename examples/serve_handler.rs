//! A demo-contract server with the README's handler (Serving): declared exceptions
//! and `?` on ordinary errors. The contract's code comes from this package's build
//! script, as a service's own `build.rs` would make it (`ringsoa_build::compile`).
//!
//! Run: `cargo run --example serve_handler -- 127.0.0.1:9191`

mod idl {
    ringsoa::include_idl!();
}

use idl::demo::{DemoError, DemoFailException, DemoHandler, DemoServer, Item};
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

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
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
    let started = ringsoa::server::ServerBuilder::new("serve-handler")
        .listen(addr)
        .cores(1)
        .start(|_| DemoServer::new(MyHandler));
    match started.and_then(|server| server.run_until_signal()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve_handler: cannot serve on {addr}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
