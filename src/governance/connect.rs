//! The ZooKeeper connect string, `HOST[:PORT][,HOST[:PORT]…][/CHROOT]`, checked
//! before use: a malformed one is a setting to fix, refused at start with one line,
//! not a ZooKeeper to retry for ever.

/// Checks `hosts` as zookeeper-client reads it: comma-separated `host:port` (port
/// 2181 when left out; `[v6]:port`; a `tcp://` prefix allowed), the last one
/// followed by an optional chroot, an absolute path without empty, `.` or `..`
/// parts. Returns it (a command-line parser's value).
pub fn check(hosts: &str) -> Result<String, String> {
    let (list, chroot) = split_chroot(hosts);
    if list.is_empty() {
        return Err("no host given".into());
    }
    for host in list.split(',') {
        check_host(host)?;
    }
    if let Some(path) = chroot {
        check_chroot(path)?;
    }
    Ok(hosts.to_string())
}

/// The hosts and the chroot: the chroot starts at the first `/` of the last host
/// that is not part of its scheme.
fn split_chroot(hosts: &str) -> (&str, Option<&str>) {
    let last = hosts.rfind(',').map_or(0, |i| i + 1);
    let start = hosts.len() - without_scheme(&hosts[last..]).len();
    match hosts[start..].find('/') {
        Some(i) => (&hosts[..start + i], Some(&hosts[start + i..])),
        None => (hosts, None),
    }
}

/// `entry` without its `tcp://` or `tcp+tls://`, if it has one.
fn without_scheme(entry: &str) -> &str {
    ["tcp://", "tcp+tls://"]
        .iter()
        .find_map(|p| entry.strip_prefix(p))
        .unwrap_or(entry)
}

/// One entry's host and port as written (`[v6]:port` unbracketed; no port when
/// left out), its scheme dropped; `None` for an unclosed or misplaced bracket.
pub(crate) fn host_and_port(entry: &str) -> Option<(&str, Option<&str>)> {
    let hostport = without_scheme(entry);
    match hostport.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, rest)) if rest.is_empty() || rest.starts_with(':') => {
                Some((host, rest.strip_prefix(':')))
            }
            _ => None,
        },
        None => Some(match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }),
    }
}

fn check_host(entry: &str) -> Result<(), String> {
    let (host, port) = host_and_port(entry).ok_or_else(|| format!("{entry:?} is not HOST:PORT"))?;
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(format!("{entry:?} is not HOST:PORT"));
    }
    match port.map(str::parse::<u16>) {
        None | Some(Ok(1..)) => Ok(()),
        Some(_) => Err(format!("{entry:?}: the port is not a number in 1..=65535")),
    }
}

fn check_chroot(path: &str) -> Result<(), String> {
    if path == "/" {
        return Ok(());
    }
    let bad = path.ends_with('/')
        || path[1..]
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(format!(
            "chroot {path:?} is not a ZooKeeper path (/a/b: no empty, `.` or `..` parts, no trailing /)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::governance::{Backend, Governance, GovernanceOptions};

    #[test]
    fn connect_strings_the_client_takes_pass_and_malformed_ones_say_why() {
        for good in [
            "127.0.0.1:2181",
            "zk1:2181,zk2:2182,zk3",
            "localhost:2181/team/a",
            "[::1]:2181,[::1]:2182/x",
            "tcp://h:2181/ringsoa",
            "h:2181/",
        ] {
            assert_eq!(check(good).as_deref(), Ok(good));
        }
        for (bad, why) in [
            ("", "no host"),
            ("/chroot", "no host"),
            ("h:2181,", "not HOST:PORT"),
            ("h:2181,,g:1", "not HOST:PORT"),
            (":2181", "not HOST:PORT"),
            ("h:zk", "the port"),
            ("h:0", "the port"),
            ("h:70000", "the port"),
            ("[::1:2181", "not HOST:PORT"),
            ("h:2181/a//b", "is not a ZooKeeper path"),
            ("h:2181/a/", "is not a ZooKeeper path"),
            ("h:2181/a/../b", "is not a ZooKeeper path"),
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        // A library user gets the same refusal at start.
        let zk = Backend::ZooKeeper("h:2181/a//b".into());
        let e = Governance::start(GovernanceOptions::new("app", "c", zk)).err();
        let e = e.expect("refused").to_string();
        assert!(
            e.starts_with("ZooKeeper connect string \"h:2181/a//b\": chroot"),
            "{e}"
        );
    }
}
