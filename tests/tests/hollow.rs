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

#[tokio::test]
async fn nodes_join_and_a_deployment_runs_with_distinct_ips_in_each_pod_cidr() {
    let cp = start_control_plane().await;
    let (_dir, path) = tempdir();
    let creds = bootstrap_credentials(&cp, &path).await;
    let n = 3;
    let _nodes = spawn_nodes(
        &creds,
        HollowOptions::names("hollow", n),
        NodeConfig::default(),
    );
    let client = cp.client().await.unwrap();
    let ready = wait_ready_nodes(&client, n, Duration::from_secs(60)).await;
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
    cp.stop().await.unwrap();
}
