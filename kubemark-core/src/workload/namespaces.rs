//! The namespaces a run creates, labelled so that an interrupted run finds and deletes them.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams};

use super::error::WorkloadError;
use super::progress::Progress;

/// The label that names the run (this process) that created a namespace.
const RUN_LABEL: &str = "kubemark.io/run";

/// This process's id as the run label says it.
fn process_run() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        format!("{now}-{}", std::process::id())
    })
}

/// Creates a namespace labelled as test `test`'s and this process's.
pub async fn create_namespace(
    client: &kube::Client,
    name: &str,
    test: &str,
) -> Result<(), WorkloadError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "labels": { "kubemark.io/test": test, RUN_LABEL: process_run() } }
    }))?;
    namespaces
        .create(&Default::default(), &ns)
        .await
        .map_err(WorkloadError::api(format!(
            "creating the test namespace {name}"
        )))?;
    Ok(())
}

/// The namespaces runs of this process created: what to delete when it is interrupted.
pub async fn run_namespaces(client: &kube::Client) -> Result<Vec<String>, WorkloadError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let selector = format!("{RUN_LABEL}={}", process_run());
    let list = namespaces
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(WorkloadError::api("listing the run's namespaces"))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect())
}

/// Deletes the namespaces and waits up to `timeout` until they are gone.
pub async fn delete_namespaces(
    client: &kube::Client,
    names: &[String],
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<(), WorkloadError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let spinner = progress.spinner(&format!(
        "deleting namespace{} {}",
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    ));
    for ns in names {
        match namespaces.delete(ns, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(WorkloadError::api(format!("deleting namespace {ns}"))(e)),
        }
    }
    let gone = async {
        for ns in names {
            while namespaces.get_opt(ns).await.ok().flatten().is_some() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    if tokio::time::timeout(timeout, gone).await.is_err() {
        spinner.abandon();
        return Err(WorkloadError::NamespacesRemain {
            names: names.to_vec(),
            seconds: timeout.as_secs(),
        });
    }
    spinner.finish(&format!("deleted {}", names.join(", ")));
    Ok(())
}
