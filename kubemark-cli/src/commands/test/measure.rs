//! Measurements every test shares: pod start-up from a watch, scheduling throughput, API
//! responsiveness and etcd from metric scrapes, master resource use, and the SLO verdicts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::watcher::{self, Event};

use super::etcd::{self, Snapshot};
use super::metrics;
use super::report::{ApiCall, ComponentUsage, EtcdMetrics, Percentiles, Verdict, ms};
use super::usage::Sampler;
use super::{CommonArgs, Target};

/// When the test saw a pod pass each stage.
#[derive(Debug, Default, Clone, Copy)]
struct Timeline {
    created: Option<Instant>,
    scheduled: Option<Instant>,
    running: Option<Instant>,
}

/// Watches the pods a test makes (by label selector, all namespaces) and times their start-up.
pub struct PodTracker {
    timelines: Arc<Mutex<HashMap<String, Timeline>>>,
    /// Pods in phase Running now (removed when they stop running or are deleted).
    running_now: Arc<Mutex<std::collections::HashSet<String>>>,
    watch: tokio::task::JoinHandle<()>,
    start: Instant,
}

/// Start-up of the pods a tracker saw.
pub struct PodTimings {
    /// create → Running, ms.
    pub startup: Percentiles,
    /// create → scheduled, ms.
    pub to_schedule: Percentiles,
    /// scheduled → Running, ms.
    pub to_run: Percentiles,
    /// Pods scheduled per second.
    pub throughput: Percentiles,
}

impl PodTracker {
    /// Starts watching. Pods the test creates itself are timed from [`PodTracker::created`];
    /// pods a controller creates are timed from the moment the watch first delivered them,
    /// which is the earliest instant this client can know of them (creationTimestamp has
    /// one-second resolution).
    pub fn start(client: kube::Client, selector: &str) -> Self {
        let timelines: Arc<Mutex<HashMap<String, Timeline>>> = Arc::default();
        let running_now: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
        let pods: Api<Pod> = Api::all(client);
        let config = watcher::Config::default().labels(selector);
        let watch = {
            let timelines = timelines.clone();
            let running_now = running_now.clone();
            tokio::spawn(async move {
                let key_of = |pod: &Pod| {
                    format!(
                        "{}/{}",
                        pod.metadata.namespace.as_deref().unwrap_or_default(),
                        pod.metadata.name.as_deref().unwrap_or_default()
                    )
                };
                let mut stream = std::pin::pin!(watcher::watcher(pods, config));
                while let Some(event) = stream.next().await {
                    let pod = match event {
                        Ok(Event::Apply(p) | Event::InitApply(p)) => p,
                        Ok(Event::Delete(p)) => {
                            running_now
                                .lock()
                                .expect("not poisoned")
                                .remove(&key_of(&p));
                            continue;
                        }
                        _ => continue,
                    };
                    let now = Instant::now();
                    let key = key_of(&pod);
                    let status = pod.status.unwrap_or_default();
                    let scheduled = status
                        .conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "PodScheduled" && c.status == "True");
                    let running = status.phase.as_deref() == Some("Running");
                    {
                        let mut live = running_now.lock().expect("not poisoned");
                        if running {
                            live.insert(key.clone());
                        } else {
                            live.remove(&key);
                        }
                    }
                    let mut t = timelines.lock().expect("not poisoned");
                    let entry = t.entry(key).or_default();
                    entry.created.get_or_insert(now);
                    if scheduled && entry.scheduled.is_none() {
                        entry.scheduled = Some(now);
                    }
                    if running && entry.running.is_none() {
                        entry.running = Some(now);
                        entry.scheduled.get_or_insert(now);
                    }
                }
            })
        };
        Self {
            timelines,
            running_now,
            watch,
            start: Instant::now(),
        }
    }

    /// Records that the test is about to create `namespace/name`.
    pub fn created(&self, namespace: &str, name: &str) {
        self.timelines
            .lock()
            .expect("not poisoned")
            .entry(format!("{namespace}/{name}"))
            .or_default()
            .created = Some(Instant::now());
    }

    /// Pods seen Running at least once.
    pub fn running(&self) -> usize {
        self.timelines
            .lock()
            .expect("not poisoned")
            .values()
            .filter(|t| t.running.is_some())
            .count()
    }

    /// Pods Running now.
    pub fn running_now(&self) -> usize {
        self.running_now.lock().expect("not poisoned").len()
    }

    /// Pods seen at all.
    pub fn seen(&self) -> usize {
        self.timelines.lock().expect("not poisoned").len()
    }

    /// Stops watching and computes the timings.
    pub fn finish(self) -> PodTimings {
        self.watch.abort();
        let t = self.timelines.lock().expect("not poisoned").clone();
        let mut startup = Vec::new();
        let mut to_schedule = Vec::new();
        let mut to_run = Vec::new();
        let mut per_second: HashMap<u64, usize> = HashMap::new();
        for tl in t.values() {
            let (Some(c), Some(s), Some(r)) = (tl.created, tl.scheduled, tl.running) else {
                continue;
            };
            startup.push(ms(r.saturating_duration_since(c)));
            to_schedule.push(ms(s.saturating_duration_since(c)));
            to_run.push(ms(r.saturating_duration_since(s)));
            *per_second
                .entry(s.saturating_duration_since(self.start).as_secs())
                .or_default() += 1;
        }
        // Throughput over the seconds in which pods were being scheduled (CL2 samples while pods
        // are pending), zero-filled between the first and the last.
        let seconds: Vec<f64> = match (per_second.keys().min(), per_second.keys().max()) {
            (Some(lo), Some(hi)) => (*lo..=*hi)
                .map(|s| per_second.get(&s).copied().unwrap_or(0) as f64)
                .collect(),
            _ => Vec::new(),
        };
        PodTimings {
            startup: Percentiles::of(&startup),
            to_schedule: Percentiles::of(&to_schedule),
            to_run: Percentiles::of(&to_run),
            throughput: Percentiles::of(&seconds),
        }
    }
}

/// The cluster-side measurements of a run: metric scrapes before and after, processes sampled
/// in between.
pub struct ClusterMeasurements {
    client: kube::Client,
    local: Option<kubemark_core::master::LocalState>,
    before: Snapshot,
    sampler: Option<Sampler>,
}

/// What [`ClusterMeasurements::finish`] found.
pub struct ClusterResults {
    /// API calls, slowest p99 first.
    pub api_calls: Vec<ApiCall>,
    /// etcd.
    pub etcd: EtcdMetrics,
    /// Processes of a local cluster.
    pub components: Vec<ComponentUsage>,
}

impl ClusterMeasurements {
    /// Takes the first scrape and starts sampling processes.
    pub async fn start(target: &Target) -> anyhow::Result<Self> {
        let before = Snapshot::take(scrape(&target.client).await?, target.local.as_ref()).await;
        Ok(Self {
            client: target.client.clone(),
            local: target.local.clone(),
            before,
            sampler: (target.processes.is_some() || target.remote.is_some()).then(|| {
                Sampler::start(
                    target.processes.clone().unwrap_or_default(),
                    target.remote.clone(),
                )
            }),
        })
    }

    /// Takes the second scrape and stops sampling.
    pub async fn finish(self) -> anyhow::Result<ClusterResults> {
        let after_text = scrape(&self.client).await?;
        let before_calls = metrics::parse(self.before.apiserver_text());
        let after_calls = metrics::parse(&after_text);
        let after = Snapshot::take(after_text, self.local.as_ref()).await;
        let mut api_calls: Vec<ApiCall> = after_calls
            .iter()
            .filter_map(|(kind, buckets)| {
                let (p99, count) = metrics::quantile(before_calls.get(kind), buckets, 0.99)?;
                Some(ApiCall {
                    verb: kind.verb.clone(),
                    resource: kind.resource.clone(),
                    subresource: kind.subresource.clone(),
                    scope: kind.scope.clone(),
                    p99_seconds: p99,
                    count,
                })
            })
            .collect();
        api_calls.sort_by(|a, b| b.p99_seconds.total_cmp(&a.p99_seconds));
        let components = match self.sampler {
            Some(s) => s.stop().await,
            None => Vec::new(),
        };
        Ok(ClusterResults {
            api_calls,
            etcd: etcd::summarize(&self.before, &after),
            components,
        })
    }
}

/// The SLO verdicts of CL2's PodStartupLatency and APIResponsiveness.
pub fn verdicts(args: &CommonArgs, startup: &Percentiles, calls: &[ApiCall]) -> Vec<Verdict> {
    let threshold_ms = args.pod_startup_threshold * 1000.0;
    let mut verdicts = vec![
        Verdict::at_most("PodStartupLatency p50", startup.p50, threshold_ms, "ms"),
        Verdict::at_most("PodStartupLatency p90", startup.p90, threshold_ms, "ms"),
        Verdict::at_most("PodStartupLatency p99", startup.p99, threshold_ms, "ms"),
    ];
    for call in calls {
        let threshold = if call.verb == "LIST" {
            args.list_threshold
        } else {
            args.single_object_threshold
        };
        let sub = if call.subresource.is_empty() {
            String::new()
        } else {
            format!("/{}", call.subresource)
        };
        verdicts.push(Verdict::at_most(
            format!(
                "APIResponsiveness {} {}{} ({}) p99",
                call.verb, call.resource, sub, call.scope
            ),
            call.p99_seconds,
            threshold,
            "s",
        ));
    }
    verdicts
}

/// Ready nodes without `spec.unschedulable`: where test pods can go.
pub async fn schedulable_nodes(client: &kube::Client) -> anyhow::Result<usize> {
    let nodes: Api<Node> = Api::all(client.clone());
    let n = nodes
        .list(&ListParams::default())
        .await
        .context("listing nodes")?
        .items
        .iter()
        .filter(|n| {
            crate::commands::nodes::is_ready(n)
                && !n
                    .spec
                    .as_ref()
                    .and_then(|s| s.unschedulable)
                    .unwrap_or(false)
        })
        .count();
    if n == 0 {
        bail!("no Ready, schedulable nodes in the cluster: nothing to run pods on");
    }
    Ok(n)
}

/// The label that names the run (this process) that created a namespace: an interrupted run
/// finds what it created by it.
const RUN_LABEL: &str = "kubemark.io/run";

/// This process's id as the run label says it.
fn process_run() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        format!("{now}-{}", std::process::id())
    })
}

/// Creates a namespace labelled as the test's and this run's.
pub async fn create_namespace(client: &kube::Client, name: &str, test: &str) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "labels": { "kubemark.io/test": test, RUN_LABEL: process_run() } }
    }))?;
    namespaces
        .create(&Default::default(), &ns)
        .await
        .with_context(|| format!("creating the test namespace {name}"))?;
    Ok(())
}

/// The namespaces this process created (by [`RUN_LABEL`]).
pub async fn run_namespaces(client: &kube::Client) -> anyhow::Result<Vec<String>> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let selector = format!("{RUN_LABEL}={}", process_run());
    let list = namespaces
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .context("listing the run's namespaces")?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect())
}

/// Deletes the namespaces and waits until they are gone.
pub async fn delete_namespaces(
    client: &kube::Client,
    names: &[String],
    timeout: Duration,
) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let spinner = crate::progress::Spinner::start(&format!(
        "deleting namespace{} {}",
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    ));
    for ns in names {
        match namespaces.delete(ns, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("deleting namespace {ns}")),
        }
    }
    let gone = async {
        for ns in names {
            while namespaces.get_opt(ns).await.ok().flatten().is_some() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    if tokio::time::timeout(timeout, gone).await.is_err() {
        spinner.abandon();
        bail!(
            "namespaces {} still exist after {}s",
            names.join(", "),
            timeout.as_secs()
        );
    }
    spinner.finish(&format!("deleted {}", names.join(", ")));
    Ok(())
}

/// The start of a run: RFC 3339 now (whole seconds) and the API server's version.
pub async fn started(client: &kube::Client) -> anyhow::Result<(String, String)> {
    let now = time::OffsetDateTime::now_utc();
    let at = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)?;
    let version = client
        .apiserver_version()
        .await
        .context("reading the API server version")?
        .git_version;
    Ok((at, version))
}

/// The API server's `/metrics`.
pub async fn scrape(client: &kube::Client) -> anyhow::Result<String> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    client
        .request_text(req)
        .await
        .context("scraping the API server's /metrics")
}

/// A random suffix that makes a run's names unique.
pub fn run_id() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xff_ffff)
}
