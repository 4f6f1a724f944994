//! Circuit breakers, decided on the aggregator thread (doctor's rules, its flaws
//! fixed): a breaker locks when, over its window, the calls reach a minimum and the
//! share of timeouts, system errors or application errors reaches its threshold
//! (declared exceptions are healthy; refused calls are not counted); after a
//! jittered lock time (doubling on repeated locks) it lets single probes through
//! (at most `probes_per_core` in flight per core, each with a timeout); a probe
//! that passes starts a ramp of admitted traffic, unlocked at its end; a probe that
//! fails or times out locks it again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::bad_value::{self, BadValues};
use super::counts::{Counts, Window};
use super::Knows;
use crate::control::{Snapshot, Switch};

/// Breaker settings: config keys `breaker.<name>` (changed live) over defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Calls the window needs before any ratio counts (`breaker.min_requests`).
    pub min_requests: u64,
    /// Share of timeouts that locks (`breaker.timeout_ratio`).
    pub timeout_ratio: f64,
    /// Share of system errors (panics) that locks (`breaker.system_ratio`).
    pub system_ratio: f64,
    /// Share of application exceptions that locks (`breaker.application_ratio`).
    pub application_ratio: f64,
    /// First lock time; doubled on each lock that follows a failed recovery, up to
    /// `max_lock_ms` (`breaker.lock_ms`).
    pub lock: Duration,
    /// Longest lock time (`breaker.max_lock_ms`).
    pub max_lock: Duration,
    /// Length of the ramp after a passed probe (`breaker.ramp_ms`).
    pub ramp: Duration,
    /// Probes in flight per core while probing (`breaker.probes_per_core`).
    pub probes_per_core: usize,
    /// A probe that takes longer has failed (`breaker.probe_timeout_ms`).
    pub probe_timeout: Duration,
    /// Window buckets (`breaker.window_buckets`).
    pub buckets: usize,
    /// Bucket width (`breaker.bucket_ms`).
    pub bucket_ms: u64,
    /// How long a key (method, downstream method, node) must have had no calls
    /// before a new key may take its place in a full table (`metrics.key_idle_ms`).
    pub key_idle: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            min_requests: 20,
            timeout_ratio: 0.5,
            system_ratio: 0.5,
            application_ratio: 0.5,
            lock: Duration::from_secs(5),
            max_lock: Duration::from_secs(60),
            ramp: Duration::from_secs(10),
            probes_per_core: 1,
            probe_timeout: Duration::from_secs(2),
            buckets: 10,
            bucket_ms: 1000,
            key_idle: Duration::from_secs(600),
        }
    }
}

/// The breaker settings there are, as `breaker.<name>` config keys.
const SETTINGS: &str = "min_requests, timeout_ratio, system_ratio, application_ratio, \
     lock_ms, max_lock_ms, ramp_ms, probes_per_core, probe_timeout_ms, window_buckets, bucket_ms";

impl Settings {
    /// The settings in `snap`'s config over the defaults; a value that does not
    /// parse, or is out of its range, keeps the default and is noted in `bad`, as
    /// is a `breaker.*` key that names no setting.
    pub fn from_config(snap: Option<&Snapshot>, bad: &mut BadValues) -> Settings {
        let mut s = Settings::default();
        let Some(snap) = snap else { return s };
        for (key, value) in snap.config.range("breaker.".to_string()..) {
            let Some(name) = key.strip_prefix("breaker.") else {
                break;
            };
            let v = value.trim();
            let whole = |least: u64, most: u64| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| (least..=most).contains(n))
                    .ok_or_else(|| match (least, most) {
                        (0, u64::MAX) => "not a whole number".to_string(),
                        (_, u64::MAX) => format!("not a whole number of at least {least}"),
                        _ => format!("not a whole number from {least} to {most}"),
                    })
            };
            let ms = || {
                (whole(0, u64::MAX).map(Duration::from_millis))
                    .map_err(|_| "not a whole number of milliseconds".to_string())
            };
            let ratio = || {
                v.parse::<f64>()
                    .ok()
                    .filter(|r| *r > 0.0 && *r <= 1.0)
                    .ok_or_else(|| "not a ratio above 0 and at most 1".to_string())
            };
            let set = match name {
                "min_requests" => whole(0, u64::MAX).map(|n| s.min_requests = n),
                "timeout_ratio" => ratio().map(|r| s.timeout_ratio = r),
                "system_ratio" => ratio().map(|r| s.system_ratio = r),
                "application_ratio" => ratio().map(|r| s.application_ratio = r),
                "lock_ms" => ms().map(|d| s.lock = d),
                "max_lock_ms" => ms().map(|d| s.max_lock = d),
                "ramp_ms" => ms().map(|d| s.ramp = d),
                "probes_per_core" => {
                    whole(1, u32::MAX.into()).map(|n| s.probes_per_core = n as usize)
                }
                "probe_timeout_ms" => ms().map(|d| s.probe_timeout = d),
                "window_buckets" => whole(1, 600).map(|n| s.buckets = n as usize),
                "bucket_ms" => whole(10, u64::MAX).map(|n| s.bucket_ms = n),
                _ => {
                    let why = format!("no such breaker setting (breaker.<method> is a switch, not config; the settings are {SETTINGS})");
                    bad.note(key, value, why, "nothing is set by it");
                    continue;
                }
            };
            if let Err(why) = set {
                bad.note(key, value, why, "the default is in force");
            }
        }
        s.max_lock = s.max_lock.max(s.lock);
        if let Some(value) = snap.config_str("metrics.key_idle_ms") {
            match value.trim().parse::<u64>() {
                Ok(ms) => s.key_idle = Duration::from_millis(ms),
                Err(_) => bad.note(
                    "metrics.key_idle_ms",
                    value,
                    "not a whole number of milliseconds",
                    "the default (10 minutes) is in force",
                ),
            }
        }
        s
    }
}

/// A switch over one breaker: `breaker.<key>` = `off` or `false` (never locks),
/// `on`, `true` or absent (normal), or `"open"` (JSON: locked until the switch
/// changes); the key is a method, or a downstream method `client:<service>.<method>`
/// with every character a switch name does not take made `_` ([`switch_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Force {
    /// Normal.
    None,
    /// Held open (every call refused).
    Open,
    /// Held closed (never locks).
    Closed,
}

impl Force {
    /// The switch over breaker `key` in `snap`: the app-wide one when a cluster's
    /// override asks nothing this knows.
    pub fn of(snap: Option<&Snapshot>, key: &str) -> Force {
        let Some(snap) = snap else {
            return Force::None;
        };
        let name = switch_name(key);
        let read = |switches: &BTreeMap<String, String>| {
            let value = switches.get(&name)?;
            Force::from_switch(Switch::parse(value).ok()?)
        };
        (read(&snap.switches).or_else(|| read(&snap.app_switches))).unwrap_or(Force::None)
    }

    /// Notes in `bad` each `breaker.*` switch in `snap` that is none of the values
    /// above, or names a method the service does not have (by `knows`, when given;
    /// a downstream breaker's `breaker.client_…` aside): it counts as absent.
    pub fn check(snap: Option<&Snapshot>, knows: Knows<'_>, bad: &mut BadValues) {
        let Some(snap) = snap else { return };
        for (key, value) in snap.switches.range("breaker.".to_string()..) {
            let Some(method) = key.strip_prefix("breaker.") else {
                break;
            };
            if !method.starts_with("client_") && bad_value::unknown(knows, method) {
                let why = format!("{method} is no method of this service (a downstream breaker's switch is breaker.client_<service>.<method>)");
                bad.note(key, value, why, "nothing is held by it");
                continue;
            }
            if let Ok(switch) = Switch::parse(value) {
                if Force::from_switch(switch).is_none() {
                    let why = "a breaker switch is off, on, false, true or \"open\"";
                    bad.note(key, value, why, "the breaker runs normally");
                }
            }
        }
    }

    /// What `switch` asks of a breaker; `None` when it asks nothing it knows.
    fn from_switch(switch: Switch) -> Option<Force> {
        use serde_json::Value;
        match switch {
            Switch::Off | Switch::Json(Value::Bool(false)) => Some(Force::Closed),
            Switch::On | Switch::Json(Value::Bool(true)) => Some(Force::None),
            Switch::Json(Value::String(s)) if s == "open" => Some(Force::Open),
            Switch::Json(_) => None,
        }
    }
}

/// The name of the switch over breaker `key`: `breaker.echo`, or
/// `breaker.client_app_cluster.echo` for `client:app/cluster.echo`.
pub fn switch_name(key: &str) -> String {
    format!("breaker.{}", super::export::plain_name(key))
}

/// A breaker's state as the cores see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Calls pass.
    Unlocked,
    /// Calls are refused.
    Locked,
    /// Single probes pass (a capped number per core); the rest are refused.
    Probing,
    /// A growing share of calls passes, from 0 at the start to all at the end.
    Ramp,
}

/// What a breaker was told by the cores since it last decided: probes that
/// passed and probes that failed or timed out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Probes {
    /// Probes that passed.
    pub passed: u64,
    /// Probes that failed or timed out.
    pub failed: u64,
}

/// One breaker (see the module docs).
#[derive(Debug, Clone)]
pub struct Breaker {
    state: State,
    /// Until when it stays locked.
    until: Instant,
    /// When the ramp started.
    since: Instant,
    /// Locks in a row without a full recovery (for the back-off).
    locks: u32,
    /// Why it locked last.
    pub reason: String,
}

impl Breaker {
    /// An unlocked breaker.
    pub fn new(now: Instant) -> Self {
        Breaker {
            state: State::Unlocked,
            until: now,
            since: now,
            locks: 0,
            reason: String::new(),
        }
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// When the ramp started (meaningful in [`State::Ramp`]).
    pub fn ramp_since(&self) -> Instant {
        self.since
    }

    /// Decides at `now` from the window and the probes' news; returns the state
    /// it left, when it changed.
    pub fn decide(
        &mut self,
        now: Instant,
        now_ms: u64,
        window: &mut Window,
        probes: Probes,
        s: &Settings,
        force: Force,
    ) -> Option<State> {
        let before = self.state;
        match force {
            Force::Open => {
                if self.state != State::Locked || self.until > now + Duration::from_secs(3600) {
                    self.state = State::Locked;
                    self.until = now + Duration::from_secs(86_400 * 365);
                    self.reason = "held open by its switch".into();
                }
                return (before != self.state).then_some(before);
            }
            Force::Closed => {
                self.state = State::Unlocked;
                self.locks = 0;
                return (before != self.state).then_some(before);
            }
            Force::None => {
                if self.reason == "held open by its switch" {
                    // The switch was released: recover as after any lock.
                    self.until = now;
                    self.reason.clear();
                }
            }
        }
        match self.state {
            State::Unlocked | State::Ramp => {
                if let Some(why) = trips(&window.total(now_ms), s) {
                    self.lock(now, window, s, why);
                } else if self.state == State::Ramp && now >= self.since + s.ramp {
                    self.state = State::Unlocked;
                    self.locks = 0;
                }
            }
            State::Locked => {
                if now >= self.until {
                    self.state = State::Probing;
                }
            }
            State::Probing => {
                if probes.failed > 0 {
                    self.lock(now, window, s, "a probe failed or timed out".into());
                } else if probes.passed > 0 {
                    self.state = State::Ramp;
                    self.since = now;
                }
            }
        }
        (before != self.state).then_some(before)
    }

    fn lock(&mut self, now: Instant, window: &mut Window, s: &Settings, why: String) {
        let base = s
            .lock
            .saturating_mul(1 << self.locks.min(16))
            .min(s.max_lock);
        let jitter = 0.8 + 0.4 * fastrand::f64();
        self.until = now + base.mul_f64(jitter);
        self.locks += 1;
        self.state = State::Locked;
        self.reason = why;
        // Old failures must not lock it again the moment it recovers.
        window.clear();
    }
}

/// Why `c` locks a breaker under `s`, if it does.
fn trips(c: &Counts, s: &Settings) -> Option<String> {
    // Calls cut off by their callers' deadlines, and the callers' own errors, tell
    // nothing either way: counted, impatient or broken callers would thin out the
    // failures of a method that fails.
    let ran = c.requests - c.expired - c.bad_arguments - c.unknown_method;
    if ran < s.min_requests.max(1) {
        return None;
    }
    let n = ran as f64;
    [
        (c.timeouts, s.timeout_ratio, "timed out"),
        (c.system, s.system_ratio, "failed with a system error"),
        (
            c.application,
            s.application_ratio,
            "ended in an application exception",
        ),
    ]
    .into_iter()
    .find(|(k, ratio, _)| *k as f64 / n >= *ratio)
    .map(|(k, _, what)| format!("{k} of {ran} calls {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Outcome;
    use std::sync::Arc;

    fn counts(outcomes: &[(Outcome, usize)]) -> Counts {
        let mut c = Counts::default();
        for (o, n) in outcomes {
            for _ in 0..*n {
                c.add(*o);
            }
        }
        c
    }

    fn settings() -> Settings {
        Settings {
            min_requests: 10,
            lock: Duration::from_millis(100),
            ramp: Duration::from_millis(100),
            ..Settings::default()
        }
    }

    /// A method that hangs, called by patient callers and by many more impatient
    /// or broken ones: the calls cut off by their deadlines, the callers' bad
    /// arguments and their calls of methods the service lacks do not thin out the
    /// timeouts, nor lock it on their own.
    #[test]
    fn expired_calls_and_callers_errors_thin_out_no_ratio() {
        use crate::protocol::ApplicationExceptionKind::{ProtocolError, UnknownMethod};
        let s = settings();
        let t0 = Instant::now();
        let mut w = Window::new(s.buckets, s.bucket_ms);
        let mut b = Breaker::new(t0);
        let (bad, unknown) = (
            Outcome::Application(ProtocolError),
            Outcome::Application(UnknownMethod),
        );
        w.add(0, &counts(&[(bad, 300), (unknown, 300)]));
        let none = Probes::default();
        assert_eq!(b.decide(t0, 0, &mut w, none, &s, Force::None), None);
        w.add(
            0,
            &counts(&[(Outcome::Timeout, 30), (Outcome::Expired, 300)]),
        );
        assert!(b.decide(t0, 0, &mut w, none, &s, Force::None).is_some());
        assert!(
            b.reason.contains("30 of 30 calls timed out"),
            "{}",
            b.reason
        );
    }

    #[test]
    fn locks_probes_ramps_and_unlocks() {
        let s = settings();
        let t0 = Instant::now();
        let mut w = Window::new(s.buckets, s.bucket_ms);
        let mut b = Breaker::new(t0);
        let none = Probes::default();
        // Too few calls: no decision; declared exceptions are healthy; calls cut
        // off by their callers' deadlines count neither way.
        w.add(
            0,
            &counts(&[(Outcome::Timeout, 9), (Outcome::Expired, 500)]),
        );
        assert_eq!(b.decide(t0, 0, &mut w, none, &s, Force::None), None);
        w.add(0, &counts(&[(Outcome::Declared, 100)]));
        assert_eq!(b.decide(t0, 0, &mut w, none, &s, Force::None), None);
        w.add(0, &counts(&[(Outcome::Timeout, 200)]));
        assert_eq!(
            b.decide(t0, 0, &mut w, none, &s, Force::None),
            Some(State::Unlocked)
        );
        assert_eq!(b.state(), State::Locked);
        assert!(b.reason.contains("timed out"), "{}", b.reason);
        let t1 = t0 + Duration::from_millis(130);
        b.decide(t1, 130, &mut w, none, &s, Force::None);
        assert_eq!(b.state(), State::Probing);
        b.decide(
            t1,
            130,
            &mut w,
            Probes {
                passed: 1,
                failed: 0,
            },
            &s,
            Force::None,
        );
        assert_eq!(b.state(), State::Ramp);
        b.decide(
            t1 + Duration::from_millis(101),
            231,
            &mut w,
            none,
            &s,
            Force::None,
        );
        assert_eq!(b.state(), State::Unlocked);
    }

    #[test]
    fn a_failed_probe_locks_again_for_longer() {
        let s = settings();
        let t0 = Instant::now();
        let mut w = Window::new(s.buckets, s.bucket_ms);
        let mut b = Breaker::new(t0);
        w.add(0, &counts(&[(Outcome::Panic, 20)]));
        b.decide(t0, 0, &mut w, Probes::default(), &s, Force::None);
        let first = b.until - t0;
        let t1 = t0 + Duration::from_millis(130);
        b.decide(t1, 130, &mut w, Probes::default(), &s, Force::None);
        assert_eq!(b.state(), State::Probing);
        b.decide(
            t1,
            130,
            &mut w,
            Probes {
                passed: 0,
                failed: 1,
            },
            &s,
            Force::None,
        );
        assert_eq!(b.state(), State::Locked);
        assert!(b.until - t1 > first, "backs off");
    }

    #[test]
    fn switches_hold_it_open_or_closed_and_config_sets_it() {
        let s = settings();
        let t0 = Instant::now();
        let mut w = Window::new(s.buckets, s.bucket_ms);
        let mut b = Breaker::new(t0);
        b.decide(t0, 0, &mut w, Probes::default(), &s, Force::Open);
        assert_eq!(b.state(), State::Locked);
        b.decide(t0, 0, &mut w, Probes::default(), &s, Force::None);
        assert_eq!(b.state(), State::Probing, "released: recovers");
        w.add(0, &counts(&[(Outcome::Timeout, 50)]));
        b.decide(t0, 0, &mut w, Probes::default(), &s, Force::Closed);
        assert_eq!(b.state(), State::Unlocked);
        let mut snap = Snapshot::empty("a", "c");
        Arc::make_mut(&mut snap.config).insert("breaker.min_requests".into(), "3".into());
        Arc::make_mut(&mut snap.config).insert("breaker.lock_ms".into(), "250".into());
        Arc::make_mut(&mut snap.config).insert("breaker.timeout_ratio".into(), "nonsense".into());
        Arc::make_mut(&mut snap.config).insert("breaker.system_ratio".into(), "2".into());
        Arc::make_mut(&mut snap.config).insert("breaker.window_buckets".into(), "0".into());
        Arc::make_mut(&mut snap.config).insert("breaker.ramp_ms".into(), "1e3".into());
        Arc::make_mut(&mut snap.config).insert("breaker.echo".into(), "off".into());
        Arc::make_mut(&mut snap.config).insert("metrics.key_idle_ms".into(), "-1".into());
        Arc::make_mut(&mut snap.switches).insert("breaker.m".into(), "\"open\"".into());
        Arc::make_mut(&mut snap.switches).insert("breaker.n".into(), "false".into());
        Arc::make_mut(&mut snap.switches).insert("breaker.o".into(), "\"closed\"".into());
        let mut bad = BadValues::default();
        let got = Settings::from_config(Some(&snap), &mut bad);
        assert_eq!(
            (got.min_requests, got.lock),
            (3, Duration::from_millis(250))
        );
        let defaults = Settings::default();
        assert_eq!(
            (got.timeout_ratio, got.system_ratio, got.buckets, got.ramp),
            (0.5, 0.5, defaults.buckets, defaults.ramp)
        );
        assert_eq!(got.key_idle, defaults.key_idle);
        Arc::make_mut(&mut snap.switches).insert("breaker.nope".into(), "off".into());
        Arc::make_mut(&mut snap.switches).insert("breaker.client_x.nope".into(), "off".into());
        let knows = |m: &[u8]| m != b"nope";
        Force::check(Some(&snap), Some(&knows), &mut bad);
        let keys: Vec<&str> = bad.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "breaker.echo",
                "breaker.nope",
                "breaker.o",
                "breaker.ramp_ms",
                "breaker.system_ratio",
                "breaker.timeout_ratio",
                "breaker.window_buckets",
                "metrics.key_idle_ms"
            ]
        );
        assert_eq!(Force::of(Some(&snap), "m"), Force::Open);
        assert_eq!(
            Force::of(Some(&snap), "n"),
            Force::Closed,
            "JSON false is off"
        );
        assert_eq!(Force::of(Some(&snap), "o"), Force::None);
        assert_eq!(Force::of(Some(&snap), "other"), Force::None);
    }
}
