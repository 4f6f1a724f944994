//! [`Ignored`]: nodes left out of the mirror, logged a few lines at a time. A
//! folder may hold thousands of nodes some other tool wrote in its own format, and
//! a line each would bury everything else in the log (60,000 lines for one read of
//! such a folder before this was gathered).

use std::fmt;

/// Why a node was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Its value is not UTF-8.
    NotUtf8,
    /// A provider node that is not valid JSON with a host and port (the parser's
    /// error).
    NotProvider(String),
    /// A switch that is not one (why not).
    NotSwitch(String),
    /// A node below a key, switch or provider: keys do not nest.
    Nested,
    /// A node whose ACL refuses this session reading it (why, credentials named).
    Unreadable(String),
}

impl Why {
    const KINDS: usize = 5;

    fn kind(&self) -> usize {
        match self {
            Why::NotUtf8 => 0,
            Why::NotProvider(_) => 1,
            Why::NotSwitch(_) => 2,
            Why::Nested => 3,
            Why::Unreadable(_) => 4,
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::NotUtf8 => f.write_str("value is not UTF-8: ignored"),
            Why::NotProvider(e) => write!(
                f,
                "provider node is not valid JSON {{\"host\",\"port\",…}}: ignored ({e})"
            ),
            Why::NotSwitch(e) => write!(f, "{e}: ignored"),
            Why::Nested => f.write_str("nested node not read: only the nodes directly in a folder are keys, switches or providers (a value is the node's data)"),
            Why::Unreadable(e) => write!(f, "{e}: left out (the other nodes of its folder are read)"),
        }
    }
}

/// The first of a run of like things, and how many there were: what a line that
/// stands for many of them names and counts.
#[derive(Debug, Clone)]
pub struct Tally<T> {
    /// The first one noted.
    pub first: T,
    /// How many were noted, the first included.
    pub count: usize,
}

impl<T> Tally<T> {
    /// Notes `item` in `tally`: kept if it is the first, else counted.
    pub fn note(tally: &mut Option<Tally<T>>, item: T) {
        match tally {
            Some(t) => t.count += 1,
            None => {
                *tally = Some(Tally {
                    first: item,
                    count: 1,
                })
            }
        }
    }
}

/// The nodes left out since the last [`Ignored::log`]: each is logged at debug
/// level as it is noted, and `log` gives, for each reason, one warning that names
/// the first such node and counts the rest.
#[derive(Debug, Clone, Default)]
pub struct Ignored {
    /// Per reason: the first node (its path) and how many there were.
    kinds: [Option<Tally<(String, Why)>>; Why::KINDS],
}

impl Ignored {
    /// Notes the node at `path`, left out for `why`.
    pub fn note(&mut self, path: String, why: Why) {
        tracing::debug!(%path, "{why}");
        Tally::note(&mut self.kinds[why.kind()], (path, why));
    }

    /// Logs what was noted, at most one warning per reason (`within`: where the
    /// nodes were read, for the count), and starts again; how many were noted.
    pub fn log(&mut self, within: &str) -> usize {
        let mut total = 0;
        for Tally {
            first: (path, why),
            count,
        } in self.kinds.iter_mut().filter_map(Option::take)
        {
            total += count;
            match count - 1 {
                0 => tracing::warn!(%path, "{why}"),
                more => tracing::warn!(
                    %path,
                    more,
                    "{why}; {more} more nodes of {within} left out for the same reason (each logged at debug level)"
                ),
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_keeps_its_first_node_and_counts_the_rest() {
        let mut ignored = Ignored::default();
        for i in 0..1000 {
            ignored.note(format!("/f/bad{i}"), Why::NotProvider(format!("error {i}")));
        }
        ignored.note("/f/x".into(), Why::NotUtf8);
        ignored.note("/f/y/…".into(), Why::Nested);
        let kept: Vec<_> = ignored
            .kinds
            .iter()
            .flatten()
            .map(|t| (t.first.0.clone(), t.first.1.clone(), t.count))
            .collect();
        assert_eq!(
            kept,
            [
                ("/f/x".into(), Why::NotUtf8, 1),
                ("/f/bad0".into(), Why::NotProvider("error 0".into()), 1000),
                ("/f/y/…".into(), Why::Nested, 1),
            ]
        );
        assert_eq!(ignored.log("/f"), 1002);
        assert_eq!(ignored.log("/f"), 0, "logging starts again");
    }
}
