//! [`SharedClient`]: a `Send + Sync + Clone` handle for programs that are not
//! ringsoa servers — a tokio (axum, tonic) application, plain threads. Calls go to
//! ringsoa client threads of its own, each with its core-local [`Client`] (pools,
//! health, retries as on a server's core); the caller gets a future any executor
//! can await, or blocks on it with [`wait`].
//!
//! A call's arguments are encoded on the calling thread and its reply decoded there;
//! between them travel bytes, the call's context and a oneshot answer. A client
//! thread that has nothing to do waits on a socket pair, written to (one byte) only
//! when it sleeps: its runtime has no cross-thread wake-ups of its own. A caller
//! that stops waiting (its future dropped: a timeout, an aborted task) sends word to
//! cancel the call, which then ends as a dropped call on a server's core does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use monoio::io::AsyncReadRent;
use tokio::sync::oneshot;

use super::conn::reply_reader;
use super::Client;
use crate::flag::Flag;
use crate::protocol::{with_codec, Codec, Decode, Encode, Encoded, Protocol, ProtocolReader};
use crate::race::{race, Either};
use crate::rpc::{CallContext, CallError, Channel};
use crate::transport::conn::KEEP_CAPACITY;

/// Why a call awaited on a thread running ringsoa's runtime is refused: its answer's
/// wake-up, from the client thread, would never reach the task, which would wait for
/// ever.
const ON_A_RUNTIME: &str = "a SharedClient's call cannot be awaited on a thread \
    running ringsoa's runtime (a server's core, or `runtime::build`'s): its answer, \
    sent from another thread, would never wake the task; call through a Client made \
    on this thread";

/// What comes back from a client thread: the reply from its message header on
/// (`None` for oneway), and the call's context with its child counter and reply meta.
type Answer = (Result<Option<Bytes>, CallError>, Option<CallContext>);

/// What a client thread is sent. Calls are nearly all of it, moved by value: boxing
/// them to shrink the rare variants would cost an allocation a call.
#[allow(clippy::large_enum_variant)]
enum Mail {
    /// A call to make.
    Call(Job),
    /// A large reply's buffer, its result decoded: kept for the next large message.
    Spare(BytesMut),
    /// The caller of the job with this id stopped waiting for its answer.
    Cancel(usize),
}

/// One call handed to a client thread.
struct Job {
    /// Unique among the thread's jobs.
    id: usize,
    method: &'static str,
    oneway: bool,
    args: Bytes,
    cx: Option<CallContext>,
    answer: oneshot::Sender<Answer>,
}

/// A handle on ringsoa client threads; clone it freely and call from any thread.
/// Generated client stubs work over it (`DemoClient::new(shared.clone())`), and
/// their futures are `Send`.
#[derive(Clone)]
pub struct SharedClient {
    inner: Arc<Inner>,
}

struct Inner {
    threads: Vec<Thread>,
    next: AtomicUsize,
    protocol: Protocol,
    /// The clients' decode budget for a reply.
    max_decoded: usize,
}

/// One client thread's mailbox.
struct Thread {
    jobs: Sender<Mail>,
    /// Set by the thread before it waits on its socket.
    sleeping: Arc<AtomicBool>,
    /// Our end of its socket pair: a byte here wakes it.
    wake: UnixStream,
}

impl Thread {
    fn send(&self, mail: Mail) -> Result<(), ()> {
        self.jobs.send(mail).map_err(drop)?;
        if self.sleeping.swap(false, Ordering::SeqCst) {
            // Non-blocking: a full socket already holds a wake-up.
            let _ = (&self.wake).write(&[1]);
        }
        Ok(())
    }
}

impl SharedClient {
    /// Starts `threads` client threads (at least one), each running ringsoa's
    /// runtime with the `Client` that `make` builds there (so its pools stay on that
    /// thread); calls are spread over them in turn. `protocol` must be the one the
    /// clients speak (`ClientConfig::conn.protocol`). The threads end when the last
    /// handle is dropped.
    pub fn spawn<F>(threads: usize, protocol: Protocol, make: F) -> std::io::Result<SharedClient>
    where
        F: Fn() -> Client + Send + Sync + 'static,
    {
        SharedClient::spawn_each(threads, protocol, move |_| make())
    }

    /// [`SharedClient::spawn`], `make` given each thread's index (from 0): for
    /// what must differ between the threads' clients, such as an aperture's place
    /// (`Coordinate::split(thread, threads)`).
    pub fn spawn_each<F>(
        threads: usize,
        protocol: Protocol,
        make: F,
    ) -> std::io::Result<SharedClient>
    where
        F: Fn(usize) -> Client + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        let mut mailboxes = Vec::new();
        let mut max_decoded = crate::protocol::DEFAULT_MAX_DECODED;
        for i in 0..threads.max(1) {
            let (jobs, rx) = crossbeam_channel::unbounded::<Mail>();
            let (wake, theirs) = UnixStream::pair()?;
            wake.set_nonblocking(true)?;
            // On the epoll driver a blocking socket's read would block the thread
            // (io_uring does not mind).
            theirs.set_nonblocking(true)?;
            let sleeping = Arc::new(AtomicBool::new(false));
            let make = make.clone();
            let asleep = sleeping.clone();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("ringsoa-client-{i}"))
                .spawn(move || {
                    let mut rt = match crate::runtime::build() {
                        Ok(rt) => rt,
                        Err(e) => return drop(ready_tx.send(Err(e))),
                    };
                    // Built on the thread's runtime: what `make` starts there (a
                    // discovering client's view, `Governance::follow_here`) runs there.
                    rt.block_on(async move {
                        let client = make(i);
                        let _ = ready_tx.send(Ok(client.max_decoded()));
                        serve(client, rx, theirs, asleep).await
                    });
                })?;
            max_decoded = ready_rx
                .recv()
                .map_err(|_| std::io::Error::other("a client thread ended while starting"))??;
            mailboxes.push(Thread {
                jobs,
                sleeping,
                wake,
            });
        }
        Ok(SharedClient {
            inner: Arc::new(Inner {
                threads: mailboxes,
                next: AtomicUsize::new(0),
                protocol,
                max_decoded,
            }),
        })
    }

    /// Sends one call to a client thread and waits for its answer; returns the
    /// thread's index with it.
    async fn send<A: Encode>(
        &self,
        cx: Option<&mut CallContext>,
        method: &'static str,
        oneway: bool,
        args: &A,
    ) -> Result<(usize, Option<Bytes>), CallError> {
        if crate::runtime::running_here() {
            return Err(CallError::Rejected(ON_A_RUNTIME.into()));
        }
        let mut buf = BytesMut::new();
        with_codec!(self.inner.protocol, C => args.encode(&mut C::writer(&mut buf)));
        let (answer, answered) = oneshot::channel();
        // A copy goes: the caller's context stays whole should it stop waiting.
        let cx_in = cx.as_deref().cloned();
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let n = id % self.inner.threads.len();
        let thread = &self.inner.threads[n];
        let job = Job {
            id,
            method,
            oneway,
            args: buf.freeze(),
            cx: cx_in,
            answer,
        };
        if thread.send(Mail::Call(job)).is_err() {
            return Err(CallError::Rejected(
                "the shared client's thread has ended".into(),
            ));
        }
        let waiting = Waiting {
            thread,
            id: Some(id),
            cx,
        };
        let answer = answered.await;
        let back = waiting.answered();
        let (result, cx_out) = answer
            .map_err(|_| CallError::Rejected("the shared client's thread has ended".into()))?;
        if let (Some(back), Some(cx)) = (back, cx_out) {
            *back = cx;
        }
        result.map(|reply| (n, reply))
    }

    /// Hands thread `n` back the buffer of a large reply it read, once decoded,
    /// unless the result still holds a view of it.
    fn give_back(&self, n: usize, msg: Bytes) {
        if let Ok(buf) = msg.try_into_mut() {
            let _ = self.inner.threads[n].send(Mail::Spare(buf));
        }
    }
}

/// A call sent to a client thread and not answered yet: dropped so (its caller
/// stopped waiting), it tells the thread to cancel the call, and counts the call
/// in the caller's context as made (the next call gets the next rpc id, as after
/// a dropped call on a core).
struct Waiting<'a, 'c> {
    thread: &'a Thread,
    /// The job's id; none once answered.
    id: Option<usize>,
    /// The caller's context.
    cx: Option<&'c mut CallContext>,
}

impl<'c> Waiting<'_, 'c> {
    /// The caller's context, for the answer's.
    fn answered(mut self) -> Option<&'c mut CallContext> {
        self.id = None;
        self.cx.take()
    }
}

impl Drop for Waiting<'_, '_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let _ = self.thread.send(Mail::Cancel(id));
            if let Some(cx) = self.cx.as_deref_mut().filter(|cx| cx.has_chain()) {
                cx.calls_made += 1;
            }
        }
    }
}

/// The jobs running on a client thread, by id, each with the flag that cancels it.
type Running = Rc<RefCell<HashMap<usize, Rc<Flag>>>>;

/// A client thread's loop: start every job that came, then sleep on the socket
/// until a byte says more came; ends when every handle is gone.
async fn serve(client: Client, jobs: Receiver<Mail>, wake: UnixStream, sleeping: Arc<AtomicBool>) {
    let client = Rc::new(client);
    let Ok(mut wake) = monoio::net::UnixStream::from_std(wake) else {
        return;
    };
    let running = Running::default();
    let mut buf = vec![0u8; 64];
    loop {
        loop {
            match jobs.try_recv() {
                // Its caller already gone: nothing to start (its word follows).
                Ok(Mail::Call(job)) if job.answer.is_closed() => {}
                Ok(Mail::Call(job)) => {
                    let cancel = Rc::new(Flag::default());
                    running.borrow_mut().insert(job.id, cancel.clone());
                    drop(monoio::spawn(run(
                        client.clone(),
                        job,
                        cancel,
                        running.clone(),
                    )));
                }
                Ok(Mail::Cancel(id)) => {
                    if let Some(cancel) = running.borrow_mut().remove(&id) {
                        cancel.raise();
                    }
                }
                Ok(Mail::Spare(buf)) => client.keep_spare(buf),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        sleeping.store(true, Ordering::SeqCst);
        // A job sent before the flag was up is seen here; one sent after wakes us.
        if !jobs.is_empty() {
            sleeping.store(false, Ordering::SeqCst);
            continue;
        }
        let (read, back) = wake.read(buf).await;
        buf = back;
        if !matches!(read, Ok(n) if n > 0) {
            return;
        }
    }
}

/// Runs one job on a client thread, unless its caller stops waiting first: then
/// the call is dropped, its connection closed, as a caller's on a core would be.
async fn run(client: Rc<Client>, mut job: Job, cancel: Rc<Flag>, running: Running) {
    let args = Encoded(&job.args);
    let call = client.call_raw(job.cx.as_mut(), job.method, job.oneway, &args);
    // The cancellation looked at first: a job its caller gave up before it ran
    // (its word came in the same batch) never starts its call.
    let outcome = race(cancel.up(), call).await;
    running.borrow_mut().remove(&job.id);
    if let Either::Right(result) = outcome {
        let result = result.map(|reply| reply.map(|(msg, _)| msg));
        let _ = job.answer.send((result, job.cx));
    }
}

impl Channel for SharedClient {
    async fn call<A: Encode, T: Decode>(
        &self,
        cx: Option<&mut CallContext>,
        method: &'static str,
        args: &A,
    ) -> Result<T, CallError> {
        let (n, msg) = self.send(cx, method, false, args).await?;
        let msg =
            msg.ok_or_else(|| CallError::Rejected("a call came back without a reply".into()))?;
        fn body<C: Codec, T: Decode>(msg: Bytes, max_decoded: usize) -> Result<T, CallError> {
            let mut r = reply_reader::<C>(msg, max_decoded);
            r.read_message_begin()?;
            Ok(T::decode(&mut r)?)
        }
        let max_decoded = self.inner.max_decoded;
        let large = (msg.len() > KEEP_CAPACITY).then(|| msg.clone());
        let body = with_codec!(self.inner.protocol, C => body::<C, T>(msg, max_decoded));
        if let Some(msg) = large {
            self.give_back(n, msg);
        }
        body
    }

    async fn oneway<A: Encode>(
        &self,
        cx: Option<&mut CallContext>,
        method: &'static str,
        args: &A,
    ) -> Result<(), CallError> {
        self.send(cx, method, true, args).await.map(drop)
    }
}

/// Runs `future` to completion on this thread, parking between wake-ups: for
/// synchronous code calling through a [`SharedClient`]
/// (`wait(demo.add(None, 40, 2))`). Not for use inside an async runtime's thread.
pub fn wait<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
