//! Calling a ringsoa service from a tokio application (an axum HTTP gateway): a
//! `SharedClient` runs the core-local clients on ringsoa's own threads, and the
//! generated stub over it is `Clone + Send + Sync` with `Send` futures, so it is
//! axum state like any other.
//!
//! Run a back end (`cargo run --release --bin ringsoa-demo`), then
//! `cargo run --example axum_gateway -- 127.0.0.1:8080 127.0.0.1:9090` and
//! `curl 127.0.0.1:8080/add/40/2`.

mod idl {
    ringsoa::include_idl!();
}

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use idl::demo::DemoClient;
use ringsoa::client::{Client, ClientConfig, SharedClient};
use ringsoa::protocol::Protocol;

type Demo = DemoClient<SharedClient>;

/// `GET /add/A/B`: `Demo.add(A, B)` as text; a failed call is a 502 with its reason.
async fn add(
    State(demo): State<Demo>,
    Path((a, b)): Path<(i32, i64)>,
) -> Result<String, (StatusCode, String)> {
    match demo.add(None, a, b).await {
        Ok(sum) => Ok(sum.to_string()),
        Err(e) => Err((StatusCode::BAD_GATEWAY, format!("Demo.add: {e}\n"))),
    }
}

/// `GET /echo/MSG`: `Demo.echo(MSG)`.
async fn echo(
    State(demo): State<Demo>,
    Path(msg): Path<String>,
) -> Result<String, (StatusCode, String)> {
    demo.echo(None, msg)
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, format!("Demo.echo: {e}\n")))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match serve().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axum_gateway: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = ringsoa::addr::resolve(args.next().as_deref().unwrap_or("127.0.0.1:8080"))?;
    let backend = ringsoa::addr::resolve(args.next().as_deref().unwrap_or("127.0.0.1:9090"))?;
    // Two ringsoa client threads; each builds its own Client (pools stay there).
    let shared = SharedClient::spawn(2, Protocol::Binary, move || {
        Client::new([backend], ClientConfig::new("axum-gateway"))
    })?;
    let app = Router::new()
        .route("/add/{a}/{b}", get(add))
        .route("/echo/{msg}", get(echo))
        .with_state(DemoClient::new(shared));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    eprintln!("axum_gateway: listening on http://{listen}, calling {backend}");
    axum::serve(listener, app).await?;
    Ok(())
}
