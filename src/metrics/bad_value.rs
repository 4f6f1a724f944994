//! Control config values left out, and why: each parser of `acl.*`, `limit.*`,
//! `breaker.*` (config and switches) and `metrics.key_idle_ms` notes what it
//! refuses (the key then counts as absent), and the aggregator logs each one once
//! while it stays.

use std::collections::BTreeSet;

/// The longest part of a value a log line shows.
const SHOWN: usize = 100;

/// Values left out that one parse logs at WARN; the rest at debug, counted in one
/// more WARN (a bulk import of thousands of bad keys is a few lines, not thousands).
const LOGGED: usize = 20;

/// One value left out: its key, the value (cut to 100 characters), why, and what
/// is in force instead.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BadValue {
    /// The config or switch key.
    pub key: String,
    /// The value, cut short.
    pub value: String,
    /// Why it is left out.
    pub why: String,
    /// What is in force instead.
    pub then: &'static str,
}

/// `value` as a log line shows it: cut to [`SHOWN`] characters.
fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}…", &value[..at]),
        None => value.to_string(),
    }
}

impl BadValue {
    /// Whether it is `value` (as shown).
    pub fn is(&self, value: &str) -> bool {
        self.value == shown(value)
    }
}

/// Whether `method` is none of the service's methods (`knows`; every name is one
/// when it is not given).
pub fn unknown(knows: super::Knows<'_>, method: &str) -> bool {
    knows.is_some_and(|knows| !knows(method.as_bytes()))
}

/// The values a parse left out.
#[derive(Debug, Default)]
pub struct BadValues(BTreeSet<BadValue>);

impl BadValues {
    /// Notes `key = value` as left out, for `why`, `then` being in force.
    pub fn note(&mut self, key: &str, value: &str, why: impl Into<String>, then: &'static str) {
        self.0.insert(BadValue {
            key: key.to_string(),
            value: shown(value),
            why: why.into(),
            then,
        });
    }

    /// Says `then` is in force instead of each value left out whose key is in
    /// `keys`.
    pub fn say_then(&mut self, keys: &[String], then: &'static str) {
        let all = std::mem::take(&mut self.0).into_iter();
        self.0 = all
            .map(|b| {
                if keys.contains(&b.key) {
                    BadValue { then, ..b }
                } else {
                    b
                }
            })
            .collect();
    }

    /// The values left out, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &BadValue> {
        self.0.iter()
    }

    /// The first value left out, in key order.
    pub fn into_first(self) -> Option<BadValue> {
        self.0.into_iter().next()
    }

    /// Logs the values not in `before` (what was logged at the last parse), the
    /// first 20 at WARN and the rest at debug with a count; a value is
    /// logged again only after it was mended and came back.
    pub fn log_new(&self, before: &BadValues) {
        let mut more = 0;
        for (i, b) in self.0.difference(&before.0).enumerate() {
            if i < LOGGED {
                tracing::warn!(key = %b.key, value = ?b.value, "config value left out: {}: {}", b.why, b.then);
            } else {
                more += 1;
                tracing::debug!(key = %b.key, value = ?b.value, "config value left out: {}: {}", b.why, b.then);
            }
        }
        if more > 0 {
            tracing::warn!(
                more,
                "{more} more config values left out (each logged at debug level)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_and_each_is_kept_once() {
        let mut bad = BadValues::default();
        bad.note("k", &"é".repeat(150), "why", "then");
        bad.note("k", &"é".repeat(150), "why", "then");
        let all: Vec<_> = bad.iter().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].value.chars().count(), SHOWN + 1);
        assert!(all[0].value.ends_with('…'));
    }
}
