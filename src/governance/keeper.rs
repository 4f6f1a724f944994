//! [`Keeper`]: what both backends share — the mirror and its host-name lookups,
//! publishing snapshots to the cores and the control threads, the disk cache and
//! the wanted registration.

use std::sync::Arc;
use std::time::SystemTime;

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
    cache: Option<Cache>,
    version: u64,
    /// Where the last snapshot's values came from.
    source: Source,
    /// The registration wanted (kept across sessions).
    pub registration: Option<Registration>,
    /// The address went to another process (a handover): its node, of another
    /// session, stays.
    pub yielded: bool,
}

impl Keeper {
    /// A keeper for the thread's options.
    pub fn new(shared: Arc<Shared>, layout: Layout) -> Self {
        let o = &shared.options;
        let mirror = Mirror::new(layout, &o.app, &o.cluster);
        let cache = o
            .cache_dir
            .as_deref()
            .map(|d| Cache::new(d, &o.app, &o.cluster));
        Keeper {
            mirror,
            resolver: Resolver::default(),
            cache,
            version: 0,
            source: Source::Empty,
            registration: None,
            yielded: false,
            shared,
        }
    }

    /// The thread's options.
    pub fn options(&self) -> &super::GovernanceOptions {
        &self.shared.options
    }

    /// Sends the mirror's snapshot to every core and to the control threads.
    pub fn publish(&mut self, source: Source, seen_at: SystemTime) {
        self.version += 1;
        self.source = source;
        let snap = self.mirror.snapshot(source, self.version, seen_at);
        // Each core gets its own copy, so that cloning its `Arc` touches no other core.
        let mut cores = self.shared.cores.lock().expect("not poisoned");
        cores.retain(|tx| tx.publish(Arc::new(snap.clone())));
        drop(cores);
        *self.shared.latest.lock().expect("not poisoned") = Arc::new(snap);
        let (lock, cv) = &self.shared.ready;
        *lock.lock().expect("not poisoned") = true;
        cv.notify_all();
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

    /// Writes the disk cache (when there is one).
    pub fn save(&mut self) {
        if let Some(c) = &mut self.cache {
            c.save(&self.mirror);
        }
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
