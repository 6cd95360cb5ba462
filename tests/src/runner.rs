//! **Test scaffolding, not product.** Plays the kubelet of an "external cluster" (a second real
//! control plane started by the test) for the hollow-node pods kubemark deploys there: it
//! registers one Node (Ready, lease renewed), and runs each pod bound to it as a local process,
//! with the pod's env (`env`, `envFrom` ConfigMaps, `metadata.name` and `status.podIP` field refs), `$(VAR)`
//! expansion in args, and its Secret, ConfigMap and emptyDir volumes materialised in a temp dir
//! (mount paths in the args rewritten to them). The image is not pulled: `command: [hollow-node]`
//! runs the `hollow-node` binary under test. Pod status is reported from the real process: Running
//! while it runs, CrashLoopBackOff with the last log line when it exits (restarted after 2 s).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use serde_json::json;

/// A running runner; stops its processes on drop.
pub struct Runner {
    node: String,
    client: kube::Client,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    children: Arc<Mutex<HashMap<String, tokio::process::Child>>>,
    dir: tempfile::TempDir,
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl Runner {
    /// Registers Node `node` on the cluster of `client` and runs the pods bound to it with
    /// `hollow_node` (the binary under test, [`crate::hollow_node`]).
    pub async fn start(client: kube::Client, node: &str, hollow_node: PathBuf) -> Self {
        let nodes: Api<Node> = Api::all(client.clone());
        let n: Node = serde_json::from_value(json!({
            "metadata": { "name": node, "labels": { "kubernetes.io/hostname": node } },
            "status": { "capacity": { "cpu": "64", "memory": "256Gi", "pods": "250" },
                        "allocatable": { "cpu": "64", "memory": "256Gi", "pods": "250" } },
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &n).await.unwrap();
        let dir = tempfile::Builder::new()
            .prefix("kubemark-runner-")
            .tempdir()
            .unwrap();
        let children: Arc<Mutex<HashMap<String, tokio::process::Child>>> = Arc::default();
        let heartbeat = {
            let client = client.clone();
            let node = node.to_string();
            tokio::spawn(async move { heartbeat(client, node).await })
        };
        let pods = {
            let client = client.clone();
            let node = node.to_string();
            let children = children.clone();
            let root = dir.path().to_path_buf();
            tokio::spawn(async move { run_pods(client, node, hollow_node, root, children).await })
        };
        Self {
            node: node.to_string(),
            client,
            tasks: vec![heartbeat, pods],
            children,
            dir,
        }
    }

    /// The log of pod `name`'s process.
    pub fn log(&self, pod: &str) -> PathBuf {
        self.dir.path().join(pod).join("log")
    }

    /// Stops every process and removes the Node.
    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        let children: Vec<_> = self.children.lock().unwrap().drain().collect();
        for (_, mut c) in children {
            let _ = c.kill().await;
        }
        let _ = Api::<Node>::all(self.client.clone())
            .delete(&self.node, &DeleteParams::default())
            .await;
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for (_, c) in self.children.lock().unwrap().iter_mut() {
            let _ = c.start_kill();
        }
    }
}

async fn heartbeat(client: kube::Client, node: String) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    loop {
        let t = now();
        let status = json!({ "status": { "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "test runner", "lastHeartbeatTime": t, "lastTransitionTime": t }] } });
        let _ = nodes
            .patch_status(&node, &PatchParams::default(), &Patch::Strategic(&status))
            .await;
        let micro = k8s_openapi::jiff::Timestamp::now().to_string();
        let lease = json!({ "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": { "name": node, "namespace": "kube-node-lease" },
            "spec": { "holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": micro } });
        let _ = leases
            .patch(
                &node,
                &PatchParams::apply("test-runner").force(),
                &Patch::Apply(&lease),
            )
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn run_pods(
    client: kube::Client,
    node: String,
    hollow_node: PathBuf,
    root: PathBuf,
    children: Arc<Mutex<HashMap<String, tokio::process::Child>>>,
) {
    let pods: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = std::pin::pin!(watcher::watcher(pods, config));
    let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    while let Some(event) = stream.next().await {
        let (pod, deleted) = match event {
            Ok(Event::Apply(p) | Event::InitApply(p)) => {
                let deleting = p.metadata.deletion_timestamp.is_some();
                (p, deleting)
            }
            Ok(Event::Delete(p)) => (p, true),
            _ => continue,
        };
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let key = format!("{ns}/{name}");
        if deleted {
            if let Some(task) = running.remove(&key) {
                task.abort();
            }
            let child = children.lock().unwrap().remove(&key);
            if let Some(mut c) = child {
                let _ = c.kill().await;
            }
            if pod.metadata.deletion_timestamp.is_some() {
                let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                let mut dp = DeleteParams::default().grace_period(0);
                dp.preconditions = Some(Preconditions {
                    uid: pod.metadata.uid.clone(),
                    resource_version: None,
                });
                let _ = api.delete(&name, &dp).await;
            }
            continue;
        }
        if running.contains_key(&key) {
            continue;
        }
        let task = tokio::spawn(supervise(
            client.clone(),
            pod,
            hollow_node.clone(),
            root.join(&name),
            children.clone(),
        ));
        running.insert(key, task);
    }
}

/// Runs one pod's container until the pod goes, restarting it when it exits.
async fn supervise(
    client: kube::Client,
    pod: Pod,
    hollow_node: PathBuf,
    dir: PathBuf,
    children: Arc<Mutex<HashMap<String, tokio::process::Child>>>,
) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let key = format!("{ns}/{name}");
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut restarts = 0;
    loop {
        let prepared = prepare(&client, &pod, &hollow_node, &dir).await;
        let (mut cmd, log) = match prepared {
            Ok(p) => p,
            Err(message) => {
                report(
                    &api,
                    &name,
                    "Pending",
                    Some(("CreateContainerConfigError", &message)),
                    restarts,
                )
                .await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                report(
                    &api,
                    &name,
                    "Pending",
                    Some(("RunContainerError", &e.to_string())),
                    restarts,
                )
                .await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        children.lock().unwrap().insert(key.clone(), child);
        report(&api, &name, "Running", None, restarts).await;
        // Wait for the process without holding the lock across awaits.
        let status = loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut guard = children.lock().unwrap();
            let Some(c) = guard.get_mut(&key) else {
                return; // The pod was deleted and its process killed.
            };
            if let Ok(Some(s)) = c.try_wait() {
                guard.remove(&key);
                break s;
            }
        };
        restarts += 1;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let message = format!("exited with {status}: {last}");
        report(
            &api,
            &name,
            "Running",
            Some(("CrashLoopBackOff", &message)),
            restarts,
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// A pod's IP: an address of 127.64.0.0/10 of its own (from its name), as processes of
/// different pods must not share ports.
fn pod_ip(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!(
        "127.{}.{}.{}",
        64 + (h & 63),
        (h >> 8) & 255,
        1 + (h >> 16) % 250
    )
}

async fn report(
    api: &Api<Pod>,
    name: &str,
    phase: &str,
    waiting: Option<(&str, &str)>,
    restarts: u32,
) {
    let t = now();
    let ready = if waiting.is_none() { "True" } else { "False" };
    let state = match waiting {
        None => json!({ "running": { "startedAt": t } }),
        Some((reason, message)) => json!({ "waiting": { "reason": reason, "message": message } }),
    };
    let ip = pod_ip(name);
    let status = json!({ "status": {
        "phase": phase,
        "podIP": ip,
        "podIPs": [{ "ip": ip }],
        "hostIP": "127.0.0.1",
        "startTime": t,
        "conditions": [
            { "type": "Ready", "status": ready, "lastTransitionTime": t },
            { "type": "ContainersReady", "status": ready, "lastTransitionTime": t },
        ],
        "containerStatuses": [{ "name": "hollow-node", "image": "kubemark", "imageID": "", "ready": waiting.is_none(),
            "restartCount": restarts, "state": state }],
    } });
    let _ = api
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(&status))
        .await;
}

/// Materialises the pod's volumes under `dir` and builds its command.
async fn prepare(
    client: &kube::Client,
    pod: &Pod,
    hollow_node: &Path,
    dir: &Path,
) -> Result<(tokio::process::Command, PathBuf), String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.clone().ok_or("no spec")?;
    let c = spec.containers.first().ok_or("no container")?.clone();
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut paths: Vec<(String, PathBuf)> = Vec::new();
    for v in spec.volumes.iter().flatten() {
        let local = dir.join("volumes").join(&v.name);
        std::fs::create_dir_all(&local).map_err(|e| e.to_string())?;
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let secret = Api::<Secret>::namespaced(client.clone(), &ns)
                .get(&name)
                .await
                .map_err(|e| format!("secret {name}: {e}"))?;
            for (k, b) in secret.data.unwrap_or_default() {
                files.insert(k, b.0);
            }
        }
        if let Some(cm) = &v.config_map {
            let name = cm.name.clone();
            let map = Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .get(&name)
                .await
                .map_err(|e| format!("configmap {name}: {e}"))?;
            for (k, s) in map.data.unwrap_or_default() {
                files.insert(k, s.into_bytes());
            }
        }
        for (k, bytes) in files {
            let p = local.join(k);
            std::fs::write(&p, bytes).map_err(|e| e.to_string())?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
        }
        for m in c
            .volume_mounts
            .iter()
            .flatten()
            .filter(|m| m.name == v.name)
        {
            paths.push((m.mount_path.clone(), local.clone()));
        }
    }
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for from in c.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            let map = Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .get(&r.name)
                .await
                .map_err(|e| format!("configmap {}: {e}", r.name))?;
            env.extend(map.data.unwrap_or_default());
        }
    }
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                Some("metadata.name") => pod.metadata.name.clone().unwrap_or_default(),
                Some("status.podIP") => pod_ip(pod.metadata.name.as_deref().unwrap_or_default()),
                Some("metadata.namespace") => ns.clone(),
                other => return Err(format!("unsupported fieldRef {other:?}")),
            },
            _ => String::new(),
        };
        env.insert(e.name.clone(), value);
    }
    let expand = |s: &str| -> String {
        let mut out = s.to_string();
        for (k, v) in &env {
            out = out.replace(&format!("$({k})"), v);
        }
        for (mount, local) in &paths {
            out = out.replace(mount.as_str(), &local.display().to_string());
        }
        out
    };
    let command = c.command.clone().unwrap_or_default();
    let program = match command.first().map(String::as_str) {
        Some("hollow-node") | None => hollow_node.to_path_buf(),
        Some(other) => PathBuf::from(other),
    };
    let args: Vec<String> = command
        .iter()
        .skip(1)
        .chain(c.args.iter().flatten())
        .map(|a| expand(a))
        .collect();
    let log = dir.join("log");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&env)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    Ok((cmd, log))
}
