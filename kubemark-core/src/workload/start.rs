//! What every run finds out at its start: an id for its names, the time, the API server's
//! version and how many nodes it can run pods on.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use super::error::WorkloadError;

/// A random suffix that makes a run's names unique.
pub fn run_id() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// RFC 3339 now (whole seconds) and the API server's version.
pub async fn started(client: &kube::Client) -> Result<(String, String), WorkloadError> {
    let now = time::OffsetDateTime::now_utc();
    let at = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)?;
    let version = client
        .apiserver_version()
        .await
        .map_err(WorkloadError::api("reading the API server version"))?
        .git_version;
    Ok((at, version))
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Ready nodes without `spec.unschedulable`: where test pods can go. None is an error.
pub async fn schedulable_nodes(client: &kube::Client) -> Result<usize, WorkloadError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let n = nodes
        .list(&ListParams::default())
        .await
        .map_err(WorkloadError::api("listing nodes"))?
        .items
        .iter()
        .filter(|n| {
            is_ready(n)
                && !n
                    .spec
                    .as_ref()
                    .and_then(|s| s.unschedulable)
                    .unwrap_or(false)
        })
        .count();
    if n == 0 {
        return Err(WorkloadError::NoSchedulableNodes);
    }
    Ok(n)
}
