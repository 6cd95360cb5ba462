//! Hollow nodes as pods on an external cluster: namespace `kubemark`, a Secret with the nodes'
//! credentials, a ConfigMap with their settings, and a StatefulSet `hollow-node` whose pods each
//! run `hollow-node --count K` (the image of `kubemark image push`).
//!
//! Why a StatefulSet (upstream uses a ReplicationController): pod names are stable, so a pod
//! that is rescheduled registers the same K Nodes again instead of K new ones while the old ones
//! stay NotReady forever; and scaling `NUM_NODES` changes the tail, not random pods.
//!
//! Why TLS bootstrap: every hollow node gets its own identity (`system:node:<name>`, checked by
//! the Node authorizer and NodeRestriction) from a CSR signed by the kubemark master, and the
//! Secret holds only a bootstrap token, which can create CSRs and nothing else. Pre-issued
//! per-node certificates cannot be handed to the pods of one template without giving every pod
//! every node's key.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::provider::{CLUSTER_TAG, ClusterName, MANAGED_BY_TAG, MANAGED_BY_VALUE};

/// Errors of deploying hollow nodes.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// An API call to the external cluster failed.
    #[error("external cluster: {what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The namespace exists and is not this cluster's.
    #[error("namespace {namespace} on the external cluster {reason}; refusing to touch it")]
    Foreign {
        /// The namespace.
        namespace: String,
        /// Whose it is.
        reason: String,
    },
    /// Something did not happen in time.
    #[error("{0}")]
    Timeout(String),
    /// The spec is unusable.
    #[error("{0}")]
    Invalid(String),
}

/// The StatefulSet's name and the node name prefix (`hollow-node-<pod>-<k>`).
pub const NAME: &str = "hollow-node";

/// What to deploy.
#[derive(Debug, Clone)]
pub struct DeploySpec {
    /// The kubemark cluster (labels every object).
    pub cluster: ClusterName,
    /// Namespace on the external cluster (upstream: `kubemark`).
    pub namespace: String,
    /// Image with the `kubemark` binary.
    pub image: String,
    /// Hollow nodes in total (upstream `NUM_NODES`).
    pub nodes: usize,
    /// Hollow nodes per pod.
    pub nodes_per_pod: usize,
    /// Bootstrap kubeconfig (a token that may only create CSRs), YAML.
    pub bootstrap_kubeconfig: String,
    /// kube-proxy's kubeconfig (`system:kube-proxy`), YAML; without it the pods run no hollow
    /// kube-proxy.
    pub proxy_kubeconfig: Option<String>,
    /// Settings the pods read from the ConfigMap (`MAX_PODS`, `NODE_LABELS`, `KUBE_API_QPS`,
    /// `KUBE_API_BURST`).
    pub settings: BTreeMap<String, String>,
    /// More `hollow-node` flags.
    pub extra_flags: Vec<String>,
    /// CPU request per hollow node, millicores (on top of 20m per pod).
    pub cpu_millis_per_node: u64,
    /// Memory request per hollow node, MiB (on top of 32Mi per pod).
    pub memory_mib_per_node: u64,
    /// The kubelet serving CA (certificate and key, PEM) that signs the nodes' serving
    /// certificates; without it each node signs its own.
    pub kubelet_serving_ca: Option<crate::pki::CertAndKey>,
}

impl DeploySpec {
    /// Pods needed for all nodes.
    pub fn pods(&self) -> usize {
        self.nodes.div_ceil(self.nodes_per_pod.max(1))
    }

    /// The names of the hollow nodes pod `ordinal` runs (`hollow-node --name P --count K` names
    /// them `P-0 .. P-(K-1)`, or just `P` when K is 1).
    pub fn node_names(&self, ordinal: usize) -> Vec<String> {
        let per = self.nodes_per_pod.max(1).min(self.nodes);
        if ordinal >= self.pods() {
            return Vec::new();
        }
        if per == 1 {
            return vec![format!("{NAME}-{ordinal}")];
        }
        (0..per).map(|k| format!("{NAME}-{ordinal}-{k}")).collect()
    }

    /// Every node name, in order.
    pub fn all_node_names(&self) -> Vec<String> {
        (0..self.pods()).flat_map(|o| self.node_names(o)).collect()
    }

    fn labels(&self) -> Value {
        json!({
            CLUSTER_TAG: self.cluster.as_str(),
            MANAGED_BY_TAG: MANAGED_BY_VALUE,
            "app.kubernetes.io/name": NAME,
        })
    }

    /// The objects, in apply order.
    pub fn manifests(&self) -> Result<Vec<Value>, DeployError> {
        if self.nodes == 0 || self.nodes_per_pod == 0 {
            return Err(DeployError::Invalid(
                "hollow nodes and nodes per pod must be at least 1".into(),
            ));
        }
        if self.pods() > 1 && !self.nodes.is_multiple_of(self.nodes_per_pod) {
            return Err(DeployError::Invalid(format!(
                "{} hollow nodes do not split into pods of {}: every pod of a StatefulSet runs the same --count; choose a divisor",
                self.nodes, self.nodes_per_pod
            )));
        }
        let labels = self.labels();
        let ns = &self.namespace;
        let per = self.nodes_per_pod.min(self.nodes) as u64;
        let cpu = 20 + per * self.cpu_millis_per_node;
        let memory = 32 + per * self.memory_mib_per_node;
        let mut args = vec![
            "--morph=kubelet".to_string(),
            "--name=$(POD_NAME)".into(),
            format!("--count={per}"),
            "--bootstrap-kubeconfig=/etc/kubemark/credentials/bootstrap.kubeconfig".into(),
            "--cert-dir=/var/lib/kubemark/certs".into(),
        ];
        let mut credentials = serde_json::Map::new();
        credentials.insert(
            "bootstrap.kubeconfig".into(),
            Value::String(self.bootstrap_kubeconfig.clone()),
        );
        // The nodes of a pod share its IP; each serves its kubelet API on a port of its own
        // from 10250 on, and advertises it.
        args.push("--pod-ip=$(POD_IP)".into());
        if let Some(ca) = &self.kubelet_serving_ca {
            args.push(
                "--kubelet-serving-ca-cert=/etc/kubemark/credentials/kubelet-serving-ca.crt".into(),
            );
            args.push(
                "--kubelet-serving-ca-key=/etc/kubemark/credentials/kubelet-serving-ca.key".into(),
            );
            credentials.insert(
                "kubelet-serving-ca.crt".into(),
                Value::String(ca.cert_pem.clone()),
            );
            credentials.insert(
                "kubelet-serving-ca.key".into(),
                Value::String(ca.key_pem.clone()),
            );
        }
        if let Some(p) = &self.proxy_kubeconfig {
            args.push("--proxy-kubeconfig=/etc/kubemark/credentials/kube-proxy.kubeconfig".into());
            credentials.insert("kube-proxy.kubeconfig".into(), Value::String(p.clone()));
        }
        for (key, flag) in [
            ("MAX_PODS", "--max-pods"),
            ("NODE_LABELS", "--node-labels"),
            ("KUBE_API_QPS", "--kube-api-qps"),
            ("KUBE_API_BURST", "--kube-api-burst"),
        ] {
            if self.settings.contains_key(key) {
                args.push(format!("{flag}=$({key})"));
            }
        }
        args.extend(self.extra_flags.iter().cloned());
        Ok(vec![
            json!({ "apiVersion": "v1", "kind": "Namespace",
                "metadata": { "name": ns, "labels": labels } }),
            json!({ "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": { "name": "hollow-node-credentials", "namespace": ns, "labels": labels },
                "stringData": credentials }),
            json!({ "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": "hollow-node-config", "namespace": ns, "labels": labels },
                "data": self.settings }),
            json!({ "apiVersion": "v1", "kind": "Service",
                "metadata": { "name": NAME, "namespace": ns, "labels": labels },
                "spec": { "clusterIP": "None", "selector": { "app.kubernetes.io/name": NAME } } }),
            json!({ "apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": { "name": NAME, "namespace": ns, "labels": labels },
                "spec": {
                    "serviceName": NAME,
                    "replicas": self.pods(),
                    "podManagementPolicy": "Parallel",
                    "selector": { "matchLabels": { "app.kubernetes.io/name": NAME } },
                    "template": {
                        "metadata": { "labels": labels },
                        "spec": {
                            "automountServiceAccountToken": false,
                            "enableServiceLinks": false,
                            // The external cluster's own node problems must not evict the
                            // hollow nodes: they would all go NotReady at once on the master.
                            "tolerations": [
                                { "key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute" },
                                { "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute" },
                            ],
                            "securityContext": { "runAsNonRoot": true, "runAsUser": 65532, "fsGroup": 65532 },
                            "containers": [{
                                "name": NAME,
                                "image": self.image,
                                "command": ["hollow-node"],
                                "args": args,
                                "env": [
                                    { "name": "POD_NAME",
                                      "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                                    { "name": "POD_IP",
                                      "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } },
                                ],
                                "envFrom": [{ "configMapRef": { "name": "hollow-node-config" } }],
                                "resources": { "requests": {
                                    "cpu": format!("{cpu}m"), "memory": format!("{memory}Mi") } },
                                "securityContext": { "allowPrivilegeEscalation": false,
                                    "readOnlyRootFilesystem": true, "capabilities": { "drop": ["ALL"] } },
                                "volumeMounts": [
                                    { "name": "credentials", "mountPath": "/etc/kubemark/credentials", "readOnly": true },
                                    { "name": "certs", "mountPath": "/var/lib/kubemark/certs" },
                                ],
                            }],
                            "volumes": [
                                { "name": "credentials", "secret": { "secretName": "hollow-node-credentials", "defaultMode": 0o400 } },
                                { "name": "certs", "emptyDir": {} },
                            ],
                        },
                    },
                },
            }),
        ])
    }
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> DeployError {
    let what = what.into();
    move |source| DeployError::Api { what, source }
}

/// Checks that `namespace` is free or this cluster's.
async fn check_owner(client: &kube::Client, spec: &DeploySpec) -> Result<(), DeployError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let Some(ns) = namespaces
        .get_opt(&spec.namespace)
        .await
        .map_err(api_err(format!("reading namespace {}", spec.namespace)))?
    else {
        return Ok(());
    };
    let labels = ns.metadata.labels.unwrap_or_default();
    match labels.get(CLUSTER_TAG) {
        Some(c) if c == spec.cluster.as_str() => Ok(()),
        Some(c) => Err(DeployError::Foreign {
            namespace: spec.namespace.clone(),
            reason: format!("belongs to kubemark cluster {c}"),
        }),
        None => Err(DeployError::Foreign {
            namespace: spec.namespace.clone(),
            reason: "exists and was not created by kubemark".into(),
        }),
    }
}

/// Creates or updates every object (server-side apply, field manager `kubemark`). Idempotent.
pub async fn apply(client: &kube::Client, spec: &DeploySpec) -> Result<(), DeployError> {
    check_owner(client, spec).await?;
    let pp = PatchParams::apply("kubemark").force();
    for m in spec.manifests()? {
        let kind = m["kind"].as_str().unwrap_or_default().to_string();
        let name = m["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let what = format!("applying {kind} {}/{name}", spec.namespace);
        let patch = Patch::Apply(&m);
        let ns = &spec.namespace;
        match kind.as_str() {
            "Namespace" => Api::<Namespace>::all(client.clone())
                .patch(&name, &pp, &patch)
                .await
                .map(|_| ()),
            "Secret" => Api::<Secret>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &patch)
                .await
                .map(|_| ()),
            "ConfigMap" => Api::<ConfigMap>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &patch)
                .await
                .map(|_| ()),
            "Service" => Api::<Service>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &patch)
                .await
                .map(|_| ()),
            _ => Api::<StatefulSet>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &patch)
                .await
                .map(|_| ()),
        }
        .map_err(api_err(what))?;
    }
    Ok(())
}

/// One hollow-node pod as the external cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    /// Pod name.
    pub name: String,
    /// The external node it runs on, if scheduled.
    pub node: Option<String>,
    /// `Pending`, `Running`, ...
    pub phase: String,
    /// Why it is not running, when it is not (waiting reason and message, or a condition's).
    pub reason: Option<String>,
}

/// The hollow-node pods.
pub async fn pods(client: &kube::Client, namespace: &str) -> Result<Vec<PodState>, DeployError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/name={NAME}")))
        .await
        .map_err(api_err(format!("listing pods in {namespace}")))?;
    let mut out: Vec<PodState> = list
        .items
        .into_iter()
        .map(|p| {
            let status = p.status.unwrap_or_default();
            let phase = status.phase.clone().unwrap_or_else(|| "Unknown".into());
            let waiting = status.container_statuses.iter().flatten().find_map(|c| {
                let s = c.state.as_ref()?;
                if let Some(w) = &s.waiting {
                    return Some(format!(
                        "{}: {}",
                        w.reason.clone().unwrap_or_default(),
                        w.message.clone().unwrap_or_default()
                    ));
                }
                let t = s.terminated.as_ref()?;
                Some(format!(
                    "{} (exit {}): {}",
                    t.reason.clone().unwrap_or_default(),
                    t.exit_code,
                    t.message.clone().unwrap_or_default()
                ))
            });
            let condition = status.conditions.iter().flatten().find_map(|c| {
                (c.status != "True" && c.message.is_some()).then(|| {
                    format!(
                        "{} {}: {}",
                        c.type_,
                        c.reason.clone().unwrap_or_default(),
                        c.message.clone().unwrap_or_default()
                    )
                })
            });
            PodState {
                name: p.metadata.name.unwrap_or_default(),
                node: p.spec.and_then(|s| s.node_name),
                reason: if phase == "Running" {
                    None
                } else {
                    waiting.or(condition).or(status.message)
                },
                phase,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Deletes the namespace (and with it everything deployed) if it is this cluster's, and waits
/// until it is gone. A missing namespace is success.
pub async fn teardown(
    client: &kube::Client,
    spec_cluster: &ClusterName,
    namespace: &str,
    timeout: Duration,
) -> Result<(), DeployError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let Some(ns) = namespaces
        .get_opt(namespace)
        .await
        .map_err(api_err(format!("reading namespace {namespace}")))?
    else {
        return Ok(());
    };
    let owner = ns
        .metadata
        .labels
        .unwrap_or_default()
        .get(CLUSTER_TAG)
        .cloned();
    if owner.as_deref() != Some(spec_cluster.as_str()) {
        tracing::warn!(
            namespace,
            ?owner,
            "not this cluster's namespace; left alone"
        );
        return Ok(());
    }
    match namespaces.delete(namespace, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(api_err(format!("deleting namespace {namespace}"))(e)),
    }
    let start = Instant::now();
    while namespaces
        .get_opt(namespace)
        .await
        .map_err(api_err(format!("reading namespace {namespace}")))?
        .is_some()
    {
        if start.elapsed() > timeout {
            return Err(DeployError::Timeout(format!(
                "namespace {namespace} on the external cluster still exists after {}s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// The pod that runs hollow node `node`: `hollow-node-<ordinal>-<k>` → `hollow-node-<ordinal>`,
/// and `hollow-node-<ordinal>` (one node per pod) → itself.
pub fn pod_of(node: &str) -> Option<String> {
    let rest = node.strip_prefix(&format!("{NAME}-"))?;
    let ordinal = match rest.split_once('-') {
        Some((o, k)) => k.parse::<usize>().ok().map(|_| o)?,
        None => rest,
    };
    ordinal
        .parse::<usize>()
        .is_ok()
        .then(|| format!("{NAME}-{ordinal}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(nodes: usize, per: usize) -> DeploySpec {
        DeploySpec {
            cluster: ClusterName::new("c1").unwrap(),
            namespace: "kubemark".into(),
            image: "registry.example/kubemark:v1".into(),
            nodes,
            nodes_per_pod: per,
            bootstrap_kubeconfig: "bootstrap".into(),
            proxy_kubeconfig: Some("proxy".into()),
            settings: BTreeMap::from([("MAX_PODS".to_string(), "110".to_string())]),
            extra_flags: vec!["--no-events".into()],
            cpu_millis_per_node: 5,
            memory_mib_per_node: 4,
            kubelet_serving_ca: None,
        }
    }

    #[test]
    fn pods_names_and_requests_scale_with_nodes_per_pod() {
        let s = spec(100, 10);
        assert_eq!(s.pods(), 10);
        assert_eq!(s.node_names(3)[9], "hollow-node-3-9");
        assert_eq!(s.all_node_names().len(), 100);
        assert_eq!(pod_of("hollow-node-3-9").as_deref(), Some("hollow-node-3"));
        assert_eq!(pod_of("hollow-node-x"), None);
        assert_eq!(pod_of("hollow-node-7").as_deref(), Some("hollow-node-7"));
        assert_eq!(spec(3, 1).node_names(2), ["hollow-node-2"]);
        assert!(spec(3, 1).node_names(3).is_empty());
        let m = s.manifests().unwrap();
        let kinds: Vec<&str> = m.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["Namespace", "Secret", "ConfigMap", "Service", "StatefulSet"]
        );
        let sts: StatefulSet = serde_json::from_value(m[4].clone()).unwrap();
        let spec = sts.spec.unwrap();
        assert_eq!(spec.replicas, Some(10));
        let pod = spec.template.spec.unwrap();
        let c = &pod.containers[0];
        let req = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(req["cpu"].0, "70m");
        assert_eq!(req["memory"].0, "72Mi");
        // The image's binary with its flags: no `kubemark` subcommand in front.
        assert_eq!(c.command.as_deref(), Some(&["hollow-node".to_string()][..]));
        let args = c.args.as_ref().unwrap();
        assert_eq!(args[0], "--morph=kubelet");
        assert!(args.contains(&"--count=10".to_string()));
        assert!(args.contains(&"--max-pods=$(MAX_PODS)".to_string()));
        assert!(args.contains(&"--no-events".to_string()));
        let tolerated: Vec<&str> = pod
            .tolerations
            .iter()
            .flatten()
            .filter_map(|t| t.key.as_deref())
            .collect();
        assert!(tolerated.contains(&"node.kubernetes.io/unreachable"));
        let secret: Secret = serde_json::from_value(m[1].clone()).unwrap();
        let keys: Vec<&String> = secret.string_data.as_ref().unwrap().keys().collect();
        assert_eq!(keys, ["bootstrap.kubeconfig", "kube-proxy.kubeconfig"]);
    }

    #[test]
    fn uneven_splits_and_zero_nodes_are_refused() {
        assert!(spec(0, 1).manifests().is_err());
        let e = spec(25, 10).manifests().unwrap_err().to_string();
        assert!(e.contains("divisor"), "{e}");
        assert_eq!(
            spec(5, 10).pods(),
            1,
            "fewer nodes than a pod holds: one pod"
        );
        assert_eq!(spec(5, 10).node_names(0).len(), 5);
        assert!(spec(5, 10).manifests().is_ok());
    }
}
