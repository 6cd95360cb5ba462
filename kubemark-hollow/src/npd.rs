//! The hollow node-problem-detector: the API behaviour of NPD's kernel monitor, which keeps
//! `KernelDeadlock` and `ReadonlyFilesystem` False on every node, turns an injected
//! `problem=<Condition>` fault (see `node::fault`) into that condition True plus a Warning event,
//! and writes its conditions when they change and every 5 minutes.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::api::Api;
use crate::node::NodeContext;
use crate::node::fault::FaultKind;
use crate::node::object::now_rfc3339;

/// NPD's default conditions: type, reason and message when healthy.
pub const CONDITIONS: [(&str, &str, &str); 2] = [
    (
        "KernelDeadlock",
        "KernelHasNoDeadlock",
        "kernel has no deadlock",
    ),
    (
        "ReadonlyFilesystem",
        "FilesystemIsNotReadOnly",
        "Filesystem is not read-only",
    ),
];

const REPORT_EVERY: Duration = Duration::from_secs(300);

fn conditions(
    problem: Option<&str>,
    heartbeat: &str,
    transitions: &std::collections::BTreeMap<String, String>,
) -> Value {
    let mut list: Vec<Value> = CONDITIONS
        .iter()
        .map(|(t, reason, message)| {
            let bad = problem == Some(*t);
            json!({
                "type": t,
                "status": if bad { "True" } else { "False" },
                "reason": if bad { *t } else { *reason },
                "message": if bad { "kubemark injected fault" } else { *message },
                "lastHeartbeatTime": heartbeat,
                "lastTransitionTime": transitions.get(*t).cloned().unwrap_or_default(),
            })
        })
        .collect();
    if let Some(p) = problem.filter(|p| !CONDITIONS.iter().any(|(t, _, _)| t == p)) {
        list.push(json!({
            "type": p, "status": "True", "reason": p, "message": "kubemark injected fault",
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": transitions.get(p).cloned().unwrap_or_default(),
        }));
    }
    Value::Array(list)
}

/// Runs the detector of one node until the task is dropped.
pub async fn run(ctx: Arc<NodeContext>) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let started = now_rfc3339();
    let mut transitions: std::collections::BTreeMap<String, String> = CONDITIONS
        .iter()
        .map(|(t, _, _)| (t.to_string(), started.clone()))
        .collect();
    let mut reported: Option<(Option<String>, tokio::time::Instant)> = None;
    loop {
        let at = tokio::time::Instant::now();
        let fault = ctx.fault();
        if !fault.partitioned(at) {
            let problem = match fault.at(at) {
                FaultKind::Problem(c) => Some(c.clone()),
                _ => None,
            };
            let changed = reported.as_ref().is_none_or(|(p, _)| *p != problem);
            let due = changed
                || reported
                    .as_ref()
                    .is_some_and(|(_, when)| when.elapsed() >= REPORT_EVERY);
            if due {
                let now = now_rfc3339();
                if changed {
                    let previous = reported.as_ref().and_then(|(p, _)| p.clone());
                    for t in [previous.as_deref(), problem.as_deref()]
                        .into_iter()
                        .flatten()
                    {
                        transitions.insert(t.to_string(), now.clone());
                    }
                    if let Some(p) = &problem {
                        Box::pin(event(&ctx, p)).await;
                    }
                }
                let body = json!({ "status": { "conditions": conditions(problem.as_deref(), &now, &transitions) } });
                ctx.limiter.acquire().await;
                // Boxed, as every request of a long-lived loop: inline, the request's state
                // (1.5 KiB) would stay part of the loop's for the node's whole life.
                let params = PatchParams::default();
                let patch = Patch::Strategic(&body);
                match Box::pin(nodes.patch_status(&ctx.name, &params, &patch)).await {
                    Ok(_) => reported = Some((problem, tokio::time::Instant::now())),
                    Err(e) => {
                        tracing::debug!(node = %ctx.name, error = %e, "problem detector update failed")
                    }
                }
            }
        }
        tokio::time::sleep(ctx.config.status_update_frequency).await;
    }
}

/// A Warning event on the Node, as NPD's kernel monitor emits for a problem.
async fn event(ctx: &NodeContext, problem: &str) {
    let now = now_rfc3339();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let event = json!({
        "metadata": { "name": format!("{}.{stamp:x}", ctx.name), "namespace": "default" },
        "involvedObject": { "kind": "Node", "name": ctx.name, "uid": ctx.name, "apiVersion": "v1" },
        "reason": problem, "message": format!("kubemark injected fault: {problem}"), "type": "Warning",
        "source": { "component": "kernel-monitor", "host": ctx.name },
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "reportingComponent": "kernel-monitor", "reportingInstance": ctx.name,
    });
    let Ok(event) = serde_json::from_value::<k8s_openapi::api::core::v1::Event>(event) else {
        return;
    };
    ctx.event_limiter.acquire().await;
    let api: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(ctx.client.clone(), "default");
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(node = %ctx.name, error = %e, "problem event failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_conditions_are_false_and_a_problem_turns_its_condition_true() {
        let t = std::collections::BTreeMap::new();
        let healthy = conditions(None, "h", &t);
        assert!(
            healthy
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["status"] == "False")
        );
        let sick = conditions(Some("KernelDeadlock"), "h", &t);
        let kd = sick
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "KernelDeadlock")
            .unwrap();
        assert_eq!(kd["status"], "True");
        let custom = conditions(Some("FrequentKubeletRestart"), "h", &t);
        assert_eq!(custom.as_array().unwrap().len(), 3);
    }
}
