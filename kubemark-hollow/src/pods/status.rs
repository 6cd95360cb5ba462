//! Pod status as the kubelet writes it: phases, conditions, container statuses with IDs.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A container the hollow runtime "runs".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    /// Container name.
    pub name: Box<str>,
    /// Image as written in the spec.
    pub image: Box<str>,
    /// A sidecar (init container with `restartPolicy: Always`).
    pub sidecar: bool,
}

/// What a container is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Not started yet (`ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`).
    Waiting(&'static str),
    /// Running since.
    Running,
    /// Exited with a code.
    Terminated(i32),
}

/// Inputs of one status write.
#[derive(Debug, Clone)]
pub struct StatusView<'a> {
    /// Pod UID (container IDs derive from it).
    pub uid: &'a str,
    /// The node's IP.
    pub host_ip: &'a str,
    /// The pod's IP, once it has one.
    pub pod_ip: Option<&'a str>,
    /// When the kubelet accepted the pod.
    pub start_time: &'a str,
    /// Now.
    pub now: &'a str,
    /// State of the app containers.
    pub app: ContainerState,
    /// Restarts so far.
    pub restarts: u32,
    /// Readiness gates not yet True (by condition type).
    pub unmet_gates: &'a [String],
    /// The pod's generation, reported as `observedGeneration` of the status and its conditions.
    pub generation: Option<i64>,
    /// Add `PodScheduled: True` since this time (the pod was bound without the scheduler).
    pub scheduled_since: Option<&'a str>,
}

fn hex_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// `containerd://<64 hex>`, stable for a container instance (changes with each restart).
pub fn container_id(uid: &str, name: &str, restart: u32) -> String {
    format!(
        "containerd://{}",
        hex_id(&[uid, name, &restart.to_string()])
    )
}

/// `<repository>@sha256:<digest>`, stable per image.
pub fn image_id(image: &str) -> String {
    let repo = match image.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => image,
    };
    let repo = repo.split('@').next().unwrap_or(repo);
    format!("{repo}@sha256:{}", hex_id(&[image]))
}

fn state_json(state: &ContainerState, v: &StatusView<'_>, cid: &str) -> Value {
    match state {
        ContainerState::Waiting(reason) => json!({ "waiting": { "reason": reason } }),
        ContainerState::Running => json!({ "running": { "startedAt": v.start_time } }),
        ContainerState::Terminated(code) => json!({ "terminated": {
            "exitCode": code,
            "reason": if *code == 0 { "Completed" } else { "Error" },
            "startedAt": v.start_time,
            "finishedAt": v.now,
            "containerID": cid,
        }}),
    }
}

fn container_status(
    c: &ContainerRef,
    state: &ContainerState,
    restarts: u32,
    v: &StatusView<'_>,
) -> Value {
    let cid = container_id(v.uid, &c.name, restarts);
    let created = !matches!(
        state,
        ContainerState::Waiting(
            "ContainerCreating" | "PodInitializing" | "CreateContainerConfigError"
        )
    );
    let mut s = json!({
        "name": c.name,
        "image": c.image,
        "imageID": if created { image_id(&c.image) } else { String::new() },
        "ready": matches!(state, ContainerState::Running),
        "started": matches!(state, ContainerState::Running),
        "restartCount": restarts,
        "state": state_json(state, v, &cid),
        "lastState": {},
    });
    if created {
        s["containerID"] = Value::String(cid);
    }
    if restarts > 0 {
        let last = container_id(v.uid, &c.name, restarts - 1);
        s["lastState"] = json!({ "terminated": {
            "exitCode": 1, "reason": "Error", "startedAt": v.start_time, "finishedAt": v.now, "containerID": last,
        }});
    }
    s
}

fn condition(
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: &str,
) -> Value {
    let mut c = json!({ "type": type_, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now });
    if let Some(r) = reason {
        c["reason"] = Value::String(r.into());
    }
    if let Some(m) = message {
        c["message"] = Value::String(m);
    }
    c
}

/// The status for a pod whose app containers are in `v.app`.
pub fn pod_status(app: &[ContainerRef], init: &[ContainerRef], v: &StatusView<'_>) -> Value {
    let sandbox_ready = v.pod_ip.is_some() && !matches!(v.app, ContainerState::Terminated(_));
    let initialized = !matches!(
        v.app,
        ContainerState::Waiting("ContainerCreating" | "PodInitializing")
    );
    let running = matches!(v.app, ContainerState::Running);
    let terminated = match v.app {
        ContainerState::Terminated(code) => Some(code),
        _ => None,
    };
    let phase = match terminated {
        Some(0) => "Succeeded",
        Some(_) => "Failed",
        // A container that was never created (its config failed) leaves the pod Pending.
        None if initialized
            && !matches!(
                v.app,
                ContainerState::Waiting("ContainerCreating" | "CreateContainerConfigError")
            ) =>
        {
            "Running"
        }
        None => "Pending",
    };
    let not_ready = |what: &'static str| -> (Option<&'static str>, Option<String>) {
        if terminated.is_some() {
            return (Some("PodCompleted"), None);
        }
        let names: Vec<&str> = app.iter().map(|c| &*c.name).collect();
        (
            Some(what),
            Some(format!(
                "containers with unready status: [{}]",
                names.join(" ")
            )),
        )
    };
    let (cr_reason, cr_message) = if running {
        (None, None)
    } else {
        not_ready("ContainersNotReady")
    };
    let (ready, r_reason, r_message) = if !running {
        let (r, m) = not_ready("ContainersNotReady");
        (false, r, m)
    } else if let Some(gate) = v.unmet_gates.first() {
        (
            false,
            Some("ReadinessGatesNotReady"),
            Some(format!(
                "corresponding condition of pod readiness gate \"{gate}\" does not exist."
            )),
        )
    } else {
        (true, None, None)
    };
    let init_state = |c: &ContainerRef| -> ContainerState {
        match (&v.app, c.sidecar) {
            (ContainerState::Waiting("ContainerCreating"), _) => {
                ContainerState::Waiting("PodInitializing")
            }
            (ContainerState::Terminated(code), true) => ContainerState::Terminated(*code),
            (_, true) => ContainerState::Running,
            (_, false) => ContainerState::Terminated(0),
        }
    };
    let app_state = match &v.app {
        ContainerState::Waiting("ContainerCreating") if !init.is_empty() => {
            ContainerState::Waiting("PodInitializing")
        }
        other => other.clone(),
    };
    let mut init_statuses: Vec<Value> = init
        .iter()
        .map(|c| container_status(c, &init_state(c), 0, v))
        .collect();
    for (c, s) in init.iter().zip(init_statuses.iter_mut()) {
        if !c.sidecar && matches!(init_state(c), ContainerState::Terminated(0)) {
            s["ready"] = Value::Bool(true);
        }
    }
    let mut status = json!({
        "phase": phase,
        "hostIP": v.host_ip,
        "hostIPs": [{ "ip": v.host_ip }],
        "startTime": v.start_time,
        "conditions": [
            condition("PodReadyToStartContainers", sandbox_ready, None, None, v.now),
            condition("Initialized", initialized, (!initialized).then_some("ContainersNotInitialized"), None, v.now),
            condition("Ready", ready, r_reason, r_message, v.now),
            condition("ContainersReady", running, cr_reason, cr_message, v.now),
        ],
        "containerStatuses": app.iter().map(|c| container_status(c, &app_state, v.restarts, v)).collect::<Vec<_>>(),
    });
    if let Some(since) = v.scheduled_since
        && let Some(conditions) = status["conditions"].as_array_mut()
    {
        conditions.push(condition("PodScheduled", true, None, None, since));
    }
    if let Some(generation) = v.generation {
        status["observedGeneration"] = generation.into();
        for c in status["conditions"].as_array_mut().into_iter().flatten() {
            c["observedGeneration"] = generation.into();
        }
    }
    if !init.is_empty() {
        status["initContainerStatuses"] = Value::Array(init_statuses);
    }
    if let Some(ip) = v.pod_ip {
        status["podIP"] = Value::String(ip.into());
        status["podIPs"] = json!([{ "ip": ip }]);
    }
    status
}

/// The condition types the hollow kubelet writes, in the order it writes them.
const CONDITION_TYPES: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// Each written condition's status (True?) and its `lastTransitionTime` (RFC 3339 to the second,
/// 20 bytes), by [`CONDITION_TYPES`] index: fixed size, no allocation per pod.
pub type Transitions = [Option<(bool, [u8; 20])>; 5];

/// As the kubelet: a condition whose status did not change since the last write keeps its
/// `lastTransitionTime`; one that changed (or is new) gets the time in `status` and is
/// remembered.
pub fn keep_transition_times(status: &mut Value, seen: &mut Transitions) {
    for c in status["conditions"].as_array_mut().into_iter().flatten() {
        let Some(i) = CONDITION_TYPES.iter().position(|t| c["type"] == *t) else {
            continue;
        };
        let is_true = c["status"] == "True";
        match seen[i] {
            Some((was, since)) if was == is_true => {
                if let Ok(since) = std::str::from_utf8(&since) {
                    c["lastTransitionTime"] = Value::String(since.into());
                }
            }
            _ => {
                let time = c["lastTransitionTime"].as_str().unwrap_or_default();
                seen[i] = time
                    .as_bytes()
                    .try_into()
                    .ok()
                    .map(|since: [u8; 20]| (is_true, since));
            }
        }
    }
}

/// The status of a pod the kubelet rejected at admission.
pub fn rejected(reason: &str, message: &str) -> Value {
    json!({ "phase": "Failed", "reason": reason, "message": message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, sidecar: bool) -> ContainerRef {
        ContainerRef {
            name: name.into(),
            image: "registry.k8s.io/pause:3.10".into(),
            sidecar,
        }
    }

    fn view(app: ContainerState, gates: &[String]) -> StatusView<'_> {
        StatusView {
            uid: "u",
            host_ip: "100.64.0.1",
            pod_ip: Some("10.64.0.2"),
            start_time: "2026-01-01T00:00:00Z",
            now: "2026-01-01T00:00:01Z",
            app,
            restarts: 0,
            unmet_gates: gates,
            generation: None,
            scheduled_since: None,
        }
    }

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_changes() {
        let mut seen = Transitions::default();
        let at = |app: ContainerState, now: &'static str| StatusView {
            now,
            ..view(app, &[])
        };
        let apps = [c("app", false)];
        let time = |s: &Value, t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()["lastTransitionTime"]
                .clone()
        };
        let v1 = at(
            ContainerState::Waiting("ContainerCreating"),
            "2026-01-01T00:00:01Z",
        );
        let mut first = pod_status(&apps, &[], &v1);
        keep_transition_times(&mut first, &mut seen);
        let v2 = at(ContainerState::Running, "2026-01-01T00:00:09Z");
        let mut running = pod_status(&apps, &[], &v2);
        keep_transition_times(&mut running, &mut seen);
        // PodReadyToStartContainers stayed True: its time holds; Ready became True: new time.
        assert_eq!(
            time(&running, "PodReadyToStartContainers"),
            "2026-01-01T00:00:01Z"
        );
        assert_eq!(time(&running, "Ready"), "2026-01-01T00:00:09Z");
        let v3 = at(ContainerState::Terminated(0), "2026-01-01T00:00:30Z");
        let mut done = pod_status(&apps, &[], &v3);
        keep_transition_times(&mut done, &mut seen);
        assert_eq!(time(&done, "Initialized"), "2026-01-01T00:00:09Z");
        assert_eq!(time(&done, "Ready"), "2026-01-01T00:00:30Z");
    }

    #[test]
    fn the_status_reports_the_generation_and_a_bound_pods_scheduled_condition() {
        let plain = pod_status(&[c("app", false)], &[], &view(ContainerState::Running, &[]));
        assert!(plain.get("observedGeneration").is_none());
        assert!(
            !plain["conditions"].to_string().contains("PodScheduled"),
            "the scheduler's condition is left alone"
        );
        let v = StatusView {
            generation: Some(2),
            scheduled_since: Some("2026-01-01T00:00:00Z"),
            ..view(ContainerState::Terminated(0), &[])
        };
        let s = pod_status(&[c("app", false)], &[], &v);
        assert_eq!(s["observedGeneration"], 2);
        let conditions = s["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 5);
        assert!(conditions.iter().all(|c| c["observedGeneration"] == 2));
        let scheduled = conditions.last().unwrap();
        assert_eq!(
            (
                &scheduled["type"],
                &scheduled["status"],
                &scheduled["lastTransitionTime"]
            ),
            (
                &json!("PodScheduled"),
                &json!("True"),
                &json!("2026-01-01T00:00:00Z")
            )
        );
    }

    #[test]
    fn running_pod_is_ready_with_ids_and_completed_init_and_running_sidecar() {
        let s = pod_status(
            &[c("app", false)],
            &[c("init", false), c("side", true)],
            &view(ContainerState::Running, &[]),
        );
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.64.0.2");
        let cond = |t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()["status"]
                .clone()
        };
        assert_eq!(cond("Ready"), "True");
        assert_eq!(cond("Initialized"), "True");
        let app = &s["containerStatuses"][0];
        assert!(
            app["containerID"]
                .as_str()
                .unwrap()
                .starts_with("containerd://")
        );
        assert_eq!(
            app["containerID"].as_str().unwrap().len(),
            "containerd://".len() + 64
        );
        assert_eq!(
            app["imageID"].as_str().unwrap().split('@').next().unwrap(),
            "registry.k8s.io/pause"
        );
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert!(
            s["initContainerStatuses"][1]["state"]["running"].is_object(),
            "sidecars keep running"
        );
    }

    #[test]
    fn readiness_gates_hold_ready_and_terminal_phases_follow_exit_codes() {
        let gates = vec!["example.com/gate".to_string()];
        let s = pod_status(
            &[c("app", false)],
            &[],
            &view(ContainerState::Running, &gates),
        );
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ReadinessGatesNotReady");
        assert_eq!(
            pod_status(
                &[c("a", false)],
                &[],
                &view(ContainerState::Terminated(0), &[])
            )["phase"],
            "Succeeded"
        );
        assert_eq!(
            pod_status(
                &[c("a", false)],
                &[],
                &view(ContainerState::Terminated(2), &[])
            )["phase"],
            "Failed"
        );
        assert_eq!(
            pod_status(
                &[c("a", false)],
                &[],
                &view(ContainerState::Waiting("ContainerCreating"), &[])
            )["phase"],
            "Pending"
        );
        assert_eq!(
            pod_status(
                &[c("a", false)],
                &[],
                &view(ContainerState::Waiting("CrashLoopBackOff"), &[])
            )["phase"],
            "Running"
        );
    }
}
