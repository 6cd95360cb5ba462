//! What a scale test measures, as ClusterLoader2 measures it, and how a run is judged and
//! reported. Each measurement is usable on its own; [`ClusterMeasurements`] takes the
//! cluster-side ones together over a run.
//!
//! - [`pod_startup`]: create → scheduled → Running per pod, from a watch ([`PodTracker`]);
//! - [`scheduling`]: pods scheduled per second;
//! - [`api_responsiveness`]: p99 latency per API call kind, from the API server's histograms;
//! - [`etcd`]: the API server's etcd requests, etcd's db size, fsync and commit latency;
//! - [`resource_usage`]: CPU and memory of processes on this machine or of a remote master;
//! - [`slo`]: the verdicts against the SLO thresholds;
//! - [`report`]: the run artifact ([`TestRun`], JSON), and [`dashboard`] its HTML rendering;
//! - [`prometheus`]: the metrics text format underneath.
//!
//! The workloads that drive a run are in [`crate::workload`].

pub mod api_responsiveness;
mod cluster;
pub mod dashboard;
mod error;
pub mod etcd;
pub mod pod_startup;
pub mod prometheus;
pub mod report;
pub mod resource_usage;
pub mod scheduling;
pub mod slo;
mod target;

pub use cluster::{ClusterMeasurements, ClusterResults};
pub use error::MeasurementError;
pub use pod_startup::{PodTimings, PodTracker};
pub use report::TestRun;
pub use target::Target;
