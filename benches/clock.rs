//! What timing a call costs: two readings of a clock and the time between them, as
//! the server takes for every call it records. `CLOCK_MONOTONIC` through
//! `clock_gettime` (the vDSO), `std::time::Instant`, and quanta's calibrated
//! time-stamp counter: as its `Instant` (scaled at every reading) and as ringsoa's
//! call timing reads it (`src/clock.rs`: raw readings, their difference scaled).
//!
//! Run: `cargo bench --bench clock`. Results and method: `perf/RESULTS.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

/// `CLOCK_MONOTONIC` in nanoseconds.
fn monotonic() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn timing(c: &mut Criterion) {
    let _ = quanta::Instant::now(); // calibrated before measuring
    let clock = quanta::Clock::new();
    let mut g = c.benchmark_group("two readings");
    g.bench_function("clock_gettime", |b| {
        b.iter(|| {
            let t0 = black_box(monotonic());
            Duration::from_nanos(monotonic().saturating_sub(t0))
        })
    });
    g.bench_function("std Instant", |b| {
        b.iter(|| black_box(std::time::Instant::now()).elapsed())
    });
    g.bench_function("quanta Instant", |b| {
        b.iter(|| black_box(quanta::Instant::now()).elapsed())
    });
    g.bench_function("quanta raw (ringsoa)", |b| {
        b.iter(|| clock.delta(black_box(clock.raw()), clock.raw()))
    });
    g.finish();
}

criterion_group!(benches, timing);
criterion_main!(benches);
