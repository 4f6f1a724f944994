//! Zero-downtime handover: a new process on the same port takes over from a running
//! one without refusing a connection.
//!
//! Every server offers its listening sockets on an abstract Unix socket named for its
//! address (`ringsoa-handover:ADDR`, in the network namespace, so no file is left
//! behind). A new server started with `handover` asks there first and is handed the
//! very sockets the running one accepts on (SCM_RIGHTS, to the same user only), as
//! Envoy's hot restart and HAProxy's seamless reload do: when the old process
//! drains, it stops accepting and closes its copies, and no listener closes, so
//! nothing queued on it is reset and no connection arriving in that instant is
//! refused. The old process keeps the handover's connection open: should the new one
//! exit before the old one drains, it offers the sockets again and registers its
//! address again (the new one's node replaced its own). With no server to
//! ask, the new one joins the old one's SO_REUSEPORT group, and the kernel must move
//! what is queued on a closing listener (`net.ipv4.tcp_migrate_req=1`).

use std::io::{IoSlice, IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::net::{
    recv, recvmsg, sendmsg, sockopt, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use socket2::Socket;

/// The most descriptors one message may carry (the kernel's SCM_MAX_FD).
const MAX_FDS: usize = 253;

/// A message's one data byte: one with more to follow, or the last message from a
/// process that takes the address back ([`BACK`]). Earlier versions end with 1
/// (and read anything but [`MORE`] as the last).
const MORE: u8 = 2;
const LAST_TAKES_BACK: u8 = 3;

/// The byte a successor sends back when it stops before this process drained: it
/// gives the address back (this process registers it again at once). Sent only to
/// a process that ended its sockets with [`LAST_TAKES_BACK`]: an earlier version
/// would read it as the successor's exit.
const BACK: u8 = 4;

/// How long a new process waits for the running one to hand its sockets over.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

fn name(addr: SocketAddr) -> std::io::Result<UnixAddr> {
    UnixAddr::from_abstract_name(format!("ringsoa-handover:{addr}"))
}

/// The sockets a predecessor handed over.
struct Received {
    fds: Vec<OwnedFd>,
    pid: i32,
    /// Whether it takes the address back ([`LAST_TAKES_BACK`]).
    takes_back: bool,
}

/// Reads the messages of descriptors up to the last.
fn receive(s: &UnixStream) -> std::io::Result<Received> {
    let pid = same_user(s)?;
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut fds = Vec::new();
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut byte = [0u8; 1];
        let got = recvmsg(
            s,
            &mut [IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        if got.bytes == 0 {
            return Err(std::io::Error::other(format!(
                "process {pid} closed the handover without sending all its sockets"
            )));
        }
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if byte[0] != MORE {
            let takes_back = byte[0] == LAST_TAKES_BACK;
            return Ok(Received {
                fds,
                pid,
                takes_back,
            });
        }
    }
}

/// What runs when the sockets go to a successor (`true`) or come back.
type OnMove = Box<dyn Fn(bool) + Send>;

/// This server's offer of its listening sockets to the next process on its address,
/// and its end of the handover from the process before it.
pub(crate) struct Offer {
    addr: SocketAddr,
    /// Copies of the cores' listeners, until the drain withdraws them (held past it,
    /// they would keep the listeners open).
    fds: Mutex<Option<Vec<OwnedFd>>>,
    /// The offering socket while it holds the name (the drain wakes its accept).
    listener: Mutex<Option<Arc<UnixListener>>>,
    /// The connection to the process the sockets went to; it ends when that process
    /// exits (then they are offered again), or the drain shuts it.
    successor: Mutex<Option<UnixStream>>,
    /// The sockets went to a process that still runs.
    handed: AtomicBool,
    /// The connection from the process that handed its sockets to this one, open for
    /// as long as this process runs: its end tells that process when this one exits.
    /// With it, whether that process takes the address back ([`BACK`]).
    predecessor: Mutex<Option<(UnixStream, bool)>>,
    /// Run with true when the sockets go to a successor, with false when they
    /// come back from it.
    on_move: Mutex<Option<OnMove>>,
}

impl Offer {
    pub fn new(addr: SocketAddr) -> Arc<Self> {
        Arc::new(Offer {
            addr,
            fds: Mutex::new(None),
            listener: Mutex::new(None),
            successor: Mutex::new(None),
            handed: AtomicBool::new(false),
            predecessor: Mutex::new(None),
            on_move: Mutex::new(None),
        })
    }

    /// Asks the server running on this address for its listening sockets. Empty
    /// when none answers (no server there, or not a ringsoa one); a socket that is
    /// not a TCP listener on the address is dropped with a warning.
    pub fn take(&self) -> Vec<std::net::TcpListener> {
        let addr = self.addr;
        let got = name(addr)
            .and_then(|n| UnixStream::connect_addr(&n))
            .and_then(|s| {
                s.set_read_timeout(Some(ASK_TIMEOUT))?;
                Ok((receive(&s)?, s))
            });
        let (got, conn) = match got {
            Ok(got) => got,
            Err(e) => {
                tracing::info!(%addr, "handover: no running server handed over its listening sockets ({e}): joining its SO_REUSEPORT group");
                return Vec::new();
            }
        };
        *self.predecessor.lock().unwrap() = Some((conn, got.takes_back));
        let pid = got.pid;
        let listeners: Vec<std::net::TcpListener> = got
            .fds
            .into_iter()
            .map(Socket::from)
            .filter(|s| {
                let ok = s.is_listener().unwrap_or(false)
                    && s.local_addr().ok().and_then(|a| a.as_socket()) == Some(addr);
                if !ok {
                    tracing::warn!(%addr, "handover: process {pid} handed over a socket that is not a TCP listener on this address: ignored");
                }
                ok
            })
            .map(Into::into)
            .collect();
        if listeners.is_empty() {
            tracing::info!(%addr, "handover: process {pid} handed over no listening socket: joining its SO_REUSEPORT group");
            return listeners;
        }
        tracing::info!(%addr, pid, sockets = listeners.len(), "handover: took the running server's listening sockets");
        listeners
    }

    /// Whether the sockets went to a process that still runs.
    pub fn handed(&self) -> bool {
        self.handed.load(Ordering::Acquire)
    }

    /// Runs `f(true)` whenever the sockets go to a successor, and `f(false)`
    /// whenever they come back from one that stops before this process drained and
    /// handed them on to no other (to register the address again).
    pub fn on_move(&self, f: impl Fn(bool) + Send + 'static) {
        *self.on_move.lock().unwrap() = Some(Box::new(f));
    }

    /// Tells the process this one took its sockets from, if it still serves them and
    /// this one handed them to no other, that this one is stopping: it registers the
    /// address again at once (its node replacing this one's) instead of when this
    /// process exits. Whether it was told.
    pub fn give_back(&self) -> bool {
        if self.handed() {
            return false;
        }
        let predecessor = self.predecessor.lock().unwrap();
        let Some((conn, takes_back)) = predecessor.as_ref() else {
            return false;
        };
        if !takes_back {
            tracing::info!(addr = %self.addr, "handover: the process this one took over from is of an earlier version, which registers the address again only once this one has exited");
            return false;
        }
        // Its end shuts when it drains (or exits): then it takes nothing back.
        let mut byte = [0u8; 1];
        let peeked = recv(conn, &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT);
        if peeked != Err(rustix::io::Errno::AGAIN) {
            return false;
        }
        // Kept open: its close still tells the predecessor when this process exits.
        rustix::net::send(conn, &[BACK], SendFlags::NOSIGNAL).is_ok()
    }

    /// Offers `fds` (copies of every core's listener) until the drain, on a thread
    /// of its own. Logs and offers nothing if the name is taken; nothing for port 0.
    pub fn open(self: &Arc<Self>, fds: Vec<OwnedFd>) {
        if self.addr.port() == 0 {
            return; // each core has a port of its own: nothing to take over
        }
        *self.fds.lock().unwrap() = Some(fds);
        let Some(listener) = self.bind() else {
            self.fds.lock().unwrap().take();
            return;
        };
        let offer = self.clone();
        let spawned = std::thread::Builder::new()
            .name("ringsoa-handover".into())
            .spawn(move || offer.serve(listener));
        if let Err(e) = spawned {
            tracing::warn!("handover: no thread to offer the listening sockets: {e}");
        }
    }

    /// Takes the name, to offer the sockets under it.
    fn bind(&self) -> Option<Arc<UnixListener>> {
        match name(self.addr).and_then(|n| UnixListener::bind_addr(&n)) {
            Ok(l) => {
                let l = Arc::new(l);
                *self.listener.lock().unwrap() = Some(l.clone());
                Some(l)
            }
            Err(e) => {
                tracing::warn!(addr = %self.addr, "handover: cannot offer the listening sockets to a successor ({e}): it will join the SO_REUSEPORT group instead");
                None
            }
        }
    }

    /// Hands the sockets to the first process of this user that asks; should that
    /// process exit before this one drains, offers them again.
    fn serve(&self, mut listener: Arc<UnixListener>) {
        loop {
            let conn = match listener.accept() {
                Ok((conn, _)) => conn,
                Err(e) => {
                    tracing::debug!(addr = %self.addr, "handover: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let fds = self.fds.lock().unwrap();
            let Some(offered) = fds.as_ref() else {
                return; // withdrawn: this was the drain's wake-up call
            };
            let pid = match same_user(&conn) {
                Ok(pid) => pid,
                Err(e) => {
                    tracing::warn!(addr = %self.addr, "handover: refused the listening sockets: {e}");
                    continue;
                }
            };
            // The name is free before the successor has the sockets: it offers them
            // under it from then on.
            self.listener.lock().unwrap().take();
            drop(listener);
            let mut back = false;
            match send(&conn, offered, LAST_TAKES_BACK) {
                Ok(()) => {
                    tracing::info!(addr = %self.addr, pid, sockets = offered.len(), "handover: handed the listening sockets to the new process; drain this one once it serves");
                    *self.successor.lock().unwrap() = conn.try_clone().ok();
                    self.handed.store(true, Ordering::Release);
                    drop(fds);
                    self.moved(true);
                    // Until the successor exits (its end closes), gives the address
                    // back as it stops, or the drain shuts this.
                    let mut byte = [0u8; 1];
                    let given = matches!((&conn).read(&mut byte), Ok(1) if byte[0] == BACK);
                    if given && self.fds.lock().unwrap().is_some() {
                        self.handed.store(false, Ordering::Release);
                        tracing::info!(addr = %self.addr, pid, "handover: the process the listening sockets went to is stopping: registering the address again");
                        self.moved(false);
                        // Offered again once it has exited and freed the name.
                        let _ = (&conn).read(&mut byte);
                    }
                    self.successor.lock().unwrap().take();
                    if self.fds.lock().unwrap().is_none() {
                        return; // the drain: the successor still has the sockets
                    }
                    if !given {
                        self.handed.store(false, Ordering::Release);
                        tracing::warn!(addr = %self.addr, pid, "handover: the process the listening sockets went to has exited: offering them again");
                    }
                    back = !given;
                }
                Err(e) => {
                    tracing::warn!(addr = %self.addr, pid, "handover: sending the listening sockets failed: {e}")
                }
            }
            // A name held by another process means the successor handed the sockets
            // on before it exited: that process has the address (and its registration).
            listener = match self.bind() {
                Some(l) => l,
                None => return,
            };
            if back {
                self.moved(false);
            }
        }
    }

    /// Runs the hook for sockets that went (`true`) or came back.
    fn moved(&self, handed: bool) {
        if let Some(f) = self.on_move.lock().unwrap().as_ref() {
            f(handed);
        }
    }

    /// Stops offering and closes the copies (before the cores close theirs).
    pub fn withdraw(&self) {
        if self.fds.lock().unwrap().take().is_none() {
            return;
        }
        // Wake the thread: in its accept (while it holds the name) or in its wait
        // for the successor.
        if self.listener.lock().unwrap().is_some() {
            let _ = name(self.addr).and_then(|n| UnixStream::connect_addr(&n));
        }
        if let Some(s) = self.successor.lock().unwrap().as_ref() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The process id of the peer of `conn`, if it runs as this process's user.
fn same_user(conn: &UnixStream) -> std::io::Result<i32> {
    let peer = sockopt::socket_peercred(conn)?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let pid = peer.pid.as_raw_nonzero().get();
    if peer.uid.as_raw() != me {
        return Err(std::io::Error::other(format!(
            "process {pid} runs as user {}, not {me}",
            peer.uid.as_raw()
        )));
    }
    Ok(pid)
}

/// Sends `fds` in messages of at most [`MAX_FDS`], each but the last marked [`MORE`]
/// (a process of an earlier version takes only the first message's), the last
/// marked `last`.
fn send(conn: &UnixStream, fds: &[OwnedFd], last: u8) -> std::io::Result<()> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let chunks: Vec<&[OwnedFd]> = match fds.len() {
        0 => vec![&[]],
        _ => fds.chunks(MAX_FDS).collect(),
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let chunk: Vec<_> = chunk.iter().map(|f| f.as_fd()).collect();
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !chunk.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&chunk)) {
            return Err(std::io::Error::other(
                "the descriptors do not fit one message",
            ));
        }
        let mark = if i + 1 < chunks.len() { MORE } else { last };
        sendmsg(
            conn,
            &[IoSlice::new(&[mark])],
            &mut control,
            SendFlags::empty(),
        )?;
    }
    Ok(())
}

/// Fails if another process listens on `addr`, or if `addr` cannot be listened on at
/// all (not a local address, a port this user may not bind). A plain bind fails if
/// anyone holds the port, SO_REUSEPORT or not — but so do the half-closed connections
/// a crashed predecessor left behind (FIN_WAIT2 until their clients close), so a bind
/// that fails for the port being in use is confirmed by connecting: only a listener
/// that accepts blocks the start.
pub(crate) fn refuse_a_live_listener(addr: SocketAddr) -> std::io::Result<()> {
    let Err(e) = std::net::TcpListener::bind(addr) else {
        return Ok(());
    };
    if e.kind() != std::io::ErrorKind::AddrInUse {
        return Err(crate::addr::cannot_listen(addr, e));
    }
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        return Err(std::io::Error::new(
            e.kind(),
            format!(
                "{addr} is in use by another process ({e}); to take it over in a \
                 zero-downtime restart, enable handover (`ServerBuilder::handover(true)`, \
                 ringsoa-demo's `--handover`)"
            ),
        ));
    }
    tracing::info!(%addr, "the port is held only by old connections, not a listener: starting");
    Ok(())
}

/// Whether the kernel moves connections queued on a closing SO_REUSEPORT listener to
/// another listener of the group (`net.ipv4.tcp_migrate_req`, Linux 5.14+), as a
/// handover by joining the group needs.
pub(crate) fn migrates_queued_connections() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").is_ok_and(|v| v.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More sockets than one message carries arrive whole, in order.
    #[test]
    fn sockets_beyond_one_message_all_arrive() {
        for count in [0, 1, MAX_FDS, MAX_FDS + 1, 3 * MAX_FDS + 7] {
            let listeners: Vec<std::net::TcpListener> = (0..count)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
                .collect();
            let ports: Vec<_> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
            let fds: Vec<OwnedFd> = listeners.into_iter().map(Into::into).collect();
            let (a, b) = UnixStream::pair().unwrap();
            let sender = std::thread::spawn(move || send(&a, &fds, LAST_TAKES_BACK));
            let got = receive(&b).unwrap();
            sender.join().unwrap().unwrap();
            assert_eq!(got.pid, std::process::id() as i32);
            assert!(got.takes_back);
            let got: Vec<_> = got
                .fds
                .into_iter()
                .map(|fd| std::net::TcpListener::from(fd).local_addr().unwrap())
                .collect();
            assert_eq!(got, ports, "{count} sockets");
        }
    }

    /// The last message's mark from an earlier version.
    const LAST: u8 = 1;

    /// A process of an earlier version ends its sockets with [`LAST`]: it is never
    /// sent [`BACK`], which it would take for this process's exit.
    #[test]
    fn an_earlier_version_is_not_asked_to_take_the_address_back() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        send(&a, &[OwnedFd::from(listener)], LAST).unwrap();
        let got = receive(&b).unwrap();
        assert_eq!(got.fds.len(), 1);
        assert!(!got.takes_back);
        let offer = Offer::new("127.0.0.1:1".parse().unwrap());
        *offer.predecessor.lock().unwrap() = Some((b, got.takes_back));
        assert!(!offer.give_back());
        a.set_nonblocking(true).unwrap();
        let nothing = (&a).read(&mut [0u8; 1]);
        assert_eq!(
            nothing.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock)
        );
        // A predecessor of this version is told.
        let (a, b) = UnixStream::pair().unwrap();
        *offer.predecessor.lock().unwrap() = Some((b, true));
        assert!(offer.give_back());
        let mut byte = [0u8; 1];
        assert_eq!((&a).read(&mut byte).unwrap(), 1);
        assert_eq!(byte[0], BACK);
    }
}
