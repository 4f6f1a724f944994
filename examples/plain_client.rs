//! Calling a service from a plain `fn main` (README, Calling services): ringsoa's
//! runtime on this thread, one client, a generated stub; `?` on every error.
//!
//! Run against `ringsoa-demo` (or `--example serve_handler`):
//! `cargo run --example plain_client -- 127.0.0.1:9090`

mod idl {
    ringsoa::include_idl!();
}

use idl::demo::DemoClient;
use ringsoa::client::{Client, ClientConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".into());
    let mut rt = ringsoa::runtime::build()?;
    rt.block_on(async {
        let nodes: [std::net::SocketAddr; 1] = [addr.parse()?];
        let client = std::rc::Rc::new(Client::new(nodes, ClientConfig::new("my-tool")));
        let demo = DemoClient::new(client);
        println!("{}", demo.add(None, 40, 2).await?);
        Ok(())
    })
}
