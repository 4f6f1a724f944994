//! Memory: the buffer budgets must fit the process's memory limit (its cgroup's,
//! a container's), or a flood of large requests gets the process killed by the
//! kernel's OOM killer rather than answered more slowly. The limit is read at
//! start and every second after (a container resized in place); each core takes
//! in changed budgets at its upkeep.

mod cgroup;
mod live;

use std::sync::Arc;
use std::time::Duration;

use super::Config;
use crate::transport::conn::KEEP_CAPACITY;
use cgroup::cgroup_limit;
pub use live::{CoreMemory, LiveBudgets};

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
        let share = self.share(limit);
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

    /// What one core's budgets may hold under `limit`: half of it, shared.
    fn share(&self, limit: u64) -> usize {
        (limit / 2 / self.cores.max(1) as u64) as usize
    }

    /// Advice for a warning when `budgets`, held up by their floors, still do not
    /// fit `limit`.
    fn advice(&self, budgets: Budgets, limit: Option<u64>) -> &'static str {
        match limit {
            Some(l) if budgets.total() > self.share(l) => {
                "; lower max_message for budgets that fit"
            }
            _ => "",
        }
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
        let lower = fit.advice(now, limit);
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
                "the memory limit (cgroup) is now {said}: each core's buffer budgets go from {} to {} MiB ({}){}",
                self.now.total() / MIB,
                to.total() / MIB,
                to.describe(),
                self.fit.advice(to, limit)
            );
        }
        self.now = to;
        self.live.set(to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
