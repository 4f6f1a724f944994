//! Interface control on a real `ringsoa-demo` process (breakers, ACL, rate limits):
//! settings from its state file,
//! states seen through `/breakers`, calls over real sockets.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::rc::Rc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ringsoa::client::{Attempt, Client, ClientConfig};
use ringsoa::control::CoreInit;
use ringsoa::governance::{Backend, Governance, GovernanceOptions};
use ringsoa::metrics::{Metrics, MetricsOptions};
use ringsoa::protocol::MessageType;
use support::process::{free_port, http, http_get, Demo};
use support::wire::call_raw;

mod idl {
    ringsoa::include_idl!();
}
use idl::demo::*;

/// A demo with breaker settings `config` (TOML lines under the app's config), an
/// admin endpoint, and `extra` flags; the state file and log live in a temp dir.
struct Breaking {
    demo: Demo,
    admin: SocketAddr,
    dir: std::path::PathBuf,
}

impl Breaking {
    fn start(name: &str, config: &str, extra: &[&str]) -> Breaking {
        let dir =
            std::env::temp_dir().join(format!("ringsoa-breaker-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let state = dir.join("state.toml");
        std::fs::write(&state, format!("[apps.ringsoa-demo.config]\n{config}\n")).unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut args = vec![
            "--state".to_string(),
            state.to_str().unwrap().into(),
            "--admin".into(),
            admin.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = std::fs::File::create(dir.join("demo.log")).unwrap();
        let demo = Demo::start_with(addr, &args, |cmd| {
            cmd.stderr(Stdio::from(log)).env("RUST_LOG", "info");
        });
        Breaking { demo, admin, dir }
    }

    /// The breaker state of `method` in `/breakers` ("" before its first call).
    fn state(&self, method: &str) -> String {
        let (_, body) = http_get(self.admin, "/breakers");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v[method]["state"].as_str().unwrap_or("").to_string()
    }

    /// Waits until the aggregator shows `want`, then for the cores to take it
    /// (they look every 10 ms).
    fn wait_state(&self, method: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.state(method);
            if got == want {
                std::thread::sleep(Duration::from_millis(30));
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{method}: {got}, not {want}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// What the demo logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("demo.log")).unwrap_or_default()
    }

    /// Rewrites the state file's config lines (applied live).
    fn set_config(&self, config: &str) {
        let state = self.dir.join("state.toml");
        let tmp = self.dir.join("state.tmp");
        std::fs::write(&tmp, format!("[apps.ringsoa-demo.config]\n{config}\n")).unwrap();
        std::fs::rename(tmp, state).unwrap();
    }

    fn report(&self, method: &str) -> serde_json::Value {
        let (_, body) = http_get(self.admin, "/breakers");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()[method].clone()
    }
}

impl Drop for Breaking {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn conn(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// `sleep_ms(ms)` on `s`: `Ok` with the result text, or `Err` with the exception's
/// text.
fn sleep_ms(s: &mut TcpStream, ms: i32) -> Result<(), String> {
    let reply = call_raw(s, "sleep_ms", 1, &DemoSleepMsArgs { ms: Some(ms) }).unwrap();
    if reply[3] == MessageType::Reply as u8 {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&reply).into_owned())
    }
}

const FAST: &str = "\"breaker.min_requests\" = \"5\"\n\"breaker.lock_ms\" = \"400\"\n\"breaker.ramp_ms\" = \"400\"";

#[test]
fn timeouts_lock_it_a_probe_reopens_it_and_a_timed_out_probe_locks_it_again() {
    let b = Breaking::start("cycle", FAST, &["--call-timeout-ms", "50"]);
    let mut s = conn(b.demo.addr);
    for _ in 0..6 {
        assert!(sleep_ms(&mut s, 100).unwrap_err().contains("timed out"));
    }
    b.wait_state("sleep_ms", "LOCKED");
    let t = Instant::now();
    let err = sleep_ms(&mut s, 1).unwrap_err();
    println!("refused in {:?}", t.elapsed());
    assert!(
        err.contains("circuit breaker ringsoa-demo.sleep_ms is open (6 of 6 calls timed out)")
            || err.contains("circuit breaker ringsoa-demo.sleep_ms is open ("),
        "{err}"
    );
    // Other methods are not touched.
    assert_eq!(
        call_raw(&mut s, "ping", 2, &DemoPingArgs {}).unwrap()[3],
        MessageType::Reply as u8
    );
    // After the lock time a probe passes, the ramp follows, then it unlocks.
    b.wait_state("sleep_ms", "RECOVER (probing)");
    sleep_ms(&mut s, 1).unwrap();
    b.wait_state("sleep_ms", "UNLOCKED");
    assert!(sleep_ms(&mut s, 1).is_ok());
    // Lock it again; this time the probe times out: locked again.
    for _ in 0..6 {
        let _ = sleep_ms(&mut s, 100);
    }
    b.wait_state("sleep_ms", "LOCKED");
    b.wait_state("sleep_ms", "RECOVER (probing)");
    assert!(sleep_ms(&mut s, 100).unwrap_err().contains("timed out"));
    b.wait_state("sleep_ms", "LOCKED");
    assert!(b.report("sleep_ms")["reason"]
        .as_str()
        .unwrap()
        .contains("probe"));
}

/// The metrics of an app `consumer` with the `FAST` breaker settings.
fn consumer() -> Metrics {
    let state = format!("[apps.consumer.config]\n{FAST}\n");
    let backend = Backend::Embedded(state);
    let gov = Governance::start(GovernanceOptions::new("consumer", "c", backend)).unwrap();
    let mut options = MetricsOptions::new("consumer");
    options.governance = Some(gov);
    Metrics::start(options).unwrap()
}

/// A client config of `consumer` for the service `down`, its calls recorded by
/// core 0 of 1 (a breaker per downstream method).
fn client_of_down(metrics: &Metrics) -> ClientConfig {
    let mut config = ClientConfig::new("consumer");
    config.service = "down".into();
    config.control = Some(Rc::new(metrics.core(&CoreInit::new(0, 1))));
    config
}

/// A caller that retries a call its client's breaker refused, awaiting nothing
/// else, never lets the core's tick take the aggregator's news; the refusal takes
/// them itself, so the lock still ends in a probe (without it the loop spun on
/// refusals until its deadline).
#[test]
fn a_caller_retrying_at_once_still_gets_the_probe() {
    let down = Demo::start(&[]);
    let metrics = consumer();
    support::block_on(async {
        let mut config = client_of_down(&metrics);
        config.conn.call_timeout = Duration::from_millis(50);
        let demo = DemoClient::new(Rc::new(Client::new([down.addr], config)));
        let deadline = Instant::now() + Duration::from_secs(10);
        let breaker = "circuit breaker consumer.client:down.sleep_ms is open";
        // Timeouts until the breaker locks.
        loop {
            let e = demo.sleep_ms(None, 300).await.unwrap_err().to_string();
            if e.contains(breaker) {
                break;
            }
            assert!(Instant::now() < deadline, "not locked: {e}");
        }
        let mut refused = 0u64;
        while let Err(e) = demo.sleep_ms(None, 0).await {
            assert!(e.to_string().contains(breaker), "{e}");
            refused += 1;
            assert!(
                Instant::now() < deadline,
                "still refused after {refused} calls retried at once"
            );
        }
        println!("a probe went out after {refused} refused calls");
    });
}

#[test]
fn declared_exceptions_never_open_it() {
    let b = Breaking::start("declared", FAST, &[]);
    let mut s = conn(b.demo.addr);
    for i in 0..50 {
        let reply = call_raw(&mut s, "fail", i, &DemoFailArgs { code: Some(7) }).unwrap();
        assert_eq!(
            reply[3],
            MessageType::Reply as u8,
            "a declared exception is a reply"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.report("fail")["lifetime"]["declared"] != 50 {
        assert!(Instant::now() < deadline, "{}", b.report("fail"));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(b.state("fail"), "UNLOCKED");
}

#[test]
fn a_hung_probe_cannot_hold_it_half_open_and_a_herd_gets_only_the_capped_probes() {
    // No call timeout: a probe can hang; the probe timeout must end it.
    let config = format!("{FAST}\n\"breaker.probe_timeout_ms\" = \"300\"");
    let b = Breaking::start("herd", &config, &[]);
    let mut s = conn(b.demo.addr);
    let lock = |s: &mut TcpStream| {
        for _ in 0..6 {
            // Out of range: an application exception.
            assert!(sleep_ms(s, -1).unwrap_err().contains("ms must be in"));
        }
        b.wait_state("sleep_ms", "LOCKED");
        b.wait_state("sleep_ms", "RECOVER (probing)");
    };
    lock(&mut s);
    // A probe that hangs: the breaker does not stay half-open behind it.
    let addr = b.demo.addr;
    let hung = std::thread::spawn(move || sleep_ms(&mut conn(addr), 3000));
    std::thread::sleep(Duration::from_millis(50));
    b.wait_state("sleep_ms", "LOCKED");
    assert!(b.report("sleep_ms")["reason"]
        .as_str()
        .unwrap()
        .contains("probe"));
    // Probing again, 100 callers at once: at most one probe per core runs.
    b.wait_state("sleep_ms", "RECOVER (probing)");
    let start = Arc::new(Barrier::new(100));
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let start = start.clone();
            std::thread::spawn(move || {
                let mut s = conn(addr);
                start.wait();
                sleep_ms(&mut s, 200)
            })
        })
        .collect();
    let results: Vec<_> = callers.into_iter().map(|c| c.join().unwrap()).collect();
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    println!("{admitted} of 100 concurrent callers admitted while probing");
    assert!(
        (1..=2).contains(&admitted),
        "{admitted} probes ran (cap: 1 per core, 2 cores)"
    );
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| e.contains("circuit breaker")));
    let _ = hung.join();
}

/// `ping` as caller `app` (tracked): `Ok`, or the exception's message.
fn ping_as(addr: SocketAddr, app: &str) -> Result<(), String> {
    use ringsoa::client::{Client, ClientConfig};
    support::block_on(async {
        let client = std::rc::Rc::new(Client::new([addr], ClientConfig::new(app)));
        DemoClient::new(client)
            .ping(None)
            .await
            .map_err(|e| e.to_string())
    })
}

/// `ping` as a native caller (no handshake).
fn ping_native(addr: SocketAddr) -> Result<(), String> {
    let reply = call_raw(&mut conn(addr), "ping", 1, &DemoPingArgs {}).unwrap();
    if reply[3] == MessageType::Reply as u8 {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&reply).into_owned())
    }
}

/// Retries `check` until it holds (a live change takes a few ticks to arrive).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "not within 5 s: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_acl_refuses_denied_callers_follows_live_changes_and_applies_the_native_policy() {
    let b = Breaking::start("acl", "\"acl.deny\" = \"evil\"", &[]);
    let addr = b.demo.addr;
    // The config at start holds from the first call, on every core.
    let err = ping_as(addr, "evil").unwrap_err();
    assert!(
        err.contains("caller evil may not call ringsoa-demo.ping (acl)"),
        "{err}"
    );
    assert_eq!(ping_as(addr, "good"), Ok(()));
    assert!(
        ping_native(addr).is_ok(),
        "native callers are allowed by default"
    );
    // Live: an allow list, and native callers denied.
    b.set_config("\"acl.allow\" = \"good\"\n\"acl.native\" = \"deny\"");
    // On every core: sixteen connections in a row, spread over the cores by
    // SO_REUSEPORT, each refused (a core takes the change at its next tick).
    eventually("native refused on every core", || {
        (0..16).all(|_| ping_native(addr).is_err())
    });
    assert!(ping_native(addr).unwrap_err().contains("native callers"));
    assert_eq!(ping_as(addr, "good"), Ok(()));
    assert!(ping_as(addr, "other")
        .unwrap_err()
        .contains("caller other may not call"));
    assert!(ping_as(addr, "evil").is_err());
    // Refusals are counted.
    eventually("refusals counted", || {
        b.report("ping")["lifetime"]["refused"].as_u64() >= Some(3)
    });
    // Values their keys do not take are left out, each with one WARN: a broken
    // JSON list is not taken as the names `["good"` and `"other"` (which refused
    // every caller), `Deny` is not `deny`, and the demo has no method `ecoh`.
    let bad = "\"acl.allow\" = '[\"good\", \"other\"'\n\"acl.native\" = \"Deny\"\n\"acl.ecoh.deny\" = \"x\"";
    b.set_config(&format!("\"acl.deny\" = \"evil\"\n{bad}"));
    eventually("the broken allow list and native policy left out", || {
        (0..16).all(|_| ping_native(addr).is_ok() && ping_as(addr, "good").is_ok())
    });
    assert_eq!(ping_as(addr, "other"), Ok(()));
    assert!(ping_as(addr, "evil").is_err(), "the rest holds");
    // A change elsewhere in the config logs nothing again.
    b.set_config(&format!("\"acl.deny\" = \"evil, worse\"\n{bad}"));
    eventually("the new deny list", || ping_as(addr, "worse").is_err());
    // The log is written by a thread of its own: give it time to catch up.
    let lines_left_out = |log: &str| -> Vec<String> {
        let lines = log.lines().filter(|l| l.contains("config value left out"));
        lines.map(str::to_string).collect()
    };
    eventually("the three lines logged", || {
        lines_left_out(&b.log()).len() >= 3
    });
    std::thread::sleep(Duration::from_millis(200));
    let log = b.log();
    let left_out = lines_left_out(&log);
    assert_eq!(left_out.len(), 3, "{log}");
    assert!(
        left_out[0].contains("not a JSON list of app ids") && left_out[0].contains("key=acl.allow"),
        "{log}"
    );
    assert!(
        left_out[1].contains("ecoh is no method of this service"),
        "{log}"
    );
    assert!(left_out[2].contains("neither allow nor deny"), "{log}");
    // Thirty at once (a bulk import): twenty lines and a count, not thirty.
    let many: Vec<String> = (0..30)
        .map(|i| format!("\"limit.echo{i:02}.qps\" = \"x\""))
        .collect();
    b.set_config(&format!(
        "\"acl.deny\" = \"evil, worse\"\n{bad}\n{}",
        many.join("\n")
    ));
    eventually("the count logged", || {
        b.log().contains("10 more config values left out")
    });
    std::thread::sleep(Duration::from_millis(200));
    let log = b.log();
    assert_eq!(lines_left_out(&log).len(), 3 + 20, "{log}");
}

/// A cluster's override that its key does not take gives way to the app-wide
/// value: a deny list broken in the override leaves the app-wide deny list in
/// force (before, the key was left out and every caller let in), with a WARN
/// that says so; log routes likewise (before, none were applied).
#[test]
fn a_bad_cluster_override_leaves_the_app_wide_value_in_force() {
    let dir = std::env::temp_dir().join(format!("ringsoa-override-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let access = dir.join("access.log");
    let routes = format!(
        "\"log.routes\" = '[{{\"target\": \"ringsoa::access\", \"level\": \"info\", \"file\": \"{}\"}}]'",
        access.display()
    );
    let config = |deny: &str| {
        format!(
            "\"acl.deny\" = \"evil\"\n{routes}\n\
            [apps.ringsoa-demo.clusters.default.config]\n\
            \"acl.deny\" = '{deny}'\n\"log.routes\" = '[1]'"
        )
    };
    let b = Breaking::start(
        "override",
        &config("[\"evil\", \"worse\""),
        &["--access-log"],
    );
    let addr = b.demo.addr;
    let err = ping_as(addr, "evil").unwrap_err();
    assert!(err.contains("caller evil may not call"), "{err}");
    assert_eq!(ping_as(addr, "worse"), Ok(()), "the override is not read");
    eventually("the WARN", || {
        b.log().lines().any(|l| {
            l.contains("config value left out")
                && l.contains("the app-wide value is in force")
                && l.contains("key=acl.deny")
        })
    });
    eventually("the app-wide log routes", || {
        let _ = ping_as(addr, "good");
        std::fs::read_to_string(&access).is_ok_and(|a| a.contains("method=ping"))
    });
    assert!(
        b.log()
            .contains("this cluster's log.routes not applied: the app-wide value is in force"),
        "{}",
        b.log()
    );
    // Mended, the override is in force.
    b.set_config(&config("[\"evil\", \"worse\"]"));
    eventually("the mended override", || {
        (0..16).all(|_| ping_as(addr, "worse").is_err())
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Calls `echo` on every connection for `run`; returns each connection's admitted
/// calls' times.
fn echo_load(conns: &[TcpStream], run: Duration) -> Vec<Vec<Instant>> {
    let start = Arc::new(Barrier::new(conns.len()));
    let threads: Vec<_> = conns
        .iter()
        .map(|c| {
            let mut s = c.try_clone().unwrap();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let end = Instant::now() + run;
                let mut ok = Vec::new();
                while Instant::now() < end {
                    let args = DemoEchoArgs {
                        msg: Some("x".into()),
                    };
                    let reply = call_raw(&mut s, "echo", 1, &args).unwrap();
                    if reply[3] == MessageType::Reply as u8 {
                        ok.push(Instant::now());
                    }
                }
                ok
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// A connection to `addr` served by core `core` (found by asking `whoami`).
fn conn_on_core(addr: SocketAddr, core: usize) -> TcpStream {
    for _ in 0..200 {
        let mut s = conn(addr);
        let reply = call_raw(&mut s, "whoami", 1, &DemoWhoamiArgs {}).unwrap();
        let text = String::from_utf8_lossy(&reply);
        // The map's entry "core" → "<n>": the key, then the value's length 1.
        if text.contains(&format!("core\0\0\0\x01{core}")) {
            return s;
        }
    }
    panic!("no connection landed on core {core}");
}

#[test]
fn a_rate_limit_holds_across_both_cores_and_an_idle_core_gets_its_share() {
    let b = Breaking::start("limit", "\"limit.echo.qps\" = \"1000\"", &[]);
    let addr = b.demo.addr;
    // Load from 8 connections over both cores: the admitted rate is the limit.
    let conns: Vec<TcpStream> = (0..8).map(|i| conn_on_core(addr, i % 2)).collect();
    let admitted = echo_load(&conns, Duration::from_secs(3));
    let t0 = admitted.iter().flatten().min().copied().unwrap();
    let window = |from: f64, to: f64| {
        admitted
            .iter()
            .flatten()
            .filter(|t| {
                let s = t.duration_since(t0).as_secs_f64();
                s >= from && s < to
            })
            .count() as f64
            / (to - from)
    };
    let rate = window(1.0, 3.0);
    println!("admitted {rate:.0} calls/s against a limit of 1,000/s");
    assert!((900.0..=1100.0).contains(&rate), "admitted {rate:.0}/s");
    // All the load moves to core 1 alone: within a few ticks it gets the share.
    let only_core1: Vec<TcpStream> = (0..4).map(|_| conn_on_core(addr, 1)).collect();
    let admitted = echo_load(&only_core1, Duration::from_secs(2));
    let t0 = admitted.iter().flatten().min().copied().unwrap();
    let late = admitted
        .iter()
        .flatten()
        .filter(|t| t.duration_since(t0) >= Duration::from_millis(1000))
        .count() as f64;
    println!("core 1 alone, second 2: {late:.0} calls/s");
    assert!(
        (800.0..=1100.0).contains(&late),
        "core 1 alone got {late:.0}/s"
    );
}

#[test]
fn statsd_lines_and_prometheus_metrics_count_the_calls_made() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let to = udp.local_addr().unwrap().to_string();
    let b = Breaking::start("export", "", &["--statsd", &to, "--statsd-prefix", "t"]);
    let mut s = conn(b.demo.addr);
    for i in 0..50 {
        call_raw(&mut s, "ping", i, &DemoPingArgs {}).unwrap();
    }
    for i in 0..7 {
        call_raw(&mut s, "fail", i, &DemoFailArgs { code: Some(3) }).unwrap();
    }
    // Names a client chose: counted as `(unknown)`, never as themselves. Before,
    // each became its own key, and these forged statsd lines and Prometheus samples.
    for (i, name) in ["evil\"} 1\nforged{a=\"b", "x:1|c\nforged.statsd:1|c"]
        .iter()
        .enumerate()
    {
        call_raw(&mut s, name, i as i32, &DemoPingArgs {}).unwrap();
    }
    // A downstream call: its keys (`client:host:port.whoami`, `node:…@…`) hold `:`,
    // which ended the name of a statsd line.
    let target = b.demo.addr.to_string();
    let args = DemoRelayWhoamiArgs {
        target: Some(target.clone()),
    };
    call_raw(&mut s, "relay_whoami", 1, &args).unwrap();
    // statsd: well-formed lines whose counters add up to the calls (plus the one
    // ping of the registrar's health check).
    let (mut pings, mut declared, mut timers, mut unknown) = (0u64, 0u64, 0, 0);
    let mut names = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 2048];
    while pings < 50
        || declared < 7
        || unknown < 2
        || !names.iter().any(|n: &String| n.starts_with("t.client_"))
    {
        assert!(
            Instant::now() < deadline,
            "statsd: {pings} pings, {declared} declared, {unknown} unknown; {names:?}"
        );
        let Ok(n) = udp.recv(&mut buf) else { continue };
        for line in std::str::from_utf8(&buf[..n]).unwrap().lines() {
            let (name, rest) = line.split_once(':').expect("name:value|type");
            let mut parts = rest.split('|');
            let value: f64 = parts.next().unwrap().parse().expect("a number");
            let kind = parts.next().expect("a type");
            assert!(matches!(kind, "c" | "ms"), "{line}");
            if let Some(rate) = parts.next() {
                assert!(
                    rate.strip_prefix('@').unwrap().parse::<f64>().is_ok(),
                    "{line}"
                );
            }
            assert!(name.starts_with("t.") && !name.contains(' '), "{line}");
            assert!(!line.contains("forged"), "{line}");
            names.insert(name.to_string());
            match (name, kind) {
                ("t.ping.success", "c") => pings += value as u64,
                ("t.fail.declared", "c") => declared += value as u64,
                ("t._unknown_.unknown_method", "c") => unknown += value as u64,
                (_, "ms") => timers += 1,
                _ => {}
            }
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    while let Ok(n) = udp.recv(&mut buf) {
        for line in std::str::from_utf8(&buf[..n]).unwrap().lines() {
            if let Some(v) = line.strip_prefix("t.ping.success:") {
                pings += v.trim_end_matches("|c").parse::<u64>().unwrap();
            }
        }
    }
    assert!(
        (50..=51).contains(&pings) && declared == 7,
        "{pings} pings, {declared} declared"
    );
    assert!(timers > 0, "a timer line per method");
    // /metrics parses with the reference parsers (0.0.4 text and strict OpenMetrics)
    // and counts the same calls.
    let script = r#"
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
text = urllib.request.urlopen(sys.argv[1]).read().decode()
list(openmetrics(text))  # strict: raises unless the body is valid OpenMetrics
for family in text_string_to_metric_families(text):
    for s in family.samples:
        if s.name == "ringsoa_calls_total" and s.value:
            print(s.labels["method"], s.labels["outcome"], int(s.value))
"#;
    let url = format!("http://{}/metrics", b.admin);
    eventually("/metrics counts the calls", || {
        let text = support::process::python_script(script, &[&url]);
        let ping = text
            .lines()
            .any(|l| l == "ping success 50" || l == "ping success 51");
        ping && text.lines().any(|l| l == "fail declared 7")
            && text.lines().any(|l| l == "(unknown) unknown_method 2")
            && !text.contains("forged")
            && text.contains(&format!("client:{target}.whoami success 1"))
    });
    // /breakers names the switch of each method's breaker, and none for the pool
    // of unknown names (no method a switch could name) or for a node.
    assert_eq!(b.report("fail")["switch"], "breaker.fail");
    let client = format!("client:{target}.whoami");
    assert_eq!(
        b.report(&client)["switch"],
        format!("breaker.client_{}.whoami", target.replace(':', "_"))
    );
    for key in ["(unknown)".to_string(), format!("node:{target}@{target}")] {
        let report = b.report(&key);
        assert!(
            report["lifetime"].is_object() && report["switch"].is_null(),
            "{key}: {report}"
        );
    }
}

#[test]
fn an_error_burst_is_flagged_as_an_anomaly_and_steady_methods_are_not() {
    let b = Breaking::start("anomaly", "", &[]);
    let addr = b.demo.addr;
    let mut s = conn(addr);
    let add = |s: &mut TcpStream, a: i32, b: i64| {
        call_raw(
            s,
            "add",
            1,
            &DemoAddArgs {
                a: Some(a),
                b: Some(b),
            },
        )
        .unwrap()
    };
    // Twelve steady seconds of `add` and `echo`, 50 calls a second each.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(12) {
        for _ in 0..5 {
            add(&mut s, 1, 2);
            call_raw(
                &mut s,
                "echo",
                1,
                &DemoEchoArgs {
                    msg: Some("x".into()),
                },
            )
            .unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(b.report("add")["lifetime"]["requests"].as_u64() > Some(400));
    let (_, body) = http_get(b.admin, "/anomalies");
    assert_eq!(body.trim(), "{}", "nothing flagged while steady");
    // A burst of overflowing adds (application errors): `add` is flagged.
    let burst = Instant::now();
    eventually("the burst flagged", || {
        if burst.elapsed() < Duration::from_secs(3) {
            for _ in 0..30 {
                add(&mut s, i32::MAX, i64::MAX);
                call_raw(
                    &mut s,
                    "echo",
                    1,
                    &DemoEchoArgs {
                        msg: Some("x".into()),
                    },
                )
                .unwrap();
            }
        }
        let (_, body) = http_get(b.admin, "/anomalies");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["add"][0]["kind"] == "error_ratio"
    });
    let (_, body) = http_get(b.admin, "/anomalies");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v.get("echo").is_none(), "echo stayed steady: {v}");
    let (_, metrics) = http_get(b.admin, "/metrics");
    // Labelled OpenMetrics (what the body is) for a scraper that asks, as Prometheus
    // does; the 0.0.4 text type otherwise.
    let prometheus = http(
        b.admin,
        "GET",
        "/metrics",
        &["Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"],
    );
    assert!(
        prometheus.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{prometheus}"
    );
    assert!(
        http(b.admin, "GET", "/metrics", &[]).contains("content-type: text/plain; version=0.0.4"),
    );
    assert!(
        metrics.contains(
            "ringsoa_anomaly{app=\"ringsoa-demo\",method=\"add\",kind=\"error_ratio\"} 1"
        ),
        "{metrics}"
    );
}

#[test]
fn log_routes_send_a_targets_lines_to_its_own_file_and_the_access_log_records_each_call() {
    let dir = std::env::temp_dir().join(format!("ringsoa-routes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (access, warnings) = (dir.join("access.log"), dir.join("calls-warn.log"));
    let routes = format!(
        "\"log.routes\" = '[{{\"target\": \"ringsoa::access\", \"level\": \"info\", \"file\": \"{}\"}}, {{\"target\": \"ringsoa::server::call\", \"level\": \"warn\", \"file\": \"{}\"}}]'",
        access.display(),
        warnings.display()
    );
    let b = Breaking::start(
        "routes",
        &routes,
        &["--access-log", "--call-timeout-ms", "50"],
    );
    let mut s = conn(b.demo.addr);
    eventually("the routes applied", || {
        access.exists() && warnings.exists()
    });
    for i in 0..3 {
        call_raw(
            &mut s,
            "echo",
            i,
            &DemoEchoArgs {
                msg: Some("x".into()),
            },
        )
        .unwrap();
    }
    let _ = sleep_ms(&mut s, 100); // times out: a warning of ringsoa::server::call

    // The timed-out call's access line comes after its warning, and the two files
    // are written apart: each is waited for.
    eventually("the lines written", || {
        let a = std::fs::read_to_string(&access).unwrap_or_default();
        let w = std::fs::read_to_string(&warnings).unwrap_or_default();
        a.lines().filter(|l| l.contains("method=echo")).count() == 3
            && a.contains("outcome=Timeout")
            && w.contains("call timed out after 50 ms")
    });
    let w = std::fs::read_to_string(&warnings).unwrap();
    assert!(
        w.lines().all(|l| l.contains("WARN ringsoa::server::call")),
        "{w}"
    );
    let a = std::fs::read_to_string(&access).unwrap();
    assert!(a.lines().all(|l| l.contains("INFO ringsoa::access")), "{a}");
    assert!(
        a.contains("outcome=Timeout") && a.contains("request_id="),
        "{a}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Calls `relay_whoami(target)`: whether it answered with a reply, and the answer.
fn relay(s: &mut TcpStream, target: &str) -> (bool, String) {
    let args = DemoRelayWhoamiArgs {
        target: Some(target.into()),
    };
    let reply = call_raw(s, "relay_whoami", 1, &args).unwrap();
    (
        reply[3] == MessageType::Reply as u8,
        String::from_utf8_lossy(&reply).into_owned(),
    )
}

#[test]
fn a_downstream_method_gets_its_own_breaker_and_the_pools_show_the_clients() {
    // The server-side breaker of relay_whoami is held closed, so that what refuses
    // the relays below is the client's breaker of the downstream whoami.
    let config =
        format!("{FAST}\n[apps.ringsoa-demo.switches]\n\"breaker.relay_whoami\" = \"off\"");
    let b = Breaking::start("client", &config, &[]);
    let mut s = conn(b.demo.addr);
    let live = b.demo.addr.to_string();
    for _ in 0..3 {
        assert!(relay(&mut s, &live).0);
    }
    let dead = format!("127.0.0.1:{}", free_port());
    for _ in 0..6 {
        let (ok, text) = relay(&mut s, &dead);
        assert!(!ok && text.contains("relay to"), "{text}");
    }
    let breaker = format!("client:{dead}.whoami");
    b.wait_state(&breaker, "LOCKED");
    let (ok, text) = relay(&mut s, &dead);
    assert!(
        !ok && text.contains(&format!("circuit breaker ringsoa-demo.{breaker} is open")),
        "{text}"
    );
    assert!(relay(&mut s, &live).0, "another downstream is not touched");
    // Its switch, named in /breakers, holds it closed: the relays reach the dead
    // node again (before, a downstream breaker's switch could not be named: its
    // key's `:` and `/` are no part of a switch name).
    let switch = b.report(&breaker)["switch"].as_str().unwrap().to_string();
    assert_eq!(
        switch,
        format!("breaker.client_{}.whoami", dead.replace(':', "_"))
    );
    b.set_config(&format!("{config}\n\"{switch}\" = \"off\""));
    b.wait_state(&breaker, "UNLOCKED");
    let (ok, text) = relay(&mut s, &dead);
    assert!(
        !ok && text.contains("relay to") && !text.contains("circuit breaker"),
        "{text}"
    );
    // Per node: the attempts on the dead node, as system errors (no connection).
    let node = b.report(&format!("node:{dead}@{dead}"));
    assert!(node["lifetime"]["system"].as_u64() >= Some(6), "{node}");
    // The pools of the relay clients, pushed by the cores.
    eventually("/pools shows the live client's pool", || {
        let (_, body) = http_get(b.admin, "/pools");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v[&live][&live]["created"].as_u64() >= Some(1)
    });
}

#[test]
fn downstreams_long_gone_make_room_for_new_ones_in_a_full_key_table() {
    // Nodes come and go (a new address on every deploy): the keys of those that
    // left must not keep the ones that came out of the metrics for good.
    // relay_whoami's own breaker is held closed: the relays below all fail.
    let config = "\"metrics.key_idle_ms\" = \"1500\"\n[apps.ringsoa-demo.switches]\n\"breaker.relay_whoami\" = \"off\"";
    let b = Breaking::start("churn", config, &[]);
    let mut s = conn(b.demo.addr);
    // Each target gone leaves two keys (its client's method and its node): 2 × 130
    // and relay_whoami fill the table.
    for i in 0..130 {
        let dead = format!("127.0.0.1:{}", free_port());
        let (ok, text) = relay(&mut s, &dead);
        assert!(!ok && text.contains("relay to"), "{text}");
        // A core keeps at most 64 keys apart between two flushes (100 ms).
        if i % 20 == 19 {
            std::thread::sleep(Duration::from_millis(150));
        }
    }
    let keys = || -> serde_json::Map<String, serde_json::Value> {
        let (_, body) = http_get(b.admin, "/breakers");
        serde_json::from_str(&body).unwrap()
    };
    eventually("the key table is full", || keys().len() >= 256);
    std::thread::sleep(Duration::from_millis(2000));
    let live = b.demo.addr.to_string();
    let (ok, text) = relay(&mut s, &live);
    assert!(ok, "{text}");
    let mine = format!("client:{live}.whoami");
    eventually("the new downstream has a key of its own", || {
        keys()
            .get(&mine)
            .is_some_and(|k| k["lifetime"]["requests"].as_u64() == Some(1))
    });
    let now = keys();
    assert!(now.len() <= 257, "{} keys", now.len());
    assert!(now.contains_key(&format!("node:{live}@{live}")));
    assert!(now.contains_key("relay_whoami"), "a key with calls stays");
}

/// What eight callers pacing about 1,100 `echo` calls a second through one
/// client for 6 s saw.
struct Paced {
    calls: u32,
    /// The errors of the calls that failed.
    failed: Vec<String>,
    /// The most nodes on the client's failed list at once (looked at every 20 ms).
    most_failed: usize,
}

impl Paced {
    /// Asserts that no node went on the failed list and fewer than `most` calls
    /// failed.
    fn failed_fewer_than(&self, most: usize) {
        assert_eq!(self.most_failed, 0, "nodes went on the failed list");
        let failed = self.failed.len();
        assert!(failed < most, "{failed} of {} calls failed", self.calls);
    }

    async fn run(client: &Rc<Client>) -> Paced {
        let stop = Rc::new(std::cell::Cell::new(false));
        let callers: Vec<_> = (0..8)
            .map(|c| {
                let (demo, stop) = (DemoClient::new(client.clone()), stop.clone());
                monoio::spawn(async move {
                    let (mut calls, mut failed) = (0u32, Vec::new());
                    while !stop.get() {
                        calls += 1;
                        if let Err(e) = demo.echo(None, format!("{c}/{calls}")).await {
                            failed.push(e.to_string());
                        }
                        monoio::time::sleep(Duration::from_millis(6)).await;
                    }
                    (calls, failed)
                })
            })
            .collect();
        let (start, mut most_failed) = (Instant::now(), 0);
        while start.elapsed() < Duration::from_secs(6) {
            monoio::time::sleep(Duration::from_millis(20)).await;
            let failed = client.stats().iter().filter(|s| s.failed).count();
            most_failed = most_failed.max(failed);
        }
        stop.set(true);
        let (mut calls, mut failed) = (0, Vec::new());
        for c in callers {
            let (n, f) = c.await;
            calls += n;
            failed.extend(f);
        }
        eprintln!(
            "{} of {calls} calls failed: {:?}",
            failed.len(),
            failed.first()
        );
        Paced {
            calls,
            failed,
            most_failed,
        }
    }
}

/// Three nodes, each with a rate limit of 500 `echo` calls a second, and a
/// ringsoa client's eight callers pacing about 1,100 calls a second through them
/// for 6 s: a node's refusal ("rate limit … reached: call refused") takes it out of
/// no rotation, and the call is sent again to another node. Then a caller the ACL
/// denies: its calls fail with the ACL's message, and no node leaves rotation by
/// them either. Before, both refusals counted as the nodes' failures: nodes went
/// on the failed list, calls crowded onto the rest and 535-1,263 of about 6,400
/// failed (three runs); the denied caller failed all three nodes. Now 0-36
/// (three runs; 8-309 in eight before a limited node rested), and no node fails.
#[test]
fn a_services_limits_and_acl_take_none_of_its_nodes_out_of_a_clients_rotation() {
    let config = "\"limit.echo.qps\" = \"500\"\n\"acl.deny\" = \"evil\"";
    let nodes: Vec<Breaking> = (0..3)
        .map(|i| Breaking::start(&format!("limited{i}"), config, &[]))
        .collect();
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.demo.addr).collect();
    support::block_on(async {
        let client = Rc::new(Client::new(addrs.clone(), ClientConfig::new("paced")));
        let run = Paced::run(&client).await;
        run.failed_fewer_than(320);

        let evil = ClientConfig::new("evil");
        let evil = DemoClient::new(Rc::new(Client::new(addrs.clone(), evil)));
        for _ in 0..30 {
            let err = evil.echo(None, "x".into()).await.unwrap_err().to_string();
            assert!(err.contains("caller evil may not call"), "{err}");
        }
        let stats = evil.channel().stats();
        assert!(stats.iter().all(|s| !s.failed), "{stats:?}");
    });

    // One node down to a call a second: the calls it refuses go to the others
    // (fewer a second than the retry budget's floor of 10).
    nodes[0].set_config("\"limit.echo.qps\" = \"1\"");
    let mut s = conn(addrs[0]);
    let args = DemoEchoArgs {
        msg: Some("x".into()),
    };
    eventually("node 0 takes its new limit", || {
        let reply = call_raw(&mut s, "echo", 1, &args).unwrap();
        reply[3] == MessageType::Exception as u8
    });
    support::block_on(async {
        let refused = Rc::new(std::cell::Cell::new(0));
        let mut config = ClientConfig::new("paced");
        let (seen, limited) = (refused.clone(), addrs[0]);
        config.hooks.after_call = Some(Rc::new(move |a: &Attempt<'_>, _, r| {
            seen.set(seen.get() + u32::from(a.node == limited && r.is_err()))
        }));
        let demo = DemoClient::new(Rc::new(Client::new(addrs.clone(), config)));
        for i in 0..20 {
            demo.echo(None, i.to_string()).await.unwrap();
            monoio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(refused.get() > 0, "node 0 refused none");
    });
}

/// Three nodes named `name`0-2, the first limited to `qps` `echo` calls a second,
/// and their addresses.
fn skewed(name: &str, qps: u32) -> ([Breaking; 3], Vec<SocketAddr>) {
    let limit = format!("\"limit.echo.qps\" = \"{qps}\"");
    let nodes = [
        Breaking::start(&format!("{name}0"), &limit, &[]),
        Breaking::start(&format!("{name}1"), "", &[]),
        Breaking::start(&format!("{name}2"), "", &[]),
    ];
    let addrs = nodes.iter().map(|n| n.demo.addr).collect();
    (nodes, addrs)
}

/// One node whose rate limit (50 `echo` calls a second) is lower than its two
/// peers' (none), and the paced callers of [`Paced`]: the node rests after its
/// refusals, passed over while the others can take the calls, so that its share
/// comes near what it admits (it admitted 248-284 calls and refused 429-514 in
/// six runs); the calls it refuses are sent again elsewhere. Before, it kept a
/// third of the calls and refused most of them: 471-552 of about 6,400 failed
/// (three runs), beyond the retry budget.
#[test]
fn a_node_whose_limit_is_lower_than_its_peers_rests_and_few_calls_fail() {
    let (nodes, addrs) = skewed("skewed", 50);
    let run = support::block_on(async {
        let client = Rc::new(Client::new(addrs, ClientConfig::new("paced")));
        Paced::run(&client).await
    });
    let echo = nodes[0].report("echo")["lifetime"].clone();
    let (requests, refused) = (echo["requests"].as_u64(), echo["refused"].as_u64());
    eprintln!("node 0: {echo}");
    run.failed_fewer_than(64);
    // It still takes calls, and refuses a call or two for each it admits.
    let (admitted, refused) = (requests.unwrap(), refused.unwrap());
    assert!(admitted > 0 && refused < 3 * admitted, "node 0: {echo}");
}

/// The node of the test above limited to 20 `echo` calls a second, and two more
/// callers pacing `add` calls beside [`Paced`]'s, through a P2C client: the node
/// rests for `echo` only, and takes at least its share of the `add` calls (it has
/// fewer calls in flight than its peers). Before, the rest was the node's: it
/// took 10-14% of them (two runs), now 56-61% (four).
#[test]
fn a_limit_on_one_method_leaves_the_node_its_share_of_the_others() {
    let (nodes, addrs) = skewed("one-limit", 20);
    let (run, adds) = support::block_on(async {
        let mut config = ClientConfig::new("paced");
        config.balance.policy = ringsoa::client::Policy::P2cEwma;
        let client = Rc::new(Client::new(addrs, config));
        let stop = Rc::new(std::cell::Cell::new(false));
        let adders: Vec<_> = (0..2)
            .map(|_| {
                let (demo, stop) = (DemoClient::new(client.clone()), stop.clone());
                monoio::spawn(async move {
                    let mut calls = 0;
                    while !stop.get() {
                        assert_eq!(demo.add(None, 40, 2).await.unwrap(), 42);
                        calls += 1;
                        monoio::time::sleep(Duration::from_millis(6)).await;
                    }
                    calls
                })
            })
            .collect();
        let run = Paced::run(&client).await;
        stop.set(true);
        let mut adds = 0;
        for a in adders {
            adds += a.await;
        }
        (run, adds)
    });
    let on_node = |n: &Breaking| {
        n.report("add")["lifetime"]["requests"]
            .as_u64()
            .unwrap_or(0) as f64
    };
    let share = on_node(&nodes[0]) / f64::from(adds);
    eprintln!("{adds} add calls, {share:.2} of them on node 0");
    run.failed_fewer_than(64);
    assert!(share > 0.25, "node 0 took {share:.2} of the add calls");
}

/// A relay to a node whose ACL denies the caller: the caller's breaker of that
/// downstream method does not lock on the refusals, so every relay keeps failing
/// with the ACL's message. Before, they counted as application errors: after
/// `breaker.min_requests` (5 here) relays the breaker locked, and the caller's
/// errors read "circuit breaker … is open (9 of 9 calls ended in an application
/// exception)", hiding the reason; a downstream's rate limit locked it likewise,
/// refusing the calls the downstream would have taken.
#[test]
fn a_downstreams_refusals_lock_no_breaker_of_the_callers() {
    let config =
        format!("{FAST}\n[apps.ringsoa-demo.switches]\n\"breaker.relay_whoami\" = \"off\"");
    let caller = Breaking::start("denied-caller", &config, &[]);
    let denier = Breaking::start("denier", "\"acl.deny\" = \"ringsoa-demo\"", &[]);
    let mut s = conn(caller.demo.addr);
    let target = denier.demo.addr.to_string();
    let breaker = format!("client:{target}.whoami");
    for i in 0..30 {
        let (ok, text) = relay(&mut s, &target);
        assert!(
            !ok && text.contains("may not call ringsoa-demo.whoami (acl)"),
            "relay {i}: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(caller.state(&breaker), "LOCKED");
}

/// A caller whose time budget (sent with each call, as ringsoa clients do) is
/// shorter than the method takes and than the server's own call timeout (1 s
/// here): the calls it gives up on are cut off at its deadline and counted as
/// expired, not as timeouts of the method, so its breaker stays unlocked for the
/// callers who wait. Before, they counted as timeouts: after
/// `breaker.min_requests` (5 here) of them the breaker locked, and a patient
/// caller's call was refused.
#[test]
fn an_impatient_callers_deadlines_lock_no_breaker() {
    let b = Breaking::start("impatient", FAST, &["--call-timeout-ms", "1000"]);
    expired_and_unlocked(&b, cut_off(&b, &[], 200, 20));
    assert_eq!(
        sleep_ms(&mut conn(b.demo.addr), 30),
        Ok(()),
        "a patient caller"
    );
}

/// The same on a server without a call timeout of its own, once a patient caller
/// has seen the method answer (in 200 ms): the impatient calls are cut off sooner
/// than it usually answers. Before, the server took its callers' deadlines as its
/// timeouts, and the breaker locked.
#[test]
fn without_a_timeout_of_its_own_a_server_tells_impatient_callers_by_the_methods_answers() {
    let b = Breaking::start("impatient-untimed", FAST, &["--cores", "1"]);
    expired_and_unlocked(&b, cut_off(&b, &[200, 200], 200, 20));
}

/// A method that usually answers at once (1 ms) and now hangs (500 ms), called
/// by ringsoa clients whose budgets (50 ms) are shorter than the server's own
/// call timeout (1 s): the calls cut off at their deadlines are the method's
/// timeouts, since it usually answers well within them, and its breaker locks.
/// Before, every call cut off before the server's own timeout counted as
/// expired: a hanging method called by ringsoa clients, which always send their
/// budgets, never locked its breaker.
#[test]
fn a_method_that_hangs_locks_its_breaker_though_callers_deadlines_come_first() {
    let flags = ["--call-timeout-ms", "1000", "--cores", "1"];
    let b = Breaking::start("hangs", FAST, &flags);
    let errors = cut_off(&b, &[1; 5], 500, 50);
    eventually("the breaker locks", || b.state("sleep_ms") == "LOCKED");
    let timeouts = b.report("sleep_ms")["lifetime"]["timeouts"].as_u64();
    assert!(timeouts >= Some(5), "{timeouts:?} timeouts");
    let expired = errors.iter().filter(|e| e.contains(EXPIRED)).count();
    assert_eq!(expired, 0, "{errors:?}");
}

/// How a ringsoa server's answer to a call cut off at its caller's deadline ends.
const EXPIRED: &str = "(the caller's deadline)";

/// Calls of `sleep_ms` on `b`: first each of `first` (ms) from a patient caller,
/// then ten of `ms` from a ringsoa client whose budget is `budget` (ms); returns
/// the ten errors.
fn cut_off(b: &Breaking, first: &[i32], ms: i32, budget: u64) -> Vec<String> {
    let mut s = conn(b.demo.addr);
    for &ms in first {
        sleep_ms(&mut s, ms).unwrap();
    }
    support::block_on(async {
        let mut config = ClientConfig::new("impatient");
        config.conn.call_timeout = Duration::from_millis(budget);
        let demo = DemoClient::new(Rc::new(Client::new([b.demo.addr], config)));
        let mut errors = Vec::new();
        for _ in 0..10 {
            let err = demo.sleep_ms(None, ms).await.unwrap_err();
            errors.push(err.to_string());
        }
        errors
    })
}

/// The calls of [`cut_off`] ended at their deadlines, `b` counted them as
/// expired, and its breaker stays unlocked.
fn expired_and_unlocked(b: &Breaking, errors: Vec<String>) {
    for err in errors {
        // The server's answer at the deadline, or the client's own timeout.
        let timed_out = err == "call timed out";
        assert!(err.contains(EXPIRED) || timed_out, "{err}");
    }
    // The server cut each off at the deadline: the last has ended there too.
    eventually("the expired calls are counted", || {
        b.report("sleep_ms")["lifetime"]["expired"].as_u64() >= Some(10)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(b.state("sleep_ms"), "LOCKED");
}

/// A client on a server core calls a slow downstream with the deadline its own
/// caller sent (shorter than the client's call timeout): the calls cut off there
/// count as expired in its breaker of the downstream method, not as timeouts
/// (the server's "timed out" answer included), so an impatient caller upstream
/// does not lock it for the patient ones. Before, ten such calls locked it.
#[test]
fn deadlines_passed_down_lock_no_breaker_of_the_downstream() {
    let down = Demo::start(&[]);
    let metrics = consumer();
    support::block_on(async {
        let demo = under_deadlines(&metrics, &down, &[], 200, 20).await;
        let key = "client:down.sleep_ms";
        let expired = || metrics.report().get(key).map(|r| r.lifetime.expired);
        let deadline = Instant::now() + Duration::from_secs(5);
        while expired() != Some(10) {
            assert!(Instant::now() < deadline, "{:?}", metrics.report().get(key));
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
        monoio::time::sleep(Duration::from_millis(300)).await;
        let report = &metrics.report()[key];
        assert_eq!(report.lifetime.timeouts, 0);
        assert_ne!(report.state, "LOCKED", "{report:?}");
        demo.sleep_ms(None, 30).await.expect("a patient call");
    });
}

/// A downstream method that usually answers at once (1 ms) and now hangs
/// (500 ms), called under deadlines passed down (50 ms): the calls cut off there
/// are its timeouts, since it usually answers well within them, and the caller's
/// breaker of it locks. Before, every timeout under a deadline passed down
/// counted as expired: a relay (whose calls carry its own caller's deadline,
/// which ringsoa clients always send) never locked its breaker of a downstream
/// that hangs.
#[test]
fn a_downstream_that_hangs_locks_the_callers_breaker_under_deadlines_passed_down() {
    let down = Demo::start(&[]);
    let metrics = consumer();
    support::block_on(async {
        under_deadlines(&metrics, &down, &[1; 5], 500, 50).await;
        let key = "client:down.sleep_ms";
        let deadline = Instant::now() + Duration::from_secs(5);
        while metrics.report().get(key).map(|r| r.state) != Some("LOCKED") {
            assert!(Instant::now() < deadline, "{:?}", metrics.report().get(key));
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(metrics.report()[key].lifetime.expired, 0);
    });
}

/// A client of `down` recorded by `metrics` (its breakers `FAST`), and calls of
/// `sleep_ms` through it, each under a deadline passed down from a caller: first
/// each of `first` (ms) under 1 s, then ten of `ms` under `deadline` (ms), all
/// failing.
async fn under_deadlines(
    metrics: &Metrics,
    down: &Demo,
    first: &[i32],
    ms: i32,
    deadline: u64,
) -> DemoClient<Rc<Client>> {
    let config = client_of_down(metrics);
    let demo = DemoClient::new(Rc::new(Client::new([down.addr], config)));
    let cx = |ms| ringsoa::rpc::CallContext {
        deadline: Some(Instant::now() + Duration::from_millis(ms)),
        ..Default::default()
    };
    for &ms in first {
        demo.sleep_ms(Some(&mut cx(1000)), ms).await.unwrap();
    }
    for _ in 0..10 {
        assert!(demo.sleep_ms(Some(&mut cx(deadline)), ms).await.is_err());
    }
    demo
}

/// `echo`'s argument as bytes that are not UTF-8 (what a Python 2 caller sends
/// for a `str` of Latin-1 text).
struct Latin1Echo;

impl ringsoa::protocol::Encode for Latin1Echo {
    fn encode<W: ringsoa::protocol::ProtocolWriter>(&self, w: &mut W) {
        let mark = w.write_struct_begin();
        w.write_field_begin(ringsoa::protocol::TType::String, 1);
        w.write_binary(b"caf\xe9");
        w.write_struct_end(mark);
    }
}

/// A caller whose arguments do not decode (a `string` that is not UTF-8) gets
/// PROTOCOL_ERROR "bad arguments" each time, and the method's breaker does not
/// count its calls: the caller's fault, not the method's. Before, ten such calls
/// locked `echo` ("10 of 10 calls ended in an application exception") and every
/// other caller's echo was refused.
#[test]
fn a_callers_bad_arguments_lock_no_breaker() {
    let b = Breaking::start("bad-args", FAST, &[]);
    let mut s = conn(b.demo.addr);
    for _ in 0..10 {
        let reply = call_raw(&mut s, "echo", 1, &Latin1Echo).unwrap();
        let text = String::from_utf8_lossy(&reply);
        assert!(
            text.contains("bad arguments: string is not valid UTF-8"),
            "{text}"
        );
    }
    eventually("the bad calls are counted", || {
        b.report("echo")["lifetime"]["bad_arguments"].as_u64() == Some(10)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(b.state("echo"), "LOCKED");
    let args = DemoEchoArgs {
        msg: Some("fine".into()),
    };
    let reply = call_raw(&mut conn(b.demo.addr), "echo", 1, &args).unwrap();
    assert_eq!(reply[3], MessageType::Reply as u8, "another caller's echo");
}

/// Calls of a method the service does not have (a caller with a newer IDL) get
/// UNKNOWN_METHOD each time, and lock no breaker: the caller's fault, not the
/// service's. Before, they counted as application exceptions: after
/// `breaker.min_requests` (5 here) of them the `(unknown)` breaker locked, with a
/// WARN "circuit breaker locked" and a call of `on_change` for no fault of the
/// service.
#[test]
fn calls_of_a_method_the_service_lacks_lock_no_breaker() {
    let b = Breaking::start("unknown-method", FAST, &[]);
    let mut s = conn(b.demo.addr);
    for i in 0..10 {
        let reply = call_raw(&mut s, "nope", i, &DemoPingArgs {}).unwrap();
        assert_eq!(reply[3], MessageType::Exception as u8, "call {i}");
    }
    eventually("the calls are counted", || {
        b.report("(unknown)")["lifetime"]["requests"].as_u64() == Some(10)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(b.state("(unknown)"), "LOCKED");
    let log = std::fs::read_to_string(b.dir.join("demo.log")).unwrap();
    assert!(!log.contains("circuit breaker locked"), "{log}");
    let lifetime = &b.report("(unknown)")["lifetime"];
    assert_eq!(lifetime["unknown_method"], 10, "{lifetime}");
    assert_eq!(lifetime["application"], 0, "{lifetime}");
}

/// A downstream that lacks the method called (the caller's IDL is newer than the
/// server's) answers UNKNOWN_METHOD each time, and the caller's breaker of that
/// downstream method stays unlocked, so every call gets the server's own answer.
/// Before, `breaker.min_requests` (5) such calls locked it, and the calls after
/// were refused as "circuit breaker consumer.client:down.nope is open (5 of 5
/// calls ended in an application exception)".
#[test]
fn a_method_the_downstream_lacks_locks_no_breaker_of_the_callers() {
    use ringsoa::protocol::ApplicationExceptionKind;
    use ringsoa::rpc::{CallError, Channel};
    let down = Demo::start(&[]);
    let metrics = consumer();
    support::block_on(async {
        let client = Rc::new(Client::new([down.addr], client_of_down(&metrics)));
        // A second: the core's flushes (every 100 ms) reach the aggregator, and
        // its decision the core, many times over (the code before the fix was
        // refusing by the eighth call).
        for i in 0..40 {
            let e = Channel::call::<_, DemoPingResult>(&client, None, "nope", &DemoPingArgs {})
                .await
                .unwrap_err();
            assert!(
                matches!(&e, CallError::Application(x) if x.kind == ApplicationExceptionKind::UnknownMethod),
                "call {i}: {e}"
            );
            monoio::time::sleep(Duration::from_millis(25)).await;
        }
    });
}
