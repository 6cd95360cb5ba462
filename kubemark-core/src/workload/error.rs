//! What can go wrong while a workload runs.

use crate::measurement::MeasurementError;

/// An error of a workload. The messages name what the run left behind when it stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadError {
    /// The options cannot make a run.
    #[error("{0}")]
    InvalidOptions(String),
    /// The cluster has nowhere to run pods.
    #[error("no Ready, schedulable nodes in the cluster: nothing to run pods on")]
    NoSchedulableNodes,
    /// An API call failed; `what` says which.
    #[error("{what}")]
    Api {
        /// What the call was for, e.g. `creating pod density-3`.
        what: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// A measurement failed.
    #[error(transparent)]
    Measurement(#[from] MeasurementError),
    /// Density pods did not all reach Running in time.
    #[error(
        "only {running} of {total} density pods Running after {seconds}s (namespace {namespace} kept)"
    )]
    NotRunning {
        /// Pods seen Running.
        running: usize,
        /// Pods created.
        total: usize,
        /// The timeout.
        seconds: u64,
        /// The namespace, left for inspection.
        namespace: String,
    },
    /// Load workloads did not reach their spec in time.
    #[error(
        "load {phase}: workloads not settled after {seconds}s: {} (namespaces kept; `kubectl delete ns -l kubemark.io/run={run}` removes them)",
        waiting.join(", ")
    )]
    NotSettled {
        /// `create` or `scale`.
        phase: String,
        /// The timeout.
        seconds: u64,
        /// Up to five workloads still waiting, as `Kind namespace/name`.
        waiting: Vec<String>,
        /// The run's id (its `kubemark.io/run` label).
        run: String,
    },
    /// Objects of a load run were still there after the delete phase's timeout.
    #[error(
        "load delete: after {seconds}s still there: {} (`kubectl delete ns -l kubemark.io/run={run}` removes them)",
        left.join(", ")
    )]
    NotDeleted {
        /// The timeout.
        seconds: u64,
        /// What is left, as `count Kind`.
        left: Vec<String>,
        /// The run's id.
        run: String,
    },
    /// Namespaces were still there after the timeout.
    #[error("namespaces {} still exist after {seconds}s", names.join(", "))]
    NamespacesRemain {
        /// The namespaces.
        names: Vec<String>,
        /// The timeout.
        seconds: u64,
    },
    /// An object of the workload could not be built.
    #[error("building an object: {0}")]
    Object(#[from] serde_json::Error),
    /// The start time could not be formatted.
    #[error("formatting the start time: {0}")]
    Time(#[from] time::error::Format),
}

impl WorkloadError {
    /// An [`WorkloadError::Api`] error, for `map_err`.
    pub(crate) fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| Self::Api { what, source }
    }
}
