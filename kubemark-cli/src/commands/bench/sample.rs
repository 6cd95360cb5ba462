//! What one measurement found: the JSON sample of `kubemark bench --json` (its field names are
//! the schema of docs/bench/*.json).

use std::collections::BTreeMap;

use super::leases::StepDistribution;
use super::phase::pods::PodPhase;
use super::phase::scrape::ScrapePhase;

/// One measured point: one implementation at one node count.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// `kubemark-rs` (ours), `upstream` (cmd/kubemark) or `kwok`.
    pub implementation: &'static str,
    /// Processes hosting the nodes.
    pub processes: usize,
    pub nodes: usize,
    pub seconds_to_ready: f64,
    /// From the last node Ready to the start of the idle phase: at least 15 s, longer while the
    /// controller-manager was still writing to the nodes (see `settle`).
    pub settle_seconds: f64,
    pub idle_seconds: u64,
    /// Mean RSS over the idle phase (sampled every few seconds: a Go process's RSS rises and
    /// falls with its garbage collector, so one sample could land anywhere in that cycle).
    pub rss_bytes: u64,
    pub rss_bytes_per_node: u64,
    /// The smallest and largest of those samples.
    pub rss_bytes_min: u64,
    pub rss_bytes_max: u64,
    /// How many samples the mean is of.
    pub rss_samples: usize,
    pub cpu_millicores_total: f64,
    pub cpu_millicores_per_node: f64,
    /// kube-apiserver's CPU over the idle phase, per node: how much serving one idle node
    /// costs the control plane (the wire format, the requests, the watches).
    pub apiserver_millicores_per_node: f64,
    /// API requests per node-minute while idle, by "VERB resource[/subresource]".
    pub requests_per_node_minute: BTreeMap<String, f64>,
    /// The same requests by how API Priority and Fairness classified them, "priority level
    /// (flow schema)", per node-minute: whether a simulator's traffic queues where kubelets'
    /// does (`node-high` for leases and node status, `system` for the rest) or is exempt.
    pub requests_per_node_minute_by_priority: BTreeMap<String, f64>,
    /// Open watches on the API server by resource (all clients), at the end of the idle phase.
    pub watches: BTreeMap<String, f64>,
    /// Sockets the hollow process holds (one HTTP/2 connection per node is the model).
    pub sockets: usize,
    /// The longest time any node Lease went without a renewal during the idle phase, seconds.
    pub lease_max_gap_seconds: f64,
    /// Leases that went longer than their duration (40 s) without renewal: the node would have
    /// been marked NotReady.
    pub leases_missed: usize,
    /// Leases renewed late at least once (a gap over 15 s; the renew interval is 10 s + 4 %).
    pub leases_late: usize,
    /// The longest step of any Lease's own `renewTime` during the idle phase, seconds. A node
    /// stamps it before its PUT and waits for the PUT before the next interval, so a long step
    /// means a PUT the API server answered slowly (or a late node), and a gap above that is
    /// not, but the watch that saw it delivered late.
    pub lease_max_renew_step_seconds: f64,
    /// Leases whose `renewTime` stepped by more than 15 s at least once.
    pub leases_late_by_renew_time: usize,
    /// Every `renewTime` step of every node Lease during the idle phase, as a distribution: the
    /// kubelet renews every 10 s + up to 4 % jitter, so the median shows the simulator's cadence
    /// and the 99th percentile how late the tail runs (one maximum hides whether one lease or
    /// all of them were late).
    pub lease_renew_steps: StepDistribution,
    /// The pod phase (`--pods`), after the idle phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodPhase>,
    /// Why the pod phase did not finish (the idle numbers stand).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods_error: Option<String>,
    /// The scrape phase (`--scrape`), after the idle and pod phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape: Option<ScrapePhase>,
    /// Why the scrape phase did not finish.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_error: Option<String>,
    /// Control-plane components found exited (and restarted) before a phase: the numbers after
    /// include the restarted component's start-up.
    pub control_plane_restarts: usize,
    /// Which components those were, in the order found (one name per restart).
    pub control_plane_restarted: Vec<&'static str>,
}
