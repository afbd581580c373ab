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

use crate::store::Store;

/// What the endpoints report on. `shutting_down` flips the moment SIGTERM
/// arrives, so an orchestrator stops routing to us before calls finish.
pub struct Health {
    pub store: Store,
    pub shutting_down: AtomicBool,
    pub metrics: Option<PrometheusHandle>,
}

impl Health {
    pub fn new(store: Store, metrics: Option<PrometheusHandle>) -> Arc<Health> {
        Arc::new(Health {
            store,
            shutting_down: AtomicBool::new(false),
            metrics,
        })
    }
}

pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
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
