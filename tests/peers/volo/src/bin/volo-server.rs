//! A Volo server with its default codec serving Demo at ADDR, for ringsoa's client
//! over TTHeader: echoes, `add`, `fail` with the declared exception, and `whoami`
//! answering `{"server": "volo"}`.
//! Usage: volo-server ADDR
use std::sync::atomic::{AtomicI64, Ordering};

use pilota::{AHashMap, FastStr};
use ringsoa_volo_peers::volo_demo::demo::{Demo, DemoError, DemoFailException, DemoServer, Item};
use volo_thrift::{MaybeException, ServerError};

struct S {
    fired: AtomicI64,
}

impl Demo for S {
    async fn ping(&self) -> Result<(), ServerError> {
        Ok(())
    }
    async fn echo(&self, msg: FastStr) -> Result<FastStr, ServerError> {
        Ok(msg)
    }
    async fn roundtrip(&self, item: Item) -> Result<Item, ServerError> {
        Ok(item)
    }
    async fn add(&self, a: i32, b: i64) -> Result<i64, ServerError> {
        Ok(i64::from(a) + b)
    }
    async fn fail(&self, code: i32) -> Result<MaybeException<(), DemoFailException>, ServerError> {
        Ok(MaybeException::Exception(DemoFailException::Err(
            DemoError {
                code: Some(code),
                message: Some("volo says no".into()),
            },
        )))
    }
    async fn sleep_ms(&self, ms: i32) -> Result<FastStr, ServerError> {
        tokio::time::sleep(std::time::Duration::from_millis(ms.max(0) as u64)).await;
        Ok(format!("slept {ms}").into())
    }
    async fn fire(&self, _note: FastStr) -> Result<(), ServerError> {
        self.fired.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    async fn fired(&self) -> Result<i64, ServerError> {
        Ok(self.fired.load(Ordering::Relaxed))
    }
    async fn whoami(&self) -> Result<AHashMap<FastStr, FastStr>, ServerError> {
        Ok(AHashMap::from_iter([(
            FastStr::from("server"),
            FastStr::from("volo"),
        )]))
    }
    async fn relay_whoami(
        &self,
        _target: FastStr,
    ) -> Result<AHashMap<FastStr, FastStr>, ServerError> {
        self.whoami().await
    }
}

#[volo::main]
async fn main() {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: volo-server HOST:PORT");
    DemoServer::new(S {
        fired: AtomicI64::new(0),
    })
    .run(volo::net::Address::from(addr))
    .await
    .expect("volo server");
}
