//! The log output that never makes a core wait (`ringsoa::logs::non_blocking`),
//! against an output that takes nothing for a while. In a test binary of its own:
//! the note of dropped lines is logged from the writer thread, so through the
//! global subscriber, which this test sets.

use std::io::{self, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// An output that takes nothing until told to, then keeps what it is given.
struct Gate {
    open: mpsc::Receiver<()>,
    opened: bool,
    got: Arc<Mutex<Vec<u8>>>,
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.opened {
            let _ = self.open.recv();
            self.opened = true;
        }
        self.got.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stalled_output_blocks_no_logger_and_the_lines_it_lost_are_told() {
    let (open, gate) = mpsc::channel();
    let got = Arc::new(Mutex::new(Vec::new()));
    let out = Gate {
        open: gate,
        opened: false,
        got: got.clone(),
    };
    let (writer, guard) = ringsoa::logs::non_blocking(out, "the test output");
    let counter = writer.error_counter();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .finish(),
    )
    .unwrap();
    // Far more than the queue holds, while the output takes nothing: a blocking
    // writer would hang here for good.
    let written = 200_000;
    for i in 0..written {
        tracing::info!(i, "line");
    }
    let dropped = counter.dropped_lines();
    assert!(dropped > 0, "nothing dropped");
    open.send(()).unwrap();
    let note = format!("WARN ringsoa::logs: log lines dropped: the test output was not read fast enough (a pipe nobody reads, a stalled log shipper, a slow disk); the cores never wait for it lost={dropped}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        if text.contains(&note) {
            break text;
        }
        assert!(Instant::now() < deadline, "no note of {dropped} lines lost");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(text.contains(" i=0\n"), "the first lines are kept");
    // Every line is either written or counted, and the note comes once.
    assert_eq!(text.lines().count() - 1 + dropped, written);
    assert_eq!(text.matches("log lines dropped").count(), 1);

    // An output that refuses lines (a full disk): they are lost, with one WARN.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let (writer, full_guard) = ringsoa::logs::non_blocking(full, "/dev/full");
    let local = tracing_subscriber::fmt().with_writer(writer).finish();
    tracing::subscriber::with_default(local, || {
        for i in 0..100 {
            tracing::info!(i, "refused");
        }
    });
    drop(full_guard);
    let warned = || {
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|l| l.contains("cannot write the log to /dev/full: No space left on device"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while warned() == 0 {
        assert!(Instant::now() < deadline, "no WARN of the refused lines");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(warned(), 1, "one WARN for 100 refused lines");

    // An event is one line: a line break in its text (a panic message quoting
    // what a client sent) is written as `\n`, so it cannot forge a line.
    tracing::error!(
        "handler panicked: bad input {}",
        "x\n2026-12-03T00:00:00.000000Z  INFO forged"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        if text.contains("bad input") {
            break text;
        }
        assert!(Instant::now() < deadline, "the panic line never came");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        text.lines().any(|l| l
            .ends_with("handler panicked: bad input x\\n2026-12-03T00:00:00.000000Z  INFO forged")),
        "{}",
        &text[text.len().saturating_sub(500)..]
    );
    assert!(!text.lines().any(|l| l.starts_with("2026-12-03T00:00:00")));
    drop(guard);
}
