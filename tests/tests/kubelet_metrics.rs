//! Real peers of the hollow kubelet API: the API server's node proxy, metrics-server behind the
//! aggregation layer (`kubectl top`), and the controller-manager's HorizontalPodAutoscaler
//! acting on the pods' simulated CPU. The nodes listen in a network namespace of the test's
//! own, because the node proxy and the aggregation layer refuse loopback addresses.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kubemark_hollow::server::NodeAddresses;
use kubemark_tests::metrics_server::MetricsServer;
use kubemark_tests::netns::NetNs;
use kubemark_tests::*;
use serde_json::json;

async fn raw(cp: &kubemark_core::master::LocalControlPlane, path: &str) -> String {
    let out = kubectl(cp, &["get", "--raw", path]).await;
    assert!(
        out.status.success(),
        "kubectl get --raw {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn annotate_pods(cp: &kubemark_core::master::LocalControlPlane, usage: &str) {
    let value = format!("kubemark.io/usage={usage}");
    let out = kubectl(
        cp,
        &["annotate", "pods", "-l", "app=burn", &value, "--overwrite"],
    )
    .await;
    // A pod the HPA deletes between kubectl's list and its patch is NotFound: not a failure.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            || (!stderr.trim().is_empty()
                && stderr
                    .lines()
                    .all(|l| l.is_empty() || l.starts_with("Error from server (NotFound): pods "))),
        "{stderr}"
    );
}

async fn replicas(client: &kube::Client) -> i32 {
    let d: Deployment = Api::namespaced(client.clone(), "default")
        .get("burn")
        .await
        .unwrap();
    d.spec.unwrap().replicas.unwrap_or(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_proxy_metrics_server_top_and_an_hpa_work_with_hollow_kubelets() {
    init_logging();
    let netns = NetNs::create();
    let netns_path = netns.path.clone();
    let cluster = Cluster::builder()
        .nodes("ms", 3)
        .serving(NodeAddresses::Consecutive(netns.first_ip))
        .server(|s| s.netns = Some(netns_path))
        .start()
        .await;
    let cp = &cluster.cp;
    let client = cluster.client.clone();

    // The node proxy, as Prometheus and clusterloader2 use it (the `NAME:PORT` form too).
    let metrics = raw(cp, "/api/v1/nodes/ms-0/proxy/metrics").await;
    assert!(
        metrics.contains("kubelet_node_name{node=\"ms-0\"} 1"),
        "{metrics}"
    );
    let summary = raw(cp, "/api/v1/nodes/ms-2:10250/proxy/stats/summary").await;
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["node"]["nodeName"], "ms-2");

    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "burn", "namespace": "default" },
        "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "burn" } }, "template": {
            "metadata": { "labels": { "app": "burn" },
                          "annotations": { "kubemark.io/usage": "cpu=20m,memory=50Mi" } },
            "spec": { "containers": [{ "name": "c", "image": "registry.k8s.io/pause:3.10",
                "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } }] } } },
    });
    apply(cp, deployment).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually("2 burn pods Running", Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=burn"))
                .await
                .ok()?;
            let running = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            (running == 2).then_some(())
        }
    })
    .await;

    let metrics_server = MetricsServer::start(cp, netns.host_ip).await;
    let top = metrics_server
        .top(cp, &["nodes", "--no-headers"], Duration::from_secs(120))
        .await;
    for node in ["ms-0", "ms-1", "ms-2"] {
        assert!(top.contains(node), "kubectl top nodes:\n{top}");
    }
    let top = eventually(
        "kubectl top pods to list both pods",
        Duration::from_secs(120),
        || {
            let ms = &metrics_server;
            async move {
                let top = ms
                    .top(
                        cp,
                        &["pods", "-l", "app=burn", "--no-headers"],
                        Duration::from_secs(60),
                    )
                    .await;
                (top.lines().count() == 2).then_some(top)
            }
        },
    )
    .await;
    for line in top.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // kubectl rounds millicores up: a rate a hair above 20m shows as 21m.
        assert!(
            matches!(cols[1], "20m" | "21m") && cols[2] == "50Mi",
            "kubectl top pods:\n{top}"
        );
    }

    // The controller-manager's HPA scales on the simulated CPU: up when it rises above the
    // target, down when it falls (no stabilization window, to keep the test short).
    apply(
        cp,
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": { "name": "burn", "namespace": "default" },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "burn" },
                "minReplicas": 2, "maxReplicas": 6,
                "metrics": [{ "type": "Resource", "resource": { "name": "cpu",
                    "target": { "type": "Utilization", "averageUtilization": 50 } } }],
                "behavior": {
                    "scaleUp": { "stabilizationWindowSeconds": 0 },
                    "scaleDown": { "stabilizationWindowSeconds": 0 },
                },
            },
        }),
    )
    .await;
    annotate_pods(cp, "cpu=90m,memory=50Mi").await;
    eventually(
        "the HPA to scale burn above 2 replicas",
        Duration::from_secs(180),
        || {
            let client = client.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                (replicas(&client).await > 2).then_some(())
            }
        },
    )
    .await;
    annotate_pods(cp, "cpu=5m,memory=50Mi").await;
    eventually(
        "the HPA to scale burn back to 2 replicas",
        Duration::from_secs(180),
        || {
            let client = client.clone();
            async move {
                // Pods the scale-up made start with the template's usage: lower theirs too.
                tokio::time::sleep(Duration::from_secs(2)).await;
                annotate_pods(cp, "cpu=5m,memory=50Mi").await;
                (replicas(&client).await == 2).then_some(())
            }
        },
    )
    .await;

    drop(metrics_server);
    cluster.stop().await;
}
