//! The settle phase: from the last node Ready until the controller-manager has caught up with the
//! nodes, so that the idle phase measures idle nodes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::super::apiserver::{metrics, request_counts};

/// The least time between the last node Ready and the idle phase: registration traffic (first
/// status writes) and a restarted component's start settle.
const SETTLE_AT_LEAST: Duration = Duration::from_secs(15);
/// How long the controller-manager's writes to the nodes are waited out at most.
const SETTLE_AT_MOST: Duration = Duration::from_secs(300);
/// The window over which the controller-manager's writes to the nodes are counted.
const SETTLE_WINDOW: Duration = Duration::from_secs(5);

/// Writes to the Node objects themselves (not their status): the controller-manager's (pod
/// CIDRs, the TTL controller's annotation each time the cluster crosses one of its size
/// thresholds). Nodes write only their status, so an idle cluster makes none.
fn node_writes(counts: &BTreeMap<String, f64>) -> f64 {
    ["PATCH nodes", "PUT nodes"]
        .iter()
        .filter_map(|k| counts.get(*k))
        .sum()
}

/// Whether `writes` node writes in one [`SETTLE_WINDOW`] mean the controller-manager has caught
/// up with `n` nodes: at most one per thousand nodes (a straggler, not a pass over all nodes).
fn settled(writes: f64, n: usize) -> bool {
    writes <= (n / 1000).max(1) as f64
}

/// Waits until the controller-manager has caught up with the joined nodes, so that the idle
/// phase measures idle nodes and not its catching up; returns the seconds waited and the request
/// counts at the end. After a long join (thousands of nodes on 2 cores) the TTL controller
/// re-annotates every node for each size threshold crossed, for minutes: a simulator whose
/// nodes join slower would otherwise have more of that in its idle window than one that joins
/// fast.
/// Returns the wait and the API server's metrics (Prometheus text) at its end.
pub async fn settle(client: &kube::Client, n: usize) -> anyhow::Result<(f64, String)> {
    let t0 = Instant::now();
    tokio::time::sleep(SETTLE_AT_LEAST - SETTLE_WINDOW).await;
    let mut text = metrics(client).await?;
    let mut counts = request_counts(&text);
    loop {
        tokio::time::sleep(SETTLE_WINDOW).await;
        text = metrics(client).await?;
        let now = request_counts(&text);
        let writes = node_writes(&now) - node_writes(&counts);
        counts = now;
        if settled(writes, n) {
            let waited = t0.elapsed().as_secs_f64();
            if waited > (SETTLE_AT_LEAST + SETTLE_WINDOW).as_secs_f64() {
                eprintln!("the controller-manager caught up with the nodes after {waited:.0} s");
            }
            return Ok((waited, text));
        }
        if t0.elapsed() >= SETTLE_AT_MOST {
            eprintln!(
                "warning: the control plane still wrote {writes} nodes in {} s after {} s; measuring anyway",
                SETTLE_WINDOW.as_secs(),
                t0.elapsed().as_secs()
            );
            return Ok((t0.elapsed().as_secs_f64(), text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idle_phase_waits_for_the_controller_managers_node_writes_only() {
        let counts = |pairs: &[(&str, f64)]| -> BTreeMap<String, f64> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        // Status writes and lease renewals are the nodes' own idle traffic; only writes to the
        // Node objects themselves are the controller-manager catching up.
        let c = counts(&[
            ("PATCH nodes", 10.0),
            ("PUT nodes", 2.0),
            ("PATCH nodes/status", 500.0),
            ("PUT leases", 900.0),
        ]);
        assert_eq!(node_writes(&c), 12.0);
        assert_eq!(node_writes(&BTreeMap::new()), 0.0);
        // One straggler per thousand nodes is settled; a pass over the nodes is not.
        assert!(settled(0.0, 3));
        assert!(settled(1.0, 3));
        assert!(!settled(2.0, 3));
        assert!(settled(5.0, 5000));
        assert!(!settled(6.0, 5000));
        assert!(!settled(400.0, 5000));
    }
}
