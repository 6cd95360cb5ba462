//! What a hollow node looks like: resources, labels, taints, timings. Parsed from upstream
//! kubemark's flag syntax, usable directly from Rust.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A flag value that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid {flag} value {value:?}: {reason}")]
pub struct ConfigError {
    /// The flag.
    pub flag: &'static str,
    /// The value given.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

fn err(flag: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        flag,
        value: value.into(),
        reason: reason.into(),
    }
}

/// Memory of upstream's hollow node (cAdvisor fake: 3.75 GiB).
pub const DEFAULT_MEMORY_BYTES: u64 = 4_026_531_840;

/// Everything that shapes the hollow nodes of one process.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Extra node labels (`--node-labels`).
    pub labels: BTreeMap<String, String>,
    /// Taints to register with (`--register-with-taints`).
    pub taints: Vec<Taint>,
    /// Capacity (cpu, memory, pods, ephemeral-storage, and extended resources).
    pub capacity: BTreeMap<String, Quantity>,
    /// Lease duration (`--node-lease-duration-seconds`); renewed every quarter of it.
    pub lease_duration: Duration,
    /// How often node status is computed.
    pub status_update_frequency: Duration,
    /// How often an unchanged node status is written anyway.
    pub status_report_frequency: Duration,
    /// Client QPS per node (`--kube-api-qps`); leases are not throttled, as in the kubelet.
    pub qps: f64,
    /// Client burst per node (`--kube-api-burst`).
    pub burst: u32,
    /// Event QPS per node, a separate budget as the kubelet's event recorder has.
    pub event_qps: f64,
    /// Event burst per node.
    pub event_burst: u32,
    /// Emit the kubelet's events as it does: pod lifecycle (Pulled, Created, Started, Killing) and
    /// the node's (Starting, the pressure conditions it registers with, NodeAllocatableEnforced,
    /// NodeReady / NodeNotReady). kube-proxy's and node-problem-detector's are not covered.
    pub events: bool,
    /// How long the containers of a Job's pod run when neither an annotation nor their
    /// command says (`None`: until deleted).
    pub job_run_duration: Option<Duration>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        let capacity = BTreeMap::from([
            ("cpu".to_string(), Quantity("1".into())),
            (
                "memory".to_string(),
                Quantity(DEFAULT_MEMORY_BYTES.to_string()),
            ),
            ("pods".to_string(), Quantity("110".into())),
            ("ephemeral-storage".to_string(), Quantity("100Gi".into())),
        ]);
        Self {
            labels: BTreeMap::new(),
            taints: Vec::new(),
            capacity,
            lease_duration: Duration::from_secs(40),
            status_update_frequency: Duration::from_secs(10),
            status_report_frequency: Duration::from_secs(300),
            // The kubelet's defaults (KubeletConfiguration v1beta1), not upstream kubemark's 10/20.
            qps: 50.0,
            burst: 100,
            event_qps: 50.0,
            event_burst: 100,
            events: true,
            job_run_duration: Some(Duration::from_secs(5)),
        }
    }
}

impl NodeConfig {
    /// Sets the pod capacity (`--max-pods`).
    pub fn set_max_pods(&mut self, max_pods: u32) {
        self.capacity
            .insert("pods".into(), Quantity(max_pods.to_string()));
    }
}

/// Parses `k=v,k2=v2` (`--node-labels`).
pub fn parse_labels(value: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut labels = BTreeMap::new();
    for pair in value.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| err("--node-labels", value, "expected key=value"))?;
        if k.is_empty() {
            return Err(err("--node-labels", value, "empty key"));
        }
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(labels)
}

/// Parses `key[=value]:Effect,...` (`--register-with-taints`).
pub fn parse_taints(value: &str) -> Result<Vec<Taint>, ConfigError> {
    let mut taints = Vec::new();
    for item in value.split(',').filter(|p| !p.is_empty()) {
        let (kv, effect) = item
            .rsplit_once(':')
            .ok_or_else(|| err("--register-with-taints", value, "expected key=value:Effect"))?;
        if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            return Err(err(
                "--register-with-taints",
                value,
                format!("unknown effect {effect}"),
            ));
        }
        let (key, val) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (kv, None),
        };
        if key.is_empty() {
            return Err(err("--register-with-taints", value, "empty key"));
        }
        taints.push(Taint {
            key: key.into(),
            value: val,
            effect: effect.into(),
            time_added: None,
        });
    }
    Ok(taints)
}

/// Parses `name=quantity,...` (`--extended-resources`); may override cpu and memory.
pub fn parse_resources(value: &str) -> Result<BTreeMap<String, Quantity>, ConfigError> {
    let mut resources = BTreeMap::new();
    for pair in value.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| err("--extended-resources", value, "expected name=quantity"))?;
        crate::quantity::parse(v).ok_or_else(|| {
            err(
                "--extended-resources",
                value,
                format!("{v} is not a quantity"),
            )
        })?;
        resources.insert(k.to_string(), Quantity(v.to_string()));
    }
    Ok(resources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_taints_and_resources_parse_like_upstream() {
        let l = parse_labels("a=b,c.io/d=").unwrap();
        assert_eq!(l["a"], "b");
        assert_eq!(l["c.io/d"], "");
        assert!(parse_labels("novalue").is_err());

        let t = parse_taints("dedicated=infra:NoSchedule,gpu:NoExecute").unwrap();
        assert_eq!(
            (
                t[0].key.as_str(),
                t[0].value.as_deref(),
                t[0].effect.as_str()
            ),
            ("dedicated", Some("infra"), "NoSchedule")
        );
        assert_eq!((t[1].key.as_str(), t[1].value.as_deref()), ("gpu", None));
        assert!(parse_taints("a=b:Sometimes").is_err());

        let r = parse_resources("nvidia.com/gpu=8,cpu=96,memory=48000Mi").unwrap();
        assert_eq!(r["cpu"].0, "96");
        assert!(parse_resources("cpu=lots").is_err());
    }
}
