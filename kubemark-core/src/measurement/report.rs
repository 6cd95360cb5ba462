//! The run artifact: one JSON document per run, schema `kubemark.io/v1alpha1` `TestRun`
//! (documented in `docs/test-runs.md`). Plain data: every other measurement module fills a part
//! of it, and [`super::dashboard`] renders it.

use std::time::Duration;

/// Percentiles of a sample, in milliseconds.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    /// 50th percentile.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
    /// Sample size.
    pub count: usize,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values`.
    pub fn of(values: &[f64]) -> Self {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1]
        };
        Self {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: v.last().copied().unwrap_or(0.0),
            count: v.len(),
        }
    }
}

/// One SLO check.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// What was measured, e.g. `PodStartupLatency p99` or `APIResponsiveness POST pods (namespace) p99`.
    pub measurement: String,
    /// The value, in the threshold's unit.
    pub value: f64,
    /// The threshold.
    pub threshold: f64,
    /// `ms`, `s` or `pods/s`.
    pub unit: String,
    /// Whether the value is within the threshold.
    pub pass: bool,
}

impl Verdict {
    /// A "must be at most" check.
    pub fn at_most(measurement: impl Into<String>, value: f64, threshold: f64, unit: &str) -> Self {
        Self {
            measurement: measurement.into(),
            value,
            threshold,
            unit: unit.into(),
            pass: value <= threshold,
        }
    }
}

/// API call latency of one call kind.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiCall {
    /// Verb.
    pub verb: String,
    /// Resource.
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Scope.
    pub scope: String,
    /// 99th percentile, seconds.
    pub p99_seconds: f64,
    /// Calls during the test.
    pub count: f64,
}

/// A point of a time series.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Point {
    /// Seconds since the start of the run.
    pub t: f64,
    /// The value.
    pub v: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestRun {
    /// `kubemark.io/v1alpha1`.
    pub api_version: String,
    /// `TestRun`.
    pub kind: String,
    /// `density` or `load`.
    pub test: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// Wall time of the run, seconds.
    pub duration_seconds: f64,
    /// The API server's version.
    pub kubernetes_version: String,
    /// Ready, schedulable nodes at the start.
    pub nodes: usize,
    /// Pods per node asked for.
    pub pods_per_node: usize,
    /// Pods created.
    pub pods_created: usize,
    /// Pods whose start-up was measured (all created pods that reached Running).
    pub pods_measured: usize,
    /// Create rate asked for, pods/s.
    pub create_qps: f64,
    /// create → observed Running, ms (CL2's `pod_startup`).
    pub pod_startup_ms: Percentiles,
    /// create → scheduled (PodScheduled observed by watch), ms.
    pub create_to_schedule_ms: Percentiles,
    /// scheduled → observed Running, ms.
    pub schedule_to_run_ms: Percentiles,
    /// Pods scheduled per second, sampled each second.
    pub scheduling_throughput: Percentiles,
    /// Pods Running over time.
    pub running_over_time: Vec<Point>,
    /// API call latencies from the API server's histograms.
    pub api_calls: Vec<ApiCall>,
    /// Resident memory (bytes) and CPU (millicores) of each master component, sampled.
    pub components: Vec<ComponentUsage>,
    /// Objects per kind the test created and deleted (load test; empty for density).
    #[serde(default)]
    pub objects: Vec<ObjectCount>,
    /// Phases of the test and how long each took.
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// etcd as the API server sees it (request latency, db size) and, for a local master, as
    /// etcd itself reports it.
    #[serde(default)]
    pub etcd: Option<EtcdMetrics>,
    /// The SLO checks.
    pub verdicts: Vec<Verdict>,
    /// Whether every verdict passed.
    pub pass: bool,
}

/// Resource use of one process over the run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentUsage {
    /// Component name (`kube-apiserver`, ..., `hollow-nodes`).
    pub name: String,
    /// CPU, millicores, over the run.
    pub cpu_millicores: Percentiles,
    /// RSS, MiB.
    pub rss_mib: Percentiles,
    /// CPU samples over time.
    pub cpu_over_time: Vec<Point>,
}

/// What a test did with one object kind.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectCount {
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Objects created (re-creations not counted).
    pub created: usize,
    /// Objects deleted and confirmed gone.
    pub deleted: usize,
}

/// One phase of a test.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    /// `create`, `scale`, `delete`, ...
    pub name: String,
    /// Wall time, seconds, including the wait for the objects to settle.
    pub seconds: f64,
}

/// etcd's request latency and size over a run.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdMetrics {
    /// The API server's etcd requests (`etcd_request_duration_seconds`) per operation and
    /// type, slowest p99 first.
    pub requests: Vec<EtcdRequest>,
    /// Largest database size seen at the end of the run, bytes: etcd's own
    /// `etcd_mvcc_db_total_size_in_bytes` when etcd was scraped, else the API server's
    /// `apiserver_storage_size_bytes`.
    pub db_size_bytes: f64,
    /// etcd's WAL fsync p99 over the run, seconds (local masters only).
    #[serde(default)]
    pub wal_fsync_p99_seconds: Option<f64>,
    /// etcd's backend commit p99 over the run, seconds (local masters only).
    #[serde(default)]
    pub backend_commit_p99_seconds: Option<f64>,
    /// `apiserver` or `apiserver+etcd`: where the numbers came from.
    pub source: String,
}

/// The API server's requests to etcd of one kind.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdRequest {
    /// `get`, `list`, `create`, `update`, `delete`, `listWithCount`, ...
    pub operation: String,
    /// API group of the stored resource (empty for the core group).
    pub group: String,
    /// The stored resource, e.g. `pods`.
    pub resource: String,
    /// 99th percentile, seconds.
    pub p99_seconds: f64,
    /// Requests during the run.
    pub count: f64,
}

/// Seconds as milliseconds, for reports.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&values);
        assert_eq!(
            (p.p50, p.p90, p.p99, p.max, p.count),
            (50.0, 90.0, 99.0, 100.0, 100)
        );
        assert_eq!(Percentiles::of(&[]).count, 0);
        assert!(Verdict::at_most("x", 5.0, 5.0, "ms").pass);
        assert!(!Verdict::at_most("x", 5.1, 5.0, "ms").pass);
    }
}
