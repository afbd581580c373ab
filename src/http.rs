//! `zdel serve`'s HTTP endpoints: `/healthz` (the process answers),
//! `/readyz` (it can do its job: database open and migrated, credentials not
//! rejected, not shutting down — else 503 with a one-line reason) and
//! `/metrics` (Prometheus text). It reads state; it changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
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

async fn metrics(State(health): State<Arc<Health>>) -> Response {
    match &health.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "metrics are not recorded in this process\n",
        )
            .into_response(),
    }
}
