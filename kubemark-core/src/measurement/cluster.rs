//! The cluster-side measurements of a run, taken together: API responsiveness and etcd from
//! scrapes before and after, resource usage sampled in between.

use super::api_responsiveness;
use super::error::MeasurementError;
use super::etcd::{self, Snapshot};
use super::prometheus::scrape;
use super::report::{ApiCall, ComponentUsage, EtcdMetrics};
use super::resource_usage::Sampler;
use super::target::Target;

/// Measurements in progress: started before a run's workload, finished after it.
pub struct ClusterMeasurements {
    client: kube::Client,
    local: Option<crate::master::LocalState>,
    before: Snapshot,
    sampler: Option<Sampler>,
}

/// What [`ClusterMeasurements::finish`] found.
#[derive(Debug, Clone)]
pub struct ClusterResults {
    /// API calls, slowest p99 first.
    pub api_calls: Vec<ApiCall>,
    /// etcd.
    pub etcd: EtcdMetrics,
    /// The sampled processes (empty when the target names none).
    pub components: Vec<ComponentUsage>,
}

impl ClusterMeasurements {
    /// Takes the first scrape and starts sampling processes.
    pub async fn start(target: &Target) -> Result<Self, MeasurementError> {
        let before = Snapshot::take(scrape(target.client()).await?, target.local_master()).await;
        let sample = !target.processes().is_empty() || target.remote_master().is_some();
        Ok(Self {
            client: target.client().clone(),
            local: target.local_master().cloned(),
            before,
            sampler: sample.then(|| {
                Sampler::start(target.processes().to_vec(), target.remote_master().cloned())
            }),
        })
    }

    /// Takes the second scrape and stops sampling.
    pub async fn finish(self) -> Result<ClusterResults, MeasurementError> {
        let after = Snapshot::take(scrape(&self.client).await?, self.local.as_ref()).await;
        let api_calls =
            api_responsiveness::api_calls(self.before.apiserver_text(), after.apiserver_text());
        let components = match self.sampler {
            Some(s) => s.stop().await,
            None => Vec::new(),
        };
        Ok(ClusterResults {
            api_calls,
            etcd: etcd::summarize(&self.before, &after),
            components,
        })
    }
}
