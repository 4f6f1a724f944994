//! Apache Thrift's cross-language test with ringsoa on one side.
//!
//! `ringsoa-crosstest server --port P` serves `ThriftTest` (also un-prefixed) and
//! `SecondService` on one port, multiplexed as Apache's `TMultiplexedProcessor`, in
//! every protocol and framing ringsoa detects; the handler answers as Apache's
//! `test/py/TestServer.py` does.
//!
//! `ringsoa-crosstest client --port P --protocol binary|compact --transport
//! buffered|framed|theader|theader-in-frame|ttheader [--zlib] [--multiplex]` calls every method of a ThriftTest server (Apache's
//! `TestServer.py`) through ringsoa's client and the generated stubs, checks each
//! answer as Apache's `TestClient.py` does, prints one line per method and exits 1 if
//! any failed.

mod checks;
mod handler;

mod idl {
    ringsoa::include_idl!();
}

use std::net::SocketAddr;
use std::process::ExitCode;

use ringsoa::protocol::Protocol;
use ringsoa::rpc::Multiplexed;
use ringsoa::server::ServerBuilder;
use ringsoa::transport::header::HeaderKind;
use ringsoa::transport::Framing;

use idl::ThriftTest::{SecondServiceServer, ThriftTestServer};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let port: u16 = match flag("--port").map(str::parse) {
        Some(Ok(p)) => p,
        _ => return usage("--port PORT is required"),
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match args.first().map(String::as_str) {
        Some("server") => serve(addr),
        Some("client") => {
            let protocol = match flag("--protocol").unwrap_or("binary") {
                "binary" => Protocol::Binary,
                "compact" => Protocol::Compact,
                other => return usage(&format!("unknown protocol {other}")),
            };
            let (framing, header, in_frame) = match flag("--transport").unwrap_or("buffered") {
                "buffered" => (Framing::Buffered, None, false),
                "framed" => (Framing::Framed, None, false),
                "theader" => (Framing::Framed, Some(HeaderKind::THeader), false),
                "theader-in-frame" => (Framing::Framed, Some(HeaderKind::THeader), true),
                "ttheader" => (Framing::Framed, Some(HeaderKind::TTHeader), false),
                other => return usage(&format!("unknown transport {other}")),
            };
            let zlib = args.iter().any(|a| a == "--zlib");
            let transport = checks::Transport {
                framing,
                header,
                in_frame,
                zlib,
            };
            let multiplex = args.iter().any(|a| a == "--multiplex");
            checks::run(addr, protocol, transport, multiplex)
        }
        _ => usage("say server or client"),
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!(
        "ringsoa-crosstest: {why}\nusage: ringsoa-crosstest server --port P\n       \
         ringsoa-crosstest client --port P [--protocol binary|compact] \
         [--transport buffered|framed|theader|theader-in-frame|ttheader] [--zlib] [--multiplex]"
    );
    ExitCode::from(2)
}

fn serve(addr: SocketAddr) -> ExitCode {
    let started = ServerBuilder::new("ringsoa-crosstest")
        .listen(addr)
        .cores(1)
        .start(|_| {
            Multiplexed::new(
                ThriftTestServer::new(handler::Tests),
                SecondServiceServer::new(handler::Second),
            )
        });
    let result = started.and_then(|server| {
        println!("ringsoa-crosstest: serving ThriftTest and SecondService on {addr}");
        server.run_until_signal()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringsoa-crosstest: cannot serve on {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}
