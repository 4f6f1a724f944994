//! [`Keeper`]: what both backends share — the mirror and its host-name lookups,
//! publishing snapshots to the cores and the control threads, the disk cache and
//! the wanted registration.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::TrySendError;

use super::cache::Cache;
use super::layout::Layout;
use super::mirror::Mirror;
use super::registrar::Registration;
use super::resolver::{Event, Resolver};
use super::{Shared, Status};
use crate::control::Source;

/// The governance thread's state (see the module docs).
pub struct Keeper {
    shared: Arc<Shared>,
    /// The followed folders.
    pub mirror: Mirror,
    /// Looks up the providers' host names.
    pub resolver: Resolver,
    cache: Option<Arc<Cache>>,
    /// The disk cache write under way, if any.
    writing: Option<Writing>,
    version: u64,
    /// Where the last snapshot's values came from.
    source: Source,
    /// The registration wanted (kept across sessions).
    pub registration: Option<Registration>,
    /// The address went to another process (a handover): its node, of another
    /// session, stays.
    pub yielded: bool,
    /// When the disk cache was last written, and whether a write is held.
    saved_at: Option<Instant>,
    save_held: bool,
    /// No publish before this time: one asked for earlier is held (its source,
    /// and when its first change was seen).
    publish_after: Option<Instant>,
    publish_held: Option<(Source, SystemTime)>,
}

/// A snapshot of a large mirror costs milliseconds to make, and as much on every
/// core whose clients follow a large service: after each publish the next waits
/// this many times its cost (so publishing takes at most a tenth of the thread).
/// Published after every batch of changes, 200 provider changes a second in a
/// folder of 20,000 took 16 s of the governance thread and 11 s of a core in 20 s.
const PUBLISH_SHARE: u32 = 10;

/// The least time between two writes of the disk cache. It is the whole mirror,
/// made to survive a crash (fsync): written after every batch of changes, 200
/// provider changes a second in a folder of 20,000 wrote 1.4 GB in 20 s.
const SAVE_PACE: Duration = Duration::from_secs(1);

/// How often the loop looks at a disk cache write under way: to start the write
/// held behind it once it ends, and to say when it takes long.
const WRITE_POLL: Duration = Duration::from_millis(100);

/// A disk cache write under way this long is logged (once): a slow or hung disk.
const WRITE_SLOW: Duration = Duration::from_secs(5);

/// A disk cache write under way, on a thread of its own: a slow or hung disk holds
/// it, never the governance thread (whose ZooKeeper session would expire with it,
/// the process's node gone from the registry), nor the blocking threads that look
/// up host names (a hung DNS can fill them).
struct Writing {
    task: std::thread::JoinHandle<()>,
    since: Instant,
    /// Logged as slow.
    told: bool,
}

impl Keeper {
    /// A keeper for the thread's options.
    pub fn new(shared: Arc<Shared>, layout: Layout) -> Self {
        let o = &shared.options;
        let mirror = Mirror::new(layout, &o.app, &o.cluster);
        let cache = o
            .cache_dir
            .as_deref()
            .map(|d| Arc::new(Cache::new(d, &o.app, &o.cluster)));
        Keeper {
            mirror,
            resolver: Resolver::default(),
            cache,
            writing: None,
            version: 0,
            source: Source::Empty,
            registration: None,
            yielded: false,
            saved_at: None,
            save_held: false,
            publish_after: None,
            publish_held: None,
            shared,
        }
    }

    /// The thread's options.
    pub fn options(&self) -> &super::GovernanceOptions {
        &self.shared.options
    }

    /// Sends the mirror's snapshot to every core and to the control threads, or,
    /// within [`PUBLISH_SHARE`] times the last one's cost of it, holds it until then
    /// ([`Keeper::due`]; `seen_at` is the first held change's).
    pub fn publish(&mut self, source: Source, seen_at: SystemTime) {
        let now = Instant::now();
        if self.publish_after.is_some_and(|t| now < t) {
            let first = self.publish_held.map_or(seen_at, |(_, first)| first);
            self.publish_held = Some((source, first));
            return;
        }
        self.publish_now(source, seen_at);
        let cost = now.elapsed();
        self.publish_after = Some(Instant::now() + cost * (PUBLISH_SHARE - 1));
    }

    fn publish_now(&mut self, source: Source, seen_at: SystemTime) {
        self.publish_held = None;
        self.version += 1;
        self.source = source;
        let snap = self.mirror.snapshot(source, self.version, seen_at);
        // Each core gets its own `Arc`, so that cloning it touches no other core; the
        // maps inside are shared (a shallow copy).
        let mut cores = self.shared.cores.lock().expect("not poisoned");
        cores.retain(|tx| tx.publish(Arc::new(snap.clone())));
        drop(cores);
        *self.shared.latest.lock().expect("not poisoned") = Arc::new(snap);
        let mut watchers = self.shared.watchers.lock().expect("not poisoned");
        // Full: told already, and not yet received.
        watchers.retain(|tx| !matches!(tx.try_send(()), Err(TrySendError::Disconnected(()))));
        drop(watchers);
        let (lock, cv) = &self.shared.ready;
        *lock.lock().expect("not poisoned") = true;
        cv.notify_all();
    }

    /// Whether the snapshot published last, or the one held, has its values from
    /// `source`.
    pub fn publishes(&self, source: Source) -> bool {
        match self.publish_held {
            Some((held, _)) => held == source,
            None => self.version > 0 && self.source == source,
        }
    }

    /// Looks up the mirror's new host names (see [`Resolver::ask`]).
    pub fn look_up(&mut self) {
        self.resolver.ask(&mut self.mirror);
    }

    /// Takes a lookup's `event` into the mirror, and publishes it again when an
    /// address changed (once anything has been published: before, the server
    /// still waits for the first snapshot, which will have it).
    pub fn resolved(&mut self, event: Event) {
        if self.resolver.handle(event, &mut self.mirror) && self.version > 0 {
            self.publish(self.source, SystemTime::now());
        }
    }

    /// Writes the disk cache (when there is one), or, within [`SAVE_PACE`] of the
    /// last write or while a write is under way, holds the write until then
    /// ([`Keeper::due`]). Writes run on a thread of their own, one at a time.
    pub fn save(&mut self) {
        match self.saved_at {
            Some(at) if at.elapsed() < SAVE_PACE => self.save_held = true,
            _ => self.save_now(),
        }
    }

    /// When the first held publish, write of the disk cache or log line is due, if
    /// one is held: the loop then calls [`Keeper::flush_due`].
    pub fn due(&self) -> Option<tokio::time::Instant> {
        let publish = self.publish_after.filter(|_| self.publish_held.is_some());
        let save = match &self.writing {
            Some(_) => Some(Instant::now() + WRITE_POLL),
            None => self
                .saved_at
                .filter(|_| self.save_held)
                .map(|at| at + SAVE_PACE),
        };
        let log = self.mirror.log_due();
        let due = [publish, save, log].into_iter().flatten().min()?;
        Some(due.into())
    }

    /// Publishes, writes and logs what is held and due.
    pub fn flush_due(&mut self) {
        self.write_under_way();
        let now = Instant::now();
        self.mirror.log_held(now);
        if let (Some((source, seen)), true) = (self.publish_held, self.publish_after <= Some(now)) {
            self.publish_now(source, seen);
        }
        if self.save_held && self.saved_at.is_none_or(|at| at + SAVE_PACE <= now) {
            self.save_now();
        }
    }

    /// Publishes and writes what is held, due or not (a session's end).
    pub fn flush(&mut self) {
        if let Some((source, seen)) = self.publish_held {
            self.publish_now(source, seen);
        }
        if self.save_held {
            self.save_now();
        }
    }

    /// Starts writing the disk cache now, or holds the write while another is
    /// under way.
    fn save_now(&mut self) {
        if self.write_under_way() {
            self.save_held = true;
            return;
        }
        if let Some(c) = &self.cache {
            let (cache, saved) = (c.clone(), self.mirror.save());
            let thread = std::thread::Builder::new().name("ringsoa-cache".into());
            match thread.spawn(move || cache.save(&saved)) {
                Ok(task) => {
                    let since = Instant::now();
                    let told = false;
                    self.writing = Some(Writing { task, since, told });
                }
                Err(e) => {
                    // Tried again after the pace.
                    c.report(Err(e));
                    self.saved_at = Some(Instant::now());
                    self.save_held = true;
                    return;
                }
            }
        }
        self.saved_at = Some(Instant::now());
        self.save_held = false;
    }

    /// Whether a disk cache write is under way; one under way for [`WRITE_SLOW`]
    /// is logged, once.
    fn write_under_way(&mut self) -> bool {
        let Some(w) = &mut self.writing else {
            return false;
        };
        let took = w.since.elapsed();
        let file = || self.cache.as_ref().map(|c| c.file().display().to_string());
        if w.task.is_finished() {
            if w.told {
                tracing::info!(
                    file = file(),
                    "the slow disk cache write ended after {took:?}"
                );
            }
            self.writing = None;
            return false;
        }
        if !w.told && took >= WRITE_SLOW {
            w.told = true;
            tracing::warn!(file = file(), "a disk cache write has taken {took:?} and is still under way (a slow or hung disk?): governance goes on, and the cache is written again once it ends");
        }
        true
    }

    /// Reads the disk cache into the mirror; whether there was one.
    pub fn load_cache(&mut self) -> bool {
        match &self.cache {
            Some(c) => c.load(&mut self.mirror),
            None => {
                tracing::warn!("no disk cache configured (--cache-dir): starting with nothing");
                false
            }
        }
    }

    /// Updates the reported status.
    pub fn status(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.shared.status.lock().expect("not poisoned"));
    }

    /// Wants `r` registered (again, should the address have been yielded).
    pub fn want(&mut self, r: Registration) {
        self.registration = Some(r);
        self.yielded = false;
    }

    /// The registration's node path, when one is wanted.
    pub fn registration_path(&self) -> Option<String> {
        let r = self.registration.as_ref()?;
        Some(format!(
            "{}/{}",
            self.mirror.layout().providers(&r.service),
            r.node_name()
        ))
    }
}

/// Sleeps until `at`: a loop's branch for [`Keeper::due`], taken only when some.
pub async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::{Backend, GovernanceOptions};
    use std::sync::Mutex;

    fn keeper() -> Keeper {
        let options = GovernanceOptions::new("demo", "main", Backend::Embedded(String::new()));
        let shared = Arc::new(Shared {
            latest: Mutex::new(Arc::new(crate::control::Snapshot::empty("demo", "main"))),
            cores: Mutex::default(),
            watchers: Mutex::default(),
            status: Mutex::default(),
            ready: Default::default(),
            options,
        });
        Keeper::new(shared, Layout::new("/r").unwrap())
    }

    fn published(k: &Keeper) -> (u64, SystemTime) {
        let latest = k.shared.latest.lock().unwrap();
        (latest.version, latest.seen_at)
    }

    /// A publish right after another is held, with the first held change's time,
    /// until the loop's branch for [`Keeper::due`] sends it; a session's end sends
    /// what is held at once.
    #[tokio::test]
    async fn a_publish_soon_after_another_is_held_until_due() {
        let mut k = keeper();
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        k.publish(Source::ZooKeeper, t(1));
        assert_eq!(published(&k), (1, t(1)));
        assert_eq!(k.due(), None, "nothing held");
        // Made to cost as a large mirror's snapshot does.
        k.publish_after = Some(Instant::now() + Duration::from_millis(50));
        k.publish(Source::ZooKeeper, t(2));
        k.publish(Source::ZooKeeper, t(3));
        assert_eq!(published(&k), (1, t(1)), "held");
        let due = k.due().expect("a publish is held");
        k.flush_due();
        assert_eq!(published(&k).0, 1, "not due yet");
        tokio::time::sleep_until(due).await;
        k.flush_due();
        assert_eq!(published(&k), (2, t(2)), "the first held change's time");
        assert_eq!(k.due(), None);
        k.publish_after = Some(Instant::now() + Duration::from_secs(60));
        k.publish(Source::ZooKeeper, t(4));
        k.flush();
        assert_eq!(published(&k), (3, t(4)));
    }
}
