//! The admin HTTP endpoint, on its own thread (a current-thread tokio runtime with
//! hyper), never on the cores: `GET /health`, and JSON views of governance state —
//! `/governance` (the backend, the ZooKeeper session, the registration, why either
//! is missing, and where the values come from), `/config`, `/switches` (name → effective value), `/registry` (app → cluster →
//! providers as registered, for every service this process serves or calls), and
//! `/breakers` (method → breaker state, window, lifetime counts and latency),
//! `/limits` (each rate limit and its split over the cores), `/anomalies` (methods
//! flagged now), `/pools` (the clients' pools by service and node, asked of the
//! cores when requested) and `/metrics` (Prometheus text format).

mod conns;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::governance::{Backend, Governance};
use crate::logs::throttle::{warn_throttled, Throttle};
use crate::metrics::Metrics;
use conns::{Admission, Conns};

/// How long `/pools` waits for every core to report its pools; a core that has
/// not answered by then (busy, or stopping) shows what it last reported.
const POOLS_WAIT: Duration = Duration::from_millis(500);

/// Whether the process serves now, else why not in one line (for `/health`; see
/// [`ServerHandle::health`](crate::server::ServerHandle::health)).
pub type Health = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the views read.
#[derive(Clone)]
pub struct AdminState {
    /// Governance state (none: empty views).
    pub governance: Option<Governance>,
    /// Calls and breakers (none: empty views).
    pub metrics: Option<Metrics>,
    /// Whether the process serves.
    pub health: Health,
}

/// Parses `--admin`: `HOST:PORT`, or a bare port meaning loopback.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    crate::addr::resolve(s)
        .map_err(|e| format!("bad admin address: {e}; expected HOST:PORT or PORT"))
}

/// What the admin endpoint holds open at most.
#[derive(Debug, Clone, Copy)]
pub struct AdminLimits {
    /// Open connections (64); past it a new one takes the place of the one idle
    /// the longest (closed), or is closed at once when every one is in a
    /// request. The endpoint shares the process's open files with the cores'
    /// connections.
    pub max_connections: usize,
    /// Time a connection has to send a request's headers, idle time before it
    /// included (10 s): one that sends nothing, or trickles, is closed after it.
    pub header_timeout: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// The admin endpoint's listening socket, bound before the server starts so that a
/// taken port fails the start before the process serves or registers.
pub struct AdminListener {
    listener: std::net::TcpListener,
    limits: AdminLimits,
}

impl AdminListener {
    /// Binds `addr`, with the default [`AdminLimits`].
    pub fn bind(addr: SocketAddr) -> std::io::Result<AdminListener> {
        let listener = std::net::TcpListener::bind(addr).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("admin endpoint: cannot listen on {addr}: {e}"),
            )
        })?;
        listener.set_nonblocking(true)?;
        Ok(AdminListener {
            listener,
            limits: AdminLimits::default(),
        })
    }

    /// Serves within `limits` instead of the defaults; refused (`InvalidInput`)
    /// when either is zero, before anything serves.
    pub fn limits(self, limits: AdminLimits) -> std::io::Result<Self> {
        if limits.max_connections == 0 || limits.header_timeout.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("admin endpoint: the connection limit ({}) and the header timeout ({:?}) must be above zero", limits.max_connections, limits.header_timeout),
            ));
        }
        Ok(AdminListener { limits, ..self })
    }

    /// Serves on a new thread; returns the address it listens on.
    pub fn serve(self, state: AdminState) -> std::io::Result<SocketAddr> {
        let AdminListener { listener, limits } = self;
        let local = listener.local_addr()?;
        crate::runtime::spawn_control_thread("ringsoa-admin", move || {
            accept(listener, state, limits)
        })?;
        tracing::info!(admin = %local, "admin endpoint serving");
        Ok(local)
    }
}

async fn accept(listener: std::net::TcpListener, state: AdminState, limits: AdminLimits) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a non-blocking listener");
    let AdminLimits {
        max_connections,
        header_timeout,
    } = limits;
    let conns = Arc::new(Conns::new(max_connections));
    let (evicted, full) = (Throttle::default(), Throttle::default());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let conn = match conns.admit(peer) {
            (Admission::Admitted, Some(conn)) => conn,
            (Admission::Evicted(idle), Some(conn)) => {
                warn_throttled!(
                    evicted,
                    "admin endpoint: {max_connections} connections open: closed the one idle the longest ({idle}) to admit {peer}"
                );
                conn
            }
            _ => {
                warn_throttled!(
                    full,
                    "admin endpoint: {max_connections} connections open, all in a request: closed {peer}"
                );
                continue;
            }
        };
        let state = state.clone();
        let conns = conns.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|req| {
                let (state, conn) = (state.clone(), conn.clone());
                async move {
                    conn.request_begins();
                    if req.uri().path() == "/pools" {
                        if let Some(m) = &state.metrics {
                            fresh_pools(m).await;
                        }
                    }
                    let response = route(&state, &req);
                    conn.request_ends();
                    Ok::<_, Infallible>(response)
                }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            // Evicted: dropped, which closes the socket.
            tokio::select! {
                _ = served => {}
                () = conn.evicted() => {}
            }
            conns.remove(&conn);
        });
    }
}

/// Asks the cores for their pools and waits for the answers, at most
/// [`POOLS_WAIT`].
async fn fresh_pools(metrics: &Metrics) {
    let asked = metrics.ask_pools();
    let end = tokio::time::Instant::now() + POOLS_WAIT;
    while !metrics.pools_answered(asked) {
        if tokio::time::Instant::now() >= end {
            tracing::debug!("admin /pools: not every core answered within {POOLS_WAIT:?}; showing what they last reported");
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn route(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        // hyper answers a HEAD with the GET's headers and no body.
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return r;
    }
    let snap = state.governance.as_ref().map(Governance::snapshot);
    match req.uri().path() {
        "/health" => {
            match (state.health)() {
                Ok(()) => text(StatusCode::OK, "serving\n"),
                Err(why) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not serving: {why}\n"),
                ),
            }
        }
        "/governance" => json(&state.governance.as_ref().map(governance_view)),
        "/config" => json(&snap.map(|s| (*s.config).clone()).unwrap_or_default()),
        "/switches" => json(&snap.map(|s| (*s.switches).clone()).unwrap_or_default()),
        "/registry" => {
            let mut out: BTreeMap<String, BTreeMap<String, serde_json::Value>> = BTreeMap::new();
            for (svc, providers) in snap.iter().flat_map(|s| s.services.iter()) {
                let list = serde_json::to_value(&providers[..]).expect("providers serialise");
                out.entry(svc.app.clone())
                    .or_default()
                    .insert(svc.cluster.clone(), list);
            }
            json(&out)
        }
        "/anomalies" => json(&state.metrics.as_ref().map(Metrics::anomalies).unwrap_or_default()),
        "/metrics" => {
            let body = state.metrics.as_ref().map(Metrics::prometheus).unwrap_or_default();
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(metrics_type(req)),
            );
            r
        }
        "/limits" => json(&state.metrics.as_ref().map(Metrics::limits).unwrap_or_default()),
        "/pools" => json(&state.metrics.as_ref().map(Metrics::pools).unwrap_or_default()),
        "/breakers" => json(
            &state
                .metrics
                .as_ref()
                .map(Metrics::report)
                .unwrap_or_default(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /health, /governance, /config, /switches, /registry, /breakers, /limits, /anomalies, /pools, /metrics\n",
        ),
    }
}

/// `/governance`: where state comes from, the schemes of the ZooKeeper credentials
/// (never the secrets), the ZooKeeper session and the registration, and why either
/// is missing, as the governance thread sees them now.
fn governance_view(g: &Governance) -> serde_json::Value {
    let status = g.status();
    let snap = g.snapshot();
    let (backend, at) = match &g.options().backend {
        Backend::ZooKeeper(connect) => ("zookeeper", Some(connect.clone())),
        Backend::File(path) => ("state file", Some(path.display().to_string())),
        Backend::Embedded(_) => ("embedded defaults", None),
    };
    let seen_at_ms = snap
        .seen_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    serde_json::json!({
        "app": snap.app,
        "cluster": snap.cluster,
        "backend": backend,
        "at": at,
        "credentials": g.options().zk_auth.iter().map(|a| a.scheme()).collect::<Vec<_>>(),
        "tls": g.options().zk_tls.as_ref().map(|t| if t.has_identity() { "with a client certificate" } else { "server verified" }),
        "connected": status.connected,
        "session": status.session.map(|s| format!("{s:#x}")),
        "registered": status.registered,
        "error": status.error,
        "source": format!("{:?}", snap.source).to_lowercase(),
        "version": snap.version,
        "seen_at_ms": seen_at_ms,
    })
}

/// The content type `/metrics` is labelled with. The body is OpenMetrics text
/// (`prometheus-client`'s encoder), which Prometheus's 0.0.4 text parser also reads:
/// labelled OpenMetrics for a scraper that asks for it (Prometheus does, and then
/// types `ringsoa_calls_total` as the counter `ringsoa_calls`), 0.0.4 for any other.
fn metrics_type(req: &Request<Incoming>) -> &'static str {
    let accepts_openmetrics = req
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if accepts_openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(value).expect("views serialise");
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_are_refused_when_set() {
        for limits in [
            AdminLimits {
                max_connections: 0,
                ..AdminLimits::default()
            },
            AdminLimits {
                header_timeout: Duration::ZERO,
                ..AdminLimits::default()
            },
        ] {
            let listener = AdminListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let err = listener.limits(limits).err().expect("refused");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains("must be above zero"), "{err}");
        }
    }

    #[test]
    fn a_bare_port_means_loopback() {
        assert_eq!(
            parse_addr("9091").unwrap(),
            "127.0.0.1:9091".parse().unwrap()
        );
        assert_eq!(
            parse_addr("0.0.0.0:9091").unwrap(),
            "0.0.0.0:9091".parse().unwrap()
        );
        assert!(parse_addr("nope")
            .unwrap_err()
            .contains("HOST:PORT or PORT"));
    }
}
