//! Config `log.routes` applied to a [`Router`] as it changes.

use std::sync::Arc;

use super::Governance;
use crate::logs::Router;

impl Governance {
    /// Applies config `log.routes` to `router` now and whenever it changes, by a
    /// thread of its own that wakes at each new snapshot and ends once the
    /// governance thread has. A cluster's override that does not parse gives way
    /// to the app-wide routes, with a WARN; routes that cannot be applied (a file
    /// that cannot be opened) are logged, and the others stand.
    pub fn follow_log_routes(&self, router: Router) -> std::io::Result<()> {
        let shared = Arc::downgrade(&self.shared);
        let changes = self.changes();
        std::thread::Builder::new()
            .name("ringsoa-log-routes".into())
            .spawn(move || {
                let mut last: Option<String> = None;
                while let Some(shared) = shared.upgrade() {
                    let snap = shared.latest.lock().expect("not poisoned").clone();
                    drop(shared);
                    let now = snap.config_str("log.routes").map(str::to_string);
                    if now != last {
                        apply(&router, now.as_deref(), snap.app_config.get("log.routes"));
                        last = now;
                    }
                    if changes.recv().is_err() {
                        break;
                    }
                }
            })
            .map(drop)
    }
}

/// Applies routes `now` (none when absent), or the app-wide `app` when `now` does
/// not parse.
fn apply(router: &Router, now: Option<&str>, app: Option<&String>) {
    let specs = now.map_or(Ok(Vec::new()), Router::parse);
    let app = app.filter(|a| Some(a.as_str()) != now);
    let specs = match (specs, app) {
        (Err(e), Some(app)) => {
            tracing::warn!(error = %e, "this cluster's log.routes not applied: the app-wide value is in force");
            Router::parse(app)
        }
        (specs, _) => specs,
    };
    if let Err(e) = specs.and_then(|s| router.set(s)) {
        tracing::error!(error = %e, "log.routes not applied");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::{Backend, GovernanceOptions};
    use std::time::{Duration, Instant};

    /// Held by each test: the first counts the followers' threads in the process.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Threads of this process named `name` (as the kernel keeps it, at most 15
    /// bytes).
    fn threads(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == &name[..name.len().min(15)])
            .count()
    }

    /// Starts governance from `backend`, with its log routes followed by a router
    /// whose subscriber is returned.
    fn routed(backend: Backend) -> (Governance, impl tracing::Subscriber) {
        let governance =
            Governance::start(GovernanceOptions::new("demo", "main", backend)).unwrap();
        assert!(governance.wait_ready(Duration::from_secs(5)));
        let router = Router::default();
        let subscriber = tracing_subscriber::layer::SubscriberExt::with(
            tracing_subscriber::registry(),
            router.layer(),
        );
        governance.follow_log_routes(router).unwrap();
        (governance, subscriber)
    }

    /// Logs lines of target `routed` through `subscriber` until `file` has one,
    /// within 5 s.
    fn log_until_routed(
        subscriber: impl tracing::Subscriber + Send + Sync,
        file: &std::path::Path,
    ) {
        let deadline = Instant::now() + Duration::from_secs(5);
        tracing::subscriber::with_default(subscriber, || {
            while std::fs::read_to_string(file).unwrap_or_default().is_empty() {
                tracing::info!(target: "routed", "a routed line");
                assert!(Instant::now() < deadline, "no line in {}", file.display());
                std::thread::sleep(Duration::from_millis(20));
            }
        });
    }

    #[test]
    fn the_app_wide_routes_hold_and_the_follower_ends_with_the_governance_thread() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("ringsoa-routes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("routed.log");
        let state = format!(
            "[apps.demo.config]\n\"log.routes\" = '[{{\"target\": \"routed\", \"level\": \"info\", \"file\": \"{}\"}}]'\n\
             [apps.demo.clusters.main.config]\n\"log.routes\" = '[1]'\n",
            file.display()
        );
        let (governance, subscriber) = routed(Backend::Embedded(state));
        let name = "ringsoa-log-routes";
        log_until_routed(subscriber, &file);
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(threads(name), 1);
        drop(governance);
        while threads(name) > 0 {
            assert!(
                Instant::now() < deadline,
                "the follower outlived governance"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn routes_set_later_are_followed_as_the_snapshot_comes() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("ringsoa-routes-later-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (state, file) = (dir.join("state.toml"), dir.join("later.log"));
        std::fs::write(&state, "[apps.demo.config]\nother = \"1\"\n").unwrap();
        let (governance, subscriber) = routed(Backend::File(state.clone()));
        // Given time to look at the first snapshot and wait for the next.
        std::thread::sleep(Duration::from_millis(100));
        let routes = format!(
            "[apps.demo.config]\n\"log.routes\" = '[{{\"target\": \"routed\", \"level\": \"info\", \"file\": \"{}\"}}]'\n",
            file.display()
        );
        std::fs::write(&state, routes).unwrap();
        log_until_routed(subscriber, &file);
        drop(governance);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
