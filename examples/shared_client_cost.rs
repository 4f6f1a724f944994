//! What a `SharedClient` call costs beside a core-local `Client` call: N sequential
//! `Demo.add` calls each way against a server at ADDR, one call in flight, printing
//! wall time and this process's CPU time (all threads) per call.
//!
//! Run: `cargo run --release --example shared_client_cost -- 127.0.0.1:9090 20000`

mod idl {
    ringsoa::include_idl!();
}

use std::time::{Duration, Instant};

use idl::demo::DemoClient;
use ringsoa::client::shared::wait;
use ringsoa::client::{Client, ClientConfig, SharedClient};
use ringsoa::protocol::Protocol;

/// This process's user + system CPU time.
fn cpu() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000);
    t(u.ru_utime) + t(u.ru_stime)
}

fn report(what: &str, n: u32, wall: Duration, cpu: Duration) {
    println!(
        "{what}: {:.1} µs wall, {:.1} µs CPU per call",
        wall.as_secs_f64() * 1e6 / f64::from(n),
        cpu.as_secs_f64() * 1e6 / f64::from(n)
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args.next().unwrap_or("127.0.0.1:9090".into()).parse()?;
    let n: u32 = args.next().unwrap_or("20000".into()).parse()?;
    let config = || ClientConfig::new("cost");
    // Core-local: the client on this thread's runtime.
    let mut rt = ringsoa::runtime::build()?;
    rt.block_on(async {
        let d = DemoClient::new(std::rc::Rc::new(Client::new([addr], config())));
        d.add(None, 1, 1).await?;
        let (t0, c0) = (Instant::now(), cpu());
        for i in 0..n {
            d.add(None, 1, i64::from(i)).await?;
        }
        report("core-local Client", n, t0.elapsed(), cpu() - c0);
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    // Shared: from this (plain) thread to a client thread and back.
    let shared = SharedClient::spawn(1, Protocol::Binary, move || Client::new([addr], config()))?;
    let d = DemoClient::new(shared);
    wait(d.add(None, 1, 1))?;
    let (t0, c0) = (Instant::now(), cpu());
    for i in 0..n {
        wait(d.add(None, 1, i64::from(i)))?;
    }
    report("SharedClient (wait)", n, t0.elapsed(), cpu() - c0);
    Ok(())
}
