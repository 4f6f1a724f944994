//! File descriptors: the connection limit must fit the process's open-file limit,
//! or the kernel accepts connections that the server can never take.

use super::Config;

/// Descriptors kept free for everything but accepted connections (listeners, the
/// ring, clients, logs, the registry): a quarter of the limit, at most 256.
fn reserve(limit: u64) -> u64 {
    (limit / 4).min(256)
}

/// Raises the soft open-file limit to the hard limit where allowed, and returns the
/// per-core connection limit that fits in it (the configured one, lowered with a
/// warning when cores × connections and a reserve exceed the limit).
pub fn fit_connections(config: &Config) -> usize {
    let limit = raise_soft_limit();
    let wanted = config.max_connections;
    let Some(limit) = limit else {
        return wanted;
    };
    let reserve = reserve(limit);
    let fit = (limit.saturating_sub(reserve) / config.cores.max(1) as u64).max(1) as usize;
    if fit < wanted {
        tracing::warn!(
            "{} cores × {wanted} connections exceed the open-file limit of {limit} (less {reserve} reserved): each core takes at most {fit}; raise `ulimit -n` for more",
            config.cores
        );
        return fit;
    }
    wanted
}

/// Sets the soft RLIMIT_NOFILE to the hard one; returns the soft limit now in force.
fn raise_soft_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                tracing::debug!(
                    from = lim.rlim_cur,
                    to = lim.rlim_max,
                    "raised the open-file limit"
                );
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}
