//! The hollow proxy and node-problem-detector, and fault injection, against the real control
//! plane: what the proxy watches shows in the API server's metrics, an injected problem shows as
//! NPD's condition and event, and the node lifecycle controller treats an injected partition as a
//! real one; the kubelet's and kube-proxy's events on their Node.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kubemark_core::pki::{Kubeconfig, KubeconfigCredentials};
use kubemark_hollow::NodeConfig;
use kubemark_hollow::runtime::HollowOptions;
use kubemark_tests::*;

fn condition(node: &Node, type_: &str) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

async fn annotate(client: &kube::Client, node: &str, fault: Option<&str>) {
    let api: Api<Node> = Api::all(client.clone());
    let patch =
        serde_json::json!({ "metadata": { "annotations": { "kubemark.io/fault": fault } } });
    api.patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn wait_node(client: &kube::Client, name: &str, what: &str, pred: impl Fn(&Node) -> bool) {
    let api: Api<Node> = Api::all(client.clone());
    let pred = &pred;
    eventually(what, Duration::from_secs(60), || {
        let api = api.clone();
        async move { api.get(name).await.ok().filter(|n| pred(n)).map(|_| ()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hollow_proxies_watch_what_kube_proxy_watches() {
    let cluster = Cluster::start().await;
    let cp = &cluster.cp;
    let proxy = cluster.dir.path().join("kube-proxy.kubeconfig");
    Kubeconfig {
        name: "kube-proxy".into(),
        server: cp.server_url(),
        ca_pem: cp.pki().ca.cert_pem().to_string(),
        credentials: KubeconfigCredentials::ClientCert(cp.pki().kube_proxy.clone()),
    }
    .write(&proxy)
    .unwrap();
    let client = cluster.client.clone();
    let before = open_watches(&client, "endpointslices").await;
    cluster.spawn(HollowOptions {
        proxy: Some(proxy.clone()),
        ..cluster.hollow("full", 2).await
    });
    // The proxy morph alone, as `hollow-node --morph proxy` runs it.
    cluster.spawn(HollowOptions {
        credentials: kubemark_hollow::Credentials::Kubeconfig(proxy.clone()),
        kubelet: false,
        proxy: Some(proxy),
        ..cluster.hollow("proxy-only", 2).await
    });
    cluster.wait_ready(2).await;
    eventually("4 hollow proxies watching", Duration::from_secs(30), || {
        let client = client.clone();
        async move {
            let slices = open_watches(&client, "endpointslices").await - before;
            let cidrs = open_watches(&client, "servicecidrs").await;
            (slices >= 4.0 && cidrs >= 4.0).then_some(())
        }
    })
    .await;
    // kube-proxy's birth cry, one per proxy, with or without a kubelet beside it.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    eventually(
        "4 kube-proxy Starting events",
        Duration::from_secs(30),
        || {
            let events = events.clone();
            async move {
                let mut started: Vec<String> = events
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .filter(|e| {
                        e.reason.as_deref() == Some("Starting")
                            && e.reporting_controller.as_deref() == Some("kube-proxy")
                    })
                    .filter_map(|e| e.regarding?.name)
                    .collect();
                started.sort();
                (started == ["full-0", "full-1", "proxy-only-0", "proxy-only-1"]).then_some(())
            }
        },
    )
    .await;
    let nodes: Api<Node> = Api::all(client.clone());
    let names: Vec<String> = nodes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("proxy-only")),
        "the proxy morph registers no Node: {names:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_problem_is_npds_condition_and_event() {
    let cluster = Cluster::with_nodes("sick", 1).await;
    let client = cluster.client.clone();
    wait_node(&client, "sick", "NPD's conditions False", |n| {
        condition(n, "KernelDeadlock").as_deref() == Some("False")
            && condition(n, "ReadonlyFilesystem").as_deref() == Some("False")
    })
    .await;
    annotate(&client, "sick", Some("problem=KernelDeadlock")).await;
    wait_node(&client, "sick", "KernelDeadlock True", |n| {
        condition(n, "KernelDeadlock").as_deref() == Some("True")
    })
    .await;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let found = events
        .list(&ListParams::default().fields("reason=KernelDeadlock"))
        .await
        .unwrap()
        .items;
    assert!(
        found
            .iter()
            .any(|e| e.involved_object.name.as_deref() == Some("sick")
                && e.type_.as_deref() == Some("Warning")
                && e.source.as_ref().and_then(|s| s.component.as_deref())
                    == Some("kernel-monitor")),
        "no KernelDeadlock event for the node: {found:?}"
    );
    annotate(&client, "sick", None).await;
    wait_node(&client, "sick", "KernelDeadlock False again", |n| {
        condition(n, "KernelDeadlock").as_deref() == Some("False")
    })
    .await;
    cluster.stop().await;
}

fn tainted(node: &Node, key: &str) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| t.iter().any(|t| t.key == key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_lifecycle_reacts_to_injected_partition_and_not_ready() {
    let config = NodeConfig {
        lease_duration: Duration::from_secs(4),
        status_update_frequency: Duration::from_secs(1),
        ..NodeConfig::default()
    };
    let cluster = Cluster::builder()
        .control_plane(|o| {
            o.controller_manager_args = vec![
                "--node-monitor-grace-period=8s".into(),
                "--node-monitor-period=1s".into(),
            ];
        })
        .nodes("cut", 2)
        .config(config)
        .start()
        .await;
    let client = cluster.client.clone();

    annotate(&client, "cut-0", Some("partition")).await;
    wait_node(
        &client,
        "cut-0",
        "Ready Unknown and the unreachable taint",
        |n| {
            condition(n, "Ready").as_deref() == Some("Unknown")
                && tainted(n, "node.kubernetes.io/unreachable")
        },
    )
    .await;
    let other: Api<Node> = Api::all(client.clone());
    assert!(
        is_ready(&other.get("cut-1").await.unwrap()),
        "the other node is unaffected"
    );
    annotate(&client, "cut-0", None).await;
    wait_node(&client, "cut-0", "Ready again, untainted", |n| {
        is_ready(n) && !tainted(n, "node.kubernetes.io/unreachable")
    })
    .await;

    annotate(&client, "cut-1", Some("not-ready;for=20s")).await;
    wait_node(
        &client,
        "cut-1",
        "Ready False and the not-ready taint",
        |n| {
            condition(n, "Ready").as_deref() == Some("False")
                && tainted(n, "node.kubernetes.io/not-ready")
        },
    )
    .await;
    wait_node(&client, "cut-1", "Ready after the window", |n| {
        is_ready(n) && !tainted(n, "node.kubernetes.io/not-ready")
    })
    .await;
    // The kubelet's events on its Node: those of its start, then the readiness transitions.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let want = [
        "Starting",
        "NodeHasSufficientMemory",
        "NodeHasNoDiskPressure",
        "NodeHasSufficientPID",
        "NodeAllocatableEnforced",
        "NodeNotReady",
        "NodeReady",
    ];
    eventually("the kubelet's node events", Duration::from_secs(30), || {
        let events = events.clone();
        async move {
            let mut seen: Vec<String> = events
                .list(&ListParams::default().fields("involvedObject.name=cut-1,source=kubelet"))
                .await
                .ok()?
                .items
                .into_iter()
                .filter_map(|e| e.reason)
                .collect();
            seen.sort();
            let mut want = want.map(String::from).to_vec();
            want.sort();
            (seen == want).then_some(())
        }
    })
    .await;
    let message = events
        .list(&ListParams::default().fields("involvedObject.name=cut-1,reason=NodeNotReady"))
        .await
        .unwrap()
        .items
        .into_iter()
        .find_map(|e| e.message);
    assert_eq!(
        message.as_deref(),
        Some("Node cut-1 status is now: NodeNotReady")
    );
    cluster.stop().await;
}

/// A flap shorter than the 10 s status tick is written at each edge, not sampled by the tick
/// (which would show at most one change per tick, or none when period and tick line up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flap_shorter_than_the_status_tick_shows_every_edge() {
    let cluster = Cluster::with_nodes("flappy", 1).await;
    let client = cluster.client.clone();
    let api: Api<Node> = Api::all(client.clone());
    annotate(&client, "flappy", Some("flap=3s;for=5m")).await;
    wait_node(&client, "flappy", "the first NotReady edge", |n| {
        condition(n, "Ready").as_deref() == Some("False")
    })
    .await;
    let mut seen = vec!["False".to_string()];
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(11_500) {
        let ready = condition(&api.get("flappy").await.unwrap(), "Ready").unwrap();
        if seen.last() != Some(&ready) {
            seen.push(ready);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        seen.len() >= 4,
        "edges every 3 s for 11.5 s, saw only {seen:?}"
    );
    annotate(&client, "flappy", None).await;
    wait_node(&client, "flappy", "Ready after the heal", is_ready).await;
    cluster.stop().await;
}
