//! Density: N pods per node created at a fixed rate until all are Running, as ClusterLoader2's
//! density test; start-up latency from a watch, scheduling throughput, API responsiveness, etcd
//! and resource usage measured over the run.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

use super::error::WorkloadError;
use super::namespaces::{create_namespace, delete_namespaces};
use super::options::TestOptions;
use super::progress::Progress;
use super::start::{run_id, schedulable_nodes, started};
use crate::measurement::report::{Phase, Point, TestRun};
use crate::measurement::{ClusterMeasurements, PodTracker, Target, slo};

fn pod(namespace: &str, name: &str, run: &str) -> Result<Pod, WorkloadError> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "namespace": namespace,
            "labels": { "kubemark.io/test": "density", "kubemark.io/run": run } },
        "spec": {
            "containers": [{ "name": "pause", "image": "registry.k8s.io/pause:3.10",
                "resources": { "requests": { "cpu": "1m", "memory": "1Mi" } } }],
            "terminationGracePeriodSeconds": 0,
        },
    }))?)
}

/// Runs a density test against `target`: `pods_per_node` pods for every schedulable node, in a
/// namespace of their own (`density-<id>`), deleted at the end unless told otherwise. Fails when
/// the pods are not all Running within the timeout; a failed SLO is not an error but a verdict
/// in the result ([`TestRun::pass`]).
pub async fn run(
    target: &Target,
    options: &TestOptions,
    progress: &dyn Progress,
) -> Result<TestRun, WorkloadError> {
    options.validate()?;
    let client = target.client().clone();
    let (started_at, version) = started(&client).await?;
    let n = schedulable_nodes(&client).await?;
    let total = options.pods_per_node * n;
    let id = run_id();
    let ns = format!("density-{id}");
    create_namespace(&client, &ns, "density").await?;
    let step = progress.counter(
        &format!("density: {total} pods on {n} nodes in {ns}"),
        total,
        "created",
    );

    let tracker = PodTracker::start(client.clone(), &format!("kubemark.io/run={id}"));
    let cluster = ClusterMeasurements::start(target).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / options.qps);
    let mut next = tokio::time::Instant::now();
    let mut running_over_time = Vec::new();
    let mut last_sample = Instant::now();
    for i in 0..total {
        tokio::time::sleep_until(next).await;
        next += interval;
        let name = format!("density-{i}");
        tracker.created(&ns, &name);
        pods.create(&PostParams::default(), &pod(&ns, &name, &id)?)
            .await
            .map_err(WorkloadError::api(format!("creating pod {name}")))?;
        if last_sample.elapsed() >= Duration::from_secs(1) {
            let running = tracker.running();
            step.set(i + 1, &format!("running {running}"));
            running_over_time.push(Point {
                t: start.elapsed().as_secs_f64(),
                v: running as f64,
            });
            last_sample = Instant::now();
        }
    }
    let deadline = Instant::now() + options.timeout;
    loop {
        let running = tracker.running();
        step.set(total, &format!("running {running}"));
        running_over_time.push(Point {
            t: start.elapsed().as_secs_f64(),
            v: running as f64,
        });
        if running >= total {
            break;
        }
        if Instant::now() > deadline {
            step.abandon();
            return Err(WorkloadError::NotRunning {
                running,
                total,
                seconds: options.timeout.as_secs(),
                namespace: ns,
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let duration = start.elapsed();
    step.finish(&format!(
        "{total} pods Running in {:.1}s",
        duration.as_secs_f64()
    ));
    let timings = tracker.finish();
    let results = cluster.finish().await?;
    let verdicts = slo::verdicts(&options.slo, &timings.startup, &results.api_calls);
    let pass = verdicts.iter().all(|v| v.pass);
    let run = TestRun {
        api_version: "kubemark.io/v1alpha1".into(),
        kind: "TestRun".into(),
        test: "density".into(),
        started_at,
        duration_seconds: duration.as_secs_f64(),
        kubernetes_version: version,
        nodes: n,
        pods_per_node: options.pods_per_node,
        pods_created: total,
        pods_measured: timings.startup.count,
        create_qps: options.qps,
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
    if options.delete_namespace {
        delete_namespaces(&client, &[ns], options.timeout, progress).await?;
    } else {
        progress.note(&format!("kept namespace {ns} (--delete-namespace=false)"));
    }
    Ok(run)
}
