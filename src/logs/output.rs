//! Log output that never makes a core wait: each line goes to a writer thread
//! through a bounded queue (tracing-appender's non-blocking writer, lossy). When the
//! output's reader falls behind (a pipe nobody reads, a stalled log shipper, a slow
//! disk) and the queue is full, lines are dropped and counted, and once the output
//! takes lines again a WARN says how many were lost. A line the output refuses (a
//! full disk, a closed pipe) is lost too, with a WARN at most every 10 s. Each
//! event is one line: a line break inside it is written as `\n` (or `\r`), so that
//! text a client chose (a caller id, a request id) cannot forge log lines.

use std::io::{self, Write};
use std::sync::{Arc, OnceLock};

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder};

use super::throttle::{warn_throttled, Throttle};

pub use tracing_appender::non_blocking::WorkerGuard;

/// A non-blocking writer to `out` (named `what` in the WARN about dropped lines),
/// for `tracing_subscriber::fmt::layer().with_writer(..)`, and the guard that
/// flushes what is queued (waiting about a second at most) when dropped: keep it
/// until the process ends.
pub fn non_blocking<W: Write + Send + 'static>(out: W, what: &str) -> (NonBlocking, WorkerGuard) {
    let counter = Arc::new(OnceLock::new());
    let out = Noting {
        out,
        counter: counter.clone(),
        noted: 0,
        what: what.to_string(),
        failing: Throttle::default(),
    };
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("ringsoa-log")
        .finish(out);
    let _ = counter.set(writer.error_counter());
    (writer, guard)
}

/// The writer thread's end: before a line, notes the lines dropped since the last
/// note; notes the lines the output refuses.
struct Noting<W> {
    out: W,
    counter: Arc<OnceLock<ErrorCounter>>,
    noted: usize,
    what: String,
    failing: Throttle,
}

impl<W: Write> Write for Noting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let dropped = self.counter.get().map_or(0, ErrorCounter::dropped_lines);
        if dropped > self.noted {
            // Logged, not written here: it takes the output's format and routes. The
            // queue has room now, as this thread is emptying it.
            tracing::warn!(
                target: "ringsoa::logs",
                lost = dropped - self.noted,
                "log lines dropped: {} was not read fast enough (a pipe nobody reads, a stalled log shipper, a slow disk); the cores never wait for it",
                self.what
            );
            self.noted = dropped;
        }
        let written = match one_line(buf) {
            // The whole event, escaped, stands for the bytes given.
            Some(escaped) => self.out.write_all(&escaped).map(|()| buf.len()),
            None => self.out.write(buf),
        };
        match &written {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => warn_throttled!(
                self.failing,
                "cannot write the log to {}: {e}; its lines are lost until it can",
                self.what
            ),
            _ => {}
        }
        written
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `event` with each line break before its end escaped (`\n`, `\r`), when it has
/// any: the event is then one line.
fn one_line(event: &[u8]) -> Option<Vec<u8>> {
    let body = event.strip_suffix(b"\n").unwrap_or(event);
    if !body.iter().any(|&b| b == b'\n' || b == b'\r') {
        return None;
    }
    let mut out = Vec::with_capacity(event.len() + 16);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b => out.push(b),
        }
    }
    out.extend_from_slice(&event[body.len()..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn an_event_is_one_line() {
        assert_eq!(one_line(b"plain\n"), None);
        assert_eq!(one_line(b"no end"), None);
        assert_eq!(
            one_line(b"caller=x\n2026 ERROR forged\r\n").as_deref(),
            Some(&b"caller=x\\n2026 ERROR forged\\r\n"[..])
        );
        assert_eq!(one_line(b"a\nb").as_deref(), Some(&b"a\\nb"[..]));
    }
}
