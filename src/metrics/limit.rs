//! Rate limits per method, in calls per second and in concurrent calls, from
//! config (changed live): `limit.<method>.qps` and `limit.<method>.concurrency` for
//! this process, `limit.<method>.cluster_qps` for the whole cluster (divided by
//! the live provider count of this service in the registry).
//!
//! The aggregator splits each limit into per-core shares by the cores' recent
//! demand, with a floor so that an idle core can start; each core enforces its
//! share with a plain token bucket and counter.

use std::collections::HashMap;

use serde::Serialize;

use super::bad_value::{self, BadValues};
use super::Knows;
use crate::clock::Stamp;
use crate::control::Snapshot;

/// One method's process-wide limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Limit {
    /// Calls per second.
    pub qps: Option<f64>,
    /// Calls at once.
    pub concurrency: Option<u32>,
}

/// The limits in `snap`'s config; `providers` live providers of this service
/// share a cluster-wide limit. A key that is not `limit.<method>.qps`,
/// `.cluster_qps` or `.concurrency` of one of the service's methods (by `knows`,
/// when given), or whose value is not a number above 0 (a whole one for a
/// concurrency), is left out and noted in `bad`.
pub fn from_config(
    snap: Option<&Snapshot>,
    providers: usize,
    knows: Knows<'_>,
    bad: &mut BadValues,
) -> HashMap<String, Limit> {
    let mut out: HashMap<String, Limit> = HashMap::new();
    let Some(snap) = snap else { return out };
    for (key, value) in snap.config.range("limit.".to_string()..) {
        let Some(rest) = key.strip_prefix("limit.") else {
            break;
        };
        let what = rest.rsplit_once('.').filter(|(method, what)| {
            !method.is_empty() && matches!(*what, "qps" | "cluster_qps" | "concurrency")
        });
        let Some((method, what)) = what else {
            bad.note(
                key,
                value,
                "not limit.<method>.qps, .cluster_qps or .concurrency",
                "no limit from it",
            );
            continue;
        };
        if bad_value::unknown(knows, method) {
            let why = format!("{method} is no method of this service");
            bad.note(key, value, why, "no limit from it");
            continue;
        }
        let n = value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n > 0.0);
        let n = match (n, what) {
            (Some(n), "concurrency") if n.fract() != 0.0 => None,
            (n, _) => n,
        };
        let Some(n) = n else {
            let number = match what {
                "concurrency" => "a whole number of calls above 0",
                _ => "a number of calls a second above 0",
            };
            bad.note(key, value, format!("not {number}"), "no limit from it");
            continue;
        };
        let l = out.entry(method.to_string()).or_default();
        match what {
            "qps" => l.qps = Some(l.qps.map_or(n, |q: f64| q.min(n))),
            "cluster_qps" => {
                let per = n / providers.max(1) as f64;
                l.qps = Some(l.qps.map_or(per, |q| q.min(per)));
            }
            _ => l.concurrency = Some(n.min(u32::MAX.into()) as u32),
        }
    }
    out
}

/// One of `cores` equal shares of `limit`: a core's share before any demand is known.
pub fn equal_share(limit: &Limit, cores: usize) -> Limit {
    split(limit, &vec![0.0; cores.max(1)])[0]
}

/// Splits `limit` over cores by `demand` (recent calls per core): each core gets a
/// floor of a tenth of an equal share, the rest goes by demand (equally when there
/// is none). Concurrency shares are whole calls that add up to the limit, each at
/// least one: a limit below the core count admits one call per core.
pub fn split(limit: &Limit, demand: &[f64]) -> Vec<Limit> {
    let n = demand.len().max(1) as f64;
    let total: f64 = demand.iter().sum();
    let weights: Vec<f64> = demand
        .iter()
        .map(|d| {
            let by_demand = if total > 0.0 { d / total } else { 1.0 / n };
            0.1 / n + 0.9 * by_demand
        })
        .collect();
    let calls = limit.concurrency.map(|c| apportion(c, &weights));
    (0..demand.len())
        .map(|i| Limit {
            qps: limit.qps.map(|q| q * weights[i]),
            concurrency: calls.as_ref().map(|c| c[i]),
        })
        .collect()
}

/// `total` whole units over `weights` (summing to 1), each share at least one and
/// the shares adding up to `total` when it allows: one each first, then the rest by
/// weight, its rounding left-overs to the largest remainders.
fn apportion(total: u32, weights: &[f64]) -> Vec<u32> {
    let rest = total.saturating_sub(weights.len() as u32);
    let exact: Vec<f64> = weights.iter().map(|w| rest as f64 * w).collect();
    let mut shares: Vec<u32> = exact.iter().map(|e| 1 + *e as u32).collect();
    let given: u32 = shares.iter().sum::<u32>() - weights.len() as u32;
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    by_remainder.sort_by(|a, b| (exact[*b] % 1.0).total_cmp(&(exact[*a] % 1.0)));
    for &i in by_remainder
        .iter()
        .take(rest.saturating_sub(given) as usize)
    {
        shares[i] += 1;
    }
    shares
}

/// A core's token bucket for one method: refills at its share, holds at most a
/// tenth of a second's worth (at least one call).
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Stamp,
}

impl Bucket {
    /// A bucket holding one call's token.
    pub fn new(now: Stamp) -> Self {
        Bucket {
            tokens: 1.0,
            last: now,
        }
    }

    /// Takes one call's token at `now` under `rate` calls per second; whether there
    /// was one.
    pub fn take(&mut self, rate: f64, now: Stamp) -> bool {
        let cap = (rate / 10.0).max(1.0);
        let dt = now.secs_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + rate * dt).min(cap);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One core's limited methods: each one's share of its limits (from the rules in
/// force), token bucket and calls in flight. A call finds its method by name, the
/// last name first (a core's calls mostly repeat one method: one compare, not a
/// hash), and gives its concurrency slot back by number when it ends.
#[derive(Debug, Default)]
pub(crate) struct CoreLimits {
    methods: Vec<Limited>,
    index: foldhash::HashMap<String, usize>,
    last: usize,
}

#[derive(Debug)]
struct Limited {
    method: String,
    /// `None` once the method's limits are gone from the rules.
    share: Option<Limit>,
    bucket: Bucket,
    in_flight: u32,
}

/// Which of its limits a refused call is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Over {
    /// Calls at once.
    Concurrency,
    /// Calls per second.
    Rate,
}

impl CoreLimits {
    /// The most methods kept (each limited method of the config takes one, for good).
    pub const MAX_METHODS: usize = 1 << 16;

    /// Takes `shares` (method → this core's share) as the shares in force; a method
    /// missing from them is no longer limited. Calls in flight keep their slots.
    pub fn set_shares<'a>(
        &mut self,
        shares: impl IntoIterator<Item = (&'a String, &'a Limit)>,
        now: Stamp,
    ) {
        for l in &mut self.methods {
            l.share = None;
        }
        for (method, share) in shares {
            let i = match self.index.get(method) {
                Some(&i) => i,
                None if self.methods.len() < Self::MAX_METHODS => {
                    self.index.insert(method.clone(), self.methods.len());
                    self.methods.push(Limited {
                        method: method.clone(),
                        share: None,
                        bucket: Bucket::new(now),
                        in_flight: 0,
                    });
                    self.methods.len() - 1
                }
                None => {
                    tracing::warn!(
                        method = method.as_str(),
                        "more than {} limited methods: this one is not limited",
                        Self::MAX_METHODS
                    );
                    continue;
                }
            };
            self.methods[i].share = Some(*share);
        }
    }

    /// Admits a call of `method` by its limits: `Ok(Some(slot))` when it holds a
    /// concurrency slot, to be given back with [`Self::release`]; `Ok(None)` when it
    /// holds none. Reads the clock (`now`) only for a rate limit.
    pub fn admit(
        &mut self,
        method: &str,
        now: impl FnOnce() -> Stamp,
    ) -> Result<Option<usize>, Over> {
        let hit = matches!(self.methods.get(self.last), Some(l) if l.method == method);
        if !hit {
            match self.index.get(method) {
                Some(&i) => self.last = i,
                None => return Ok(None),
            }
        }
        let i = self.last;
        let l = &mut self.methods[i];
        let Some(share) = l.share else {
            return Ok(None);
        };
        if share.concurrency.is_some_and(|c| l.in_flight >= c) {
            return Err(Over::Concurrency);
        }
        if share.qps.is_some_and(|q| !l.bucket.take(q, now())) {
            return Err(Over::Rate);
        }
        if share.concurrency.is_none() {
            return Ok(None);
        }
        l.in_flight += 1;
        Ok(Some(i))
    }

    /// Gives back a slot [`Self::admit`] gave.
    pub fn release(&mut self, slot: usize) {
        if let Some(l) = self.methods.get_mut(slot) {
            l.in_flight = l.in_flight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_core_admits_by_its_shares_and_gets_its_slots_back() {
        let mut t = CoreLimits::default();
        let t0 = Stamp::now();
        let shares: HashMap<String, Limit> = [
            (
                "echo".to_string(),
                Limit {
                    qps: None,
                    concurrency: Some(2),
                },
            ),
            (
                "add".to_string(),
                Limit {
                    qps: Some(10.0),
                    concurrency: None,
                },
            ),
        ]
        .into();
        t.set_shares(&shares, t0);
        let no_clock = || -> Stamp { panic!("no rate limit: no clock read") };
        let a = t.admit("echo", no_clock).unwrap().expect("a slot");
        let b = t.admit("echo", no_clock).unwrap().expect("a slot");
        assert_eq!(t.admit("echo", no_clock), Err(Over::Concurrency));
        assert_eq!(t.admit("ping", no_clock), Ok(None), "not limited");
        // The bucket starts with one token and holds one call at 10/s.
        assert_eq!(t.admit("add", || t0), Ok(None));
        assert_eq!(t.admit("add", || t0), Err(Over::Rate));
        assert_eq!(
            t.admit("add", || t0.after(Duration::from_millis(150))),
            Ok(None)
        );
        t.release(a);
        let c = t
            .admit("echo", no_clock)
            .unwrap()
            .expect("the slot given back");
        // Limits gone from the rules: admitted freely; slots taken before still go back.
        t.set_shares(&HashMap::new(), t0);
        assert_eq!(t.admit("echo", no_clock), Ok(None));
        t.release(b);
        t.release(c);
        t.set_shares(&shares, t0);
        assert!(t.admit("echo", no_clock).unwrap().is_some());
        assert!(
            t.admit("echo", no_clock).unwrap().is_some(),
            "both slots were given back"
        );
        // Past the bound a method is not limited (its slot number would not fit a
        // ticket), and those within it still are.
        let one = Limit {
            qps: None,
            concurrency: Some(1),
        };
        let many: HashMap<String, Limit> = (0..CoreLimits::MAX_METHODS + 10)
            .map(|i| (format!("m{i}"), one))
            .collect();
        let mut t = CoreLimits::default();
        t.set_shares(&many, t0);
        assert_eq!(t.methods.len(), CoreLimits::MAX_METHODS);
        let kept = &t.methods[0].method.clone();
        assert!(t.admit(kept, no_clock).unwrap().is_some());
        assert_eq!(t.admit(kept, no_clock), Err(Over::Concurrency));
        let left_out = many.keys().find(|m| !t.index.contains_key(*m)).unwrap();
        assert_eq!(t.admit(left_out, no_clock), Ok(None));
    }

    #[test]
    fn config_shares_and_buckets() {
        let mut s = Snapshot::empty("a", "c");
        Arc::make_mut(&mut s.config).insert("limit.echo.qps".into(), "1000".into());
        Arc::make_mut(&mut s.config).insert("limit.echo.concurrency".into(), "8".into());
        Arc::make_mut(&mut s.config).insert("limit.add.cluster_qps".into(), "300".into());
        Arc::make_mut(&mut s.config).insert("limit.bad.qps".into(), "-1".into());
        Arc::make_mut(&mut s.config).insert("limit.half.concurrency".into(), "0.5".into());
        Arc::make_mut(&mut s.config).insert("limit.zero.qps".into(), "0".into());
        Arc::make_mut(&mut s.config).insert("limit.word.qps".into(), "ten".into());
        Arc::make_mut(&mut s.config).insert("limit.echo.qsp".into(), "5".into());
        Arc::make_mut(&mut s.config).insert("limit.echo".into(), "5".into());
        let mut bad = BadValues::default();
        Arc::make_mut(&mut s.config).insert("limit.nope.qps".into(), "5".into());
        let knows = |m: &[u8]| m != b"nope";
        let l = from_config(Some(&s), 3, Some(&knows), &mut bad);
        let keys: Vec<&str> = bad.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "limit.bad.qps",
                "limit.echo",
                "limit.echo.qsp",
                "limit.half.concurrency",
                "limit.nope.qps",
                "limit.word.qps",
                "limit.zero.qps"
            ]
        );
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(
            l["echo"],
            Limit {
                qps: Some(1000.0),
                concurrency: Some(8)
            }
        );
        assert_eq!(l["add"].qps, Some(100.0));
        assert!(!l.contains_key("bad"));
        let shares = split(&l["echo"], &[300.0, 100.0]);
        let sum: f64 = shares.iter().map(|s| s.qps.unwrap()).sum();
        assert!((sum - 1000.0).abs() < 1e-6);
        assert!(shares[0].qps > shares[1].qps);
        let idle = split(&l["echo"], &[100.0, 0.0]);
        assert!(idle[1].qps.unwrap() >= 50.0, "an idle core gets its floor");
        let calls = |c, demand: &[f64]| -> Vec<u32> {
            let limit = Limit {
                qps: None,
                concurrency: Some(c),
            };
            split(&limit, demand)
                .iter()
                .map(|s| s.concurrency.unwrap())
                .collect()
        };
        // Whole calls that add up to the process's limit, every core at least one.
        assert_eq!(calls(2, &[100.0, 0.0]), [1, 1]);
        assert_eq!(calls(8, &[100.0, 0.0]), [7, 1]);
        assert_eq!(calls(8, &[0.0, 0.0]), [4, 4]);
        let even = calls(10, &[1.0, 1.0, 1.0]);
        assert!(even.iter().all(|c| (3..=4).contains(c)), "{even:?}");
        for demand in [[5.0, 1.0, 0.0, 3.0], [0.0; 4], [1.0, 1.0, 1.0, 1.0]] {
            for c in 4..40 {
                assert_eq!(
                    calls(c, &demand).iter().sum::<u32>(),
                    c,
                    "{c} over {demand:?}"
                );
            }
        }
        assert_eq!(
            calls(3, &[1.0; 4]),
            [1, 1, 1, 1],
            "below the core count: one each"
        );
        let t0 = Stamp::now();
        let mut b = Bucket::new(t0);
        let admitted = (0..1000)
            .filter(|i| b.take(100.0, t0.after(Duration::from_millis(*i))))
            .count();
        assert!((95..=115).contains(&admitted), "{admitted} in 1 s at 100/s");
    }
}
