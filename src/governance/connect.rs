//! The ZooKeeper connect string, `HOST[:PORT][,HOST[:PORT]…][/CHROOT]`, checked
//! before use: a malformed one is a setting to fix, refused at start with one line,
//! not a ZooKeeper to retry for ever. And `diagnose`, which says why no session
//! can be made where zookeeper-client does not.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::layout::{is_zk_path, PATH_RULE};
use super::reach::{self, closed, NoConnection};
use super::tls::{self, Unshaken, ZkTls};

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

/// The most hosts of a connect string [`first_finding`] checks.
const MAX_CHECKED: usize = 8;

/// The hosts and ports (2181 when left out) of the entries of `hosts` that `pick`
/// takes, given each entry as written.
pub(crate) fn hosts_of(hosts: &str, pick: impl Fn(&str) -> bool) -> Vec<(String, u16)> {
    let (list, _) = split_chroot(hosts);
    let entries = list.split(',').filter(|e| pick(e));
    let parsed = entries.filter_map(|e| {
        let (host, port) = host_and_port(e)?;
        let port = port.map_or(Some(2181), |p| p.parse().ok())?;
        Some((host.to_string(), port))
    });
    parsed.collect()
}

/// What a probe found at one host.
enum Finding {
    /// Nothing that keeps a session from being made.
    Nothing,
    /// No connection could be made, said as a cause.
    Unreached(String),
    /// The server will not give this client a session, said as a cause.
    Refuses(String),
}

/// What `check` finds, among the hosts of `hosts` that `pick` takes (the first
/// [`MAX_CHECKED`]), each checked at the same time on a thread of its own: the
/// first host that refuses, in the connect string's order (one host down says
/// nothing of the others); else, when no host could be reached at all, why the
/// first could not.
fn first_finding(
    hosts: &str,
    pick: impl Fn(&str) -> bool,
    check: impl Fn(&str, u16) -> Finding + Sync,
) -> Option<String> {
    let list = hosts_of(hosts, pick);
    let check = &check;
    let found: Vec<Finding> = std::thread::scope(|s| {
        let checks = list.iter().take(MAX_CHECKED);
        let running: Vec<_> = checks.map(|(h, p)| s.spawn(move || check(h, *p))).collect();
        let joined = running
            .into_iter()
            .map(|t| t.join().unwrap_or(Finding::Nothing));
        joined.collect()
    });
    let refuses = found.iter().find_map(|f| match f {
        Finding::Refuses(why) => Some(why.clone()),
        _ => None,
    });
    let unreached = || {
        let mut why = found.iter().map(|f| match f {
            Finding::Unreached(why) => Some(why),
            _ => None,
        });
        let first = why.next()??;
        let others = found.len() - 1;
        if why.all(|w| w.is_some()) {
            Some(match others {
                0 => first.clone(),
                1 => format!("{first}, and the other host cannot be reached either"),
                n => format!("{first}, and the other {n} hosts cannot be reached either"),
            })
        } else {
            None
        }
    };
    refuses.or_else(unreached)
}

/// Why no session can be made with `hosts`, found by making one connection to
/// each host as the client does (zookeeper-client only reports "no available
/// hosts", or a connect that never ends), as [`first_finding`] chooses: a server
/// that closes every new connection at once, or that closes it at the session
/// request ([`refuses`]), and with `tls`, why the TLS handshake fails
/// ([`refuses_tls`]); or, when no host can be reached, why not (a name that does
/// not resolve, a port where nothing listens). `None` when nothing of the kind
/// shows. Blocks for at most `timeout` (1 s at most in plain TCP: a server that
/// answers at all accepts in far less) to connect, and twice as long as `timeout`
/// again (2 s at most each in plain TCP) to see the connection closed or to shake
/// hands.
pub(crate) fn diagnose(hosts: &str, tls: Option<&ZkTls>, timeout: Duration) -> Option<String> {
    match tls {
        Some(t) => first_finding(
            hosts,
            |e| !e.starts_with("tcp://"),
            |host, port| refuses_tls(host, port, t, timeout),
        ),
        None => first_finding(
            hosts,
            |e| !e.starts_with("tcp+tls://"),
            |host, port| refuses(host, port, timeout),
        ),
    }
}

/// A session request as the client sends it (length, protocol version 0, last
/// zxid 0, a 4 s timeout, session id 0, an empty 16-byte password, not
/// read-only).
const SESSION_REQUEST: [u8; 49] = {
    let mut r = [0u8; 49];
    r[3] = 45;
    let timeout = 4000u32.to_be_bytes();
    (r[16], r[17], r[18], r[19]) = (timeout[0], timeout[1], timeout[2], timeout[3]);
    r[31] = 16;
    r
};

/// A close request (length, xid 1, op closeSession −11): the probe's session, if
/// it got one, ends at once rather than at its timeout.
const CLOSE_REQUEST: [u8; 12] = [0, 0, 0, 8, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xf5];

/// What `host`:`port` shows this client in plain TCP: it closes the connection
/// unasked, or at the session request, or it cannot be reached.
fn refuses(host: &str, port: u16, timeout: Duration) -> Finding {
    match open_quiet(host, port, timeout) {
        Ok(mut sock) => {
            refuses_session(&mut sock, host, port).map_or(Finding::Nothing, Finding::Refuses)
        }
        Err(found) => found,
    }
}

/// What `host`:`port` shows this client over `tls`: its handshake fails, it
/// closes new connections at once (which cuts the handshake short), or it closes
/// the connection at the session request; or it cannot be reached.
fn refuses_tls(host: &str, port: u16, tls: &ZkTls, timeout: Duration) -> Finding {
    match tls::handshake(host, port, tls, timeout) {
        Ok(mut conn) => {
            refuses_session(&mut conn, host, port).map_or(Finding::Nothing, Finding::Refuses)
        }
        Err(Unshaken::Unreached(why)) => Finding::Unreached(why),
        Err(Unshaken::Said(why)) => Finding::Refuses(why),
        Err(Unshaken::CutShort(why)) => match open_quiet(host, port, timeout) {
            Err(Finding::Refuses(closes)) => Finding::Refuses(closes),
            _ => Finding::Refuses(why),
        },
    }
}

/// A connection to `host`:`port` that its server keeps open unasked, as ZooKeeper
/// does while it waits for the session request. Otherwise what was found: a
/// server that closes it at once refuses; one that cannot be reached is said so;
/// one that speaks first is not ZooKeeper (nothing found). Blocks for at most
/// `timeout` (1 s at most) to connect and as long again (2 s at most) to see it
/// closed.
fn open_quiet(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Finding> {
    // A server waits for the session request; one that will not serve this
    // client closes the connection unasked: at once (so fast, now and then,
    // that the connect itself reports it, as a broken pipe), or after a moment
    // when its JVM is busy.
    let mut sock = match reach::connect(host, port, timeout.min(Duration::from_secs(1))) {
        Err(NoConnection::Closed) => return Err(Finding::Refuses(closes_at_once(host, port))),
        Err(NoConnection::Unreached(why)) => return Err(Finding::Unreached(why)),
        Ok(sock) => sock,
    };
    sock.set_read_timeout(Some(timeout.min(Duration::from_secs(2))))
        .map_err(|_| Finding::Nothing)?;
    match sock.read(&mut [0u8; 1]) {
        Ok(0) => Err(Finding::Refuses(closes_at_once(host, port))),
        Err(e) if closed(&e) => Err(Finding::Refuses(closes_at_once(host, port))),
        // Something that speaks first is not ZooKeeper.
        Ok(_) => Err(Finding::Nothing),
        Err(_) => Ok(sock),
    }
}

/// Why the server at the other end of `conn` (plain or TLS, open and quiet) will
/// not give this client a session, if it closes the connection at the session
/// request instead of answering, said as a cause. A session it gives is closed
/// at once (closeSession) rather than at its timeout. Blocks for at most the
/// socket's timeouts.
fn refuses_session(conn: &mut (impl Read + Write), host: &str, port: u16) -> Option<String> {
    // A server that is not serving (its ensemble lost its quorum, or it is still
    // starting) closes the connection instead of answering.
    let answered = match conn.write_all(&SESSION_REQUEST).and_then(|()| conn.flush()) {
        Err(e) if closed(&e) => Ok(0),
        Err(_) => return None,
        Ok(()) => conn.read(&mut [0u8; 4]),
    };
    match answered {
        Ok(0) => {}
        Err(e) if closed(&e) => {}
        Ok(_) => {
            let _ = conn.write_all(&CLOSE_REQUEST).and_then(|()| conn.flush());
            return None;
        }
        Err(_) => return None,
    }
    Some(format!("{host}:{port} closes connections at the session request (a ZooKeeper server that is not serving: its ensemble has lost its quorum, or it is still starting)"))
}

fn closes_at_once(host: &str, port: u16) -> String {
    format!("{host}:{port} closes new connections at once (ZooKeeper does so to a client host over its maxClientCnxns connections, 60 by default; its log then says \"Too many connections\")")
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
    match is_zk_path(path) {
        true => Ok(()),
        false => Err(format!(
            "chroot {path:?} is not a ZooKeeper path ({PATH_RULE})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{check, hosts_of};
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
        let hosts = |h, tls: bool| {
            let pick = |e: &str| !e.starts_with(if tls { "tcp://" } else { "tcp+tls://" });
            let list = hosts_of(h, pick)
                .into_iter()
                .map(|(h, p)| format!("{h} {p}"));
            list.collect::<Vec<_>>()
        };
        assert_eq!(hosts("a:1,b:2/chroot", true), ["a 1", "b 2"]);
        assert_eq!(hosts("tcp://a:1,tcp+tls://b/c", true), ["b 2181"]);
        assert_eq!(hosts("tcp+tls://a:1,tcp://b/c", false), ["b 2181"]);
        assert_eq!(hosts("[::1]:3", false), ["::1 3"]);
        assert!(hosts("tcp://a:1", true).is_empty());
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
