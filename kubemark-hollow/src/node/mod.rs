//! One hollow node: what its loops share ([`NodeContext`]: identity, client, fault, pods, images)
//! and the kubelet's node loop: register the Node, renew its Lease, report its status, follow
//! its Node object (for `spec.podCIDR`), beside the loops the caller adds (the pod worker, NPD).

pub mod fault;
pub mod object;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::storage::v1::CSIDriver;
use kube::api::{Patch, PatchParams, PostParams};
use rand::Rng;
use serde_json::json;
use tokio::sync::watch;

use crate::api::Api;
use crate::client::{ApiClient, RateLimiter};
use crate::config::NodeConfig;
use crate::watch::{Event, Informer};
use object::{NodeFacts, now_rfc3339};

/// The port of the kubelet API, as the kubelet's `--port` defaults it.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// Everything one node's loops share.
pub struct NodeContext {
    /// The node's name.
    pub name: String,
    /// A client authenticated as this node.
    pub client: ApiClient,
    /// This node's client-side rate limit (not applied to leases, as in the kubelet).
    pub limiter: RateLimiter,
    /// This node's event rate limit, separate as the kubelet's event recorder's.
    pub event_limiter: RateLimiter,
    /// The node's shape.
    pub config: Arc<NodeConfig>,
    /// The node's InternalIP.
    pub ip: Ipv4Addr,
    /// The port of its kubelet API (`daemonEndpoints.kubeletEndpoint.Port`).
    pub kubelet_port: u16,
    /// Its pods as its kubelet API shows them.
    pub pods: crate::pods::record::PodRecords,
    /// The requests its client sent, by method and answer code.
    pub requests: Arc<crate::client::RequestCounts>,
    /// The injected fault, from the Node's `kubemark.io/fault` annotation.
    pub fault: std::sync::RwLock<fault::Fault>,
    /// The Ready status the API server last showed for this node (from the node watch): the
    /// node lifecycle controller may have changed it (Unknown), which the kubelet corrects.
    pub observed_ready: std::sync::RwLock<Option<String>>,
    /// Images "pulled" onto this node by its pods, newest last, reported in the node status
    /// (the scheduler's ImageLocality score reads them).
    pub images: std::sync::Mutex<Vec<Box<str>>>,
}

impl NodeContext {
    /// A node named `name` that talks to the API server with `client`: its address and rate
    /// limits follow from the name and `config`; no fault, nothing observed or pulled yet.
    pub fn new(name: String, client: ApiClient, config: Arc<NodeConfig>) -> Self {
        let requests = Arc::<crate::client::RequestCounts>::default();
        let client = client.with_request_counts(requests.clone());
        NodeContext {
            requests,
            ip: object::node_ip(&name),
            kubelet_port: DEFAULT_KUBELET_PORT,
            pods: Default::default(),
            limiter: RateLimiter::new(config.qps, config.burst),
            event_limiter: RateLimiter::new(config.event_qps, config.event_burst),
            fault: std::sync::RwLock::default(),
            observed_ready: std::sync::RwLock::default(),
            images: std::sync::Mutex::default(),
            name,
            client,
            config,
        }
    }

    /// The node at `ip`, its kubelet API on `port`.
    pub fn at(mut self, ip: Ipv4Addr, port: u16) -> Self {
        self.ip = ip;
        self.kubelet_port = port;
        self
    }

    /// The fault as it stands.
    pub fn fault(&self) -> fault::Fault {
        self.fault.read().map(|f| f.clone()).unwrap_or_default()
    }

    /// Records that a pod uses `image`; true when the node did not have it yet (a pull).
    pub fn image_pulled(&self, image: &str) -> bool {
        let mut images = self.images.lock().unwrap_or_else(|e| e.into_inner());
        if images.iter().any(|i| &**i == image) {
            return false;
        }
        images.push(image.into());
        true
    }

    fn image_list(&self) -> Vec<Box<str>> {
        self.images.lock().map(|i| i.clone()).unwrap_or_default()
    }

    /// Whether the node is cut off from the API server right now (no writes at all).
    pub fn partitioned(&self) -> bool {
        self.fault().partitioned(tokio::time::Instant::now())
    }
}

/// Errors that stop a node from joining.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Registration failed.
    #[error("node {node}: registration failed: {source}")]
    Register {
        /// The node.
        node: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

impl std::fmt::Debug for NodeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeContext")
            .field("name", &self.name)
            .field("ip", &self.ip)
            .finish_non_exhaustive()
    }
}

fn jittered(base: Duration, factor: f64) -> Duration {
    base.mul_f64(1.0 + rand::rng().random_range(0.0..factor))
}

/// Runs one hollow node until the task is dropped: registers it, then runs its loops and those
/// `more` starts once it is registered, given the node's `spec.podCIDR` as the node watch sees it.
pub async fn run(
    ctx: Arc<NodeContext>,
    kubelet_version: String,
    more: impl FnOnce(watch::Receiver<Option<String>>) -> Vec<tokio::task::JoinHandle<()>>,
) -> Result<(), NodeError> {
    let facts = NodeFacts {
        name: ctx.name.clone(),
        ip: ctx.ip,
        kubelet_port: ctx.kubelet_port,
        kubelet_version,
        boot_id: uuid_like(),
    };
    let created = Box::pin(register(&ctx, &facts)).await?;
    node_started_events(&ctx, created);
    let (cidr_tx, cidr_rx) = watch::channel(None);
    let node_uid = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut tasks = vec![
        tokio::spawn(lease_loop(ctx.clone(), node_uid.clone())),
        tokio::spawn(status_loop(ctx.clone(), facts)),
        tokio::spawn(node_watch(ctx.clone(), cidr_tx, node_uid)),
        tokio::spawn(kubelet_informers(ctx.clone())),
    ];
    tasks.extend(more(cidr_rx));
    // Abort the loops when this future is dropped (the node is stopped).
    let _guard = AbortOnDrop(tasks.iter().map(|t| t.abort_handle()).collect());
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// Aborts the tasks when dropped: a node's loops end with the node.
pub(crate) struct AbortOnDrop(pub(crate) Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// The events a kubelet records on its Node as it starts: `Starting`, the pressure conditions it
/// creates when it registers the Node (a Node that existed keeps its conditions, and the kubelet
/// records no transition), and its container manager's `NodeAllocatableEnforced`.
fn node_started_events(ctx: &Arc<NodeContext>, created: bool) {
    node_event(ctx, "Starting", "Starting kubelet.");
    if created {
        for reason in [
            "NodeHasSufficientMemory",
            "NodeHasNoDiskPressure",
            "NodeHasSufficientPID",
        ] {
            node_status_event(ctx, reason);
        }
    }
    node_event(
        ctx,
        "NodeAllocatableEnforced",
        "Updated Node Allocatable limit across pods",
    );
}

/// A status event of the kubelet's node status setters ("Node X status is now: REASON").
fn node_status_event(ctx: &Arc<NodeContext>, reason: &str) {
    let message = format!("Node {} status is now: {reason}", ctx.name);
    node_event(ctx, reason, &message);
}

fn node_event(ctx: &Arc<NodeContext>, reason: &str, message: &str) {
    let node = json!({ "apiVersion": "v1", "kind": "Node", "name": ctx.name });
    kubelet_event(ctx, "default", node, "Normal", reason, message);
}

/// Emits a core/v1 Event from the kubelet about `involved` (in namespace `ns`; a Node's go to
/// `default`), without waiting for it: the kubelet's recorder is asynchronous too. Nothing when
/// the node's events are off (`--no-events`).
pub(crate) fn kubelet_event(
    ctx: &Arc<NodeContext>,
    ns: &str,
    involved: serde_json::Value,
    type_: &str,
    reason: &str,
    message: &str,
) {
    if !ctx.config.events {
        return;
    }
    let now = now_rfc3339();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let name = involved["name"].as_str().unwrap_or_default();
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": { "name": format!("{name}.{stamp:x}"), "namespace": ns },
        "involvedObject": involved,
        "reason": reason, "message": message, "type": type_,
        "source": { "component": "kubelet", "host": ctx.name },
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "reportingComponent": "kubelet", "reportingInstance": ctx.name,
    });
    let Ok(event) = serde_json::from_value::<k8s_openapi::api::core::v1::Event>(event) else {
        return;
    };
    let ctx = ctx.clone();
    let ns = ns.to_string();
    tokio::spawn(async move {
        ctx.event_limiter.acquire().await;
        let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(ctx.client.clone(), &ns);
        let _ = api.create(&PostParams::default(), &event).await;
    });
}

fn uuid_like() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Registers the Node; whether it was created (false: it existed, a restart).
async fn register(ctx: &NodeContext, facts: &NodeFacts) -> Result<bool, NodeError> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let node: Node =
        serde_json::from_value(object::node(facts, &ctx.config)).expect("the node object is valid");
    let mut delay = Duration::from_millis(200);
    loop {
        ctx.limiter.acquire().await;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {
                tracing::info!(node = %ctx.name, "registered");
                return Ok(true);
            }
            // Registered before (a restart): the status loop brings it up to date, as the kubelet
            // does for a node that already exists.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tracing::info!(node = %ctx.name, "already registered; updating its status");
                return Ok(false);
            }
            Err(kube::Error::Api(s)) if s.code == 401 || s.code == 403 => {
                return Err(NodeError::Register {
                    node: ctx.name.clone(),
                    source: kube::Error::Api(s),
                });
            }
            Err(e) => {
                tracing::warn!(node = %ctx.name, error = %e, "registration failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(7));
            }
        }
    }
}

/// Renews the Lease every quarter of its duration, by update with the cached object (no GET
/// before each renewal), as the kubelet's lease controller does.
///
/// Requests in this and the node's other long-lived loops are boxed: inline, a request's state
/// (about 1.5 KiB each) would stay part of the loop's for the node's whole life.
async fn lease_loop(ctx: Arc<NodeContext>, node_uid: Arc<std::sync::Mutex<Option<String>>>) {
    let interval = ctx.config.lease_duration / 4;
    // The Lease as the API server last returned it, kept as its protobuf message (see `renew`).
    let mut cached: Option<Bytes> = None;
    let mut backoff = Duration::ZERO;
    loop {
        if ctx.partitioned() {
            tokio::time::sleep(jittered(interval, 0.04)).await;
            continue;
        }
        cached = Box::pin(renew_with_retries(&ctx, cached.take(), &node_uid)).await;
        let wait = match cached {
            Some(_) => {
                backoff = Duration::ZERO;
                jittered(interval, 0.04)
            }
            None => {
                backoff = (backoff * 2).clamp(LEASE_BACKOFF_FIRST, LEASE_BACKOFF_MAX);
                backoff
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Updates of a held Lease tried at once before the loop backs off (component-helpers' lease
/// controller, `maxUpdateRetries`).
const LEASE_ATTEMPTS: usize = 5;

/// The back-off between failed renewals, doubling up to its cap, as the kubelet's when it
/// cannot fetch or create its Lease (`backoffEnsureLease`): an API server that is down is not
/// dialled by every node in a tight loop.
const LEASE_BACKOFF_FIRST: Duration = Duration::from_millis(200);
const LEASE_BACKOFF_MAX: Duration = Duration::from_secs(7);

/// How long one lease request may take: the kubelet's heartbeat client times out after the
/// status update frequency, capped by the lease duration (cmd/kubelet, `heartbeatClientConfig`).
fn heartbeat_timeout(config: &NodeConfig) -> Duration {
    config.status_update_frequency.min(config.lease_duration)
}

/// One renewal as the kubelet's lease controller makes it: each attempt bounded by the
/// heartbeat timeout and stamped with a fresh renew time; a failed update of the held Lease
/// retried at once, up to five attempts. A conflict (the Lease changed elsewhere) drops the
/// held copy, so the next attempt fetches it; a failed fetch or create ends the renewal and
/// the loop backs off. On a saturated API server this cancels a PUT stuck for 10 s and sends
/// another, as kubelets do; waiting for the first would stamp the Lease later.
async fn renew_with_retries(
    ctx: &NodeContext,
    mut cached: Option<Bytes>,
    node_uid: &std::sync::Mutex<Option<String>>,
) -> Option<Bytes> {
    let timeout = heartbeat_timeout(&ctx.config);
    for attempt in 1..=LEASE_ATTEMPTS {
        let held = cached.is_some();
        match tokio::time::timeout(timeout, renew(ctx, cached.as_ref(), node_uid)).await {
            Ok(Ok(lease)) => return Some(lease),
            Ok(Err(e)) => {
                tracing::debug!(node = %ctx.name, attempt, error = %e, "lease renewal failed");
                if matches!(&e, kube::Error::Api(s) if s.code == 409) {
                    cached = None;
                }
            }
            Err(_) => {
                tracing::debug!(node = %ctx.name, attempt, ?timeout, "lease renewal timed out")
            }
        }
        if !held {
            return None;
        }
    }
    None
}

/// One attempt: an update of the cached Lease, or (none cached) a GET and update, or a
/// create; in protobuf, as the kubelet sends them. Returns the Lease to update next time as
/// the API server's protobuf message (about 300 bytes; decoded with its managed fields it held
/// 2.5 KiB per node between renewals): a renewal rewrites only its renew time and copies the
/// rest.
async fn renew(
    ctx: &NodeContext,
    cached: Option<&Bytes>,
    node_uid: &std::sync::Mutex<Option<String>>,
) -> Result<Bytes, kube::Error> {
    use crate::protobuf::{LeaseRenewal, MicroTime, new_lease, renewed_lease};
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), "kube-node-lease");
    let duration = ctx.config.lease_duration.as_secs() as i32;
    let params = PostParams::default();
    let uid = node_uid.lock().ok().and_then(|u| u.clone());
    let owner = uid.as_deref().map(|uid| (ctx.name.as_str(), uid));
    // Renewing the cached Lease keeps everything but the renew time; without one (the first
    // renewal, after a conflict, or after a renewal whose attempts all failed) the Lease is
    // fetched and, whoever held it before (this node before a restart), taken over, or created.
    let take_over = cached.is_none();
    let renewal = LeaseRenewal {
        holder: take_over.then_some(ctx.name.as_str()),
        duration_seconds: take_over.then_some(duration),
        renew_time: MicroTime::now(),
        owner,
    };
    let lease = match cached {
        Some(lease) => Some(lease.clone()),
        None => leases.get_protobuf(&ctx.name).await?,
    };
    match lease {
        Some(lease) => {
            let body =
                renewed_lease(&lease, &renewal).map_err(|e| kube::Error::Service(Box::new(e)))?;
            leases.replace_protobuf(&ctx.name, &params, &body).await
        }
        None => {
            let lease = new_lease(&ctx.name, &renewal);
            leases.create_protobuf(&params, &lease).await
        }
    }
}

/// Computes node status every `status_update_frequency` and writes it when it changed or when
/// `status_report_frequency` passed since the last write.
async fn status_loop(ctx: Arc<NodeContext>, facts: NodeFacts) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let mut transition = now_rfc3339();
    let mut ready = true;
    // A digest of the status last written, not the status: kept for the node's life, a JSON
    // tree of the status cost every node tens of KiB.
    let mut last_written: Option<(u64, tokio::time::Instant)> = None;
    loop {
        let fault = ctx.fault();
        let at = tokio::time::Instant::now();
        if !fault.partitioned(at) {
            let now = now_rfc3339();
            if fault.ready(at) != ready {
                ready = !ready;
                transition = now.clone();
                node_status_event(&ctx, if ready { "NodeReady" } else { "NodeNotReady" });
            }
            let images = ctx.image_list();
            let mut status = object::status(&facts, &ctx.config, &now, &transition, ready);
            let mut comparable = object::status(&facts, &ctx.config, "", &transition, ready);
            if !images.is_empty() {
                status["images"] = object::images(&images);
                comparable["images"] = status["images"].clone();
            }
            let want = if ready { "True" } else { "False" };
            let observed = ctx.observed_ready.read().ok().and_then(|o| o.clone());
            // Like the kubelet, compare with what the API server shows, not only with what we
            // wrote: after a partition the node lifecycle controller has set Ready to Unknown.
            let drifted = observed.is_some_and(|o| o != want);
            let due = drifted
                || match &last_written {
                    None => true,
                    Some((prev, at)) => {
                        *prev != object::digest(&comparable)
                            || at.elapsed() >= ctx.config.status_report_frequency
                    }
                };
            if due {
                ctx.limiter.acquire().await;
                let body = json!({ "status": status });
                let params = PatchParams::default();
                let patch = Patch::Strategic(&body);
                match Box::pin(nodes.patch_status(&ctx.name, &params, &patch)).await {
                    Ok(_) => {
                        last_written =
                            Some((object::digest(&comparable), tokio::time::Instant::now()))
                    }
                    Err(e) => {
                        tracing::debug!(node = %ctx.name, error = %e, "node status update failed")
                    }
                }
            }
        }
        let tick = tokio::time::Instant::now() + ctx.config.status_update_frequency;
        let change = fault.next_change(at).filter(|c| *c > at);
        tokio::time::sleep_until(change.map_or(tick, |c| c.min(tick))).await;
    }
}

/// Follows this node's own Node object, as the kubelet's node informer does; hands out the
/// podCIDR once the controller-manager allocates it.
async fn node_watch(
    ctx: Arc<NodeContext>,
    cidr: watch::Sender<Option<String>>,
    node_uid: Arc<std::sync::Mutex<Option<String>>>,
) {
    let own = Informer::of::<Node>(None).fields(&format!("metadata.name={}", ctx.name));
    let mut stream = std::pin::pin!(own.events::<Node>(ctx.client.clone()));
    let mut last_fault: Option<String> = None;
    while let Some(event) = stream.next().await {
        let node = match event {
            Ok(Event::Apply(n) | Event::InitApply(n)) => *n,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(node = %ctx.name, error = %e, "node watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Ok(mut uid) = node_uid.lock() {
            *uid = node.metadata.uid.clone();
        }
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone());
        if let Ok(mut observed) = ctx.observed_ready.write() {
            *observed = ready;
        }
        let annotation = node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(fault::FAULT_ANNOTATION))
            .cloned();
        if annotation != last_fault {
            let parsed = match &annotation {
                None => Ok(fault::Fault::default()),
                Some(v) => fault::parse(v, tokio::time::Instant::now()),
            };
            match parsed {
                Ok(f) => {
                    tracing::info!(node = %ctx.name, fault = ?annotation, "fault injection changed");
                    if let Ok(mut current) = ctx.fault.write() {
                        *current = f;
                    }
                }
                Err(e) => {
                    tracing::warn!(node = %ctx.name, error = %e, "ignoring invalid {}", fault::FAULT_ANNOTATION)
                }
            }
            last_fault = annotation;
        }
        let value = node.spec.and_then(|s| s.pod_cidr);
        if value.is_some() && *cidr.borrow() != value {
            let _ = cidr.send(value);
        }
    }
}

/// Informers every kubelet of this version keeps open regardless of its pods: all Services (for
/// pods' environment variables), CSIDrivers and RuntimeClasses. The API server carries these
/// watches for every node, so a hollow node keeps them open too; the events are dropped. One task
/// holds all three.
async fn kubelet_informers(ctx: Arc<NodeContext>) {
    let client = &ctx.client;
    let node = ctx.name.as_str();
    tokio::join!(
        Informer::of::<Service>(None).drain(client.clone(), node, "services"),
        Informer::of::<CSIDriver>(None).drain(client.clone(), node, "csidrivers"),
        Informer::of::<RuntimeClass>(None).drain(client.clone(), node, "runtimeclasses"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the scripted API server does with a request.
    #[derive(Clone, Copy)]
    enum Answer {
        /// Never answers (a saturated API server).
        Stall,
        /// Answers with the request's own body, as the stored object.
        Echo,
        /// Answers with a stored Lease (for a GET).
        Stored,
        Conflict,
        /// An internal error, at once (an API server refusing everything).
        Fail,
    }

    /// A node whose API server answers lease requests from `script`, recording each request's
    /// method and path.
    fn node(script: Vec<Answer>) -> (NodeContext, Arc<std::sync::Mutex<Vec<String>>>) {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let script = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
            script,
        )));
        let recorded = seen.clone();
        let service =
            tower::service_fn(move |request: http::Request<http_body_util::Full<Bytes>>| {
                let answer = script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .expect("script exhausted");
                recorded.lock().unwrap().push(format!(
                    "{} {}",
                    request.method(),
                    request.uri().path()
                ));
                async move {
                    use http_body_util::BodyExt;
                    let body = request.into_body().collect().await?.to_bytes();
                    let (code, body) = match answer {
                        Answer::Stall => std::future::pending().await,
                        Answer::Echo => (200, body),
                        Answer::Stored => (200, Bytes::from(stored_lease())),
                        Answer::Conflict => (409, Bytes::from_static(CONFLICT.as_bytes())),
                        Answer::Fail => (500, Bytes::from_static(FAILURE.as_bytes())),
                    };
                    let content_type = if code == 200 {
                        "application/vnd.kubernetes.protobuf"
                    } else {
                        "application/json"
                    };
                    Ok::<_, tower::BoxError>(
                        http::Response::builder()
                            .status(code)
                            .header("Content-Type", content_type)
                            .body(crate::client::ResponseBody::from(body))
                            .unwrap(),
                    )
                }
            });
        let ctx = NodeContext::new(
            "n".into(),
            ApiClient::from_service(service),
            Arc::new(NodeConfig::default()),
        );
        (ctx, seen)
    }

    /// A Lease as a renewal would send it, standing for the one last returned.
    fn cached_lease() -> Bytes {
        let renewal = crate::protobuf::LeaseRenewal {
            holder: Some("n"),
            duration_seconds: Some(40),
            renew_time: crate::protobuf::MicroTime::now(),
            owner: None,
        };
        Bytes::from(crate::protobuf::new_lease("n", &renewal))
    }

    /// The Lease as the API server sends it: the message in the protobuf envelope.
    fn stored_lease() -> Vec<u8> {
        crate::protobuf::wrap("coordination.k8s.io/v1", "Lease", &cached_lease())
    }

    const CONFLICT: &str = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"the object has been modified","reason":"Conflict","code":409}"#;
    const FAILURE: &str = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"InternalError","code":500}"#;
    const PUT: &str = "PUT /apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n";
    const GET: &str = "GET /apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n";

    #[tokio::test(start_paused = true)]
    async fn a_stalled_renewal_is_given_up_after_the_heartbeat_timeout_and_sent_again() {
        let (ctx, seen) = node(vec![Answer::Stall, Answer::Echo]);
        let uid = std::sync::Mutex::new(None);
        let start = tokio::time::Instant::now();
        let renewed = renew_with_retries(&ctx, Some(cached_lease()), &uid).await;
        assert!(renewed.is_some());
        assert_eq!(start.elapsed(), heartbeat_timeout(&ctx.config));
        assert_eq!(*seen.lock().unwrap(), [PUT, PUT]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_lease_is_updated_five_times_at_most_before_the_renewal_gives_up() {
        let (ctx, seen) = node(vec![Answer::Stall; 5]);
        let uid = std::sync::Mutex::new(None);
        let start = tokio::time::Instant::now();
        let renewed = renew_with_retries(&ctx, Some(cached_lease()), &uid).await;
        assert!(renewed.is_none());
        assert_eq!(start.elapsed(), heartbeat_timeout(&ctx.config) * 5);
        assert_eq!(*seen.lock().unwrap(), [PUT; 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_conflict_fetches_the_lease_and_a_failed_fetch_ends_the_renewal() {
        let (ctx, seen) = node(vec![Answer::Conflict, Answer::Stall]);
        let uid = std::sync::Mutex::new(None);
        let renewed = renew_with_retries(&ctx, Some(cached_lease()), &uid).await;
        assert!(renewed.is_none());
        // After the conflict the held copy is gone: the GET stalls and times out, and the
        // loop's back-off, not an immediate retry, comes next.
        assert_eq!(*seen.lock().unwrap(), [PUT, GET]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_conflict_is_followed_by_a_fetch_and_an_update() {
        let (ctx, seen) = node(vec![Answer::Conflict, Answer::Stored, Answer::Echo]);
        let uid = std::sync::Mutex::new(None);
        let renewed = renew_with_retries(&ctx, Some(cached_lease()), &uid).await;
        assert!(renewed.is_some());
        assert_eq!(*seen.lock().unwrap(), [PUT, GET, PUT]);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_renewals_back_off_to_seven_seconds_instead_of_retrying_in_a_loop() {
        let (ctx, seen) = node(vec![Answer::Fail; 64]);
        let uid = Arc::new(std::sync::Mutex::new(None));
        let looping = lease_loop(Arc::new(ctx), uid);
        let _ = tokio::time::timeout(Duration::from_secs(30), looping).await;
        // A GET (nothing held) at 0, then after 0.2, 0.4, 0.8, 1.6, 3.2, 6.4 s and every 7 s:
        // at 0, 0.2, 0.6, 1.4, 3.0, 6.2, 12.6, 19.6, 26.6 s.
        assert_eq!(*seen.lock().unwrap(), [GET; 9]);
    }
}
