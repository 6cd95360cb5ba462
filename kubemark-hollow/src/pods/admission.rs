//! Kubelet admission by resources: a pod that does not fit the node's allocatable, given the
//! pods already admitted, is rejected with the kubelet's reason (`OutOfcpu`, `OutOfmemory`,
//! `OutOfpods`, `OutOf<resource>`) and message.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::quantity;

/// Resource requests in milli-units by resource name (`cpu`, `memory`, extended resources).
pub type Requests = BTreeMap<String, i128>;

pub(crate) fn container_requests(c: &Container) -> Requests {
    let mut r = Requests::new();
    if let Some(res) = &c.resources {
        // Requests default to limits when only limits are given, as the API server defaults them.
        for map in [res.limits.as_ref(), res.requests.as_ref()]
            .into_iter()
            .flatten()
        {
            for (k, v) in map {
                if let Some(q) = quantity::parse(&v.0) {
                    r.insert(k.clone(), q);
                }
            }
        }
    }
    r
}

fn add(into: &mut Requests, from: &Requests) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

/// The effective requests of a pod: the larger of (sum of app containers and sidecars) and
/// (each init container plus the sidecars started before it), plus overhead.
pub fn pod_requests(pod: &Pod) -> Requests {
    let Some(spec) = &pod.spec else {
        return Requests::new();
    };
    let mut total = Requests::new();
    for c in &spec.containers {
        add(&mut total, &container_requests(c));
    }
    let mut sidecars = Requests::new();
    let mut init_max = Requests::new();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        if c.restart_policy.as_deref() == Some("Always") {
            add(&mut sidecars, &r);
            add(&mut total, &r);
        } else {
            let mut with_sidecars = sidecars.clone();
            add(&mut with_sidecars, &r);
            for (k, v) in with_sidecars {
                let e = init_max.entry(k).or_default();
                *e = (*e).max(v);
            }
        }
    }
    for (k, v) in init_max {
        let e = total.entry(k).or_default();
        *e = (*e).max(v);
    }
    for (k, v) in spec.overhead.iter().flatten() {
        if let Some(q) = quantity::parse(&v.0) {
            *total.entry(k.clone()).or_default() += q;
        }
    }
    total
}

/// A rejection, as the kubelet words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `OutOfcpu`, `OutOfmemory`, `OutOfpods`, ...
    pub reason: String,
    /// `Pod was rejected: Node didn't have enough resource: cpu, requested: 2000, used: 0, capacity: 1000`
    pub message: String,
}

fn shown(resource: &str, milli: i128) -> i128 {
    // The kubelet prints CPU in millicores and everything else in whole units.
    if resource == "cpu" {
        milli
    } else {
        milli / 1000
    }
}

/// Checks `requests` against `allocatable` given `used` by admitted pods and `pods` admitted.
pub fn admit(
    requests: &Requests,
    used: &Requests,
    pods: usize,
    allocatable: &Requests,
) -> Result<(), Rejection> {
    let max_pods = allocatable.get("pods").copied().unwrap_or(110_000) / 1000;
    if pods as i128 + 1 > max_pods {
        return Err(Rejection {
            reason: "OutOfpods".into(),
            message: format!(
                "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: {pods}, capacity: {max_pods}"
            ),
        });
    }
    for (resource, want) in requests {
        if *want == 0 || resource == "pods" {
            continue;
        }
        let have = allocatable.get(resource).copied().unwrap_or(0);
        let in_use = used.get(resource).copied().unwrap_or(0);
        if in_use + want > have {
            return Err(Rejection {
                reason: format!("OutOf{resource}"),
                message: format!(
                    "Pod was rejected: Node didn't have enough resource: {resource}, requested: {}, used: {}, capacity: {}",
                    shown(resource, *want),
                    shown(resource, in_use),
                    shown(resource, have)
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn requests_follow_init_and_sidecar_rules() {
        let p = pod(serde_json::json!({"spec": {
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
                           {"name": "b", "resources": {"limits": {"cpu": "200m"}}}],
            "initContainers": [{"name": "big", "resources": {"requests": {"cpu": "900m"}}},
                               {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}}],
        }}));
        let r = pod_requests(&p);
        assert_eq!(r["cpu"], 900, "the big init container dominates 300m+50m");
        assert_eq!(r["memory"], (1i128 << 30) * 1000);
    }

    #[test]
    fn rejections_use_the_kubelets_reasons() {
        let alloc = Requests::from([
            ("cpu".into(), 1000),
            ("memory".into(), 4_000_000),
            ("pods".into(), 2000),
        ]);
        let want = Requests::from([("cpu".into(), 2000)]);
        let err = admit(&want, &Requests::new(), 0, &alloc).unwrap_err();
        assert_eq!(err.reason, "OutOfcpu");
        assert!(
            err.message
                .ends_with("cpu, requested: 2000, used: 0, capacity: 1000"),
            "{}",
            err.message
        );
        let err = admit(&Requests::new(), &Requests::new(), 2, &alloc).unwrap_err();
        assert_eq!(err.reason, "OutOfpods");
        let want = Requests::from([("memory".into(), 3_000_000)]);
        let used = Requests::from([("memory".into(), 2_000_000)]);
        assert_eq!(
            admit(&want, &used, 1, &alloc).unwrap_err().reason,
            "OutOfmemory"
        );
        assert!(admit(&want, &Requests::new(), 1, &alloc).is_ok());
    }
}
