//! File descriptors: the connection limit must fit the process's open-file limit,
//! or the kernel accepts connections that the server can never take.

use super::Config;

/// Descriptors kept free for everything but accepted connections and the cores'
/// own (clients, logs, the registry, the admin endpoint): a quarter of the limit,
/// at most 256.
fn reserve(limit: u64) -> u64 {
    (limit / 4).min(256)
}

/// Descriptors each core holds for itself: its ring, its listener and the
/// listener's copies for the drain and for a successor's handover, and both ends
/// of its doorbell (one socket pair a thread, for all its bells).
const PER_CORE: u64 = 1 + 3 + 2;

/// Raises the soft open-file limit to the hard limit where allowed, and returns the
/// per-core connection limit that fits in it (the configured one, lowered with a
/// warning when cores × connections and a reserve exceed the limit).
pub fn fit_connections(config: &Config) -> usize {
    let limit = crate::runtime::raise_open_file_limit();
    let wanted = config.max_connections;
    let Some(limit) = limit else {
        return wanted;
    };
    let cores = config.cores.max(1) as u64;
    let reserve = reserve(limit) + cores * PER_CORE;
    let fit = (limit.saturating_sub(reserve) / cores).max(1) as usize;
    if fit < wanted {
        tracing::warn!(
            "{} cores × {wanted} connections exceed the open-file limit of {limit} (less {reserve} reserved): each core takes at most {fit}; raise `ulimit -n` for more",
            config.cores
        );
        return fit;
    }
    wanted
}
