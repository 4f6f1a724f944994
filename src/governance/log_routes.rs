//! Config `log.routes` applied to a [`Router`] as it changes.

use std::sync::Arc;
use std::time::Duration;

use super::Governance;
use crate::logs::Router;

/// How often the follower looks at the latest snapshot.
const LOOK_EVERY: Duration = Duration::from_millis(200);

impl Governance {
    /// Applies config `log.routes` to `router` now and whenever it changes, by a
    /// thread of its own that looks every 200 ms and ends once the governance
    /// thread has. A cluster's override that does not parse gives way to the
    /// app-wide routes, with a WARN; routes that cannot be applied (a file that
    /// cannot be opened) are logged, and the others stand.
    pub fn follow_log_routes(&self, router: Router) -> std::io::Result<()> {
        let shared = Arc::downgrade(&self.shared);
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
                    std::thread::sleep(LOOK_EVERY);
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
