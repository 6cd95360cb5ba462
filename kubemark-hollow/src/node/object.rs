//! The Node object and its status, as a kubelet of the control plane's version registers them.

use std::net::Ipv4Addr;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::NodeConfig;

/// Facts about the node that do not change while it runs.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    /// Node name.
    pub name: String,
    /// InternalIP.
    pub ip: Ipv4Addr,
    /// The kubelet API's port.
    pub kubelet_port: u16,
    /// kubeletVersion (the control plane's version).
    pub kubelet_version: String,
    /// bootID: new for every start of the process, as after a reboot.
    pub boot_id: String,
}

/// A stable per-node id (machineID, systemUUID) derived from the name.
pub fn stable_id(name: &str, salt: &str) -> String {
    let digest = Sha256::digest(format!("{salt}/{name}"));
    hex::encode(&digest[..16])
}

/// A node address in 100.64.0.0/10 derived from the name: unique enough across processes
/// without coordination, and never routable.
pub fn node_ip(name: &str) -> Ipv4Addr {
    let d = Sha256::digest(name.as_bytes());
    let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) & 0x003f_ffff;
    let ip = Ipv4Addr::from(0x6440_0000 | n);
    // Avoid network and broadcast-looking last octets.
    let o = ip.octets();
    if o[3] == 0 || o[3] == 255 {
        Ipv4Addr::new(o[0], o[1], o[2], 7)
    } else {
        ip
    }
}

/// A digest of a JSON value, to tell whether a status changed without keeping it.
pub fn digest(v: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

/// RFC 3339 at second precision, as the API server stores times.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The node conditions the kubelet reports (`ready` false: a kubelet whose runtime is down).
pub fn conditions(heartbeat: &str, transition: &str, ready: bool) -> Value {
    let c = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": heartbeat, "lastTransitionTime": transition,
        })
    };
    json!([
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        if ready {
            c(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            )
        } else {
            c(
                "Ready",
                "False",
                "KubeletNotReady",
                "container runtime is down (kubemark injected fault)",
            )
        },
    ])
}

/// The node's status (everything but conditions is constant).
pub fn status(
    facts: &NodeFacts,
    config: &NodeConfig,
    heartbeat: &str,
    transition: &str,
    ready: bool,
) -> Value {
    let capacity: serde_json::Map<String, Value> = config
        .capacity
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.0.clone())))
        .collect();
    json!({
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": conditions(heartbeat, transition, ready),
        "addresses": [
            { "type": "InternalIP", "address": facts.ip.to_string() },
            { "type": "Hostname", "address": facts.name },
        ],
        "daemonEndpoints": { "kubeletEndpoint": { "Port": facts.kubelet_port } },
        "nodeInfo": {
            "machineID": stable_id(&facts.name, "machine"),
            "systemUUID": stable_id(&facts.name, "system"),
            "bootID": facts.boot_id,
            "kernelVersion": "6.1.0-kubemark",
            "osImage": "Debian GNU/Linux 12 (bookworm) (kubemark hollow node)",
            "containerRuntimeVersion": "containerd://2.0.0-kubemark",
            "kubeletVersion": facts.kubelet_version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    })
}

/// The kubelet reports at most this many images (`nodeStatusMaxImages`).
pub const MAX_IMAGES: usize = 50;

/// `status.images` for the images the node's pods pulled: newest first, at most
/// [`MAX_IMAGES`], each with its digest reference and tag and a size stable per image.
pub fn images(images: &[Box<str>]) -> Value {
    Value::Array(
        images
            .iter()
            .rev()
            .take(MAX_IMAGES)
            .map(|image| {
                let d = Sha256::digest(image.as_bytes());
                // 2-130 MB: small images, as pause-like benchmark images are.
                let size = 2_000_000
                    + u64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]])) % 128_000_000;
                json!({
                    "names": [crate::pods::status::image_id(image), image],
                    "sizeBytes": size,
                })
            })
            .collect(),
    )
}

/// The Node a kubelet registers.
pub fn node(facts: &NodeFacts, config: &NodeConfig) -> Value {
    let now = now_rfc3339();
    let mut labels = serde_json::Map::new();
    for (k, v) in [
        ("beta.kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/hostname", facts.name.as_str()),
    ] {
        labels.insert(k.into(), Value::String(v.into()));
    }
    for (k, v) in &config.labels {
        labels.insert(k.clone(), Value::String(v.clone()));
    }
    let taints: Vec<Value> = config
        .taints
        .iter()
        .map(|t| json!({ "key": t.key, "value": t.value, "effect": t.effect }))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": facts.name,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": { "providerID": format!("kubemark://{}", facts.name), "taints": taints },
        "status": status(facts, config, &now, &now, true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_node_has_kubelet_labels_capacity_and_identity() {
        let facts = NodeFacts {
            name: "hollow-1".into(),
            ip: node_ip("hollow-1"),
            kubelet_port: 10250,
            kubelet_version: "v1.36.3".into(),
            boot_id: "b".into(),
        };
        let mut config = NodeConfig::default();
        config.labels.insert("pool".into(), "a".into());
        config.taints = crate::config::parse_taints("dedicated=x:NoSchedule").unwrap();
        let n = node(&facts, &config);
        assert_eq!(
            n["metadata"]["labels"]["kubernetes.io/hostname"],
            "hollow-1"
        );
        assert_eq!(n["metadata"]["labels"]["pool"], "a");
        assert_eq!(n["spec"]["providerID"], "kubemark://hollow-1");
        assert_eq!(n["spec"]["taints"][0]["effect"], "NoSchedule");
        assert_eq!(n["status"]["capacity"]["memory"], "4026531840");
        assert_eq!(n["status"]["allocatable"]["pods"], "110");
        assert_ne!(n["status"]["capacity"]["ephemeral-storage"], "0");
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.36.3");
        assert_eq!(
            n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
            10250
        );
        let parsed: k8s_openapi::api::core::v1::Node = serde_json::from_value(n).unwrap();
        assert_eq!(parsed.status.unwrap().conditions.unwrap().len(), 4);
        let ip = node_ip("hollow-1");
        assert!(
            ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1]),
            "{ip}"
        );
        assert_eq!(ip, node_ip("hollow-1"));
    }
}
