//! [`ServerHandle`]: a running server — its address, the drain, waiting for exit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::shutdown::Shutdown;
use crate::governance::Governance;

/// How long a drain waits for ZooKeeper to delete the registration.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(2);

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    drain_timeout: Duration,
    shutdown: Arc<Shutdown>,
    threads: Vec<JoinHandle<()>>,
    governance: Option<Governance>,
}

impl ServerHandle {
    pub(crate) fn new(
        addr: SocketAddr,
        drain_timeout: Duration,
        shutdown: Arc<Shutdown>,
        threads: Vec<JoinHandle<()>>,
        governance: Option<Governance>,
    ) -> Self {
        ServerHandle {
            addr,
            drain_timeout,
            shutdown,
            threads,
            governance,
        }
    }

    /// The address the cores listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the server serves (true until the drain starts), for health checks
    /// on other threads.
    pub fn serving(&self) -> Arc<dyn Fn() -> bool + Send + Sync> {
        let shutdown = self.shutdown.clone();
        Arc::new(move || !shutdown.draining())
    }

    /// Starts the drain with the configured timeout. With governance, the
    /// registration is deleted first and consumers get the deregister grace to see
    /// it (this blocks for that long); otherwise it returns at once.
    pub fn shutdown(&self) {
        deregister(&self.governance, &self.shutdown);
        self.shutdown.begin(self.drain_timeout);
    }

    /// Stops at once and waits for the cores (a failed start).
    pub(crate) fn abort(self) {
        self.shutdown.begin(Duration::ZERO);
        self.join();
    }

    /// Waits for every core to finish.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
        self.shutdown.stop();
    }

    /// Serves until SIGTERM (drain with the configured timeout) or SIGINT (drain
    /// with at most 1 s), then waits for the drain to finish.
    pub fn run_until_signal(self) -> std::io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
        let shutdown = self.shutdown.clone();
        let drain = self.drain_timeout;
        let governance = self.governance.clone();
        std::thread::Builder::new()
            .name("ringsoa-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    let timeout = if sig == SIGINT {
                        drain.min(Duration::from_secs(1))
                    } else {
                        drain
                    };
                    deregister(&governance, &shutdown);
                    tracing::info!(signal = sig, ?timeout, "draining");
                    shutdown.begin(timeout);
                }
            })?;
        self.join();
        Ok(())
    }
}

/// Deletes the registration before the first drain signal (a second signal
/// drains at once).
fn deregister(governance: &Option<Governance>, shutdown: &Shutdown) {
    if let (Some(g), false) = (governance, shutdown.draining()) {
        tracing::info!("deregistering before the drain");
        g.deregister(DEREGISTER_TIMEOUT);
    }
}

/// Fails if another process listens on `addr`. A plain bind fails if anyone holds the
/// port, SO_REUSEPORT or not — but so do the half-closed connections a crashed
/// predecessor left behind (FIN_WAIT2 until their clients close), so a failed bind
/// is confirmed by connecting: only a listener that accepts blocks the start.
pub(crate) fn refuse_a_live_listener(addr: SocketAddr) -> std::io::Result<()> {
    let Err(e) = std::net::TcpListener::bind(addr) else {
        return Ok(());
    };
    let connect = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200));
    if e.kind() != std::io::ErrorKind::AddrInUse || connect.is_ok() {
        return Err(std::io::Error::new(
            e.kind(),
            format!("{addr} is in use by another process ({e}); pass handover to share it"),
        ));
    }
    tracing::info!(%addr, "the port is held only by old connections, not a listener: starting");
    Ok(())
}

/// Whether the kernel moves connections queued on a closing SO_REUSEPORT listener to
/// another listener of the group (`net.ipv4.tcp_migrate_req`, Linux 5.14+), as a
/// zero-downtime handover needs.
pub(crate) fn migrates_queued_connections() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").is_ok_and(|v| v.trim() == "1")
}
