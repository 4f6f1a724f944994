//! volo-thrift (crates.io) serving `Demo.ping` and `Demo.echo`, with volo's defaults
//! (its own tokio runtime; the script pins the process to one CPU).

mod generated {
    include!(concat!(env!("OUT_DIR"), "/volo_demo.rs"));
}

use generated::volo_demo::demo::{Demo, DemoServer};
use pilota::FastStr;
use volo_thrift::ServerError;

struct S;

impl Demo for S {
    async fn ping(&self) -> Result<(), ServerError> {
        Ok(())
    }

    async fn echo(&self, msg: FastStr) -> Result<FastStr, ServerError> {
        Ok(msg)
    }
}

#[volo::main]
async fn main() {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9191".into())
        .parse()
        .expect("an address");
    DemoServer::new(S)
        .run(volo::net::Address::from(addr))
        .await
        .expect("volo server");
}
