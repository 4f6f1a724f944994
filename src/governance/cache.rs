//! The disk cache: the mirror, written atomically (temporary file, fsync, rename,
//! fsync of the folder) after changes, and read at start when ZooKeeper does not
//! answer. A missing, unwritable or corrupt cache is logged and skipped; it never
//! stops the process. Writes run on a thread of their own
//! ([`super::keeper::Keeper::save`]), so that a slow or hung disk holds only them.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::mirror::{Mirror, Saved};

/// One process's cache file.
#[derive(Debug)]
pub struct Cache {
    file: PathBuf,
    /// The last save failed (logged once until a save succeeds again).
    failing: AtomicBool,
}

impl Cache {
    /// The cache of `app`/`cluster` under `dir`.
    pub fn new(dir: &Path, app: &str, cluster: &str) -> Self {
        Cache {
            file: dir.join(format!("{app}.{cluster}.json")),
            failing: AtomicBool::new(false),
        }
    }

    /// The cache file's path.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Reads the cache into `mirror`; whether there was one.
    pub fn load(&self, mirror: &mut Mirror) -> bool {
        let text = match fs::read(&self.file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(file = %self.file.display(), "no disk cache to start from");
                return false;
            }
            Err(e) => {
                tracing::error!(file = %self.file.display(), error = %e, "cannot read the disk cache");
                return false;
            }
        };
        match serde_json::from_slice::<Saved>(&text) {
            Ok(saved) => {
                mirror.restore(saved);
                true
            }
            Err(e) => {
                tracing::error!(file = %self.file.display(), error = %e, "the disk cache is corrupt: not used (it is rewritten on the next change)");
                false
            }
        }
    }

    /// Writes `saved`, a mirror's form (see the module docs). Blocks.
    pub fn save(&self, saved: &Saved) {
        self.report(self.write(saved));
    }

    /// Logs a write that failed, once until one succeeds again (then that too).
    pub fn report(&self, written: std::io::Result<()>) {
        match written {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(file = %self.file.display(), "disk cache written again");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(file = %self.file.display(), error = %e, "cannot write the disk cache: serving goes on, but a restart while ZooKeeper is down would start without it");
                }
            }
        }
    }

    fn write(&self, saved: &Saved) -> std::io::Result<()> {
        let dir = self.file.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let body = serde_json::to_vec_pretty(saved)?;
        let tmp = self
            .file
            .with_extension(format!("json.tmp{}", std::process::id()));
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.file)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        fs::File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Source;
    use crate::governance::layout::Layout;

    #[test]
    fn saves_and_loads_and_survives_corruption() {
        let dir = std::env::temp_dir().join(format!("ringsoa-cache-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let layout = Layout::new("/r").unwrap();
        let mut m = Mirror::new(layout.clone(), "a", "c");
        m.replace("/r/apps/a/config", vec![("k".into(), b"v".to_vec())]);
        let cache = Cache::new(&dir.join("sub"), "a", "c");
        cache.save(&m.save());
        let mut back = Mirror::new(layout.clone(), "a", "c");
        assert!(cache.load(&mut back));
        let now = std::time::SystemTime::now();
        assert_eq!(
            back.snapshot(Source::Cache, 1, now).config_str("k"),
            Some("v")
        );
        fs::write(cache.file(), b"{corrupt").unwrap();
        let mut again = Mirror::new(layout, "a", "c");
        assert!(!cache.load(&mut again));
        assert!(again.snapshot(Source::Cache, 1, now).config.is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
