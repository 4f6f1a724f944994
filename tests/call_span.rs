//! The `debug` span `call` a handler runs in: with a subscriber that wants it, an
//! event inside the handler carries the call's method, caller and core. In a test
//! binary of its own: it sets the global subscriber.

mod idl {
    ringsoa::include_idl!();
}
mod support;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use idl::shared::{BaseHandler, BaseHelloArgs, BaseServer};
use ringsoa::rpc::{CallContext, MethodError};
use ringsoa::server::ServerBuilder;

/// Keeps every line written.
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<Vec<u8>>>);

impl Write for Kept {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Greeter;

impl BaseHandler for Greeter {
    async fn hello(&self, _cx: &mut CallContext, who: String) -> Result<String, MethodError> {
        tracing::info!("inside the handler");
        Ok(who)
    }
}

#[test]
fn an_event_in_a_handler_carries_the_calls_span() {
    let kept = Kept::default();
    let out = kept.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || out.clone())
            .with_ansi(false)
            .finish(),
    )
    .unwrap();
    let port = support::process::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = ServerBuilder::new("span")
        .listen(addr)
        .cores(1)
        .start(|_| BaseServer::new(Greeter))
        .unwrap();
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    let args = BaseHelloArgs {
        who: Some("x".into()),
    };
    support::wire::call_raw(&mut s, "hello", 1, &args).unwrap();
    server.shutdown();
    server.join();
    let text = String::from_utf8(kept.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("inside the handler"))
        .unwrap_or_else(|| panic!("no handler line in:\n{text}"));
    assert!(
        line.contains("call{") && line.contains("method=\"hello\"") && line.contains("core=0"),
        "the handler's line lacks the call's span: {line}"
    );
}
