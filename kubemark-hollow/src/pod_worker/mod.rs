//! The kubelet's pod loop for one hollow node: watch the node's pods, admit or reject them, give
//! them IPs from the node's podCIDR, report them Running, finish or crash them on request, and
//! delete them gracefully. Only a few fields of each pod are kept, never the Pod object.

mod status_manager;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use kube::api::PostParams;
use rand::Rng;
use serde_json::json;
use tokio::sync::watch;

use self::status_manager::StatusManager;
use crate::api::Api;
use crate::node::NodeContext;
use crate::node::object::now_rfc3339;
use crate::pods::admission::{self, Requests};
use crate::pods::ipam::Ipam;
use crate::pods::status::{self, ContainerRef, ContainerState, StatusView};
use crate::pods::{
    EXIT_CODE_ANNOTATION, RUN_DURATION_ANNOTATION, command, parse_duration, record, usage,
};
use crate::watch::{Event, Informer};

/// The kubelet's generic PLEG relists containers every second: a started container is reported
/// Running by the next relist, not at once.
const PLEG_RELIST_PERIOD: Duration = Duration::from_secs(1);

/// The kubelet's volume manager adds a pod to its desired state in one loop and mounts in
/// another, each every 100 ms: a pod's first mount (its token requests) starts 0-200 ms after
/// the pod arrives. The delay matters because the API server's Node authorizer and
/// NodeRestriction pod cache answer 403/404 for a pod bound a moment ago: the requests should
/// meet them as late after the bind as a kubelet's do.
const VOLUME_MANAGER_PERIOD: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct PodState {
    namespace: Box<str>,
    name: Box<str>,
    ip: Option<Ipv4Addr>,
    requests: Requests,
    app: Box<[ContainerRef]>,
    init: Box<[ContainerRef]>,
    start_time: Box<str>,
    restart_policy: RestartPolicy,
    run_for: Option<Duration>,
    exit_code: i32,
    restarts: u32,
    unmet_gates: Vec<String>,
    /// The pod's `metadata.generation` last seen, reported back as `observedGeneration` (the
    /// kubelet does since v1.34); a graceful delete raises it.
    generation: Option<i64>,
    /// The pod came without a `PodScheduled` condition (bound by its creator, not by the
    /// scheduler): the kubelet adds one.
    add_scheduled: bool,
    /// When each condition last changed, so unchanged ones keep their time.
    transitions: status::Transitions,
    phase: Local,
    /// ConfigMaps and Secrets this pod keeps watched.
    objects: Box<[ObjectRef]>,
    /// A digest of the annotations the node's kubelet API reads (usage, log), to notice changes.
    api_annotations: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum ObjectKind {
    ConfigMap,
    Secret,
}

type ObjectRef = (ObjectKind, Box<str>, Box<str>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Local {
    /// Containers started, not yet seen by the PLEG relist.
    Starting,
    Running,
    BackOff,
    Terminal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// What wakes the pod worker besides its pod watch: its timers, and token requests done.
#[derive(Debug)]
enum Wake {
    Started(String),
    Exit(String),
    Restart(String),
    /// Make (or retry) the token requests of a pod waiting for its volumes.
    Mount(String),
    /// A pod's token requests are done; `tokens` are those that failed, with the first error.
    Mounted(Box<PendingMount>, Option<String>),
    /// Check (again) the ConfigMaps and Secrets a pod's environment reads.
    Configure(String),
    /// They were checked: the first missing one, if any.
    Configured(Box<Pod>, Option<String>),
}

/// The kubelet retries a pod whose container config failed on its next sync.
const CONFIG_RETRY: Duration = Duration::from_secs(10);

/// A ConfigMap or Secret a container's environment reads (`env[].valueFrom` with a key,
/// `envFrom` without), unless marked optional.
type EnvRef = (ObjectKind, String, Option<String>);

/// What a pod's containers read in their environment and need to exist.
fn env_refs(pod: &Pod) -> Vec<EnvRef> {
    let spec = pod.spec.as_ref();
    let containers = spec.into_iter().flat_map(|s| {
        s.init_containers
            .iter()
            .flatten()
            .chain(s.containers.iter())
    });
    let mut refs = Vec::new();
    for c in containers {
        for source in c.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
            if let Some(r) = &source.config_map_key_ref
                && r.optional != Some(true)
            {
                refs.push((ObjectKind::ConfigMap, r.name.clone(), Some(r.key.clone())));
            }
            if let Some(r) = &source.secret_key_ref
                && r.optional != Some(true)
            {
                refs.push((ObjectKind::Secret, r.name.clone(), Some(r.key.clone())));
            }
        }
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref
                && r.optional != Some(true)
            {
                refs.push((ObjectKind::ConfigMap, r.name.clone(), None));
            }
            if let Some(r) = &from.secret_ref
                && r.optional != Some(true)
            {
                refs.push((ObjectKind::Secret, r.name.clone(), None));
            }
        }
    }
    refs.sort();
    refs.dedup();
    refs
}

/// The kubelet's message for the first of `refs` that is missing, as it fails
/// `CreateContainerConfigError`.
async fn missing_env(ctx: &NodeContext, ns: &str, refs: &[EnvRef]) -> Option<String> {
    for (kind, name, key) in refs {
        ctx.limiter.acquire().await;
        let keys: Result<Option<Vec<String>>, kube::Error> = match kind {
            ObjectKind::ConfigMap => Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
                .get_opt(name)
                .await
                .map(|o| {
                    o.map(|c| {
                        let data = c.data.unwrap_or_default().into_keys();
                        data.chain(c.binary_data.unwrap_or_default().into_keys())
                            .collect()
                    })
                }),
            ObjectKind::Secret => Api::<Secret>::namespaced(ctx.client.clone(), ns)
                .get_opt(name)
                .await
                .map(|o| o.map(|s| s.data.unwrap_or_default().into_keys().collect())),
        };
        let (lower, title) = match kind {
            ObjectKind::ConfigMap => ("configmap", "ConfigMap"),
            ObjectKind::Secret => ("secret", "Secret"),
        };
        match keys {
            Err(e) => return Some(format!("failed to get {lower} {ns}/{name}: {e}")),
            Ok(None) => return Some(format!("{lower} {name:?} not found")),
            Ok(Some(keys)) => {
                if let Some(key) = key
                    && !keys.contains(key)
                {
                    return Some(format!("couldn't find key {key} in {title} {ns}/{name}"));
                }
            }
        }
    }
    None
}

/// The kubelet volume manager's back-off for a failed mount: 500 ms doubling to 2 min 2 s.
fn mount_backoff(attempt: u32) -> Duration {
    Duration::from_millis(500)
        .saturating_mul(1 << attempt.min(8))
        .min(Duration::from_secs(122))
}

/// A pod whose service-account tokens are not fetched yet: waiting for the volume manager's
/// first pass, or after a failure (the Node authorizer answers 403 until it has seen the pod
/// bound here). Its containers start once they are, as a kubelet's wait for the volumes to mount.
#[derive(Debug)]
struct PendingMount {
    pod: Box<Pod>,
    tokens: Vec<Token>,
    /// Attempts made so far.
    attempt: u32,
}

/// A projected service-account token to fetch: the volume it is for, and the request.
type Token = (String, TokenRequest);

/// A digest of the annotations that shape what the kubelet API shows of a pod.
fn api_annotations(pod: &Pod) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (k, v) in pod.metadata.annotations.iter().flatten() {
        if k.starts_with(usage::USAGE_ANNOTATION) || k == record::LOG_ANNOTATION {
            (k, v).hash(&mut h);
        }
    }
    h.finish()
}

fn containers(list: Option<&Vec<k8s_openapi::api::core::v1::Container>>) -> Box<[ContainerRef]> {
    list.into_iter()
        .flatten()
        .map(|c| ContainerRef {
            name: c.name.as_str().into(),
            image: c.image.as_deref().unwrap_or_default().into(),
            sidecar: c.restart_policy.as_deref() == Some("Always"),
        })
        .collect()
}

fn unmet_gates(pod: &Pod) -> Vec<String> {
    let gates = pod.spec.as_ref().and_then(|s| s.readiness_gates.as_ref());
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    gates
        .into_iter()
        .flatten()
        .filter(|g| {
            !conditions
                .into_iter()
                .flatten()
                .any(|c| c.type_ == g.condition_type && c.status == "True")
        })
        .map(|g| g.condition_type.clone())
        .collect()
}

/// Requests `tokens` for the pod's service account; returns those that failed, with the
/// first failure's message. The kubelet keeps a pod's containers from starting until every
/// token is there.
async fn request_tokens(
    ctx: &NodeContext,
    pod: &Pod,
    tokens: Vec<Token>,
) -> (Vec<Token>, Option<String>) {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .unwrap_or("default");
    let api = Api::<ServiceAccount>::namespaced(ctx.client.clone(), ns);
    let mut failed = Vec::new();
    let mut error = None;
    for (volume, request) in tokens {
        ctx.limiter.acquire().await;
        if let Err(e) = api
            .create_subresource::<TokenRequest>("token", sa, &PostParams::default(), &request)
            .await
        {
            tracing::debug!(node = %ctx.name, pod = ?pod.metadata.name, error = %e, "token request failed");
            error.get_or_insert_with(|| e.to_string());
            failed.push((volume, request));
        }
    }
    (failed, error)
}

/// Restart back-off as the kubelet's: 10 s doubling to 5 min.
fn backoff(restarts: u32) -> Duration {
    Duration::from_secs((10u64 << restarts.clamp(1, 6).saturating_sub(1)).min(300))
}

/// The pod worker of one node.
pub(crate) struct PodWorker {
    ctx: Arc<NodeContext>,
    pods: HashMap<String, PodState>,
    ipam: Option<Ipam>,
    allocatable: Requests,
    used: Requests,
    waiting_for_cidr: Vec<Pod>,
    /// Pods whose sandbox failed for want of an address; retried when one is freed.
    waiting_for_ip: Vec<Pod>,
    /// Pods already told (condition and event) that the range is exhausted, so retries stay quiet.
    reported_no_ip: std::collections::HashSet<String>,
    /// Open single-object watches with the number of pods using each.
    object_watches: HashMap<ObjectRef, (usize, tokio::task::AbortHandle)>,
    ip_freed: bool,
    /// futures' channel, not tokio's: tokio's allocates a block of 32 slots up front, 1.5 KiB
    /// of every node for timers that fire only while pods start and stop; this one allocates
    /// per message.
    wakes: futures::channel::mpsc::UnboundedSender<Wake>,
    status: StatusManager,
    /// Pods handed to the status manager for their final delete; their watch events are
    /// ignored until the API server reports them gone.
    deleting: std::collections::HashSet<Box<str>>,
    /// Pods waiting for their volumes (failed token requests), by UID.
    mounting: HashMap<String, PendingMount>,
    /// Pods whose environment reads a ConfigMap or Secret that was missing, by UID, with
    /// whether the failure was reported.
    configuring: HashMap<String, (Box<Pod>, bool)>,
}

impl PodWorker {
    /// Runs until the process stops. `cidr` carries the node's podCIDR once allocated.
    pub(crate) async fn run(ctx: Arc<NodeContext>, mut cidr: watch::Receiver<Option<String>>) {
        let allocatable = ctx
            .config
            .capacity
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), crate::quantity::parse(&v.0)?)))
            .collect();
        let (wakes, mut wake_rx) = futures::channel::mpsc::unbounded();
        let (status, status_task) = StatusManager::start(ctx.clone());
        let _status_task = crate::node::AbortOnDrop(vec![status_task.abort_handle()]);
        let mut worker = PodWorker {
            ctx: ctx.clone(),
            pods: HashMap::new(),
            ipam: None,
            allocatable,
            used: Requests::new(),
            waiting_for_cidr: Vec::new(),
            waiting_for_ip: Vec::new(),
            reported_no_ip: std::collections::HashSet::new(),
            object_watches: HashMap::new(),
            ip_freed: false,
            wakes,
            status,
            deleting: std::collections::HashSet::new(),
            mounting: HashMap::new(),
            configuring: HashMap::new(),
        };
        let pods = Informer::of::<Pod>(None).fields(&format!("spec.nodeName={}", ctx.name));
        let mut stream = std::pin::pin!(pods.events::<Pod>(ctx.client.clone()));
        let mut listed = std::collections::HashSet::new();
        loop {
            tokio::select! {
                event = stream.next() => match event {
                    Some(Ok(Event::Init)) => listed.clear(),
                    Some(Ok(Event::InitApply(pod))) => {
                        listed.insert(pod.metadata.uid.clone().unwrap_or_default());
                        Box::pin(worker.apply(*pod)).await;
                    }
                    Some(Ok(Event::InitDone)) => worker.forget_unlisted(&listed),
                    Some(Ok(Event::Apply(pod))) => Box::pin(worker.apply(*pod)).await,
                    Some(Ok(Event::Delete(pod))) => worker.forget(pod.metadata.uid.as_deref().unwrap_or_default()),
                    Some(Err(e)) => {
                        tracing::debug!(node = %ctx.name, error = %e, "pod watch failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    None => return,
                },
                changed = cidr.changed() => {
                    if changed.is_err() { return; }
                    let value = cidr.borrow_and_update().clone();
                    if let Some(value) = value { Box::pin(worker.set_cidr(&value)).await; }
                }
                Some(wake) = wake_rx.next() => worker.on_wake(wake),
            }
            if std::mem::take(&mut worker.ip_freed) {
                // Boxed, as the other steps: a pod held here across an await would make this
                // loop 2.4 KiB bigger for the node's whole life.
                Box::pin(worker.retry_waiting_for_ip()).await;
            }
        }
    }

    /// The volumes are mounted: pull (once per node and image), create and start the
    /// containers; the PLEG sees them running at its next relist.
    fn containers_started(&mut self, pod: &Pod, uid: String) {
        if let Some(p) = self.pods.get(&uid) {
            for c in p.init.iter().chain(p.app.iter()) {
                if self.ctx.image_pulled(&c.image) {
                    let image = &c.image;
                    self.event(
                        pod,
                        Some(&c.name),
                        "Normal",
                        "Pulling",
                        &format!("Pulling image \"{image}\""),
                    );
                    self.event(
                        pod,
                        Some(&c.name),
                        "Normal",
                        "Pulled",
                        &format!("Successfully pulled image \"{image}\""),
                    );
                } else {
                    let image =
                        format!("Container image \"{}\" already present on machine", c.image);
                    self.event(pod, Some(&c.name), "Normal", "Pulled", &image);
                }
                self.event(
                    pod,
                    Some(&c.name),
                    "Normal",
                    "Created",
                    &format!("Created container: {}", c.name),
                );
                self.event(
                    pod,
                    Some(&c.name),
                    "Normal",
                    "Started",
                    &format!("Started container {}", c.name),
                );
            }
        }
        // The PLEG's next relist sees the containers running.
        let relist = PLEG_RELIST_PERIOD.mul_f64(rand::rng().random_range(0.0..1.0));
        self.schedule(relist, Wake::Started(uid));
    }

    /// The volumes are there: check what the containers' environment reads, then start them.
    fn configure(&mut self, pod: Box<Pod>) {
        if env_refs(&pod).is_empty() {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            self.containers_started(&pod, uid);
        } else {
            self.check_env(pod);
        }
    }

    /// Reads the pod's environment's ConfigMaps and Secrets on a task of its own (as the
    /// kubelet's managers fetch them); the outcome comes back as `Wake::Configured`.
    fn check_env(&self, pod: Box<Pod>) {
        let ctx = self.ctx.clone();
        let wakes = self.wakes.clone();
        tokio::spawn(async move {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let error = missing_env(&ctx, ns, &env_refs(&pod)).await;
            let _ = wakes.unbounded_send(Wake::Configured(pod, error));
        });
    }

    /// The environment was checked: start the containers, or say why not
    /// (`CreateContainerConfigError`, as the kubelet) and check again later.
    fn configured(&mut self, pod: Box<Pod>, error: Option<String>) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if !self.starting(&uid) {
            self.configuring.remove(&uid);
            return;
        }
        let Some(error) = error else {
            self.configuring.remove(&uid);
            return self.containers_started(&pod, uid);
        };
        let reported = self.configuring.get(&uid).is_some_and(|(_, r)| *r);
        if !reported {
            tracing::debug!(node = %self.ctx.name, pod = ?pod.metadata.name, %error, "container config error");
            self.write_status(&uid, ContainerState::Waiting("CreateContainerConfigError"));
            self.event(&pod, None, "Warning", "Failed", &format!("Error: {error}"));
        }
        self.schedule(CONFIG_RETRY, Wake::Configure(uid.clone()));
        self.configuring.insert(uid, (pod, true));
    }

    /// Some token requests failed: report it (once, as the kubelet's event correlator folds the
    /// repeats) and retry them after the volume manager's back-off.
    fn mount_failed(&mut self, mut pending: PendingMount, error: &str) {
        let Some(uid) = pending.pod.metadata.uid.clone() else {
            return;
        };
        if pending.attempt == 0 {
            let volume = pending.tokens.first().map(|(v, _)| v.as_str());
            let message = format!(
                "MountVolume.SetUp failed for volume \"{}\" : failed to fetch token: {error}",
                volume.unwrap_or_default()
            );
            self.event(&pending.pod, None, "Warning", "FailedMount", &message);
        }
        let wait = mount_backoff(pending.attempt);
        pending.attempt += 1;
        self.mount_after(wait, uid, pending);
    }

    /// Keeps the pod's token requests until the volume manager's next try, `after` from now.
    fn mount_after(&mut self, after: Duration, uid: String, pending: PendingMount) {
        self.schedule(after, Wake::Mount(uid.clone()));
        self.mounting.insert(uid, pending);
    }

    fn retry_mount(&mut self, uid: String) {
        let Some(pending) = self.mounting.remove(&uid) else {
            return;
        };
        if !self.starting(&uid) {
            return;
        }
        self.mount(pending);
    }

    /// The pod is still waiting for its containers to start (not deleted or gone meanwhile).
    fn starting(&self, uid: &str) -> bool {
        self.pods
            .get(uid)
            .is_some_and(|p| p.phase == Local::Starting)
    }

    /// Requests the pod's tokens on a task of its own, as the kubelet's volume manager mounts
    /// volumes apart from its pod workers: meanwhile this worker goes on reading its pod watch
    /// and starting the node's other pods. The outcome comes back as `Wake::Mounted`.
    fn mount(&self, pending: PendingMount) {
        let ctx = self.ctx.clone();
        let wakes = self.wakes.clone();
        let mut pending = Box::new(pending);
        tokio::spawn(async move {
            let tokens = std::mem::take(&mut pending.tokens);
            let (failed, error) = request_tokens(&ctx, &pending.pod, tokens).await;
            pending.tokens = failed;
            let _ = wakes.unbounded_send(Wake::Mounted(pending, error));
        });
    }

    /// A pod's token requests are done: start its containers, or retry after a back-off.
    fn mounted(&mut self, pending: PendingMount, error: Option<String>) {
        let uid = pending.pod.metadata.uid.clone().unwrap_or_default();
        if !self.starting(&uid) {
            return;
        }
        match error {
            None => self.configure(pending.pod),
            Some(e) => self.mount_failed(pending, &e),
        }
    }

    async fn retry_waiting_for_ip(&mut self) {
        for pod in std::mem::take(&mut self.waiting_for_ip) {
            self.apply(pod).await;
        }
    }

    async fn set_cidr(&mut self, cidr: &str) {
        if self.ipam.as_ref().is_some_and(|i| i.cidr() == cidr) {
            return;
        }
        match Ipam::new(cidr) {
            Ok(mut ipam) => {
                for p in self.pods.values() {
                    if let Some(ip) = p.ip {
                        ipam.reserve(ip);
                    }
                }
                self.ipam = Some(ipam);
                for pod in std::mem::take(&mut self.waiting_for_cidr) {
                    self.apply(pod).await;
                }
            }
            Err(e) => tracing::error!(node = %self.ctx.name, error = %e, "unusable podCIDR"),
        }
    }

    /// Forgets everything about a pod the API server no longer has.
    fn forget(&mut self, uid: &str) {
        self.stop_tracking(uid);
        self.configuring.remove(uid);
        self.reported_no_ip.remove(uid);
        self.deleting.remove(uid);
        self.status.forget(uid);
    }

    /// Releases the pod's resources and stops waiting to start it.
    fn stop_tracking(&mut self, uid: &str) {
        self.ctx.pods.remove(uid, SystemTime::now());
        if let Some(p) = self.pods.remove(uid) {
            self.release(&p);
        }
        self.waiting_for_cidr
            .retain(|p| p.metadata.uid.as_deref() != Some(uid));
        self.waiting_for_ip
            .retain(|p| p.metadata.uid.as_deref() != Some(uid));
    }

    fn release(&mut self, p: &PodState) {
        self.unwatch_objects(&p.objects);
        if let (Some(ip), Some(ipam)) = (p.ip, self.ipam.as_mut()) {
            ipam.release(ip);
            self.ip_freed = true;
        }
        if p.phase != Local::Terminal {
            for (k, v) in &p.requests {
                *self.used.entry(k.clone()).or_default() -= v;
            }
        }
    }

    fn forget_unlisted(&mut self, listed: &std::collections::HashSet<String>) {
        let gone: Vec<String> = self
            .pods
            .keys()
            .cloned()
            .chain(self.deleting.iter().map(|u| u.to_string()))
            .filter(|k| !listed.contains(k))
            .collect();
        for uid in gone {
            self.forget(&uid);
        }
    }

    fn admitted(&self) -> usize {
        self.pods
            .values()
            .filter(|p| p.phase != Local::Terminal)
            .count()
    }

    async fn apply(&mut self, pod: Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending");
        let terminal = matches!(phase, "Succeeded" | "Failed");
        tracing::trace!(
            node = %self.ctx.name, pod = ?pod.metadata.name, phase, deleting = pod.metadata.deletion_timestamp.is_some(),
            "pod event"
        );
        if self.deleting.contains(uid.as_str()) {
            return;
        }
        if self
            .waiting_for_ip
            .iter()
            .any(|p| p.metadata.uid.as_deref() == Some(uid.as_str()))
        {
            // Still waiting for an address; deletion is handled below like any other pod.
            if pod.metadata.deletion_timestamp.is_none() {
                return;
            }
            self.waiting_for_ip
                .retain(|p| p.metadata.uid.as_deref() != Some(uid.as_str()));
        }
        if pod.metadata.deletion_timestamp.is_some() {
            self.delete(&uid, &pod).await;
            return;
        }
        if let Some(state) = self.pods.get_mut(&uid) {
            let digest = api_annotations(&pod);
            if digest != state.api_annotations {
                state.api_annotations = digest;
                let mut result = Ok(());
                self.ctx
                    .pods
                    .update(&uid, |r| result = r.annotate(&pod, SystemTime::now()));
                if let Err(e) = result {
                    self.event(&pod, None, "Warning", "InvalidAnnotation", &e.to_string());
                }
            }
            let Some(state) = self.pods.get_mut(&uid) else {
                return;
            };
            // A known pod: only readiness gates and the generation (a spec change) can change
            // what the kubelet reports.
            let gates = unmet_gates(&pod);
            let changed = gates != state.unmet_gates || pod.metadata.generation != state.generation;
            if changed {
                state.unmet_gates = gates;
                state.generation = pod.metadata.generation;
                if state.phase == Local::Running {
                    self.write_status(&uid, ContainerState::Running);
                }
            }
            return;
        }
        if terminal {
            return;
        }
        self.start(pod, uid).await;
    }

    async fn start(&mut self, pod: Pod, uid: String) {
        let spec = pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false);
        let status = pod.status.clone().unwrap_or_default();
        // After a restart of this process, a pod we already run keeps its IP.
        let existing_ip: Option<Ipv4Addr> = status.pod_ip.as_deref().and_then(|ip| ip.parse().ok());
        let already_running =
            status.phase.as_deref() == Some("Running") && status.start_time.is_some();
        if !host_network && self.ipam.is_none() {
            self.waiting_for_cidr.push(pod);
            return;
        }
        let requests = admission::pod_requests(&pod);
        if !already_running
            && let Err(rejection) =
                admission::admit(&requests, &self.used, self.admitted(), &self.allocatable)
        {
            tracing::info!(node = %self.ctx.name, pod = ?pod.metadata.name, reason = %rejection.reason, "rejected");
            self.patch_status(
                &pod,
                status::rejected(&rejection.reason, &rejection.message),
            );
            self.event(&pod, None, "Warning", &rejection.reason, &rejection.message);
            return;
        }
        let ip = if host_network {
            None
        } else if let Some(ip) =
            existing_ip.filter(|ip| self.ipam.as_mut().is_some_and(|i| i.reserve(*ip)))
        {
            Some(ip)
        } else {
            match self.ipam.as_mut().map(Ipam::allocate) {
                Some(Ok(ip)) => Some(ip),
                Some(Err(e)) => {
                    // As a CNI out of addresses: the sandbox fails, the pod stays Pending and says
                    // why (once), and is retried when an address is freed.
                    self.waiting_for_ip.push(pod.clone());
                    if !self.reported_no_ip.insert(uid) {
                        return;
                    }
                    let message =
                        format!("Failed to create pod sandbox: failed to allocate IP: {e}");
                    self.event(&pod, None, "Warning", "FailedCreatePodSandBox", &message);
                    let st = json!({ "phase": "Pending", "conditions": [{
                        "type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": null,
                        "lastTransitionTime": now_rfc3339(), "reason": "PodCIDRExhausted", "message": message,
                    }]});
                    self.patch_status(&pod, st);
                    return;
                }
                None => None,
            }
        };
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        let restart_policy = match spec.restart_policy.as_deref() {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        };
        // The annotations win; then what the command says (the longest-running container);
        // then, for a Job's pods, the configured default.
        // The pod's containers end when the longest-running one does, and only when every one
        // of them ends by itself.
        let from_command = spec
            .containers
            .iter()
            .map(command::finite)
            .collect::<Option<Vec<_>>>()
            .and_then(|all| all.into_iter().max_by_key(|f| f.run_for));
        let job_owned = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Job" && o.controller == Some(true));
        let run_for = annotations
            .get(RUN_DURATION_ANNOTATION)
            .and_then(|d| parse_duration(d))
            .or(from_command.map(|f| f.run_for))
            .or_else(|| {
                (job_owned && restart_policy != RestartPolicy::Always)
                    .then_some(self.ctx.config.job_run_duration)
                    .flatten()
            });
        let exit_code = annotations
            .get(EXIT_CODE_ANNOTATION)
            .and_then(|c| c.parse().ok())
            .or(from_command.map(|f| f.exit_code))
            .unwrap_or(0);
        let state = PodState {
            namespace: pod
                .metadata
                .namespace
                .as_deref()
                .unwrap_or("default")
                .into(),
            name: pod.metadata.name.as_deref().unwrap_or_default().into(),
            ip,
            requests,
            app: containers(Some(&spec.containers)),
            init: containers(spec.init_containers.as_ref()),
            start_time: status
                .start_time
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_else(now_rfc3339)
                .into(),
            restart_policy,
            run_for,
            exit_code,
            restarts: status
                .container_statuses
                .iter()
                .flatten()
                .map(|c| c.restart_count as u32)
                .max()
                .unwrap_or(0),
            unmet_gates: unmet_gates(&pod),
            generation: pod.metadata.generation,
            add_scheduled: !status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "PodScheduled"),
            transitions: Default::default(),
            phase: if already_running {
                Local::Running
            } else {
                Local::Starting
            },
            objects: Box::new([]),
            api_annotations: api_annotations(&pod),
        };
        for (k, v) in &state.requests {
            *self.used.entry(k.clone()).or_default() += v;
        }
        let run_for = state.run_for;
        self.reported_no_ip.remove(&uid);
        self.pods.insert(uid.clone(), state);
        let (record, invalid) = record::PodRecord::new(&pod, SystemTime::now());
        self.ctx.pods.insert(record);
        if let Some(e) = invalid {
            self.event(&pod, None, "Warning", "InvalidAnnotation", &e.to_string());
        }
        if already_running {
            // Running since its containers started, as the status the API server has says.
            let started = status
                .container_statuses
                .iter()
                .flatten()
                .filter_map(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref())
                .map(|t| SystemTime::from(t.0))
                .min()
                .unwrap_or_else(SystemTime::now);
            self.ctx.pods.adopt(&uid, started);
        }
        if !already_running {
            // As the kubelet's pod sync: the status says ContainerCreating before the volumes
            // are mounted; the containers start once they are.
            let tokens = self.fetch_volumes(&pod).await;
            self.write_status(&uid, ContainerState::Waiting("ContainerCreating"));
            if tokens.is_empty() {
                self.configure(Box::new(pod));
            } else {
                let mut rng = rand::rng();
                let ticks = rng.random_range(0.0..1.0) + rng.random_range(0.0..1.0);
                let pending = PendingMount {
                    pod: Box::new(pod),
                    tokens,
                    attempt: 0,
                };
                self.mount_after(VOLUME_MANAGER_PERIOD.mul_f64(ticks), uid, pending);
            }
        } else if let Some(d) = run_for {
            self.schedule(d, Wake::Exit(uid));
        }
    }

    /// ConfigMaps, Secrets and projected service-account tokens a pod mounts are fetched as the
    /// kubelet fetches them (GET, and a TokenRequest bound to the pod), so the API server carries
    /// that load too. Every pod gets a `kube-api-access-*` projected volume by default, so every
    /// pod start costs a TokenRequest and a ConfigMap read, as with a real kubelet. A missing
    /// ConfigMap or Secret does not block a hollow pod; a token that could not be fetched does
    /// (see `request_tokens`). Opens the watches and returns the token requests to make.
    async fn fetch_volumes(&mut self, pod: &Pod) -> Vec<Token> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let spec = pod.spec.as_ref();
        let mut configmaps = Vec::new();
        let mut secrets = Vec::new();
        let mut tokens = Vec::new();
        for v in spec.and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
            if let Some(cm) = &v.config_map {
                configmaps.push(cm.name.clone());
            }
            if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
                secrets.push(name);
            }
            for source in v
                .projected
                .as_ref()
                .and_then(|p| p.sources.as_ref())
                .into_iter()
                .flatten()
            {
                if let Some(cm) = &source.config_map {
                    configmaps.push(cm.name.clone());
                }
                if let Some(secret) = &source.secret {
                    secrets.push(secret.name.clone());
                }
                if let Some(token) = &source.service_account_token {
                    tokens.push((v.name.clone(), token.clone()));
                }
            }
        }
        // The kubelet's default (watch-based) manager keeps one single-object watch per
        // referenced ConfigMap and Secret while a pod on the node uses it.
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut refs = Vec::new();
        for name in configmaps {
            refs.push(
                self.watch_object::<ConfigMap>(ObjectKind::ConfigMap, ns, &name)
                    .await,
            );
        }
        for name in secrets {
            refs.push(
                self.watch_object::<Secret>(ObjectKind::Secret, ns, &name)
                    .await,
            );
        }
        if let Some(p) = self.pods.get_mut(&uid) {
            p.objects = refs.into_boxed_slice();
        }
        tokens
            .into_iter()
            .map(|(volume, token)| {
                let request = TokenRequest {
                    spec: Some(TokenRequestSpec {
                        audiences: token.audience.map(|a| vec![a]),
                        expiration_seconds: Some(token.expiration_seconds.unwrap_or(3607)),
                        bound_object_ref: Some(BoundObjectReference {
                            api_version: Some("v1".into()),
                            kind: Some("Pod".into()),
                            name: pod.metadata.name.clone(),
                            uid: pod.metadata.uid.clone(),
                        }),
                    }),
                    ..TokenRequest::default()
                };
                (volume, request)
            })
            .collect()
    }

    async fn watch_object<K>(&mut self, kind: ObjectKind, ns: &str, name: &str) -> ObjectRef
    where
        K: kube::Resource<DynamicType = ()>,
    {
        let key: ObjectRef = (kind, ns.into(), name.into());
        if let Some((count, _)) = self.object_watches.get_mut(&key) {
            *count += 1;
            return key;
        }
        self.ctx.limiter.acquire().await;
        let informer = Informer::of::<K>(Some(ns)).fields(&format!("metadata.name={name}"));
        let client = self.ctx.client.clone();
        let node = self.ctx.name.clone();
        let what = format!("{kind:?} {ns}/{name}");
        let task = tokio::spawn(async move { informer.drain(client, &node, &what).await });
        self.object_watches
            .insert(key.clone(), (1, task.abort_handle()));
        key
    }

    fn unwatch_objects(&mut self, objects: &[ObjectRef]) {
        for key in objects {
            if let Some((count, handle)) = self.object_watches.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    handle.abort();
                    self.object_watches.remove(key);
                }
            }
        }
    }

    fn schedule(&self, after: Duration, timer: Wake) {
        let tx = self.wakes.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.unbounded_send(timer);
        });
    }

    /// The containers of a pod in phase `from` (starting, or restarting after back-off) are
    /// seen running: report it and arm the exit timer.
    fn now_running(&mut self, uid: String, from: Local) {
        let Some(p) = self.pods.get_mut(&uid) else {
            return;
        };
        if p.phase != from {
            return;
        }
        p.phase = Local::Running;
        let run_for = p.run_for;
        self.ctx.pods.start(&uid, SystemTime::now());
        tracing::debug!(node = %self.ctx.name, pod = %p.name, "containers running");
        self.write_status(&uid, ContainerState::Running);
        if let Some(d) = run_for {
            self.schedule(d, Wake::Exit(uid));
        }
    }

    fn on_wake(&mut self, wake: Wake) {
        match wake {
            Wake::Started(uid) => self.now_running(uid, Local::Starting),
            Wake::Exit(uid) => {
                let Some(p) = self.pods.get(&uid) else { return };
                if p.phase != Local::Running {
                    return;
                }
                let restart = match p.restart_policy {
                    RestartPolicy::Always => true,
                    RestartPolicy::OnFailure => p.exit_code != 0,
                    RestartPolicy::Never => false,
                };
                let code = p.exit_code;
                self.ctx
                    .pods
                    .update(&uid, |r| r.exit(SystemTime::now(), code, restart));
                if restart {
                    let p = self.pods.get_mut(&uid).expect("checked above");
                    p.restarts += 1;
                    p.phase = Local::BackOff;
                    let wait = backoff(p.restarts);
                    self.write_status(&uid, ContainerState::Waiting("CrashLoopBackOff"));
                    self.schedule(wait, Wake::Restart(uid));
                } else {
                    self.write_status(&uid, ContainerState::Terminated(code));
                    let objects = self
                        .pods
                        .get_mut(&uid)
                        .map(|p| std::mem::take(&mut p.objects));
                    self.unwatch_objects(&objects.unwrap_or_default());
                    if let Some(p) = self.pods.get_mut(&uid) {
                        p.phase = Local::Terminal;
                        let p = std::mem::take(&mut p.requests);
                        for (k, v) in p {
                            *self.used.entry(k).or_default() -= v;
                        }
                    }
                    if let Some(ip) = self.pods.get_mut(&uid).and_then(|p| p.ip.take())
                        && let Some(ipam) = self.ipam.as_mut()
                    {
                        ipam.release(ip);
                        self.ip_freed = true;
                    }
                }
            }
            Wake::Restart(uid) => self.now_running(uid, Local::BackOff),
            Wake::Mount(uid) => self.retry_mount(uid),
            Wake::Mounted(pending, error) => self.mounted(*pending, error),
            Wake::Configure(uid) => {
                if let Some((pod, _)) = self.configuring.get(&uid)
                    && self.starting(&uid)
                {
                    self.check_env(pod.clone());
                }
            }
            Wake::Configured(pod, error) => self.configured(pod, error),
        }
    }

    /// Graceful deletion: stop the containers (at once: nothing runs), report them terminated,
    /// release the pod's resources, and leave the final delete (grace period 0) to the status
    /// manager, as the kubelet's pod worker does.
    async fn delete(&mut self, uid: &str, pod: &Pod) {
        // The pod leaves `pods` below and its UID is in `deleting` until the API server reports it
        // gone, so this runs once per pod.
        if let Some(p) = self.pods.get_mut(uid) {
            // The delete raised the generation; the terminated status reports it.
            p.generation = pod.metadata.generation;
        }
        if let Some(p) = self.pods.get(uid)
            && p.phase != Local::Terminal
        {
            for c in p.app.iter() {
                self.event(
                    pod,
                    Some(&c.name),
                    "Normal",
                    "Killing",
                    &format!("Stopping container {}", c.name),
                );
            }
            self.write_status(uid, ContainerState::Terminated(0));
        }
        if self.ctx.partitioned() {
            // Cut off: the pod stays Terminating; after healing the relist brings it back here.
            self.forget(uid);
            return;
        }
        self.stop_tracking(uid);
        self.deleting.insert(uid.into());
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        self.status.deletable(uid, ns, name);
    }

    /// Hands the pod's status, as the kubelet would generate it now, to the status manager.
    fn write_status(&mut self, uid: &str, app: ContainerState) {
        let Some(p) = self.pods.get(uid) else { return };
        let now = now_rfc3339();
        let host_ip = self.ctx.ip.to_string();
        // hostNetwork pods have the node's address.
        let pod_ip = Some(
            p.ip.map(|ip| ip.to_string())
                .unwrap_or_else(|| host_ip.clone()),
        );
        let view = StatusView {
            uid,
            host_ip: &host_ip,
            pod_ip: pod_ip.as_deref(),
            start_time: &p.start_time,
            now: &now,
            app,
            restarts: p.restarts,
            unmet_gates: &p.unmet_gates,
            generation: p.generation,
            scheduled_since: p.add_scheduled.then_some(&*p.start_time),
        };
        let mut status = status::pod_status(&p.app, &p.init, &view);
        let Some(p) = self.pods.get_mut(uid) else {
            return;
        };
        status::keep_transition_times(&mut status, &mut p.transitions);
        self.status.set(uid, &p.namespace, &p.name, status);
    }

    fn patch_status(&self, pod: &Pod, status: serde_json::Value) {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        self.status.set(uid, ns, name, status);
    }

    /// Emits a core/v1 Event from the kubelet on `pod` (or one of its containers).
    fn event(&self, pod: &Pod, container: Option<&str>, type_: &str, reason: &str, message: &str) {
        if !self.ctx.config.events {
            return;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let mut involved = json!({
            "apiVersion": "v1", "kind": "Pod", "namespace": ns,
            "name": pod.metadata.name.as_deref().unwrap_or_default(),
            "uid": pod.metadata.uid, "resourceVersion": pod.metadata.resource_version,
        });
        if let Some(c) = container {
            involved["fieldPath"] = json!(format!("spec.containers{{{c}}}"));
        }
        crate::node::kubelet_event(&self.ctx, ns, involved, type_, reason, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(5), Duration::from_secs(160));
        assert_eq!(backoff(9), Duration::from_secs(300));
    }
}
