//! A dependency's warnings that repeat at every retry (zookeeper-client logs one
//! per connect attempt, about one a second while a ZooKeeper ensemble has lost
//! its quorum), let through at most once per interval from each place that logs
//! them. Ringsoa's own repeated lines go through [`super::throttle`] instead,
//! which also counts what it left out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use tracing::callsite::Identifier;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::Metadata;
use tracing_subscriber::layer::{Context, Filter};

use super::throttle::INTERVAL;

/// Lets the events of a target (and the targets under it) through at most once
/// per 10 s per callsite; everything else passes.
#[derive(Debug)]
pub struct Sparse {
    target: &'static str,
    last: Mutex<HashMap<Identifier, Instant>>,
}

impl Sparse {
    /// Thins out the events of `target`, a module path such as `zookeeper_client`.
    pub fn new(target: &'static str) -> Self {
        Sparse {
            target,
            last: Mutex::new(HashMap::new()),
        }
    }

    fn covers(&self, meta: &Metadata<'_>) -> bool {
        meta.is_event()
            && meta
                .target()
                .strip_prefix(self.target)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    }

    /// Whether an event of `meta` at `now` is let through.
    fn allow(&self, meta: &Metadata<'_>, now: Instant) -> bool {
        if !self.covers(meta) {
            return true;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get(&meta.callsite()) {
            Some(t) if now.saturating_duration_since(*t) < INTERVAL => false,
            _ => {
                last.insert(meta.callsite(), now);
                true
            }
        }
    }
}

impl<S> Filter<S> for Sparse {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        self.allow(meta, Instant::now())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // Decided per event for the thinned target; once for the rest.
        if self.covers(meta) {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    /// Every level may pass: combined with a level filter (`and`), the level's
    /// own hint stands. Without a hint the combination had none, so the process's
    /// maximum level was TRACE, and every disabled `debug!` or span went on past
    /// the comparison of levels to its callsite's interest.
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tracing_subscriber::layer::{Layer, SubscriberExt};

    use super::*;

    /// Keeps the metadata of every event it is given.
    struct Seen(Arc<Mutex<Vec<&'static Metadata<'static>>>>);

    impl<S: tracing::Subscriber> Layer<S> for Seen {
        fn on_event(&self, e: &tracing::Event<'_>, _: Context<'_, S>) {
            self.0.lock().unwrap().push(e.metadata());
        }
    }

    #[test]
    fn with_a_level_filter_the_levels_hint_stands() {
        use tracing_subscriber::filter::FilterExt;
        use tracing_subscriber::Registry;
        let levels = LevelFilter::INFO.and(Sparse::new("zookeeper_client"));
        let hint = <_ as Filter<Registry>>::max_level_hint(&levels);
        assert_eq!(hint, Some(LevelFilter::INFO));
    }

    #[test]
    fn a_targets_events_pass_once_an_interval_from_each_place_others_always() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let filtered = Seen(seen.clone()).with_filter(Sparse::new("zookeeper_client"));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(filtered), || {
            for _ in 0..50 {
                tracing::warn!(target: "zookeeper_client::session", "an attempt failed");
                tracing::warn!(target: "zookeeper_client", "another place");
                tracing::warn!(target: "zookeeper_clients", "not under it");
                tracing::warn!("ringsoa's own");
            }
        });
        let seen = seen.lock().unwrap();
        let count = |t: &str| seen.iter().filter(|m| m.target() == t).count();
        assert_eq!(count("zookeeper_client::session"), 1);
        assert_eq!(count("zookeeper_client"), 1);
        assert_eq!(count("zookeeper_clients"), 50);
        assert_eq!(count(module_path!()), 50);
        // An interval later, a place's event passes again, once.
        let place = seen[0];
        let (s, t) = (Sparse::new("zookeeper_client"), Instant::now());
        assert!(s.allow(place, t));
        assert!(!s.allow(place, t + INTERVAL - Duration::from_millis(1)));
        assert!(s.allow(place, t + INTERVAL));
        assert!(!s.allow(place, t + INTERVAL));
    }
}
