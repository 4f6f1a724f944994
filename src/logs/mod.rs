//! Log routing: events of a target (a prefix of it) at a level or above also go to
//! a file of their own, as the seed stack's rsyslog rules did by logger name. The
//! routes come from config key `log.routes`, a JSON list —
//! `[{"target": "ringsoa::access", "level": "info", "file": "/var/log/app/access.log"}]`
//! — and can change while the process runs ([`Router::set`]).
//!
//! Also: `output`, a writer that never makes a core wait for the log's reader;
//! `throttle`, warnings that would repeat for every call or connection logged once
//! per interval with a count of the rest; and `sparse`, the same for a
//! dependency's lines, as a filter.

mod output;
mod router;
mod sparse;
pub(crate) mod throttle;

pub use output::{non_blocking, WorkerGuard};
pub use router::{RouteLayer, RouteSpec, Router};
pub use sparse::Sparse;

use std::borrow::Cow;

/// `text` with its control characters written as escapes (`\n`, `\r`, `\t`,
/// `\u{1b}`, …), for printing text that came off the wire (a server's exception
/// message, a name it sent) as one line a terminal shows as it is: a peer can then
/// neither break the line nor send the terminal escape sequences.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(
            escape_controls("plain, ünïcode ✓"),
            std::borrow::Cow::Borrowed("plain, ünïcode ✓")
        ));
        assert_eq!(
            escape_controls("evil\nsecond \u{1b}[31mred\r\tdone\u{7f}"),
            "evil\\nsecond \\u{1b}[31mred\\r\\tdone\\u{7f}"
        );
    }
}
