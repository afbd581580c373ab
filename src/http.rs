//! `zdel serve`'s HTTP endpoints: `/healthz` (the process answers),
//! `/readyz` (it can do its job: database open and migrated, credentials not
//! rejected, not shutting down — else 503 with a one-line reason) and
//! `/metrics` (Prometheus text; `/metrics?selection=N` adds one
//! selection's rows by state and code). It reads state; it changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::config::LimitsConfig;
use crate::store::Store;
use secrecy::{ExposeSecret, SecretString};

/// What the endpoints report on. `shutting_down` flips the moment SIGTERM
/// arrives, so an orchestrator stops routing to us before calls finish.
pub struct Health {
    pub store: Store,
    pub shutting_down: AtomicBool,
    pub metrics: Option<PrometheusHandle>,
    /// What the console's figures are measured against.
    pub limits: LimitsConfig,
    /// Needed by `/` and `/api/*` when set (see `http.console_token`).
    pub console_token: Option<SecretString>,
}

impl Health {
    pub fn new(
        store: Store,
        metrics: Option<PrometheusHandle>,
        limits: LimitsConfig,
        console_token: Option<SecretString>,
    ) -> Arc<Health> {
        Arc::new(Health {
            store,
            shutting_down: AtomicBool::new(false),
            metrics,
            limits,
            console_token: console_token.filter(|t| !t.expose_secret().trim().is_empty()),
        })
    }
}

pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/", get(console_page))
        .route("/console.css", get(console_css))
        .route("/api/status", get(api_status))
        .with_state(health)
}

/// The console's answers: its CSP, never cached, never framed.
fn console_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(crate::console::CSP),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

/// `/` and `/api/*` with a token configured: `Authorization: Bearer T` or
/// `?token=T`, compared in constant time.
fn authorized(
    health: &Health,
    headers: &axum::http::HeaderMap,
    params: &std::collections::HashMap<String, String>,
) -> bool {
    let Some(token) = &health.console_token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .or_else(|| params.get("token").cloned())
        .unwrap_or_default();
    let want = token.expose_secret().as_bytes();
    given.len() == want.len()
        && given
            .as_bytes()
            .iter()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn unauthorized() -> Response {
    console_headers(
        (
            StatusCode::UNAUTHORIZED,
            "the console needs http.console_token: Authorization: Bearer TOKEN, or ?token=TOKEN\n",
        )
            .into_response(),
    )
}

/// The status document, or why the database could not give it.
async fn status_json(health: &Health) -> Result<serde_json::Value, String> {
    let model = crate::status_model::StatusModel::read(&health.store, &health.limits)
        .await
        .map_err(|e| e.to_string())?;
    model.json().map_err(|e| e.to_string())
}

fn unavailable(why: String) -> Response {
    console_headers(
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database not answering: {why}\n"),
        )
            .into_response(),
    )
}

/// `GET /api/status`: the status document (`zdel status --json`).
async fn api_status(
    State(health): State<Arc<Health>>,
    headers: axum::http::HeaderMap,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if !authorized(&health, &headers, &params) {
        return unauthorized();
    }
    match status_json(&health).await {
        Ok(value) => console_headers(axum::Json(value).into_response()),
        Err(why) => unavailable(why),
    }
}

/// `GET /`: the console page.
async fn console_page(
    State(health): State<Arc<Health>>,
    headers: axum::http::HeaderMap,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if !authorized(&health, &headers, &params) {
        return unauthorized();
    }
    match status_json(&health).await {
        Ok(value) => console_headers(
            (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                crate::console::page(&value, 5),
            )
                .into_response(),
        ),
        Err(why) => unavailable(why),
    }
}

async fn console_css() -> Response {
    console_headers(([(header::CONTENT_TYPE, "text/css")], crate::console::CSS).into_response())
}

/// Serve `router` on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Arc<Health>,
    stop: CancellationToken,
) {
    let served = axum::serve(listener, router(health))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "HTTP endpoints stopped");
    }
}

async fn readyz(State(health): State<Arc<Health>>) -> Response {
    let unready = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response()
    };
    if health.shutting_down.load(Ordering::SeqCst) {
        return unready("shutting down".into());
    }
    if let Err(reason) = health.store.readiness().await {
        return unready(reason);
    }
    match health.store.globally_paused().await {
        Ok(Some(pause)) => unready(format!(
            "Zoho rejects the credentials ({}): {}",
            pause.code, pause.message
        )),
        Ok(None) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => unready(format!("database not answering: {e}")),
    }
}

async fn metrics(
    State(health): State<Arc<Health>>,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    match &health.metrics {
        Some(handle) => {
            let mut text = handle.render();
            if let Some(selection) = params.get("selection") {
                match selection_metrics(&health.store, selection).await {
                    Ok(more) => text.push_str(&more),
                    Err(refusal) => return refusal,
                }
            }
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            "metrics are not recorded in this process\n",
        )
            .into_response(),
    }
}

/// `?selection=N`: the selection's rows by state (`staged` until released)
/// and outcome code, and its IDs found, queued and already deleted, read
/// from its own rowid range when asked (the label set stays one selection's).
async fn selection_metrics(store: &Store, selection: &str) -> Result<String, Response> {
    let Ok(id) = selection.parse::<i64>() else {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("selection={selection:?} is not a selection number\n"),
        )
            .into_response());
    };
    let report = match store.selection_report(id).await {
        Ok(Some(report)) => report,
        Ok(None) => {
            return Err((
                StatusCode::NOT_FOUND,
                format!("no selection {id} (zdel selections lists them)\n"),
            )
                .into_response());
        }
        Err(e) => {
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!("database not answering: {e}\n"),
            )
                .into_response());
        }
    };
    let s = &report.selection;
    let label = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = String::from(
        "# HELP zdel_selection_requests Requests of one selection by state (staged: not yet released) and outcome code.\n\
         # TYPE zdel_selection_requests gauge\n",
    );
    for c in &report.counts {
        out.push_str(&format!(
            "zdel_selection_requests{{selection=\"{id}\",module=\"{}\",state=\"{}\",code=\"{}\"}} {}\n",
            label(&s.module),
            label(&c.state),
            label(c.code.as_deref().unwrap_or("")),
            c.count
        ));
    }
    out.push_str(
        "# HELP zdel_selection_ids IDs of one selection: found, queued, skipped as already deleted.\n\
         # TYPE zdel_selection_ids gauge\n",
    );
    for (kind, n) in [
        ("found", s.ids_found),
        ("queued", s.ids_queued),
        ("already_deleted", s.ids_already_deleted),
    ] {
        out.push_str(&format!(
            "zdel_selection_ids{{selection=\"{id}\",kind=\"{kind}\"}} {n}\n"
        ));
    }
    Ok(out)
}
