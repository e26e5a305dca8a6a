//! Prometheus metrics of the host: counts of what the host does anyway (blobs, bytes, status
//! reports, relayed connections, enclave restarts) and jobs per phase. None is derived from
//! data, weights or losses: the host never sees them.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::api::HostState;

/// The host's counters.
#[derive(Default)]
pub struct Metrics {
    /// Blobs stored.
    pub blobs_put: AtomicU64,
    /// Bytes of blobs stored.
    pub blob_bytes_put: AtomicU64,
    /// Blobs served.
    pub blobs_get: AtomicU64,
    /// Status records received from the enclave.
    pub status_reports: AtomicU64,
    /// Party connections relayed to the enclave.
    pub relay_connections: AtomicU64,
    /// Enclave process starts after the first.
    pub enclave_restarts: AtomicU64,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of the counters and the per-phase job gauge.
    pub fn render(&self, phases: &[(String, u64)]) -> String {
        let mut out = String::new();
        let counters = [
            (
                "chiron_host_blobs_put_total",
                "Blobs stored.",
                &self.blobs_put,
            ),
            (
                "chiron_host_blob_bytes_put_total",
                "Bytes of blobs stored.",
                &self.blob_bytes_put,
            ),
            (
                "chiron_host_blobs_get_total",
                "Blobs served.",
                &self.blobs_get,
            ),
            (
                "chiron_host_status_reports_total",
                "Status records received from the enclave.",
                &self.status_reports,
            ),
            (
                "chiron_host_relay_connections_total",
                "Party connections relayed to the enclave.",
                &self.relay_connections,
            ),
            (
                "chiron_host_enclave_restarts_total",
                "Enclave process restarts.",
                &self.enclave_restarts,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP chiron_host_jobs Jobs by phase (latest status record)."
        );
        let _ = writeln!(out, "# TYPE chiron_host_jobs gauge");
        for (phase, n) in phases {
            let _ = writeln!(out, "chiron_host_jobs{{phase=\"{phase}\"}} {n}");
        }
        out
    }
}

/// Scrapers served at once.
pub const SCRAPER_LIMIT: usize = 64;

/// How long one scraper's connection may stay open (a scrape takes milliseconds).
const SCRAPE_CONNECTION_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves `GET /metrics` (any other path: 404) until the task is aborted.
pub async fn serve(
    metrics: Arc<Metrics>,
    state: Arc<HostState>,
    listener: tokio::net::TcpListener,
) {
    let gate = chiron_proto::listen::Gate::new(listener, SCRAPER_LIMIT);
    loop {
        let admitted = gate.accept().await;
        let (stream, place) = (admitted.stream, admitted.place);
        let metrics = metrics.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let body = if req.uri().path() == "/metrics" {
                    Some(metrics.render(&state.jobs_by_phase()))
                } else {
                    None
                };
                async move {
                    let response = match body {
                        Some(text) => Response::builder()
                            .header("content-type", "text/plain; version=0.0.4")
                            .body(Full::new(Bytes::from(text))),
                        None => Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::from_static(b"not found\n"))),
                    };
                    Ok::<_, Infallible>(response.unwrap_or_default())
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(SCRAPE_CONNECTION_TIME, connection).await;
            drop(place);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_phases_in_prometheus_text() {
        let m = Metrics::default();
        Metrics::inc(&m.blobs_put);
        Metrics::inc(&m.blobs_put);
        let text = m.render(&[("training".into(), 0), ("finished".into(), 3)]);
        assert!(text.contains(
            "# TYPE chiron_host_blobs_put_total counter\nchiron_host_blobs_put_total 2\n"
        ));
        assert!(text.contains("chiron_host_jobs{phase=\"finished\"} 3\n"));
        assert!(text.contains("chiron_host_enclave_restarts_total 0\n"));
    }
}
