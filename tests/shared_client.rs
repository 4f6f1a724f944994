//! `SharedClient` from a tokio multi-thread runtime (its stub futures are `Send`:
//! `tokio::spawn` takes them) and from plain threads (`wait`), against
//! `ringsoa-demo`: results, declared exceptions, and the call's context carried
//! there and back (rpc-id chain, meta, reply meta).

mod idl {
    ringsoa::include_idl!();
}
mod support;

use std::collections::BTreeMap;

use idl::demo::*;
use ringsoa::client::shared::wait;
use ringsoa::client::{Client, ClientConfig, SharedClient};
use ringsoa::protocol::Protocol;
use ringsoa::rpc::{CallContext, CallError};
use support::process::Demo;

fn shared(addr: std::net::SocketAddr) -> SharedClient {
    SharedClient::spawn(2, Protocol::Binary, move || {
        Client::new([addr], ClientConfig::new("shared-caller"))
    })
    .unwrap()
}

#[test]
fn tokio_tasks_call_through_a_shared_client() {
    let demo = Demo::start(&[]);
    let client = shared(demo.addr);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..32)
            .map(|t| {
                let d = DemoClient::new(client.clone());
                tokio::spawn(async move {
                    for i in 0..50 {
                        assert_eq!(d.add(None, t, i).await.unwrap(), i64::from(t) + i);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let d = DemoClient::new(client.clone());
        match d.fail(None, 7).await {
            Err(CallError::Declared(DemoFailException::Err(e))) => assert_eq!(e.code, Some(7)),
            other => panic!("{other:?}"),
        }
        // The context goes to the client thread and comes back: the second call
        // gets the next rpc id, and the reply meta lands here.
        let mut cx = CallContext {
            request_id: "req-1".into(),
            seq: "1".into(),
            meta: BTreeMap::from([("k".to_string(), "v".to_string())]),
            ..CallContext::default()
        };
        let who = tokio::spawn(async move {
            let first = d.whoami(Some(&mut cx)).await.unwrap();
            let second = d.whoami(Some(&mut cx)).await.unwrap();
            (first, second, cx)
        })
        .await
        .unwrap();
        let (first, second, cx) = who;
        assert_eq!(first["request_id"], "req-1");
        assert_eq!(first["client"], "shared-caller");
        assert_eq!(first["meta.k"], "v");
        assert_eq!(
            (first["seq"].as_str(), second["seq"].as_str()),
            ("1.1", "1.2")
        );
        assert_eq!(cx.reply_meta.get("core"), Some(&second["core"]));
    });
}

#[test]
fn plain_threads_wait_on_a_shared_client() {
    let demo = Demo::start(&[]);
    let client = shared(demo.addr);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let d = DemoClient::new(client.clone());
            std::thread::spawn(move || {
                for i in 0..100 {
                    assert_eq!(wait(d.add(None, t, i)).unwrap(), i64::from(t) + i);
                }
                wait(d.fire(None, "note".into())).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let d = DemoClient::new(client);
    let echoed = wait(d.echo(None, "ü".repeat(10_000))).unwrap();
    assert_eq!(echoed, "ü".repeat(10_000));
}

/// `SharedClient::spawn_each` gives each thread's client its index: the clients
/// made with app ids of their own are each seen by the server, calls going to
/// the threads in turn.
#[test]
fn each_thread_builds_its_client_with_its_index() {
    let demo = Demo::start(&[]);
    let addr = demo.addr;
    let client = SharedClient::spawn_each(3, Protocol::Binary, move |i| {
        Client::new([addr], ClientConfig::new(format!("thread-{i}")))
    })
    .unwrap();
    let d = DemoClient::new(client);
    let mut callers: Vec<String> = (0..6)
        .map(|_| wait(d.whoami(None)).unwrap()["client"].clone())
        .collect();
    callers.sort();
    callers.dedup();
    assert_eq!(callers, ["thread-0", "thread-1", "thread-2"]);
}

/// A caller that stops waiting (a tokio timeout drops the stub's future) cancels
/// its call on the client thread: the call's connection closes at once, as a
/// dropped call's does on a server's core, and the caller's context stays whole.
/// Before, the abandoned calls ran on to their end: 50 tokio tasks timing out 20 ms
/// into 1 s calls held about 2,400 connections to the server (by hand).
#[test]
fn a_caller_that_stops_waiting_cancels_its_call() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let demo = Demo::start(&[]);
    let addr = demo.addr;
    let closed = Arc::new(AtomicUsize::new(0));
    let counter = closed.clone();
    let client = SharedClient::spawn(1, Protocol::Binary, move || {
        let mut config = ClientConfig::new("impatient");
        config.conn.call_timeout = Duration::from_secs(120);
        let counter = counter.clone();
        config.hooks.on_close = Some(std::rc::Rc::new(move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        Client::new([addr], config)
    })
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let d = DemoClient::new(client.clone());
        // Patience long enough for each call to have reached the server.
        for _ in 0..10 {
            let call = d.sleep_ms(None, MAX_SLEEP_MS);
            let waited = tokio::time::timeout(Duration::from_millis(200), call).await;
            assert!(waited.is_err(), "the call outlived its caller's patience");
        }
        // Each abandoned call's connection closes; without cancelling, not before
        // the calls end, a minute on.
        let deadline = Instant::now() + Duration::from_secs(30);
        while closed.load(Ordering::SeqCst) < 10 {
            assert!(Instant::now() < deadline, "{closed:?} of 10 closed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(d.echo(None, "after".into()).await.unwrap(), "after");
        // The caller's context outlives an abandoned call whole, the call counted:
        // the next call continues the chain with the next rpc id. (Before, the
        // context went to the client thread and was lost with the call.)
        let mut cx = CallContext {
            request_id: "req-9".into(),
            seq: "1".into(),
            meta: BTreeMap::from([("k".to_string(), "v".to_string())]),
            ..CallContext::default()
        };
        let call = d.sleep_ms(Some(&mut cx), MAX_SLEEP_MS);
        assert!(tokio::time::timeout(Duration::from_millis(20), call)
            .await
            .is_err());
        let who = d.whoami(Some(&mut cx)).await.unwrap();
        assert_eq!(
            (who["request_id"].as_str(), who["seq"].as_str()),
            ("req-9", "1.2")
        );
        assert_eq!(who["meta.k"], "v");
    });
}

/// A shared client's threads build their clients on their own runtimes, so one
/// may discover its service (`Governance::follow_here` starts a task there), and
/// a call made at once, before the providers were first read, waits for them
/// within its deadline rather than being refused. Before, building such a client
/// panicked (no runtime yet: `a client thread ended while starting`), and a
/// discovering client's first call right after it was made came back `the service
/// has no nodes`.
#[test]
fn a_shared_client_discovers_and_its_first_call_waits_for_the_providers() {
    use ringsoa::governance::{Backend, Governance, GovernanceOptions};
    let demo = Demo::start(&[]);
    let dir = std::env::temp_dir().join(format!("ringsoa-shared-discover-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.toml");
    std::fs::write(
        &state,
        format!(
            "[[apps.back.clusters.main.providers]]\nhost = \"127.0.0.1\"\nport = {}\n",
            demo.addr.port()
        ),
    )
    .unwrap();
    let options = GovernanceOptions::new("gateway", "main", Backend::File(state));
    let gov = Governance::start(options).unwrap();
    let g = gov.clone();
    let client = SharedClient::spawn(1, Protocol::Binary, move || {
        let service = "back/main".parse().unwrap();
        Client::discover(&g.follow_here(), service, ClientConfig::new("gateway"))
    })
    .unwrap();
    let d = DemoClient::new(client);
    assert_eq!(wait(d.whoami(None)).unwrap()["client"], "gateway");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Awaited on a thread running ringsoa's runtime, whose tasks take no wake-ups
/// from other threads, a shared client's call fails at once with what to do
/// instead; before, it waited until something else woke the thread (here the
/// timeout's timer, 5 s on; for ever on an idle thread). Once the runtime has
/// ended, the thread may call through it again.
#[test]
fn a_shared_client_refuses_to_be_awaited_on_a_ringsoa_runtime() {
    let demo = Demo::start(&[]);
    let d = DemoClient::new(shared(demo.addr));
    let on_runtime = ringsoa::runtime::build().unwrap().block_on(async {
        let call = d.add(None, 1, 2);
        monoio::time::timeout(std::time::Duration::from_secs(5), call).await
    });
    match on_runtime {
        Ok(Err(CallError::Rejected(why))) => assert!(
            why.contains("cannot be awaited on a thread running ringsoa's runtime")
                && why.ends_with("call through a Client made on this thread"),
            "{why}"
        ),
        other => panic!("expected the refusal, got {other:?}"),
    }
    assert_eq!(wait(d.add(None, 1, 2)).unwrap(), 3);
}
