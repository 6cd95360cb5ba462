//! What every workload takes.

use std::time::Duration;

use super::error::WorkloadError;
use crate::measurement::slo::SloThresholds;

/// The options of a density or load run. The defaults are those of `kubemark test`.
#[derive(Debug, Clone, PartialEq)]
pub struct TestOptions {
    /// Pods per Ready node.
    pub pods_per_node: usize,
    /// Pod create rate, pods/s (the load test paces every object by the pods it makes).
    pub qps: f64,
    /// How long to wait for each phase (pods Running, objects gone, namespaces deleted).
    pub timeout: Duration,
    /// Whether to delete what the run created afterwards.
    pub delete_namespace: bool,
    /// The SLO thresholds the run is judged by.
    pub slo: SloThresholds,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            pods_per_node: 30,
            qps: 20.0,
            timeout: Duration::from_secs(600),
            delete_namespace: true,
            slo: SloThresholds::default(),
        }
    }
}

impl TestOptions {
    /// Refuses options that cannot make a run.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        if !(self.qps.is_finite() && self.qps > 0.0) {
            return Err(WorkloadError::InvalidOptions(
                "qps must be a positive number of pods per second".into(),
            ));
        }
        if self.pods_per_node == 0 {
            return Err(WorkloadError::InvalidOptions(
                "pods per node must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_rate_of_zero_or_no_pods_is_refused() {
        let ok = super::TestOptions::default();
        assert!(ok.validate().is_ok());
        for bad in [
            super::TestOptions {
                qps: 0.0,
                ..ok.clone()
            },
            super::TestOptions {
                qps: f64::NAN,
                ..ok.clone()
            },
            super::TestOptions {
                pods_per_node: 0,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
