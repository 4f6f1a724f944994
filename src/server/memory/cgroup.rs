//! The process's memory limit: its cgroup's and those above it, in either cgroup
//! version.

use std::path::Path;

/// A limit at or above this is no limit (cgroup v1 writes one near `i64::MAX`).
const NO_LIMIT: u64 = 1 << 62;

/// This process's memory limit: the least of its cgroup's and its ancestors'
/// (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`); `None` without one.
pub(super) fn cgroup_limit() -> Option<u64> {
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
}
