//! [`Governed`]: one core's end of the governance thread — the core's own `Arc` of
//! the latest [`Snapshot`], taken from a [`latest`](super::latest) mailbox when its
//! publish rings the core, read with no lock, and the subscribers told of each new one.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::latest::Mailbox;
use super::snapshot::{ServiceName, Snapshot};
use crate::flag::Flag;

/// How often [`Governed::loaded`] looks for a service's providers on a view that
/// does not follow its snapshots.
pub const POLL: Duration = Duration::from_millis(5);

/// The most services a process follows (a bound on what callers naming
/// services, e.g. relay targets, can make it hold).
pub const MAX_SERVICES: usize = 1024;

/// What a core asks of the governance thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Load and follow the providers of this service.
    Watch(ServiceName),
}

/// Sends a [`Request`] to the governance thread (never blocks).
pub type Requests = Arc<dyn Fn(Request) + Send + Sync>;

/// A subscriber: told of every new snapshot; returns `false` to unsubscribe.
type Subscriber = Box<dyn Fn(&Snapshot) -> bool>;

/// One core's view of governance state (see the module docs). Build one per core
/// with `Governance::core`, on that core.
pub struct Governed {
    current: RefCell<Arc<Snapshot>>,
    updates: Mailbox<Arc<Snapshot>>,
    requests: Requests,
    asked: RefCell<HashSet<ServiceName>>,
    subscribers: RefCell<Vec<Subscriber>>,
    following: Cell<bool>,
}

impl fmt::Debug for Governed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Governed")
            .field("version", &self.current.borrow().version)
            .finish_non_exhaustive()
    }
}

impl Governed {
    /// A view starting at `initial`, fed by `updates`, asking through `requests`.
    pub fn new(
        initial: Arc<Snapshot>,
        updates: Mailbox<Arc<Snapshot>>,
        requests: Requests,
    ) -> Self {
        Governed {
            current: RefCell::new(initial),
            updates,
            requests,
            asked: RefCell::default(),
            subscribers: RefCell::default(),
            following: Cell::new(false),
        }
    }

    /// This core's current snapshot (its own `Arc`: cloning it touches no other core).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.borrow().clone()
    }

    /// Reads the current snapshot without cloning it.
    pub fn with<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> R {
        f(&self.current.borrow())
    }

    /// Calls `f` with every new snapshot, on this core, until it returns `false`.
    pub fn subscribe(&self, f: impl Fn(&Snapshot) -> bool + 'static) {
        self.subscribers.borrow_mut().push(Box::new(f));
    }

    /// Asks the governance thread to load and follow `service`'s providers (once;
    /// at most [`MAX_SERVICES`] services).
    pub fn watch(&self, service: &ServiceName) {
        let mut asked = self.asked.borrow_mut();
        if asked.len() < MAX_SERVICES && asked.insert(service.clone()) {
            (self.requests)(Request::Watch(service.clone()));
        }
    }

    /// Waits until `service`'s providers are loaded, at most `timeout`; whether
    /// they are. A view that [follows](Self::follow) its snapshots hears of each as
    /// it comes; one that does not looks every [`POLL`].
    pub async fn loaded(self: &Rc<Self>, service: &ServiceName, timeout: Duration) -> bool {
        self.watch(service);
        self.refresh();
        let here = |s: &Snapshot| s.services.contains_key(service);
        if self.with(here) {
            return true;
        }
        if !self.following.get() {
            let end = Instant::now() + timeout;
            while Instant::now() < end {
                monoio::time::sleep(POLL).await;
                self.refresh();
                if self.with(here) {
                    return true;
                }
            }
            return false;
        }
        let arrived = Rc::new(Flag::default());
        let (told, wanted) = (Rc::downgrade(&arrived), service.clone());
        // Unsubscribes at the snapshot that has them, or the first one after the
        // wait gave up.
        self.subscribe(move |snap| match told.upgrade() {
            Some(flag) if snap.services.contains_key(&wanted) => {
                flag.raise();
                false
            }
            Some(_) => true,
            None => false,
        });
        monoio::time::timeout(timeout, arrived.up()).await.is_ok()
    }

    /// Starts taking each new snapshot on this core's runtime as it is published
    /// (once; the task ends at the first publish after the view is dropped).
    pub fn follow(self: &Rc<Self>) {
        if self.following.get() {
            return;
        }
        let Some(mut bell) = self.updates.bell() else {
            return;
        };
        self.following.set(true);
        let weak: Weak<Self> = Rc::downgrade(self);
        monoio::spawn(async move {
            loop {
                bell.rung().await;
                let Some(view) = weak.upgrade() else { break };
                view.refresh();
            }
        });
    }

    /// Takes the newest snapshot waiting, if any, and tells the subscribers.
    pub fn refresh(&self) {
        let Some(latest) = self.updates.take() else {
            return;
        };
        *self.current.borrow_mut() = latest.clone();
        // A subscriber may subscribe others: run the ones present now, keep the rest.
        let subs = std::mem::take(&mut *self.subscribers.borrow_mut());
        let kept: Vec<Subscriber> = subs.into_iter().filter(|f| f(&latest)).collect();
        let mut now = self.subscribers.borrow_mut();
        let added = std::mem::replace(&mut *now, kept);
        now.extend(added);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_newest_snapshot_wins_and_subscribers_may_leave() {
        let (tx, rx) = crate::control::latest::mailbox();
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = asked.clone();
        let g = Governed::new(
            Arc::new(Snapshot::empty("a", "c")),
            rx,
            Arc::new(move |r| log.lock().unwrap().push(r)),
        );
        let seen = Rc::new(Cell::new(0u64));
        let s = seen.clone();
        g.subscribe(move |snap| {
            s.set(snap.version);
            snap.version < 2
        });
        for v in 1..=2 {
            let mut snap = Snapshot::empty("a", "c");
            snap.version = v;
            assert!(tx.publish(Arc::new(snap)));
        }
        g.refresh();
        assert_eq!(g.snapshot().version, 2);
        assert_eq!(seen.get(), 2, "told once, of the newest");
        let mut snap = Snapshot::empty("a", "c");
        snap.version = 3;
        assert!(tx.publish(Arc::new(snap)));
        g.refresh();
        assert_eq!(seen.get(), 2, "unsubscribed");
        let svc: ServiceName = "x/y".parse().unwrap();
        g.watch(&svc);
        g.watch(&svc);
        assert_eq!(*asked.lock().unwrap(), vec![Request::Watch(svc)]);
    }

    /// A snapshot with `service`'s providers (none), at `version`.
    fn with_service(service: &ServiceName, version: u64) -> Arc<Snapshot> {
        let mut snap = Snapshot::empty("a", "c");
        snap.version = version;
        let mut services = BTreeMap::new();
        services.insert(service.clone(), Arc::from(Vec::new()));
        snap.services = Arc::new(services);
        Arc::new(snap)
    }

    #[test]
    fn loaded_hears_of_the_providers_as_they_come_followed_or_not() {
        let svc: ServiceName = "x/y".parse().unwrap();
        for follows in [true, false] {
            let (tx, rx) = crate::control::latest::mailbox();
            let g = Rc::new(Governed::new(
                Arc::new(Snapshot::empty("a", "c")),
                rx,
                Arc::new(|_| {}),
            ));
            let mut rt = crate::runtime::build().unwrap();
            rt.block_on(async {
                if follows {
                    g.follow();
                }
                // Nothing comes: the wait ends at its timeout, and a later
                // snapshot finds no waiter (its subscriber leaves).
                assert!(!g.loaded(&svc, Duration::from_millis(30)).await);
                assert!(tx.publish(Arc::new(Snapshot::empty("a", "c"))));
                monoio::time::sleep(Duration::from_millis(10)).await;
                assert_eq!(g.subscribers.borrow().len(), 0, "follows: {follows}");
                let publisher = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    assert!(tx.publish(with_service(&"x/y".parse().unwrap(), 2)));
                    tx
                });
                let started = Instant::now();
                assert!(g.loaded(&svc, Duration::from_secs(10)).await);
                assert!(started.elapsed() < Duration::from_secs(5));
                assert_eq!(g.snapshot().version, 2);
                assert_eq!(g.subscribers.borrow().len(), 0, "unsubscribed once told");
                // Already here: no wait.
                assert!(g.loaded(&svc, Duration::ZERO).await);
                drop(publisher.join().unwrap());
            });
        }
    }
}
