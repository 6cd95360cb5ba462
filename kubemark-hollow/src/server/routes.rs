//! The kubelet API's paths: the auth gate, then one handler per path.

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;

use super::auth::{Refusal, User, verb};
use super::{Body, Caller, NodeServer, full, text};

/// Paths the read-only port serves (no exec, logs or configuration there).
fn read_only(path: &str) -> bool {
    ["/healthz", "/pods", "/stats", "/metrics", "/spec"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// Answers one request.
pub(crate) async fn handle(
    node: &NodeServer,
    caller: &Caller,
    request: Request<Incoming>,
) -> Response<Body> {
    let path = request.uri().path().to_string();
    let user = match caller {
        Caller::ReadOnly if read_only(&path) => None,
        Caller::ReadOnly => return text(StatusCode::NOT_FOUND, "404 page not found\n"),
        Caller::Certificate(user) => Some(user.clone()),
        Caller::Anonymous => match bearer(&request) {
            None => return refused(Refusal::Unauthenticated),
            Some(token) => match node.auth.token_user(node.api(), token).await {
                Ok(user) => Some(user),
                Err(r) => return refused(r),
            },
        },
    };
    if let Some(user) = &user
        && let Err(r) = authorize(node, user, &request, &path).await
    {
        return refused(r);
    }
    route(node, &request, &path).await
}

async fn authorize(
    node: &NodeServer,
    user: &User,
    request: &Request<Incoming>,
    path: &str,
) -> Result<(), Refusal> {
    node.auth
        .authorize(
            node.api(),
            &node.ctx.name,
            user,
            verb(request.method()),
            path,
        )
        .await
}

fn bearer<B>(request: &Request<B>) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

fn refused(refusal: Refusal) -> Response<Body> {
    match refusal {
        Refusal::Unauthenticated => text(StatusCode::UNAUTHORIZED, "Unauthorized"),
        Refusal::Forbidden(message) => text(StatusCode::FORBIDDEN, &format!("{message}\n")),
        Refusal::Unavailable(message) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Authorization error: {message}"),
        ),
    }
}

async fn route(node: &NodeServer, request: &Request<Incoming>, path: &str) -> Response<Body> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz"] | ["healthz", ""] | ["healthz", "ping" | "syncloop" | "log"] => {
            text(StatusCode::OK, "ok")
        }
        ["pods"] | ["pods", ""] | ["runningpods", ""] => json_response(&pod_list(node)),
        ["configz"] => json_response(&configz(node)),
        ["metrics"] => super::metrics::kubelet(node),
        ["metrics", "resource"] => super::metrics::resource(node),
        ["metrics", "cadvisor"] => super::metrics::cadvisor(node),
        ["metrics", "probes"] => super::metrics::exposition(String::new()),
        ["stats", "summary"] | ["stats", "summary", ""] => {
            json_response(&super::metrics::summary(node))
        }
        ["spec"] | ["spec", ""] => json_response(&machine(node)),
        ["containerLogs", ns, pod, container] => {
            super::logs::container_logs(node, ns, pod, container, request.uri().query()).await
        }
        ["exec" | "attach" | "run", ns, pod, .., container] => {
            simulated(node, ns, pod, Some(container))
        }
        ["portForward", ns, pod, ..] => simulated(node, ns, pod, None),
        ["logs", ..] => text(
            StatusCode::NOT_FOUND,
            "a hollow node has no node logs: nothing runs on it",
        ),
        _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

/// exec, attach, run and port-forward: a hollow container has no process to reach. Answered
/// with a `Status` (its message is what kubectl prints), never an upgrade that would hang.
fn simulated(node: &NodeServer, ns: &str, pod: &str, container: Option<&str>) -> Response<Body> {
    let Some(record) = node.ctx.pods.find(ns, pod) else {
        return status(StatusCode::NOT_FOUND, "NotFound", "pod does not exist");
    };
    let what = match container {
        Some(c) if !record.containers.iter().any(|r| &*r.name == c) => {
            let message = format!("container not found ({c:?})");
            return status(StatusCode::NOT_FOUND, "NotFound", &message);
        }
        Some(c) => format!("container {c:?} of pod {ns}/{pod}"),
        None => format!("pod {ns}/{pod}"),
    };
    let message = format!(
        "{what} is simulated by kubemark hollow node {}: nothing runs in it, so exec, attach, run and port-forward are not supported",
        node.ctx.name
    );
    status(StatusCode::NOT_IMPLEMENTED, "NotImplemented", &message)
}

/// A `metav1.Status` failure.
pub(crate) fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    let mut response = json_response(&body);
    *response.status_mut() = code;
    response
}

pub(crate) fn json_response(value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// `/pods`: the node's pods as a PodList (the fields the hollow node keeps).
fn pod_list(node: &NodeServer) -> serde_json::Value {
    let items: Vec<serde_json::Value> = node.ctx.pods.with(|i| {
        i.pods
            .values()
            .map(|p| {
                let phase = match p.current {
                    Some(run) if run.finished.is_none() => "Running",
                    Some(super::super::pods::record::Run {
                        finished: Some((_, 0)),
                        ..
                    }) => "Succeeded",
                    Some(_) => "Failed",
                    None => "Pending",
                };
                json!({
                    "metadata": { "name": p.name, "namespace": p.namespace, "uid": p.uid },
                    "spec": {
                        "nodeName": node.ctx.name,
                        "containers": p.containers.iter().map(|c| json!({ "name": c.name, "image": c.image })).collect::<Vec<_>>(),
                    },
                    "status": { "phase": phase, "hostIP": node.ctx.ip.to_string() },
                })
            })
            .collect()
    });
    json!({ "kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items })
}

/// `/configz`: the KubeletConfiguration this hollow kubelet behaves as.
fn configz(node: &NodeServer) -> serde_json::Value {
    let config = &node.ctx.config;
    let options = &node.shared.options;
    let seconds = |d: std::time::Duration| format!("{}s", d.as_secs());
    let taints: Vec<_> = config
        .taints
        .iter()
        .map(|t| json!({ "key": t.key, "value": t.value, "effect": t.effect }))
        .collect();
    json!({ "kubeletconfig": {
        "kind": "KubeletConfiguration",
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "enableServer": true,
        "address": node.ctx.ip.to_string(),
        "port": node.ctx.kubelet_port,
        "readOnlyPort": options.read_only_port.unwrap_or(0),
        "authentication": {
            "x509": { "clientCAFile": options.client_ca.as_ref().map(|p| p.display().to_string()).unwrap_or_default() },
            "webhook": { "enabled": true, "cacheTTL": "2m0s" },
            "anonymous": { "enabled": false },
        },
        "authorization": {
            "mode": "Webhook",
            "webhook": { "cacheAuthorizedTTL": "5m0s", "cacheUnauthorizedTTL": "30s" },
        },
        "nodeStatusUpdateFrequency": seconds(config.status_update_frequency),
        "nodeStatusReportFrequency": seconds(config.status_report_frequency),
        "nodeLeaseDurationSeconds": config.lease_duration.as_secs(),
        "kubeAPIQPS": config.qps,
        "kubeAPIBurst": config.burst,
        "eventRecordQPS": config.event_qps,
        "eventBurst": config.event_burst,
        "maxPods": config.capacity.get("pods").map(|q| q.0.clone()).and_then(|p| p.parse::<u64>().ok()),
        "registerWithTaints": taints,
        "registerNode": true,
        "enableDebuggingHandlers": true,
        "cgroupDriver": "systemd",
        "containerRuntimeEndpoint": "kubemark://hollow",
    }})
}

/// `/spec`: the machine, as cAdvisor's MachineInfo.
fn machine(node: &NodeServer) -> serde_json::Value {
    let capacity = &node.ctx.config.capacity;
    let cores = capacity
        .get("cpu")
        .and_then(|q| crate::quantity::parse(&q.0))
        .map_or(1, |m| (m / 1000).max(1));
    let memory = capacity
        .get("memory")
        .and_then(|q| crate::quantity::parse(&q.0))
        .map_or(0, |m| m / 1000);
    json!({
        "num_cores": cores,
        "memory_capacity": memory,
        "machine_id": super::super::node::object::stable_id(&node.ctx.name, "machine"),
        "system_uuid": super::super::node::object::stable_id(&node.ctx.name, "system"),
        "boot_id": "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_only_port_serves_no_logs_exec_or_configuration() {
        assert!(read_only("/healthz"));
        assert!(read_only("/stats/summary"));
        assert!(read_only("/metrics/resource"));
        assert!(!read_only("/containerLogs/ns/p/c"));
        assert!(!read_only("/exec/ns/p/c"));
        assert!(!read_only("/configz"));
        assert!(!read_only("/metricsx"));
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let r = |v: &str| {
            Request::builder()
                .header(header::AUTHORIZATION, v)
                .body(())
                .unwrap()
        };
        assert_eq!(bearer(&r("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&r("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&r("Basic abc")), None);
        assert_eq!(bearer(&r("Bearer ")), None);
    }
}
