//! Scale-test workloads, as ClusterLoader2 runs them, each measured and judged by
//! [`crate::measurement`]:
//!
//! - [`density`]: pods per node at a fixed rate until all are Running;
//! - [`load`]: Deployments, StatefulSets, Jobs, a DaemonSet and their Services, ConfigMaps and
//!   Secrets, created, scaled and deleted.
//!
//! A harness runs one with a [`Target`](crate::measurement::Target) (a client, and optionally
//! the processes and master to watch), [`TestOptions`] and a [`Progress`] (or [`Logged`]):
//!
//! ```no_run
//! # async fn example(client: kube::Client) -> Result<(), kubemark_core::workload::WorkloadError> {
//! use kubemark_core::measurement::Target;
//! use kubemark_core::workload::{Logged, TestOptions, density};
//!
//! let run = density::run(&Target::new(client), &TestOptions::default(), &Logged).await?;
//! println!("pod start-up p99 {} ms, SLOs {}", run.pod_startup_ms.p99,
//!     if run.pass { "met" } else { "missed" });
//! # Ok(()) }
//! ```

pub mod density;
mod error;
pub mod load;
mod namespaces;
mod options;
mod progress;
mod start;

pub use error::WorkloadError;
pub use namespaces::{delete_namespaces, run_namespaces};
pub use options::TestOptions;
pub use progress::{Logged, Progress, Step};
