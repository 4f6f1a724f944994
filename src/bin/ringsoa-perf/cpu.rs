//! A process's CPU time from `/proc/<pid>/stat`, user and system apart.

use std::ops::Sub;
use std::time::Duration;

/// CPU time as the kernel accounts it (sampled at its clock ticks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// Time in user space.
    pub user: Duration,
    /// Time in the kernel on the process's behalf.
    pub system: Duration,
}

impl CpuTime {
    /// User plus system time.
    pub fn total(self) -> Duration {
        self.user + self.system
    }
}

impl Sub for CpuTime {
    type Output = CpuTime;

    fn sub(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// The CPU time of process `pid` so far.
pub fn process_cpu(pid: u32) -> std::io::Result<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name start at field 3 (state), so
    // utime (field 14) and stime (field 15) are at indices 11 and 12.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let time = |i: usize| {
        let ticks = fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
        Duration::from_nanos(ticks * 1_000_000_000 / hz)
    };
    Ok(CpuTime {
        user: time(11),
        system: time(12),
    })
}
