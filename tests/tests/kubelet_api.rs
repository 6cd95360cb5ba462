//! The hollow nodes' kubelet API against the real control plane and real clients: kubectl
//! (logs through the API server, which verifies the node's serving certificate; exec), and
//! HTTPS clients with service-account tokens that the hollow kubelet authenticates by
//! TokenReview and authorizes by SubjectAccessReview.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kubemark_hollow::server::NodeAddresses;
use kubemark_tests::*;
use serde_json::json;

/// A token for service account `default/name`, bound to the kubelet API admin role when
/// `admin`.
async fn token(client: &kube::Client, name: &str, admin: bool) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let sa = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    if admin {
        let binding: k8s_openapi::api::rbac::v1::ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": { "name": format!("{name}-kubelet-api-admin") },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kubelet-api-admin" },
            "subjects": [{ "kind": "ServiceAccount", "name": name, "namespace": "default" }],
        }))
        .unwrap();
        Api::all(client.clone())
            .create(&PostParams::default(), &binding)
            .await
            .unwrap();
    }
    let request = serde_json::from_value(json!({ "spec": { "audiences": [] } })).unwrap();
    let answer = sas
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap();
    answer.status.unwrap().token.unwrap()
}

/// `GET https://ip:10250{path}` with a bearer token, verifying the node's certificate against
/// the kubelet serving CA.
async fn get(ca: &str, ip: &str, path: &str, token: &str) -> (u16, String) {
    kubemark_core::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let response = client
        .get(format!("https://{ip}:10250{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let code = response.status().as_u16();
    (code, response.text().await.unwrap())
}

/// The value of the series `name{labels}` (labels as written, sorted) in a text exposition.
fn series(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name_and_labels} ")))
        .and_then(|l| l.split(' ').nth(1)?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_serves_the_kubelet_api_to_kubectl_and_to_authorized_clients() {
    let first = loopback_range("kubelet-api");
    let cluster = Cluster::builder()
        .nodes("api", 2)
        .serving(NodeAddresses::Consecutive(first))
        .start()
        .await;
    let cp = &cluster.cp;
    let client = cluster.client.clone();

    // Each node advertises its own address and the kubelet's port.
    let node: Node = Api::all(client.clone()).get("api-1").await.unwrap();
    let status = node.status.unwrap();
    let ip = status.addresses.unwrap()[0].address.clone();
    assert_eq!(
        ip,
        std::net::Ipv4Addr::from(u32::from(first) + 1).to_string()
    );
    assert_eq!(
        status
            .daemon_endpoints
            .unwrap()
            .kubelet_endpoint
            .unwrap()
            .port,
        10250
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = serde_json::from_value(json!({
        "metadata": { "name": "web", "annotations": {
            "kubemark.io/usage": "cpu=250m,memory=64Mi",
            "kubemark.io/log": "listening on :8080\nready",
        } },
        "spec": { "nodeName": "api-1", "containers": [
            { "name": "app", "image": "nginx", "resources": { "requests": { "cpu": "500m" } } },
        ] },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    running(&pods, "web").await;

    // kubectl logs goes through the API server, which verifies the node's certificate.
    let out = kubectl(cp, &["logs", "web", "-c", "app"]).await;
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl logs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(log.contains("hollow container app started"), "{log}");
    assert!(log.ends_with("listening on :8080\nready\n"), "{log}");
    let out = kubectl(cp, &["logs", "web", "--tail=1", "--timestamps"]).await;
    let tail = String::from_utf8_lossy(&out.stdout);
    assert!(
        tail.lines().count() == 1 && tail.trim_end().ends_with("Z ready"),
        "{tail}"
    );
    let out = kubectl(cp, &["logs", "web", "--previous"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("previous terminated container \"app\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // exec fails at once, saying why.
    let started = Instant::now();
    let out = kubectl(cp, &["exec", "web", "--", "ls"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("simulated by kubemark hollow node api-1"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "exec took {:?}",
        started.elapsed()
    );

    // A client without nodes/* rights is refused by the hollow kubelet itself.
    let ca = cp.pki().kubelet_serving_ca.cert_pem().to_string();
    let nobody = token(&client, "nobody", false).await;
    let (code, body) = get(&ca, &ip, "/metrics/resource", &nobody).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("user=system:serviceaccount:default:nobody")
            && body.contains("subresource(s)=[metrics]"),
        "{body}"
    );
    let (code, _) = get(&ca, &ip, "/healthz", "not-a-token").await;
    assert_eq!(code, 401);

    // One bound to system:kubelet-api-admin reads the simulated usage.
    let admin = token(&client, "scraper", true).await;
    let (code, text) = get(&ca, &ip, "/metrics/resource", &admin).await;
    assert_eq!(code, 200, "{text}");
    let labels = "container=\"app\",namespace=\"default\",pod=\"web\"";
    assert_eq!(
        series(
            &text,
            &format!("container_memory_working_set_bytes{{{labels}}}")
        ),
        Some(64.0 * 1024.0 * 1024.0)
    );
    let cpu1 = series(
        &text,
        &format!("container_cpu_usage_seconds_total{{{labels}}}"),
    )
    .unwrap();
    assert!(series(&text, "node_cpu_usage_seconds_total").unwrap() > cpu1);

    // Changing the annotation changes the rate from then on.
    pods.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(
            json!({ "metadata": { "annotations": { "kubemark.io/usage": "cpu=2,memory=64Mi" } } }),
        ),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, a) = get(&ca, &ip, "/metrics/resource", &admin).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, b) = get(&ca, &ip, "/metrics/resource", &admin).await;
    let name = format!("container_cpu_usage_seconds_total{{{labels}}}");
    let rate = (series(&b, &name).unwrap() - series(&a, &name).unwrap()) / 2.0;
    assert!(
        (1.6..2.4).contains(&rate),
        "CPU rate after the change: {rate} cores"
    );

    let (code, summary) = get(&ca, &ip, "/stats/summary", &admin).await;
    assert_eq!(code, 200);
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["node"]["nodeName"], "api-1");
    let pod = &summary["pods"][0];
    assert_eq!(pod["podRef"]["name"], "web");
    assert_eq!(
        pod["containers"][0]["memory"]["workingSetBytes"],
        64 * 1024 * 1024
    );
    assert_eq!(
        pod["containers"][0]["cpu"]["usageNanoCores"],
        2_000_000_000u64
    );

    let (code, metrics) = get(&ca, &ip, "/metrics", &admin).await;
    assert_eq!(code, 200);
    assert_eq!(series(&metrics, "kubelet_running_pods"), Some(1.0));
    assert_eq!(
        series(&metrics, "kubelet_pod_start_duration_seconds_count"),
        Some(1.0)
    );
    // The node's own client: at least the Lease and the events it created (POST, 201).
    let host = cp.server_url().trim_start_matches("https://").to_string();
    let posts = series(
        &metrics,
        &format!("rest_client_requests_total{{code=\"201\",host=\"{host}\",method=\"POST\"}}"),
    );
    assert!(posts.is_some_and(|n| n >= 1.0), "{metrics}");
    let (code, pods_json) = get(&ca, &ip, "/pods", &admin).await;
    assert_eq!(code, 200);
    assert!(pods_json.contains("\"web\""), "{pods_json}");

    // A malformed usage annotation is a Warning event on the pod that says what is wrong; the
    // pod runs with its default usage.
    let pod = serde_json::from_value(json!({
        "metadata": { "name": "typo", "annotations": { "kubemark.io/usage": "cpu=lots" } },
        "spec": { "nodeName": "api-0", "containers": [{ "name": "c", "image": "nginx" }] },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let message = eventually(
        "the InvalidAnnotation event",
        Duration::from_secs(30),
        || {
            let events = events.clone();
            async move {
                let list = events.list(&Default::default()).await.ok()?;
                list.items
                    .into_iter()
                    .find(|e| {
                        e.reason.as_deref() == Some("InvalidAnnotation")
                            && e.involved_object.name.as_deref() == Some("typo")
                    })
                    .and_then(|e| e.message)
            }
        },
    )
    .await;
    assert!(
        message.contains("kubemark.io/usage") && message.contains("cpu=lots"),
        "{message}"
    );
    // An option the kubelet cannot decode is its 400, not a hang or a crash.
    let (code, body) = get(
        &ca,
        &ip,
        "/containerLogs/default/web/app?tailLines=many",
        &admin,
    )
    .await;
    assert_eq!(code, 400, "{body}");

    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_and_show_the_previous_run_and_the_read_only_port_serves_no_logs() {
    let first = loopback_range("kubelet-logs");
    let cluster = Cluster::builder()
        .nodes("logs", 1)
        .serving(NodeAddresses::Consecutive(first))
        .server(|s| s.read_only_port = Some(10255))
        .start()
        .await;
    let cp = &cluster.cp;
    let client = cluster.client.clone();

    // The read-only port: no authentication, and nothing but health, pods, stats and metrics.
    let plain = reqwest::Client::new();
    let read_only = |path: &str| {
        let request = plain.get(format!("http://{first}:10255{path}"));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(read_only("/healthz").await, (200, "ok".to_string()));
    assert_eq!(read_only("/pods").await.0, 200);
    assert_eq!(read_only("/containerLogs/default/p/c").await.0, 404);
    assert_eq!(read_only("/configz").await.0, 404);
    let ca = cp.pki().kubelet_serving_ca.cert_pem().to_string();
    let admin = token(&client, "reader", true).await;
    let (code, configz) = get(&ca, &first.to_string(), "/configz", &admin).await;
    assert_eq!(code, 200, "{configz}");
    let configz: serde_json::Value = serde_json::from_str(&configz).unwrap();
    assert_eq!(configz["kubeletconfig"]["readOnlyPort"], 10255);
    assert_eq!(
        configz["kubeletconfig"]["authentication"]["anonymous"]["enabled"],
        false
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = |name: &str, policy: &str, run: &str, code: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": name, "annotations": {
                "kubemark.io/run-duration": run, "kubemark.io/exit-code": code } },
            "spec": { "nodeName": "logs", "restartPolicy": policy,
                      "containers": [{ "name": "c", "image": "busybox" }] },
        }))
        .unwrap()
    };
    pods.create(&PostParams::default(), &pod("crash", "Always", "1s", "3"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("brief", "Never", "4s", "0"))
        .await
        .unwrap();

    // -f follows the log until the container exits, then ends by itself.
    running(&pods, "brief").await;
    let follow = tokio::time::timeout(
        Duration::from_secs(30),
        kubectl(cp, &["logs", "-f", "brief"]),
    )
    .await
    .expect("kubectl logs -f ends when the container exits");
    let log = String::from_utf8_lossy(&follow.stdout);
    assert!(
        follow.status.success(),
        "{}",
        String::from_utf8_lossy(&follow.stderr)
    );
    assert!(log.trim_end().ends_with("exited with code 0"), "{log}");

    // After a restart (the kubelet's 10 s back-off), --previous shows the run that exited.
    eventually("crash restarted once", Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let p = pods.get("crash").await.ok()?;
            let restarts = p.status?.container_statuses?.first()?.restart_count;
            (restarts >= 1).then_some(())
        }
    })
    .await;
    let out = kubectl(cp, &["logs", "crash", "--previous"]).await;
    let previous = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(previous.contains("exited with code 3"), "{previous}");

    // Crash-looping: after the restarted run exits too, the container waits in CrashLoopBackOff
    // with the last run terminated in error, as a kubelet shows it.
    eventually(
        "CrashLoopBackOff after the restart",
        Duration::from_secs(30),
        || {
            let pods = pods.clone();
            async move {
                let p = pods.get("crash").await.ok()?;
                let c = p.status?.container_statuses?.into_iter().next()?;
                let waiting = c.state?.waiting?.reason?;
                let last = c.last_state?.terminated?;
                (c.restart_count >= 1 && waiting == "CrashLoopBackOff" && last.exit_code != 0)
                    .then_some(())
            }
        },
    )
    .await;

    cluster.stop().await;
}
