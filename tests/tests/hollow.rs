//! Hollow nodes against the real control plane: registration, scheduling, pod lifecycle.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use kubemark_hollow::NodeConfig;
use kubemark_hollow::runtime::HollowOptions;
use kubemark_tests::*;

fn in_cidr(ip: Ipv4Addr, cidr: &str) -> bool {
    let (net, len) = cidr.split_once('/').unwrap();
    let net: Ipv4Addr = net.parse().unwrap();
    let len: u32 = len.parse().unwrap();
    let mask = u32::MAX << (32 - len);
    u32::from(ip) & mask == u32::from(net) & mask
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_and_a_deployment_runs_with_distinct_ips_in_each_pod_cidr() {
    let n = 3;
    let cluster = Cluster::with_nodes("hollow", n).await;
    let client = cluster.client.clone();
    let ready = wait_ready_nodes(&client, n, Duration::from_secs(5)).await;
    for node in &ready {
        let spec = node.spec.clone().unwrap();
        assert_eq!(
            spec.provider_id.as_deref(),
            Some(format!("kubemark://{}", node.metadata.name.as_deref().unwrap()).as_str())
        );
        let info = node.status.as_ref().unwrap().node_info.as_ref().unwrap();
        assert_eq!(
            info.kubelet_version,
            kubemark_core::binaries::KUBERNETES_VERSION
        );
    }

    let deploy: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "web", "namespace": "default" },
        "spec": {
            "replicas": 3 * n,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "nginx:1.27",
                    "resources": { "requests": { "cpu": "10m", "memory": "16Mi" } } }] },
            },
        },
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let running = eventually("9 Running pods", Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            let running: Vec<Pod> = list
                .items
                .into_iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .collect();
            (running.len() == 3 * n).then_some(running)
        }
    })
    .await;
    let nodes: Api<Node> = Api::all(client.clone());
    let mut ips = HashSet::new();
    for pod in &running {
        let status = pod.status.as_ref().unwrap();
        let ip: Ipv4Addr = status.pod_ip.as_deref().unwrap().parse().unwrap();
        assert!(ips.insert(ip), "duplicate pod IP {ip}");
        let node = nodes
            .get(pod.spec.as_ref().unwrap().node_name.as_deref().unwrap())
            .await
            .unwrap();
        let cidr = node.spec.unwrap().pod_cidr.unwrap();
        assert!(in_cidr(ip, &cidr), "{ip} outside {cidr}");
        let ready = status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        let c = &status.container_statuses.as_ref().unwrap()[0];
        assert!(
            c.container_id
                .as_deref()
                .unwrap()
                .starts_with("containerd://")
        );
        assert!(c.ready && c.started == Some(true));
    }
    // The kubelet's API load around a pod start: a bound token for the projected
    // kube-api-access volume per pod, and lifecycle events from the kubelet.
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let metrics = client.request_text(req).await.unwrap();
    let tokens: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("apiserver_request_total{")
                && l.contains("resource=\"serviceaccounts\"")
                && l.contains("subresource=\"token\"")
                && l.contains("code=\"201\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert!(
        tokens >= (3 * n) as f64,
        "expected a TokenRequest per pod, saw {tokens}"
    );
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let started = events
        .list(&ListParams::default().fields("reason=Started"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.source.as_ref().and_then(|s| s.component.as_deref()) == Some("kubelet"))
        .count();
    assert!(
        started >= 3 * n,
        "expected a Started event per pod from the kubelet, saw {started}"
    );
    cluster.stop().await;
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

async fn pods_where(
    api: &Api<Pod>,
    selector: &str,
    what: &str,
    n: usize,
    pred: fn(&Pod) -> bool,
) -> Vec<Pod> {
    eventually(what, Duration::from_secs(90), || {
        let api = api.clone();
        let selector = selector.to_string();
        async move {
            let list = api
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()?;
            let matching: Vec<Pod> = list.items.into_iter().filter(pred).collect();
            (matching.len() == n).then_some(matching)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_complete_daemonsets_cover_every_node_and_drain_moves_pods() {
    let cluster = Cluster::with_nodes("drain", 2).await;
    let cp = &cluster.cp;
    let client = cluster.client.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    apply(cp, serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": { "name": "batch", "namespace": "default" },
        "spec": { "completions": 3, "parallelism": 3, "template": {
            "metadata": { "labels": { "app": "batch" },
                          "annotations": { "kubemark.io/run-duration": "2s" } },
            "spec": { "restartPolicy": "Never", "containers": [{ "name": "work", "image": "busybox" }] } } },
    })).await;
    apply(cp, serde_json::json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": { "name": "agent", "namespace": "default" },
        "spec": { "selector": { "matchLabels": { "app": "agent" } }, "template": {
            "metadata": { "labels": { "app": "agent" } },
            "spec": { "hostNetwork": true, "containers": [{ "name": "agent", "image": "agent:1" }] } } },
    })).await;
    apply(cp, deployment("movable", 4)).await;

    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), "default");
    eventually("the Job to complete", Duration::from_secs(90), || {
        let jobs = jobs.clone();
        async move {
            let job = jobs.get("batch").await.ok()?;
            let conditions = job.status?.conditions?;
            conditions
                .iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
                .then_some(())
        }
    })
    .await;
    let done = pods_where(&pods, "app=batch", "3 Succeeded job pods", 3, |p| {
        phase(p) == "Succeeded"
    })
    .await;
    for p in &done {
        let c = &p
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0];
        assert_eq!(
            c.state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("Completed")
        );
    }

    let agents = pods_where(&pods, "app=agent", "a DaemonSet pod on each node", 2, |p| {
        phase(p) == "Running"
    })
    .await;
    let mut on: Vec<String> = agents
        .iter()
        .map(|p| p.spec.as_ref().unwrap().node_name.clone().unwrap())
        .collect();
    on.sort();
    assert_eq!(on, ["drain-0", "drain-1"]);
    for a in &agents {
        let s = a.status.as_ref().unwrap();
        assert_eq!(s.pod_ip, s.host_ip, "hostNetwork pods have the node's IP");
    }

    pods_where(&pods, "app=movable", "4 movable pods Running", 4, |p| {
        phase(p) == "Running"
    })
    .await;
    let out = kubectl(
        cp,
        &[
            "drain",
            "drain-0",
            "--ignore-daemonsets",
            "--timeout=90s",
            "--grace-period=5",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "kubectl drain: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let moved = pods_where(
        &pods,
        "app=movable",
        "4 movable pods Running on drain-1",
        4,
        |p| {
            phase(p) == "Running"
                && p.spec.as_ref().unwrap().node_name.as_deref() == Some("drain-1")
        },
    )
    .await;
    assert_eq!(moved.len(), 4);

    let out = kubectl(
        cp,
        &[
            "delete",
            "deployment",
            "movable",
            "--wait=true",
            "--timeout=60s",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pods_where(&pods, "app=movable", "deleted pods to be gone", 0, |_| true).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_big_pods_stay_pending_or_are_rejected_with_the_kubelets_reason() {
    let cluster = Cluster::with_nodes("small", 1).await;
    let client = cluster.client.clone();
    let big = |name: &str, node: Option<&str>| -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "namespace": "default", "labels": { "app": name } },
            "spec": { "nodeName": node, "containers": [{ "name": "c", "image": "x",
                "resources": { "requests": { "cpu": "2" } } }] },
        }))
        .unwrap()
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &big("unschedulable", None))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &big("forced", Some("small")))
        .await
        .unwrap();

    let rejected = pods_where(
        &pods,
        "app=forced",
        "the forced pod to be rejected",
        1,
        |p| phase(p) == "Failed",
    )
    .await;
    let status = rejected[0].status.as_ref().unwrap();
    assert_eq!(status.reason.as_deref(), Some("OutOfcpu"));
    assert!(
        status.message.as_deref().unwrap().contains(
            "Node didn't have enough resource: cpu, requested: 2000, used: 0, capacity: 1000"
        ),
        "{status:?}"
    );
    let pending = pods_where(
        &pods,
        "app=unschedulable",
        "the scheduler's verdict",
        1,
        |p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    // Right after registration the not-ready taint may still be the reason; the
                    // scheduler retries and settles on the resource verdict.
                    c.iter().any(|c| {
                        c.type_ == "PodScheduled"
                            && c.reason.as_deref() == Some("Unschedulable")
                            && c.message
                                .as_deref()
                                .is_some_and(|m| m.contains("Insufficient cpu"))
                    })
                })
        },
    )
    .await;
    let condition = pending[0]
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap()
        .clone();
    let message = condition.message.unwrap();
    assert!(message.contains("Insufficient cpu"), "{message}");
    assert_eq!(phase(&pending[0]), "Pending");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hollow_node_gets_403_when_it_writes_another_node() {
    let cluster = Cluster::with_nodes("id", 2).await;
    let creds = cluster.credentials().await.clone();
    // The certificate hollow node id-0 got through TLS bootstrap.
    let config = kubemark_hollow::identity::node_config(&creds, "id-0")
        .await
        .unwrap();
    let as_node: Api<Node> = Api::all(kube::Client::try_from(config).unwrap());
    let label = serde_json::json!({ "metadata": { "labels": { "stolen": "yes" } } });
    let pp = kube::api::PatchParams::default();
    as_node
        .patch("id-0", &pp, &kube::api::Patch::Merge(&label))
        .await
        .expect("its own node");
    let err = as_node
        .patch("id-1", &pp, &kube::api::Patch::Merge(&label))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_goes_not_ready_and_tainted_then_recovers_with_its_pods() {
    let config = NodeConfig {
        lease_duration: Duration::from_secs(4),
        ..NodeConfig::default()
    };
    let cluster = Cluster::builder()
        .control_plane(|o| {
            o.controller_manager_args = vec![
                "--node-monitor-grace-period=8s".into(),
                "--node-monitor-period=1s".into(),
            ];
        })
        .nodes("flaky", 1)
        .config(config.clone())
        .start()
        .await;
    let cp = &cluster.cp;
    let client = cluster.client.clone();
    apply(cp, deployment("stay", 3)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let before = pods_where(&pods, "app=stay", "3 Running pods", 3, |p| {
        phase(p) == "Running"
    })
    .await;
    let ip_of = |p: &Pod| {
        (
            p.metadata.name.clone().unwrap(),
            p.status.as_ref().unwrap().pod_ip.clone().unwrap(),
        )
    };
    let mut before_ips: Vec<(String, String)> = before.iter().map(ip_of).collect();
    before_ips.sort();

    cluster.stop_nodes();
    let api: Api<Node> = Api::all(client.clone());
    eventually(
        "NotReady and the unreachable taint",
        Duration::from_secs(60),
        || {
            let api = api.clone();
            async move {
                let n = api.get("flaky").await.ok()?;
                let tainted = n
                    .spec
                    .as_ref()?
                    .taints
                    .as_ref()?
                    .iter()
                    .any(|t| t.key == "node.kubernetes.io/unreachable");
                (!is_ready(&n) && tainted).then_some(())
            }
        },
    )
    .await;

    // A new process for the same node: it rebuilds its state from the API.
    cluster.spawn(HollowOptions {
        config,
        ..cluster.hollow("flaky", 1).await
    });
    eventually(
        "Ready again without the taint",
        Duration::from_secs(60),
        || {
            let api = api.clone();
            async move {
                let n = api.get("flaky").await.ok()?;
                let tainted = n
                    .spec
                    .as_ref()?
                    .taints
                    .iter()
                    .flatten()
                    .any(|t| t.key.starts_with("node.kubernetes.io/"));
                (is_ready(&n) && !tainted).then_some(())
            }
        },
    )
    .await;
    let after = pods_where(&pods, "app=stay", "3 Running pods after restart", 3, |p| {
        phase(p) == "Running"
    })
    .await;
    let mut after_ips: Vec<(String, String)> = after.iter().map(ip_of).collect();
    after_ips.sort();
    assert_eq!(
        before_ips, after_ips,
        "pods keep their IPs across a hollow-node restart"
    );
    // A new pod after the restart must not reuse an address in use.
    kubectl(cp, &["scale", "deployment", "stay", "--replicas=4"]).await;
    let four = pods_where(&pods, "app=stay", "4 Running pods", 4, |p| {
        phase(p) == "Running"
    })
    .await;
    let ips: HashSet<String> = four
        .iter()
        .map(|p| p.status.as_ref().unwrap().pod_ip.clone().unwrap())
        .collect();
    assert_eq!(ips.len(), 4, "no duplicate IPs: {ips:?}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_api_server_restart_nodes_are_ready_and_pods_keep_their_ips() {
    let config = NodeConfig {
        lease_duration: Duration::from_secs(8),
        ..NodeConfig::default()
    };
    let mut cluster = Cluster::builder()
        .nodes("survivor", 2)
        .config(config)
        .start()
        .await;
    let client = cluster.client.clone();
    apply(&cluster.cp, deployment("keep", 4)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let before = pods_where(&pods, "app=keep", "4 Running pods", 4, |p| {
        phase(p) == "Running"
    })
    .await;
    let mut before_ips: Vec<String> = before
        .iter()
        .map(|p| p.status.as_ref().unwrap().pod_ip.clone().unwrap())
        .collect();
    before_ips.sort();

    cluster.cp.restart_apiserver().await.unwrap();
    let restarted_at = k8s_openapi::jiff::Timestamp::now();
    let cp = &cluster.cp;
    let client = cp.client().await.unwrap();
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-node-lease");
    eventually(
        "both leases renewed after the restart",
        Duration::from_secs(60),
        || {
            let leases = leases.clone();
            async move {
                for name in ["survivor-0", "survivor-1"] {
                    let renewed = leases.get(name).await.ok()?.spec?.renew_time?.0;
                    if renewed <= restarted_at {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await;
    wait_ready_nodes(&client, 2, Duration::from_secs(60)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let after = pods_where(&pods, "app=keep", "4 Running pods after restart", 4, |p| {
        phase(p) == "Running"
    })
    .await;
    let mut after_ips: Vec<String> = after
        .iter()
        .map(|p| p.status.as_ref().unwrap().pod_ip.clone().unwrap())
        .collect();
    after_ips.sort();
    assert_eq!(before_ips, after_ips);
    // The pod watch resumed: a new pod starts.
    kubectl(cp, &["scale", "deployment", "keep", "--replicas=5"]).await;
    pods_where(&pods, "app=keep", "5 Running pods", 5, |p| {
        phase(p) == "Running"
    })
    .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pod_cidr_leaves_pods_pending_with_the_reason() {
    // A /29 per node: addresses .2 to .6, five pods.
    let cluster = Cluster::builder()
        .control_plane(|o| {
            o.controller_manager_args = vec![
                "--cluster-cidr=10.64.0.0/24".into(),
                "--node-cidr-mask-size=29".into(),
            ];
        })
        .nodes("tiny", 1)
        .start()
        .await;
    let cp = &cluster.cp;
    let client = cluster.client.clone();
    apply(cp, deployment("crowd", 6)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods_where(&pods, "app=crowd", "5 Running pods", 5, |p| {
        phase(p) == "Running"
    })
    .await;
    let stuck = pods_where(
        &pods,
        "app=crowd",
        "the sixth pod stuck for want of an IP",
        1,
        |p| {
            phase(p) == "Pending"
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| {
                        c.iter().any(|c| {
                            c.type_ == "PodReadyToStartContainers"
                                && c.reason.as_deref() == Some("PodCIDRExhausted")
                        })
                    })
        },
    )
    .await;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let name = stuck[0].metadata.name.clone().unwrap();
    let sandbox = events
        .list(&ListParams::default().fields("reason=FailedCreatePodSandBox"))
        .await
        .unwrap()
        .items;
    let event = sandbox
        .iter()
        .find(|e| e.involved_object.name.as_deref() == Some(&name))
        .expect("an event for the pod");
    assert!(
        event.message.as_deref().unwrap().contains("exhausted"),
        "{event:?}"
    );
    assert_eq!(event.count, Some(1), "reported once, not on every retry");

    // An address freed by a deleted pod goes to the waiting one.
    let running = pods_where(&pods, "app=crowd", "5 Running pods", 5, |p| {
        phase(p) == "Running"
    })
    .await;
    let victim = running[0].metadata.name.clone().unwrap();
    let out = kubectl(
        cp,
        &["delete", "pod", &victim, "--wait=true", "--timeout=60s"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stuck_name = name.clone();
    eventually(
        "the waiting pod to get the freed address",
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            let stuck_name = stuck_name.clone();
            async move {
                let p = pods.get(&stuck_name).await.ok()?;
                (phase(&p) == "Running").then_some(())
            }
        },
    )
    .await;
    let sandbox = events
        .list(&ListParams::default().fields("reason=FailedCreatePodSandBox"))
        .await
        .unwrap()
        .items;
    let for_stuck = sandbox
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(&name))
        .count();
    assert_eq!(for_stuck, 1, "no event spam while waiting");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounted_configmaps_are_watched_while_a_pod_uses_them() {
    let cluster = Cluster::with_nodes("mounts", 1).await;
    let cp = &cluster.cp;
    let client = cluster.client.clone();
    let base = open_watches(&client, "configmaps").await;
    apply(
        cp,
        serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "app-config", "namespace": "default" }, "data": { "k": "v" },
        }),
    )
    .await;
    apply(
        cp,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "reader", "namespace": "default", "labels": { "app": "reader" } },
            "spec": { "containers": [{ "name": "c", "image": "x",
                        "volumeMounts": [{ "name": "cfg", "mountPath": "/cfg" }] }],
                      "volumes": [{ "name": "cfg", "configMap": { "name": "app-config" } }] },
        }),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods_where(&pods, "app=reader", "the reader Running", 1, |p| {
        phase(p) == "Running"
    })
    .await;
    // app-config, and kube-root-ca.crt of the default kube-api-access projected volume.
    eventually(
        "two single-object ConfigMap watches",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            async move { (open_watches(&client, "configmaps").await >= base + 2.0).then_some(()) }
        },
    )
    .await;
    let out = kubectl(
        cp,
        &["delete", "pod", "reader", "--wait=true", "--timeout=60s"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(
        "the watches closed with the pod",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            async move { (open_watches(&client, "configmaps").await <= base).then_some(()) }
        },
    )
    .await;
    cluster.stop().await;
}

/// As a kubelet's volume manager: a pod whose service-account token cannot be fetched stays
/// ContainerCreating with a FailedMount event, and starts once the token can be had (retried
/// with back-off), instead of running without its volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_waits_for_its_token_before_its_containers_start() {
    init_logging();
    let cluster = Cluster::with_nodes("mounts", 1).await;
    let cp = &cluster.cp;
    let client = cluster.client.clone();
    let account = serde_json::json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": { "name": "late", "namespace": "default" },
    });
    apply(cp, account.clone()).await;
    // Bound to a node that has not joined yet; its service account is gone when it does.
    apply(
        cp,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "waiter", "namespace": "default", "labels": { "app": "waiter" } },
            "spec": { "nodeName": "mounts-late", "serviceAccountName": "late",
                      "containers": [{ "name": "c", "image": "x" }] },
        }),
    )
    .await;
    let out = kubectl(cp, &["delete", "serviceaccount", "late"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster.spawn(cluster.hollow("mounts-late", 1).await);
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let failed = eventually("a FailedMount event", Duration::from_secs(60), || {
        let events = events.clone();
        async move {
            let list = events
                .list(
                    &ListParams::default().fields("involvedObject.name=waiter,reason=FailedMount"),
                )
                .await
                .ok()?;
            list.items.into_iter().next()
        }
    })
    .await;
    let message = failed.message.unwrap_or_default();
    assert!(
        message.contains("failed to fetch token") && message.contains("not found"),
        "{message}"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let waiting = pods.get("waiter").await.unwrap();
    assert_eq!(phase(&waiting), "Pending");
    let state = waiting.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap();
    assert_eq!(
        state.waiting.and_then(|w| w.reason).as_deref(),
        Some("ContainerCreating")
    );
    apply(cp, account).await;
    pods_where(&pods, "app=waiter", "the waiter Running", 1, |p| {
        phase(p) == "Running"
    })
    .await;
    cluster.stop().await;
}

/// The request mix of a pod's life is the kubelet status manager's: a GET before each status
/// sync, a PATCH per synced status (the start's two may coalesce), and exactly one final DELETE
/// per pod from the kubelet; the image the pods "pulled" is in the node's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_lifecycle_requests_follow_the_kubelets_status_manager() {
    let cluster = Cluster::with_nodes("mix", 2).await;
    let client = cluster.client.clone();
    let image = "registry.k8s.io/pause:3.10";
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let count = |verb: &'static str, sub: &'static str| {
        let client = client.clone();
        async move { requests_served(&client, verb, "pods", sub).await }
    };
    let (get0, patch0, delete0) = (
        count("GET", "").await,
        count("PATCH", "status").await,
        count("DELETE", "").await,
    );
    let cm_watches0 = requests_served(&client, "WATCH", "configmaps", "").await;
    let n = 20;
    for i in 0..n {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": format!("mix-{i}") },
            "spec": { "nodeName": format!("mix-{}", i % 2),
                      "containers": [{ "name": "c", "image": image }] },
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    eventually(
        &format!("{n} pods Running"),
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            async move {
                let list = pods.list(&ListParams::default()).await.ok()?;
                (list.items.iter().filter(|p| phase(p) == "Running").count() == n).then_some(())
            }
        },
    )
    .await;
    // As the kubelet (v1.34+): the status says which generation it describes, and a pod bound
    // by its creator (no scheduler) gets its PodScheduled condition from the kubelet.
    let running = pods.get("mix-0").await.unwrap();
    let status = running.status.clone().unwrap_or_default();
    assert_eq!(status.observed_generation, running.metadata.generation);
    assert!(running.metadata.generation.is_some());
    let conditions = status.conditions.unwrap_or_default();
    assert!(
        conditions
            .iter()
            .all(|c| c.observed_generation == running.metadata.generation),
        "{conditions:?}"
    );
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True"),
        "{conditions:?}"
    );
    for i in 0..n {
        pods.delete(&format!("mix-{i}"), &Default::default())
            .await
            .unwrap();
    }
    eventually("pods gone", Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default()).await.ok()?;
            list.items.is_empty().then_some(())
        }
    })
    .await;
    // Late watch events must not bring on more deletes: give them time to arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deletes = count("DELETE", "").await - delete0;
    let patches = count("PATCH", "status").await - patch0;
    let gets = count("GET", "").await - get0;
    // Informers start with a watch list, as client-go 1.36's reflectors: the nodes' RuntimeClass
    // informers are open, and nobody LISTed RuntimeClasses (with LIST+WATCH each node would have).
    let rc_lists = requests_served(&client, "LIST", "runtimeclasses", "").await;
    let rc_watches = open_watches(&client, "runtimeclasses").await;
    assert!(
        rc_lists <= 0.0 && rc_watches >= 2.0,
        "{rc_lists} LISTs of runtimeclasses, {rc_watches} open watches"
    );
    let cm_watches = requests_served(&client, "WATCH", "configmaps", "").await - cm_watches0;
    assert!(
        cm_watches >= 2.0,
        "each node watched the kube-root-ca.crt its pods mount until they were gone: {cm_watches}"
    );
    let n = n as f64;
    assert_eq!(deletes, 2.0 * n, "ours and one final delete per pod");
    assert!(
        (2.0 * n..=3.0 * n).contains(&patches),
        "one to two status PATCHes while starting and one when stopped, got {patches}"
    );
    assert!(
        gets >= patches,
        "a GET before every status sync: {gets} GETs for {patches} PATCHes"
    );
    let node_api: Api<Node> = Api::all(client.clone());
    eventually(
        "the image in both nodes' status",
        Duration::from_secs(30),
        || {
            let node_api = node_api.clone();
            async move {
                for name in ["mix-0", "mix-1"] {
                    let node = node_api.get(name).await.ok()?;
                    let images = node.status?.images?;
                    images
                        .iter()
                        .any(|i| i.names.iter().flatten().any(|n| n == image))
                        .then_some(())?;
                }
                Some(())
            }
        },
    )
    .await;
    cluster.stop().await;
}

/// Informers whose objects a hollow node does not read ask for protobuf, as the kubelet does,
/// and read it: events of every kind reach them without a decoding failure, which would show
/// as the informer opening its watch again. The Lease goes back and forth in protobuf: it is
/// renewed, holder and duration as the kubelet sets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_informers_stay_open_through_events_and_leases_renew() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::node::v1::RuntimeClass;
    let cluster = Cluster::with_nodes("pb", 2).await;
    let client = cluster.client.clone();
    let resources = ["services", "runtimeclasses", "csidrivers"];
    // Every node opened one watch of each; let the watch lists finish.
    eventually("the nodes' informers open", Duration::from_secs(30), || {
        let client = client.clone();
        async move {
            for r in resources {
                (open_watches(&client, r).await >= 2.0).then_some(())?;
            }
            Some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut before = Vec::new();
    for r in resources {
        before.push(requests_served(&client, "WATCH", r, "").await);
    }
    // Events for the informers: added, modified, deleted.
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let classes: Api<RuntimeClass> = Api::all(client.clone());
    for i in 0..3 {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": { "name": format!("pb-{i}"), "annotations": { "a": "b" } },
            "spec": { "ports": [{ "port": 80 }] },
        }))
        .unwrap();
        services.create(&PostParams::default(), &svc).await.unwrap();
        let rc: RuntimeClass = serde_json::from_value(serde_json::json!({
            "metadata": { "name": format!("pb-{i}") }, "handler": "runc",
        }))
        .unwrap();
        classes.create(&PostParams::default(), &rc).await.unwrap();
    }
    services.delete("pb-0", &Default::default()).await.unwrap();
    classes.delete("pb-0", &Default::default()).await.unwrap();
    // A failed decode restarts an informer within a second or two.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for (r, before) in resources.iter().zip(before) {
        let after = requests_served(&client, "WATCH", r, "").await;
        assert_eq!(after, before, "{r}: watches opened again after events");
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let renewed = |l: &Lease| {
        l.spec
            .as_ref()
            .and_then(|s| s.renew_time.clone())
            .map(|t| t.0)
    };
    let first = leases.get("pb-0").await.unwrap();
    let spec = first.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("pb-0"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    // Created before the node knew its Node's uid, the Lease gets its owner at a renewal, as
    // the kubelet's lease controller adds it.
    eventually(
        "the lease owned by its Node",
        Duration::from_secs(30),
        || {
            let leases = leases.clone();
            async move {
                let lease = leases.get("pb-0").await.ok()?;
                let owners = lease.metadata.owner_references?;
                owners
                    .iter()
                    .any(|o| o.kind == "Node" && o.name == "pb-0" && o.api_version == "v1")
                    .then_some(())
            }
        },
    )
    .await;
    eventually("the lease renewed", Duration::from_secs(30), || {
        let leases = leases.clone();
        let before = renewed(&first);
        async move { (renewed(&leases.get("pb-0").await.ok()?) > before).then_some(()) }
    })
    .await;
    let puts = requests_served(&client, "PUT", "leases", "").await;
    assert!(puts >= 2.0, "renewals are updates: {puts}");
    cluster.stop().await;
}

/// An API server that sends GOAWAY at random (`--goaway-chance`, as HA clusters run it) closes a
/// node's connection to new streams while the watches on it go on. The node sends its next
/// request on a new connection, as Go's HTTP/2 transport does; otherwise every request of that
/// node would fail until its last watch on the old connection ended, minutes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_keep_working_against_an_api_server_that_sends_goaway() {
    let cluster = Cluster::builder()
        .control_plane(|o| {
            // The largest chance the API server accepts: 2 % of requests answered with a GOAWAY.
            o.apiserver_args.push("--goaway-chance=0.02".into());
        })
        .nodes("goaway", 2)
        .start()
        .await;
    let cp = &cluster.cp;
    let client = cluster.client.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // ~6 requests per pod from the nodes: a GOAWAY is all but certain (0.98^240 < 1 %).
    apply(cp, deployment("churn", 40)).await;
    pods_where(&pods, "app=churn", "40 pods Running", 40, |p| {
        phase(p) == "Running"
    })
    .await;
    let out = kubectl(cp, &["scale", "deployment", "churn", "--replicas=0"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pods_where(&pods, "app=churn", "the pods gone", 0, |_| true).await;
    // Both nodes still renew their leases afterwards.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-node-lease");
    // This client gets GOAWAYs too: a read that meets one is tried again.
    let renewed = |name: &'static str| {
        let leases = leases.clone();
        eventually("the lease read", Duration::from_secs(10), move || {
            let leases = leases.clone();
            async move {
                let lease = leases.get(name).await.ok()?;
                Some(lease.spec.and_then(|s| s.renew_time).map(|t| t.0))
            }
        })
    };
    let before = [renewed("goaway-0").await, renewed("goaway-1").await];
    tokio::time::sleep(Duration::from_secs(12)).await;
    for (name, before) in ["goaway-0", "goaway-1"].into_iter().zip(before) {
        let after = renewed(name).await;
        assert!(
            after > before,
            "{name}: lease not renewed ({before:?} -> {after:?})"
        );
    }
    wait_ready_nodes(&client, 2, Duration::from_secs(5)).await;
    cluster.stop().await;
}

/// A burst of pods bound to one node at once, as a density run's creators produce: all of
/// them run, and the node's lease goes on being renewed through it. The node's pod watch
/// filled faster than its pod worker read it (the worker awaited each pod's token request);
/// with HTTP/2's default 64 KiB windows the unread watch held the connection's whole window,
/// so no response (the token's, the lease's) could arrive and the node stalled for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_pods_on_one_node_runs_and_its_lease_is_renewed_throughout() {
    use futures::StreamExt;
    use k8s_openapi::api::coordination::v1::Lease;
    let cluster = Cluster::with_nodes("burst", 1).await;
    let client = cluster.client.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let renewed = |lease: &Lease| lease.spec.as_ref().and_then(|s| s.renew_time.clone());
    let before = renewed(&leases.get("burst").await.unwrap());
    let n = 90;
    let created: Vec<_> = futures::stream::iter(0..n)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "metadata": { "name": format!("burst-{i}"), "labels": { "app": "burst" } },
                    "spec": { "nodeName": "burst", "terminationGracePeriodSeconds": 1,
                              "containers": [{ "name": "c", "image": "registry.k8s.io/pause:3.10" }] },
                }))
                .unwrap();
                pods.create(&PostParams::default(), &pod).await
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    for result in created {
        result.expect("pod created");
    }
    pods_where(&pods, "app=burst", &format!("{n} pods Running"), n, |p| {
        phase(p) == "Running"
    })
    .await;
    // Renewals every 10 s: one newer than before the burst may still be the first; wait for a
    // second, which a connection stalled by the burst could not deliver either.
    let first = eventually(
        "a lease renewal after the burst",
        Duration::from_secs(30),
        || {
            let leases = leases.clone();
            let before = before.clone();
            async move {
                let now = renewed(&leases.get("burst").await.ok()?);
                (now > before).then_some(now)
            }
        },
    )
    .await;
    eventually("a second lease renewal", Duration::from_secs(30), || {
        let leases = leases.clone();
        let first = first.clone();
        async move { (renewed(&leases.get("burst").await.ok()?) > first).then_some(()) }
    })
    .await;
    cluster.stop().await;
}

async fn job_complete(jobs: &Api<k8s_openapi::api::batch::v1::Job>, name: &str) {
    eventually(
        &format!("Job {name} to complete"),
        Duration::from_secs(90),
        || {
            let jobs = jobs.clone();
            async move {
                let job = jobs.get(name).await.ok()?;
                let conditions = job.status?.conditions?;
                conditions
                    .iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True")
                    .then_some(())
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_finish_as_their_commands_say_and_missing_env_holds_a_pod_until_it_appears() {
    let cluster = Cluster::with_nodes("work", 2).await;
    let cp = &cluster.cp;
    let client = cluster.client.clone();
    // No annotations: a shell one-liner, and clusterloader2's `sleep` image in an Indexed Job.
    apply(cp, serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": { "name": "shell", "namespace": "default" },
        "spec": { "template": { "spec": { "restartPolicy": "Never",
            "containers": [{ "name": "sh", "image": "busybox", "command": ["sh", "-c", "exit 0"] }] } } },
    })).await;
    apply(
        cp,
        serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": { "name": "indexed", "namespace": "default" },
            "spec": { "completions": 4, "parallelism": 4, "completionMode": "Indexed",
                "template": { "spec": { "restartPolicy": "Never", "containers": [{ "name": "sleep",
                    "image": "gcr.io/k8s-staging-perf-tests/sleep:v0.1.0", "args": ["3s"] }] } } },
        }),
    )
    .await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), "default");
    job_complete(&jobs, "shell").await;
    job_complete(&jobs, "indexed").await;

    // A pod reading a ConfigMap key that is not there waits, as on a kubelet.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "env", "labels": { "app": "env" } },
        "spec": { "containers": [{ "name": "c", "image": "busybox",
            "env": [{ "name": "MODE", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "mode" } } }] }] },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let waiting = pods_where(&pods, "app=env", "a CreateContainerConfigError", 1, |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c[0].state.as_ref()?.waiting.as_ref()?.reason.clone())
            .as_deref()
            == Some("CreateContainerConfigError")
    })
    .await;
    assert_eq!(phase(&waiting[0]), "Pending");
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let said = eventually(
        "the kubelet's Failed event",
        Duration::from_secs(30),
        || {
            let events = events.clone();
            async move {
                let list = events.list(&ListParams::default()).await.ok()?;
                list.items
                    .into_iter()
                    .find(|e| {
                        e.reason.as_deref() == Some("Failed")
                            && e.involved_object.name.as_deref() == Some("env")
                    })
                    .and_then(|e| e.message)
            }
        },
    )
    .await;
    assert_eq!(said, "Error: configmap \"settings\" not found");
    apply(
        cp,
        serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "settings", "namespace": "default" }, "data": { "mode": "fast" },
        }),
    )
    .await;
    pods_where(
        &pods,
        "app=env",
        "the pod Running once its ConfigMap exists",
        1,
        |p| phase(p) == "Running",
    )
    .await;

    cluster.stop().await;
}
