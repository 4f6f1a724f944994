//! Services: the argument and result structs of each function, the handler trait,
//! the dispatcher (`<Service>Server`) and the typed client stub (`<Service>Client`).
//!
//! For `service Demo { string echo(1: string msg) }` the generated items are
//! `DemoEchoArgs`, `DemoEchoResult`, `trait DemoHandler { async fn echo(&self, cx:
//! &mut CallContext, msg: String) -> Result<String, MethodError> }`, `DemoServer<H>`
//! (implements `ringsoa::rpc::Dispatch`) and `DemoClient<C: Channel>`. A function
//! with `throws` also gets `Demo<Fn>Exception`, an enum of its declared exceptions.
//! A service that `extends` another gets a handler trait with the base's as its
//! supertrait, and a dispatcher that hands unknown names to the base's.

use std::fmt::Write;

use crate::idl::model::{DefId, Field, Function, Requiredness, Service, Struct, StructKind, Ty};

use super::fields::is_option;
use super::items::{doc_lines, structure};
use super::names::{apart, camel, ident};
use super::types::Gen;

/// Stand-in id for the synthetic argument and result structs (never boxed).
const SYNTHETIC: DefId = DefId {
    file: usize::MAX,
    index: usize::MAX,
};

/// Names of a function's generated items, as paths from the current module.
struct FnNames {
    args: String,
    result: String,
    exception: Option<String>,
}

fn fn_names(g: &Gen, service: DefId, f: &Function) -> FnNames {
    let base = format!("{}{}", g.program.service(service).name, camel(&f.name));
    let p = |suffix: &str| g.path(service, &format!("{base}{suffix}"));
    FnNames {
        args: p("Args"),
        result: p("Result"),
        exception: (!f.throws.is_empty()).then(|| p("Exception")),
    }
}

/// The handler's parameter type for an argument: `Option<T>` only for `optional`.
fn param_type(g: &Gen, a: &Field) -> String {
    let t = g.rust_type(&a.ty);
    if a.req == Requiredness::Optional {
        format!("__std::option::Option<{t}>")
    } else {
        t
    }
}

/// The handler's argument value taken out of the decoded args struct.
fn param_from_args(a: &Field) -> String {
    let f = format!("args.{}", ident(&a.name));
    if a.req != Requiredness::Optional && is_option(a) {
        format!("{f}.unwrap_or_default()")
    } else {
        f
    }
}

/// Names a parameter cannot take as it is: in a pattern the prelude's variants
/// mean themselves and do not bind, and `cx` is the context's parameter.
const TAKEN: &[&str] = &["Some", "None", "Ok", "Err", "cx"];

/// The names `f`'s arguments are bound to as parameters: their own (keywords
/// escaped), with `_` added while the name would not bind or is another's — one
/// of [`TAKEN`], or an IDL constant or enum's (a Rust constant or tuple struct,
/// which a pattern reads as itself; any file's, as a module may glob-import
/// another's).
fn bindings(g: &Gen, f: &Function) -> Vec<String> {
    let items = |name: &str| {
        g.program.files.iter().any(|file| {
            file.consts.iter().any(|c| ident(&c.name) == name)
                || file.enums.iter().any(|e| ident(&e.name) == name)
        })
    };
    let mut names: Vec<String> = Vec::with_capacity(f.args.len());
    for a in &f.args {
        let name = apart(ident(&a.name), |n| {
            TAKEN.contains(&n) || items(n) || names.iter().any(|m| m == n)
        });
        names.push(name);
    }
    names
}

/// The client's own methods, which a client method of the same name would clash
/// with.
const CLIENT_ITEMS: &[&str] = &["new", "channel"];

/// The name of `f`'s client method: its own, with `_` added when it is one of the
/// client's own methods (`new` → `new_`; also what `ringsoa new`'s example calls).
pub fn client_method_name(f: &Function) -> String {
    apart(ident(&f.name), |n| CLIENT_ITEMS.contains(&n))
}

/// The args-struct field value built from a client parameter bound to `p`.
fn args_from_param(a: &Field, p: &str) -> String {
    let p = p.to_owned();
    if a.req != Requiredness::Optional && is_option(a) {
        format!("__std::option::Option::Some({p})")
    } else {
        p
    }
}

fn ok_type(g: &Gen, f: &Function) -> String {
    f.returns.as_ref().map_or("()".into(), |t| g.rust_type(t))
}

/// Everything generated for one service.
pub fn service(g: &Gen, out: &mut String, id: DefId, s: &Service) {
    for f in &s.functions {
        fn_structs(g, out, &s.name, f);
    }
    handler_trait(g, out, s);
    server(g, out, id, s);
    client(g, out, id, s);
}

fn fn_structs(g: &Gen, out: &mut String, service: &str, f: &Function) {
    let base = format!("{service}{}", camel(&f.name));
    let synth = |name: String, fields: Vec<Field>, doc: String| Struct {
        kind: StructKind::Struct,
        name,
        fields,
        doc: Some(doc),
        annotations: Vec::new(),
        pos: f.pos,
    };
    let args = synth(
        format!("{base}Args"),
        f.args.clone(),
        format!("Arguments of `{service}.{}`.", f.name),
    );
    structure(g, out, SYNTHETIC, &args);
    if f.oneway {
        return;
    }
    let result = synth(
        format!("{base}Result"),
        f.result_fields(),
        format!("Result of `{service}.{}`.", f.name),
    );
    structure(g, out, SYNTHETIC, &result);
    if f.throws.is_empty() {
        return;
    }
    let _ = writeln!(out, "/// The exceptions `{service}.{}` declares.\n#[derive(Clone, Debug, PartialEq)]\npub enum {base}Exception {{", f.name);
    for t in &f.throws {
        let _ = writeln!(out, "    {}({}),", camel(&t.name), g.rust_type(&t.ty));
    }
    out.push_str("}\n\n");
    for (i, t) in f.throws.iter().enumerate() {
        // One `From` per distinct exception type, so handlers can use `?` / `.into()`.
        if f.throws[..i].iter().any(|o| o.ty == t.ty) {
            continue;
        }
        let ty = g.rust_type(&t.ty);
        let _ = writeln!(out, "impl __std::convert::From<{ty}> for __rs::rpc::MethodError<{base}Exception> {{\n    fn from(e: {ty}) -> Self {{\n        __rs::rpc::MethodError::Declared({base}Exception::{}(e))\n    }}\n}}\n", camel(&t.name));
    }
}

/// The handler trait's method for `f` of `s`, without a body:
/// `async fn f(&self, cx: &mut CallContext, args…) -> Result<T, MethodError<…>>`
/// (also what `ringsoa new` writes a stub for).
pub fn handler_method(g: &Gen, s: &Service, f: &Function) -> String {
    let mut params = String::new();
    for (a, name) in f.args.iter().zip(bindings(g, f)) {
        let _ = write!(params, ", {name}: {}", param_type(g, a));
    }
    let err = if f.throws.is_empty() {
        "__rs::rpc::MethodError".to_string()
    } else {
        format!(
            "__rs::rpc::MethodError<{}{}Exception>",
            s.name,
            camel(&f.name)
        )
    };
    format!(
        "async fn {}(&self, cx: &mut __rs::rpc::CallContext{params}) -> __std::result::Result<{}, {err}>",
        ident(&f.name),
        ok_type(g, f)
    )
}

fn handler_trait(g: &Gen, out: &mut String, s: &Service) {
    doc_lines(out, &s.doc, "");
    let supertrait = s.extends.map_or(String::new(), |b| {
        format!(
            ": {}",
            g.path(b, &format!("{}Handler", g.program.service(b).name))
        )
    });
    let _ = writeln!(out, "/// Implement this to serve `{}`; futures need not be `Send` (one instance per core).\n#[allow(async_fn_in_trait)]\npub trait {}Handler{supertrait} {{", s.name, s.name);
    for f in &s.functions {
        doc_lines(out, &f.doc, "    ");
        let _ = writeln!(out, "    {};", handler_method(g, s, f));
    }
    out.push_str("}\n\n");
}

fn server(g: &Gen, out: &mut String, id: DefId, s: &Service) {
    let name = &s.name;
    let _ = writeln!(out, "/// Serves `{name}` with a [`{name}Handler`].\npub struct {name}Server<H> {{\n    /// The handler calls go to.\n    pub handler: H,\n}}\n");
    let _ = writeln!(out, "impl<H: {name}Handler> {name}Server<H> {{\n    /// A server for `handler`.\n    pub fn new(handler: H) -> Self {{\n        {name}Server {{ handler }}\n    }}\n");
    let _ = writeln!(out, "    /// Serves one call with `h`; used by services that extend this one.\n    pub async fn dispatch_with<R: __rs::protocol::ProtocolReader, W: __rs::protocol::ProtocolWriter>(h: &H, cx: &mut __rs::rpc::CallContext, msg: &__rs::protocol::MessageHeader, r: &mut R, w: &mut W) -> __std::result::Result<__rs::rpc::Dispatched, __rs::protocol::ProtocolError> {{\n        match &msg.name[..] {{");
    for f in &s.functions {
        let n = fn_names(g, id, f);
        let params: String = f
            .args
            .iter()
            .map(|a| format!(", {}", param_from_args(a)))
            .collect();
        let _ = writeln!(out, "            b{:?} => {{\n                let args = match <{} as __rs::protocol::Decode>::decode(r) {{\n                    __std::result::Result::Ok(a) => a,\n                    __std::result::Result::Err(e) => return __std::result::Result::Ok(__rs::rpc::dispatch::bad_arguments(cx, msg, w, &e)),\n                }};\n                let res = h.{}(cx{params}).await;", f.name, n.args, ident(&f.name));
        if f.oneway {
            out.push_str("                let _ = res;\n                __std::result::Result::Ok(__rs::rpc::Dispatched::Oneway)\n            }\n");
            continue;
        }
        let reply = format!("__rs::rpc::dispatch::begin_reply(cx, w, {:?}, __rs::protocol::MessageType::Reply, msg.seqid);", f.name);
        let ok = if f.returns.is_some() {
            format!("{} {{ success: __std::option::Option::Some(v), ..__std::default::Default::default() }}", n.result)
        } else {
            format!(
                "{{ let () = v; <{} as __std::default::Default>::default() }}",
                n.result
            )
        };
        let _ = writeln!(out, "                let done = match res {{\n                    __std::result::Result::Ok(v) => {{ {reply} __rs::protocol::Encode::encode(&{ok}, w); __rs::rpc::Dispatched::Result }}");
        match &n.exception {
            None => out.push_str("                    __std::result::Result::Err(__rs::rpc::MethodError::Declared(n)) => match n {},\n"),
            Some(exc) => {
                let mut arms = String::new();
                for t in &f.throws {
                    let _ = write!(arms, "{exc}::{}(x) => {} {{ {}: __std::option::Option::Some(x), ..__std::default::Default::default() }}, ", camel(&t.name), n.result, ident(&t.name));
                }
                let _ = writeln!(out, "                    __std::result::Result::Err(__rs::rpc::MethodError::Declared(e)) => {{ {reply} let res = match e {{ {arms} }}; __rs::protocol::Encode::encode(&res, w); __rs::rpc::Dispatched::Declared }}");
            }
        }
        out.push_str("                    __std::result::Result::Err(__rs::rpc::MethodError::Application(e)) => { __rs::rpc::dispatch::write_exception(cx, w, msg, &e); __rs::rpc::Dispatched::Application(e.kind) }\n                };\n                __std::result::Result::Ok(done)\n            }\n");
    }
    let fallback = match s.extends {
        Some(b) => format!(
            "<{}Server<H>>::dispatch_with(h, cx, msg, r, w).await",
            g.path(b, &g.program.service(b).name)
        ),
        None => format!("__rs::rpc::dispatch::unknown_method(cx, {name:?}, msg, r, w)"),
    };
    let _ = writeln!(out, "            _ => {fallback},\n        }}\n    }}\n");
    let names: Vec<String> = s
        .functions
        .iter()
        .map(|f| format!("b{:?}", f.name))
        .collect();
    let mut known = vec![];
    if !names.is_empty() {
        known.push(format!("matches!(name, {})", names.join(" | ")));
    }
    if let Some(b) = s.extends {
        known.push(format!(
            "<{}Server<H>>::knows_method(name)",
            g.path(b, &g.program.service(b).name)
        ));
    }
    let known = if known.is_empty() {
        "false".to_string()
    } else {
        known.join(" || ")
    };
    let _ = writeln!(out, "    /// Whether `name` is a method of this service (or of one it extends).\n    pub fn knows_method(name: &[u8]) -> bool {{\n        {known}\n    }}\n}}\n");
    let _ = writeln!(out, "impl<H: {name}Handler> __rs::rpc::Dispatch for {name}Server<H> {{\n    const NAME: &'static str = {name:?};\n\n    fn knows(&self, method: &[u8]) -> bool {{\n        Self::knows_method(method)\n    }}\n\n    fn dispatch<R: __rs::protocol::ProtocolReader, W: __rs::protocol::ProtocolWriter>(&self, cx: &mut __rs::rpc::CallContext, msg: &__rs::protocol::MessageHeader, r: &mut R, w: &mut W) -> impl __std::future::Future<Output = __std::result::Result<__rs::rpc::Dispatched, __rs::protocol::ProtocolError>> {{\n        Self::dispatch_with(&self.handler, cx, msg, r, w)\n    }}\n}}\n");
}

fn client(g: &Gen, out: &mut String, id: DefId, s: &Service) {
    let name = &s.name;
    let _ = writeln!(out, "/// Calls `{name}` through a [`Channel`](__rs::rpc::Channel); clones share the\n/// channel when it is a handle (`Rc<Client>`, `SharedClient`).\n#[derive(Clone)]\npub struct {name}Client<C> {{\n    channel: C,\n}}\n\nimpl<C: __rs::rpc::Channel> {name}Client<C> {{\n    /// A client over `channel`.\n    pub fn new(channel: C) -> Self {{\n        {name}Client {{ channel }}\n    }}\n\n    /// The channel calls go through.\n    pub fn channel(&self) -> &C {{\n        &self.channel\n    }}\n");
    let mut next = Some(id);
    while let Some(sid) = next {
        let svc = g.program.service(sid);
        for f in &svc.functions {
            client_method(g, out, sid, f);
        }
        next = svc.extends;
    }
    out.push_str("}\n\n");
}

fn client_method(g: &Gen, out: &mut String, sid: DefId, f: &Function) {
    let n = fn_names(g, sid, f);
    doc_lines(out, &f.doc, "    ");
    let names = bindings(g, f);
    let params: String = f
        .args
        .iter()
        .zip(&names)
        .map(|(a, name)| format!(", {name}: {}", param_type(g, a)))
        .collect();
    let fields: String = f
        .args
        .iter()
        .zip(&names)
        .map(|(a, name)| format!("{}: {}, ", ident(&a.name), args_from_param(a, name)))
        .collect();
    let args = format!("{} {{ {fields} }}", n.args);
    let cx = "cx: __std::option::Option<&mut __rs::rpc::CallContext>";
    if f.oneway {
        let _ = writeln!(out, "    pub async fn {}(&self, {cx}{params}) -> __std::result::Result<(), __rs::rpc::CallError> {{\n        self.channel.oneway(cx, {:?}, &{args}).await\n    }}\n", client_method_name(f), f.name);
        return;
    }
    let err = n
        .exception
        .as_ref()
        .map_or("__rs::rpc::CallError".into(), |e| {
            format!("__rs::rpc::CallError<{e}>")
        });
    let widen = if n.exception.is_some() {
        ".map_err(__rs::rpc::CallError::widen)"
    } else {
        ""
    };
    let _ = writeln!(out, "    pub async fn {}(&self, {cx}{params}) -> __std::result::Result<{}, {err}> {{\n        let res: {} = self.channel.call(cx, {:?}, &{args}).await{widen}?;", client_method_name(f), ok_type(g, f), n.result, f.name);
    if let Some(exc) = &n.exception {
        for t in &f.throws {
            let _ = writeln!(out, "        if let __std::option::Option::Some(e) = res.{} {{\n            return __std::result::Result::Err(__rs::rpc::CallError::Declared({exc}::{}(e)));\n        }}", ident(&t.name), camel(&t.name));
        }
    }
    match &f.returns {
        Some(Ty::Struct(_)) | Some(_) => {
            let _ = writeln!(out, "        res.success.ok_or_else(|| __rs::rpc::CallError::Application(__rs::protocol::ApplicationException::new(__rs::protocol::ApplicationExceptionKind::MissingResult, {:?})))\n    }}\n", format!("{} returned no result", f.name));
        }
        None => {
            let _ = writeln!(
                out,
                "        let _ = res;\n        __std::result::Result::Ok(())\n    }}\n"
            );
        }
    }
}
