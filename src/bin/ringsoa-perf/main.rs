//! `ringsoa-perf`: load generation and the raw limit server for ringsoa's benchmarks.
//!
//! - `ringsoa-perf load`: closed-loop load of `Demo.echo`, N calls at a time, either
//!   raw (pre-encoded framed strict binary over N connections, every reply checked
//!   byte for byte) or full stack (through ringsoa's client); hdrhistogram latencies,
//!   the load generator's own CPU time per call and, given the server's PID, the
//!   server's from `/proc/<pid>/stat` over the measured window. JSON on stdout.
//! - `ringsoa-perf echo-server`: the limit: a raw monoio echo server that answers
//!   each framed `echo` call with exactly the bytes ringsoa answers it with, and does
//!   nothing else.
//!
//! Open-loop load, plots and peers come with the perf harness work.

mod idl {
    ringsoa::include_idl!();
}

mod cpu;
mod echo_server;
mod load;

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
    /// Closed-loop echo load against a server.
    Load(load::Args),
    /// The raw monoio echo server (the limit).
    EchoServer(echo_server::Args),
}

fn main() -> std::io::Result<()> {
    match Cli::parse().command {
        Command::Load(a) => load::run(a),
        Command::EchoServer(a) => echo_server::run(a),
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
