//! Routes: events of a target at a level or above also go to a file of their own,
//! each written by a thread of its own ([`non_blocking`]): a slow disk never makes
//! a core wait. A file moved or deleted (logrotate's default `create` mode) is
//! opened again at its path.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

use super::output::{non_blocking, WorkerGuard};
use super::throttle::{warn_throttled, Throttle};
use tracing_appender::non_blocking::NonBlocking;

/// One route as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RouteSpec {
    /// Events whose target starts with this.
    pub target: String,
    /// At this level or more severe (`error`, `warn`, `info`, `debug`, `trace`).
    pub level: String,
    /// Appended to this file.
    pub file: String,
}

struct Route {
    target: String,
    level: Level,
    file: NonBlocking,
    _flushed_on_drop: WorkerGuard,
}

/// The routes, shared by the layer and whoever updates them.
#[derive(Clone, Default)]
pub struct Router {
    routes: Arc<RwLock<(Vec<RouteSpec>, Vec<Route>)>>,
}

impl Router {
    /// Parses `log.routes`' value; an error says what is wrong with it (the
    /// caller names the key).
    pub fn parse(json: &str) -> Result<Vec<RouteSpec>, String> {
        let specs: Vec<RouteSpec> = serde_json::from_str(json)
            .map_err(|e| format!("not a JSON list of {{\"target\", \"level\", \"file\"}}: {e}"))?;
        for s in &specs {
            s.level
                .parse::<Level>()
                .map_err(|_| format!("bad level {:?}", s.level))?;
        }
        Ok(specs)
    }

    /// Replaces the routes (files are opened for appending); unchanged routes keep
    /// their files. A file that cannot be opened is reported and skipped.
    pub fn set(&self, specs: Vec<RouteSpec>) -> Result<(), String> {
        let mut guard = self.routes.write().expect("not poisoned");
        if guard.0 == specs {
            return Ok(());
        }
        let mut routes = Vec::new();
        let mut errors = Vec::new();
        for s in &specs {
            let level = s
                .level
                .parse::<Level>()
                .map_err(|_| format!("bad level {:?}", s.level))?;
            match RouteFile::open(&s.file) {
                Ok(f) => {
                    let (file, guard) = non_blocking(f, &s.file);
                    routes.push(Route {
                        target: s.target.clone(),
                        level,
                        file,
                        _flushed_on_drop: guard,
                    })
                }
                Err(e) => errors.push(format!("{}: {e}", s.file)),
            }
        }
        let old = std::mem::replace(&mut *guard, (specs, routes));
        // The old files are flushed (up to a second each) after the lock is let go:
        // the cores log meanwhile.
        drop(guard);
        drop(old);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("log routes: cannot open {}", errors.join("; ")))
        }
    }

    /// The layer that writes routed events.
    pub fn layer(&self) -> RouteLayer {
        RouteLayer(self.clone())
    }
}

/// How often a route's writer looks whether its file was moved or deleted.
const CHECK_MOVED: Duration = Duration::from_secs(1);

/// A route's file, on its writer thread: opened again at its path when the file
/// there is no longer the one open (moved or deleted), looked at most once every
/// [`CHECK_MOVED`]. Before, the lines went on into the moved file, or into a
/// deleted one whose space was never given back.
struct RouteFile {
    path: PathBuf,
    file: File,
    /// The open file's device and inode.
    id: (u64, u64),
    checked: Instant,
    failing: Throttle,
}

impl RouteFile {
    fn open(path: &str) -> io::Result<RouteFile> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let m = file.metadata()?;
        Ok(RouteFile {
            path: path.into(),
            file,
            id: (m.dev(), m.ino()),
            checked: Instant::now(),
            failing: Throttle::default(),
        })
    }

    fn reopen_if_moved(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.checked) < CHECK_MOVED {
            return;
        }
        self.checked = now;
        let same = std::fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if same {
            return;
        }
        let path = self.path.display().to_string();
        match RouteFile::open(&path) {
            Ok(fresh) => {
                *self = fresh;
                tracing::info!(target: "ringsoa::logs", %path, "log route file moved or deleted: opened it again");
            }
            // Written where it was meanwhile; tried again at the next look.
            Err(e) => warn_throttled!(
                self.failing,
                "log route file {path} moved or deleted, and it cannot be opened again: {e}"
            ),
        }
    }
}

impl io::Write for RouteFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.reopen_if_moved();
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A `tracing-subscriber` layer writing each event to the files of its routes.
pub struct RouteLayer(Router);

/// Collects an event's fields as `message key=value …`.
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for RouteLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let routes = self.0.routes.read().expect("not poisoned");
        let mut line: Option<String> = None;
        for r in routes
            .1
            .iter()
            .filter(|r| meta.target().starts_with(&r.target) && *meta.level() <= r.level)
        {
            let text = line.get_or_insert_with(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let mut l = Line(format!(
                    "{}.{:06} {} {}:",
                    now.as_secs(),
                    now.subsec_micros(),
                    meta.level(),
                    meta.target()
                ));
                event.record(&mut l);
                l.0.push('\n');
                l.0
            });
            let _ = r.file.clone().write_all(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// A router with one route of `target` at `level` to a file in a scratch
    /// folder named for `test`; returns the folder and the file.
    fn routed(test: &str, target: &str, level: &str) -> (PathBuf, PathBuf, Router) {
        let dir = std::env::temp_dir().join(format!("ringsoa-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("routed.log");
        let router = Router::default();
        let spec = format!(
            r#"[{{"target": "{target}", "level": "{level}", "file": "{}"}}]"#,
            file.display()
        );
        router.set(Router::parse(&spec).unwrap()).unwrap();
        (dir, file, router)
    }

    #[test]
    fn a_target_at_a_level_goes_to_its_file() {
        let (dir, file, router) = routed("logs", "app::db", "warn");
        let subscriber = tracing_subscriber::registry().with(router.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "app::db::pool", conns = 3, "pool low");
            tracing::info!(target: "app::db", "not routed: below warn");
            tracing::error!(target: "app::web", "not routed: another target");
        });
        // The last handle on the routes: its files are flushed.
        drop(router);
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("WARN app::db::pool: pool low conns=3"),
            "{text}"
        );
        assert!(
            Router::parse("[{\"target\": \"x\", \"level\": \"loud\", \"file\": \"f\"}]")
                .unwrap_err()
                .contains("bad level")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Waits until `path` holds `want`.
    fn holds(path: &std::path::Path, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(path).is_ok_and(|t| t.contains(want)) {
            assert!(
                Instant::now() < deadline,
                "{} never held {want:?}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_moved_or_deleted_route_file_is_opened_again_at_its_path() {
        let (dir, file, router) = routed("rotate", "app", "info");
        let subscriber = tracing_subscriber::registry().with(router.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "app", "before");
            holds(&file, "before");
            // logrotate's `create`: the file is renamed and a new one expected.
            let rotated = dir.join("routed.log.1");
            std::fs::rename(&file, &rotated).unwrap();
            std::thread::sleep(CHECK_MOVED + Duration::from_millis(100));
            tracing::info!(target: "app", "after the move");
            holds(&file, "after the move");
            let old = std::fs::read_to_string(&rotated).unwrap();
            assert!(!old.contains("after the move"), "{old}");
            // Deleted: made again.
            std::fs::remove_file(&file).unwrap();
            std::thread::sleep(CHECK_MOVED + Duration::from_millis(100));
            tracing::info!(target: "app", "after the delete");
            holds(&file, "after the delete");
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
