//! Exporters: the Prometheus text format for `/metrics` (through the
//! `prometheus-client` encoder, from the aggregator's latest report), and statsd
//! lines over UDP (built by the aggregator in a reused buffer every second).

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicU64;

use hdrhistogram::Histogram;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::anomaly::Anomaly;
use super::counts::Counts;
use super::MethodReport;

type Labels = Vec<(&'static str, String)>;

/// The outcomes of `c`, by name.
fn outcomes(c: &Counts) -> [(&'static str, u64); 9] {
    [
        ("success", c.successes),
        ("declared", c.declared),
        ("application", c.application),
        ("bad_arguments", c.bad_arguments),
        ("unknown_method", c.unknown_method),
        ("system", c.system),
        ("timeout", c.timeouts),
        ("expired", c.expired),
        ("refused", c.refused),
    ]
}

/// The Prometheus text exposition of `report` and `anomalies` for `app`.
pub fn prometheus(
    app: &str,
    report: &BTreeMap<String, MethodReport>,
    anomalies: &BTreeMap<String, Vec<Anomaly>>,
) -> String {
    let mut registry = Registry::default();
    let calls = Family::<Labels, Counter>::default();
    let latency = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let breaker = Family::<Labels, Gauge>::default();
    let anomaly = Family::<Labels, Gauge>::default();
    registry.register(
        "ringsoa_calls",
        "Calls by method and outcome",
        calls.clone(),
    );
    registry.register(
        "ringsoa_call_latency_seconds",
        "Latency quantiles since start",
        latency.clone(),
    );
    registry.register(
        "ringsoa_breaker_state",
        "Circuit breaker: 0 unlocked, 1 locked, 2 probing, 3 ramp",
        breaker.clone(),
    );
    registry.register(
        "ringsoa_anomaly",
        "1 while a method's error ratio or p99 departs from its recent mean",
        anomaly.clone(),
    );
    let base = |m: &str| -> Labels { vec![("app", label_value(app)), ("method", label_value(m))] };
    for (m, r) in report {
        for (outcome, n) in outcomes(&r.lifetime) {
            let mut l = base(m);
            l.push(("outcome", outcome.into()));
            calls.get_or_create(&l).inc_by(n);
        }
        for (q, v) in ["0.5", "0.9", "0.99", "0.999", "1"]
            .iter()
            .zip(r.latency_us)
        {
            let mut l = base(m);
            l.push(("quantile", q.to_string()));
            latency.get_or_create(&l).set(v as f64 / 1e6);
        }
        let state = match r.state {
            "UNLOCKED" => 0,
            "LOCKED" => 1,
            "RECOVER (probing)" => 2,
            _ => 3,
        };
        breaker.get_or_create(&base(m)).set(state);
    }
    for (m, list) in anomalies {
        for a in list {
            let mut l = base(m);
            l.push((
                "kind",
                serde_json::to_value(a.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            ));
            anomaly.get_or_create(&l).set(1);
        }
    }
    let mut out = String::new();
    encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

/// `text` as a label value of the text format, escaped as it requires (`\\`, `\"`,
/// `\n`): the encoder writes values as given, and a key such as a client's
/// `client:svc.method` must not end the line or the label.
fn label_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as part of a statsd name or a switch name: any character but ASCII
/// letters, digits, `_`, `-` and `.` becomes `_` (a `:` ends the name in a statsd
/// line, `|` and a line break end more: `client:host:port.method` made lines statsd
/// could not parse; a switch name takes no `:` or `/`).
pub(super) fn plain_name(text: &str) -> std::borrow::Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if text.chars().all(plain) {
        return text.into();
    }
    text.chars()
        .map(|c| if plain(c) { c } else { '_' })
        .collect::<String>()
        .into()
}

/// Sends statsd lines for each second's calls: a counter per outcome and a timer
/// (the second's mean latency, with the sample rate that stands for every call).
pub struct Statsd {
    socket: UdpSocket,
    to: SocketAddr,
    prefix: String,
    buf: String,
}

/// The largest datagram sent (fits a 1,500-byte MTU).
const DATAGRAM: usize = 1400;

impl Statsd {
    /// Lines to `to`, each name starting with `prefix`.
    pub fn new(to: SocketAddr, prefix: &str) -> std::io::Result<Statsd> {
        let socket = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
        Ok(Statsd {
            socket,
            to,
            prefix: plain_name(prefix.trim_end_matches('.')).into_owned(),
            buf: String::with_capacity(DATAGRAM),
        })
    }

    /// Sends one second's `calls` by method.
    pub fn send(&mut self, calls: &BTreeMap<String, (Counts, Histogram<u64>)>) {
        use std::fmt::Write;
        self.buf.clear();
        let mut line = String::with_capacity(128);
        for (m, (c, h)) in calls {
            let m = plain_name(m);
            for (outcome, n) in outcomes(c).into_iter().filter(|(_, n)| *n > 0) {
                line.clear();
                let _ = write!(line, "{}.{m}.{outcome}:{n}|c", self.prefix);
                self.push(&line);
            }
            if !h.is_empty() {
                line.clear();
                let rate = 1.0 / h.len() as f64;
                let _ = write!(
                    line,
                    "{}.{m}.latency:{:.3}|ms|@{rate:.6}",
                    self.prefix,
                    h.mean() / 1000.0
                );
                self.push(&line);
            }
        }
        self.flush();
    }

    fn push(&mut self, line: &str) {
        if !self.buf.is_empty() && self.buf.len() + 1 + line.len() > DATAGRAM {
            self.flush();
        }
        if !self.buf.is_empty() {
            self.buf.push('\n');
        }
        self.buf.push_str(line);
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            // Lost datagrams are statsd's nature; an unreachable agent is not an error
            // worth a log line a second.
            let _ = self.socket.send_to(self.buf.as_bytes(), self.to);
            self.buf.clear();
        }
    }
}
