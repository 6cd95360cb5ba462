//! Flags of `kubemark test`.

use std::path::PathBuf;

use clap::{ArgAction, Args, Subcommand};
use kubemark_core::workload::load;

use crate::state::ClusterArgs;

/// Flags of `kubemark test`.
#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    /// Which test.
    #[command(subcommand)]
    pub test: TestKind,
}

/// The tests.
#[derive(Debug, Clone, Subcommand)]
pub enum TestKind {
    /// Saturate every node with pods at a fixed create rate and measure start-up latency.
    Density(DensityArgs),
    /// Deployments (big/medium/small), Services, ConfigMaps, Secrets, a DaemonSet, Jobs and
    /// StatefulSets: created, scaled up and down, deleted.
    Load(LoadArgs),
    /// Render run reports (JSON) into one static HTML dashboard that compares them side by side.
    Report(ReportArgs),
}

/// Flags of `kubemark test report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Run reports written by `kubemark test density` or `kubemark test load`.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(long, default_value = "kubemark-dashboard.html")]
    pub html: PathBuf,
}

/// Flags every test takes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// The kubemark cluster to test (ignored with --kubeconfig).
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Test any cluster by kubeconfig instead of a kubemark cluster.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Pods per Ready node.
    #[arg(long, default_value_t = 30)]
    pub pods_per_node: usize,
    /// Pod create rate, pods/s (the load test paces every object by the pods it makes).
    #[arg(long, default_value_t = 20.0)]
    pub qps: f64,
    /// Seconds to wait for each phase (pods Running, objects gone, namespaces deleted).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Delete what the test created afterwards (`--delete-namespace=false` keeps it all).
    #[arg(long, action = ArgAction::Set, default_value_t = true)]
    pub delete_namespace: bool,
    /// Pod start-up SLO (p50, p90 and p99), seconds.
    #[arg(long, default_value_t = 5.0)]
    pub pod_startup_threshold: f64,
    /// API call SLO for single-object calls (p99), seconds.
    #[arg(long, default_value_t = 1.0)]
    pub single_object_threshold: f64,
    /// API call SLO for LIST calls (p99), seconds.
    #[arg(long, default_value_t = 30.0)]
    pub list_threshold: f64,
    /// Where to write the JSON artifact (default: kubemark-<test>-<unix time>.json).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Flags of `kubemark test density`.
#[derive(Debug, Clone, Args)]
pub struct DensityArgs {
    /// Flags every test takes.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Flags of `kubemark test load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Flags every test takes.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Only these parts, comma-separated: deployments, services, configmaps, secrets,
    /// daemonsets, jobs, statefulsets (object kinds) and scale (the scale phase). Default: all.
    #[arg(long, value_delimiter = ',')]
    pub focus: Vec<Part>,
}

/// A part of the load test `--focus` can select ([`load::Part`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Deployments in big/medium/small groups.
    Deployments,
    /// A Service for every other Deployment and a headless one per StatefulSet.
    Services,
    /// A ConfigMap per Deployment, mounted by its pods.
    Configmaps,
    /// A Secret per Deployment, mounted by its pods.
    Secrets,
    /// One DaemonSet (a pod per node), rolled in the scale phase.
    Daemonsets,
    /// Jobs whose pods run for a few seconds and succeed.
    Jobs,
    /// StatefulSets (parallel pod management).
    Statefulsets,
    /// The scale phase: Deployments and StatefulSets to a random 50-150 % of their size.
    Scale,
}

impl From<Part> for load::Part {
    fn from(p: Part) -> Self {
        match p {
            Part::Deployments => load::Part::Deployments,
            Part::Services => load::Part::Services,
            Part::Configmaps => load::Part::Configmaps,
            Part::Secrets => load::Part::Secrets,
            Part::Daemonsets => load::Part::Daemonsets,
            Part::Jobs => load::Part::Jobs,
            Part::Statefulsets => load::Part::Statefulsets,
            Part::Scale => load::Part::Scale,
        }
    }
}
