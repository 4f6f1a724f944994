//! A core's call latencies between two flushes, counted in the very buckets of
//! [`histogram`](super::recorder::histogram) (1 µs to 1 hour, 2 significant
//! digits): a shift and an add a call where `Histogram::record` runs about 70
//! instructions (its range checks, its minimum and maximum, its total). At the
//! flush only the counters in use go to the aggregator ([`LatencyCounts`], 16 bytes
//! each, where a histogram is 26 KiB), which adds them to its histograms bucket for
//! bucket, the same as if each call had been recorded there.

use hdrhistogram::Histogram;

/// Sub-buckets in half a bucket (2 significant digits: 256 sub-buckets, of which
/// every bucket after the first uses the upper half).
const HALF_BITS: u32 = 7;
const HALF: u64 = 1 << HALF_BITS;
/// `64 - log2(256)`: a value's bucket is this less the leading zeros of the value
/// with its lowest 8 bits set.
const ZEROS_BASE: u32 = 56;
/// Counters in [`histogram`](super::recorder::histogram): 26 halves of 128.
const COUNTERS: usize = 26 << HALF_BITS;

/// Latencies (µs) counted by bucket.
pub(super) struct Latencies {
    counts: Box<[u64]>,
}

impl Latencies {
    /// No latencies.
    pub fn new() -> Self {
        Latencies {
            counts: vec![0; COUNTERS].into_boxed_slice(),
        }
    }

    /// Counts one latency of `us` microseconds; one over the histogram's bound
    /// (an hour) is left out, as the histogram leaves it out.
    #[inline]
    pub fn record(&mut self, us: u64) {
        if let Some(c) = self.counts.get_mut(index(us)) {
            *c += 1;
        }
    }

    /// Moves the counters in use out, leaving none here.
    pub fn drain(&mut self) -> LatencyCounts {
        let used = self.counts.iter_mut().enumerate().filter(|(_, c)| **c != 0);
        LatencyCounts(used.map(|(i, c)| (i as u16, std::mem::take(c))).collect())
    }
}

/// Latencies handed on at a flush: the counters in use, by their place in
/// [`histogram`](super::recorder::histogram).
#[derive(Debug, Clone, Default)]
pub struct LatencyCounts(Vec<(u16, u64)>);

impl LatencyCounts {
    /// Adds them to `h`, a [`histogram`](super::recorder::histogram).
    pub fn add_to(&self, h: &mut Histogram<u64>) {
        for &(i, n) in &self.0 {
            // Each counter's lowest value lands in the histogram's same counter.
            let _ = h.record_n(lowest(i.into()), n);
        }
    }
}

/// The counter of `v`: hdrhistogram's `counts_index` for a lowest discernible
/// value of 1 and 2 significant digits.
#[inline]
fn index(v: u64) -> usize {
    let bucket = ZEROS_BASE - (v | (2 * HALF - 1)).leading_zeros();
    let sub = v >> bucket;
    (((bucket as u64 + 1) << HALF_BITS) + sub - HALF) as usize
}

/// The lowest value counted in counter `i`.
fn lowest(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * HALF {
        return i;
    }
    let bucket = (i >> HALF_BITS) - 1;
    (i - (bucket << HALF_BITS)) << bucket
}

#[cfg(test)]
mod tests {
    use super::super::recorder::histogram;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn as_many_counters_as_the_histogram() {
        assert_eq!(histogram().distinct_values(), COUNTERS);
        for i in 0..COUNTERS {
            assert_eq!(index(lowest(i)), i, "counter {i}");
        }
    }

    proptest! {
        /// Latencies spread over every magnitude, past the hour and up to 2^63.
        #[test]
        fn drained_counts_equal_the_histogram_recorded_directly(
            values in proptest::collection::vec((0u32..64, any::<u64>()), 0..400)
        ) {
            let (mut direct, mut counted) = (histogram(), Latencies::new());
            for (bits, v) in values {
                let us = (v >> bits).max(1);
                let _ = direct.record(us);
                counted.record(us);
            }
            let mut drained = histogram();
            counted.drain().add_to(&mut drained);
            prop_assert!(drained == direct, "{} against {} values", drained.len(), direct.len());
            prop_assert_eq!(drained.max(), direct.max());
            prop_assert_eq!(drained.value_at_quantile(0.99), direct.value_at_quantile(0.99));
            // Drained: nothing is counted twice.
            prop_assert!(counted.drain().0.is_empty());
        }
    }
}
