//! Anomaly alerts: for each method, a short history of per-second points (error
//! ratio and p99 latency); a point more than 3 standard deviations from the
//! history's mean is flagged, when the method had enough calls in that second and
//! the history is long enough. A flag stays up until a point is back in bounds.

use std::collections::VecDeque;

use serde::Serialize;

/// Points kept per method and measure.
const HISTORY: usize = 60;
/// Points needed before anything is flagged.
const MIN_HISTORY: usize = 10;
/// Calls a second needs for its error ratio to count.
pub const MIN_CALLS: u64 = 20;
/// Calls a second needs for its p99 to count: with fewer, the 99th percentile is
/// the second's slowest call, and one call the machine slowed (a descheduled
/// thread, a page fault) would flag a steady method.
pub const MIN_CALLS_P99: u64 = 100;

/// What departed from its recent mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The share of calls that failed (timeouts, system and application errors).
    ErrorRatio,
    /// The 99th percentile of latency.
    P99,
}

/// A raised flag.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// What departed.
    pub kind: Kind,
    /// The value that departed.
    pub value: f64,
    /// The history's mean.
    pub mean: f64,
    /// The history's standard deviation (with a floor, see [`Series::observe`]).
    pub stddev: f64,
}

/// One measure's history and flag.
#[derive(Debug, Clone, Default)]
pub struct Series {
    points: VecDeque<f64>,
    flagged: Option<Anomaly>,
}

impl Series {
    /// Adds this second's `value`; returns a new flag when it departs by more than
    /// 3 standard deviations (the deviation is taken as at least `floor` and
    /// `relative` × the mean, so a flat history does not flag noise).
    pub fn observe(
        &mut self,
        kind: Kind,
        value: f64,
        floor: f64,
        relative: f64,
    ) -> Option<Anomaly> {
        let mut raised = None;
        if self.points.len() >= MIN_HISTORY {
            let n = self.points.len() as f64;
            let mean = self.points.iter().sum::<f64>() / n;
            let var = self.points.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / n;
            let stddev = var.sqrt().max(floor).max(relative * mean.abs());
            if (value - mean).abs() > 3.0 * stddev {
                let a = Anomaly {
                    kind,
                    value,
                    mean,
                    stddev,
                };
                if self.flagged.is_none() {
                    raised = Some(a.clone());
                }
                self.flagged = Some(a);
                // A departed point does not join the history it departed from.
                return raised;
            }
            self.flagged = None;
        }
        self.points.push_back(value);
        if self.points.len() > HISTORY {
            self.points.pop_front();
        }
        raised
    }

    /// The flag, while raised.
    pub fn flag(&self) -> Option<&Anomaly> {
        self.flagged.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_flagged_steady_noise_is_not() {
        let mut s = Series::default();
        for i in 0..30 {
            let v = 0.01 + (i % 3) as f64 * 0.002;
            assert_eq!(
                s.observe(Kind::ErrorRatio, v, 0.01, 0.0),
                None,
                "steady point {i}"
            );
        }
        let a = s
            .observe(Kind::ErrorRatio, 0.6, 0.01, 0.0)
            .expect("a burst");
        assert_eq!(a.kind, Kind::ErrorRatio);
        assert!(s.flag().is_some());
        assert_eq!(
            s.observe(Kind::ErrorRatio, 0.7, 0.01, 0.0),
            None,
            "raised once"
        );
        s.observe(Kind::ErrorRatio, 0.012, 0.01, 0.0);
        assert!(s.flag().is_none(), "back in bounds");
    }
}
