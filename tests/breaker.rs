//! Circuit breakers on a real `ringsoa-demo` process: settings from its state file,
//! states seen through `/breakers`, calls over real sockets.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ringsoa::protocol::MessageType;
use support::process::{free_port, http_get, Demo};
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
            let log = std::fs::read_to_string(self.dir.join("demo.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "{method}: {got}, not {want}; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
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
