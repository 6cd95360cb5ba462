//! `kubemark test density`: N pods per node created at a fixed rate, start-up latency measured
//! from the watch, scheduling throughput, API responsiveness, master resource use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher::{self, Event};

use super::metrics;
use super::report::{ApiCall, ComponentUsage, Percentiles, Point, TestRun, Verdict, ms};
use super::usage::Sampler;
use super::{DensityArgs, Target};

#[derive(Debug, Default, Clone, Copy)]
struct Timeline {
    created: Option<Instant>,
    scheduled: Option<Instant>,
    running: Option<Instant>,
}

fn schedulable_ready(node: &Node) -> bool {
    let ready = crate::commands::nodes::is_ready(node);
    let unschedulable = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    ready && !unschedulable
}

fn pod(namespace: &str, name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "namespace": namespace, "labels": { "kubemark.io/test": "density" } },
        "spec": {
            "containers": [{ "name": "pause", "image": "registry.k8s.io/pause:3.10",
                "resources": { "requests": { "cpu": "1m", "memory": "1Mi" } } }],
            "terminationGracePeriodSeconds": 0,
        },
    }))
    .expect("valid pod")
}

pub async fn run(args: DensityArgs, target: Target) -> anyhow::Result<TestRun> {
    let client = target.client.clone();
    let now = time::OffsetDateTime::now_utc();
    let started_at = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)?;
    let version = client
        .apiserver_version()
        .await
        .context("reading the API server version")?
        .git_version;
    let nodes: Api<Node> = Api::all(client.clone());
    let n = nodes
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|n| schedulable_ready(n))
        .count();
    if n == 0 {
        bail!("no Ready, schedulable nodes in the cluster: nothing to run pods on");
    }
    let total = args.pods_per_node * n;
    let ns = format!("density-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns_obj: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": ns, "labels": { "kubemark.io/test": "density" } }
    }))?;
    namespaces
        .create(&PostParams::default(), &ns_obj)
        .await
        .context("creating the test namespace")?;
    let progress = super::Progress::new(
        &format!("density: {total} pods on {n} nodes in {ns}"),
        total,
    );

    let timelines: Arc<Mutex<HashMap<String, Timeline>>> = Arc::default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let watch = {
        let timelines = timelines.clone();
        let pods = pods.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(watcher::watcher(pods, watcher::Config::default()));
            while let Some(event) = stream.next().await {
                let pod = match event {
                    Ok(Event::Apply(p) | Event::InitApply(p)) => p,
                    _ => continue,
                };
                let now = Instant::now();
                let name = pod.metadata.name.clone().unwrap_or_default();
                let status = pod.status.unwrap_or_default();
                let scheduled = status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "PodScheduled" && c.status == "True");
                let running = status.phase.as_deref() == Some("Running");
                let mut t = timelines.lock().expect("not poisoned");
                let entry = t.entry(name).or_default();
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
    let before = metrics::parse(&scrape(&client).await?);
    let sampler = target.processes.as_ref().map(|p| Sampler::start(p.clone()));

    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.qps.max(0.1));
    let mut next = tokio::time::Instant::now();
    let mut running_over_time = Vec::new();
    let mut last_sample = Instant::now();
    let sample = |t: &HashMap<String, Timeline>| t.values().filter(|x| x.running.is_some()).count();
    for i in 0..total {
        tokio::time::sleep_until(next).await;
        next += interval;
        let name = format!("density-{i}");
        timelines
            .lock()
            .expect("not poisoned")
            .entry(name.clone())
            .or_default()
            .created = Some(Instant::now());
        pods.create(&PostParams::default(), &pod(&ns, &name))
            .await
            .with_context(|| format!("creating pod {name}"))?;
        if last_sample.elapsed() >= Duration::from_secs(1) {
            let running = sample(&timelines.lock().expect("not poisoned"));
            progress.set(i + 1, running);
            running_over_time.push(Point {
                t: start.elapsed().as_secs_f64(),
                v: running as f64,
            });
            last_sample = Instant::now();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let running = sample(&timelines.lock().expect("not poisoned"));
        progress.set(total, running);
        running_over_time.push(Point {
            t: start.elapsed().as_secs_f64(),
            v: running as f64,
        });
        if running >= total {
            break;
        }
        if Instant::now() > deadline {
            progress.abandon();
            bail!(
                "only {running} of {total} density pods Running after {}s (namespace {ns} kept)",
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let duration = start.elapsed();
    progress.finish(&format!(
        "{total} pods Running in {:.1}s",
        duration.as_secs_f64()
    ));
    watch.abort();
    let after = metrics::parse(&scrape(&client).await?);
    let components: Vec<ComponentUsage> = match sampler {
        Some(s) => s.stop().await,
        None => Vec::new(),
    };

    let t = timelines.lock().expect("not poisoned").clone();
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
            .entry(s.saturating_duration_since(start).as_secs())
            .or_default() += 1;
    }
    // Throughput over the seconds in which pods were being scheduled (CL2 samples while pods are
    // pending), zero-filled between the first and the last.
    let seconds: Vec<f64> = match (per_second.keys().min(), per_second.keys().max()) {
        (Some(lo), Some(hi)) => (*lo..=*hi)
            .map(|s| per_second.get(&s).copied().unwrap_or(0) as f64)
            .collect(),
        _ => Vec::new(),
    };
    let mut api_calls: Vec<ApiCall> = after
        .iter()
        .filter_map(|(kind, buckets)| {
            let (p99, count) = metrics::quantile(before.get(kind), buckets, 0.99)?;
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

    let pod_startup_ms = Percentiles::of(&startup);
    let threshold_ms = args.pod_startup_threshold * 1000.0;
    let mut verdicts = vec![
        Verdict::at_most(
            "PodStartupLatency p50",
            pod_startup_ms.p50,
            threshold_ms,
            "ms",
        ),
        Verdict::at_most(
            "PodStartupLatency p90",
            pod_startup_ms.p90,
            threshold_ms,
            "ms",
        ),
        Verdict::at_most(
            "PodStartupLatency p99",
            pod_startup_ms.p99,
            threshold_ms,
            "ms",
        ),
    ];
    for call in &api_calls {
        let list = call.verb == "LIST";
        let threshold = if list {
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
    let pass = verdicts.iter().all(|v| v.pass);
    let run = TestRun {
        api_version: "kubemark.io/v1alpha1".into(),
        kind: "TestRun".into(),
        test: "density".into(),
        started_at,
        duration_seconds: duration.as_secs_f64(),
        kubernetes_version: version,
        nodes: n,
        pods_per_node: args.pods_per_node,
        pods_created: total,
        pods_measured: startup.len(),
        create_qps: args.qps,
        pod_startup_ms,
        create_to_schedule_ms: Percentiles::of(&to_schedule),
        schedule_to_run_ms: Percentiles::of(&to_run),
        scheduling_throughput: Percentiles::of(&seconds),
        running_over_time,
        api_calls,
        components,
        verdicts,
        pass,
    };
    if args.delete_namespace {
        let spinner = crate::progress::Spinner::start(&format!("deleting namespace {ns}"));
        namespaces.delete(&ns, &DeleteParams::default()).await?;
        let gone = async {
            while namespaces.get_opt(&ns).await.ok().flatten().is_some() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(args.timeout), gone)
            .await
            .is_err()
        {
            spinner.abandon();
            bail!("namespace {ns} still exists after {}s", args.timeout);
        }
        spinner.finish(&format!("deleted namespace {ns}"));
    } else {
        eprintln!("kept namespace {ns} (--delete-namespace=false)");
    }
    Ok(run)
}

async fn scrape(client: &kube::Client) -> anyhow::Result<String> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    client
        .request_text(req)
        .await
        .context("scraping the API server's /metrics")
}
