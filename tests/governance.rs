//! Governance against a real ZooKeeper (Debian's, started by `tools/zk.sh` for each
//! test) and real `ringsoa-demo` processes: registration, discovery, config and
//! switches, ZooKeeper outages, session expiry, a leader's loss, bad input, the
//! state file and the embedded defaults.

mod support;

use std::cell::Cell;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringsoa::client::{Client, ClientConfig};
use ringsoa::control::ServiceName;
use ringsoa::governance::{Backend, Governance, GovernanceOptions, Registration};
use ringsoa::protocol::MessageType;
use ringsoa::rpc::CallContext;
use support::process::{free_port, http, http_get, Demo, SilentDns};
use support::wire::call_raw;
use support::zk::ZooKeeper;
use zookeeper_client as zk;

mod idl {
    ringsoa::include_idl!();
}
use idl::demo::*;

const APP: &str = "ringsoa-demo";
const PROVIDERS: &str = "/ringsoa/apps/ringsoa-demo/clusters/main/providers";

/// A scratch folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("ringsoa-gov-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A governed demo: the process, its admin endpoint and its log.
struct Governed {
    demo: Demo,
    admin: SocketAddr,
    log: PathBuf,
}

impl Governed {
    /// Starts `ringsoa-demo` with an admin endpoint, `extra` flags and its log in
    /// `dir` (at `addr`, or a free port).
    fn start(dir: &Path, addr: Option<SocketAddr>, extra: &[&str]) -> Governed {
        Governed::start_with(dir, addr, extra, |_| {})
    }

    /// [`Governed::start`], its command adjusted by `configure` too.
    fn start_with(
        dir: &Path,
        addr: Option<SocketAddr>,
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Governed {
        let addr = addr.unwrap_or_else(|| format!("127.0.0.1:{}", free_port()).parse().unwrap());
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.join(format!("demo-{}.log", addr.port()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut args = vec!["--admin".to_string(), admin.to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let demo = Demo::start_with(addr, &args, |cmd| {
            cmd.stderr(Stdio::from(file))
                .env("RUST_LOG", "info,ringsoa::governance=debug");
            configure(cmd);
        });
        wait(Duration::from_secs(10), "the admin endpoint", || {
            TcpStream::connect(admin).is_ok()
        });
        Governed { demo, admin, log }
    }

    /// Starts one on ZooKeeper `zk`, cluster `main`, short session and grace.
    fn on_zk(zk: &str, dir: &Path, extra: &[&str]) -> Governed {
        Governed::on_zk_at(zk, dir, None, extra)
    }

    /// [`Governed::on_zk`] at `addr` (or a free port).
    fn on_zk_at(zk: &str, dir: &Path, addr: Option<SocketAddr>, extra: &[&str]) -> Governed {
        Governed::on_zk_with(zk, dir, addr, extra, |_| {})
    }

    /// [`Governed::on_zk_at`], its command adjusted by `configure` too.
    fn on_zk_with(
        zk: &str,
        dir: &Path,
        addr: Option<SocketAddr>,
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Governed {
        let cache = dir.join("cache");
        let mut args = vec![
            "--zk",
            zk,
            "--cluster",
            "main",
            "--deregister-grace-ms",
            "500",
        ];
        if !extra.contains(&"--zk-session-timeout-ms") {
            args.extend(["--zk-session-timeout-ms", "2000"]);
        }
        if !extra.contains(&"--cache-dir") {
            args.extend(["--cache-dir", cache.to_str().unwrap()]);
        }
        args.extend_from_slice(extra);
        Governed::start_with(dir, addr, &args, configure)
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let (status, body) = http_get(self.admin, path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until the admin view `path` satisfies `check`.
    fn wait_view(&self, path: &str, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let view = self.get(path);
            if check(&view) {
                return;
            }
            if Instant::now() >= deadline {
                let log = self.log_text();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "timed out waiting for {what}; {path} = {view}; log:\n{}",
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn node(&self) -> String {
        format!("{PROVIDERS}/{}", self.demo.addr)
    }
}

/// Polls `f` every 20 ms until it holds, failing after `limit`.
fn wait(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the `ringsoa` CLI with no ZooKeeper credentials in its environment: its
/// success, stdout and stderr.
fn ringsoa(args: &[&str]) -> (bool, String, String) {
    ringsoa_with_auth(args, None)
}

/// [`ringsoa`] with `RINGSOA_ZK_AUTH` set to `auth`, when given.
fn ringsoa_with_auth(args: &[&str], auth: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringsoa"));
    cmd.args(args).env_remove("RINGSOA_ZK_AUTH");
    if let Some(auth) = auth {
        cmd.env("RINGSOA_ZK_AUTH", auth);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// Pings `addr` on one connection until `stop`; returns (calls, failures, the
/// longest call).
fn ping_load(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64, Duration)> {
    std::thread::spawn(move || {
        let (mut calls, mut failed, mut longest) = (0u64, 0u64, Duration::ZERO);
        let mut conn: Option<TcpStream> = None;
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            calls += 1;
            let s = match &mut conn {
                Some(s) => s,
                None => match TcpStream::connect(addr) {
                    Ok(s) => {
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        conn.insert(s)
                    }
                    Err(_) => {
                        failed += 1;
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                },
            };
            let ok =
                call_raw(s, "ping", calls as i32, &DemoPingArgs {}).is_ok_and(|r| is_reply(&r));
            if !ok {
                failed += 1;
                conn = None;
            }
            longest = longest.max(started.elapsed());
        }
        (calls, failed, longest)
    })
}

/// Whether a strict binary message is a REPLY.
fn is_reply(msg: &[u8]) -> bool {
    msg.len() > 4 && msg[3] == MessageType::Reply as u8
}

/// `whoami` with request meta asking for config `key` (or switch), until every
/// one of the two cores answered `want`.
fn every_core_sees(addr: SocketAddr, ask: &str, key: &str, want: &str) {
    let field = format!("{}.{key}", ask.trim_start_matches("demo."));
    support::block_on(async {
        let seen = Cell::new([false, false]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.get() != [true, true] {
            assert!(
                Instant::now() < deadline,
                "not every core saw {field} = {want}: {:?}",
                seen.get()
            );
            // A new connection per call spreads the calls over the cores.
            let demo = DemoClient::new(Rc::new(Client::new([addr], ClientConfig::new("test"))));
            let mut cx = CallContext::default();
            cx.meta.insert(ask.into(), key.into());
            let answer = demo.whoami(Some(&mut cx)).await.unwrap();
            let core: usize = answer["core"].parse().unwrap();
            if answer.get(&field).map(String::as_str) == Some(want) {
                let mut s = seen.get();
                s[core] = true;
                seen.set(s);
            }
            monoio::time::sleep(Duration::from_millis(5)).await;
        }
    });
}

/// A ZooKeeper of `nodes` servers, a client of it, a scratch folder and a demo on
/// cluster `main` that has registered.
fn registered(nodes: usize, name: &str) -> (ZooKeeper, support::zk::Zk, Scratch, Governed) {
    let zk = ZooKeeper::start(nodes);
    let zkc = zk.client();
    let dir = Scratch::new(name);
    let g = Governed::on_zk(&zk.connect, &dir.0, &[]);
    assert!(
        zkc.wait_for(&g.node(), Duration::from_secs(10), |n| n.is_some()),
        "not registered in 10 s: {}",
        g.log_text()
    );
    (zk, zkc, dir, g)
}

#[test]
fn registration_waits_for_the_health_check_and_leaves_before_exit() {
    let zk = ZooKeeper::start(1);
    let zkc = zk.client();
    let dir = Scratch::new("register");

    // Nothing answers on the port: no registration.
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut o = GovernanceOptions::new("gate", "main", Backend::ZooKeeper(zk.connect.clone()));
    o.root = "/gate".into();
    let gov = Governance::start(o).unwrap();
    let svc: ServiceName = "gate/main".parse().unwrap();
    gov.register(Registration::new(svc, addr, 1, 100, "v", None));
    let gate = format!("/gate/apps/gate/clusters/main/providers/{addr}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        zkc.get(&gate).is_none(),
        "registered before the health check passed"
    );
    // The status says why (before, only the log did).
    let status = gov.status();
    let why = format!("the health check of {addr} failed");
    assert!(
        status.connected && status.error.as_deref().is_some_and(|e| e.starts_with(&why)),
        "{status:?}"
    );
    // A server starts there: registered once its ping answers.
    let _server = Demo::start_on(addr, &[]);
    assert!(
        zkc.wait_for(&gate, Duration::from_secs(5), |n| n.is_some()),
        "never registered"
    );
    // The status follows the create's reply, which can come a moment after the
    // node shows to another session.
    wait(Duration::from_secs(5), "the registered status", || {
        gov.status().registered.is_some()
    });
    let status = gov.status();
    assert_eq!(status.registered.as_deref(), Some(gate.as_str()));
    assert_eq!(status.error, None);

    // The demo registers itself, ephemeral, with the documented JSON.
    let mut g = Governed::on_zk(&zk.connect, &dir.0, &[]);
    assert!(zkc.wait_for(&g.node(), Duration::from_secs(10), |n| n.is_some()));
    let (data, stat) = zkc.get(&g.node()).unwrap();
    assert_ne!(stat.ephemeral_owner, 0, "ephemeral");
    let json: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(json["host"], "127.0.0.1");
    assert_eq!(json["port"], g.demo.addr.port());
    assert_eq!(json["cores"], 2);
    assert_eq!(json["weight"], 100);
    assert_eq!(json["pid"], g.demo.child.id());
    assert!(json["version"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(json["started_at_ms"].as_u64().unwrap() > 1_700_000_000_000);
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 7, "{keys:?}");

    // SIGTERM: the node goes first, while the process still runs.
    g.demo.sigterm();
    assert!(zkc.wait_for(&g.node(), Duration::from_secs(5), |n| n.is_none()));
    assert!(
        g.demo.child.try_wait().unwrap().is_none(),
        "exited before its node was gone"
    );
    g.demo.wait(Duration::from_secs(15));

    // SIGKILL: the node goes with the session (2 s here).
    let g = Governed::on_zk(&zk.connect, &dir.0, &[]);
    assert!(zkc.wait_for(&g.node(), Duration::from_secs(10), |n| n.is_some()));
    let node = g.node();
    g.demo.kill();
    let killed = Instant::now();
    assert!(zkc.wait_for(&node, Duration::from_secs(10), |n| n.is_none()));
    println!(
        "node gone {:?} after SIGKILL (session timeout 2 s)",
        killed.elapsed()
    );
}

/// Freezes ZooKeeper for `pause` (less than a session), then waits until `g` sees
/// a change made after it; returns a new client.
fn blip(zk: &ZooKeeper, g: &Governed, pause: Duration) -> support::zk::Zk {
    zk.pause(1);
    std::thread::sleep(pause);
    zk.resume(1);
    let zkc = zk.client();
    zkc.set("/ringsoa/apps/ringsoa-demo/config/after-blip", b"yes");
    g.wait_view("/config", "a change after the blip", |c| {
        c["after-blip"] == "yes"
    });
    zkc
}

/// Freezes ZooKeeper for longer than `g`'s session (`session`), then waits until
/// a new session of `g`'s has registered it again; returns a new client.
fn expire(zk: &ZooKeeper, g: &Governed, session: i64) -> support::zk::Zk {
    zk.pause(1);
    std::thread::sleep(Duration::from_secs(6));
    zk.resume(1);
    let zkc = zk.client();
    assert!(
        zkc.wait_for(&g.node(), Duration::from_secs(15), |n| n.is_some_and(
            |(_, s)| s.ephemeral_owner != session && s.ephemeral_owner != 0
        )),
        "not registered by a new session: {}",
        g.log_text()
    );
    zkc
}

/// Starts a demo named `relay` and has it relay one call to `ringsoa-demo/main`
/// (a consumer from then on, following that service's providers); returns it and
/// the connection the call went on.
fn relaying(zk: &ZooKeeper, dir: &Scratch) -> (Governed, TcpStream) {
    let relay = Governed::on_zk(&zk.connect, &dir.0, &["--name", "relay"]);
    let mut s = TcpStream::connect(relay.demo.addr).unwrap();
    let args = DemoRelayWhoamiArgs {
        target: Some("ringsoa-demo/main".into()),
    };
    assert!(is_reply(
        &call_raw(&mut s, "relay_whoami", 1, &args).unwrap()
    ));
    (relay, s)
}

/// The session that owns `node`, if it exists.
fn owner(zkc: &support::zk::Zk, node: &str) -> Option<i64> {
    zkc.get(node).map(|(_, stat)| stat.ephemeral_owner)
}

/// Starts `ringsoa-demo --handover` on `from`'s address; returns it once a node of
/// a session not among `others` holds the address, and that session.
fn hand_over(
    zk: &ZooKeeper,
    zkc: &support::zk::Zk,
    dir: &Scratch,
    from: &Governed,
    others: &[i64],
) -> (Governed, i64) {
    let new = Governed::on_zk_at(&zk.connect, &dir.0, Some(from.demo.addr), &["--handover"]);
    let node = from.node();
    assert!(
        zkc.wait_for(&node, Duration::from_secs(10), |n| {
            n.is_some_and(|(_, stat)| !others.contains(&stat.ephemeral_owner))
        }),
        "the new process never registered the address"
    );
    let session = owner(zkc, &node).unwrap();
    (new, session)
}

/// Whether `node` comes to belong to `session` within 10 s.
fn comes_back_to(zkc: &support::zk::Zk, node: &str, session: i64) -> bool {
    zkc.wait_for(node, Duration::from_secs(10), |n| {
        n.is_some_and(|(_, stat)| stat.ephemeral_owner == session)
    })
}

/// Sends SIGTERM and asserts a clean exit within 15 s.
fn stops_cleanly(g: &mut Governed) {
    g.demo.sigterm();
    assert_eq!(g.demo.wait(Duration::from_secs(15)).0, Some(0));
}

/// A consumer process's governance on `zk` (app `consumer`, a 2 s session).
fn consumer(zk: &ZooKeeper) -> Governance {
    let mut o = GovernanceOptions::new("consumer", "c", Backend::ZooKeeper(zk.connect.clone()));
    o.session_timeout = Duration::from_secs(2);
    Governance::start(o).unwrap()
}

/// The pid in `node`'s registration.
fn registered_pid(zkc: &support::zk::Zk, node: &str) -> serde_json::Value {
    pid_in(&zkc.get(node).unwrap().0)
}

/// The pid in a provider node's data (null if it is not JSON).
fn pid_in(data: &[u8]) -> serde_json::Value {
    let json: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
    json["pid"].clone()
}

/// A handover on a registered address: the new process registers it (its node
/// replaces the old one's, never leaving none), a ZooKeeper blip does not give the
/// node back to the old one, and the old one's drain deletes nothing, so the address
/// stays in the registry through the old one's exit.
#[test]
fn a_handover_leaves_the_registration_to_the_new_process() {
    let (zk, zkc, dir, mut old) = registered(1, "handover");
    let node = old.node();
    // A consumer that follows the address (it relays calls to it).
    let (relay, _) = relaying(&zk, &dir);
    let woken = zkc.on_change(&node);
    let (new, _) = hand_over(&zk, &zkc, &dir, &old, &[owner(&zkc, &node).unwrap()]);
    // The old node is deleted and the new one made in one transaction: a reader
    // woken by the deletion already finds the new node, and the consumer never
    // drops the address (it reads a deleted node before dropping it).
    let (event, found) = zkc.wait_task(woken, Duration::from_secs(10));
    assert_eq!(event, zk::EventType::NodeDeleted);
    assert!(found, "the address was briefly not registered");
    relay.wait_view("/registry", "the new process's node", |r| {
        let pid = new.demo.child.id();
        r["ringsoa-demo"]["main"]
            .as_array()
            .is_some_and(|l| l.iter().any(|p| p["pid"] == pid))
    });
    assert!(
        !relay.log_text().contains("dropped from the mirror"),
        "{}",
        relay.log_text()
    );

    // A ZooKeeper blip before the old process drains: both reconnect and check
    // their registration again, and the old one does not take the node back.
    drop(zkc);
    let zkc = blip(&zk, &old, Duration::from_millis(1500));
    let by_new = |n: Option<&(Vec<u8>, zk::Stat)>| {
        n.is_some_and(|(data, _)| pid_in(data) == new.demo.child.id())
    };
    assert!(
        zkc.wait_for(&node, Duration::from_secs(10), by_new),
        "the new process lost the registration: {}",
        old.log_text()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        by_new(zkc.get(&node).as_ref()),
        "the old process took the registration back: {}",
        old.log_text()
    );
    let created = zkc.get(&node).unwrap().1.czxid;
    stops_cleanly(&mut old);
    let stat = zkc.get(&node).expect("the address is still registered").1;
    assert_eq!(stat.czxid, created, "the node was deleted and made again");
    assert_eq!(registered_pid(&zkc, &node), new.demo.child.id());
    assert!(
        old.log_text().contains("its node stays"),
        "{}",
        old.log_text()
    );
}

/// Stopping the new process first (a rollback): the old one, which has the
/// sockets back, registers the address again.
#[test]
fn the_old_process_registers_again_when_the_new_one_stops_first() {
    let (zk, zkc, dir, old) = registered(1, "rollback");
    let node = old.node();
    let old_session = owner(&zkc, &node).unwrap();
    let (mut new, _) = hand_over(&zk, &zkc, &dir, &old, &[old_session]);
    // The new one gives the address back as it stops: the old one's node replaces
    // its node before its drain, and a reader never finds none.
    let woken = zkc.on_change(&node);
    stops_cleanly(&mut new);
    assert!(
        comes_back_to(&zkc, &node, old_session),
        "the old process did not register again: {}",
        old.log_text()
    );
    let (event, found) = zkc.wait_task(woken, Duration::from_secs(10));
    assert_eq!(event, zk::EventType::NodeDeleted);
    assert!(found, "the address was not registered for a while");
    assert!(
        new.log_text().contains("giving the address back"),
        "{}",
        new.log_text()
    );
    assert_eq!(registered_pid(&zkc, &node), old.demo.child.id());

    // A new process that crashes: its node stays until its session expires, and the
    // old one replaces it.
    let (mut new, _) = hand_over(&zk, &zkc, &dir, &old, &[old_session]);
    // Not `Demo::kill`, which waits for the address to refuse: the old one serves it.
    new.demo.child.kill().unwrap();
    new.demo.child.wait().unwrap();
    assert!(
        comes_back_to(&zkc, &node, old_session),
        "the old process did not take the address back from a crashed one: {}",
        old.log_text()
    );
}

/// A → B → C, and B stops while A still runs: B handed the sockets on, so A, which
/// sees B exit, leaves the address and its registration to C.
#[test]
fn after_a_chain_of_handovers_the_newest_keeps_the_registration() {
    let (zk, zkc, dir, a) = registered(1, "chain");
    let node = a.node();
    let a_session = owner(&zkc, &node).unwrap();
    let (mut b, b_session) = hand_over(&zk, &zkc, &dir, &a, &[a_session]);
    let (c, c_session) = hand_over(&zk, &zkc, &dir, &a, &[a_session, b_session]);
    stops_cleanly(&mut b);
    // A would take the address back at once (its health check passes): give it time.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        owner(&zkc, &node),
        Some(c_session),
        "C lost the registration: {}",
        a.log_text()
    );
    assert_eq!(registered_pid(&zkc, &node), c.demo.child.id());
}

/// Rolling restarts by handover while a consumer that discovers the service calls
/// it without pause: no call fails, and the consumer's list of providers is never
/// empty (each restart's node replaces the last in one transaction).
#[test]
fn handovers_under_a_discovering_consumer_fail_no_call() {
    let (zk, zkc, dir, mut current) = registered(1, "rolling");
    let node = current.node();
    let gov = consumer(&zk);
    let stop = Arc::new(AtomicBool::new(false));
    let calling = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            support::block_on(async {
                let service: ServiceName = "ringsoa-demo/main".parse().unwrap();
                let view = gov.follow_here();
                assert!(view.loaded(&service, Duration::from_secs(10)).await);
                let empty = Rc::new(Cell::new(0u32));
                let seen = empty.clone();
                let watched = service.clone();
                view.subscribe(move |snap| {
                    if snap.providers(&watched).is_none_or(<[_]>::is_empty) {
                        seen.set(seen.get() + 1);
                    }
                    true
                });
                let client = Client::discover(&view, service, ClientConfig::new("consumer"));
                let demo = DemoClient::new(Rc::new(client));
                let (mut calls, mut failed) = (0u64, (0u64, Vec::new()));
                while !stop.load(Ordering::Relaxed) {
                    calls += 1;
                    if let Err(e) = demo.echo(None, "x".into()).await {
                        // Retried at once: refusals may come by the million.
                        failed.0 += 1;
                        if failed.1.len() < 3 {
                            failed.1.push(e.to_string());
                        }
                    }
                }
                (calls, failed, empty.get())
            })
        })
    };
    let mut sessions = vec![owner(&zkc, &node).unwrap()];
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        let (next, session) = hand_over(&zk, &zkc, &dir, &current, &sessions);
        sessions.push(session);
        stops_cleanly(&mut current);
        current = next;
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (calls, failed, empty) = calling.join().unwrap();
    println!("rolling: {calls} calls through 5 handovers");
    assert!(calls > 100, "{calls} calls");
    assert_eq!(
        failed.0, 0,
        "of {calls} calls {} failed, first: {:?}",
        failed.0, failed.1
    );
    assert_eq!(empty, 0, "snapshots without a provider");
    assert_eq!(registered_pid(&zkc, &node), current.demo.child.id());
}

/// A caller that retries a refused call at once awaits nothing the view's timer
/// could run in; the refusal takes the view's news itself, so the providers still
/// arrive (without it the loop spun on "no nodes" until its deadline).
#[test]
fn a_caller_retrying_at_once_still_sees_the_providers_arrive() {
    let (zk, _zkc, _dir, _a) = registered(1, "eager");
    let gov = consumer(&zk);
    support::block_on(async {
        let view = gov.follow_here();
        let service: ServiceName = "ringsoa-demo/main".parse().unwrap();
        let client = Client::discover(&view, service, ClientConfig::new("consumer"));
        let demo = DemoClient::new(Rc::new(client));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut refused = 0u64;
        while let Err(e) = demo.echo(None, "x".into()).await {
            assert!(e.to_string().contains("no nodes"), "{e}");
            refused += 1;
            assert!(
                Instant::now() < deadline,
                "still no nodes after {refused} calls refused at once"
            );
        }
        println!("the providers arrived after {refused} refused calls");
    });
}

#[test]
fn consumers_follow_providers_as_they_come_and_go() {
    let (zk, zkc, dir, a) = registered(1, "discover");

    let gov = consumer(&zk);
    let service: ServiceName = "ringsoa-demo/main".parse().unwrap();
    let mut b = None;
    support::block_on(async {
        let view = gov.follow_here();
        let client = Rc::new(Client::discover(
            &view,
            service.clone(),
            ClientConfig::new("consumer"),
        ));
        let nodes =
            |c: &Client| -> Vec<SocketAddr> { c.stats().iter().map(|s| s.node.addr).collect() };
        let deadline = Instant::now() + Duration::from_secs(10);
        while nodes(&client) != vec![a.demo.addr] {
            assert!(
                Instant::now() < deadline,
                "provider A never seen: {:?}",
                nodes(&client)
            );
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
        // Load on the client while providers come and go: no call may fail.
        let stop = Rc::new(Cell::new(false));
        let failures = Rc::new(Cell::new(0u32));
        let worker = {
            let (client, stop, failures) = (client.clone(), stop.clone(), failures.clone());
            monoio::spawn(async move {
                let demo = DemoClient::new(client);
                while !stop.get() {
                    if demo.echo(None, "x".into()).await.is_err() {
                        failures.set(failures.get() + 1);
                    }
                }
            })
        };
        // B starts; the consumer sees it within 1 s of its node appearing.
        let started = Governed::on_zk(&zk.connect, &dir.0, &[]);
        let b_addr = started.demo.addr;
        let b_node = started.node();
        b = Some(started);
        let deadline = Instant::now() + Duration::from_secs(10);
        while zkc.get(&b_node).is_none() {
            assert!(Instant::now() < deadline, "B never registered");
            monoio::time::sleep(Duration::from_millis(5)).await;
        }
        let registered = Instant::now();
        while !nodes(&client).contains(&b_addr) {
            assert!(
                registered.elapsed() < Duration::from_secs(1),
                "B not seen within 1 s"
            );
            monoio::time::sleep(Duration::from_millis(2)).await;
        }
        println!(
            "new provider seen {:?} after its node appeared",
            registered.elapsed()
        );
        monoio::time::sleep(Duration::from_millis(300)).await;
        let used = client
            .stats()
            .iter()
            .find(|s| s.node.addr == b_addr)
            .unwrap()
            .pool
            .created;
        assert!(used > 0, "B was never called");
        // B drains: it leaves the list before it stops serving.
        b.as_ref().unwrap().demo.sigterm();
        let deadline = Instant::now() + Duration::from_secs(5);
        while nodes(&client).contains(&b_addr) {
            assert!(
                Instant::now() < deadline,
                "B still used after deregistering"
            );
            monoio::time::sleep(Duration::from_millis(5)).await;
        }
        monoio::time::sleep(Duration::from_millis(1500)).await;
        stop.set(true);
        worker.await;
        assert_eq!(
            failures.get(),
            0,
            "calls failed while providers came and went"
        );
    });
    b.unwrap().demo.wait(Duration::from_secs(15));

    // The demo relays to app/cluster through discovery; a service without
    // providers is a clear error.
    let (_relay, mut s) = relaying(&zk, &dir);
    let args = DemoRelayWhoamiArgs {
        target: Some("ringsoa-demo/none".into()),
    };
    let reply = call_raw(&mut s, "relay_whoami", 2, &args).unwrap();
    assert!(String::from_utf8_lossy(&reply).contains("no live provider of ringsoa-demo/none"));
}

#[test]
fn config_and_switches_reach_every_core_and_overrides_win() {
    let zk = ZooKeeper::start(1);
    let zkc = zk.client();
    let dir = Scratch::new("config");
    let g = Governed::on_zk(&zk.connect, &dir.0, &[]);
    let zka = ["--zk", zk.connect.as_str()];
    let set = |args: &[&str]| {
        let (ok, out, err) = ringsoa(&[args, &zka[..]].concat());
        assert!(ok, "{args:?}: {out} {err}");
    };
    let greeting = |g: &Governed| g.get("/config")["greeting"].as_str().map(str::to_string);

    set(&["config", "set", APP, "greeting", "app-value"]);
    g.wait_view("/config", "the app value", |c| c["greeting"] == "app-value");
    every_core_sees(g.demo.addr, "demo.config", "greeting", "app-value");

    // The cluster's override wins; other clusters' and apps' values never apply.
    set(&[
        "config",
        "set",
        APP,
        "greeting",
        "main-value",
        "--cluster",
        "main",
    ]);
    set(&[
        "config",
        "set",
        APP,
        "greeting",
        "other-cluster",
        "--cluster",
        "other",
    ]);
    set(&["config", "set", "another-app", "greeting", "other-app"]);
    set(&["config", "set", APP, "marker", "1"]);
    g.wait_view("/config", "the marker", |c| c["marker"] == "1");
    assert_eq!(greeting(&g).as_deref(), Some("main-value"));
    every_core_sees(g.demo.addr, "demo.config", "greeting", "main-value");
    let (ok, out, _) = ringsoa(
        &[
            &["config", "get", APP, "greeting", "--cluster", "main"],
            &zka[..],
        ]
        .concat(),
    );
    assert!(ok);
    assert_eq!(out, "main-value");

    // Deleting the override falls back to the app's value.
    set(&["config", "rm", APP, "greeting", "--cluster", "main"]);
    g.wait_view("/config", "the fallback", |c| c["greeting"] == "app-value");
    every_core_sees(g.demo.addr, "demo.config", "greeting", "app-value");

    // A switch flipped with a plain ZooKeeper client; the handler obeys it.
    zkc.set("/ringsoa/apps/ringsoa-demo/switches/relay", b"off");
    g.wait_view("/switches", "relay off", |s| s["relay"] == "off");
    every_core_sees(g.demo.addr, "demo.switch", "relay", "off");
    let mut s = TcpStream::connect(g.demo.addr).unwrap();
    let args = DemoRelayWhoamiArgs {
        target: Some(g.demo.addr.to_string()),
    };
    let reply = call_raw(&mut s, "relay_whoami", 1, &args).unwrap();
    assert!(String::from_utf8_lossy(&reply).contains("relay is switched off"));
    set(&["switch", "set", APP, "relay", "on", "--cluster", "main"]);
    g.wait_view("/switches", "relay on (override)", |s| s["relay"] == "on");
    // The admin view is the governance thread's; each core follows within its poll.
    every_core_sees(g.demo.addr, "demo.switch", "relay", "on");
    assert!(is_reply(
        &call_raw(&mut s, "relay_whoami", 2, &args).unwrap()
    ));
    let (ok, _, err) = ringsoa(&[&["switch", "set", APP, "relay", "maybe"], &zka[..]].concat());
    assert!(!ok && err.contains("on, off or JSON"), "{err}");

    // A value larger than a command line holds, from a file; one over ZooKeeper's
    // jute.maxbuffer is refused in one line that says so.
    let file = dir.0.join("value.txt");
    std::fs::write(&file, "z".repeat(1_000_000)).unwrap();
    set(&[
        "config",
        "set",
        APP,
        "large",
        "--file",
        file.to_str().unwrap(),
    ]);
    g.wait_view("/config", "the large value", |c| {
        c["large"].as_str().map(str::len) == Some(1_000_000)
    });
    std::fs::write(&file, "z".repeat(1_100_000)).unwrap();
    let over = [
        "config",
        "set",
        APP,
        "over",
        "--file",
        file.to_str().unwrap(),
    ];
    let (ok, _, err) = ringsoa(&[&over[..], &zka[..]].concat());
    assert!(!ok && err.lines().count() == 1, "{err}");
    assert!(
        err.contains("jute.maxbuffer") && err.contains("1100000 bytes"),
        "{err}"
    );
}

/// An operator with ZooKeeper's own CLI (`zkCli.sh`, the Java client): the provider
/// node ringsoa wrote reads back as its JSON, ephemeral; folders made with no data,
/// values set, changed and deleted by hand, a cluster override among them, reach
/// every core; a value the ringsoa CLI wrote reads back byte for byte.
#[test]
fn zookeepers_own_cli_reads_what_ringsoa_writes_and_its_edits_reach_every_core() {
    let (zk, _zkc, _dir, g) = registered(1, "zkcli");
    let node = g.node();
    let json: serde_json::Value = serde_json::from_str(&zk.cli(&["get", &node])).unwrap();
    assert_eq!(json["host"], "127.0.0.1", "{json}");
    assert_eq!(json["port"], g.demo.addr.port(), "{json}");
    assert_eq!(json["pid"], g.demo.child.id(), "{json}");
    assert_eq!(json["cores"], 2, "{json}");
    let stat = zk.cli(&["stat", &node]);
    let owner = stat
        .lines()
        .find_map(|l| l.strip_prefix("ephemeralOwner = "))
        .unwrap_or_else(|| panic!("no ephemeralOwner in {stat}"));
    assert_ne!(owner, "0x0", "the provider node is not ephemeral");

    let app = "/ringsoa/apps/ringsoa-demo";
    for (path, data) in [
        ("config", None),
        ("config/greeting", Some("set with zkCli")),
        ("switches", None),
        ("switches/relay", Some("off")),
        ("clusters/main/config", None),
        (
            "clusters/main/config/greeting",
            Some("the cluster's, with zkCli"),
        ),
    ] {
        let path = format!("{app}/{path}");
        let mut cmd = vec!["create", path.as_str()];
        cmd.extend(data);
        zk.cli(&cmd);
    }
    let greeting = |want: &'static str| {
        g.wait_view("/config", want, |c| c["greeting"] == want);
        every_core_sees(g.demo.addr, "demo.config", "greeting", want);
    };
    greeting("the cluster's, with zkCli");
    g.wait_view("/switches", "relay off", |s| s["relay"] == "off");
    every_core_sees(g.demo.addr, "demo.switch", "relay", "off");

    zk.cli(&["delete", &format!("{app}/clusters/main/config/greeting")]);
    greeting("set with zkCli");
    zk.cli(&[
        "set",
        &format!("{app}/config/greeting"),
        "changed with zkCli",
    ]);
    greeting("changed with zkCli");
    zk.cli(&["deleteall", &format!("{app}/switches")]);
    g.wait_view("/switches", "no switches", |s| s == &serde_json::json!({}));

    let zka = ["--zk", zk.connect.as_str()];
    let value = r#"{"max": 10, "name": "a b"}"#;
    let (ok, out, err) = ringsoa(&[&["config", "set", APP, "limits", value], &zka[..]].concat());
    assert!(ok, "{out} {err}");
    assert_eq!(zk.cli(&["get", &format!("{app}/config/limits")]), value);
}

/// A ZooKeeper whose root only an operator's credentials may write (set up with
/// zkCli's `addauth digest`): a process without credentials serves unregistered and
/// says why; one with them registers, its node guarded (everything to the same
/// credentials, reading to anyone, so that zkCli without them cannot delete it);
/// `<root>/apps`, which it made, lets another app with other credentials register,
/// and its app's folders take values from its credentials only; consumers without
/// credentials still see the provider and the config; the CLI writes with
/// credentials from `--zk-auth` or `RINGSOA_ZK_AUTH`, and refuses without, with one
/// line that says where credentials go. The secret is never logged.
/// The operator's credentials in zkCli's `addauth` form and in ringsoa's.
const OPS: (&str, &str) = ("addauth digest ops:s3cret", "digest:ops:s3cret");

/// Makes `/ringsoa` with zkCli, writable only with [`OPS`]'s credentials.
fn guard_root(zk: &ZooKeeper) {
    let (_, err) = zk.cli_session(&[OPS.0, "create /ringsoa \"\" auth::cdrwa,world:anyone:r"]);
    assert!(err.contains("Created /ringsoa"), "{err}");
    let acl = zk.cli(&["getAcl", "/ringsoa"]);
    assert!(
        acl.contains("'digest,'ops:") && acl.contains("'world,'anyone\n: r"),
        "{acl}"
    );
}

#[test]
fn credentials_write_under_an_acl_and_guard_what_they_create() {
    let zk = ZooKeeper::start(1);
    let dir = Scratch::new("auth");
    guard_root(&zk);

    let open = Governed::on_zk(&zk.connect, &dir.0, &[]);
    open.wait_view("/governance", "the ACL's refusal", |v| {
        v["error"].as_str().is_some_and(|e| {
            e.contains("not authorized") && e.contains("(none; given by --zk-auth")
        })
    });
    let cred = OPS.1;
    let g = Governed::on_zk(&zk.connect, &dir.0, &["--zk-auth", cred]);
    g.wait_view("/governance", "registered", |v| v["registered"] == g.node());
    assert_eq!(
        g.get("/governance")["credentials"],
        serde_json::json!(["digest"])
    );
    assert_eq!(
        open.get("/governance")["credentials"],
        serde_json::json!([])
    );
    let acl = zk.cli(&["getAcl", &g.node()]);
    assert!(
        acl.contains("'digest,'ops:") && acl.contains("'world,'anyone\n: r"),
        "{acl}"
    );
    let refused = zk.try_cli(&["delete", &g.node()]).unwrap_err();
    assert!(refused.contains("Insufficient permission"), "{refused}");
    let (ok, out, err) = ringsoa(&["registry", "ls", APP, "main", "--zk", &zk.connect]);
    assert!(
        ok && out.contains(&format!("\"port\": {}", g.demo.addr.port())),
        "{out}{err}"
    );
    // `<root>/apps`, which it made, shuts out no other app with other credentials;
    // its app's folders are its own.
    let other = ["--zk-auth", "digest:other:pw", "--name", "other-app"];
    let other = Governed::on_zk(&zk.connect, &dir.0, &other);
    let node = format!(
        "/ringsoa/apps/other-app/clusters/main/providers/{}",
        other.demo.addr
    );
    other.wait_view("/governance", "the other app registered", |v| {
        v["registered"] == node
    });
    let acl = zk.cli(&["getAcl", "/ringsoa/apps"]);
    assert!(acl.ends_with("'world,'anyone\n: cr"), "{acl}");
    let acl = zk.cli(&["getAcl", "/ringsoa/apps/ringsoa-demo"]);
    assert!(acl.ends_with("'world,'anyone\n: r"), "{acl}");

    let set = [
        "config",
        "set",
        APP,
        "greeting",
        "guarded",
        "--zk",
        &zk.connect,
    ];
    let (ok, _, err) = ringsoa(&set);
    assert!(!ok && err.lines().count() == 1, "{err}");
    assert!(
        err.contains("not authorized") && err.contains("RINGSOA_ZK_AUTH"),
        "{err}"
    );
    let (ok, _, err) = ringsoa(&[&set[..], &["--zk-auth", "digest:other:pw"]].concat());
    assert!(!ok && err.contains("(digest; given by --zk-auth"), "{err}");
    let (ok, _, err) = ringsoa(&[&set[..], &["--zk-auth", "nosuchscheme:x"]].concat());
    assert!(
        !ok && err.lines().count() == 1 && err.contains("refused the credentials (nosuchscheme)"),
        "{err}"
    );
    let (ok, _, err) = ringsoa(&[&set[..], &["--zk-auth", cred]].concat());
    assert!(ok, "{err}");
    let other = ["config", "set", APP, "other", "from the environment"];
    let (ok, _, err) =
        ringsoa_with_auth(&[&other[..], &["--zk", &zk.connect]].concat(), Some(cred));
    assert!(ok, "{err}");
    for demo in [&g, &open] {
        demo.wait_view("/config", "both values", |c| {
            c["greeting"] == "guarded" && c["other"] == "from the environment"
        });
    }
    every_core_sees(g.demo.addr, "demo.config", "greeting", "guarded");
    assert!(!g.log_text().contains("s3cret"), "{}", g.log_text());
}

#[test]
fn credentials_hold_across_a_reconnect_and_a_new_session() {
    let zk = ZooKeeper::start(1);
    let dir = Scratch::new("auth-expiry");
    guard_root(&zk);
    let g = Governed::on_zk(&zk.connect, &dir.0, &["--zk-auth", OPS.1]);
    g.wait_view("/governance", "registered", |v| v["registered"] == g.node());
    let zkc = zk.client();
    let session = owner(&zkc, &g.node()).unwrap();
    drop(zkc);
    // ZooKeeper binds credentials to a connection, not to the session: after a
    // reconnect, writing again needs them sent again.
    zk.pause(1);
    wait(Duration::from_secs(5), "the connection lost", || {
        g.log_text().contains("ZooKeeper connection lost")
    });
    zk.resume(1);
    wait(Duration::from_secs(10), "the connection back", || {
        g.log_text().contains("ZooKeeper connection back")
    });
    let zkc = zk.client();
    assert_eq!(owner(&zkc, &g.node()), Some(session), "same session");
    let (_, err) = zk.cli_session(&[OPS.0, &format!("delete {}", g.node())]);
    assert!(!err.contains("Insufficient permission"), "{err}");
    wait(Duration::from_secs(5), "the deletion seen", || {
        g.log_text()
            .contains("the provider node was deleted, not by this process")
    });
    assert!(
        comes_back_to(&zkc, &g.node(), session),
        "not registered again after a reconnect: {}",
        g.log_text()
    );
    drop(zkc);
    // A new session after expiry registers with them too, under the same ACL.
    expire(&zk, &g, session);
    let acl = zk.cli(&["getAcl", &g.node()]);
    assert!(
        acl.contains("'digest,'ops:") && acl.contains("'world,'anyone\n: r"),
        "{acl}"
    );
    assert!(!g.log_text().contains("not authorized"), "{}", g.log_text());
}

/// ZooKeeper over TLS, as `tools/zk.sh --tls` sets it up (its secureClientPort,
/// a client certificate required): the demo registers and follows config through
/// it, the CLI writes and reads through it, and what cannot work is named in one
/// line: another CA, no client certificate, the plain port, a `tcp+tls://` host
/// with no CA. A demo that cannot make its session serves on, with the reason in
/// `/governance`.
#[test]
fn zookeeper_over_tls_registers_follows_config_and_names_what_fails() {
    let zk = ZooKeeper::start_tls(1);
    let zkc = zk.client();
    let secure = zk.secure_connect();
    let (ca, other) = (zk.tls_file("ca.pem"), zk.tls_file("other-ca.pem"));
    let (cert, key) = (zk.tls_file("client.pem"), zk.tls_file("client.key"));
    let tls = [
        "--zk-tls-ca",
        &ca,
        "--zk-tls-cert",
        &cert,
        "--zk-tls-key",
        &key,
    ];
    let dir = Scratch::new("tls");
    let g = Governed::on_zk(&secure, &dir.0, &tls);
    assert!(
        zkc.wait_for(&g.node(), Duration::from_secs(10), |n| n.is_some()),
        "not registered over TLS: {}",
        g.log_text()
    );
    assert_eq!(
        g.get("/governance")["tls"],
        "with a client certificate",
        "{}",
        g.log_text()
    );
    let over_tls = |args: &[&str]| ringsoa(&[args, &["--zk", &secure], &tls[..]].concat());
    let (ok, _, err) = over_tls(&["config", "set", APP, "channel", "tls"]);
    assert!(ok, "{err}");
    g.wait_view("/config", "the value set over TLS", |c| {
        c["channel"] == "tls"
    });
    let (ok, out, err) = over_tls(&["registry", "ls", APP, "main"]);
    let port = g.demo.addr.port().to_string();
    assert!(ok && out.contains(&port), "{out} {err}");

    // What cannot work: a failed command, its one line saying why.
    let plain = zk.connect.as_str();
    let tls_host = format!("tcp+tls://{secure}");
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--zk",
                &secure,
                "--zk-tls-ca",
                &other,
                "--zk-tls-cert",
                &cert,
                "--zk-tls-key",
                &key,
            ],
            "must be signed by the CA of --zk-tls-ca",
        ),
        (
            &["--zk", &secure, "--zk-tls-ca", &ca],
            "wants --zk-tls-cert and --zk-tls-key",
        ),
        (
            &["--zk", plain, "--zk-tls-ca", &ca],
            "is this port ZooKeeper's secureClientPort?",
        ),
        (
            &["--zk", &tls_host],
            "no CA is given for it (--zk-tls-ca FILE",
        ),
    ];
    for (args, why) in cases {
        let (ok, _, err) = ringsoa(&[&["registry", "ls"], args].concat());
        assert!(
            !ok && err.contains(why) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }

    // A demo given another CA serves, unregistered, and says why.
    let extra = ["--zk-tls-ca", &other];
    serves_without_a_session(&secure, "tls-other-ca", &extra, "invalid peer certificate");

    // A certificate renewed in place is used without a restart: a demo whose
    // certificate ZooKeeper refuses (another CA signed it) registers once its
    // files hold one that ZooKeeper takes.
    let renewed = Scratch::new("tls-renewed");
    let (cert, key) = (renewed.0.join("client.pem"), renewed.0.join("client.key"));
    std::fs::copy(zk.tls_file("other-client.pem"), &cert).unwrap();
    std::fs::copy(zk.tls_file("other-client.key"), &key).unwrap();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let files = [
        "--zk-tls-ca",
        &ca,
        "--zk-tls-cert",
        cert,
        "--zk-tls-key",
        key,
    ];
    let g = Governed::on_zk(&secure, &renewed.0, &files);
    g.wait_view("/governance", "the refused certificate", |v| {
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("ZooKeeper refused this client"))
    });
    std::fs::copy(zk.tls_file("client.key"), key).unwrap();
    std::fs::copy(zk.tls_file("client.pem"), cert).unwrap();
    assert!(
        zkc.wait_for(&g.node(), Duration::from_secs(20), |n| n.is_some()),
        "not registered after the renewal: {}",
        g.log_text()
    );
    assert!(g.log_text().contains("ZooKeeper TLS files changed"));
}

/// Starts a demo on `zk` with `extra` flags, which cannot make a session: it
/// answers calls all the same, and `/governance` says `why`. Returns the demo
/// and its directory.
fn serves_without_a_session(
    zk: &str,
    name: &str,
    extra: &[&str],
    why: &str,
) -> (Governed, Scratch) {
    let dir = Scratch::new(name);
    let g = Governed::on_zk(zk, &dir.0, extra);
    g.wait_view("/governance", why, |v| {
        v["connected"] == false && v["error"].as_str().is_some_and(|e| e.contains(why))
    });
    let mut s = TcpStream::connect(g.demo.addr).unwrap();
    assert!(is_reply(
        &call_raw(&mut s, "ping", 1, &DemoPingArgs {}).unwrap()
    ));
    (g, dir)
}

/// An ensemble that has lost its quorum (two of its three nodes killed): the
/// node left accepts connections and closes each at the session request, over
/// TLS too. The CLI's line (either way) and the demo's `/governance` say so, and
/// zookeeper-client's warning at each of its connect attempts is logged once per
/// 10 s. Before, they said only "no available hosts" and "no answer within 3s",
/// and the log had one of zookeeper-client's lines about every second.
#[test]
fn an_ensemble_without_its_quorum_is_named_and_its_clients_attempts_do_not_flood_the_log() {
    let zk = ZooKeeper::start_tls(3);
    zk.kill(1);
    zk.kill(2);
    let why = "closes connections at the session request (a ZooKeeper server that is not serving";
    let secure = zk.secure_connect();
    let tls = zk.tls_flags();
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let over_tls = [&["--zk", &secure][..], &tls].concat();
    for how in [&["--zk", zk.connect.as_str()][..], &over_tls] {
        let (ok, _, err) = ringsoa(&[&["registry", "ls"], how].concat());
        assert!(
            !ok && err.lines().next().unwrap_or_default().contains(why),
            "{how:?}: {err}"
        );
    }
    let started = Instant::now();
    let (g, _dir) = serves_without_a_session(&zk.connect, "no-quorum", &[], why);
    std::thread::sleep(Duration::from_secs(12).saturating_sub(started.elapsed()));
    let log = g.log_text();
    let lines = log.lines().filter(|l| l.contains("zookeeper_client"));
    assert!(lines.count() <= 4, "{log}");
    // The quorum back: the demo registers.
    zk.start_node(1);
    zk.start_node(2);
    assert!(
        zk.client()
            .wait_for(&g.node(), Duration::from_secs(30), |n| n.is_some()),
        "not registered once the quorum is back: {}",
        g.log_text()
    );
}

/// A ZooKeeper that requires a SASL DIGEST-MD5 login of every session
/// (`tools/zk.sh --sasl`): the demo logs in with `--zk-auth sasl:user:password`,
/// registers and follows a value the CLI wrote with the login from
/// `RINGSOA_ZK_AUTH`. Without a login, or with a wrong password, the CLI's line says
/// which, and a demo without one serves on, unregistered, the cause in
/// `/governance`.
#[test]
fn a_zookeeper_that_requires_a_sasl_login_is_logged_into() {
    use support::zk::SASL_LOGIN;
    let zk = ZooKeeper::start_sasl();
    let dir = Scratch::new("sasl");
    let g = Governed::on_zk(&zk.connect, &dir.0, &["--zk-auth", SASL_LOGIN]);
    let port = g.demo.addr.port().to_string();
    let ls = ["registry", "ls", APP, "main", "--zk", &zk.connect];
    wait(Duration::from_secs(10), "the registration", || {
        let (ok, out, _) = ringsoa_with_auth(&ls, Some(SASL_LOGIN));
        ok && out.contains(&port)
    });
    let set = ["config", "set", APP, "login", "sasl", "--zk", &zk.connect];
    let (ok, _, err) = ringsoa_with_auth(&set, Some(SASL_LOGIN));
    assert!(ok, "{err}");
    g.wait_view("/config", "the value set with the login", |c| {
        c["login"] == "sasl"
    });
    assert_eq!(g.get("/governance")["credentials"][0], "sasl");
    // What the login created is guarded under its SASL identity, as zkCli (logged
    // in too) reads the ACLs.
    let node = format!("{PROVIDERS}/{}", g.demo.addr);
    for path in [node.as_str(), "/ringsoa/apps/ringsoa-demo/config/login"] {
        let acl = zk.cli(&["getAcl", path]);
        assert!(
            acl.contains("'sasl,'ringsoa\n: cdrwa") && acl.contains("'world,'anyone\n: r"),
            "{path}: {acl}"
        );
    }

    let cases = [
        (None, "refused a session without credentials"),
        (Some("sasl:ringsoa:wrong"), "refused the credentials (sasl)"),
        (
            Some("sasl:ringsoa"),
            "a SASL credential is sasl:user:password",
        ),
    ];
    for (login, why) in cases {
        let (ok, _, err) = ringsoa_with_auth(&ls, login);
        // The first line says it (clap adds a line on where to find help).
        let first = err.lines().next().unwrap_or_default();
        assert!(!ok && first.contains(why), "{login:?}: {err}");
    }

    let why = "refused a session without credentials";
    serves_without_a_session(&zk.connect, "sasl-none", &[], why);
}

/// A ZooKeeper older than 3.6 (3.4.13 here, `tools/zk.sh --release 3.4`) knows no
/// persistent watches, and drops the connection of a request it does not know.
/// The demo says so in one line, serves what its disk cache holds and tries again
/// 30 s later; before, it re-watched on every reconnect in a tight
/// loop, reconnecting without a pause (some 90,000 log lines in 18 s). A CLI
/// write says what the server lacks.
#[test]
fn a_zookeeper_older_than_3_6_is_named_and_not_hammered() {
    let dir = Scratch::new("zk-3-4");
    {
        // A value seen on a current ZooKeeper, kept in the disk cache.
        let zk = ZooKeeper::start(1);
        let g = Governed::on_zk(&zk.connect, &dir.0, &[]);
        zk.client()
            .set("/ringsoa/apps/ringsoa-demo/config/greeting", b"cached");
        g.wait_view("/config", "the value", |c| c["greeting"] == "cached");
        // Written within a second of the last write (the writes are paced).
        let cache = dir.0.join("cache/ringsoa-demo.main.json");
        wait(
            Duration::from_secs(5),
            "the value in the disk cache",
            || std::fs::read_to_string(&cache).is_ok_and(|c| c.contains("cached")),
        );
    }
    let old = ZooKeeper::start_3_4();
    let g = Governed::on_zk(&old.connect, &dir.0, &[]);
    let why = "ringsoa needs ZooKeeper 3.6 or newer";
    g.wait_view("/governance", "the version named", |v| {
        v["connected"] == false && v["error"].as_str().is_some_and(|e| e.contains(why))
    });
    g.wait_view("/config", "the cached value", |c| c["greeting"] == "cached");
    assert_eq!(g.get("/governance")["source"], "cache");
    let mut s = TcpStream::connect(g.demo.addr).unwrap();
    assert!(is_reply(
        &call_raw(&mut s, "ping", 1, &DemoPingArgs {}).unwrap()
    ));
    // Over the next 3 s: no other session, and the cause said once.
    std::thread::sleep(Duration::from_secs(3));
    let log = g.log_text();
    let sessions = log.matches("ZooKeeper session established").count();
    let said = log.lines().filter(|l| l.contains(why)).count();
    assert_eq!(sessions, 1, "{log}");
    assert_eq!(said, 1, "{log}");
    assert!(log.lines().count() < 300, "{log}");

    let set = ["config", "set", APP, "greeting", "x", "--zk", &old.connect];
    let (ok, _, err) = ringsoa(&set);
    assert!(
        !ok && err.lines().next().unwrap_or_default().contains(why),
        "{err}"
    );
}

/// A ZooKeeper that cannot be reached at all is named why: a port where nothing
/// listens, a name that does not resolve (in the CLI's line and the demo's
/// `/governance`). Before, both said only "no available hosts". One host that
/// can be reached keeps the others' reasons out of the line (the cause is
/// elsewhere).
#[test]
fn a_zookeeper_that_cannot_be_reached_is_named_why() {
    let closed = format!("127.0.0.1:{}", free_port());
    let refused = format!("{closed} refuses connections (nothing listens there)");
    let nowhere = "nowhere.invalid does not resolve (";
    let both = format!("{closed},nowhere.invalid:2181");
    let cases = [
        (closed.as_str(), refused.clone()),
        ("nowhere.invalid:2181", nowhere.to_string()),
        (
            both.as_str(),
            format!("{refused}, and the other host cannot be reached either"),
        ),
    ];
    for (hosts, why) in &cases {
        let (ok, _, err) = ringsoa(&["registry", "ls", "--zk", hosts]);
        assert!(
            !ok && err.lines().count() == 1 && err.contains(why.as_str()),
            "{hosts}: {err}"
        );
    }
    // A host that accepts and never answers (its kernel completes the connects).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let reachable = format!("{closed},{}", silent.local_addr().unwrap());
    let (ok, _, err) = ringsoa(&["registry", "ls", "--zk", &reachable]);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        !ok && first.contains("cannot reach ZooKeeper") && !first.contains("refuses connections"),
        "{err}"
    );
    serves_without_a_session(&closed, "unreached", &[], &refused);
}

/// A ZooKeeper that closes every new connection at once, as it does to a client
/// host over its maxClientCnxns (here 1, held by another client): the CLI's line
/// and the demo's `/governance` say so; before, both said only "no answer within
/// 3s". Each host of the connect string is looked at: one that is down first
/// hides nothing (before, only the first host was). Over TLS, where the closed
/// connection cuts the handshake short, the CLI's line says the same (before, it
/// asked whether the port was ZooKeeper's secureClientPort).
#[test]
fn a_zookeeper_that_takes_no_more_connections_from_this_host_is_named() {
    let zk = ZooKeeper::start_max_conns(1);
    let _held = zk.client();
    let why = "closes new connections at once (ZooKeeper does so to a client host over its maxClientCnxns";
    let (ok, _, err) = ringsoa(&["registry", "ls", "--zk", &zk.connect]);
    let first = err.lines().next().unwrap_or_default();
    assert!(!ok && first.contains(why), "{err}");
    // A demo over TLS holds the one TLS connection.
    let secure = zk.secure_connect();
    let tls = zk.tls_flags();
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let held = Scratch::new("max-conns-tls");
    let held_tls = Governed::on_zk(&secure, &held.0, &tls);
    wait(Duration::from_secs(10), "the demo's TLS session", || {
        held_tls.get("/governance")["connected"] == true
    });
    let (ok, _, err) = ringsoa(&[&["registry", "ls", "--zk", &secure], &tls[..]].concat());
    let first = err.lines().next().unwrap_or_default();
    assert!(!ok && first.contains(why), "{err}");
    let down_first = format!("127.0.0.1:{},{}", free_port(), zk.connect);
    let (ok, _, err) = ringsoa(&["registry", "ls", "--zk", &down_first]);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        !ok && first.contains(why) && first.contains(&zk.connect),
        "{err}"
    );
    serves_without_a_session(&down_first, "max-conns", &[], why);
}

/// A disk cache write that never ends (a FIFO where the write's temporary file
/// goes: opening it waits for a reader, as a write to a hung disk waits): the demo
/// stays registered in its first session past three session timeouts, follows a
/// change made meanwhile, and says once that the write is slow. Before, the write
/// held the governance thread: the session expired, the node left the registry,
/// and changes stopped reaching the view, with no line in the log.
#[test]
fn a_hung_disk_cache_write_holds_neither_the_session_nor_the_view() {
    let (_zk, zkc, dir, g) = registered(1, "hung-cache");
    let key = "/ringsoa/apps/ringsoa-demo/config/hung";
    let pid = g.demo.child.id();
    let tmp = dir.0.join(format!("cache/ringsoa-demo.main.json.tmp{pid}"));
    std::fs::create_dir_all(tmp.parent().unwrap()).unwrap();
    assert!(Command::new("mkfifo").arg(&tmp).status().unwrap().success());
    zkc.set(key, b"first");
    g.wait_view("/config", "the first value", |c| c["hung"] == "first");
    // The next write of the cache, within a second, hangs; sessions last 2 s.
    std::thread::sleep(Duration::from_secs(6));
    zkc.set(key, b"second");
    g.wait_view("/config", "a value set while the write hangs", |c| {
        c["hung"] == "second"
    });
    // The write may have started up to a second (the cache's pace) after the
    // change: its line comes 5 s after that.
    let slow_lines = || {
        g.log_text()
            .lines()
            .filter(|l| l.contains("a disk cache write has taken"))
            .count()
    };
    wait(Duration::from_secs(10), "the slow write's line", || {
        slow_lines() > 0
    });
    std::thread::sleep(Duration::from_millis(500));
    let log = g.log_text();
    assert!(zkc.get(&g.node()).is_some(), "not registered: {log}");
    let sessions = log.matches("ZooKeeper session established").count();
    assert_eq!(sessions, 1, "{log}");
    assert_eq!(slow_lines(), 1, "said once: {log}");
    let _ = std::fs::remove_file(&tmp);
}

/// A TCP relay to `target` that cuts each connection `life` after the server's
/// first bytes: a flapping network between a process and ZooKeeper. Counts the
/// connections made through it.
struct Flapping {
    addr: SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Flapping {
    fn start(target: &str, life: Duration) -> Flapping {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let target: SocketAddr = target.parse().unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let (Ok(client), Ok(server)) = (client, TcpStream::connect(target)) else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let answered = Arc::new(AtomicBool::new(false));
                let pipe =
                    |mut from: TcpStream, mut to: TcpStream, seen: Option<Arc<AtomicBool>>| {
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 65536];
                            while let Ok(n @ 1..) = std::io::Read::read(&mut from, &mut buf) {
                                if std::io::Write::write_all(&mut to, &buf[..n]).is_err() {
                                    break;
                                }
                                seen.iter().for_each(|s| s.store(true, Ordering::SeqCst));
                            }
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        })
                    };
                let clone = |s: &TcpStream| s.try_clone().unwrap();
                pipe(clone(&client), clone(&server), None);
                pipe(clone(&server), clone(&client), Some(answered.clone()));
                std::thread::spawn(move || {
                    while !answered.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    std::thread::sleep(life);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    let _ = server.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Flapping { addr, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A network that drops the connection to ZooKeeper moments after every
/// reconnect. Each reconnect re-reads everything (the client library does not
/// restore persistent watches), but a re-read that finds nothing changed used to
/// publish a snapshot to every core and rewrite the disk cache each time, and each
/// drop logged its two lines. Now nothing unchanged is published or written, a
/// change still arrives, and the drops are logged a line per 10 s.
#[test]
fn a_flapping_connection_publishes_nothing_unchanged_and_logs_a_line_per_interval() {
    let zk = ZooKeeper::start(1);
    let zkc = zk.client();
    let key = "/ringsoa/apps/ringsoa-demo/config/flap";
    zkc.set(key, b"before");
    let flapping = Flapping::start(&zk.connect, Duration::from_millis(300));
    let dir = Scratch::new("flapping");
    let started = Instant::now();
    let g = Governed::on_zk(&flapping.addr.to_string(), &dir.0, &[]);
    g.wait_view("/config", "the first value", |c| c["flap"] == "before");
    wait(Duration::from_secs(10), "registered", || {
        zkc.get(&g.node()).is_some()
    });
    // Settled: the registration's own event applied, and the disk cache write
    // held behind the first (at most one a second) done.
    let settled = flapping.connections() + 2;
    wait(Duration::from_secs(20), "two reconnects", || {
        flapping.connections() >= settled
    });
    std::thread::sleep(Duration::from_millis(1500));
    let version = || g.get("/governance")["version"].as_u64().unwrap();
    let cache = dir.0.join("cache/ringsoa-demo.main.json");
    let modified = || std::fs::metadata(&cache).unwrap().modified().unwrap();
    let (v0, m0, c0) = (version(), modified(), flapping.connections());
    wait(Duration::from_secs(30), "six more reconnects", || {
        flapping.connections() >= c0 + 6
    });
    std::thread::sleep(Duration::from_millis(1500));
    let log = g.log_text();
    assert_eq!(
        version(),
        v0,
        "snapshots published for nothing changed: {log}"
    );
    assert_eq!(
        modified(),
        m0,
        "the disk cache rewritten for nothing changed"
    );
    assert!(zkc.get(&g.node()).is_some(), "not registered: {log}");
    zkc.set(key, b"after");
    g.wait_view("/config", "a change made while it flaps", |c| {
        c["flap"] == "after"
    });
    assert!(version() > v0);
    let log = g.log_text();
    let (lost, back) = (
        log.matches("ZooKeeper connection lost").count(),
        log.matches("ZooKeeper connection back").count(),
    );
    let allowed = 1 + started.elapsed().as_secs() as usize / 10;
    let drops = flapping.connections() - 1;
    println!(
        "{drops} drops in {:?}: {lost} lines lost, {back} back",
        started.elapsed()
    );
    assert!(drops > allowed, "too few drops to tell: {drops}");
    assert!(
        (1..=allowed).contains(&lost),
        "{lost} lines for {drops} drops: {log}"
    );
    assert!(
        (1..=allowed).contains(&back),
        "{back} lines for {drops} drops: {log}"
    );
    assert_eq!(
        log.matches("ZooKeeper session established").count(),
        1,
        "{log}"
    );
    // zookeeper-client's own two INFO lines a reconnect ("enter state …",
    // "succeeds to establish session …") are below the demo's level for it.
    assert!(!log.contains("zookeeper_client"), "{log}");
}

/// A storm of changes sent at once: 5,000 writes of one value, 300 providers
/// appearing and 100 of them replaced in place (deleted and created again, as a
/// handover does). The demo ends holding what ZooKeeper holds, its events applied
/// in batches that read each node once.
#[test]
fn a_storm_of_changes_ends_as_zookeeper_holds_it() {
    use support::zk::Write;
    let (_zk, zkc, _dir, g) = registered(1, "storm");
    let key = "/ringsoa/apps/ringsoa-demo/config/storm";
    zkc.set(key, b"0");
    g.wait_view("/config", "the first value", |c| c["storm"] == "0");
    let provider = |i: usize, weight: u32| {
        let host = format!("10.0.{}.{}", i / 256, i % 256);
        let node = serde_json::json!({"host": host, "port": 9090, "cores": 1,
            "weight": weight, "version": "1", "pid": i, "started_at_ms": 1});
        (
            format!("{PROVIDERS}/{host}:9090"),
            node.to_string().into_bytes(),
        )
    };
    let first: Vec<_> = (0..300).map(|i| provider(i, 100)).collect();
    let again: Vec<_> = (0..300).step_by(3).map(|i| provider(i, 7)).collect();
    let mut writes: Vec<Write> = (1..=5000)
        .map(|v: u32| Write::Set(key, v.to_string().into_bytes()))
        .collect();
    writes.extend(first.iter().map(|(p, d)| Write::Ephemeral(p, d.clone())));
    for (p, d) in &again {
        writes.extend([Write::Delete(p), Write::Ephemeral(p, d.clone())]);
    }
    zkc.pipelined(&writes);
    g.wait_view("/config", "the last value", |c| c["storm"] == "5000");
    g.wait_view("/registry", "every provider, as last written", |r| {
        let list = r[APP]["main"].as_array().cloned().unwrap_or_default();
        let replaced = list.iter().filter(|p| p["weight"] == 7).count();
        list.len() == 301 && replaced == 100
    });
    assert!(!g.log_text().contains("cannot read a changed node"));
}

#[test]
fn a_zookeeper_outage_costs_no_call_and_a_restart_boots_from_the_cache() {
    let (zk, zkc, dir, g) = registered(1, "outage");
    zkc.set("/ringsoa/apps/ringsoa-demo/config/greeting", b"before");
    g.wait_view("/config", "before", |c| c["greeting"] == "before");
    drop(zkc);

    let stop = Arc::new(AtomicBool::new(false));
    let load = ping_load(g.demo.addr, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    zk.kill(1);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(http_get(g.admin, "/health").0, 200);
    assert_eq!(g.get("/config")["greeting"], "before", "the mirror stands");
    zk.start_node(1);
    let zkc = zk.client();
    zkc.set("/ringsoa/apps/ringsoa-demo/config/greeting", b"after");
    g.wait_view("/config", "a change after the outage", |c| {
        c["greeting"] == "after"
    });
    assert!(
        zkc.wait_for(&g.node(), Duration::from_secs(10), |n| n.is_some()),
        "registration back"
    );
    stop.store(true, Ordering::Relaxed);
    let (calls, failed, longest) = load.join().unwrap();
    println!("outage: {calls} calls, {failed} failed, longest {longest:?}");
    assert!(calls > 100);
    assert_eq!(failed, 0, "calls failed during the ZooKeeper outage");

    // ZooKeeper down, the service restarts: it boots from the disk cache.
    zk.kill(1);
    drop(g);
    let g = Governed::on_zk(&zk.connect, &dir.0, &[]);
    g.wait_view("/config", "the cached value", |c| c["greeting"] == "after");
    let mut s = TcpStream::connect(g.demo.addr).unwrap();
    assert!(is_reply(
        &call_raw(&mut s, "ping", 1, &DemoPingArgs {}).unwrap()
    ));
    assert!(g.log_text().contains("serving from the disk cache"));
    // ZooKeeper returns: the process reconciles and registers.
    zk.start_node(1);
    let zkc = zk.client();
    assert!(
        zkc.wait_for(&g.node(), Duration::from_secs(15), |n| n.is_some()),
        "registered after ZooKeeper came back"
    );
}

/// A drain while ZooKeeper cannot be reached: the node cannot be deleted, and the
/// process says so (and that it goes with the session), then drains and exits.
#[test]
fn a_drain_while_zookeeper_is_unreachable_says_the_node_stays_until_the_session_ends() {
    let zk = ZooKeeper::start(1);
    let zkc = zk.client();
    let dir = Scratch::new("drain-unreachable");
    let mut g = Governed::on_zk(&zk.connect, &dir.0, &["--zk-session-timeout-ms", "30000"]);
    assert!(
        zkc.wait_for(&g.node(), Duration::from_secs(10), |n| n.is_some()),
        "not registered in 10 s: {}",
        g.log_text()
    );
    drop(zkc);
    zk.kill(1);
    stops_cleanly(&mut g);
    let log = g.log_text();
    assert!(
        log.contains("ZooKeeper did not confirm the deregistration in time"),
        "{log}"
    );
}

/// A provider listening on IPv6 registers its address in brackets, and a caller
/// finds it through the registry.
#[test]
fn an_ipv6_provider_is_named_in_brackets_and_called_through_the_registry() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here: nothing to check");
        return;
    };
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let zk = ZooKeeper::start(1);
    let zkc = zk.client();
    let dir = Scratch::new("ipv6");
    let g = Governed::on_zk_at(&zk.connect, &dir.0, Some(addr), &[]);
    let node = format!("{PROVIDERS}/[::1]:{}", addr.port());
    assert_eq!(g.node(), node);
    assert!(
        zkc.wait_for(&node, Duration::from_secs(10), |n| n.is_some()),
        "not registered as {node}: {}",
        g.log_text()
    );
    let json: serde_json::Value = serde_json::from_slice(&zkc.get(&node).unwrap().0).unwrap();
    assert_eq!(
        (json["host"].as_str(), json["port"].as_u64()),
        (Some("::1"), Some(addr.port().into()))
    );
    let idl = "src/bin/ringsoa-demo/demo.thrift";
    let out = Command::new(env!("CARGO_BIN_EXE_ringsoa"))
        .args([
            "call",
            "--idl",
            idl,
            "--zk",
            &zk.connect,
            "--service",
            "ringsoa-demo/main",
        ])
        .args(["Demo.echo", r#"{"msg": "over IPv6"}"#])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(stdout.trim(), "\"over IPv6\"", "{stderr}");
}

/// Providers named by a host name are looked up off the governance thread (a
/// lookup can block for seconds, which held up the ZooKeeper session's pings): one
/// that resolves is called; one that never does is logged once and left out, and
/// serving and changes go on beside it.
#[test]
fn providers_named_by_host_name_are_looked_up_and_one_that_never_resolves_harms_nothing() {
    let (_zk, zkc, _dir, g) = registered(1, "names");
    let named = "/ringsoa/apps/ringsoa-demo/clusters/named/providers";
    let port = g.demo.addr.port();
    // Both point at `g` itself, one by `localhost`, one by a name that cannot exist
    // (`.invalid`, RFC 6761).
    for host in ["localhost", "nowhere.invalid"] {
        let json = format!(r#"{{"host":"{host}","port":{port}}}"#);
        zkc.set(&format!("{named}/{host}:{port}"), json.as_bytes());
    }
    let mut s = TcpStream::connect(g.demo.addr).unwrap();
    let args = DemoRelayWhoamiArgs {
        target: Some("ringsoa-demo/named".into()),
    };
    for seqid in 1..=20 {
        let reply = call_raw(&mut s, "relay_whoami", seqid, &args).unwrap();
        assert!(is_reply(&reply), "{}", String::from_utf8_lossy(&reply));
    }
    g.wait_view("/registry", "the named provider", |r| {
        r["ringsoa-demo"]["named"]
            == serde_json::json!([{
                "host": "localhost", "port": port, "cores": 0, "weight": 100,
                "version": "", "pid": 0, "started_at_ms": 0
            }])
    });
    zkc.set("/ringsoa/apps/ringsoa-demo/config/after-names", b"yes");
    g.wait_view("/config", "a change beside them", |c| {
        c["after-names"] == "yes"
    });
    let log = g.log_text();
    assert_eq!(
        log.matches("provider host does not resolve").count(),
        1,
        "{log}"
    );
    assert!(log.contains("nowhere.invalid"), "{log}");
}

/// Two thousand providers named by host name, read at once: the answers of their
/// lookups are published together, in a few snapshots, not one each (10,000 names
/// answered one by one were 10,000 snapshots of every provider, 45 s of CPU).
#[test]
fn thousands_of_host_named_providers_are_published_in_a_few_snapshots() {
    use support::zk::Write;
    let (_zk, zkc, _dir, g) = registered(1, "many-names");
    let folder = "/ringsoa/apps/ringsoa-demo/clusters/many/providers";
    let node = |port: u16| {
        let json = format!(r#"{{"host":"localhost","port":{port}}}"#);
        (format!("{folder}/localhost:{port}"), json.into_bytes())
    };
    let (first, data) = node(1);
    zkc.set(&first, &data);
    let nodes: Vec<_> = (2..=2000).map(node).collect();
    let writes: Vec<_> = nodes
        .iter()
        .map(|(p, d)| Write::Ephemeral(p, d.clone()))
        .collect();
    zkc.pipelined(&writes);
    let version = || g.get("/governance")["version"].as_u64().unwrap();
    let before = version();
    // Followed from the first call that asks for it.
    let mut s = TcpStream::connect(g.demo.addr).unwrap();
    let args = DemoRelayWhoamiArgs {
        target: Some("ringsoa-demo/many".into()),
    };
    call_raw(&mut s, "relay_whoami", 1, &args).unwrap();
    g.wait_view("/registry", "every named provider", |r| {
        r["ringsoa-demo"]["many"]
            .as_array()
            .is_some_and(|l| l.len() == 2000)
    });
    let published = version() - before;
    assert!(published <= 30, "{published} snapshots for 2,000 lookups");
}

/// A DNS server that never answers: each lookup blocks for 9 s (3 tries of 3 s).
/// Made on the governance thread, a lookup of a provider's host name held up the
/// ZooKeeper session's pings until the session expired, the process's own
/// registration with it, and again in every new session. Now it is looked up off
/// that thread: the session stays, and changes go on arriving. The demo runs with
/// its own `/etc/resolv.conf` (a mount namespace of its own: needs root).
#[test]
fn a_dns_that_never_answers_holds_up_no_session() {
    let (zk, zkc, dir, _) = registered(1, "dns");
    drop(zk.client());
    let dns = SilentDns::start("127.53.0.1", &dir.0);
    let g = Governed::on_zk_with(&zk.connect, &dir.0, None, &["--name", "dns-app"], |cmd| {
        dns.apply(cmd)
    });
    let providers = "/ringsoa/apps/dns-app/clusters/main/providers";
    let node = format!("{providers}/{}", g.demo.addr);
    assert!(zkc.wait_for(&node, Duration::from_secs(10), |n| n.is_some()));
    let session = owner(&zkc, &node).unwrap();
    let slow = format!("{providers}/slow.example:1");
    zkc.set(&slow, br#"{"host":"slow.example","port":1}"#);
    // The lookup's own bound (5 s) passes; the session (2 s) would have expired
    // twice over.
    wait(Duration::from_secs(15), "the lookup given up", || {
        g.log_text().contains("provider host does not resolve")
    });
    zkc.set("/ringsoa/apps/dns-app/config/after-dns", b"yes");
    g.wait_view("/config", "a change after the lookup", |c| {
        c["after-dns"] == "yes"
    });
    assert_eq!(owner(&zkc, &node), Some(session), "{}", g.log_text());
    let log = g.log_text();
    assert!(!log.contains("session ended"), "{log}");
    assert!(log.contains("slow.example"), "{log}");
    drop(dns);
}

/// Someone else (an operator, a cleanup script) deletes a running provider's node:
/// the same session registers it again, after the health check; the node the
/// process deletes itself when it drains stays deleted.
#[test]
fn a_provider_node_deleted_by_someone_else_is_registered_again() {
    let (_zk, zkc, _dir, mut g) = registered(1, "deleted");
    let node = g.node();
    let session = owner(&zkc, &node).unwrap();
    for _ in 0..2 {
        zkc.delete(&node);
        assert!(
            comes_back_to(&zkc, &node, session),
            "not registered again: {}",
            g.log_text()
        );
    }
    g.wait_view("/governance", "the registration", |v| {
        v["registered"] == node.as_str()
            && v["connected"] == true
            && v["source"] == "zookeeper"
            && v["session"] == format!("{session:#x}").as_str()
    });
    let log = g.log_text();
    assert_eq!(
        log.matches("the provider node was deleted, not by this process")
            .count(),
        2,
        "{log}"
    );
    // Its own deregistration is not undone: the node stays gone through the drain.
    g.demo.sigterm();
    assert!(zkc.wait_for(&node, Duration::from_secs(5), |n| n.is_none()));
    let exit = std::thread::spawn(move || g.demo.wait(Duration::from_secs(15)).0);
    assert!(
        !zkc.wait_for(&node, Duration::from_secs(2), |n| n.is_some()),
        "registered again after its own deregistration"
    );
    assert_eq!(exit.join().unwrap(), Some(0));
}

#[test]
fn session_expiry_brings_a_new_session_a_new_registration_and_a_full_reread() {
    let (zk, zkc, _dir, g) = registered(1, "expiry");
    let owner = zkc.get(&g.node()).unwrap().1.ephemeral_owner;
    drop(zkc);
    // A blip shorter than the session: the same session reconnects, and changes
    // made after it are still seen (the watches are re-made).
    let zkc = blip(&zk, &g, Duration::from_millis(1200));
    assert_eq!(
        zkc.get(&g.node()).unwrap().1.ephemeral_owner,
        owner,
        "same session"
    );
    drop(zkc);
    // A pause longer than the session: it expires.
    let zkc = expire(&zk, &g, owner);
    zkc.set("/ringsoa/apps/ringsoa-demo/config/after-expiry", b"yes");
    g.wait_view("/config", "a change after expiry", |c| {
        c["after-expiry"] == "yes"
    });
    let log = g.log_text();
    assert!(log.contains("session ended"), "{log}");
}

#[test]
fn losing_the_ensemble_leader_under_load_loses_no_call_and_no_registration() {
    let (zk, zkc, _dir, g) = registered(3, "leader");
    drop(zkc);
    let stop = Arc::new(AtomicBool::new(false));
    let load = ping_load(g.demo.addr, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let leader = zk.leader();
    zk.kill(leader);
    std::thread::sleep(Duration::from_secs(5));
    let zkc = zk.client();
    assert!(
        zkc.wait_for(&g.node(), Duration::from_secs(15), |n| n.is_some()),
        "registration lost"
    );
    zkc.set("/ringsoa/apps/ringsoa-demo/config/new-leader", b"yes");
    g.wait_view("/config", "a change after the new leader", |c| {
        c["new-leader"] == "yes"
    });
    stop.store(true, Ordering::Relaxed);
    let (calls, failed, longest) = load.join().unwrap();
    println!("leader {leader} killed: {calls} calls, {failed} failed, longest {longest:?}");
    assert_eq!(failed, 0);
}

#[test]
fn bad_values_and_bad_cache_dirs_are_logged_and_serving_goes_on() {
    let zk = ZooKeeper::start(1);
    let zkc = zk.client();
    let dir = Scratch::new("bad");
    zkc.set(&format!("{PROVIDERS}/bad:1"), b"{not json");
    zkc.set(
        "/ringsoa/apps/ringsoa-demo/config/binary",
        &[0xff, 0xfe, 0x00],
    );
    zkc.set("/ringsoa/apps/ringsoa-demo/config/good", b"1");
    // A key given a node of its own below it, as if keys nested: only `db` is read.
    zkc.set("/ringsoa/apps/ringsoa-demo/config/db/host", b"h");
    // A cluster's switch that is not one: left out, so the app-wide value stands.
    zkc.set("/ringsoa/apps/ringsoa-demo/switches/relay", b"off");
    zkc.set(
        "/ringsoa/apps/ringsoa-demo/clusters/main/switches/relay",
        b"maybe",
    );
    // A cache dir that cannot be made: its parent is a file.
    let file = dir.0.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let bad_cache = file.join("cache");
    let g = Governed::on_zk(
        &zk.connect,
        &dir.0,
        &["--cache-dir", bad_cache.to_str().unwrap()],
    );
    g.wait_view("/config", "the good value", |c| c["good"] == "1");
    assert!(g.get("/config").get("binary").is_none());
    assert!(g.get("/config").get("db/host").is_none());
    zkc.set("/ringsoa/apps/ringsoa-demo/switches/relay/why", b"x");
    g.wait_view("/switches", "the app-wide relay", |w| w["relay"] == "off");
    g.wait_view("/registry", "its own node", |r| {
        r[APP]["main"].as_array().is_some_and(|l| l.len() == 1)
    });
    let mut s = TcpStream::connect(g.demo.addr).unwrap();
    assert!(is_reply(
        &call_raw(&mut s, "ping", 1, &DemoPingArgs {}).unwrap()
    ));
    wait(Duration::from_secs(5), "the log lines", || {
        let log = g.log_text();
        log.contains("provider node is not valid JSON")
            && log.contains("value is not UTF-8")
            && log.contains("a switch is on, off or JSON; \"maybe\" is none of these")
            && log.contains("cannot write the disk cache")
            && log.contains("nested node not read")
            && log.contains("path=/ringsoa/apps/ringsoa-demo/config/db/…")
            && log.contains("path=/ringsoa/apps/ringsoa-demo/switches/relay/why")
    });

    // A cache dir that does not exist yet is made; a corrupt cache file is logged
    // and the process serves with what it has.
    let fresh = dir.0.join("new/nested/cache");
    let g2 = Governed::on_zk(
        &zk.connect,
        &dir.0,
        &["--cache-dir", fresh.to_str().unwrap()],
    );
    let cache_file = fresh.join("ringsoa-demo.main.json");
    wait(Duration::from_secs(10), "the cache file", || {
        cache_file.exists()
    });
    drop(g2);
    zk.kill(1);
    std::fs::write(&cache_file, b"{corrupt").unwrap();
    let g3 = Governed::on_zk(
        &zk.connect,
        &dir.0,
        &["--cache-dir", fresh.to_str().unwrap()],
    );
    wait(Duration::from_secs(10), "the corrupt-cache line", || {
        g3.log_text().contains("the disk cache is corrupt")
    });
    let mut s = TcpStream::connect(g3.demo.addr).unwrap();
    assert!(is_reply(
        &call_raw(&mut s, "ping", 1, &DemoPingArgs {}).unwrap()
    ));
}

/// Thousands of nodes in another format (some tool writing its own), read at
/// start or arriving in a burst of changes, log one line per reason, naming the
/// first node and counting the rest, not a line each (2,500 lines at start before).
#[test]
fn thousands_of_bad_nodes_log_a_line_per_reason_not_a_line_each() {
    use support::zk::Write;
    let zk = ZooKeeper::start(1);
    let zkc = zk.client();
    let dir = Scratch::new("many-bad");
    let config = "/ringsoa/apps/ringsoa-demo/config";
    zkc.set(&format!("{config}/good"), b"1");
    zkc.set(&format!("{PROVIDERS}/bad-0"), b"{not json");
    let bad = |from: usize, n: usize| -> Vec<String> {
        (from..from + n)
            .map(|i| format!("{PROVIDERS}/bad-{i}"))
            .collect()
    };
    let binary: Vec<String> = (0..500).map(|i| format!("{config}/bin-{i}")).collect();
    let first = bad(1, 1999);
    let mut writes: Vec<Write> = first
        .iter()
        .map(|p| Write::Ephemeral(p, b"{not json".to_vec()))
        .collect();
    writes.extend(binary.iter().map(|p| Write::Ephemeral(p, vec![0xff, 0xfe])));
    zkc.pipelined(&writes);

    let g = Governed::on_zk(&zk.connect, &dir.0, &[]);
    g.wait_view("/config", "the good value", |c| c["good"] == "1");
    // Warnings only: the tests' log has debug lines too, where each node is named.
    let count = |log: &str, what: &str| {
        let warns = log.lines().filter(|l| l.contains(" WARN "));
        warns.filter(|l| l.contains(what)).count()
    };
    wait(Duration::from_secs(5), "the start's lines", || {
        let log = g.log_text();
        log.contains(&format!("1999 more nodes of {PROVIDERS} left out"))
            && log.contains(&format!("499 more nodes of {config} left out"))
    });
    let log = g.log_text();
    assert_eq!(count(&log, "provider node is not valid JSON"), 1, "{log}");
    assert_eq!(count(&log, "value is not UTF-8"), 1, "{log}");
    let names = count(&log, "path=");

    // A burst of 1,000 more, taken as one batch: the process is stopped while
    // ZooKeeper queues their events (well within its session timeout).
    let burst = bad(2000, 1000);
    let mut writes: Vec<Write> = burst
        .iter()
        .map(|p| Write::Ephemeral(p, b"[]".to_vec()))
        .collect();
    let good = format!("{config}/good");
    writes.push(Write::Set(&good, b"2".to_vec()));
    g.demo.signal("STOP");
    zkc.pipelined(&writes);
    std::thread::sleep(Duration::from_millis(300));
    g.demo.signal("CONT");
    g.wait_view("/config", "the value after the burst", |c| c["good"] == "2");
    wait(Duration::from_secs(5), "the burst's line", || {
        count(&g.log_text(), "provider node is not valid JSON") > 1
    });
    let log = g.log_text();
    let lines = count(&log, "provider node is not valid JSON");
    assert!(lines <= 3, "{lines} lines for a burst of 1,000: {log}");
    assert!(count(&log, "path=") - names <= 3, "{log}");
    assert!(g.get("/registry")[APP]["main"]
        .as_array()
        .is_some_and(|l| l.len() == 1));
}

/// A node whose ACL refuses the session's reading is left out with a line naming
/// it, and the rest of its folder is read: by the demo at start and as nodes
/// change, and by the CLI, which names what it left out.
#[test]
fn a_node_the_session_may_not_read_is_left_out_and_the_rest_of_its_folder_is_read() {
    let zk = ZooKeeper::start(1);
    let zkc = zk.client();
    let dir = Scratch::new("unreadable");
    let config = "/ringsoa/apps/ringsoa-demo/config";
    let (open, secret) = (format!("{config}/open"), format!("{config}/secret"));
    zkc.set(&open, b"1");
    zkc.set(&secret, b"2");
    zkc.refuse_reading(&secret);
    let hidden = format!("{PROVIDERS}/10.0.0.1:1");
    zkc.set(&hidden, br#"{"host":"10.0.0.1","port":1}"#);
    zkc.refuse_reading(&hidden);

    let g = Governed::on_zk(&zk.connect, &dir.0, &[]);
    g.wait_view("/config", "the readable value", |c| c["open"] == "1");
    assert!(g.get("/config").get("secret").is_none());
    let port = g.demo.addr.port();
    g.wait_view("/registry", "itself, the only readable provider", |r| {
        r[APP]["main"]
            .as_array()
            .is_some_and(|l| l.len() == 1 && l[0]["port"] == port)
    });
    let refused = |log: &str, path: &str| {
        log.lines().any(|l| {
            l.contains(" WARN ")
                && l.contains(
                    "not authorized: the node's ACL refuses this session's credentials (none",
                )
                && l.contains(&format!("path={path}"))
        })
    };
    let log = g.log_text();
    assert!(refused(&log, &secret) && refused(&log, &hidden), "{log}");

    // A node changed, then shut to this session before it reads the change (the
    // process stopped meanwhile, its events waiting): dropped, with a line.
    g.demo.signal("STOP");
    zkc.set(&open, b"3");
    zkc.refuse_reading(&open);
    zkc.set(&format!("{config}/later"), b"4");
    g.demo.signal("CONT");
    g.wait_view(
        "/config",
        "the shut value dropped, the later one read",
        |c| c.get("open").is_none() && c["later"] == "4",
    );
    wait(Duration::from_secs(5), "the dropped value's line", || {
        refused(&g.log_text(), &open)
    });

    let (ok, out, err) = ringsoa(&["config", "get", APP, "--zk", &zk.connect]);
    assert!(
        ok && out.contains("\"later\": \"4\"") && !out.contains("secret"),
        "{out}{err}"
    );
    for key in ["open", "secret"] {
        assert!(
            err.contains(&format!(
                "ringsoa-demo's config {key} left out: not authorized"
            )),
            "{err}"
        );
    }
    assert_eq!(err.lines().count(), 2, "{err}");
    let (ok, _, err) = ringsoa(&["config", "get", APP, "secret", "--zk", &zk.connect]);
    assert!(!ok && err.lines().count() == 1, "{err}");
    assert!(
        err.contains("secret cannot be read: not authorized") && err.contains("--zk-auth"),
        "{err}"
    );
    let (ok, out, err) = ringsoa(&["registry", "ls", APP, "main", "--zk", &zk.connect]);
    assert!(
        ok && out.contains(&format!("\"port\": {port}")),
        "{out}{err}"
    );
    assert!(
        out.contains("\"node\": \"10.0.0.1:1\"")
            && out.contains("\"unreadable\": \"not authorized"),
        "{out}"
    );
}

#[test]
fn a_chroot_in_the_connect_string_is_created_and_a_refused_registration_logs_without_flooding() {
    let zk = ZooKeeper::start(1);
    let zkc = zk.client();
    let dir = Scratch::new("chroot");
    // A chroot nobody made yet: made, and everything lives under it.
    let chrooted = format!("{}/team/a", zk.connect);
    let g = Governed::on_zk(&chrooted, &dir.0, &[]);
    let node = format!("/team/a{}", g.node());
    assert!(
        zkc.wait_for(&node, Duration::from_secs(10), |n| n.is_some()),
        "not registered under the chroot; log:\n{}",
        g.log_text()
    );
    assert!(
        zkc.get(&g.node()).is_none(),
        "registered outside the chroot"
    );
    let port = format!("\"port\": {}", g.demo.addr.port());
    let (ok, out, err) = ringsoa(&["registry", "ls", APP, "--zk", &chrooted]);
    assert!(ok && out.contains(&port), "{out}{err}");
    let (ok, _, err) = ringsoa(&["config", "set", APP, "k", "v", "--zk", &chrooted]);
    assert!(ok, "{err}");
    g.wait_view("/config", "the value set under the chroot", |c| {
        c["k"] == "v"
    });
    drop(g);
    // The CLI makes a missing chroot too.
    let fresh = format!("{}/team/cli", zk.connect);
    let (ok, _, err) = ringsoa(&["config", "set", APP, "k", "w", "--zk", &fresh]);
    assert!(ok, "{err}");
    let (ok, out, _) = ringsoa(&["config", "get", APP, "k", "--zk", &fresh]);
    assert!(ok && out.contains('w'), "{out}");
    // Reading never makes one (a mistyped chroot stays absent).
    let typo = format!("{}/team/typo", zk.connect);
    let (ok, out, err) = ringsoa(&["registry", "ls", "--zk", &typo]);
    assert!(ok, "{out}{err}");
    assert!(zkc.get("/team/typo").is_none());

    // A chroot this process may not write under: serving goes on, and the refusal
    // is logged once a second's tries have failed and every 5 s after, with why.
    zkc.create_read_only("/locked");
    let g = Governed::on_zk(&format!("{}/locked", zk.connect), &dir.0, &[]);
    let mut s = TcpStream::connect(g.demo.addr).unwrap();
    assert!(is_reply(
        &call_raw(&mut s, "ping", 1, &DemoPingArgs {}).unwrap()
    ));
    std::thread::sleep(Duration::from_secs(4));
    let log = g.log_text();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("governance"))
        .collect();
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert!(
        warned[0].contains("not registered yet") && warned[0].contains("not authorized"),
        "{}",
        warned[0]
    );
    assert!(log.matches("not registered yet").count() >= 10, "{log}");
    let view = g.get("/governance");
    assert!(
        view["registered"].is_null()
            && view["error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot create the providers folder")
                    && e.contains("not authorized")),
        "{view}"
    );
}

/// A state file rewritten in place (truncated, then written, as a shell's `>`,
/// nano or `std::fs::write` do) is not applied while it is empty: its values
/// stand until the new text is there.
#[test]
fn a_state_file_rewritten_in_place_keeps_its_values_while_it_is_empty() {
    use std::io::Write;
    let dir = Scratch::new("in-place");
    let state = dir.0.join("state.toml");
    let text = |v: &str| format!("[apps.ringsoa-demo.config]\ngreeting = \"{v}\"\n");
    std::fs::write(&state, text("first")).unwrap();
    let g = Governed::start(&dir.0, None, &["--state", state.to_str().unwrap()]);
    g.wait_view("/config", "the file's value", |c| c["greeting"] == "first");
    // Truncated, and empty for 300 ms (15 checks) before the new text comes.
    let mut f = std::fs::File::create(&state).unwrap();
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        assert_eq!(g.get("/config")["greeting"], "first", "applied while empty");
        std::thread::sleep(Duration::from_millis(10));
    }
    f.write_all(text("second").as_bytes()).unwrap();
    drop(f);
    g.wait_view("/config", "the new text", |c| c["greeting"] == "second");
}

#[test]
fn the_state_file_and_the_embedded_defaults_serve_without_zookeeper() {
    let dir = Scratch::new("state");
    let state = dir.0.join("state.toml");
    std::fs::write(
        &state,
        "# hand-written\n[apps.ringsoa-demo.config]\ngreeting = \"from the file\"\n\n[[apps.up.clusters.main.providers]]\nhost = \"127.0.0.1\"\nport = 1\n",
    )
    .unwrap();
    let g = Governed::start(&dir.0, None, &["--state", state.to_str().unwrap()]);
    g.wait_view("/config", "the file's value", |c| {
        c["greeting"] == "from the file"
    });
    g.wait_view("/registry", "its own registration", |r| {
        r[APP]["default"][0]["port"] == g.demo.addr.port()
    });
    // Edited with the CLI (comments kept) and by hand: applied live.
    let st = state.to_str().unwrap();
    let (ok, _, err) = ringsoa(&["config", "set", APP, "added", "yes", "--state", st]);
    assert!(ok, "{err}");
    g.wait_view("/config", "the CLI's edit", |c| c["added"] == "yes");
    assert!(std::fs::read_to_string(&state)
        .unwrap()
        .contains("# hand-written"));
    every_core_sees(g.demo.addr, "demo.config", "added", "yes");
    let (ok, out, _) = ringsoa(&["registry", "ls", "up", "--state", st]);
    assert!(ok);
    assert!(out.contains("\"port\": 1"), "{out}");
    // A mistyped file is named as missing, not as a file without the app.
    let typo = format!("{st}.typo");
    let (ok, _, err) = ringsoa(&["config", "get", APP, "added", "--state", &typo]);
    assert!(!ok);
    assert!(err.contains("(no such file yet)"), "{err}");
    // A broken edit is logged; the previous values stand.
    std::fs::write(&state, "[apps.ringsoa-demo.config\n").unwrap();
    wait(Duration::from_secs(5), "the parse error", || {
        g.log_text().contains("state file not applied")
    });
    assert_eq!(g.get("/config")["added"], "yes");
    // A file written for another app name: applied (this app has nothing in it),
    // and the log names what it holds instead.
    std::fs::write(&state, "[apps.demo.config]\ngreeting = \"elsewhere\"\n").unwrap();
    wait(Duration::from_secs(5), "the other app named", || {
        g.log_text()
            .contains("has no [apps.ringsoa-demo] tables, only config or switches of demo")
    });
    g.wait_view("/config", "no values of its own", |c| {
        c.get("added").is_none()
    });

    // No --zk, no --state: the embedded defaults.
    let e = Governed::start(&dir.0, None, &[]);
    e.wait_view("/config", "the embedded greeting", |c| {
        c["greeting"] == "hello from the embedded defaults"
    });
    assert_eq!(e.get("/switches")["relay"], "on");
    let view = e.get("/governance");
    assert_eq!(view["backend"], "embedded defaults", "{view}");
    assert_eq!(view["source"], "file", "{view}");
    assert_eq!(view["connected"], false, "{view}");
    assert_eq!(g.get("/governance")["backend"], "state file");
    assert_eq!(http_get(e.admin, "/health").0, 200);
    assert_eq!(http_get(e.admin, "/nope").0, 404);
    // HEAD, as load balancers' health checks send it: the GET's status, no body.
    let head = http(e.admin, "HEAD", "/health", &[]);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body: {head:?}");
    let post = http(e.admin, "POST", "/health", &["Content-Length: 0"]);
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    assert!(post.contains("allow: GET, HEAD\r\n"), "{post}");
}

#[test]
fn a_zookeeper_that_accepts_but_never_answers_is_abandoned() {
    // A ZooKeeper still loading accepts connections and says nothing.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hosts = silent.local_addr().unwrap().to_string();
    let held = std::thread::spawn(move || {
        let conns: Vec<_> = silent.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(20));
        drop(conns);
    });
    let dir = Scratch::new("silent");
    let started = Instant::now();
    let g = Governed::on_zk(&hosts, &dir.0, &[]);
    println!(
        "serving {:?} after start with a silent ZooKeeper",
        started.elapsed()
    );
    assert_eq!(http_get(g.admin, "/health").0, 200);
    let mut s = TcpStream::connect(g.demo.addr).unwrap();
    assert!(is_reply(
        &call_raw(&mut s, "ping", 1, &DemoPingArgs {}).unwrap()
    ));
    wait(Duration::from_secs(5), "the log line", || {
        g.log_text().contains("cannot reach ZooKeeper")
    });
    let view = g.get("/governance");
    let why = format!("cannot reach ZooKeeper at {hosts}: ");
    assert!(
        view["connected"] == false && view["error"].as_str().is_some_and(|e| e.starts_with(&why)),
        "{view}"
    );
    // The CLI gives up with one clear line and exit status 2.
    let cli = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ringsoa"))
        .args(["registry", "ls", "--zk", &hosts])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("cannot reach ZooKeeper") && err.lines().count() == 1,
        "{err}"
    );
    println!("the CLI gave up after {:?}", cli.elapsed());
    drop(held);
}
