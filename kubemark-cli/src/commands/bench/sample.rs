//! What one measurement found: the JSON sample of `kubemark bench --json` (its field names are
//! the schema of docs/bench/*.json).

use std::collections::BTreeMap;

use super::leases::StepDistribution;

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

/// What the pod phase measured.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodPhase {
    pub pods: usize,
    /// From the first create until every create was answered (the API server's share).
    pub seconds_to_created: f64,
    /// From the first create until every pod was Running.
    pub seconds_to_running: f64,
    /// From the delete until every pod was gone.
    pub seconds_to_deleted: f64,
    /// API requests per node-minute over the whole phase, by "VERB resource[/subresource]".
    pub requests_per_node_minute: BTreeMap<String, f64>,
    /// The requests the pods caused, per pod: the phase's requests minus what the same nodes
    /// send idle (the idle phase's rate) over the phase's length. Comparable across
    /// implementations whose phases last differently long; periodic requests (leases) cancel.
    pub requests_per_pod: BTreeMap<String, f64>,
    /// Requests of the phase that failed, per pod, by "VERB resource[/subresource] code"
    /// (included in the counts above; not reduced by the idle rate, which has none of these).
    pub failed_per_pod: BTreeMap<String, f64>,
    /// The hollow side's CPU as a share of the machine's (all cores) over the phase, percent.
    pub hollow_cpu_percent: f64,
    /// The whole machine's busy share over the phase, percent.
    pub machine_cpu_percent: f64,
    /// Node Leases over the phase, measured as in the idle phase: a pod burst that overloads the
    /// API server delays renewals, and a node whose Lease goes 40 s unrenewed is marked NotReady
    /// by the node lifecycle controller. With rounds: the worst round's.
    pub lease_max_gap_seconds: f64,
    /// Leases that went more than their 40 s duration without renewal.
    pub leases_missed: usize,
    /// Leases that went more than 15 s without renewal at least once.
    pub leases_late: usize,
    /// The phase's `renewTime` steps (with rounds: the round with the longest 99th percentile).
    pub lease_renew_steps: StepDistribution,
    /// Nodes that went from Ready to not Ready (NotReady or Unknown) at least once during the
    /// phase, by a watch of the Nodes: what the node lifecycle controller made of late leases
    /// and status. With rounds: the worst round's.
    pub nodes_lost_ready: usize,
    /// With `--pod-rounds` above 1: each round; the fields above are then their means.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<PodPhase>,
}

impl PodPhase {
    /// The means of several rounds (a request kind missing from a round counts as 0 there),
    /// keeping the rounds. One round is returned as it is.
    pub fn mean(mut rounds: Vec<PodPhase>) -> Option<PodPhase> {
        if rounds.len() <= 1 {
            return rounds.pop();
        }
        let n = rounds.len() as f64;
        let avg = |f: fn(&PodPhase) -> f64| rounds.iter().map(f).sum::<f64>() / n;
        let avg_map = |f: fn(&PodPhase) -> &BTreeMap<String, f64>| {
            let mut sum: BTreeMap<String, f64> = BTreeMap::new();
            for r in &rounds {
                for (k, v) in f(r) {
                    *sum.entry(k.clone()).or_default() += v;
                }
            }
            sum.into_iter().map(|(k, v)| (k, v / n)).collect()
        };
        Some(PodPhase {
            pods: rounds[0].pods,
            seconds_to_created: avg(|r| r.seconds_to_created),
            seconds_to_running: avg(|r| r.seconds_to_running),
            seconds_to_deleted: avg(|r| r.seconds_to_deleted),
            requests_per_node_minute: avg_map(|r| &r.requests_per_node_minute),
            requests_per_pod: avg_map(|r| &r.requests_per_pod),
            failed_per_pod: avg_map(|r| &r.failed_per_pod),
            hollow_cpu_percent: avg(|r| r.hollow_cpu_percent),
            machine_cpu_percent: avg(|r| r.machine_cpu_percent),
            lease_max_gap_seconds: rounds
                .iter()
                .map(|r| r.lease_max_gap_seconds)
                .fold(0.0, f64::max),
            leases_missed: rounds.iter().map(|r| r.leases_missed).max().unwrap_or(0),
            leases_late: rounds.iter().map(|r| r.leases_late).max().unwrap_or(0),
            nodes_lost_ready: rounds.iter().map(|r| r.nodes_lost_ready).max().unwrap_or(0),
            lease_renew_steps: rounds
                .iter()
                .map(|r| &r.lease_renew_steps)
                .max_by(|a, b| a.p99.total_cmp(&b.p99))
                .cloned()
                .unwrap_or_default(),
            rounds,
        })
    }
}

/// What the scrape phase measured.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScrapePhase {
    pub seconds: f64,
    pub resolution_seconds: u64,
    /// The hollow side's CPU over the phase, per node.
    pub cpu_millicores_per_node: f64,
    /// Mean RSS over the phase, per node.
    pub rss_bytes_per_node: u64,
    /// metrics-server's log lines about a node it failed to scrape.
    pub scrape_failures: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(running: f64, per_pod: &[(&str, f64)]) -> PodPhase {
        PodPhase {
            pods: 10,
            seconds_to_created: 1.0,
            seconds_to_running: running,
            seconds_to_deleted: 2.0,
            requests_per_node_minute: BTreeMap::new(),
            requests_per_pod: per_pod.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            failed_per_pod: BTreeMap::new(),
            hollow_cpu_percent: 5.0,
            machine_cpu_percent: 50.0,
            lease_max_gap_seconds: running * 4.0,
            leases_missed: running as usize,
            leases_late: 10,
            lease_renew_steps: StepDistribution {
                count: 100,
                p50: 10.2,
                p90: 11.0,
                p99: running * 4.0,
                max: running * 5.0,
            },
            nodes_lost_ready: running as usize * 2,
            rounds: Vec::new(),
        }
    }

    #[test]
    fn rounds_are_averaged_and_kept() {
        assert!(PodPhase::mean(Vec::new()).is_none());
        let one = PodPhase::mean(vec![round(3.0, &[("GET pods", 2.0)])]).unwrap();
        assert!(one.rounds.is_empty(), "a single round is reported as it is");
        let mean = PodPhase::mean(vec![
            round(3.0, &[("GET pods", 2.0), ("WATCH pods", 0.1)]),
            round(5.0, &[("GET pods", 3.0)]),
        ])
        .unwrap();
        assert_eq!(mean.seconds_to_running, 4.0);
        assert_eq!(mean.requests_per_pod["GET pods"], 2.5);
        // Missing from a round counts as none in that round.
        assert_eq!(mean.requests_per_pod["WATCH pods"], 0.05);
        assert_eq!(mean.rounds.len(), 2);
        // Leases: the worst round, not a mean that would hide it.
        assert_eq!(mean.lease_max_gap_seconds, 20.0);
        assert_eq!((mean.leases_missed, mean.leases_late), (5, 10));
        assert_eq!(mean.lease_renew_steps.p99, 20.0);
        assert_eq!(mean.lease_renew_steps.max, 25.0);
        assert_eq!(mean.nodes_lost_ready, 10);
    }
}
