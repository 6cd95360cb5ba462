//! `kubemark test load`: ClusterLoader2's load test in spirit. Deployments in big, medium and
//! small groups (each with a ConfigMap and a Secret mounted, a Service for every other one),
//! StatefulSets, Jobs and a DaemonSet are created at a pod rate, scaled up and down (the
//! DaemonSet rolled), then deleted; the same measurements as density are taken over the run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::error::WorkloadError;
use super::namespaces::{create_namespace, delete_namespaces};
use super::options::TestOptions;
use super::progress::Progress;
use super::start::{run_id, schedulable_nodes, started};
use crate::measurement::report::{ObjectCount, Phase, Point, TestRun};
use crate::measurement::{ClusterMeasurements, PodTracker, Target, slo};

/// The annotation that makes a hollow node run a pod's containers for the given time (e.g. `5s`)
/// and then let them succeed; the load test's Jobs use it. The hollow node reads the same key
/// (`kubemark_hollow::pods::RUN_DURATION_ANNOTATION`).
pub const RUN_DURATION_ANNOTATION: &str = "kubemark.io/run-duration";

/// A part of the load test a run can be focused on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// Deployments in big/medium/small groups.
    Deployments,
    /// A Service for every other Deployment and a headless one per StatefulSet.
    Services,
    /// A ConfigMap per Deployment, mounted by its pods.
    Configmaps,
    /// A Secret per Deployment, mounted by its pods.
    Secrets,
    /// One DaemonSet (a pod per node), rolled in the scale phase.
    Daemonsets,
    /// Jobs whose pods run for a few seconds and succeed.
    Jobs,
    /// StatefulSets (parallel pod management).
    Statefulsets,
    /// The scale phase: Deployments and StatefulSets to a random 50-150 % of their size.
    Scale,
}

impl Part {
    /// Every part, in the order the help lists them.
    pub const ALL: [Part; 8] = [
        Part::Deployments,
        Part::Services,
        Part::Configmaps,
        Part::Secrets,
        Part::Daemonsets,
        Part::Jobs,
        Part::Statefulsets,
        Part::Scale,
    ];
}

/// Group sizes, as CL2's load test: big 250, medium 30, small 5 pods.
const BIG: usize = 250;
const MEDIUM: usize = 30;
const SMALL: usize = 5;
/// CL2 puts 100 nodes' worth of objects in each namespace.
const NODES_PER_NAMESPACE: usize = 100;
/// How long a Job's pods run before they succeed.
const JOB_RUN: &str = "5s";

/// One workload of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// `Deployment`, `StatefulSet`, `Job`, `DaemonSet`.
    pub kind: &'static str,
    /// Index into the plan's namespaces.
    pub namespace: usize,
    /// Object name.
    pub name: String,
    /// Pods (for a DaemonSet: the node count).
    pub pods: usize,
}

/// What a load run creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Namespace count.
    pub namespaces: usize,
    /// Workloads in creation order.
    pub workloads: Vec<Workload>,
    /// Whether Deployments get a Service each (every other one) and StatefulSets a headless one.
    pub services: bool,
    /// Whether each Deployment gets a ConfigMap.
    pub configmaps: bool,
    /// Whether each Deployment gets a Secret.
    pub secrets: bool,
    /// Whether the scale phase runs.
    pub scale: bool,
}

impl Plan {
    /// Sizes the run: `nodes × pods_per_node` pods, a DaemonSet pod per node, of the rest 80 %
    /// in Deployments (a quarter big, a quarter medium, 30 % small), 10 % in StatefulSets and
    /// 10 % in Jobs of 5 pods; the shares of kinds left out by `focus` go to the others. Every
    /// kind in focus gets at least one object, so tiny clusters still exercise them all.
    pub fn new(nodes: usize, pods_per_node: usize, focus: &[Part]) -> Self {
        let on = |p: Part| focus.is_empty() || focus.contains(&p);
        let total = nodes * pods_per_node;
        let daemon = if on(Part::Daemonsets) { nodes } else { 0 };
        let rest = total.saturating_sub(daemon) as f64;
        let shares = [
            (Part::Deployments, 0.8),
            (Part::Statefulsets, 0.1),
            (Part::Jobs, 0.1),
        ];
        let sum: f64 = shares.iter().filter(|(p, _)| on(*p)).map(|(_, s)| s).sum();
        let budget = |p: Part, fraction: f64| -> f64 {
            if on(p) && sum > 0.0 {
                rest * fraction / sum
            } else {
                0.0
            }
        };
        let namespaces = nodes.div_ceil(NODES_PER_NAMESPACE).max(1);
        let mut workloads = Vec::new();
        let mut add = |kind: &'static str, prefix: &str, size: usize, count: usize| {
            for i in 0..count {
                let n = workloads.len();
                workloads.push(Workload {
                    kind,
                    namespace: n % namespaces,
                    name: format!("{prefix}-{i}"),
                    pods: size,
                });
            }
        };
        let groups = |pods: f64, size: usize| (pods / size as f64).floor() as usize;
        if on(Part::Deployments) {
            let d = budget(Part::Deployments, 0.8);
            add("Deployment", "big", BIG, groups(d * 0.25 / 0.8, BIG));
            add(
                "Deployment",
                "medium",
                MEDIUM,
                groups(d * 0.25 / 0.8, MEDIUM),
            );
            add(
                "Deployment",
                "small",
                SMALL,
                groups(d * 0.3 / 0.8, SMALL).max(1),
            );
        }
        if on(Part::Statefulsets) {
            let s = budget(Part::Statefulsets, 0.1);
            add("StatefulSet", "sts", SMALL, groups(s, SMALL).max(1));
        }
        if on(Part::Jobs) {
            let j = budget(Part::Jobs, 0.1);
            add("Job", "job", SMALL, groups(j, SMALL).max(1));
        }
        if on(Part::Daemonsets) {
            add("DaemonSet", "daemon", nodes, 1);
        }
        Self {
            namespaces,
            workloads,
            services: on(Part::Services),
            configmaps: on(Part::Configmaps),
            secrets: on(Part::Secrets),
            scale: on(Part::Scale),
        }
    }

    /// Pods the create phase makes.
    pub fn pods(&self) -> usize {
        self.workloads.iter().map(|w| w.pods).sum()
    }
}

/// The kinds a load run handles, in deletion order.
const KINDS: [&str; 7] = [
    "Deployment",
    "StatefulSet",
    "Job",
    "DaemonSet",
    "Service",
    "ConfigMap",
    "Secret",
];

fn resource(kind: &str) -> ApiResource {
    match kind {
        "Deployment" => ApiResource::erase::<Deployment>(&()),
        "StatefulSet" => ApiResource::erase::<StatefulSet>(&()),
        "Job" => ApiResource::erase::<Job>(&()),
        "DaemonSet" => ApiResource::erase::<DaemonSet>(&()),
        "Service" => ApiResource::erase::<Service>(&()),
        "ConfigMap" => ApiResource::erase::<ConfigMap>(&()),
        _ => ApiResource::erase::<Secret>(&()),
    }
}

fn labels(id: &str, app: &str) -> Value {
    json!({ "kubemark.io/test": "load", "kubemark.io/run": id, "app": app })
}

fn pod_template(id: &str, w: &Workload, plan: &Plan) -> Value {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if w.kind == "Deployment" && plan.configmaps {
        volumes.push(json!({ "name": "config", "configMap": { "name": w.name } }));
        mounts.push(json!({ "name": "config", "mountPath": "/etc/config" }));
    }
    if w.kind == "Deployment" && plan.secrets {
        volumes.push(json!({ "name": "secret", "secret": { "secretName": w.name } }));
        mounts.push(json!({ "name": "secret", "mountPath": "/etc/secret" }));
    }
    let mut annotations = json!({});
    if w.kind == "Job" {
        annotations = json!({ RUN_DURATION_ANNOTATION: JOB_RUN });
    }
    json!({
        "metadata": { "labels": labels(id, &w.name), "annotations": annotations },
        "spec": {
            "restartPolicy": if w.kind == "Job" { "Never" } else { "Always" },
            "terminationGracePeriodSeconds": 1,
            "containers": [{ "name": "pause", "image": "registry.k8s.io/pause:3.10",
                "resources": { "requests": { "cpu": "1m", "memory": "1Mi" } },
                "volumeMounts": mounts }],
            "volumes": volumes,
        },
    })
}

fn object(id: &str, w: &Workload, plan: &Plan) -> Value {
    let meta = json!({ "name": w.name, "labels": labels(id, &w.name) });
    let selector = json!({ "matchLabels": { "kubemark.io/run": id, "app": w.name } });
    let template = pod_template(id, w, plan);
    match w.kind {
        "Deployment" => json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": { "replicas": w.pods, "selector": selector, "template": template } }),
        "StatefulSet" => json!({ "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta,
            "spec": { "replicas": w.pods, "selector": selector, "template": template,
                "serviceName": w.name, "podManagementPolicy": "Parallel" } }),
        "Job" => json!({ "apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
            "spec": { "completions": w.pods, "parallelism": w.pods, "backoffLimit": 0,
                "template": template } }),
        _ => json!({ "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta,
            "spec": { "selector": selector, "template": template,
                "updateStrategy": { "type": "RollingUpdate",
                    "rollingUpdate": { "maxUnavailable": "10%" } } } }),
    }
}

/// The objects that go with a workload: its ConfigMap, Secret and Service.
fn companions(id: &str, w: &Workload, index: usize, plan: &Plan) -> Vec<Value> {
    let meta = json!({ "name": w.name, "labels": labels(id, &w.name) });
    let mut out = Vec::new();
    if w.kind == "Deployment" {
        if plan.configmaps {
            out.push(
                json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                "data": { "config": format!("load run {id}") } }),
            );
        }
        if plan.secrets {
            out.push(
                json!({ "apiVersion": "v1", "kind": "Secret", "metadata": meta,
                "stringData": { "token": format!("{:032x}", rand::random::<u128>()) } }),
            );
        }
    }
    let selector = json!({ "kubemark.io/run": id, "app": w.name });
    if plan.services && w.kind == "Deployment" && index.is_multiple_of(2) {
        out.push(
            json!({ "apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": { "selector": selector, "ports": [{ "port": 80, "targetPort": 8080 }] } }),
        );
    }
    if plan.services && w.kind == "StatefulSet" {
        out.push(
            json!({ "apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": { "clusterIP": "None", "selector": selector,
                "ports": [{ "port": 80 }] } }),
        );
    }
    out
}

fn int(v: &Value, path: &[&str]) -> i64 {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Whether a workload has reached its spec: every pod Ready and updated, or a Job complete.
fn settled(kind: &str, o: &DynamicObject) -> bool {
    let d = &o.data;
    let generation = o.metadata.generation.unwrap_or(0);
    let observed = int(d, &["status", "observedGeneration"]) >= generation;
    match kind {
        "Deployment" | "StatefulSet" => {
            let want = int(d, &["spec", "replicas"]);
            let updated = if kind == "Deployment" {
                int(d, &["status", "updatedReplicas"])
            } else {
                int(d, &["status", "currentReplicas"]).max(int(d, &["status", "updatedReplicas"]))
            };
            observed
                && int(d, &["status", "readyReplicas"]) == want
                && int(d, &["status", "replicas"]) == want
                && updated == want
        }
        "Job" => int(d, &["status", "succeeded"]) >= int(d, &["spec", "completions"]),
        "DaemonSet" => {
            let want = int(d, &["status", "desiredNumberScheduled"]);
            observed
                && want > 0
                && int(d, &["status", "numberReady"]) == want
                && int(d, &["status", "updatedNumberScheduled"]) == want
        }
        _ => true,
    }
}

struct Run<'a> {
    client: kube::Client,
    id: String,
    namespaces: Vec<String>,
    plan: &'a Plan,
    tracker: &'a PodTracker,
    progress: &'a dyn Progress,
    timeout: Duration,
    qps: f64,
    start: Instant,
    running_over_time: Vec<Point>,
    created: BTreeMap<&'static str, usize>,
}

impl Run<'_> {
    fn api(&self, kind: &str, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &resource(kind))
    }

    fn sample(&mut self) -> usize {
        let running = self.tracker.running_now();
        self.running_over_time.push(Point {
            t: self.start.elapsed().as_secs_f64(),
            v: running as f64,
        });
        running
    }

    async fn create(&mut self, namespace: &str, value: Value) -> Result<(), WorkloadError> {
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        let name = value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let obj: DynamicObject = serde_json::from_value(value)?;
        // Get-or-create: a re-run that finds its own object keeps it.
        match self
            .api(&kind, namespace)
            .create(&Default::default(), &obj)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(WorkloadError::api(format!(
                    "creating {kind} {namespace}/{name}"
                ))(e));
            }
        }
        let kind = KINDS.into_iter().find(|k| *k == kind).unwrap_or("Unknown");
        *self.created.entry(kind).or_default() += 1;
        Ok(())
    }

    /// Sleeps so that `pods` pods at the run's rate have passed since `next`.
    async fn pace(next: &mut tokio::time::Instant, pods: usize, qps: f64) {
        tokio::time::sleep_until(*next).await;
        *next += Duration::from_secs_f64(pods as f64 / qps);
    }

    async fn create_phase(&mut self) -> Result<(), WorkloadError> {
        let total = self.plan.workloads.len();
        let progress = self.progress.counter(
            &format!(
                "load create: {} workloads, {} pods in {}",
                total,
                self.plan.pods(),
                self.namespaces.join(", ")
            ),
            total,
            "created",
        );
        let mut next = tokio::time::Instant::now();
        let mut last = Instant::now();
        for (i, w) in self.plan.workloads.iter().enumerate() {
            let ns = self.namespaces[w.namespace].clone();
            for c in companions(&self.id, w, i, self.plan) {
                self.create(&ns, c).await?;
            }
            Self::pace(&mut next, w.pods, self.qps).await;
            self.create(&ns, object(&self.id, w, self.plan)).await?;
            if last.elapsed() >= Duration::from_secs(1) {
                let running = self.sample();
                progress.set(i + 1, &format!("pods running {running}"));
                last = Instant::now();
            }
        }
        progress.finish(&format!("created {total} workloads"));
        self.settle("create").await
    }

    /// Waits until every workload has reached its spec.
    async fn settle(&mut self, phase: &str) -> Result<(), WorkloadError> {
        let total = self.plan.workloads.len();
        let progress = self.progress.counter(
            &format!("load {phase}: waiting for {total} workloads"),
            total,
            "settled",
        );
        let deadline = Instant::now() + self.timeout;
        loop {
            let mut waiting = Vec::new();
            for kind in ["Deployment", "StatefulSet", "Job", "DaemonSet"] {
                for ns in &self.namespaces {
                    let list = self
                        .api(kind, ns)
                        .list(
                            &ListParams::default().labels(&format!("kubemark.io/run={}", self.id)),
                        )
                        .await
                        .map_err(WorkloadError::api(format!("listing {kind}s in {ns}")))?;
                    waiting.extend(list.items.iter().filter(|o| !settled(kind, o)).map(|o| {
                        format!("{kind} {ns}/{}", o.metadata.name.as_deref().unwrap_or("?"))
                    }));
                }
            }
            let running = self.sample();
            progress.set(
                total - waiting.len().min(total),
                &format!("pods running {running}"),
            );
            if waiting.is_empty() {
                progress.finish(&format!(
                    "load {phase}: all {total} workloads settled, {running} pods Running"
                ));
                return Ok(());
            }
            if Instant::now() > deadline {
                progress.abandon();
                waiting.truncate(5);
                return Err(WorkloadError::NotSettled {
                    phase: phase.to_string(),
                    seconds: self.timeout.as_secs(),
                    waiting,
                    run: self.id.clone(),
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn scale_phase(&mut self) -> Result<(), WorkloadError> {
        let mut next = tokio::time::Instant::now();
        let mut rollout = 0;
        for w in &self.plan.workloads {
            let ns = &self.namespaces[w.namespace];
            let api = self.api(w.kind, ns);
            let patch = match w.kind {
                "Deployment" | "StatefulSet" => {
                    let factor = 0.5 + rand::random::<f64>();
                    let replicas = ((w.pods as f64 * factor).round() as usize).max(1);
                    Self::pace(&mut next, replicas.saturating_sub(w.pods).max(1), self.qps).await;
                    json!({ "spec": { "replicas": replicas } })
                }
                "DaemonSet" => {
                    rollout += 1;
                    Self::pace(&mut next, w.pods, self.qps).await;
                    json!({ "spec": { "template": { "metadata": { "annotations": {
                        "kubemark.io/rollout": rollout.to_string() } } } } })
                }
                _ => continue,
            };
            api.patch(&w.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(WorkloadError::api(format!(
                    "scaling {} {ns}/{}",
                    w.kind, w.name
                )))?;
        }
        self.settle("scale").await
    }

    /// Deletes every object the run made and waits until they and their pods are gone.
    async fn delete_phase(&mut self) -> Result<BTreeMap<&'static str, usize>, WorkloadError> {
        let spinner = self
            .progress
            .spinner("load delete: deleting every object of the run");
        let selector = format!("kubemark.io/run={}", self.id);
        let mut next = tokio::time::Instant::now();
        let background = DeleteParams::background();
        for w in &self.plan.workloads {
            Self::pace(&mut next, w.pods, self.qps).await;
            match self
                .api(w.kind, &self.namespaces[w.namespace])
                .delete(&w.name, &background)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(WorkloadError::api(format!(
                        "deleting {} {}",
                        w.kind, w.name
                    ))(e));
                }
            }
        }
        for kind in ["Service", "ConfigMap", "Secret"] {
            for ns in &self.namespaces {
                let api = self.api(kind, ns);
                let list = api
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .map_err(WorkloadError::api(format!("listing {kind}s in {ns}")))?;
                for o in list.items {
                    let name = o.metadata.name.unwrap_or_default();
                    match api.delete(&name, &background).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
                        Err(e) => {
                            return Err(
                                WorkloadError::api(format!("deleting {kind} {ns}/{name}"))(e),
                            );
                        }
                    }
                }
            }
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let mut left: BTreeMap<&'static str, usize> = BTreeMap::new();
            for kind in KINDS.into_iter().chain(["Pod"]) {
                let r = if kind == "Pod" {
                    ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&())
                } else {
                    resource(kind)
                };
                for ns in &self.namespaces {
                    let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &r);
                    let n = api
                        .list_metadata(&ListParams::default().labels(&selector))
                        .await
                        .map_err(WorkloadError::api(format!("listing {kind}s in {ns}")))?
                        .items
                        .len();
                    if n > 0 {
                        *left.entry(kind).or_default() += n;
                    }
                }
            }
            self.sample();
            if left.is_empty() {
                spinner.finish("load delete: every object of the run is gone");
                return Ok(self.created.clone());
            }
            if Instant::now() > deadline {
                spinner.abandon();
                let left: Vec<String> = left.iter().map(|(k, n)| format!("{n} {k}")).collect();
                return Err(WorkloadError::NotDeleted {
                    seconds: self.timeout.as_secs(),
                    left,
                    run: self.id.clone(),
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Runs a load test against `target`: the [`Plan`] for its schedulable nodes (limited to
/// `focus`, all parts when empty) created, scaled and deleted in namespaces of its own
/// (`load-<id>-<i>`). Fails when a phase does not settle within the timeout; a failed SLO is not
/// an error but a verdict in the result ([`TestRun::pass`]).
pub async fn run(
    target: &Target,
    options: &TestOptions,
    focus: &[Part],
    progress: &dyn Progress,
) -> Result<TestRun, WorkloadError> {
    options.validate()?;
    let client = target.client().clone();
    let (started_at, version) = started(&client).await?;
    let nodes = schedulable_nodes(&client).await?;
    let plan = Plan::new(nodes, options.pods_per_node, focus);
    let id = run_id();
    let namespaces: Vec<String> = (0..plan.namespaces)
        .map(|i| format!("load-{id}-{i}"))
        .collect();
    for ns in &namespaces {
        create_namespace(&client, ns, "load").await?;
    }
    let tracker = PodTracker::start(client.clone(), &format!("kubemark.io/run={id}"));
    let cluster = ClusterMeasurements::start(target).await?;
    let mut run = Run {
        client: client.clone(),
        id: id.clone(),
        namespaces: namespaces.clone(),
        plan: &plan,
        tracker: &tracker,
        progress,
        timeout: options.timeout,
        qps: options.qps,
        start: Instant::now(),
        running_over_time: Vec::new(),
        created: BTreeMap::new(),
    };
    let mut phases = Vec::new();
    let t = Instant::now();
    run.create_phase().await?;
    phases.push(Phase {
        name: "create".into(),
        seconds: t.elapsed().as_secs_f64(),
    });
    if plan.scale {
        let t = Instant::now();
        run.scale_phase().await?;
        phases.push(Phase {
            name: "scale".into(),
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    let deleted = if options.delete_namespace {
        let t = Instant::now();
        let deleted = run.delete_phase().await?;
        phases.push(Phase {
            name: "delete".into(),
            seconds: t.elapsed().as_secs_f64(),
        });
        deleted
    } else {
        BTreeMap::new()
    };
    let duration = run.start.elapsed();
    let running_over_time = std::mem::take(&mut run.running_over_time);
    let created = run.created.clone();
    let pods_created = tracker.seen();
    let timings = tracker.finish();
    let results = cluster.finish().await?;
    let verdicts = slo::verdicts(&options.slo, &timings.startup, &results.api_calls);
    let pass = verdicts.iter().all(|v| v.pass);
    let objects = KINDS
        .iter()
        .filter_map(|k| {
            let c = created.get(k).copied()?;
            Some(ObjectCount {
                kind: (*k).to_string(),
                created: c,
                deleted: deleted.get(k).copied().unwrap_or(0),
            })
        })
        .collect();
    if options.delete_namespace {
        delete_namespaces(&client, &namespaces, options.timeout, progress).await?;
    } else {
        progress.note(&format!(
            "kept namespaces {} and everything in them (--delete-namespace=false)",
            namespaces.join(", ")
        ));
    }
    Ok(TestRun {
        api_version: "kubemark.io/v1alpha1".into(),
        kind: "TestRun".into(),
        test: "load".into(),
        started_at,
        duration_seconds: duration.as_secs_f64(),
        kubernetes_version: version,
        nodes,
        pods_per_node: options.pods_per_node,
        pods_created,
        pods_measured: timings.startup.count,
        create_qps: options.qps,
        pod_startup_ms: timings.startup,
        create_to_schedule_ms: timings.to_schedule,
        schedule_to_run_ms: timings.to_run,
        scheduling_throughput: timings.throughput,
        running_over_time,
        api_calls: results.api_calls,
        components: results.components,
        objects,
        phases,
        etcd: Some(results.etcd),
        verdicts,
        pass,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(plan: &Plan, kind: &str) -> usize {
        plan.workloads.iter().filter(|w| w.kind == kind).count()
    }

    #[test]
    fn a_100_node_plan_has_every_group_and_fits_the_pod_budget() {
        let plan = Plan::new(100, 30, &[]);
        assert_eq!(plan.namespaces, 1);
        let sizes: Vec<usize> = plan
            .workloads
            .iter()
            .filter(|w| w.kind == "Deployment")
            .map(|w| w.pods)
            .collect();
        assert!(sizes.contains(&BIG) && sizes.contains(&MEDIUM) && sizes.contains(&SMALL));
        assert_eq!(count(&plan, "DaemonSet"), 1);
        assert!(count(&plan, "StatefulSet") >= 1 && count(&plan, "Job") >= 1);
        let pods = plan.pods();
        assert!(pods <= 3000 && pods > 2700, "{pods}");
        let names: std::collections::HashSet<_> =
            plan.workloads.iter().map(|w| (w.kind, &w.name)).collect();
        assert_eq!(
            names.len(),
            plan.workloads.len(),
            "names are unique per kind"
        );
    }

    #[test]
    fn tiny_clusters_still_get_one_of_each_and_big_ones_spread_over_namespaces() {
        let plan = Plan::new(3, 6, &[]);
        for kind in ["Deployment", "StatefulSet", "Job", "DaemonSet"] {
            assert!(count(&plan, kind) >= 1, "{kind}");
        }
        let plan = Plan::new(1000, 30, &[]);
        assert_eq!(plan.namespaces, 10);
        let used: std::collections::HashSet<usize> =
            plan.workloads.iter().map(|w| w.namespace).collect();
        assert_eq!(used.len(), 10);
    }

    #[test]
    fn focus_drops_kinds_and_phases_and_gives_their_share_to_the_rest() {
        let all = Plan::new(100, 30, &[]);
        let plan = Plan::new(100, 30, &[Part::Deployments, Part::Services]);
        assert_eq!(
            count(&plan, "Job") + count(&plan, "StatefulSet") + count(&plan, "DaemonSet"),
            0
        );
        assert!(plan.services && !plan.configmaps && !plan.secrets && !plan.scale);
        let deployed = |p: &Plan| {
            p.workloads
                .iter()
                .filter(|w| w.kind == "Deployment")
                .map(|w| w.pods)
                .sum::<usize>()
        };
        assert!(deployed(&plan) > deployed(&all));
        let jobs = Plan::new(10, 30, &[Part::Jobs]);
        assert!(jobs.workloads.iter().all(|w| w.kind == "Job"));
        assert_eq!(jobs.pods(), 300);
    }

    #[test]
    fn objects_are_well_formed_kubernetes_objects() {
        let plan = Plan::new(3, 6, &[]);
        for (i, w) in plan.workloads.iter().enumerate() {
            let v = object("abc", w, &plan);
            let obj: DynamicObject = serde_json::from_value(v.clone()).expect("object");
            assert_eq!(obj.metadata.name.as_deref(), Some(w.name.as_str()));
            match w.kind {
                "Deployment" => {
                    let d: Deployment = serde_json::from_value(v).expect("deployment");
                    let vols = d.spec.unwrap().template.spec.unwrap().volumes.unwrap();
                    assert_eq!(vols.len(), 2, "ConfigMap and Secret mounted");
                }
                "Job" => {
                    let j: Job = serde_json::from_value(v).expect("job");
                    let t = j.spec.unwrap().template;
                    assert!(
                        t.metadata
                            .unwrap()
                            .annotations
                            .unwrap()
                            .contains_key(RUN_DURATION_ANNOTATION)
                    );
                }
                "StatefulSet" => {
                    let _: StatefulSet = serde_json::from_value(v).expect("sts");
                }
                _ => {
                    let _: DaemonSet = serde_json::from_value(v).expect("ds");
                }
            }
            for c in companions("abc", w, i, &plan) {
                let _: DynamicObject = serde_json::from_value(c).expect("companion");
            }
        }
    }
}
