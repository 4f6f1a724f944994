//! A doorbell another thread rings to wake tasks on a core: the governance thread
//! when it publishes a snapshot, the aggregator when it sends breaker rules or asks
//! for the pools, a signal when the drain starts. The core waits for it in the ring
//! (a read of a socket pair) instead of waking on a timer to look, so an idle core
//! sleeps until something happens. A thread has one socket pair, whatever number
//! of bells it makes: a ring wakes every waiting task on the thread, and each looks
//! at what it waits for (rings are rare: state changes, not calls).

use std::cell::RefCell;
use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream as StdStream;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use monoio::io::AsyncReadRent;
use monoio::net::UnixStream;

use crate::flag::Flag;

/// How often a bell without its sockets (the process was out of file descriptors
/// when it was made) looks instead.
const FALLBACK: Duration = Duration::from_millis(5);

/// Rings heard by one read (any more make one more wake-up, which finds nothing).
const DRAIN: usize = 4096;

thread_local! {
    /// This thread's socket pair, while a bell made here lives.
    static HUB: RefCell<Weak<Hub>> = const { RefCell::new(Weak::new()) };
}

/// A bell's two ends, made on the thread whose tasks wait for it: the ringer for
/// any thread, the bell for one task of this thread's runtime.
pub(crate) fn doorbell() -> (Ringer, Bell) {
    let hub = HUB.with_borrow_mut(|mine| {
        mine.upgrade().unwrap_or_else(|| {
            let hub = Rc::new(Hub::new());
            *mine = Rc::downgrade(&hub);
            hub
        })
    });
    let flag = Rc::new(Flag::default());
    let mut flags = hub.flags.borrow_mut();
    flags.retain(|f| f.strong_count() > 0);
    flags.push(Rc::downgrade(&flag));
    drop(flags);
    (hub.ringer.clone(), Bell { hub, flag })
}

/// Rings a [`Bell`]; cheap to clone, for any thread.
#[derive(Debug, Clone)]
pub(crate) struct Ringer(Option<Arc<StdStream>>);

impl Ringer {
    /// Wakes the bell's task (never blocks: a bell already rung and not yet heard
    /// is not rung twice).
    pub(crate) fn ring(&self) {
        if let Some(s) = &self.0 {
            // An error is a socket full of rings not yet heard, or a bell gone
            // (std sends with MSG_NOSIGNAL: no SIGPIPE for that): either way
            // there is nothing to add.
            let _ = (&**s).write(&[1]);
        }
    }
}

/// The waiting end of a doorbell, for one task on a core's runtime.
#[derive(Debug)]
pub(crate) struct Bell {
    hub: Rc<Hub>,
    flag: Rc<Flag>,
}

/// A thread's socket pair, and the flags of its bells.
#[derive(Debug)]
struct Hub {
    ringer: Ringer,
    ear: RefCell<Ear>,
    flags: RefCell<Vec<Weak<Flag>>>,
}

#[derive(Debug, Default)]
enum Ear {
    /// Not yet listened to: taken into the runtime at the first wait.
    Std(StdStream),
    /// Listened to by a task of the thread's runtime ([`listen`]).
    Listening,
    /// No sockets, or no listener: every wait ends after [`FALLBACK`].
    #[default]
    Polling,
}

impl Hub {
    fn new() -> Self {
        match StdStream::pair().and_then(|(ring, wait)| {
            ring.set_nonblocking(true)?;
            wait.set_nonblocking(true)?;
            Ok((ring, wait))
        }) {
            Ok((ring, wait)) => Hub {
                ringer: Ringer(Some(Arc::new(ring))),
                ear: RefCell::new(Ear::Std(wait)),
                flags: RefCell::default(),
            },
            Err(e) => {
                tracing::warn!(
                    "no sockets for a core's doorbell ({e}): the core looks every {FALLBACK:?} instead"
                );
                Hub {
                    ringer: Ringer(None),
                    ear: RefCell::new(Ear::Polling),
                    flags: RefCell::default(),
                }
            }
        }
    }

    /// Raises every live bell's flag, and forgets the bells gone.
    fn rung(&self) {
        self.flags.borrow_mut().retain(|f| match f.upgrade() {
            Some(flag) => {
                flag.raise();
                true
            }
            None => false,
        });
    }

    /// Starts listening on the current runtime, if nothing does yet.
    fn listen(self: &Rc<Self>) {
        let mut ear = self.ear.borrow_mut();
        match std::mem::take(&mut *ear) {
            Ear::Std(std) => match UnixStream::from_std(std) {
                Ok(io) => {
                    *ear = Ear::Listening;
                    monoio::spawn(listen(io, Rc::downgrade(self)));
                }
                Err(e) => tracing::warn!("a core's doorbell could not join its runtime ({e}): the core looks every {FALLBACK:?} instead"),
            },
            other => *ear = other,
        }
    }
}

impl Bell {
    /// Waits until the bell rings (the rings since the last wait are heard
    /// together; a ring of another bell of this thread may end the wait too).
    /// Never returns while nothing rings. Cancel-safe: a wait dropped loses
    /// no ring, which the next wait hears.
    pub(crate) async fn rung(&mut self) {
        self.hub.listen();
        let listening = matches!(*self.hub.ear.borrow(), Ear::Listening);
        if listening {
            self.flag.lowered().await
        } else {
            monoio::time::sleep(FALLBACK).await
        }
    }
}

/// Reads a thread's socket, raising its bells' flags at each ring, until the bells
/// are gone (seen at the ring after). Should the socket fail, the bells look every
/// [`FALLBACK`] from then on.
async fn listen(mut io: UnixStream, hub: Weak<Hub>) {
    let mut buf = Vec::with_capacity(DRAIN);
    loop {
        let (res, back) = io.read(buf).await;
        buf = back;
        buf.clear();
        let Some(hub) = hub.upgrade() else { return };
        match res {
            Ok(n) if n > 0 => hub.rung(),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // The socket failed (its writing end is the hub's own: it does not
            // end while the hub lives).
            _ => {
                *hub.ear.borrow_mut() = Ear::Polling;
                return hub.rung();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn runtime() -> crate::runtime::Runtime {
        crate::runtime::build().unwrap()
    }

    #[test]
    fn a_ring_from_another_thread_wakes_the_waiting_task() {
        let (ringer, mut bell) = doorbell();
        let mut rt = runtime();
        rt.block_on(async move {
            let started = Instant::now();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                ringer.ring();
                ringer
            });
            bell.rung().await;
            assert!(started.elapsed() >= Duration::from_millis(40));
            let ringer = t.join().unwrap();
            // Many rings before a wait are heard as one, and the next wait waits.
            for _ in 0..1000 {
                ringer.ring();
            }
            bell.rung().await;
            let waited =
                crate::race::race(bell.rung(), monoio::time::sleep(Duration::from_millis(30)));
            assert!(
                matches!(waited.await, crate::race::Either::Right(())),
                "rung with no ring"
            );
            ringer.ring();
            bell.rung().await;
        });
    }

    /// Run by [`ringing_a_bell_that_is_gone_raises_no_sigpipe`] in a process of
    /// its own: SIGPIPE's default action is process-wide, and it ends the process.
    #[test]
    fn ring_a_gone_bell_with_sigpipe_at_its_default() {
        if std::env::var_os("RINGSOA_BELL_SIGPIPE").is_none() {
            return;
        }
        let (ringer, bell) = doorbell();
        drop(bell);
        // SAFETY: this process runs this test alone.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        ringer.ring();
        ringer.ring();
    }

    #[test]
    fn ringing_a_bell_that_is_gone_raises_no_sigpipe() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "bell::tests::ring_a_gone_bell_with_sigpipe_at_its_default",
            ])
            .env("RINGSOA_BELL_SIGPIPE", "1")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{status:?}");
    }

    #[test]
    fn a_bell_whose_ringers_are_gone_never_rings() {
        let (ringer, mut bell) = doorbell();
        drop(ringer);
        let mut rt = runtime();
        rt.block_on(async move {
            let waited =
                crate::race::race(bell.rung(), monoio::time::sleep(Duration::from_millis(30)));
            assert!(
                matches!(waited.await, crate::race::Either::Right(())),
                "rang with no ringer"
            );
        });
    }

    #[test]
    fn bells_of_one_thread_share_one_socket_pair_and_each_hears_a_ring() {
        let (first, mut one) = doorbell();
        let (second, mut two) = doorbell();
        let (a, b) = (first.0.as_ref().unwrap(), second.0.as_ref().unwrap());
        assert!(Arc::ptr_eq(a, b), "one socket pair a thread");
        let elsewhere = std::thread::spawn(|| doorbell().0).join().unwrap();
        assert!(!Arc::ptr_eq(a, elsewhere.0.as_ref().unwrap()));
        let mut rt = runtime();
        rt.block_on(async move {
            first.ring();
            one.rung().await;
            two.rung().await;
        });
    }
}
