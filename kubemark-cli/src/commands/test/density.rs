//! `kubemark test density`: N pods per node created at a fixed rate, start-up latency measured
//! from the watch, scheduling throughput, API responsiveness, etcd, master resource use.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

use super::measure::{self, ClusterMeasurements, PodTracker};
use super::report::{Phase, Point, TestRun};
use super::{DensityArgs, Target};

fn pod(namespace: &str, name: &str, run: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "namespace": namespace,
            "labels": { "kubemark.io/test": "density", "kubemark.io/run": run } },
        "spec": {
            "containers": [{ "name": "pause", "image": "registry.k8s.io/pause:3.10",
                "resources": { "requests": { "cpu": "1m", "memory": "1Mi" } } }],
            "terminationGracePeriodSeconds": 0,
        },
    }))
    .expect("valid pod")
}

pub async fn run(args: DensityArgs, target: Target) -> anyhow::Result<TestRun> {
    let args = args.common;
    let client = target.client.clone();
    let (started_at, version) = measure::started(&client).await?;
    let n = measure::schedulable_nodes(&client).await?;
    let total = args.pods_per_node * n;
    let id = measure::run_id();
    let ns = format!("density-{id}");
    measure::create_namespace(&client, &ns, "density").await?;
    let progress = super::Progress::new(
        &format!("density: {total} pods on {n} nodes in {ns}"),
        total,
        "created",
    );

    let tracker = PodTracker::start(client.clone(), &format!("kubemark.io/run={id}"));
    let cluster = ClusterMeasurements::start(&target).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.qps);
    let mut next = tokio::time::Instant::now();
    let mut running_over_time = Vec::new();
    let mut last_sample = Instant::now();
    for i in 0..total {
        tokio::time::sleep_until(next).await;
        next += interval;
        let name = format!("density-{i}");
        tracker.created(&ns, &name);
        pods.create(&PostParams::default(), &pod(&ns, &name, &id))
            .await
            .with_context(|| format!("creating pod {name}"))?;
        if last_sample.elapsed() >= Duration::from_secs(1) {
            let running = tracker.running();
            progress.set(i + 1, &format!("running {running}"));
            running_over_time.push(Point {
                t: start.elapsed().as_secs_f64(),
                v: running as f64,
            });
            last_sample = Instant::now();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let running = tracker.running();
        progress.set(total, &format!("running {running}"));
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
    let timings = tracker.finish();
    let results = cluster.finish().await?;
    let verdicts = measure::verdicts(&args, &timings.startup, &results.api_calls);
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
        pods_measured: timings.startup.count,
        create_qps: args.qps,
        pod_startup_ms: timings.startup,
        create_to_schedule_ms: timings.to_schedule,
        schedule_to_run_ms: timings.to_run,
        scheduling_throughput: timings.throughput,
        running_over_time,
        api_calls: results.api_calls,
        components: results.components,
        objects: Vec::new(),
        phases: vec![Phase {
            name: "create".into(),
            seconds: duration.as_secs_f64(),
        }],
        etcd: Some(results.etcd),
        verdicts,
        pass,
    };
    if args.delete_namespace {
        measure::delete_namespaces(&client, &[ns], Duration::from_secs(args.timeout)).await?;
    } else {
        eprintln!("kept namespace {ns} (--delete-namespace=false)");
    }
    Ok(run)
}
