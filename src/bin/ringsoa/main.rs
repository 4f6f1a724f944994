//! `ringsoa`: the command-line tool.
//!
//! `ringsoa call` calls any method of any Thrift service from a `.thrift` file parsed
//! at run time, arguments and result as JSON; `ringsoa registry|config|switch` read
//! and write the registry, config and switches (`registry.rs`); `ringsoa idl` checks IDL
//! files and prints the code generated for them (`idl.rs`).

mod idl;
mod new;
mod probe;
mod registry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use ringsoa::client::{Client, ClientConfig, ConnOptions, Node, RetryOptions};
use ringsoa::control::ServiceName;
use ringsoa::dynamic::{self, encode_fields, Reply};
use ringsoa::governance::layout::Kind;
use ringsoa::governance::look_up_all;
use ringsoa::idl::model::{Field, Program, StructKind};
use ringsoa::protocol::{Encode, Protocol, ProtocolWriter, DEFAULT_MAX_DECODED};
use ringsoa::rpc::{CallContext, CallError};
use ringsoa::transport::header::HeaderKind;
use ringsoa::transport::{Framing, DEFAULT_MAX_MESSAGE};
use serde_json::Value as Json;

const JSON_MAPPING: &str = "\
JSON mapping (arguments and results):
  struct, exception   object keyed by field name (null = absent); union: one key
  list, set           array
  map<string, V>      object
  map<K, V>, other K  object keyed by the key's JSON text, e.g. {\"4\": [...]} for map<i32, ...>
  i8 .. i64           integer (i64 exact, never through a float)
  double              number, or \"NaN\", \"Infinity\", \"-Infinity\"
  enum                integer or value name on input; integer on output
  binary              standard base64
  uuid                00112233-4455-6677-8899-aabbccddeeff
  void result         null

Exit status: 0 with the result as JSON on stdout; 1 with a declared exception as
{\"<throws field>\": {...}} on stdout; 2 with a one-line error on stderr (transport,
protocol, application exception, bad IDL or arguments).";

/// Command line.
#[derive(Parser, Debug)]
#[command(version, about = "ringsoa command-line tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Call a method of a Thrift service described by a .thrift file.
    #[command(after_help = JSON_MAPPING)]
    Call(Box<CallArgs>),
    /// Providers in the registry.
    #[command(subcommand)]
    Registry(registry::RegistryCmd),
    /// Config values (app-wide, or a cluster's overrides).
    #[command(subcommand)]
    Config(registry::ValueCmd),
    /// Switches (on, off or JSON; app-wide, or a cluster's overrides).
    #[command(subcommand)]
    Switch(registry::ValueCmd),
    /// Check IDL files, or print the Rust code generated for them.
    #[command(subcommand)]
    Idl(idl::IdlCmd),
    /// Create a service crate from an IDL file: build script, handler stubs, server
    /// main, client example.
    New(new::NewArgs),
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum ProtocolArg {
    Binary,
    Compact,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum TransportArg {
    Buffered,
    Framed,
    /// CloudWeGo's TTHeader (Volo, Kitex), framed.
    Ttheader,
    /// fbthrift's and Apache's THeader, framed.
    Theader,
    /// THeader with each header frame inside a frame of its own, for a server
    /// running Apache's THeaderProtocol over TFramedTransport.
    TheaderInFrame,
}

#[derive(clap::Args, Debug)]
struct CallArgs {
    /// The IDL file that declares the service.
    #[arg(long)]
    idl: PathBuf,
    /// Directories searched for includes (after the including file's own).
    #[arg(long = "include-dir")]
    include_dirs: Vec<PathBuf>,
    /// The server, HOST:PORT (a host name is resolved).
    #[arg(long, required_unless_present = "service", conflicts_with = "service", value_parser = ringsoa::addr::resolve)]
    addr: Option<SocketAddr>,
    /// Call a service found in the registry, APP/CLUSTER (with --zk or --state).
    #[arg(long, requires = "registry")]
    service: Option<ServiceName>,
    /// Where the registry is, for --service.
    #[command(flatten)]
    registry: Option<registry::Source>,
    #[command(flatten)]
    root: registry::Root,
    /// The caller id sent in the tracking handshake.
    #[arg(long, default_value = "ringsoa-cli")]
    app_id: String,
    /// Thrift protocol.
    #[arg(long, value_enum, default_value = "binary")]
    protocol: ProtocolArg,
    /// Thrift transport (a header transport carries the app id, method, timeout and
    /// --meta in its header instead of the tracking handshake).
    #[arg(long, value_enum, default_value = "buffered")]
    transport: TransportArg,
    /// Compress each request with THeader's zlib transform (with --transport theader
    /// or theader-in-frame).
    #[arg(long)]
    zlib: bool,
    /// Request meta sent in the tracking header, KEY=VALUE (repeatable).
    #[arg(long = "meta", value_parser = key_value)]
    meta: Vec<(String, String)>,
    /// A THeader persistent pair, KEY=VALUE (repeatable): sent once, in the
    /// connection's first request, for every call on it (with --transport theader or
    /// theader-in-frame).
    #[arg(long = "persistent-meta", value_parser = key_value)]
    persistent_meta: Vec<(String, String)>,
    /// Connect and call timeout, in milliseconds (at least 1).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
    /// Do not offer the tracking handshake (plain Thrift).
    #[arg(long)]
    no_tracking: bool,
    /// The largest reply read, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGE as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_message: u64,
    /// The most memory the reply's decoded containers may take beyond its bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_DECODED as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_decoded: u64,
    /// Send the method as `SERVICE:method`, for a server hosting several services on
    /// one port (Apache's TMultiplexedProtocol); SERVICE defaults to the IDL's name.
    #[arg(long, value_name = "SERVICE", num_args = 0..=1, default_missing_value = "")]
    multiplex: Option<String>,
    /// The method: Service.method (or module.Service.method).
    method: String,
    /// The arguments: a JSON object keyed by argument name (default: {}); `@FILE`
    /// reads it from FILE and `-` from standard input (for arguments larger than the
    /// command line allows).
    args: Option<String>,
}

/// The arguments' JSON text: inline, `@FILE` or `-` (standard input).
fn args_text(arg: Option<&str>) -> Result<String, String> {
    match arg {
        None => Ok("{}".into()),
        Some("-") => read_text(std::path::Path::new("-"), "the arguments"),
        Some(a) => match a.strip_prefix('@') {
            Some(path) => read_text(std::path::Path::new(path), "the arguments"),
            None => Ok(a.to_string()),
        },
    }
}

/// The text in file `path` (`-`: standard input), which holds `what`, as UTF-8.
fn read_text(path: &std::path::Path, what: &str) -> Result<String, String> {
    use std::io::Read;
    let stdin = path.as_os_str() == "-";
    let from = match stdin {
        true => "standard input".to_string(),
        false => path.display().to_string(),
    };
    let mut bytes = Vec::new();
    let read = match stdin {
        true => std::io::stdin().read_to_end(&mut bytes),
        false => std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)),
    };
    read.map_err(|e| format!("cannot read {what} from {from}: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        format!("{what} from {from} must be UTF-8 text, and byte {at} is not")
    })
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

/// Arguments already checked against the IDL, written in whichever protocol the
/// connection uses.
struct JsonArgs<'a> {
    program: &'a Program,
    fields: &'a [Field],
    json: &'a Json,
}

impl Encode for JsonArgs<'_> {
    fn encode<W: ProtocolWriter>(&self, w: &mut W) {
        encode_fields(self.program, self.fields, StructKind::Struct, self.json, w)
            .expect("the arguments were checked against the IDL before the call");
    }
}

/// Prints `message` as one line and returns exit code 2. Its control characters
/// are escaped: it may hold what a server sent (an exception's message).
fn fail(message: impl std::fmt::Display) -> ExitCode {
    let message = message.to_string();
    eprintln!("ringsoa call: {}", ringsoa::logs::escape_controls(&message));
    ExitCode::from(2)
}

/// Writes `text` to stdout and returns `code`. A reader that went away (`| head`)
/// is no error: the rest is dropped, as Unix tools do, where `println!` panicked;
/// any other failure to write (a full disk) is one line and exit 2.
fn out(text: std::fmt::Arguments, code: ExitCode) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        Ok(()) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            eprintln!("ringsoa: cannot write the output: {e}");
            ExitCode::from(2)
        }
    }
}

fn call(a: CallArgs) -> ExitCode {
    let program = match ringsoa::idl::load(&[&a.idl], &a.include_dirs) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let method = match dynamic::method(&program, &a.method) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let text = match args_text(a.args.as_deref()) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let json: Json = match serde_json::from_str(&text) {
        Ok(j) => j,
        Err(e) => return fail(format!("arguments are not JSON: {e}")),
    };
    let protocol = match a.protocol {
        ProtocolArg::Binary => Protocol::Binary,
        ProtocolArg::Compact => Protocol::Compact,
    };
    // Check the arguments against the IDL before connecting.
    if let Err(e) = dynamic::encode_call(&method, &json, protocol, 0) {
        return fail(format!("bad arguments for {}: {e}", a.method));
    }
    // An argument left out would reach the server as absent, which most handlers
    // read as zero: say so instead, and let `null` ask for it.
    let missing: Vec<&str> = method
        .function
        .args
        .iter()
        .map(|f| f.name.as_str())
        .filter(|n| json.as_object().is_some_and(|o| !o.contains_key(*n)))
        .collect();
    if !missing.is_empty() {
        return fail(format!(
            "{}: missing argument {}: give each a value, or null to send it absent",
            a.method,
            missing.join(", ")
        ));
    }
    let (nodes, target) = match (a.addr, &a.service) {
        (Some(addr), _) => (vec![Node::from(addr)], addr.to_string()),
        (None, Some(service)) => match providers(&a, service) {
            Ok(nodes) => (nodes, service.to_string()),
            Err(e) => return fail(e),
        },
        (None, None) => {
            return fail("say where to call: --addr HOST:PORT or --service APP/CLUSTER")
        }
    };
    let theader = matches!(
        a.transport,
        TransportArg::Theader | TransportArg::TheaderInFrame
    );
    let header_transport = theader || matches!(a.transport, TransportArg::Ttheader);
    if a.zlib && !theader {
        return fail(
            "--zlib is THeader's transform: add --transport theader (or theader-in-frame)",
        );
    }
    if !a.persistent_meta.is_empty() && !theader {
        return fail(
            "--persistent-meta is THeader's: add --transport theader (or theader-in-frame)",
        );
    }
    if a.no_tracking && !header_transport && !a.meta.is_empty() {
        return fail(
            "--meta travels in the tracking header or a header transport's: drop --no-tracking, or add --transport ttheader",
        );
    }
    let timeout = Duration::from_millis(a.timeout_ms);
    let opts = ConnOptions {
        protocol,
        framing: match a.transport {
            TransportArg::Buffered => Framing::Buffered,
            _ => Framing::Framed,
        },
        header: match a.transport {
            TransportArg::Ttheader => Some(HeaderKind::TTHeader),
            TransportArg::Theader | TransportArg::TheaderInFrame => Some(HeaderKind::THeader),
            _ => None,
        },
        header_in_frame: matches!(a.transport, TransportArg::TheaderInFrame),
        header_zlib: a.zlib,
        header_persistent: a.persistent_meta,
        connect_timeout: timeout,
        call_timeout: timeout,
        tracking: !a.no_tracking,
        max_message: usize::try_from(a.max_message).unwrap_or(usize::MAX),
        max_decoded: usize::try_from(a.max_decoded).unwrap_or(usize::MAX),
        multiplex: a.multiplex.map(|s| {
            if s.is_empty() {
                method.service.clone()
            } else {
                s
            }
        }),
        ..ConnOptions::new(a.app_id)
    };
    let max_decoded = opts.max_decoded;
    let probe_opts = opts.clone();
    let mut cx = CallContext {
        meta: a.meta.into_iter().collect(),
        ..CallContext::default()
    };
    let args = JsonArgs {
        program: &program,
        fields: &method.function.args,
        json: &json,
    };
    let mut rt = match ringsoa::runtime::build() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("no runtime: {e}")),
    };
    let (result, hint) = rt.block_on(async {
        // One attempt: a call typed by hand is not retried behind the user's back.
        let config = ClientConfig {
            conn: opts,
            retry: RetryOptions {
                max_retries: 0,
                ..RetryOptions::default()
            },
            ..ClientConfig::default()
        };
        let client = Client::new(nodes.clone(), config);
        let result = client
            .call_raw(
                Some(&mut cx),
                &method.function.name,
                method.function.oneway,
                &args,
            )
            .await;
        // A server that closed on the call without a word is asked what it speaks.
        let hint = match &result {
            Err(e) if probe::closed_unanswered(e) => {
                let wait = timeout.min(Duration::from_secs(1));
                Some(probe::server_wire(nodes[0], &probe_opts, wait).await)
            }
            _ => None,
        };
        (result, hint)
    });
    match result {
        Ok(None) => out(format_args!("null\n"), ExitCode::SUCCESS),
        Ok(Some((reply, seqid))) => {
            match dynamic::decode_reply(&method, reply, protocol, seqid, max_decoded) {
                Ok(Reply::Success(v)) => out(format_args!("{v}\n"), ExitCode::SUCCESS),
                Ok(Reply::Declared { name, value }) => out(
                    format_args!("{}\n", serde_json::json!({ name: value })),
                    ExitCode::from(1),
                ),
                Err(e) => fail(e),
            }
        }
        Err(CallError::Application(e)) => fail(format!("the server answered with {e}")),
        Err(e) => match hint {
            Some(Some(flags)) => fail(format!(
                "{} at {target}: {e}; it answers {flags}: call it with those",
                a.method
            )),
            Some(None) => fail(format!(
                "{} at {target}: {e}; it answers in no protocol and transport ringsoa speaks: is this a Thrift port?",
                a.method
            )),
            None => fail(format!("{} at {target}: {e}", a.method)),
        },
    }
}

/// The live providers of `service`, read once from the registry, their hosts
/// looked up (at once, each for at most 5 s); an error names a host that does not
/// resolve when none does.
fn providers(a: &CallArgs, service: &ServiceName) -> Result<Vec<Node>, String> {
    let source = a
        .registry
        .as_ref()
        .ok_or("--service needs --zk HOSTS or --state FILE")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let found = rt.block_on(async {
        let store = registry::open(source, &a.root).await?;
        let reg = store
            .providers(Some(&service.app), Some(&service.cluster))
            .await?;
        let listed = reg
            .get(&service.app)
            .and_then(|c| c.get(&service.cluster))
            .into_iter()
            .flatten();
        // Each provider's host, port and weight; nodes without a host or port
        // are left out.
        let wanted = Vec::from_iter(listed.filter_map(|p| {
            let host = p.get("host")?.as_str()?.to_string();
            let port = u16::try_from(p.get("port")?.as_u64()?).ok()?;
            let weight = p
                .get("weight")
                .and_then(|w| w.as_u64())
                .map_or(100, |w| w as u32);
            Some((host, port, weight))
        }));
        let names = Vec::from_iter(wanted.iter().map(|(host, port, _)| (host.clone(), *port)));
        let addrs = look_up_all(names).await;
        Ok::<_, String>(Vec::from_iter(wanted.into_iter().zip(addrs)))
    });
    // A lookup given up may still hold a thread in the system resolver.
    rt.shutdown_background();
    let (mut nodes, mut unresolved) = (Vec::new(), Vec::new());
    for ((host, _, weight), addr) in found? {
        match addr {
            Ok(addr) => nodes.push(Node { addr, weight }),
            Err(e) => unresolved.push(format!("{host}: {e}")),
        }
    }
    match (nodes.is_empty(), unresolved.first()) {
        (true, None) => return Err(format!("no live provider of {service}")),
        (true, Some(first)) => {
            return Err(format!(
                "no provider of {service} can be called: {} listed, and no host of theirs resolves ({first})",
                unresolved.len()
            ))
        }
        (false, Some(first)) => eprintln!(
            "ringsoa call: {} of the {} providers of {service} left out, their hosts not resolving ({first})",
            unresolved.len(),
            unresolved.len() + nodes.len()
        ),
        (false, None) => {}
    }
    Ok(nodes)
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Call(a) => call(*a),
        Command::Registry(c) => registry::registry(c),
        Command::Config(c) => registry::values(Kind::Config, c),
        Command::Switch(c) => registry::values(Kind::Switches, c),
        Command::Idl(c) => idl::idl(c),
        Command::New(a) => new::new(a),
    }
}
