//! [`Resolver`]: provider host names looked up off the governance thread's loop.
//!
//! A lookup blocks for as long as DNS takes: seconds when its servers do not
//! answer. Made on the governance thread, it held up the ZooKeeper session's pings
//! with it, long enough for the session to expire and this process's own
//! registration to go. Here each lookup runs on the runtime's blocking pool,
//! bounded by [`LOOKUP_TIMEOUT`], and its answer comes back as an event of the
//! loop. Every name in use is looked up again each [`REFRESH`], so that a name
//! that did not resolve is taken once it does and a changed address is followed;
//! a lookup that fails keeps the address last found, so a DNS outage takes no
//! provider away.
//!
//! A service may have thousands of providers named by host name. At most
//! [`MAX_RUNNING`] lookups run at once (the rest wait their turn), and the answers
//! that come within [`GATHER`] of each other are one event, so one snapshot is
//! published for many: 10,000 names answered one by one were 10,000 snapshots of
//! every provider and 45 s of CPU.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::time::{interval_at, sleep_until, Instant, Interval, MissedTickBehavior};

use super::ignored::Tally;
use super::mirror::{Mirror, Name};

/// How often every provider host name in use is looked up again.
pub const REFRESH: Duration = Duration::from_secs(10);

/// A lookup that takes longer counts as failed.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The most lookups running at once.
const MAX_RUNNING: usize = 32;

/// How long after an answer the ones that follow are gathered into its event.
const GATHER: Duration = Duration::from_millis(100);

/// A finished lookup.
#[derive(Debug)]
pub struct Lookup {
    name: Name,
    addr: Result<SocketAddr, String>,
}

/// What the loop is told.
#[derive(Debug)]
pub enum Event {
    /// Lookups finished.
    Found(Vec<Lookup>),
    /// Time to look every name up again.
    Refresh,
}

/// The lookups under way (see the module docs).
pub struct Resolver {
    tx: UnboundedSender<Lookup>,
    rx: UnboundedReceiver<Lookup>,
    /// Names asked for and not answered yet: running or waiting their turn.
    in_flight: HashSet<Name>,
    /// The names waiting their turn, in the order asked.
    waiting: VecDeque<Name>,
    /// Lookups running, their answers not taken yet.
    running: usize,
    /// Answers taken, not yet handed out, and when they will be at the latest.
    gathered: Vec<Lookup>,
    gather_until: Instant,
    /// Names that have never resolved, warned of once.
    warned: HashSet<Name>,
    /// Whether a provider had a host name at the last refresh or has one read
    /// since (else the refresh sleeps).
    names: bool,
    refresh: Interval,
}

impl Default for Resolver {
    fn default() -> Self {
        let (tx, rx) = unbounded_channel();
        let mut refresh = interval_at(Instant::now() + REFRESH, REFRESH);
        refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Resolver {
            tx,
            rx,
            in_flight: HashSet::new(),
            waiting: VecDeque::new(),
            running: 0,
            gathered: Vec::new(),
            gather_until: Instant::now(),
            warned: HashSet::new(),
            names: false,
            refresh,
        }
    }
}

impl Resolver {
    /// Looks up each provider host name `mirror` read since the last ask that
    /// was never looked up (a name that failed waits for the next refresh). Only
    /// the names read since are gone through, not every provider.
    pub fn ask(&mut self, mirror: &mut Mirror) {
        for name in mirror.take_fresh() {
            if mirror.looked_up(&name).is_none() {
                self.names = true;
                self.look_up(name);
            }
        }
    }

    /// The next event (see [`Event`]): the answers that came within [`GATHER`] of
    /// the first (or all of those running), and no refresh while no provider has a
    /// host name. Cancel-safe: answers taken are kept for the next call.
    pub async fn next(&mut self) -> Event {
        loop {
            let gathering = !self.gathered.is_empty();
            if gathering && self.running == 0 {
                return Event::Found(std::mem::take(&mut self.gathered));
            }
            tokio::select! {
                Some(found) = self.rx.recv() => {
                    if !gathering {
                        self.gather_until = Instant::now() + GATHER;
                    }
                    self.running = self.running.saturating_sub(1);
                    self.gathered.push(found);
                    self.start_waiting();
                }
                _ = sleep_until(self.gather_until), if gathering => {
                    return Event::Found(std::mem::take(&mut self.gathered));
                }
                _ = self.refresh.tick(), if self.names && !gathering => return Event::Refresh,
            }
        }
    }

    /// Takes `event` into `mirror`; whether its snapshot changed.
    pub fn handle(&mut self, event: Event, mirror: &mut Mirror) -> bool {
        let found = match event {
            Event::Found(found) => found,
            Event::Refresh => {
                mirror.forget_unused();
                self.warned.retain(|n| mirror.looked_up(n).is_some());
                let names = mirror.names();
                self.names = !names.is_empty();
                for name in names {
                    self.look_up(name);
                }
                return false;
            }
        };
        let mut changed = false;
        // Names that fail for the first time: the first, and how many.
        let mut unresolved = None;
        for Lookup { name, addr } in found {
            self.in_flight.remove(&name);
            let before = mirror.looked_up(&name).flatten();
            let Some(change) = mirror.learn(&name, addr.as_ref().ok().copied()) else {
                continue; // no provider has the name any more
            };
            changed |= change;
            let (host, port) = (&name.0, name.1);
            match addr {
                Ok(addr) => {
                    if self.warned.remove(&name) {
                        tracing::info!(%host, port, %addr, "provider host resolves now");
                    }
                }
                Err(why) if before.is_some() => {
                    tracing::debug!(%host, port, %why, "provider host lookup failed: the address last found stands");
                }
                Err(why) => {
                    if self.warned.insert(name.clone()) {
                        tracing::debug!(%host, port, %why, "provider host lookup failed: no address yet");
                        Tally::note(&mut unresolved, (name, why));
                    }
                }
            }
        }
        if let Some(Tally {
            first: ((host, port), why),
            count: n,
        }) = unresolved
        {
            let more = n - 1;
            tracing::warn!(%host, port, %why, more, every = ?REFRESH, "provider host does not resolve: left out, and looked up again ({more} more hosts answered in the same batch do not either; each is logged at debug level)");
        }
        changed
    }

    /// Asks for `name`, unless it is already asked for: it starts now if fewer
    /// than [`MAX_RUNNING`] run, else waits its turn.
    fn look_up(&mut self, name: Name) {
        if self.in_flight.insert(name.clone()) {
            self.waiting.push_back(name);
            self.start_waiting();
        }
    }

    /// Starts waiting lookups while fewer than [`MAX_RUNNING`] run.
    fn start_waiting(&mut self) {
        while self.running < MAX_RUNNING {
            let Some(name) = self.waiting.pop_front() else {
                return;
            };
            self.running += 1;
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let addr = look_up(&name.0, name.1).await;
                let _ = tx.send(Lookup { name, addr });
            });
        }
    }
}

/// `host`'s first address (with `port`), or why there is none; a lookup that
/// takes longer than [`LOOKUP_TIMEOUT`] counts as failed.
async fn look_up(host: &str, port: u16) -> Result<SocketAddr, String> {
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(mut addrs)) => addrs.next().ok_or_else(|| "no address".to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer in {LOOKUP_TIMEOUT:?}")),
    }
}

/// Looks up every host of `names` (with its port), at most 32 at once, each for
/// at most 5 s: each one's first address or why none, in order. A lookup
/// given up still holds a thread of the runtime's blocking pool until the system
/// resolver returns: a runtime that made it should be shut down in the
/// background.
pub async fn look_up_all(names: Vec<(String, u16)>) -> Vec<Result<SocketAddr, String>> {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_RUNNING));
    let lookups: Vec<_> = names
        .into_iter()
        .map(|(host, port)| {
            let permits = permits.clone();
            tokio::spawn(async move {
                let _turn = permits.acquire_owned().await;
                look_up(&host, port).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(lookups.len());
    for lookup in lookups {
        out.push(lookup.await.unwrap_or_else(|e| Err(e.to_string())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{ServiceName, Source};
    use crate::governance::layout::Layout;
    use std::time::SystemTime;

    /// The service's providers in `m`'s snapshot (`None`: not loaded yet).
    fn providers(m: &mut Mirror) -> Option<Vec<String>> {
        let snap = m.snapshot(Source::ZooKeeper, 1, SystemTime::now());
        let service: ServiceName = "demo/main".parse().unwrap();
        let list = snap.providers(&service)?.iter();
        Some(list.map(|p| format!("{} {:?}", p.host, p.addr)).collect())
    }

    fn node(host: &str) -> (String, Vec<u8>) {
        node_at(host, 9090)
    }

    fn node_at(host: &str, port: u16) -> (String, Vec<u8>) {
        let json = format!(r#"{{"host":"{host}","port":{port}}}"#);
        (format!("{host}:{port}"), json.into_bytes())
    }

    const FOLDER: &str = "/r/apps/demo/clusters/main/providers";

    /// Real lookups of this machine's own names: `localhost` resolves, a name
    /// under `.invalid` (RFC 6761) never does.
    #[tokio::test]
    async fn names_are_looked_up_off_the_loop_and_kept_through_failures() {
        let mut m = Mirror::new(Layout::new("/r").unwrap(), "demo", "main");
        m.replace(
            FOLDER,
            vec![node("localhost"), node("nowhere.invalid"), node("10.0.0.1")],
        );
        // The IP address is in at once, the names once their lookups answer.
        assert_eq!(providers(&mut m).unwrap(), ["10.0.0.1 Some(10.0.0.1:9090)"]);
        let mut r = Resolver::default();
        r.ask(&mut m);
        r.ask(&mut m); // nothing asked twice
        assert_eq!(r.in_flight.len(), 2);
        let mut changed = false;
        while !r.in_flight.is_empty() {
            let event = r.next().await;
            changed |= r.handle(event, &mut m);
        }
        assert!(changed);
        let now = providers(&mut m).unwrap();
        assert_eq!(now.len(), 2, "{now:?}");
        assert!(
            now.iter().any(|p| p.starts_with("localhost Some(")),
            "{now:?}"
        );
        // The failed name is not asked again before the refresh.
        r.ask(&mut m);
        assert!(r.in_flight.is_empty());
        assert!(r.warned.contains(&("nowhere.invalid".to_string(), 9090)));
        // The node read again keeps the address found, with no new lookup.
        m.replace(FOLDER, vec![node("localhost")]);
        assert_eq!(providers(&mut m).unwrap().len(), 1);
        r.ask(&mut m);
        assert!(r.in_flight.is_empty());
        // A refresh looks every name up again and forgets names no longer used.
        assert!(!r.handle(Event::Refresh, &mut m));
        assert_eq!(r.in_flight.len(), 1);
        assert!(r.warned.is_empty());
        let event = r.next().await;
        assert!(!r.handle(event, &mut m), "the same address again");
        // A failed lookup of a known name keeps its address.
        let name = ("localhost".to_string(), 9090);
        r.in_flight.insert(name.clone());
        let failed = Lookup {
            name,
            addr: Err("no answer".into()),
        };
        assert!(!r.handle(Event::Found(vec![failed]), &mut m));
        assert_eq!(providers(&mut m).unwrap().len(), 1);
    }

    /// Hundreds of names: a few lookups run at a time, and their answers come in
    /// a few events (one snapshot each), not one event per answer.
    #[tokio::test]
    async fn many_names_run_a_few_at_a_time_and_answer_in_few_events() {
        let mut m = Mirror::new(Layout::new("/r").unwrap(), "demo", "main");
        m.replace(
            FOLDER,
            (0..200).map(|i| node_at("localhost", 20000 + i)).collect(),
        );
        let mut r = Resolver::default();
        r.ask(&mut m);
        assert_eq!((r.in_flight.len(), r.running), (200, MAX_RUNNING));
        let mut events = 0;
        while !r.in_flight.is_empty() {
            let event = r.next().await;
            assert!(r.running <= MAX_RUNNING);
            events += 1;
            r.handle(event, &mut m);
        }
        let found = providers(&mut m).unwrap();
        assert_eq!(found.len(), 200);
        assert!(found.iter().all(|p| p.starts_with("localhost Some(")));
        assert!(events <= 20, "{events} events for 200 answers");
    }

    /// An ask goes through only the names read since the last one: a value that is
    /// not a provider's, or a provider read again whose name was looked up, asks
    /// nothing and costs no walk over every provider.
    #[tokio::test]
    async fn an_ask_goes_through_only_the_names_read_since() {
        let mut m = Mirror::new(Layout::new("/r").unwrap(), "demo", "main");
        m.replace(FOLDER, vec![node("localhost"), node("10.0.0.1")]);
        let mut r = Resolver::default();
        r.ask(&mut m);
        assert_eq!(r.in_flight.len(), 1);
        let event = r.next().await;
        assert!(r.handle(event, &mut m));
        assert!(m.take_fresh().is_empty());
        assert!(m.set("/r/apps/demo/config/k", b"v".to_vec()));
        let (child, data) = node("localhost");
        m.set(&format!("{FOLDER}/{child}"), data);
        assert!(m.take_fresh().is_empty());
        let (child, data) = node("nowhere.invalid");
        assert!(m.set(&format!("{FOLDER}/{child}"), data));
        // Read again with a weight: checked again, so noted again (a value read
        // again as it was is not).
        let weighted = br#"{"host":"nowhere.invalid","port":9090,"weight":5}"#.to_vec();
        m.replace(FOLDER, vec![node("localhost"), (child, weighted)]);
        let fresh = m.clone().take_fresh();
        assert_eq!(fresh, vec![("nowhere.invalid".to_string(), 9090); 2]);
        r.ask(&mut m);
        assert_eq!(r.in_flight.len(), 1, "asked once");
        assert!(m.take_fresh().is_empty());
    }

    /// A service whose providers are all names not looked up yet is not loaded
    /// (a caller waits for it), where one with only names that failed is loaded
    /// and empty ("no live provider").
    #[tokio::test]
    async fn a_service_of_names_loads_once_they_are_looked_up() {
        let mut m = Mirror::new(Layout::new("/r").unwrap(), "demo", "main");
        m.replace(FOLDER, vec![node("nowhere.invalid")]);
        assert_eq!(providers(&mut m), None);
        let mut r = Resolver::default();
        r.ask(&mut m);
        let event = r.next().await;
        assert!(r.handle(event, &mut m));
        assert_eq!(providers(&mut m), Some(vec![]));
        // Looked up again at the refresh, and still failing: warned of once only.
        r.handle(Event::Refresh, &mut m);
        assert_eq!(r.in_flight.len(), 1);
        let event = r.next().await;
        assert!(!r.handle(event, &mut m));
        assert_eq!(r.warned.len(), 1);
    }
}
