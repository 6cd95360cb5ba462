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
use super::super::leases::LeaseGaps;
use super::super::process::totals;
use super::super::sample::PodPhase;

const NAMESPACE: &str = "kubemark-bench";
const LABEL: &str = "kubemark.io/bench=pods";

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
