//! The state-file loop: the process's registry without ZooKeeper. The file is
//! read at start (where `Governance::start` has refused one it cannot use) and
//! whenever it changes (checked every few milliseconds), once the change has held
//! still ([`Settle`]); a change that fails to read or parse is logged and the
//! previous values stand. The process's own registration appears in its snapshot
//! only (the file is never written by a server).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc::UnboundedReceiver;

use super::keeper::{sleep_until_some, Keeper};
use super::registrar::ping;
use super::state_file::{self, Folders};
use super::Command;
use crate::control::Source;

/// How often the file's modification time and size are checked.
const CHECK: Duration = Duration::from_millis(20);

/// Checks an empty file must stay unchanged before it is applied (1 s): an editor
/// or a shell that rewrites the file in place truncates it first, and applying
/// that moment would take every value away until the rest is written.
const EMPTY_CHECKS: u32 = 50;

/// Follows the state file at `path` (see the module docs).
pub async fn run(k: Keeper, path: Option<PathBuf>, commands: UnboundedReceiver<Command>) {
    serve(k, path, None, commands).await
}

/// Serves fixed state-file text (a binary's embedded defaults).
pub async fn run_embedded(k: Keeper, text: String, commands: UnboundedReceiver<Command>) {
    serve(k, None, Some(text), commands).await
}

async fn serve(
    mut k: Keeper,
    path: Option<PathBuf>,
    text: Option<String>,
    mut commands: UnboundedReceiver<Command>,
) {
    let layout = k.mirror.layout().clone();
    let mut folders = match (&path, &text) {
        // Both were checked by `Governance::start`.
        (_, Some(t)) => state_file::parse(t, &layout).unwrap_or_default(),
        (Some(p), None) => read(p, &layout, &mut None).unwrap_or_default(),
        (None, None) => Folders::new(),
    };
    let mut stamp = path.as_deref().and_then(stamp_of);
    let mut settle = Settle::default();
    let mut last_error = None;
    let mut pending = false;
    let mut told = Vec::new();
    if let Some(p) = &path {
        tell_other_apps(&k, p, &folders, &mut told);
    }
    apply(&mut k, &folders);
    k.publish(Source::File, SystemTime::now());
    loop {
        k.look_up();
        let due = k.due();
        tokio::select! {
            event = k.resolver.next() => k.resolved(event),
            _ = sleep_until_some(due), if due.is_some() => k.flush_due(),
            // Without a file to follow or a registration to retry, nothing to check.
            _ = tokio::time::sleep(CHECK), if path.is_some() || pending => {
                if let Some(p) = &path {
                    let now = stamp_of(p);
                    if now != stamp && settle.still(now) {
                        let seen = SystemTime::now();
                        let read = read(p, &layout, &mut last_error);
                        // Changed while it was read: read again once it holds still.
                        if stamp_of(p) == now {
                            stamp = now;
                            if let Some(f) = read {
                                folders = f;
                                tell_other_apps(&k, p, &folders, &mut told);
                                apply(&mut k, &folders);
                                k.publish(Source::File, seen);
                            }
                        }
                    }
                }
                if pending {
                    pending = !register(&mut k, &folders).await;
                }
            }
            cmd = commands.recv() => match cmd {
                None => return,
                Some(Command::Watch(s)) => {
                    if k.mirror.watch(&s) {
                        apply(&mut k, &folders);
                        k.publish(Source::File, SystemTime::now());
                    }
                }
                Some(Command::Yield) => {}
                Some(Command::Register(r)) => {
                    k.want(r);
                    pending = !register(&mut k, &folders).await;
                }
                Some(Command::Deregister { ack, .. }) => {
                    k.registration = None;
                    k.status(|s| s.registered = None);
                    apply(&mut k, &folders);
                    k.publish(Source::File, SystemTime::now());
                    let _ = ack.send(false);
                }
            },
        }
    }
}

/// Warns (once for each set of names) when the file gives this app nothing but
/// gives other apps config or switches: most likely written for another app name.
/// (Not for embedded defaults: a binary run under another name leaves them aside.)
fn tell_other_apps(k: &Keeper, file: &Path, folders: &Folders, told: &mut Vec<String>) {
    let app = k.mirror.app();
    let others = state_file::other_apps(folders, k.mirror.layout(), app);
    if !others.is_empty() && others != *told {
        tracing::warn!(
            "{} has no [apps.{app}] tables, only config or switches of {}: this process (app {app}) runs with none; name its tables [apps.{app}.…] or start it under the app name the file uses",
            file.display(),
            others.join(", ")
        );
    }
    *told = others;
}

/// A file's modification time and size.
type Stamp = Option<(SystemTime, u64)>;

/// Whether a changed file has held still long enough to be read: the same stamp
/// at two checks in a row (one for an editor writing it in place to finish), or at
/// [`EMPTY_CHECKS`] when it is empty.
#[derive(Default)]
struct Settle {
    seen: Stamp,
    checks: u32,
}

impl Settle {
    /// Notes the stamp `now` of a changed file; whether to read it.
    fn still(&mut self, now: Stamp) -> bool {
        if now != self.seen {
            (self.seen, self.checks) = (now, 0);
            return false;
        }
        self.checks += 1;
        let empty = matches!(now, Some((_, 0)));
        self.checks >= if empty { EMPTY_CHECKS } else { 1 }
    }
}

/// The file's modification time and size, to notice a change.
fn stamp_of(p: &Path) -> Stamp {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Reads the file; logs an error once per distinct error (and when it clears).
fn read(
    p: &Path,
    layout: &super::layout::Layout,
    last_error: &mut Option<String>,
) -> Option<Folders> {
    match state_file::load(p, layout) {
        Ok(f) => {
            if last_error.take().is_some() {
                tracing::info!(file = %p.display(), "state file valid again: applied");
            }
            Some(f)
        }
        Err(e) => {
            if last_error.as_deref() != Some(e.as_str()) {
                tracing::error!(error = %e, "state file not applied: keeping the previous values");
                *last_error = Some(e);
            }
            None
        }
    }
}

/// Sets every followed folder from the file, plus the process's own registration.
fn apply(k: &mut Keeper, folders: &Folders) {
    for path in k.mirror.paths() {
        k.mirror
            .replace(&path, folders.get(&path).cloned().unwrap_or_default());
    }
    if let (Some(r), Some(path)) = (&k.registration, k.registration_path()) {
        if k.mirror.set(&path, r.json()) {
            k.status(|s| s.registered = Some(path));
        }
    }
    k.mirror.log_ignored("the state file");
}

/// Adds the registration once the health check passes; whether it did.
async fn register(k: &mut Keeper, folders: &Folders) -> bool {
    let Some(r) = k.registration.clone() else {
        return true;
    };
    if ping(r.check, &r.method, Duration::from_secs(1))
        .await
        .is_err()
    {
        return false;
    }
    apply(k, folders);
    k.publish(Source::File, SystemTime::now());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ms: u64, len: u64) -> Stamp {
        Some((SystemTime::UNIX_EPOCH + Duration::from_millis(ms), len))
    }

    #[test]
    fn a_change_is_read_once_it_holds_still_and_an_empty_file_only_after_a_second() {
        let mut s = Settle::default();
        // Written, then written again before the next check: not read yet.
        assert!(!s.still(stamp(1, 10)));
        assert!(!s.still(stamp(2, 20)));
        assert!(s.still(stamp(2, 20)));
        // Truncated by an editor that writes in place: not read while it is empty…
        assert!(!s.still(stamp(3, 0)));
        for _ in 1..EMPTY_CHECKS {
            assert!(!s.still(stamp(3, 0)));
        }
        // …unless it stays empty for EMPTY_CHECKS checks.
        assert!(s.still(stamp(3, 0)));
        // A file that went missing is read (and its error logged) like any change.
        assert!(!s.still(None));
        assert!(s.still(None));
    }
}
