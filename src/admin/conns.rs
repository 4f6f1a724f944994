//! The admin endpoint's open connections: at its limit a newcomer takes the place
//! of the connection idle the longest (one between requests, or one that has not
//! sent a whole request yet), as the cores do with theirs. Connections that only
//! wait can then not keep a health check out.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Instant;

use tokio::sync::Notify;

/// One open connection, as its task and the endpoint's list share it.
#[derive(Debug)]
pub(super) struct Conn {
    id: u64,
    peer: SocketAddr,
    /// Since when it has waited for a request (its accept, or its last answer).
    idle_since: Mutex<Instant>,
    /// Whether a request of it is being answered.
    busy: AtomicBool,
    /// Told when it is to close to make room.
    close: Notify,
}

impl Conn {
    /// A request came in; it is no longer idle.
    pub(super) fn request_begins(&self) {
        self.busy.store(true, Ordering::Relaxed);
    }

    /// The request was answered; it is idle from now.
    pub(super) fn request_ends(&self) {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.busy.store(false, Ordering::Relaxed);
    }

    /// Resolves when the connection is to close to make room.
    pub(super) async fn evicted(&self) {
        self.close.notified().await
    }

    fn idle_since(&self) -> Instant {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a newcomer found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// A place was free.
    Admitted,
    /// It took the place of the connection idle the longest, with this peer.
    Evicted(SocketAddr),
    /// Every open connection is in a request: it is closed.
    Full,
}

/// The open connections, at most `max`.
#[derive(Debug)]
pub(super) struct Conns {
    max: usize,
    open: Mutex<(u64, Vec<Arc<Conn>>)>,
}

impl Conns {
    pub(super) fn new(max: usize) -> Conns {
        Conns {
            max,
            open: Mutex::new((0, Vec::new())),
        }
    }

    /// Admits a connection from `peer`, closing the one idle the longest when all
    /// places are taken; `None` (with [`Admission::Full`]) when every open one is
    /// in a request.
    pub(super) fn admit(&self, peer: SocketAddr) -> (Admission, Option<Arc<Conn>>) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (next, conns) = &mut *open;
        let mut admission = Admission::Admitted;
        if conns.len() >= self.max {
            let idlest = conns
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.busy.load(Ordering::Relaxed))
                .min_by_key(|(_, c)| c.idle_since())
                .map(|(i, _)| i);
            let Some(i) = idlest else {
                return (Admission::Full, None);
            };
            let gone = conns.swap_remove(i);
            gone.close.notify_one();
            admission = Admission::Evicted(gone.peer);
        }
        *next += 1;
        let conn = Arc::new(Conn {
            id: *next,
            peer,
            idle_since: Mutex::new(Instant::now()),
            busy: AtomicBool::new(false),
            close: Notify::new(),
        });
        conns.push(conn.clone());
        (admission, Some(conn))
    }

    /// Takes `conn` off the list (it has closed; nothing if it was evicted).
    pub(super) fn remove(&self, conn: &Conn) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.1.retain(|c| c.id != conn.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test]
    async fn a_newcomer_at_the_limit_takes_the_place_of_the_longest_idle() {
        let pause = || std::thread::sleep(std::time::Duration::from_millis(2));
        let conns = Conns::new(3);
        let (_, a) = conns.admit(peer(1));
        pause();
        let (_, b) = conns.admit(peer(2));
        pause();
        let (_, c) = conns.admit(peer(3));
        let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
        // `a` answers a request: idle since now, so `b` is the longest idle.
        a.request_begins();
        pause();
        a.request_ends();
        let (admission, d) = conns.admit(peer(4));
        assert_eq!(admission, Admission::Evicted(peer(2)));
        b.evicted().await;
        // In a request, `c` is passed over; `a` goes next.
        c.request_begins();
        let (admission, e) = conns.admit(peer(5));
        assert_eq!(admission, Admission::Evicted(peer(1)));
        // Every one left in a request: the newcomer is closed.
        d.unwrap().request_begins();
        e.unwrap().request_begins();
        let (admission, none) = conns.admit(peer(6));
        assert_eq!(admission, Admission::Full);
        assert!(none.is_none());
        // A connection that closes makes room.
        conns.remove(&c);
        assert_eq!(conns.admit(peer(7)).0, Admission::Admitted);
    }
}
