//! `ringsoa-perf governance`: how fast ZooKeeper changes reach the cores.
//!
//! - `propagation`: one governance thread and N core threads (each a monoio runtime
//!   following its own view, as a server's cores do); a config value is written
//!   `--changes` times with a separate ZooKeeper session, and each change is timed
//!   from just before the write until every core has the new value.
//! - `fanout`: `--providers` provider nodes and `--consumers` consumer processes'
//!   worth of governance threads (one ZooKeeper session each) watching that service;
//!   a provider is added or removed `--changes` times, and each change is timed
//!   until every consumer's governance thread has published it. ZooKeeper's packet
//!   counters (`srvr`) give its packets per change.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cpu::{process_cpu, CpuTime};
use ringsoa::control::ServiceName;
use ringsoa::governance::{Backend, Governance, GovernanceOptions};
use zookeeper_client as zk;

/// Flags of `governance`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to measure.
    #[arg(value_enum)]
    mode: Mode,
    /// ZooKeeper connect string.
    #[arg(long)]
    zk: String,
    /// Changes to time.
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// Core threads (propagation).
    #[arg(long, default_value_t = 2)]
    cores: usize,
    /// Provider nodes registered (fanout).
    #[arg(long, default_value_t = 1000)]
    providers: usize,
    /// Consumer sessions (fanout).
    #[arg(long, default_value_t = 100)]
    consumers: usize,
    /// ZooKeeper server's PID, for its CPU time per change (fanout).
    #[arg(long)]
    zk_pid: Option<u32>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum Mode {
    Propagation,
    Fanout,
}

/// Runs the measurement and prints a JSON summary.
pub fn run(a: Args) -> std::io::Result<()> {
    // A worker thread keeps the writer's session alive between writes.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let writer = rt
        .block_on(zk::Client::connect(&a.zk))
        .map_err(|e| std::io::Error::other(format!("cannot reach ZooKeeper at {}: {e}", a.zk)))?;
    let root = format!("/perf-{}", std::process::id());
    let result = match a.mode {
        Mode::Propagation => propagation(&a, &rt, &writer, &root),
        Mode::Fanout => fanout(&a, &rt, &writer, &root),
    };
    println!("{}", serde_json::to_string_pretty(&result?).expect("JSON"));
    Ok(())
}

fn options(zk: &str, root: &str, app: &str) -> GovernanceOptions {
    let mut o = GovernanceOptions::new(app, "main", Backend::ZooKeeper(zk.into()));
    o.root = root.into();
    o
}

fn set(rt: &tokio::runtime::Runtime, c: &zk::Client, path: &str, data: &[u8]) {
    let dir = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let opts = &dir;
    rt.block_on(async {
        let parent = path.rsplit_once('/').expect("a path").0;
        c.mkdir(parent, &dir).await.expect("mkdir");
        match c.set_data(path, data, None).await {
            Ok(_) => {}
            Err(zk::Error::NoNode) => {
                c.create(path, data, opts).await.expect("create");
            }
            Err(e) => panic!("set {path}: {e}"),
        }
    });
}

fn percentiles(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    serde_json::json!({
        "n": ms.len(), "p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "max_ms": at(1.0),
    })
}

fn propagation(
    a: &Args,
    rt: &tokio::runtime::Runtime,
    writer: &zk::Client,
    root: &str,
) -> std::io::Result<serde_json::Value> {
    let gov = Governance::start(options(&a.zk, root, "perf-gov"))?;
    if !gov.wait_ready(Duration::from_secs(10)) {
        return Err(std::io::Error::other("governance did not load"));
    }
    // seen[core] = the last value that core has seen, and when.
    let seen: Arc<Vec<Mutex<(String, Instant)>>> = Arc::new(
        (0..a.cores)
            .map(|_| Mutex::new((String::new(), Instant::now())))
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..a.cores)
        .map(|i| {
            let (gov, seen, stop) = (gov.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rt = ringsoa::runtime::build().expect("a runtime");
                rt.block_on(async move {
                    let view = gov.follow_here();
                    let seen2 = seen.clone();
                    view.subscribe(move |snap| {
                        if let Some(v) = snap.config_str("k") {
                            *seen2[i].lock().unwrap() = (v.to_string(), Instant::now());
                        }
                        true
                    });
                    while !stop.load(Ordering::Relaxed) {
                        monoio::time::sleep(Duration::from_millis(50)).await;
                    }
                });
            })
        })
        .collect();
    let path = format!("{root}/apps/perf-gov/config/k");
    set(rt, writer, &path, b"start");
    let mut total = Vec::new();
    for n in 0..a.changes {
        let value = format!("v{n}");
        let started = Instant::now();
        rt.block_on(writer.set_data(&path, value.as_bytes(), None))
            .map_err(std::io::Error::other)?;
        let deadline = started + Duration::from_secs(10);
        let last = loop {
            let all: Option<Vec<Instant>> = seen
                .iter()
                .map(|s| {
                    let s = s.lock().unwrap();
                    (s.0 == value).then_some(s.1)
                })
                .collect();
            if let Some(times) = all {
                break times.into_iter().max().expect("cores");
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "change {n} not seen within 10 s"
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        total.push((last - started).as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    Ok(serde_json::json!({
        "mode": "propagation",
        "cores": a.cores,
        "write_to_all_cores": percentiles(total),
    }))
}

/// ZooKeeper's packet counters (`srvr`), summed over the servers of `connect`.
fn packets(connect: &str) -> (u64, u64) {
    let mut sum = (0, 0);
    for host in connect.split(',') {
        let Ok(mut s) = std::net::TcpStream::connect(host) else {
            continue;
        };
        let _ = s.write_all(b"srvr");
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        for line in text.lines() {
            let num = |p: &str| {
                line.strip_prefix(p)
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            if let Some(n) = num("Received:") {
                sum.0 += n;
            }
            if let Some(n) = num("Sent:") {
                sum.1 += n;
            }
        }
    }
    sum
}

/// User plus system CPU time of `pid` (ZooKeeper's server), if it can be read.
fn zk_cpu(pid: u32) -> Option<Duration> {
    process_cpu(pid).ok().map(CpuTime::total)
}

fn fanout(
    a: &Args,
    rt: &tokio::runtime::Runtime,
    writer: &zk::Client,
    root: &str,
) -> std::io::Result<serde_json::Value> {
    let service: ServiceName = "fan/main".parse().expect("a name");
    let folder = format!("{root}/apps/fan/clusters/main/providers");
    let node = |i: usize| {
        let json = serde_json::json!({"host": "127.0.0.1", "port": 10000 + i, "cores": 2, "weight": 100,
            "version": "x", "pid": 1, "started_at_ms": 0});
        (
            format!("{folder}/127.0.0.1:{}", 10000 + i),
            json.to_string(),
        )
    };
    for i in 0..a.providers {
        let (path, json) = node(i);
        set(rt, writer, &path, json.as_bytes());
    }
    let consumers: Vec<Governance> = (0..a.consumers)
        .map(|i| {
            let g = Governance::start(options(&a.zk, root, &format!("consumer{i}")))?;
            g.watch(service.clone());
            Ok(g)
        })
        .collect::<std::io::Result<_>>()?;
    let count = |g: &Governance| g.snapshot().providers(&service).map(<[_]>::len);
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumers.iter().any(|g| count(g) != Some(a.providers)) {
        if Instant::now() > deadline {
            return Err(std::io::Error::other(
                "consumers did not load the providers within 60 s",
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The sessions' own heartbeats, measured idle, are taken out of the counts.
    let idle_start = (packets(&a.zk), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let idle = packets(&a.zk).0 - idle_start.0 .0;
    let idle_rate = idle as f64 / idle_start.1.elapsed().as_secs_f64();
    let (before, cpu_before) = (packets(&a.zk), a.zk_pid.and_then(zk_cpu));
    let phase = Instant::now();
    let mut times = Vec::new();
    let (extra_path, extra_json) = node(a.providers);
    let create = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    for n in 0..a.changes {
        let add = n % 2 == 0;
        let want = a.providers + usize::from(add);
        let started = Instant::now();
        if add {
            rt.block_on(writer.create(&extra_path, extra_json.as_bytes(), &create))
                .map_err(std::io::Error::other)?;
        } else {
            rt.block_on(writer.delete(&extra_path, None))
                .map_err(std::io::Error::other)?;
        }
        let deadline = started + Duration::from_secs(10);
        while consumers.iter().any(|g| count(g) != Some(want)) {
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "change {n} not seen by every consumer within 10 s"
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        times.push(started.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = packets(&a.zk);
    let heartbeats = idle_rate * phase.elapsed().as_secs_f64();
    let cpu = a
        .zk_pid
        .and_then(zk_cpu)
        .zip(cpu_before)
        .map(|(x, y)| x.saturating_sub(y));
    let per = |x: u64| x as f64 / a.changes as f64;
    Ok(serde_json::json!({
        "mode": "fanout",
        "providers": a.providers,
        "consumers": a.consumers,
        "change_to_every_consumer": percentiles(times),
        "zk_packets_received_per_change": per(after.0 - before.0),
        "zk_packets_sent_per_change": per(after.1 - before.1),
        "zk_packets_received_per_change_less_heartbeats": (after.0 - before.0) as f64 / a.changes as f64 - heartbeats / a.changes as f64,
        "zk_cpu_ms_per_change": cpu.map(|t| t.as_secs_f64() * 1e3 / a.changes as f64),
    }))
}
