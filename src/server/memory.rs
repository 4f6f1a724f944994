//! Memory: the buffer budgets must fit the process's memory limit (its cgroup's,
//! a container's), or a flood of large requests gets the process killed by the
//! kernel's OOM killer rather than answered more slowly. The limit is read at
//! start and every second after (a container resized in place); each core takes
//! in changed budgets at its upkeep.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Config;
use crate::protocol::budget::Allowance;
use crate::transport::budget::BufferBudget;
use crate::transport::conn::KEEP_CAPACITY;
use crate::transport::spare::SpareBuffers;

/// A limit at or above this is no limit (cgroup v1 writes one near `i64::MAX`).
const NO_LIMIT: u64 = 1 << 62;

/// The least a core's decode pool is lowered to.
const MIN_DECODED: usize = 1 << 20;

const MIB: usize = 1 << 20;

/// How often the limit is read again while the server runs (a container resized
/// in place, `systemctl set-property MemoryMax=`).
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// One core's buffer budgets, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Requests still arriving (`ServerBuilder::max_buffered`).
    pub buffered: usize,
    /// Decoded containers of calls in flight (`ServerBuilder::max_decoded`).
    pub decoded: usize,
    /// Spare large buffers (`ServerBuilder::spare_buffers`).
    pub spares: usize,
}

impl Budgets {
    fn of(config: &Config) -> Self {
        Budgets {
            buffered: config.core_buffered,
            decoded: config.core_decoded,
            spares: config.spare_buffers,
        }
    }

    fn total(&self) -> usize {
        self.buffered + self.decoded + self.spares
    }

    fn describe(&self) -> String {
        format!(
            "max_buffered {} MiB, core_decoded {} MiB, spare_buffers {} MiB",
            self.buffered / MIB,
            self.decoded / MIB,
            self.spares / MIB
        )
    }
}

/// Fits the budgets set to a memory limit.
#[derive(Debug, Clone, Copy)]
struct Fit {
    /// The budgets as set.
    wanted: Budgets,
    cores: usize,
    max_message: usize,
}

impl Fit {
    /// Each budget lowered in proportion so that all cores' together take at most
    /// half of `limit`, requests still arriving keeping room for one message of
    /// the maximum size; the budgets as set when they fit or there is no limit.
    fn to(&self, limit: Option<u64>) -> Budgets {
        let w = self.wanted;
        let Some(limit) = limit else { return w };
        let share = (limit / 2 / self.cores.max(1) as u64) as usize;
        let wanted = w.total();
        if wanted <= share {
            return w;
        }
        let scale = |n: usize| (n as u128 * share as u128 / wanted as u128) as usize;
        Budgets {
            buffered: scale(w.buffered).max(self.max_message.saturating_sub(KEEP_CAPACITY)),
            decoded: scale(w.decoded).max(MIN_DECODED.min(w.decoded)),
            spares: scale(w.spares),
        }
    }
}

/// The budgets every core should have now: set by the memory follower, read by
/// each core's upkeep (one atomic load, and a lock only when they changed).
#[derive(Debug)]
pub struct LiveBudgets {
    version: AtomicU64,
    budgets: Mutex<Budgets>,
}

impl LiveBudgets {
    fn new(budgets: Budgets) -> Self {
        LiveBudgets {
            version: AtomicU64::new(0),
            budgets: Mutex::new(budgets),
        }
    }

    /// The budgets and their version, if it is not `seen`.
    pub fn since(&self, seen: u64) -> Option<(u64, Budgets)> {
        (self.version.load(Ordering::Acquire) != seen).then(|| self.current())
    }

    /// The budgets and their version.
    fn current(&self) -> (u64, Budgets) {
        let budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        (self.version.load(Ordering::Acquire), *budgets)
    }

    fn set(&self, to: Budgets) {
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        *budgets = to;
        self.version.fetch_add(1, Ordering::Release);
    }
}

/// One core's buffer budgets, following the [`LiveBudgets`].
#[derive(Debug)]
pub struct CoreMemory {
    /// What the decoded containers of this core's calls in flight may still take.
    pub decode_pool: Rc<Allowance>,
    /// What this core's connections may still buffer of requests still arriving.
    pub buffer_budget: Rc<BufferBudget>,
    /// This core's large buffers kept between large messages.
    pub spare_buffers: Rc<SpareBuffers>,
    live: Arc<LiveBudgets>,
    /// The version of the budgets in force, and they.
    now: Cell<(u64, Budgets)>,
}

impl CoreMemory {
    /// Budgets as `live` has them now.
    pub fn new(live: Arc<LiveBudgets>) -> Self {
        let now = live.current();
        let b = now.1;
        CoreMemory {
            decode_pool: Rc::new(Allowance::new(b.decoded)),
            buffer_budget: Rc::new(BufferBudget::new(b.buffered)),
            spare_buffers: Rc::new(SpareBuffers::new(b.spares)),
            live,
            now: Cell::new(now),
        }
    }

    /// Takes in budgets changed since the last look, and lets go of spare buffers
    /// nobody took: the core's upkeep.
    pub fn upkeep(&self) {
        let (seen, was) = self.now.get();
        if let Some((version, to)) = self.live.since(seen) {
            self.buffer_budget.resize(was.buffered, to.buffered);
            self.decode_pool.resize(was.decoded, to.decoded);
            self.spare_buffers.set_cap(to.spares);
            self.now.set((version, to));
        }
        self.spare_buffers.trim(Instant::now());
    }
}

/// Fits the buffer budgets in `config` to the memory limit, with a warning when it
/// lowers them, and returns what follows the limit while the server runs.
pub fn fit_budgets(config: &mut Config) -> Follower {
    let fit = Fit {
        wanted: Budgets::of(config),
        cores: config.cores,
        max_message: config.max_message,
    };
    let limit = cgroup_limit();
    let now = fit.to(limit);
    if now != fit.wanted {
        let lower = if now.total() > (limit.unwrap_or(0) / 2 / fit.cores.max(1) as u64) as usize {
            "; lower max_message for budgets that fit"
        } else {
            ""
        };
        tracing::warn!(
            "the memory limit of {} MiB (cgroup) is below twice what {} cores' buffer budgets may hold ({} MiB): each core's lowered from {} to {} MiB ({}){lower}",
            limit.unwrap_or(0) / MIB as u64,
            fit.cores,
            fit.wanted.total() * fit.cores / MIB,
            fit.wanted.total() / MIB,
            now.total() / MIB,
            now.describe(),
        );
        config.core_buffered = now.buffered;
        config.core_decoded = now.decoded;
        config.spare_buffers = now.spares;
    }
    Follower {
        fit,
        limit,
        now,
        live: Arc::new(LiveBudgets::new(now)),
    }
}

/// Reads the memory limit again every [`FOLLOW_EVERY`] and publishes the budgets
/// that fit it when they change.
#[derive(Debug)]
pub struct Follower {
    fit: Fit,
    limit: Option<u64>,
    now: Budgets,
    live: Arc<LiveBudgets>,
}

impl Follower {
    /// What the cores read.
    pub fn live(&self) -> Arc<LiveBudgets> {
        self.live.clone()
    }

    /// Follows the limit until `stopped`.
    pub fn run(mut self, stopped: impl Fn() -> bool) {
        while !stopped() {
            std::thread::sleep(FOLLOW_EVERY);
            self.look(cgroup_limit());
        }
    }

    /// Takes in the limit read now.
    fn look(&mut self, limit: Option<u64>) {
        if limit == self.limit {
            return;
        }
        self.limit = limit;
        let to = self.fit.to(limit);
        if to == self.now {
            return;
        }
        let said = limit.map_or("none".to_string(), |l| format!("{} MiB", l / MIB as u64));
        if to == self.fit.wanted {
            tracing::info!(
                "the memory limit (cgroup) is now {said}: each core's buffer budgets are back to {} MiB as set ({})",
                to.total() / MIB,
                to.describe()
            );
        } else {
            tracing::warn!(
                "the memory limit (cgroup) is now {said}: each core's buffer budgets go from {} to {} MiB ({})",
                self.now.total() / MIB,
                to.total() / MIB,
                to.describe()
            );
        }
        self.now = to;
        self.live.set(to);
    }
}

/// This process's memory limit: the least of its cgroup's and its ancestors'
/// (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`); `None` without one.
fn cgroup_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    limit_in(&cgroups, |p| std::fs::read_to_string(p).ok())
}

/// The least limit set for the cgroups `proc_cgroup` (the text of
/// `/proc/self/cgroup`) names, reading files with `read`: each cgroup on its way
/// down from its hierarchy's mount, and the mount itself (a container with no
/// namespace of its own sees its cgroup there, not at the path named).
fn limit_in(proc_cgroup: &str, read: impl Fn(&Path) -> Option<String>) -> Option<u64> {
    let mut least: Option<u64> = None;
    for line in proc_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (mount, file) = if controllers.is_empty() {
            ("/sys/fs/cgroup", "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")
        } else {
            continue;
        };
        let mut dir = Path::new(mount).join(path.trim_start_matches('/'));
        loop {
            let value = read(&dir.join(file)).and_then(|v| v.trim().parse::<u64>().ok());
            if let Some(v) = value.filter(|&v| v < NO_LIMIT) {
                least = Some(least.map_or(v, |l| l.min(v)));
            }
            if dir == Path::new(mount) || !dir.pop() {
                break;
            }
        }
    }
    least
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn files(pairs: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let map: HashMap<String, String> = (pairs.iter())
            .map(|(p, v)| (p.to_string(), v.to_string()))
            .collect();
        move |p: &Path| map.get(p.to_str().unwrap()).cloned()
    }

    #[test]
    fn the_least_limit_up_the_hierarchy_is_found_in_either_version() {
        let v2 = "0::/kubepods/pod1/ctr\n";
        let read = files(&[
            ("/sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "max\n"),
            ("/sys/fs/cgroup/kubepods/pod1/memory.max", "536870912\n"),
            ("/sys/fs/cgroup/kubepods/memory.max", "1073741824\n"),
        ]);
        assert_eq!(limit_in(v2, read), Some(512 << 20));
        let v1 = "5:cpu,cpuacct:/x\n4:memory:/docker/abc\n0::/\n";
        let read = files(&[
            (
                "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
                "268435456",
            ),
            (
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712",
            ),
        ]);
        assert_eq!(limit_in(v1, read), Some(256 << 20));
        // A container's own cgroup at the mount, not at the host's path named.
        let read = files(&[("/sys/fs/cgroup/memory/memory.limit_in_bytes", "134217728")]);
        assert_eq!(limit_in(v1, read), Some(128 << 20));
        assert_eq!(limit_in(v1, files(&[])), None);
        assert_eq!(limit_in("garbage\n4:memory\n", files(&[])), None);
    }

    #[test]
    fn budgets_are_fitted_to_a_limit_that_changes_and_restored_without_one() {
        let wanted = Budgets {
            buffered: 256 * MIB,
            decoded: 256 * MIB,
            spares: 64 * MIB,
        };
        let fit = Fit {
            wanted,
            cores: 2,
            max_message: 16 * MIB,
        };
        let live = Arc::new(LiveBudgets::new(wanted));
        let mut f = Follower {
            fit,
            limit: None,
            now: wanted,
            live: live.clone(),
        };
        f.look(Some(4 << 30));
        assert_eq!(live.since(0), None, "a limit they fit changes nothing");
        f.look(Some(256 << 20));
        let (v, b) = live.since(0).expect("lowered");
        let share = 64 * MIB; // half the limit, shared by two cores
        assert!(b.total() <= share && b.total() > share - 3, "{b:?}");
        assert_eq!(
            b.buffered,
            wanted.buffered / 9,
            "in proportion: 64 of 576 MiB"
        );
        f.look(Some(256 << 20));
        assert_eq!(live.since(v), None, "the same limit again changes nothing");
        f.look(Some(4 << 20));
        let (v, b) = live.since(v).expect("lowered further");
        assert_eq!(b.buffered, 16 * MIB - KEEP_CAPACITY, "room for one message");
        assert_eq!(b.decoded, MIN_DECODED);
        f.look(None);
        assert_eq!(live.since(v), Some((v + 1, wanted)), "no limit: as set");
    }
}
