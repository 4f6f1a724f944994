//! Calling a service from a plain `fn main` (README, Calling services): ringsoa's
//! runtime on this thread, one client, a generated stub; `?` on every error, and
//! an error printed as one line.
//!
//! Run against `ringsoa-demo` (or `--example serve_handler`):
//! `cargo run --example plain_client -- 127.0.0.1:9090`

mod idl {
    ringsoa::include_idl!();
}

use idl::demo::DemoClient;
use ringsoa::client::{Client, ClientConfig};

fn main() -> std::process::ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".into());
    match add(&addr) {
        Ok(sum) => {
            println!("{sum}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("plain_client: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// 40 + 2, as the demo service at `addr` adds them.
fn add(addr: &str) -> Result<i64, Box<dyn std::error::Error>> {
    let mut rt = ringsoa::runtime::build()?;
    rt.block_on(async {
        let nodes = [ringsoa::addr::resolve(addr)?];
        let client = std::rc::Rc::new(Client::new(nodes, ClientConfig::new("my-tool")));
        let demo = DemoClient::new(client);
        Ok(demo.add(None, 40, 2).await?)
    })
}
