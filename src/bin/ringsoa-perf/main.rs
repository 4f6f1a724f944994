//! `ringsoa-perf`: load generation and the raw limit server for ringsoa's benchmarks.
//!
//! - `ringsoa-perf load`: load of `Demo.echo`/`Demo.ping` against any Thrift server,
//!   raw (pre-encoded, binary or compact, framed or buffered, every reply checked
//!   byte for byte) or full stack (through ringsoa's client); closed loop (N
//!   connections × pipeline) or open loop at a fixed rate, measured from intended
//!   send times; hdrhistogram percentiles, the load generator's own CPU time per call
//!   and, given the server's PID (or with `--spawn-demo`), the server's from
//!   `/proc/<pid>/stat`; JSON on stdout, optionally an SVG percentile plot.
//! - `ringsoa-perf plot`: one SVG comparing several results.
//! - `ringsoa-perf governance`: ZooKeeper change → every core, and fan-out to many
//!   consumers.
//! - `ringsoa-perf echo-server`: the limit: a raw monoio echo server that answers
//!   each framed `echo` call with exactly the bytes ringsoa answers it with, and does
//!   nothing else.
//! - `ringsoa-perf cpu-latency`: the round trip of a cache line between two CPUs,
//!   which the perf scripts record beside each run (see the module).
//!

mod idl {
    ringsoa::include_idl!();
}

mod cpu;
mod cpu_latency;
mod echo_server;
mod governance;
mod idl_call;
mod load;
mod report;
mod spawn;

use clap::{Parser, Subcommand};

/// Command line.
#[derive(Parser, Debug)]
#[command(version, about = "ringsoa load generator and raw limit server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Load against a Thrift server (closed or open loop, raw or full stack).
    Load(Box<load::Args>),
    /// The raw monoio echo server (the limit).
    EchoServer(echo_server::Args),
    /// How fast ZooKeeper changes reach every core, and every consumer at scale.
    Governance(governance::Args),
    /// A latency-percentile plot comparing several `load` results (JSON files).
    Plot(PlotArgs),
    /// The round trip of a cache line between two CPUs (the machine's state).
    CpuLatency(cpu_latency::Args),
}

/// Flags of `plot`.
#[derive(clap::Args, Debug)]
struct PlotArgs {
    /// Result files, each holding the JSON of `ringsoa-perf load` (one object per
    /// line; every line is plotted).
    #[arg(required = true)]
    results: Vec<std::path::PathBuf>,
    /// The SVG to write.
    #[arg(long, short)]
    out: std::path::PathBuf,
}

fn plot(a: PlotArgs) -> std::io::Result<()> {
    let mut reports = Vec::new();
    for path in &a.results {
        for line in std::fs::read_to_string(path)?
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
            reports.push(report::Report::from_json(v)?);
        }
    }
    report::plot(&reports, &a.out)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringsoa-perf: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run() -> std::io::Result<()> {
    let cli = Cli::parse();
    // Thousands of connections on either side need more than a soft limit of 1,024.
    ringsoa::runtime::raise_open_file_limit();
    match cli.command {
        Command::Load(a) => load::run(*a),
        Command::EchoServer(a) => echo_server::run(a),
        Command::Plot(a) => plot(a),
        Command::Governance(a) => governance::run(a),
        Command::CpuLatency(a) => cpu_latency::run(a),
    }
}

/// Pins the current thread to `cpu` when given.
fn pin(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            eprintln!("ringsoa-perf: could not pin to cpu {cpu}");
        }
    }
}
