//! `kubemark bench`: hollow nodes measured on this machine against a real local control plane.
//! Prints a table and optionally writes JSON; never asserts (targets are for people to judge).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use kubemark_core::binaries::BinaryLocator;
use kubemark_core::master::{LocalControlPlane, LocalOptions};

use crate::cli::BenchArgs;
use kubemark_core::cluster::HollowProcess;

mod pods;
mod scrape;

/// Processes of a measurement, killed (and reaped) when dropped: however a measurement ends,
/// an interrupted or failed run leaves nothing running.
#[derive(Default)]
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Kills the hollow-node process group `pid` leads when dropped, unless disarmed after an
/// orderly stop (the pid may be reused afterwards).
struct HollowGuard(Option<u32>);

impl HollowGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for HollowGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let group = nix::unistd::Pid::from_raw(-(pid as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Runs one measurement unless interrupted; dropping it stops what it started (the control
/// plane's own `Drop`, [`Children`], [`HollowGuard`], the temporary directories).
async fn unless_interrupted(
    measurement: impl Future<Output = anyhow::Result<Sample>>,
) -> anyhow::Result<anyhow::Result<Sample>> {
    tokio::select! {
        r = measurement => Ok(r),
        _ = crate::signals::interrupted() => anyhow::bail!("interrupted; the run's control plane and hollow nodes were stopped"),
    }
}

/// One measured point.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Sample {
    /// `kubemark-rs` (ours), `upstream` (cmd/kubemark) or `kwok`.
    implementation: &'static str,
    /// Processes hosting the nodes.
    processes: usize,
    nodes: usize,
    seconds_to_ready: f64,
    /// From the last node Ready to the start of the idle phase: at least 15 s, longer while the
    /// controller-manager was still writing to the nodes (see `settle`).
    settle_seconds: f64,
    idle_seconds: u64,
    /// Mean RSS over the idle phase (sampled every few seconds: a Go process's RSS rises and
    /// falls with its garbage collector, so one sample could land anywhere in that cycle).
    rss_bytes: u64,
    rss_bytes_per_node: u64,
    /// The smallest and largest of those samples.
    rss_bytes_min: u64,
    rss_bytes_max: u64,
    /// How many samples the mean is of.
    rss_samples: usize,
    cpu_millicores_total: f64,
    cpu_millicores_per_node: f64,
    /// kube-apiserver's CPU over the idle phase, per node: how much serving one idle node
    /// costs the control plane (the wire format, the requests, the watches).
    apiserver_millicores_per_node: f64,
    /// API requests per node-minute while idle, by "VERB resource[/subresource]".
    requests_per_node_minute: BTreeMap<String, f64>,
    /// The same requests by how API Priority and Fairness classified them, "priority level
    /// (flow schema)", per node-minute: whether a simulator's traffic queues where kubelets'
    /// does (`node-high` for leases and node status, `system` for the rest) or is exempt.
    requests_per_node_minute_by_priority: BTreeMap<String, f64>,
    /// Open watches on the API server by resource (all clients), at the end of the idle phase.
    watches: BTreeMap<String, f64>,
    /// Sockets the hollow process holds (one HTTP/2 connection per node is the model).
    sockets: usize,
    /// The longest time any node Lease went without a renewal during the idle phase, seconds.
    lease_max_gap_seconds: f64,
    /// Leases that went longer than their duration (40 s) without renewal: the node would have
    /// been marked NotReady.
    leases_missed: usize,
    /// Leases renewed late at least once (a gap over 15 s; the renew interval is 10 s + 4 %).
    leases_late: usize,
    /// The longest step of any Lease's own `renewTime` during the idle phase, seconds. A node
    /// stamps it before its PUT and waits for the PUT before the next interval, so a long step
    /// means a PUT the API server answered slowly (or a late node), and a gap above that is
    /// not, but the watch that saw it delivered late.
    lease_max_renew_step_seconds: f64,
    /// Leases whose `renewTime` stepped by more than 15 s at least once.
    leases_late_by_renew_time: usize,
    /// Every `renewTime` step of every node Lease during the idle phase, as a distribution: the
    /// kubelet renews every 10 s + up to 4 % jitter, so the median shows the simulator's cadence
    /// and the 99th percentile how late the tail runs (one maximum hides whether one lease or
    /// all of them were late).
    lease_renew_steps: StepDistribution,
    /// The pod phase (`--pods`), after the idle phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pods: Option<pods::PodPhase>,
    /// Why the pod phase did not finish (the idle numbers stand).
    #[serde(skip_serializing_if = "Option::is_none")]
    pods_error: Option<String>,
    /// The scrape phase (`--scrape`), after the idle and pod phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    scrape: Option<scrape::ScrapePhase>,
    /// Why the scrape phase did not finish.
    #[serde(skip_serializing_if = "Option::is_none")]
    scrape_error: Option<String>,
    /// Control-plane components found exited (and restarted) before a phase: the numbers after
    /// include the restarted component's start-up.
    control_plane_restarts: usize,
    /// Which components those were, in the order found (one name per restart).
    control_plane_restarted: Vec<&'static str>,
}

/// Per node Lease, the longest gap between renewals seen by a watch, up to now, and the
/// longest step of its `renewTime`; and every step, of all leases.
struct LeaseGaps {
    task: tokio::task::JoinHandle<()>,
    seen: std::sync::Arc<std::sync::Mutex<LeasesSeen>>,
}

/// A phase that fails before `finish` stops the watch too.
impl Drop for LeaseGaps {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct LeasesSeen {
    by_name: BTreeMap<String, LeaseSeen>,
    steps: Vec<f64>,
}

/// Quantiles of a set of durations, seconds (nearest rank).
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct StepDistribution {
    count: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl StepDistribution {
    fn of(mut steps: Vec<f64>) -> Self {
        if steps.is_empty() {
            return Self::default();
        }
        steps.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = (q * steps.len() as f64).ceil() as usize;
            steps[rank.clamp(1, steps.len()) - 1]
        };
        StepDistribution {
            count: steps.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: steps[steps.len() - 1],
        }
    }
}

/// One form for the idle and the pod phase's report lines, so they read alike.
impl std::fmt::Display for StepDistribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1} s, p90 {:.1} s, p99 {:.1} s, max {:.1} s",
            self.p50, self.p90, self.p99, self.max
        )
    }
}

struct LeaseSeen {
    at: Instant,
    max_gap: f64,
    renew_time: Option<k8s_openapi::jiff::Timestamp>,
    max_renew_step: f64,
}

impl LeaseSeen {
    fn new(at: Instant, renew_time: Option<k8s_openapi::jiff::Timestamp>) -> Self {
        LeaseSeen {
            at,
            max_gap: 0.0,
            renew_time,
            max_renew_step: 0.0,
        }
    }

    /// The lease seen (again) at `at` with `renew_time`; the step of its `renewTime`, if it
    /// moved on. As the node lifecycle controller, only a `renewTime` later than the latest one
    /// seen is a renewal: a write that leaves it, or sets it back (a stale update landing after
    /// a newer one), neither ends a gap nor starts a step.
    fn observe(
        &mut self,
        at: Instant,
        renew_time: Option<k8s_openapi::jiff::Timestamp>,
    ) -> Option<f64> {
        let step = match (self.renew_time, renew_time) {
            (Some(before), Some(after)) if after > before => {
                Some(after.duration_since(before).as_secs_f64())
            }
            // The first renewal of a Lease created without one.
            (None, Some(_)) => None,
            _ => return None,
        };
        self.max_gap = self.max_gap.max(at.duration_since(self.at).as_secs_f64());
        self.at = at;
        self.renew_time = renew_time;
        if let Some(step) = step {
            self.max_renew_step = self.max_renew_step.max(step);
        }
        step
    }
}

/// Lease gaps at the end of the idle phase.
struct LeaseGapSummary {
    max_gap: f64,
    missed: usize,
    late: usize,
    max_renew_step: f64,
    late_by_renew_time: usize,
    renew_steps: StepDistribution,
}

impl LeaseGaps {
    fn start(client: kube::Client) -> Self {
        use kube::runtime::watcher::{self, Event};
        let seen: std::sync::Arc<std::sync::Mutex<LeasesSeen>> = Default::default();
        let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
            kube::Api::namespaced(client, "kube-node-lease");
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut stream =
                    std::pin::pin!(watcher::watcher(leases, watcher::Config::default()));
                while let Some(event) = stream.next().await {
                    let lease = match event {
                        Ok(Event::Apply(l) | Event::InitApply(l)) => l,
                        _ => continue,
                    };
                    let renew_time = lease.spec.and_then(|s| s.renew_time).map(|t| t.0);
                    let name = lease.metadata.name.unwrap_or_default();
                    let now = Instant::now();
                    let mut seen = seen.lock().expect("not poisoned");
                    let step = seen
                        .by_name
                        .entry(name)
                        .or_insert_with(|| LeaseSeen::new(now, renew_time))
                        .observe(now, renew_time);
                    seen.steps.extend(step);
                }
            })
        };
        Self { task, seen }
    }

    /// The gaps, counting the time since each lease's last renewal as one. The watch stops
    /// (on drop) after the summary is taken.
    fn finish(self) -> LeaseGapSummary {
        let now = Instant::now();
        let mut all = self.seen.lock().expect("not poisoned");
        let renew_steps = StepDistribution::of(std::mem::take(&mut all.steps));
        let seen = &all.by_name;
        let gaps: Vec<f64> = seen
            .values()
            .map(|s| s.max_gap.max(now.duration_since(s.at).as_secs_f64()))
            .collect();
        LeaseGapSummary {
            max_gap: gaps.iter().copied().fold(0.0, f64::max),
            missed: gaps.iter().filter(|g| **g > 40.0).count(),
            late: gaps.iter().filter(|g| **g > 15.0).count(),
            max_renew_step: seen.values().map(|s| s.max_renew_step).fold(0.0, f64::max),
            late_by_renew_time: seen.values().filter(|s| s.max_renew_step > 15.0).count(),
            renew_steps,
        }
    }
}

fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

async fn metrics(client: &kube::Client) -> anyhow::Result<String> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    Ok(client.request_text(req).await?)
}

/// Sums the samples of the Prometheus series `metric` by a key made from each sample's labels;
/// samples for which `key` gives `None` are left out.
fn sum_by(
    text: &str,
    metric: &str,
    key: impl Fn(&dyn Fn(&str) -> String) -> Option<String>,
) -> BTreeMap<String, f64> {
    let prefix = format!("{metric}{{");
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let label = |name: &str| super::test::metrics::label(labels, name).to_string();
        if let Some(k) = key(&label) {
            *out.entry(k).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    out
}

/// Open WATCH requests by resource, from `apiserver_longrunning_requests`.
fn watches(text: &str) -> BTreeMap<String, f64> {
    sum_by(text, "apiserver_longrunning_requests", |label| {
        (label("verb") == "WATCH").then(|| label("resource"))
    })
}

/// `apiserver_flowcontrol_dispatched_requests_total` by "priority level (flow schema)".
fn dispatched_by_priority(text: &str) -> BTreeMap<String, f64> {
    sum_by(
        text,
        "apiserver_flowcontrol_dispatched_requests_total",
        |label| {
            Some(format!(
                "{} ({})",
                label("priority_level"),
                label("flow_schema")
            ))
        },
    )
}

/// `apiserver_request_total` by "VERB resource[/subresource]".
fn request_counts(text: &str) -> BTreeMap<String, f64> {
    tally(text, false)
}

/// The failed part of `apiserver_request_total` (codes from 400) by "VERB resource[/subresource]
/// code": a 403 the Node authorizer gave before its graph knew a pod, a 409 of a stale write.
fn failed_counts(text: &str) -> BTreeMap<String, f64> {
    tally(text, true)
}

fn tally(text: &str, failed: bool) -> BTreeMap<String, f64> {
    sum_by(text, "apiserver_request_total", |label| {
        let (verb, resource, sub) = (label("verb"), label("resource"), label("subresource"));
        let key = if sub.is_empty() {
            format!("{verb} {resource}")
        } else {
            format!("{verb} {resource}/{sub}")
        };
        if !failed {
            return Some(key);
        }
        let code = label("code");
        code.parse::<u16>()
            .is_ok_and(|c| c >= 400)
            .then(|| format!("{key} {code}"))
    })
}

/// CPU ticks and RSS bytes summed over `pids`.
fn totals(pids: &[u32]) -> anyhow::Result<(u64, u64)> {
    let mut ticks = 0;
    let mut rss = 0;
    for pid in pids {
        let (t, r) = crate::procfs::cpu_ticks_and_rss(*pid)
            .with_context(|| format!("process {pid} is gone"))?;
        ticks += t;
        rss += r;
    }
    Ok((ticks, rss))
}

/// The requests served between two `request_counts`, by "VERB resource", where there were any.
fn request_deltas(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let delta = v - before.get(k).copied().unwrap_or(0.0);
            (delta > 0.0).then(|| (k.clone(), delta))
        })
        .collect()
}

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
async fn settle(client: &kube::Client, n: usize) -> anyhow::Result<(f64, String)> {
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

/// How often the idle phase samples the hollow processes' RSS.
const RSS_SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// The idle phase: settle, then CPU, RSS, request mix and watches over `args.idle` seconds.
async fn idle_phase(
    implementation: &'static str,
    n: usize,
    pids: &[u32],
    seconds_to_ready: f64,
    cp: &mut LocalControlPlane,
    args: &BenchArgs,
) -> anyhow::Result<Sample> {
    // The controller-manager and scheduler exit when they lose their leader lease, which a
    // saturated machine can make them do (100 upstream processes starting at once did): a real
    // master's supervisor restarts them, and so does the bench, before it measures, and says so.
    let mut restarted = cp.supervise()?;
    let client = cp.client().await?;
    let (settle_seconds, text_before) = settle(&client, n).await?;
    let before = request_counts(&text_before);
    let apiserver: Vec<u32> = cp
        .pids()
        .into_iter()
        .filter(|(component, _)| component == "kube-apiserver")
        .map(|(_, pid)| pid)
        .collect();
    let (apiserver0, _) = totals(&apiserver)?;
    let (ticks0, _) = totals(pids)?;
    let gaps = LeaseGaps::start(client.clone());
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(args.idle);
    let mut rss_samples = Vec::new();
    loop {
        tokio::time::sleep_until(end.min(Instant::now() + RSS_SAMPLE_EVERY).into()).await;
        rss_samples.push(totals(pids)?.1);
        if Instant::now() >= end {
            break;
        }
    }
    let lease_gaps = gaps.finish();
    let (ticks1, _) = totals(pids)?;
    let (apiserver1, _) = totals(&apiserver)?;
    let elapsed = t0.elapsed().as_secs_f64();
    let rss = rss_samples.iter().sum::<u64>() / rss_samples.len() as u64;
    let text = metrics(&client).await?;
    let after = request_counts(&text);
    let millicores = |ticks: u64| ticks as f64 / crate::procfs::clock_ticks() / elapsed * 1000.0;
    let cpu_total = millicores(ticks1 - ticks0);
    let apiserver_total = millicores(apiserver1 - apiserver0);
    let node_minutes = n as f64 * elapsed / 60.0;
    let per_node_minute = |before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>| {
        request_deltas(before, after)
            .into_iter()
            .map(|(k, delta)| (k, delta / node_minutes))
            .collect::<BTreeMap<String, f64>>()
    };
    let requests_per_node_minute = per_node_minute(&before, &after);
    let requests_per_node_minute_by_priority = per_node_minute(
        &dispatched_by_priority(&text_before),
        &dispatched_by_priority(&text),
    );
    let (pods, pods_error) = if args.pods > 0 {
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
        let names: Vec<String> = nodes
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        let timeout = Duration::from_secs(args.timeout);
        let mut rounds = Vec::new();
        let mut failed = None;
        for round in 1..=args.pod_rounds {
            if args.pod_rounds > 1 {
                eprintln!("pod round {round} of {}", args.pod_rounds);
            }
            restarted.extend(cp.supervise()?);
            let idle = &requests_per_node_minute;
            let kubeconfig = cp.kubeconfig_path().to_path_buf();
            match pods::run(
                &client,
                &kubeconfig,
                round,
                &names,
                args.pods,
                pids,
                timeout,
                idle,
            )
            .await
            {
                Ok(p) => rounds.push(p),
                Err(e) => {
                    failed = Some(format!("round {round}: {e:#}"));
                    break;
                }
            }
        }
        match failed {
            None => (pods::PodPhase::mean(rounds), None),
            Some(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    Ok(Sample {
        implementation,
        processes: pids.len(),
        nodes: n,
        seconds_to_ready,
        settle_seconds,
        idle_seconds: args.idle,
        rss_bytes: rss,
        rss_bytes_per_node: rss / n as u64,
        rss_bytes_min: rss_samples.iter().copied().min().unwrap_or_default(),
        rss_bytes_max: rss_samples.iter().copied().max().unwrap_or_default(),
        rss_samples: rss_samples.len(),
        cpu_millicores_total: cpu_total,
        cpu_millicores_per_node: cpu_total / n as f64,
        apiserver_millicores_per_node: apiserver_total / n as f64,
        requests_per_node_minute,
        requests_per_node_minute_by_priority,
        watches: watches(&text),
        sockets: pids.iter().map(|p| sockets(*p)).sum(),
        lease_max_gap_seconds: lease_gaps.max_gap,
        leases_missed: lease_gaps.missed,
        leases_late: lease_gaps.late,
        lease_max_renew_step_seconds: lease_gaps.max_renew_step,
        leases_late_by_renew_time: lease_gaps.late_by_renew_time,
        lease_renew_steps: lease_gaps.renew_steps,
        pods,
        pods_error,
        scrape: None,
        scrape_error: None,
        control_plane_restarts: restarted.len(),
        control_plane_restarted: restarted,
    })
}

/// Upstream's ten busiest (verb, resource) pairs next to ours: the fidelity target is within
/// ±15 % of upstream and never above it (above by less than 0.5 % counts as equal: rounding of a
/// rate over slightly different windows). With several rounds the means are compared and each
/// side's range over its rounds is shown.
fn fidelity(
    title: &str,
    unit: &str,
    upstream: (&BTreeMap<String, f64>, &[&BTreeMap<String, f64>]),
    ours: (&BTreeMap<String, f64>, &[&BTreeMap<String, f64>]),
) {
    println!("\n{title}: upstream's top ten requests {unit}, ours beside them");
    let range = |rounds: &[&BTreeMap<String, f64>], k: &str| {
        let v: Vec<f64> = rounds
            .iter()
            .map(|r| r.get(k).copied().unwrap_or(0.0))
            .collect();
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        if v.len() > 1 {
            format!(" [{lo:.2}-{hi:.2}]")
        } else {
            String::new()
        }
    };
    let mut top: Vec<(&String, &f64)> = upstream.0.iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(a.1));
    for (k, up) in top.into_iter().take(10) {
        let o = ours.0.get(k).copied().unwrap_or(0.0);
        let ratio = o / up.max(1e-9);
        let verdict = if (0.85..=1.005).contains(&ratio) {
            "ok"
        } else if ratio > 1.0 {
            "above"
        } else {
            "below"
        };
        let (ur, or) = (range(upstream.1, k), range(ours.1, k));
        println!("  {k:<40} upstream {up:>9.3}{ur}  ours {o:>9.3}{or}  {ratio:>6.2}x  {verdict}");
    }
}

/// Failed requests per pod by code, both sides, where either had at least one per 200 pods.
/// They are part of the counts above; shown apart because a failure and its retry both count
/// there.
fn failures_side_by_side(upstream: &BTreeMap<String, f64>, ours: &BTreeMap<String, f64>) {
    let keys: std::collections::BTreeSet<&String> = upstream
        .iter()
        .chain(ours)
        .filter(|(_, v)| **v >= 0.005)
        .map(|(k, _)| k)
        .collect();
    println!("  failed requests per pod, by code (included above):");
    if keys.is_empty() {
        println!("    none on either side");
    }
    for k in keys {
        let get = |m: &BTreeMap<String, f64>| m.get(k).copied().unwrap_or(0.0);
        println!(
            "    {k:<38} upstream {:>9.3}  ours {:>9.3}",
            get(upstream),
            get(ours)
        );
    }
}

/// inotify instances one upstream hollow-node process opens (its kubelet's certificate, config
/// and plugin watches; 2 each, counted at 100 processes with the limit raised).
const UPSTREAM_INOTIFY_INSTANCES: usize = 2;

/// Fails when the per-user inotify limit cannot serve `processes` upstream hollow nodes: past
/// it their watches fail with a logged error only, and the processes run on degraded (seen with
/// the default limit of 128 and 100 processes: a quarter of them had none, their pods took 3x
/// as long to run, and the controller-manager, short of its own, lost its leader lease).
fn check_inotify_instances(processes: usize) -> anyhow::Result<()> {
    let path = "/proc/sys/fs/inotify/max_user_instances";
    let Some(limit) = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse::<usize>().ok())
    else {
        return Ok(());
    };
    // The control plane and whatever else runs as this user hold some too.
    let needed = processes * UPSTREAM_INOTIFY_INSTANCES + 64;
    anyhow::ensure!(
        limit >= needed,
        "{processes} upstream hollow-node processes need about {needed} inotify instances but {path} is {limit}; with too few they run degraded and their numbers mean little: raise it (sudo sysctl -w fs.inotify.max_user_instances={})",
        needed.checked_next_power_of_two().unwrap_or(needed)
    );
    Ok(())
}

/// Upstream's hollow node as its pods run it: per node a hollow kubelet process, with its own
/// node certificate from the cluster CA (upstream would share an admin kubeconfig; per-node
/// identity keeps the Node authorizer on for both), and a hollow proxy process as
/// `system:kube-proxy`, the identity every hollow proxy of ours shares too. Without the proxies
/// upstream's side would lack the watches, memory and CPU that ours carries for its proxies.
async fn measure_upstream(n: usize, args: &BenchArgs) -> anyhow::Result<Sample> {
    let locator = BinaryLocator::from_env().with_bin_dir(args.bin_dir.clone());
    let bin = args
        .upstream_bin
        .clone()
        .unwrap_or_else(|| locator.cache_dir().join("kubemark"));
    anyhow::ensure!(
        bin.is_file(),
        "upstream hollow node {} not found; build it with scripts/build-control-plane.sh --with-peers",
        bin.display()
    );
    let mut cp = LocalControlPlane::start(local_options(locator.locate()?, args)?)
        .await
        .context("starting the control plane")?;
    let work = tempfile::tempdir()?;
    let leftovers_before = upstream_leftovers(UPSTREAM_LEFTOVERS_DIR.as_ref());
    let start = Instant::now();
    let mut children = Children::default();
    let result = async {
        let proxy_kubeconfig = work.path().join("kube-proxy.kubeconfig");
        cp.kubeconfig_for("kube-proxy", cp.pki().kube_proxy.clone())
            .write(&proxy_kubeconfig)?;
        for i in 0..n {
            let name = format!("upstream-{i}");
            let kubeconfig = work.path().join(format!("{name}.kubeconfig"));
            cp.kubeconfig_for(&name, cp.pki().issue_kubelet_client(&name)?)
                .write(&kubeconfig)?;
            let kubelet_flags = [
                format!("--kubelet-port={}", 20000 + 2 * i),
                format!("--kubelet-read-only-port={}", 20001 + 2 * i),
                "--use-host-image-service=false".to_string(),
            ];
            // Its fake proxier touches no iptables (`--use-real-proxier` has no effect).
            for (morph, kubeconfig, extra) in [
                ("kubelet", &kubeconfig, &kubelet_flags[..]),
                ("proxy", &proxy_kubeconfig, &[]),
            ] {
                let log = work.path().join(format!("{name}.{morph}.log"));
                let log = std::fs::File::create(log)?;
                let mut cmd = std::process::Command::new(&bin);
                cmd.arg(format!("--morph={morph}"))
                    .arg(format!("--name={name}"))
                    .arg(format!("--kubeconfig={}", kubeconfig.display()))
                    .args(extra)
                    .args(client_limits(args).split_whitespace())
                    .stdin(std::process::Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log);
                std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
                children.0.push(
                    cmd.spawn()
                        .with_context(|| format!("starting {}", bin.display()))?,
                );
            }
        }
        let client = cp.client().await?;
        let watch = super::nodes::ReadyWatch::start(&client);
        let deadline = Instant::now() + Duration::from_secs(args.timeout);
        loop {
            let ready = watch.count_with_prefix("upstream-");
            if ready == n {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {ready}/{n} upstream hollow nodes Ready"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let seconds_to_ready = start.elapsed().as_secs_f64();
        eprintln!("{n} upstream hollow nodes Ready in {seconds_to_ready:.1}s");
        let pids: Vec<u32> = children.0.iter().map(|c| c.id()).collect();
        idle_phase("upstream", n, &pids, seconds_to_ready, &mut cp, args).await
    }
    .await;
    drop(children);
    remove_upstream_leftovers(UPSTREAM_LEFTOVERS_DIR.as_ref(), &leftovers_before);
    cp.stop().await?;
    result
}

/// Where upstream's hollow kubelet leaves its files when killed, whatever TMPDIR says (both
/// paths are fixed in the Go code): its root directory `hollow-kubelet.<random>` (~100 KiB;
/// k8s.io/kubernetes test/utils) and its fake container runtime's socket
/// `kubelet_remote_<random>.sock` (k8s.io/cri-client).
const UPSTREAM_LEFTOVERS_DIR: &str = "/tmp";

fn upstream_leftovers(dir: &std::path::Path) -> std::collections::BTreeSet<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Default::default();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("hollow-kubelet.")
                || (name.starts_with("kubelet_remote_") && name.ends_with(".sock"))
        })
        .map(|e| e.path())
        .collect()
}

/// Removes what upstream's hollow kubelets left in `dir` since `before`, once they are gone:
/// sockets only when nobody listens on them any more. Two upstream benches cannot share a
/// machine anyway (their kubelet ports are fixed per node index), so what appeared during this
/// one is this one's.
fn remove_upstream_leftovers(
    dir: &std::path::Path,
    before: &std::collections::BTreeSet<std::path::PathBuf>,
) -> usize {
    let mut removed = 0;
    for path in upstream_leftovers(dir).difference(before) {
        let gone = if path.extension().is_some_and(|e| e == "sock") {
            let stale = std::os::unix::net::UnixStream::connect(path)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
            stale && std::fs::remove_file(path).is_ok()
        } else {
            std::fs::remove_dir_all(path).is_ok()
        };
        removed += usize::from(gone);
    }
    removed
}

/// KWOK's user: in the nodes' group, so that API Priority and Fairness classifies its requests
/// as it classifies kubelets' (lease renewals and node status at `node-high`, the rest at
/// `system`). With the admin's identity (group `system:masters`, APF-exempt: never queued,
/// never rejected) KWOK's renewals skipped the queues our nodes' wait in. Not being named
/// `system:node:<name>`, it is authorized by RBAC, not the Node authorizer.
const KWOK_USER: &str = "kubemark-bench-kwok";

/// Writes a kubeconfig for [`KWOK_USER`] (a client certificate from the cluster CA; the file
/// 0600 in the bench's temporary directory) and binds the user to `cluster-admin`.
async fn kwok_identity(cp: &LocalControlPlane, kubeconfig: &std::path::Path) -> anyhow::Result<()> {
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    use kubemark_core::pki::{CertSpec, users};
    let cert = cp
        .pki()
        .ca
        .issue(&CertSpec::client(KWOK_USER, &[users::NODES_GROUP]))?;
    cp.kubeconfig_for(KWOK_USER, cert).write(kubeconfig)?;
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": KWOK_USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KWOK_USER}],
    }))?;
    kube::Api::<ClusterRoleBinding>::all(cp.client().await?)
        .create(&Default::default(), &binding)
        .await
        .context("binding KWOK's user to cluster-admin")?;
    Ok(())
}

/// KWOK (`sigs.k8s.io/kwok`, one controller for all nodes, as it is deployed) with the stages
/// its in-cluster manifest uses (node-initialize, node-heartbeat-with-lease, pod fast), leases
/// of 40 s like ours. KWOK does not register nodes: the bench creates them, with our nodes'
/// capacity, and times from the first create.
async fn measure_kwok(n: usize, args: &BenchArgs) -> anyhow::Result<Sample> {
    let locator = BinaryLocator::from_env().with_bin_dir(args.bin_dir.clone());
    let bin = locator.cache_dir().join("kwok");
    let stages = locator.cache_dir().join("kwok-stages.yaml");
    anyhow::ensure!(
        bin.is_file() && stages.is_file(),
        "kwok or its stages not found in {}; build them with scripts/build-control-plane.sh --with-peers",
        locator.cache_dir().display()
    );
    let mut cp = LocalControlPlane::start(local_options(locator.locate()?, args)?)
        .await
        .context("starting the control plane")?;
    let work = tempfile::tempdir()?;
    let kubeconfig = work.path().join("kwok.kubeconfig");
    kwok_identity(&cp, &kubeconfig).await?;
    let log = std::fs::File::create(work.path().join("kwok.log"))?;
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("-c")
        .arg(&stages)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg("--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake")
        .arg("--node-lease-duration-seconds=40")
        .arg("--server-address=")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = Children(vec![
        cmd.spawn()
            .with_context(|| format!("starting {}", bin.display()))?,
    ]);
    let pid = child.0[0].id();
    let result = async {
        let client = cp.client().await?;
        let watch = super::nodes::ReadyWatch::start(&client);
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
        let start = Instant::now();
        let creates = futures::stream::iter(0..n).map(|i| {
            let nodes = nodes.clone();
            async move {
                let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(serde_json::json!({
                    "metadata": { "name": format!("kwok-{i}"),
                        "annotations": { "kwok.x-k8s.io/node": "fake" },
                        "labels": { "type": "kwok", "kubernetes.io/hostname": format!("kwok-{i}") } },
                    "status": {
                        "capacity": { "cpu": "1", "memory": "4026531840", "pods": "110" },
                        "allocatable": { "cpu": "1", "memory": "4026531840", "pods": "110" } },
                }))?;
                nodes.create(&Default::default(), &node).await?;
                anyhow::Ok(())
            }
        });
        let results: Vec<anyhow::Result<()>> = creates.buffer_unordered(32).collect().await;
        results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        let deadline = Instant::now() + Duration::from_secs(args.timeout);
        loop {
            let ready = watch.count_with_prefix("kwok-");
            if ready == n {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {ready}/{n} kwok nodes Ready"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let seconds_to_ready = start.elapsed().as_secs_f64();
        eprintln!("{n} kwok nodes Ready in {seconds_to_ready:.1}s");
        idle_phase("kwok", n, &[pid], seconds_to_ready, &mut cp, args).await
    }
    .await;
    drop(child);
    cp.stop().await?;
    result
}

/// Our default build's sample at `nodes`, the one every other sample is compared with.
fn ours_at(samples: &[Sample], nodes: usize) -> Option<&Sample> {
    samples
        .iter()
        .find(|s| s.implementation == "kubemark-rs" && s.nodes == nodes)
}

/// The hollow nodes' client rate limit, as flags both ours and upstream's hollow node take.
fn client_limits(args: &BenchArgs) -> String {
    format!(
        "--kube-api-qps={} --kube-api-burst={}",
        args.kube_api_qps, args.kube_api_burst
    )
}

/// The control plane every implementation of the run is measured against.
fn local_options(
    binaries: kubemark_core::binaries::BinarySet,
    args: &BenchArgs,
) -> anyhow::Result<LocalOptions> {
    let mut options = LocalOptions::new(binaries);
    crate::master_args::MasterArgs::parse(&args.master_args)?.apply(&mut options);
    Ok(options)
}

/// Which build of our hollow node a measurement runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ours {
    /// As shipped.
    Default,
    /// With its kubelet API off (`--kubelet-port=0`).
    NoApi,
    /// Connecting through tokio-rustls with h2's defaults (`--stock-connection`).
    StockConnection,
}

impl Ours {
    fn implementation(self) -> &'static str {
        match self {
            Ours::Default => "kubemark-rs",
            Ours::NoApi => "ours-noapi",
            Ours::StockConnection => "ours-stockconn",
        }
    }
}

/// Our hollow nodes, as `variant` says.
async fn measure(n: usize, args: &BenchArgs, variant: Ours) -> anyhow::Result<Sample> {
    let binaries = BinaryLocator::from_env()
        .with_bin_dir(args.bin_dir.clone())
        .locate()?;
    let mut cp = LocalControlPlane::start(local_options(binaries, args)?)
        .await
        .context("starting the control plane")?;
    let work = tempfile::tempdir()?;
    let master = super::nodes::MasterAccess {
        server: cp.server_url(),
        admin_kubeconfig: cp.kubeconfig_path().to_path_buf(),
        pki_dir: cp.work_dir().join("pki"),
    };
    let start = Instant::now();
    // No events: upstream's hollow kubelet has no event client and sends none.
    let mut flags = format!("--no-events {}", client_limits(args));
    match variant {
        Ours::Default => {}
        Ours::NoApi => flags.push_str(" --kubelet-port=0"),
        Ours::StockConnection => flags.push_str(" --stock-connection"),
    }
    let hollow: HollowProcess =
        super::nodes::spawn(&master, work.path(), n, &flags, args.node_certs).await?;
    let guard = HollowGuard(Some(hollow.pid));
    let result = async {
        super::nodes::wait_ready(&master, &hollow, Duration::from_secs(args.timeout)).await?;
        let seconds_to_ready = start.elapsed().as_secs_f64();
        let implementation = variant.implementation();
        let mut sample = idle_phase(
            implementation,
            n,
            &[hollow.pid],
            seconds_to_ready,
            &mut cp,
            args,
        )
        .await?;
        if args.scrape > 0 && variant == Ours::Default {
            eprintln!(
                "metrics-server scrapes {n} hollow nodes for {} s ...",
                args.scrape
            );
            match scrape::run(&cp, &[hollow.pid], n, args.scrape, args.bin_dir.as_ref()).await {
                Ok(p) => sample.scrape = Some(p),
                Err(e) => sample.scrape_error = Some(format!("{e:#}")),
            }
        }
        Ok(sample)
    }
    .await;
    super::nodes::stop(&hollow).await;
    guard.disarm();
    cp.stop().await?;
    result
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    // Bad flags fail the command before anything starts, not each measurement.
    crate::master_args::MasterArgs::parse(&args.master_args)?;
    // Both hollow nodes read 0 or less as "no limit" differently (client-go: 0 is its default
    // of 5, below 0 none); a positive number means the same to both.
    anyhow::ensure!(
        args.kube_api_qps.is_finite() && args.kube_api_qps > 0.0,
        "--kube-api-qps must be a positive number, not {}",
        args.kube_api_qps
    );
    if let Some(&most) = args.upstream.iter().max() {
        check_inotify_instances(most)?;
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this kubemark is a debug build; build with --release for representative numbers"
        );
    }
    // A run that fails (a peer that cannot keep up, say) is reported, and the others still are.
    let mut samples = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for &n in &args.nodes {
        eprintln!("measuring {n} hollow nodes ...");
        match unless_interrupted(measure(n, &args, Ours::Default)).await? {
            Ok(s) => samples.push(s),
            Err(e) => failures.push(format!("kubemark-rs, {n} nodes: {e:#}")),
        }
    }
    for &n in &args.kubelet_api_off {
        eprintln!("measuring {n} hollow nodes without their kubelet API ...");
        match unless_interrupted(measure(n, &args, Ours::NoApi)).await? {
            Ok(s) => samples.push(s),
            Err(e) => failures.push(format!("ours-noapi, {n} nodes: {e:#}")),
        }
    }
    for &n in &args.stock_connection {
        eprintln!("measuring {n} hollow nodes on a stock tokio-rustls + h2 connection ...");
        match unless_interrupted(measure(n, &args, Ours::StockConnection)).await? {
            Ok(s) => samples.push(s),
            Err(e) => failures.push(format!("ours-stockconn, {n} nodes: {e:#}")),
        }
    }
    for &n in &args.upstream {
        eprintln!("measuring {n} upstream hollow nodes (a kubelet and a proxy process each) ...");
        match unless_interrupted(measure_upstream(n, &args)).await? {
            Ok(s) => samples.push(s),
            Err(e) => failures.push(format!("upstream, {n} nodes: {e:#}")),
        }
    }
    for &n in &args.kwok {
        eprintln!("measuring {n} kwok nodes (one controller) ...");
        match unless_interrupted(measure_kwok(n, &args)).await? {
            Ok(s) => samples.push(s),
            Err(e) => failures.push(format!("kwok, {n} nodes: {e:#}")),
        }
    }
    println!(
        "{:<12} {:>7} {:>14} {:>14} {:>13} {:>16} {:>15} {:>16} {:>8} {:>13} {:>13}",
        "",
        "nodes",
        "ready after s",
        "RSS/node KiB",
        "(min-max)",
        "CPU/node mcore",
        "CPU total mcore",
        "apiserver/node",
        "sockets",
        "lease gap s",
        "missed/late"
    );
    for s in &samples {
        println!(
            "{:<12} {:>7} {:>14.1} {:>14} {:>13} {:>16.3} {:>15.1} {:>16.3} {:>8} {:>13.1} {:>13}",
            s.implementation,
            s.nodes,
            s.seconds_to_ready,
            s.rss_bytes_per_node / 1024,
            format!(
                "{}-{}",
                s.rss_bytes_min / s.nodes as u64 / 1024,
                s.rss_bytes_max / s.nodes as u64 / 1024
            ),
            s.cpu_millicores_per_node,
            s.cpu_millicores_total,
            s.apiserver_millicores_per_node,
            s.sockets,
            s.lease_max_gap_seconds,
            format!("{}/{}", s.leases_missed, s.leases_late)
        );
    }
    println!(
        "\nlease renewals while idle (steps of each node Lease's renewTime; the kubelet's interval is 10-10.4 s):"
    );
    for s in &samples {
        let d = &s.lease_renew_steps;
        println!(
            "  {:<12} {:>7} nodes: {:>7} renewals, {d}",
            s.implementation, s.nodes, d.count
        );
    }
    for off in samples.iter().filter(|s| s.implementation == "ours-noapi") {
        if let Some(on) = ours_at(&samples, off.nodes) {
            println!(
                "{} nodes: the kubelet API costs {:+.1} KiB RSS and {:+.4} mcore CPU per idle node (ours with it minus ours without)",
                off.nodes,
                (on.rss_bytes_per_node as f64 - off.rss_bytes_per_node as f64) / 1024.0,
                on.cpu_millicores_per_node - off.cpu_millicores_per_node
            );
        }
    }
    for s in &samples {
        if let Some(p) = &s.scrape {
            println!(
                "{} nodes, metrics-server scraping every {} s for {:.0} s: hollow CPU {:.3} mcore/node (idle {:.3}), RSS {} KiB/node (idle {}), {} failed scrapes",
                s.nodes,
                p.resolution_seconds,
                p.seconds,
                p.cpu_millicores_per_node,
                s.cpu_millicores_per_node,
                p.rss_bytes_per_node / 1024,
                s.rss_bytes_per_node / 1024,
                p.scrape_failures
            );
        }
        if let Some(e) = &s.scrape_error {
            println!("{} nodes: the scrape phase failed: {e}", s.nodes);
        }
    }
    for stock in samples
        .iter()
        .filter(|s| s.implementation == "ours-stockconn")
    {
        if let Some(own) = ours_at(&samples, stock.nodes) {
            println!(
                "{} nodes: our connection saves {:.1} KiB RSS and {:+.4} mcore CPU per idle node against tokio-rustls + h2 defaults",
                stock.nodes,
                (stock.rss_bytes_per_node as f64 - own.rss_bytes_per_node as f64) / 1024.0,
                stock.cpu_millicores_per_node - own.cpu_millicores_per_node
            );
        }
    }
    for peer in samples
        .iter()
        .filter(|s| !s.implementation.starts_with("ours-") && s.implementation != "kubemark-rs")
    {
        if let Some(ours) = ours_at(&samples, peer.nodes) {
            println!(
                "{} nodes: {} / ours = {:.1}x memory per node, {:.1}x CPU per node, {:.2}x API server CPU per node, {:.1}x time to Ready",
                peer.nodes,
                peer.implementation,
                peer.rss_bytes_per_node as f64 / ours.rss_bytes_per_node.max(1) as f64,
                peer.cpu_millicores_per_node / ours.cpu_millicores_per_node.max(1e-9),
                peer.apiserver_millicores_per_node / ours.apiserver_millicores_per_node.max(1e-9),
                peer.seconds_to_ready / ours.seconds_to_ready.max(1e-9)
            );
        }
    }
    for s in &samples {
        println!(
            "\nAPI requests per node-minute while idle ({} {} nodes, from {:.0} s after Ready), all clients of the API server:",
            s.nodes, s.implementation, s.settle_seconds
        );
        let mut top: Vec<(&String, &f64)> = s.requests_per_node_minute.iter().collect();
        top.sort_by(|a, b| b.1.total_cmp(a.1));
        for (k, v) in top.into_iter().take(10) {
            println!("  {k:<40} {v:>8.3}");
        }
        let mut levels: Vec<(&String, &f64)> =
            s.requests_per_node_minute_by_priority.iter().collect();
        levels.sort_by(|a, b| b.1.total_cmp(a.1));
        let levels: Vec<String> = levels
            .into_iter()
            .take(5)
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect();
        println!("by API priority level (flow schema): {}", levels.join(", "));
        let w: Vec<String> = s.watches.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("open watches on the API server: {}", w.join(" "));
    }
    if samples
        .iter()
        .any(|s| s.pods.is_some() || s.pods_error.is_some())
    {
        println!(
            "\n{:<12} {:>7} {:>7} {:>14} {:>14} {:>14} {:>14} {:>14}",
            "",
            "nodes",
            "pods",
            "created after s",
            "running after s",
            "deleted after s",
            "hollow CPU %",
            "machine CPU %"
        );
        for s in &samples {
            if let Some(p) = &s.pods {
                println!(
                    "{:<12} {:>7} {:>7} {:>14.1} {:>14.1} {:>14.1} {:>14.1} {:>14.1}",
                    s.implementation,
                    s.nodes,
                    p.pods,
                    p.seconds_to_created,
                    p.seconds_to_running,
                    p.seconds_to_deleted,
                    p.hollow_cpu_percent,
                    p.machine_cpu_percent
                );
            }
            if let Some(e) = &s.pods_error {
                println!("{:<12} {:>7} failed: {e}", s.implementation, s.nodes);
            }
        }
        println!("node Leases during the pod phase (worst round):");
        for s in &samples {
            if let Some(p) = &s.pods {
                println!(
                    "  {:<12} {:>7} nodes: missed/late {}/{}, longest gap {:.1} s, renewal steps {}; nodes lost Ready: {}",
                    s.implementation,
                    s.nodes,
                    p.leases_missed,
                    p.leases_late,
                    p.lease_max_gap_seconds,
                    p.lease_renew_steps,
                    p.nodes_lost_ready
                );
            }
        }
    }
    for up in samples.iter().filter(|s| s.implementation == "upstream") {
        let Some(ours) = ours_at(&samples, up.nodes) else {
            continue;
        };
        fidelity(
            &format!("idle, {} nodes", up.nodes),
            "per node-minute",
            (&up.requests_per_node_minute, &[]),
            (&ours.requests_per_node_minute, &[]),
        );
        if let (Some(u), Some(o)) = (&up.pods, &ours.pods) {
            fn per_round(p: &pods::PodPhase) -> Vec<&BTreeMap<String, f64>> {
                p.rounds.iter().map(|r| &r.requests_per_pod).collect()
            }
            let rounds = match u.rounds.len() {
                0 => String::new(),
                n => format!(", means of {n} rounds"),
            };
            fidelity(
                &format!(
                    "{} pre-bound pods created and deleted, {} nodes{rounds}",
                    u.pods, up.nodes
                ),
                "per pod (above the idle rate)",
                (&u.requests_per_pod, &per_round(u)),
                (&o.requests_per_pod, &per_round(o)),
            );
            failures_side_by_side(&u.failed_per_pod, &o.failed_per_pod);
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&serde_json::json!({
                "apiVersion": "kubemark.io/v1alpha1",
                "kind": "HollowBenchmark",
                "kubernetesVersion": kubemark_core::binaries::KUBERNETES_VERSION,
                "kubeApiQps": args.kube_api_qps,
                "kubeApiBurst": args.kube_api_burst,
                "samples": samples,
                "failures": failures,
            }))?,
        )?;
        eprintln!("wrote {}", path.display());
    }
    for s in &samples {
        if s.leases_late > 0 {
            eprintln!(
                "note: {}, {} nodes: {} leases late (a gap over 15 s) as the bench's watch saw them, {} by their own renewTime (longest step {:.1} s); late in the watch only means the events reached it late, not that the node renewed late",
                s.implementation,
                s.nodes,
                s.leases_late,
                s.leases_late_by_renew_time,
                s.lease_max_renew_step_seconds
            );
        }
        if s.control_plane_restarts > 0 {
            eprintln!(
                "warning: {}, {} nodes: control-plane components had exited (the machine too busy for their leader lease?) and were restarted: {}; the numbers after include their start-up",
                s.implementation,
                s.nodes,
                s.control_plane_restarted.join(", ")
            );
        }
        if let Some(e) = &s.pods_error {
            failures.push(format!(
                "{}, {} nodes, pod phase: {e}",
                s.implementation, s.nodes
            ));
        }
    }
    for f in &failures {
        eprintln!("failed: {f}");
    }
    anyhow::ensure!(
        failures.is_empty(),
        "{} of the runs failed (the others are reported above)",
        failures.len()
    );
    Ok(())
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

    #[test]
    fn too_few_inotify_instances_for_upstream_is_refused_up_front() {
        // No machine allows 4 billion instances per user (the kernel's limit is an int).
        let e = check_inotify_instances(2_000_000_000)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fs/inotify/max_user_instances is") && e.contains("sysctl -w"),
            "{e}"
        );
        assert!(check_inotify_instances(0).is_ok());
    }

    #[test]
    fn only_new_upstream_leftovers_are_removed_and_sockets_only_when_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        // A socket file whose listener is gone, as a killed process leaves it.
        let stale = |name: &str| drop(std::os::unix::net::UnixListener::bind(path(name)).unwrap());
        let root = |name: &str| std::fs::create_dir_all(path(name).join("checkpoints")).unwrap();
        stale("kubelet_remote_1.sock");
        root("hollow-kubelet.1");
        let before = upstream_leftovers(dir.path());
        stale("kubelet_remote_2.sock");
        root("hollow-kubelet.2");
        let _live = std::os::unix::net::UnixListener::bind(path("kubelet_remote_3.sock")).unwrap();
        stale("other.sock");
        root("other");

        assert_eq!(remove_upstream_leftovers(dir.path(), &before), 2);
        assert!(path("kubelet_remote_1.sock").exists(), "older than the run");
        assert!(path("hollow-kubelet.1").exists(), "older than the run");
        assert!(!path("kubelet_remote_2.sock").exists(), "new and stale");
        assert!(!path("hollow-kubelet.2").exists(), "new");
        assert!(path("kubelet_remote_3.sock").exists(), "someone listens");
        assert!(path("other.sock").exists(), "not upstream's");
        assert!(path("other").exists(), "not upstream's");
    }

    #[test]
    fn lease_gaps_are_told_apart_from_renew_time_steps() {
        let t0 = Instant::now();
        let stamp =
            |s: i64| Some(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + s).unwrap());
        let mut seen = LeaseSeen::new(t0, stamp(0));
        // (seen at s, renewTime s, step expected, longest gap and step after it)
        type Seen = (u64, Option<i64>);
        type Expected = (Option<f64>, (f64, f64));
        let events: [(Seen, Expected); 10] = [
            // Renewed every 10 s, but the first event reached the watch 12 s late.
            ((22, Some(10)), (Some(10.0), (22.0, 10.0))),
            ((24, Some(20)), (Some(10.0), (22.0, 10.0))),
            // A renewal that came 17 s after the one before (its PUT waited).
            ((41, Some(37)), (Some(17.0), (22.0, 17.0))),
            // No renewTime, the same one (another field written), or one set back (a stale
            // write landing late): no renewal; the next step counts from the latest renewTime.
            ((42, None), (None, (22.0, 17.0))),
            ((43, Some(37)), (None, (22.0, 17.0))),
            ((44, Some(31)), (None, (22.0, 17.0))),
            ((51, Some(47)), (Some(10.0), (22.0, 17.0))),
            // Writes that renew nothing do not hide a gap the controller would see.
            ((60, Some(47)), (None, (22.0, 17.0))),
            ((70, Some(40)), (None, (22.0, 17.0))),
            ((80, Some(76)), (Some(29.0), (29.0, 29.0))),
        ];
        for ((at, renew), (step, (gap, longest))) in events {
            let got = seen.observe(t0 + Duration::from_secs(at), renew.and_then(stamp));
            assert_eq!(got, step, "at {at} s");
            assert_eq!(
                (seen.max_gap, seen.max_renew_step),
                (gap, longest),
                "at {at} s"
            );
        }
    }

    #[test]
    fn renewal_steps_are_summarised_by_nearest_rank() {
        assert_eq!(StepDistribution::of(vec![]), StepDistribution::default());
        // 100 renewals: 97 on time, three late; the median is the cadence, p99 the tail.
        let mut steps = vec![10.2; 97];
        steps.extend([16.0, 25.0, 39.0]);
        steps.reverse();
        let d = StepDistribution::of(steps);
        assert_eq!((d.count, d.p50, d.p90), (100, 10.2, 10.2));
        assert_eq!((d.p99, d.max), (25.0, 39.0));
        assert_eq!(
            d.to_string(),
            "p50 10.2 s, p90 10.2 s, p99 25.0 s, max 39.0 s"
        );
        let one = StepDistribution::of(vec![12.0]);
        assert_eq!((one.p50, one.p99, one.max), (12.0, 12.0, 12.0));
    }

    const METRICS: &str = r#"# HELP apiserver_request_total x
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="serviceaccounts",scope="resource",subresource="token",verb="POST",version="v1"} 7
apiserver_request_total{code="403",component="apiserver",dry_run="",group="",resource="serviceaccounts",scope="resource",subresource="token",verb="POST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 5
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 1
"#;

    #[test]
    fn requests_are_counted_by_priority_level_and_flow_schema() {
        let text = r#"# TYPE apiserver_flowcontrol_dispatched_requests_total counter
apiserver_flowcontrol_dispatched_requests_total{flow_schema="system-node-high",priority_level="node-high"} 600
apiserver_flowcontrol_dispatched_requests_total{flow_schema="exempt",priority_level="exempt"} 40
apiserver_flowcontrol_rejected_requests_total{flow_schema="system-node-high",priority_level="node-high",reason="queue-full"} 9
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 600
"#;
        let levels = dispatched_by_priority(text);
        assert_eq!(levels.len(), 2, "{levels:?}");
        assert_eq!(levels["node-high (system-node-high)"], 600.0);
        assert_eq!(levels["exempt (exempt)"], 40.0);
    }

    #[test]
    fn open_watches_are_counted_by_resource() {
        let text = r#"apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="cluster",subresource="",verb="WATCH",version="v1"} 1000
apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 3
apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="resource",subresource="log",verb="CONNECT",version="v1"} 2
apiserver_longrunning_requests_total{resource="nodes",verb="WATCH"} 9
"#;
        let open = watches(text);
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open["pods"], 1003.0);
    }

    #[test]
    fn failures_are_counted_apart_by_code_and_within_the_totals() {
        let all = request_counts(METRICS);
        assert_eq!(all["POST serviceaccounts/token"], 10.0);
        assert_eq!(all["GET pods"], 6.0);
        let failed = failed_counts(METRICS);
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert_eq!(failed["POST serviceaccounts/token 403"], 3.0);
        assert_eq!(failed["GET pods 409"], 1.0);
    }
}
