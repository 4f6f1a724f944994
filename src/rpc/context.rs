//! The per-call context: an explicit value, never a task-local patched in behind the
//! handler's back (the seed's `threading.local` leaked between greenlets).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use crate::tracking::{DRAINING_META, TIMEOUT_META};

/// What a handler knows about the call it serves, and what it hands to downstream
/// calls so that they carry the same request id and a derived rpc id.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The caller's app_id from the tracking handshake ("" for native callers),
    /// shared with the connection (no copy per call).
    pub caller: std::sync::Arc<str>,
    /// The request id shared by every call of one request chain.
    pub request_id: String,
    /// The rpc id of this call: "1", "1.2", "1.2.1", …
    pub seq: String,
    /// Request meta from the tracking header.
    pub meta: BTreeMap<String, String>,
    /// Negotiated tracking version on the connection: 0 native, 1 or 2.
    pub version: i32,
    /// Index of the core serving the call.
    pub core: usize,
    /// When the caller stops waiting, if known.
    pub deadline: Option<Instant>,
    /// Meta to send back in the version-2 response header.
    pub response_meta: BTreeMap<String, String>,
    /// The response-header meta of the last downstream call made with this context
    /// (empty when the server sent none).
    pub reply_meta: BTreeMap<String, String>,
    /// Downstream calls made so far while serving this call: the last `i` of
    /// `seq.i` (settable, like thriftpy2's `TrackerBase.counter`).
    pub calls_made: u32,
}

impl CallContext {
    /// Whether a downstream call made with this context continues its chain (it
    /// has a request id or an rpc id), rather than starting a root call.
    pub fn has_chain(&self) -> bool {
        !self.request_id.is_empty() || !self.seq.is_empty()
    }

    /// The rpc id for the next downstream call: `seq.i` with `i` counting from 1.
    pub fn next_child_seq(&mut self) -> String {
        self.calls_made += 1;
        if self.seq.is_empty() {
            self.calls_made.to_string()
        } else {
            format!("{}.{}", self.seq, self.calls_made)
        }
    }

    /// Makes a served connection's context fresh for its next call, keeping what
    /// it has allocated: the caller (shared with the connection) is swapped only if
    /// the last call changed it, the strings keep their capacity, and maps emptied by
    /// the last call cost nothing to clear again.
    pub(crate) fn reset(&mut self, caller: &std::sync::Arc<str>, version: i32, core: usize) {
        // Every field by name: a new field does not compile until it is reset here.
        let CallContext {
            caller: my_caller,
            request_id,
            seq,
            meta,
            version: my_version,
            core: my_core,
            deadline,
            response_meta,
            reply_meta,
            calls_made,
        } = self;
        if !std::sync::Arc::ptr_eq(my_caller, caller) {
            *my_caller = caller.clone();
        }
        request_id.clear();
        seq.clear();
        for map in [meta, response_meta, reply_meta] {
            if !map.is_empty() {
                map.clear();
            }
        }
        *my_version = version;
        *my_core = core;
        *deadline = None;
        *calls_made = 0;
    }

    /// The time budget the caller sent in [`TIMEOUT_META`], if any and well formed
    /// (at most a year).
    pub fn sent_budget(&self) -> Option<Duration> {
        let ms = self.meta.get(TIMEOUT_META)?.parse::<u64>().ok()?;
        // A caller may send any number: more than a year is a year.
        Some(Duration::from_millis(ms).min(crate::deadline::MAX_WAIT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_seqs_extend_the_parent_chain() {
        let mut cx = CallContext {
            seq: "1.2".into(),
            ..Default::default()
        };
        assert_eq!(cx.next_child_seq(), "1.2.1");
        assert_eq!(cx.next_child_seq(), "1.2.2");
        let mut root = CallContext::default();
        assert_eq!(root.next_child_seq(), "1");
        assert_eq!(root.next_child_seq(), "2");
    }

    #[test]
    fn a_reset_context_keeps_nothing_of_the_last_call() {
        let caller: std::sync::Arc<str> = "app".into();
        let mut cx = CallContext {
            caller: "other".into(),
            request_id: "r".into(),
            seq: "1.2".into(),
            version: 2,
            core: 3,
            deadline: Some(Instant::now()),
            calls_made: 4,
            ..Default::default()
        };
        for map in [&mut cx.meta, &mut cx.response_meta, &mut cx.reply_meta] {
            map.insert("k".into(), "v".into());
        }
        cx.reset(&caller, 1, 0);
        assert!(std::sync::Arc::ptr_eq(&cx.caller, &caller));
        let fresh = CallContext {
            caller: caller.clone(),
            version: 1,
            ..Default::default()
        };
        assert_eq!(format!("{cx:?}"), format!("{fresh:?}"));
    }

    #[test]
    fn a_sent_budget_is_read_from_meta() {
        let mut cx = CallContext::default();
        assert_eq!(cx.sent_budget(), None);
        cx.meta.insert(TIMEOUT_META.into(), "250".into());
        assert_eq!(cx.sent_budget(), Some(Duration::from_millis(250)));
        cx.meta.insert(TIMEOUT_META.into(), "-1".into());
        assert_eq!(cx.sent_budget(), None, "malformed budgets are ignored");
    }
}
