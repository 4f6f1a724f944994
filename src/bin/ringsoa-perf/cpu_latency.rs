//! `ringsoa-perf cpu-latency`: the round trip of one cache line between two CPUs.
//!
//! On a virtual machine the host decides which physical cores the virtual CPUs run
//! on, and may move them: two virtual CPUs on one core complex pass a cache line
//! back and forth several times faster than two on different ones. Every byte of a
//! loopback benchmark crosses between the server's CPU and the load's, so a run's
//! CPU per call follows this figure; the perf scripts record it beside each run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;

/// Flags of `cpu-latency`.
#[derive(Parser, Debug)]
pub struct Args {
    /// The first CPU.
    #[arg(long, default_value_t = 0)]
    a: usize,
    /// The second CPU.
    #[arg(long, default_value_t = 1)]
    b: usize,
    /// Round trips to time.
    #[arg(long, default_value_t = 200_000)]
    trips: u64,
}

/// Prints the mean round trip in nanoseconds.
pub fn run(args: Args) -> std::io::Result<()> {
    if args.a == args.b {
        // Two spinning threads on one CPU pass the line once per time slice.
        return Err(std::io::Error::other(format!(
            "cpu-latency: --a and --b must be two different CPUs (both are {})",
            args.a
        )));
    }
    println!("{:.0}", round_trip_ns(&args));
    Ok(())
}

/// One thread on each CPU; each waits for the other's count and answers with the
/// next (a cache line goes there and back per trip).
fn round_trip_ns(args: &Args) -> f64 {
    let line = Arc::new(AtomicU64::new(0));
    let trips = args.trips;
    let other = {
        let line = line.clone();
        let cpu = args.b;
        std::thread::spawn(move || {
            super::pin(Some(cpu));
            for i in 0..trips {
                while line.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                line.store(2 * i + 2, Ordering::Release);
            }
        })
    };
    super::pin(Some(args.a));
    let start = Instant::now();
    for i in 0..trips {
        line.store(2 * i + 1, Ordering::Release);
        while line.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
        }
    }
    let elapsed = start.elapsed();
    other.join().expect("the other thread only spins");
    elapsed.as_nanos() as f64 / trips.max(1) as f64
}
