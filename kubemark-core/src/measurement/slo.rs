//! The SLO verdicts of ClusterLoader2's PodStartupLatency and APIResponsiveness: each measured
//! value checked against its threshold.

pub use super::report::Verdict;
use super::report::{ApiCall, Percentiles};

/// The thresholds a run is judged by, seconds. The defaults are Kubernetes' SLOs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloThresholds {
    /// Pod start-up (p50, p90 and p99).
    pub pod_startup_seconds: f64,
    /// API calls on a single object (p99).
    pub single_object_seconds: f64,
    /// LIST calls (p99).
    pub list_seconds: f64,
}

impl Default for SloThresholds {
    fn default() -> Self {
        Self {
            pod_startup_seconds: 5.0,
            single_object_seconds: 1.0,
            list_seconds: 30.0,
        }
    }
}

/// The verdicts for pod start-up (`startup`, milliseconds) and each API call kind.
pub fn verdicts(
    thresholds: &SloThresholds,
    startup: &Percentiles,
    calls: &[ApiCall],
) -> Vec<Verdict> {
    let threshold_ms = thresholds.pod_startup_seconds * 1000.0;
    let mut verdicts = vec![
        Verdict::at_most("PodStartupLatency p50", startup.p50, threshold_ms, "ms"),
        Verdict::at_most("PodStartupLatency p90", startup.p90, threshold_ms, "ms"),
        Verdict::at_most("PodStartupLatency p99", startup.p99, threshold_ms, "ms"),
    ];
    for call in calls {
        let threshold = if call.verb == "LIST" {
            thresholds.list_seconds
        } else {
            thresholds.single_object_seconds
        };
        let sub = if call.subresource.is_empty() {
            String::new()
        } else {
            format!("/{}", call.subresource)
        };
        verdicts.push(Verdict::at_most(
            format!(
                "APIResponsiveness {} {}{} ({}) p99",
                call.verb, call.resource, sub, call.scope
            ),
            call.p99_seconds,
            threshold,
            "s",
        ));
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(verb: &str, p99_seconds: f64) -> ApiCall {
        ApiCall {
            verb: verb.into(),
            resource: "pods".into(),
            subresource: String::new(),
            scope: "namespace".into(),
            p99_seconds,
            count: 10.0,
        }
    }

    #[test]
    fn lists_are_judged_by_the_list_threshold_and_the_rest_by_the_single_object_one() {
        let startup = Percentiles::of(&[100.0, 200.0, 6000.0]);
        let v = verdicts(
            &SloThresholds::default(),
            &startup,
            &[call("LIST", 2.0), call("POST", 2.0)],
        );
        let by_name = |n: &str| v.iter().find(|v| v.measurement == n).unwrap();
        assert!(by_name("PodStartupLatency p50").pass);
        assert!(!by_name("PodStartupLatency p99").pass, "6 s > 5 s");
        assert!(by_name("APIResponsiveness LIST pods (namespace) p99").pass);
        assert!(!by_name("APIResponsiveness POST pods (namespace) p99").pass);
        assert_eq!(v.len(), 5);
    }
}
