//! The Apache `thrift` crate's threaded server (`TServer`, one thread per
//! connection) serving `Demo.ping` and `Demo.echo` over framed strict binary, with a
//! processor written the way `thrift --gen rs` writes one (no compiler here).

use thrift::protocol::{
    TBinaryInputProtocolFactory, TBinaryOutputProtocolFactory, TFieldIdentifier, TInputProtocol,
    TMessageIdentifier, TMessageType, TOutputProtocol, TStructIdentifier, TType,
};
use thrift::server::{TProcessor, TServer};
use thrift::transport::{TFramedReadTransportFactory, TFramedWriteTransportFactory};
use thrift::{ApplicationError, ApplicationErrorKind};

struct Demo;

fn read_echo_args(i: &mut dyn TInputProtocol) -> thrift::Result<String> {
    let mut msg = String::new();
    i.read_struct_begin()?;
    loop {
        let f = i.read_field_begin()?;
        if f.field_type == TType::Stop {
            break;
        }
        if f.id == Some(1) && f.field_type == TType::String {
            msg = i.read_string()?;
        } else {
            i.skip(f.field_type)?;
        }
        i.read_field_end()?;
    }
    i.read_struct_end()?;
    Ok(msg)
}

impl TProcessor for Demo {
    fn process(
        &self,
        i: &mut dyn TInputProtocol,
        o: &mut dyn TOutputProtocol,
    ) -> thrift::Result<()> {
        let call = i.read_message_begin()?;
        let reply = TMessageIdentifier::new(&call.name, TMessageType::Reply, call.sequence_number);
        match call.name.as_str() {
            "ping" => {
                i.skip(TType::Struct)?;
                i.read_message_end()?;
                o.write_message_begin(&reply)?;
                o.write_struct_begin(&TStructIdentifier::new("ping_result"))?;
            }
            "echo" => {
                let msg = read_echo_args(i)?;
                i.read_message_end()?;
                o.write_message_begin(&reply)?;
                o.write_struct_begin(&TStructIdentifier::new("echo_result"))?;
                o.write_field_begin(&TFieldIdentifier::new("success", TType::String, 0))?;
                o.write_string(&msg)?;
                o.write_field_end()?;
            }
            other => {
                i.skip(TType::Struct)?;
                i.read_message_end()?;
                let e = ApplicationError::new(ApplicationErrorKind::UnknownMethod, other);
                let exc =
                    TMessageIdentifier::new(other, TMessageType::Exception, call.sequence_number);
                o.write_message_begin(&exc)?;
                thrift::Error::write_application_error_to_out_protocol(&e, o)?;
                o.write_message_end()?;
                return o.flush();
            }
        }
        o.write_field_stop()?;
        o.write_struct_end()?;
        o.write_message_end()?;
        o.flush()
    }
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9191".into());
    let mut server = TServer::new(
        TFramedReadTransportFactory::new(),
        TBinaryInputProtocolFactory::new(),
        TFramedWriteTransportFactory::new(),
        TBinaryOutputProtocolFactory::new(),
        Demo,
        // One worker per connection: room for the 128-connection cells.
        256,
    );
    if let Err(e) = server.listen(&addr) {
        eprintln!("thrift-demo: {e}");
        std::process::exit(1);
    }
}
