//! Prometheus metrics of the node. Per-route handles are resolved when a snapshot is built, so
//! the request path updates atomics and never looks up a label set.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub api: Arc<String>,
    pub environment: Arc<String>,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub api: Arc<String>,
    pub environment: Arc<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub api: Arc<String>,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 250 µs … ~8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// Node-wide totals reported in the link heartbeat. Plain atomics, so the heartbeat reads two
/// words instead of walking the per-route counter families (10,000 APIs × 5 classes).
#[derive(Debug, Default)]
pub struct Totals {
    requests: AtomicU64,
    responses_5xx: AtomicU64,
}

impl Totals {
    /// Counts one answered request with its status.
    pub fn count(&self, status: u16) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.responses_5xx.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn responses_5xx(&self) -> u64 {
        self.responses_5xx.load(Ordering::Relaxed)
    }
}

/// All metrics of one node.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily<RouteLabels>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    concurrency_rejections: Family<RouteLabels, Counter>,
    /// Requests answered without a route (404, limits, admin), by status class.
    pub unrouted: Family<StatusLabels, Counter>,
    /// Request bodies answered 408 for being too slow, by reason (`client_body::BodyTimeout`).
    pub client_body_timeouts: Family<ReasonLabels, Counter>,
    pub config_generation: Gauge,
    pub config_reload_failures: Counter,
    pub requests_in_flight: Gauge,
    pub connections_open: Gauge,
    pub panics: Counter,
    /// Every answered request, routed or not.
    pub totals: Arc<Totals>,
}

pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

pub fn status_class_index(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5) - 1)
}

/// Handles of one route (API in one environment), resolved once per snapshot.
#[derive(Clone, Debug)]
pub struct RouteMetrics {
    pub by_class: [Counter; 5],
    pub duration: Histogram,
    pub concurrency_rejections: Counter,
    /// The node's totals, so the request path counts them without reaching for `Metrics`.
    pub totals: Arc<Totals>,
    labels: RouteLabels,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("switchyard");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let concurrency_rejections = Family::<RouteLabels, Counter>::default();
        let unrouted = Family::<StatusLabels, Counter>::default();
        let client_body_timeouts = Family::<ReasonLabels, Counter>::default();
        let config_generation = Gauge::default();
        let config_reload_failures = Counter::default();
        let requests_in_flight = Gauge::default();
        let connections_open = Gauge::default();
        let panics = Counter::default();
        registry.register(
            "requests",
            "Requests by API, environment and status class",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to the response head, by API and environment",
            duration.clone(),
        );
        registry.register(
            "upstream_errors",
            "Upstream failures by API and kind",
            upstream_errors.clone(),
        );
        registry.register(
            "concurrency_rejections",
            "Requests refused by the per-node concurrency limit",
            concurrency_rejections.clone(),
        );
        registry.register(
            "unrouted_requests",
            "Requests answered without a route",
            unrouted.clone(),
        );
        registry.register(
            "client_body_timeouts",
            "Requests answered 408 because the client sent its body too slowly, by reason",
            client_body_timeouts.clone(),
        );
        registry.register(
            "config_generation",
            "Generation of the applied snapshot",
            config_generation.clone(),
        );
        registry.register(
            "config_reload_failures",
            "Snapshots refused as invalid",
            config_reload_failures.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests being handled",
            requests_in_flight.clone(),
        );
        registry.register(
            "connections_open",
            "Open client connections",
            connections_open.clone(),
        );
        registry.register(
            "panics",
            "Requests that panicked (answered 500)",
            panics.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            upstream_errors,
            concurrency_rejections,
            unrouted,
            client_body_timeouts,
            config_generation,
            config_reload_failures,
            requests_in_flight,
            connections_open,
            panics,
            totals: Arc::default(),
        }
    }

    /// Label values are shared (`Arc`) between the label sets of a route: with 10,000 APIs the
    /// per-route metrics are a large part of the node's memory.
    pub fn route(&self, api: &Arc<String>, environment: &Arc<String>) -> RouteMetrics {
        let labels = RouteLabels {
            api: api.clone(),
            environment: environment.clone(),
        };
        let by_class = STATUS_CLASSES.map(|status| {
            self.requests
                .get_or_create(&RequestLabels {
                    api: labels.api.clone(),
                    environment: labels.environment.clone(),
                    status,
                })
                .clone()
        });
        RouteMetrics {
            by_class,
            duration: self.duration.get_or_create(&labels).clone(),
            concurrency_rejections: self.concurrency_rejections.get_or_create(&labels).clone(),
            totals: self.totals.clone(),
            labels,
        }
    }

    /// Upstream errors are rare, so a label lookup there is fine.
    pub fn upstream_error(&self, route: &RouteMetrics, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                api: route.labels.api.clone(),
                kind,
            })
            .inc();
    }

    pub fn unrouted(&self, status: u16) {
        self.totals.count(status);
        self.unrouted
            .get_or_create(&StatusLabels {
                status: STATUS_CLASSES[status_class_index(status)],
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
