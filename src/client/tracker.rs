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

enum Made {
    /// A child of the context's chain: its rpc id (the request id is the context's).
    Child(String),
    /// A new top-level chain: its request id and root rpc id, written out at each
    /// header into buffers of their own (no allocation, no UTF-8 check).
    Root {
        request_id: uuid::Uuid,
        seq: u64,
        id_text: [u8; uuid::fmt::Hyphenated::LENGTH],
        seq_text: itoa::Buffer,
    },
}

impl<'a> Tracker<'a> {
    pub fn new(cx: Option<&'a mut CallContext>, root_calls: &'a Cell<u64>) -> Self {
        Tracker {
            cx,
            root_calls,
            made: None,
        }
    }

    /// Whether the call has a context (which takes the reply's meta).
    pub fn has_context(&self) -> bool {
        self.cx.is_some()
    }

    /// The header's fields with this attempt's remaining budget.
    pub fn header(&mut self, budget_ms: Option<u64>) -> OutgoingHeader<'_> {
        if self.made.is_none() {
            self.made = Some(self.make());
        }
        let cx = self.cx.as_deref();
        let (request_id, seq) = match self.made.as_mut().expect("made above") {
            Made::Child(seq) => (cx.map_or("", |cx| cx.request_id.as_str()), &**seq),
            Made::Root {
                request_id,
                seq,
                id_text,
                seq_text,
            } => (
                &*request_id.hyphenated().encode_lower(id_text),
                seq_text.format(*seq),
            ),
        };
        OutgoingHeader {
            request_id: Some(request_id),
            seq: Some(seq),
            meta: Some(cx.map_or(&EMPTY, |cx| &cx.meta)),
            budget_ms,
        }
    }

    fn make(&mut self) -> Made {
        match self.cx.as_deref_mut() {
            Some(cx) if cx.has_chain() => Made::Child(cx.next_child_seq()),
            _ => {
                let n = self.root_calls.get() + 1;
                self.root_calls.set(n);
                // A uuid4 from the core's own generator: no getrandom syscall per call.
                let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes());
                Made::Root {
                    request_id: id.into_uuid(),
                    seq: n,
                    id_text: [0; uuid::fmt::Hyphenated::LENGTH],
                    seq_text: itoa::Buffer::new(),
                }
            }
        }
    }
}

static EMPTY: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
