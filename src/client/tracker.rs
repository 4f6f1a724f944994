//! The tracking fields of one call, made once (so every attempt of the call carries
//! the same rpc id) and only when a tracked connection needs them: native
//! connections never pay for them.

use std::cell::Cell;

use crate::rpc::CallContext;
use crate::tracking::OutgoingHeader;

/// A call's request id and rpc id: a child of the caller's context, or a new
/// top-level chain (new request id, next root rpc id) carrying the context's meta.
pub(super) struct Tracker<'a> {
    cx: Option<&'a mut CallContext>,
    root_calls: &'a Cell<u64>,
    made: Option<Made>,
}

struct Made {
    seq: String,
    /// A new request id (top-level calls); child calls borrow the context's.
    request_id: Option<[u8; 36]>,
}

impl<'a> Tracker<'a> {
    pub fn new(cx: Option<&'a mut CallContext>, root_calls: &'a Cell<u64>) -> Self {
        Tracker {
            cx,
            root_calls,
            made: None,
        }
    }

    /// The header's fields with this attempt's remaining budget.
    pub fn header(&mut self, budget_ms: Option<u64>) -> OutgoingHeader<'_> {
        if self.made.is_none() {
            self.made = Some(self.make());
        }
        let made = self.made.as_ref().expect("made above");
        let cx = self.cx.as_deref();
        OutgoingHeader {
            request_id: Some(match &made.request_id {
                Some(id) => std::str::from_utf8(id).expect("a hyphenated uuid is ASCII"),
                None => cx.map_or("", |cx| cx.request_id.as_str()),
            }),
            seq: Some(&made.seq),
            meta: Some(cx.map_or(&EMPTY, |cx| &cx.meta)),
            budget_ms,
        }
    }

    fn make(&mut self) -> Made {
        match self.cx.as_deref_mut() {
            Some(cx) if !cx.request_id.is_empty() || !cx.seq.is_empty() => Made {
                seq: cx.next_child_seq(),
                request_id: None,
            },
            _ => {
                let n = self.root_calls.get() + 1;
                self.root_calls.set(n);
                // A uuid4 from the core's own generator: no getrandom syscall per call.
                let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes());
                let mut text = [0u8; 36];
                id.into_uuid().hyphenated().encode_lower(&mut text);
                Made {
                    seq: n.to_string(),
                    request_id: Some(text),
                }
            }
        }
    }
}

static EMPTY: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
