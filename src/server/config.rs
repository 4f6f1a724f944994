//! Server settings and their defaults.

use std::net::SocketAddr;
use std::time::Duration;

use crate::tracking::Limits;
use crate::transport::DEFAULT_MAX_MESSAGE;

/// Server settings; built with [`super::ServerBuilder`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The app id, for logs (and the registry, later).
    pub app: String,
    /// Address every core listens on.
    pub listen: SocketAddr,
    /// Number of cores (threads).
    pub cores: usize,
    /// Largest request accepted and largest reply sent (frame body or unframed
    /// message).
    pub max_message: usize,
    /// Open connections per core. A core at its limit closes its longest-idle
    /// connection to admit a new one, and refuses the newcomer only when none is
    /// idle. Lowered at start when the process's open-file limit cannot hold it.
    pub max_connections: usize,
    /// Time a connection may sit between requests (`None`: forever). The core
    /// closes it up to about an eighth of this later, looking every sixteenth.
    pub idle_timeout: Option<Duration>,
    /// Time a started request has to arrive completely, however its bytes trickle
    /// in (slow-loris defence).
    pub read_timeout: Duration,
    /// Time a connection's replies may make no progress (the peer reads none of
    /// them) before the connection is closed.
    pub write_timeout: Duration,
    /// Time a call may run before it is answered with a timeout error.
    pub call_timeout: Option<Duration>,
    /// Time in-flight calls get to finish once a drain starts.
    pub drain_timeout: Duration,
    /// During a drain, a connection idle for this long is closed.
    pub drain_grace: Duration,
    /// The health-check method: during a drain it is answered "shutting down" (and
    /// its connection closed), so that pools that ping on checkout reconnect
    /// elsewhere; every other call is still served.
    pub health_method: String,
    /// What a peer may put in tracking fields.
    pub tracking_limits: Limits,
    /// Memory that decoding one request's containers may take beyond its bytes
    /// (see [`crate::protocol::budget`]); over it the call gets PROTOCOL_ERROR.
    pub max_decoded: usize,
    /// Memory that the decoded containers of all calls in flight on one core may
    /// take together.
    pub core_decoded: usize,
    /// What one core's connections may buffer together of requests still arriving,
    /// beyond each one's first 64 KiB (see [`crate::transport::budget`]).
    pub core_buffered: usize,
    /// Large connection buffers one core keeps between large messages, for the
    /// next to take (see [`crate::transport::spare`]); 0: none.
    pub spare_buffers: usize,
    /// Listen backlog per core.
    pub backlog: i32,
    /// Start even if another process listens on the port (zero-downtime handover).
    pub handover: bool,
    /// A core whose loop has not ticked for this long is reported (`None`: off).
    pub watchdog: Option<Duration>,
    /// One `info` line per call, target `ringsoa::access`.
    pub access_log: bool,
    /// Also serve clients that send non-strict binary (message headers with no
    /// protocol version, as `TBinaryProtocol(strict_write=False)` and old Apache
    /// clients write), as Apache's servers do by default; replies stay strict. Off by
    /// default, as in thriftpy2: such connections are closed with a WARN naming them.
    pub accept_non_strict_binary: bool,
    /// Freed memory glibc's malloc keeps at the top of each heap for the next large
    /// buffer (`M_TOP_PAD`, process-wide; `None`: glibc's own, 128 KiB).
    pub malloc_top_pad: Option<usize>,
}

impl Config {
    /// Defaults for `app` on 127.0.0.1:9090 with every online core: 16 MiB
    /// messages, 10,000 connections per core, no idle timeout, 30 s read timeout,
    /// no call timeout, 10 s drain timeout with a 100 ms idle grace, `ping` as the
    /// health check, 64 MiB decoded per request and 256 MiB per core, 256 MiB of
    /// requests still arriving per core, 64 MiB of spare large buffers per core,
    /// watchdog at 1 s, a malloc top pad of 16 MiB.
    pub fn new(app: String) -> Self {
        Config {
            app,
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_message: DEFAULT_MAX_MESSAGE,
            max_connections: 10_000,
            idle_timeout: None,
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            call_timeout: None,
            drain_timeout: Duration::from_secs(10),
            drain_grace: Duration::from_millis(100),
            health_method: "ping".into(),
            tracking_limits: Limits::default(),
            max_decoded: crate::protocol::DEFAULT_MAX_DECODED,
            core_decoded: 256 << 20,
            core_buffered: 256 << 20,
            spare_buffers: 64 << 20,
            backlog: 1024,
            handover: false,
            watchdog: Some(Duration::from_secs(1)),
            access_log: false,
            accept_non_strict_binary: false,
            malloc_top_pad: Some(16 << 20),
        }
    }

    /// Cuts every wait longer than a year to a year (see [`crate::deadline::MAX_WAIT`]).
    pub(super) fn bound_waits(&mut self) {
        crate::deadline::bound([
            ("idle_timeout", self.idle_timeout.as_mut()),
            ("call_timeout", self.call_timeout.as_mut()),
            ("watchdog", self.watchdog.as_mut()),
            ("read_timeout", Some(&mut self.read_timeout)),
            ("write_timeout", Some(&mut self.write_timeout)),
            ("drain_timeout", Some(&mut self.drain_timeout)),
            ("drain_grace", Some(&mut self.drain_grace)),
        ]);
    }

    /// Why these settings cannot serve, if they cannot.
    pub(super) fn check(&self) -> Result<(), String> {
        if self.read_timeout.is_zero() || self.write_timeout.is_zero() {
            return Err(format!(
                "read_timeout ({:?}) and write_timeout ({:?}) must be above zero: every request or reply that does not go through at once would close its connection",
                self.read_timeout, self.write_timeout
            ));
        }
        let room = self.core_buffered + crate::transport::conn::KEEP_CAPACITY;
        if room < self.max_message {
            return Err(format!(
                "max_buffered ({} bytes) plus 64 KiB is below max_message ({} bytes): requests of the maximum size would arrive one at a time; raise max_buffered or lower max_message",
                self.core_buffered, self.max_message
            ));
        }
        Ok(())
    }
}
