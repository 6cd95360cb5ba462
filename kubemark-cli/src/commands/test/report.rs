//! The run artifact: one JSON document per run, schema `kubemark.io/v1alpha1` `TestRun`
//! (documented in `docs/test-runs.md`).

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
    /// `density`.
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

/// Seconds as milliseconds, for reports.
pub fn ms(d: Duration) -> f64 {
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
