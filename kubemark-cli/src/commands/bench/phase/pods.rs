//! The pod phase of a benchmark: N pods pre-bound to the nodes (`spec.nodeName`, so the scheduler
//! is out of the picture and only the node side is timed) until all are Running, then deleted
//! until all are gone; meanwhile the API server's request mix and the hollow side's share of the
//! machine's CPU.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};

use super::super::apiserver::{failed_counts, metrics, request_counts, request_deltas};
use super::super::leases::{LeaseGaps, StepDistribution};
use super::super::process::totals;

const NAMESPACE: &str = "kubemark-bench";
const LABEL: &str = "kubemark.io/bench=pods";

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

/// (busy, total) jiffies of the machine, all cores.
fn machine_ticks() -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("/proc/stat has no cpu line")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

fn pod(name: &str, node: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "labels": { "kubemark.io/bench": "pods" } },
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{ "name": "c", "image": "registry.k8s.io/pause:3.10" }],
        },
    }))?)
}

/// Counts pods Running (and, once deletion starts, pods still there) from a watch.
struct Tracker {
    task: tokio::task::JoinHandle<()>,
    state: std::sync::Arc<std::sync::Mutex<(BTreeSet<String>, BTreeSet<String>)>>,
}

impl Tracker {
    fn start(pods: Api<Pod>) -> Self {
        use kube::runtime::watcher::{self, Event};
        let state: std::sync::Arc<std::sync::Mutex<(BTreeSet<String>, BTreeSet<String>)>> =
            Default::default();
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                let config = watcher::Config::default().labels(LABEL);
                let mut stream = std::pin::pin!(watcher::watcher(pods, config));
                while let Some(event) = stream.next().await {
                    let mut s = state.lock().expect("not poisoned");
                    match event {
                        Ok(Event::Apply(p) | Event::InitApply(p)) => {
                            let name = p.metadata.name.clone().unwrap_or_default();
                            s.1.insert(name.clone());
                            let running = p.status.as_ref().and_then(|st| st.phase.as_deref())
                                == Some("Running");
                            if running {
                                s.0.insert(name);
                            }
                        }
                        Ok(Event::Delete(p)) => {
                            s.1.remove(&p.metadata.name.unwrap_or_default());
                        }
                        _ => {}
                    }
                }
            })
        };
        Self { task, state }
    }

    fn running(&self) -> usize {
        self.state.lock().expect("not poisoned").0.len()
    }

    fn existing(&self) -> usize {
        self.state.lock().expect("not poisoned").1.len()
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn wait(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> (bool, String),
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let (ok, progress) = done();
        if ok {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what} after {timeout:?}: {progress}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `request(i)` for pods 0..count, 64 at a time, as a test's client would; every one must
/// succeed, and all must be answered within `timeout`.
async fn each_pod<F, Fut>(
    count: usize,
    what: &str,
    timeout: Duration,
    request: F,
) -> anyhow::Result<()>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let all = futures::stream::iter(0..count)
        .map(request)
        .buffer_unordered(64)
        .collect::<Vec<_>>();
    let results = tokio::time::timeout(timeout, all)
        .await
        .map_err(|_| anyhow::anyhow!("pod {what} not all answered after {timeout:?}"))?;
    results.into_iter().collect()
}

/// Waits for the namespace's `default` ServiceAccount: until the controller-manager has created
/// it, the API server refuses every pod in the namespace (seen right after a restarted
/// controller-manager).
async fn default_service_account(client: &kube::Client, timeout: Duration) -> anyhow::Result<()> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    let deadline = Instant::now() + timeout;
    while accounts.get_opt("default").await?.is_none() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the ServiceAccount {NAMESPACE}/default did not appear within {} s; the controller-manager creates it: is it running?",
            timeout.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// The ServiceAccount whose token creates and deletes the bench's pods.
const CREATOR: &str = "replicaset-controller";

/// A client that acts as the ReplicaSet controller (its ServiceAccount's token; the
/// controller-manager runs with `--use-service-account-credentials`), so API Priority and
/// Fairness classifies the pod phase's requests as a Deployment's (`kube-system-service-accounts`,
/// priority level `workload-high`) rather than as the exempt admin's: the nodes' lease renewals
/// (`system-nodes`, level `system`) are then shielded from the burst as in a real cluster.
async fn workload_client(
    admin: &kube::Client,
    kubeconfig: &std::path::Path,
    timeout: Duration,
) -> anyhow::Result<kube::Client> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "kube-system");
    let deadline = Instant::now() + timeout;
    while accounts.get_opt(CREATOR).await?.is_none() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the ServiceAccount kube-system/{CREATOR} did not appear within {} s; the controller-manager creates it: is it running?",
            timeout.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(24 * 3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = accounts
        .create_token_request(CREATOR, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for kube-system/{CREATOR}"))?
        .status
        .and_then(|s| s.token)
        .with_context(|| format!("the token request for kube-system/{CREATOR} had no token"))?;
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    Ok(kube::Client::try_from(config)?)
}

/// Runs the pod phase with `count` pods over `nodes`, measuring `pids` as the hollow side.
/// Pods are named after the `round`: a peer whose watch lags (KWOK deletes pods by name) would
/// otherwise take a late delete of the last round's pod for one of this round's.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: &kube::Client,
    kubeconfig: &std::path::Path,
    round: u32,
    nodes: &[String],
    count: usize,
    pids: &[u32],
    timeout: Duration,
    idle_per_node_minute: &BTreeMap<String, f64>,
) -> anyhow::Result<PodPhase> {
    anyhow::ensure!(!nodes.is_empty(), "no nodes to bind pods to");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": NAMESPACE } }))?;
    match namespaces.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    default_service_account(client, timeout.min(Duration::from_secs(60))).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let tracker = Tracker::start(pods.clone());
    let creator = workload_client(client, kubeconfig, timeout.min(Duration::from_secs(60))).await?;
    let pods: Api<Pod> = Api::namespaced(creator, NAMESPACE);
    let leases = LeaseGaps::start(client.clone());
    let readiness = crate::commands::nodes::ReadyWatch::start(client);
    let text = metrics(client).await?;
    let (before, failed_before) = (request_counts(&text), failed_counts(&text));
    let (hollow0, _) = totals(pids)?;
    let (busy0, total0) = machine_ticks()?;
    let t0 = Instant::now();

    each_pod(count, "creates", timeout, |i| {
        let pods = pods.clone();
        let node = nodes[i % nodes.len()].clone();
        async move {
            let p = pod(&format!("bench-{round}-{i}"), &node)?;
            pods.create(&PostParams::default(), &p).await?;
            anyhow::Ok(())
        }
    })
    .await?;
    let seconds_to_created = t0.elapsed().as_secs_f64();
    wait("pods not Running", timeout, || {
        let r = tracker.running();
        (r >= count, format!("{r}/{count} Running"))
    })
    .await?;
    let seconds_to_running = t0.elapsed().as_secs_f64();
    eprintln!("{count} pre-bound pods Running in {seconds_to_running:.1}s");

    // One DELETE per pod, as a test's clean-up does: a single deletecollection of thousands of
    // pods outlives the API server's 60 s request timeout.
    let t1 = Instant::now();
    each_pod(count, "deletes", timeout, |i| {
        let pods = pods.clone();
        async move {
            match pods
                .delete(&format!("bench-{round}-{i}"), &DeleteParams::default())
                .await
            {
                Ok(_) => anyhow::Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    })
    .await?;
    wait("pods not deleted", timeout, || {
        let e = tracker.existing();
        (e == 0, format!("{e} still there"))
    })
    .await?;
    let seconds_to_deleted = t1.elapsed().as_secs_f64();
    eprintln!("{count} pods deleted in {seconds_to_deleted:.1}s");

    let leases = leases.finish();
    let nodes_lost_ready = readiness.lost_among(nodes);
    drop(readiness);
    let elapsed = t0.elapsed().as_secs_f64();
    let (hollow1, _) = totals(pids)?;
    let (busy1, total1) = machine_ticks()?;
    let text = metrics(client).await?;
    let (after, failed_after) = (request_counts(&text), failed_counts(&text));
    let node_minutes = nodes.len() as f64 * elapsed / 60.0;
    let deltas = request_deltas(&before, &after);
    let requests_per_node_minute = deltas
        .iter()
        .map(|(k, v)| (k.clone(), v / node_minutes))
        .collect();
    let requests_per_pod = deltas
        .iter()
        .filter_map(|(k, v)| {
            let idle = idle_per_node_minute.get(k).copied().unwrap_or(0.0) * node_minutes;
            let caused = (v - idle) / count as f64;
            // Below a request per hundred pods is the idle rate's noise, not the pods.
            (caused >= 0.01).then(|| (k.clone(), caused))
        })
        .collect();
    let failed_per_pod = request_deltas(&failed_before, &failed_after)
        .into_iter()
        .map(|(k, v)| (k, v / count as f64))
        .collect();
    // Process ticks are in clock ticks, /proc/stat in USER_HZ: the same unit on Linux.
    let machine = (total1 - total0).max(1) as f64;
    Ok(PodPhase {
        pods: count,
        seconds_to_created,
        seconds_to_running,
        seconds_to_deleted,
        requests_per_node_minute,
        requests_per_pod,
        failed_per_pod,
        hollow_cpu_percent: (hollow1 - hollow0) as f64 / machine * 100.0,
        machine_cpu_percent: (busy1 - busy0) as f64 / machine * 100.0,
        lease_max_gap_seconds: leases.max_gap,
        leases_missed: leases.missed,
        leases_late: leases.late,
        lease_renew_steps: leases.renew_steps,
        nodes_lost_ready,
        rounds: Vec::new(),
    })
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
