//! A doorbell another thread rings to wake one task on a core: the governance
//! thread when it publishes a snapshot, the aggregator when it sends breaker rules
//! or asks for the pools, a signal when the drain starts. The core waits for it in
//! the ring (a read of a socket pair) instead of waking on a timer to look, so an
//! idle core sleeps until something happens.

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

/// A bell's two ends: the ringer for any thread, the bell for the core that waits.
pub(crate) fn doorbell() -> (Ringer, Bell) {
    match StdStream::pair().and_then(|(ring, wait)| {
        ring.set_nonblocking(true)?;
        Ok((ring, wait))
    }) {
        Ok((ring, wait)) => (Ringer(Some(Arc::new(ring))), Bell(Side::Std(Some(wait)))),
        Err(e) => {
            tracing::warn!(
                "no sockets for a core's doorbell ({e}): the core looks every {FALLBACK:?} instead"
            );
            (Ringer(None), Bell(Side::Polling))
        }
    }
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
pub(crate) struct Bell(Side);

#[derive(Debug)]
enum Side {
    /// Made on another thread: taken into the core's runtime at the first wait.
    Std(Option<StdStream>),
    /// Listened to by a task of the core's runtime ([`listen`]).
    Heard(Rc<Heard>),
    /// No sockets: every wait ends after [`FALLBACK`].
    Polling,
}

/// Raised by a bell's listener at each ring, for its waiter.
type Heard = Flag;

impl Bell {
    /// Waits until the bell rings (the rings since the last wait are heard
    /// together). Never returns once every ringer is gone. Cancel-safe: a wait
    /// dropped loses no ring, which the next wait hears.
    pub(crate) async fn rung(&mut self) {
        if let Side::Std(std) = &mut self.0 {
            let std = std.take().expect("taken once");
            self.0 = match std
                .set_nonblocking(true)
                .and_then(|()| UnixStream::from_std(std))
            {
                Ok(io) => {
                    let heard = Rc::new(Heard::default());
                    monoio::spawn(listen(io, Rc::downgrade(&heard)));
                    Side::Heard(heard)
                }
                Err(e) => {
                    tracing::warn!("a core's doorbell could not join its runtime ({e}): the core looks every {FALLBACK:?} instead");
                    Side::Polling
                }
            };
        }
        match &self.0 {
            Side::Heard(heard) => heard.lowered().await,
            Side::Std(_) | Side::Polling => monoio::time::sleep(FALLBACK).await,
        }
    }
}

/// Reads a bell's socket, telling its waiter of each ring, until every ringer is
/// gone (or the bell is, at the ring after).
async fn listen(mut io: UnixStream, heard: Weak<Heard>) {
    let mut buf = Vec::with_capacity(DRAIN);
    loop {
        let (res, back) = io.read(buf).await;
        buf = back;
        buf.clear();
        let Some(heard) = heard.upgrade() else { return };
        match res {
            Ok(n) if n > 0 => heard.raise(),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Every ringer dropped (or the socket failed): it never rings again.
            _ => return,
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
}
