//! The idle connections to one node on one core, and the rules that retire them.
//!
//! Checkout takes the most recently used idle connection (so a burst's extra
//! connections age out), and hands it out only if it is of the current generation,
//! not tired (use limit), not past its jittered lifetime, not idle too long, and — the
//! check that needs no round trip — the kernel has seen neither a FIN, an RST nor
//! stray bytes on it. Anything else is closed and the next one tried.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::conn::Conn;

/// Pool settings; every core keeps its own pool per node.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Idle connections kept per node (thrift_connector's `max_conn`); extra
    /// connections are closed when their call ends. 0 disables pooling.
    pub max_idle: usize,
    /// Calls in flight per node at once; `None` for no cap.
    pub max_in_flight: Option<usize>,
    /// Calls that may wait for a slot under `max_in_flight`; more are rejected.
    pub max_waiters: usize,
    /// Peek at a pooled connection before handing it out (no round trip).
    pub check_on_checkout: bool,
    /// No peek for a connection last used less than this ago (10 ms): a server that
    /// closes a connection it just answered on is rarely seen by a peek that soon
    /// anyway, and a busy connection saves a syscall per call. Zero peeks every time.
    pub peek_idle_after: Duration,
    /// Ping idle connections that were not used for this long (connect-level health
    /// between calls); `None` never pings.
    pub ping_interval: Option<Duration>,
    /// The method name pings call; any matching reply, even `UNKNOWN_METHOD`, passes.
    pub ping_method: String,
    /// Close connections idle for longer than this.
    pub max_idle_time: Option<Duration>,
    /// thrift_connector's `keepalive`: after this age a connection is retired at
    /// checkout with a probability rising from 0 to 1 over one more keepalive, so a
    /// fleet's connections do not all reconnect at once.
    pub keepalive: Option<Duration>,
    /// Retire a connection after this many calls.
    pub use_limit: Option<u64>,
    /// Bytes of large buffers (past 64 KiB) the client keeps between large
    /// messages, shared by its connections on this core (16 MiB; 0: none): the
    /// next large request or reply takes one rather than growing a buffer and
    /// faulting its pages in afresh. Let go after 1 s in which none was used. A
    /// client made on a server core keeps them with the core's instead
    /// ([`crate::server::ServerBuilder::spare_buffers`], fitted to a memory limit),
    /// unless this is 0.
    pub spare_buffers: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_idle: 30,
            max_in_flight: None,
            max_waiters: 1024,
            check_on_checkout: true,
            peek_idle_after: Duration::from_millis(10),
            ping_interval: None,
            ping_method: "ping".into(),
            max_idle_time: Some(Duration::from_secs(60)),
            keepalive: None,
            use_limit: None,
            spare_buffers: 16 << 20,
        }
    }
}

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peek at checkout found it closed by the server, or holding stray bytes.
    PeerClosed,
    /// Past its jittered lifetime (`keepalive`).
    Expired,
    /// Reached its use limit.
    Tired,
    /// Idle for longer than `max_idle_time`.
    IdleTooLong,
    /// A periodic ping failed.
    PingFailed,
    /// Its call failed in a way that leaves the stream in an unknown state.
    Broken,
    /// The pool already held `max_idle` idle connections.
    PoolFull,
    /// The node list changed (a new pool generation) or the node left it.
    Reset,
}

/// A node's pool counters on this core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    /// Idle connections now.
    pub idle: usize,
    /// Connections checked out now.
    pub in_use: usize,
    /// Connections opened so far (handshake included).
    pub created: u64,
    /// Connections closed so far, for any [`CloseReason`].
    pub closed: u64,
    /// Connections found dead or unusable by a checkout peek or a ping.
    pub failed_checks: u64,
    /// Calls waiting for a slot under `max_in_flight` now.
    pub waiters: usize,
}

impl PoolStats {
    /// Adds another core's counters.
    pub fn merge(&mut self, o: &PoolStats) {
        self.idle += o.idle;
        self.in_use += o.in_use;
        self.created += o.created;
        self.closed += o.closed;
        self.failed_checks += o.failed_checks;
        self.waiters += o.waiters;
    }
}

/// Idle connections to one node, newest at the back, and its counters.
#[derive(Default)]
pub(crate) struct NodePool {
    /// Boxed: a checkout and a checkin move a pointer, not the connection.
    idle: VecDeque<Box<Conn>>,
    pub in_use: usize,
    /// Connections being opened now (counted as open, so that a burst of new
    /// calls spreads over the nodes instead of all connecting to one).
    pub connecting: usize,
    pub created: u64,
    pub closed: u64,
    pub failed_checks: u64,
}

impl NodePool {
    /// Open connections: idle, checked out and being opened.
    pub fn open(&self) -> usize {
        self.idle.len() + self.in_use + self.connecting
    }

    pub fn idle(&self) -> usize {
        self.idle.len()
    }

    /// Takes a usable idle connection, closing (and reporting) the ones that are not.
    pub fn checkout(
        &mut self,
        opts: &PoolOptions,
        generation: u64,
        now: Instant,
        closed: &mut dyn FnMut(CloseReason),
    ) -> Option<Box<Conn>> {
        while let Some(conn) = self.idle.pop_back() {
            let verdict = retire(&conn, opts, generation, now).or_else(|| {
                let peek = opts.check_on_checkout && conn.idle_for(now) >= opts.peek_idle_after;
                (peek && !conn.is_alive()).then_some(CloseReason::PeerClosed)
            });
            match verdict {
                None => {
                    self.in_use += 1;
                    return Some(conn);
                }
                Some(reason) => self.close(conn, reason, closed),
            }
        }
        None
    }

    /// Counts a newly opened connection as checked out.
    pub fn opened(&mut self) {
        self.created += 1;
        self.in_use += 1;
    }

    /// Ends a checkout: the connection goes back if `verdict` is `Ok`, it belongs to
    /// this generation and there is room; otherwise it is closed.
    pub fn checkin(
        &mut self,
        conn: Box<Conn>,
        verdict: Result<(), CloseReason>,
        opts: &PoolOptions,
        generation: u64,
        closed: &mut dyn FnMut(CloseReason),
    ) {
        self.in_use -= 1;
        let reason = if let Err(r) = verdict {
            Some(r)
        } else if conn.generation != generation {
            Some(CloseReason::Reset)
        } else if self.idle.len() >= opts.max_idle {
            Some(CloseReason::PoolFull)
        } else {
            None
        };
        match reason {
            None => self.idle.push_back(conn),
            Some(r) => self.close(conn, r, closed),
        }
    }

    /// Closes idle connections that have been idle too long or are certainly
    /// expired (the oldest are at the front).
    pub fn reap(&mut self, opts: &PoolOptions, now: Instant, closed: &mut dyn FnMut(CloseReason)) {
        let mut kept = VecDeque::with_capacity(self.idle.len());
        while let Some(conn) = self.idle.pop_front() {
            let too_idle = opts.max_idle_time.is_some_and(|t| conn.idle_for(now) > t);
            let dead = opts.keepalive.is_some_and(|k| now >= conn.opened + 2 * k);
            match (too_idle, dead) {
                (true, _) => self.close(conn, CloseReason::IdleTooLong, closed),
                (_, true) => self.close(conn, CloseReason::Expired, closed),
                _ => kept.push_back(conn),
            }
        }
        self.idle = kept;
    }

    /// Takes out the idle connections unused for `interval`, to be pinged; they
    /// count as checked out until they come back through [`NodePool::checkin`].
    pub fn take_for_ping(&mut self, interval: Duration, now: Instant) -> VecDeque<Box<Conn>> {
        let (stale, fresh): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.idle)
            .into_iter()
            .partition(|c| c.idle_for(now) >= interval);
        self.idle = fresh;
        self.in_use += stale.len();
        stale
    }

    /// Closes every idle connection (the node left the list or the pool was reset).
    pub fn clear(&mut self, closed: &mut dyn FnMut(CloseReason)) {
        while let Some(conn) = self.idle.pop_front() {
            self.close(conn, CloseReason::Reset, closed);
        }
    }

    fn close(&mut self, conn: Box<Conn>, reason: CloseReason, closed: &mut dyn FnMut(CloseReason)) {
        drop(conn);
        self.closed += 1;
        if matches!(reason, CloseReason::PeerClosed | CloseReason::PingFailed) {
            self.failed_checks += 1;
        }
        closed(reason);
    }
}

/// Why an idle connection must not be handed out, judged without I/O.
fn retire(conn: &Conn, opts: &PoolOptions, generation: u64, now: Instant) -> Option<CloseReason> {
    if conn.generation != generation {
        return Some(CloseReason::Reset);
    }
    if opts.use_limit.is_some_and(|limit| conn.uses >= limit) {
        return Some(CloseReason::Tired);
    }
    if opts.max_idle_time.is_some_and(|t| conn.idle_for(now) > t) {
        return Some(CloseReason::IdleTooLong);
    }
    let age = now.saturating_duration_since(conn.opened);
    if opts
        .keepalive
        .is_some_and(|k| expired(age, k, fastrand::f64()))
    {
        return Some(CloseReason::Expired);
    }
    None
}

/// thrift_connector's jittered expiry: never before `keepalive`, then with a
/// probability rising linearly to 1 at twice `keepalive`; `draw` is uniform in [0, 1).
fn expired(age: Duration, keepalive: Duration, draw: f64) -> bool {
    if age < keepalive {
        return false;
    }
    let late = (age - keepalive).as_secs_f64() / keepalive.as_secs_f64().max(f64::MIN_POSITIVE);
    draw < late
}

#[cfg(test)]
mod tests {
    use super::expired;
    use std::time::Duration;

    #[test]
    fn expiry_probability_rises_linearly_from_the_keepalive_to_twice_it() {
        let k = Duration::from_secs(10);
        let s = Duration::from_secs;
        assert!(!expired(s(9), k, 0.0), "never before the keepalive");
        assert!(!expired(s(10), k, 0.0), "probability 0 at the keepalive");
        assert!(
            expired(s(15), k, 0.49) && !expired(s(15), k, 0.5),
            "1/2 halfway"
        );
        assert!(
            expired(s(20), k, 0.999_999),
            "certain at twice the keepalive"
        );
    }
}
