//! Hollow nodes as pods on an external cluster (`--external-kubeconfig`): deploy them with
//! `kubemark_core::deploy`, wait until they are Ready on the kubemark master (naming, on timeout,
//! the external pods that are not Running and why), and remove them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kubemark_core::cluster::Cluster;
use kubemark_core::deploy::{self, DeploySpec};
use kubemark_core::master::{BootstrapToken, client_from_kubeconfig, ensure_node_bootstrap};

pub use crate::config::ExternalConfig;

/// What `stop` needs to remove the deployment, recorded in the cluster's state.
pub type ExternalRecord = kubemark_core::cluster::ExternalDeployment;

/// Resolves the deployment's settings; `None` when no external cluster is configured.
pub fn record(cfg: &ExternalConfig, nodes: usize) -> anyhow::Result<Option<ExternalRecord>> {
    let Some(kubeconfig) = &cfg.kubeconfig else {
        return Ok(None);
    };
    if !kubeconfig.is_file() {
        bail!(
            "external cluster kubeconfig {} does not exist",
            kubeconfig.display()
        );
    }
    let nodes_per_pod = cfg.nodes_per_pod.unwrap_or(10).min(nodes.max(1));
    Ok(Some(ExternalRecord {
        kubeconfig: std::path::absolute(kubeconfig)?,
        namespace: cfg.namespace.clone().unwrap_or_else(|| "kubemark".into()),
        nodes,
        nodes_per_pod,
    }))
}

/// Deploys the hollow nodes and waits until they are Ready.
pub async fn deploy(
    cluster: &Cluster,
    cfg: &ExternalConfig,
    rec: &ExternalRecord,
    flags: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let Some(image) = &cfg.image else {
        bail!(
            "hollow nodes on an external cluster need an image with kubemark: --image, KUBEMARK_IMAGE or external.image (`kubemark image push --provider gce|aws` pushes one to the provider's registry and prints its reference)"
        );
    };
    let master = cluster.client().await?;
    let server = cluster.server().context("the master has no address")?;
    if server.contains("://127.") || server.contains("://[::1]") {
        eprintln!(
            "warning: the master's address {server} is loopback: only pods on this machine can reach it"
        );
    }
    let external = client_from_kubeconfig(&rec.kubeconfig)
        .await
        .with_context(|| format!("external cluster {}", rec.kubeconfig.display()))?;
    let token = BootstrapToken::generate();
    ensure_node_bootstrap(&master, &token, Duration::from_secs(24 * 3600))
        .await
        .context("installing the bootstrap token on the master")?;
    let pki = cluster.pki_dir();
    let ca = std::fs::read_to_string(pki.join("ca.crt"))?;
    // A master kubemark did not create gives no kube-proxy identity: no hollow proxies then.
    let proxy = if pki.join("kube-proxy.crt").exists() {
        let k = kubemark_core::pki::Kubeconfig {
            name: "kube-proxy".into(),
            server: server.to_string(),
            ca_pem: ca.clone(),
            credentials: kubemark_core::pki::KubeconfigCredentials::ClientCert(
                kubemark_core::pki::CertAndKey {
                    cert_pem: std::fs::read_to_string(pki.join("kube-proxy.crt"))?,
                    key_pem: std::fs::read_to_string(pki.join("kube-proxy.key"))?,
                },
            ),
        };
        Some(k.to_yaml()?)
    } else {
        None
    };
    let spec = DeploySpec {
        cluster: cluster.state().cluster.clone(),
        namespace: rec.namespace.clone(),
        image: image.clone(),
        nodes: rec.nodes,
        nodes_per_pod: rec.nodes_per_pod,
        bootstrap_kubeconfig: token.kubeconfig(server, &ca).to_yaml()?,
        proxy_kubeconfig: proxy,
        settings: Default::default(),
        extra_flags: flags.split_whitespace().map(String::from).collect(),
        cpu_millis_per_node: cfg.cpu_millis_per_node.unwrap_or(5),
        memory_mib_per_node: cfg.memory_mib_per_node.unwrap_or(4),
        kubelet_serving_ca: kubelet_serving_ca(&pki)?,
    };
    let spinner = crate::progress::Spinner::start(&format!(
        "deploying {} hollow-node pods ({} nodes each) into namespace {} of the external cluster",
        spec.pods(),
        spec.nodes_per_pod.min(spec.nodes),
        spec.namespace
    ));
    if let Err(e) = deploy::apply(&external, &spec).await {
        spinner.abandon();
        return Err(e.into());
    }
    spinner.finish("hollow-node pods deployed");
    wait_ready(&master, &external, &spec, timeout).await
}

async fn wait_ready(
    master: &kube::Client,
    external: &kube::Client,
    spec: &DeploySpec,
    timeout: Duration,
) -> anyhow::Result<()> {
    let names: BTreeSet<String> = spec.all_node_names().into_iter().collect();
    let progress = super::nodes::ReadyProgress::new(names.len());
    let start = Instant::now();
    let watch = super::nodes::ReadyWatch::start(master);
    loop {
        let ready = watch.ready_among(&names);
        progress.set(ready.len(), start);
        if ready.len() == names.len() {
            progress.finish(names.len(), start);
            return Ok(());
        }
        if start.elapsed() > timeout {
            progress.abandon();
            let pods = deploy::pods(external, &spec.namespace).await?;
            let mut bad: Vec<String> = pods
                .iter()
                .filter(|p| p.phase != "Running" || p.reason.is_some())
                .map(|p| {
                    format!(
                        "{} ({}{}{})",
                        p.name,
                        p.phase,
                        p.node
                            .as_ref()
                            .map(|n| format!(" on {n}"))
                            .unwrap_or_default(),
                        p.reason
                            .as_ref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    )
                })
                .collect();
            let missing_pods = spec.pods().saturating_sub(pods.len());
            if missing_pods > 0 {
                bad.push(format!("{missing_pods} pods not created yet"));
            }
            bad.truncate(10);
            bail!(
                "{} of {} hollow nodes not Ready after {}s; external pods not Running: {} (the cluster keeps running, `kubemark stop` removes it)",
                names.len() - ready.len(),
                names.len(),
                timeout.as_secs(),
                if bad.is_empty() {
                    "none (all Running; see their logs)".to_string()
                } else {
                    bad.join("; ")
                }
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `kubemark debug hollow-node NODE`: the external pod that runs a hollow node.
pub async fn describe_node(rec: &ExternalRecord, node: &str) -> anyhow::Result<String> {
    let Some(pod) = deploy::pod_of(node) else {
        bail!("{node} is not a hollow node of this cluster (names are hollow-node-<pod>-<k>)");
    };
    let external = client_from_kubeconfig(&rec.kubeconfig).await?;
    let pods = deploy::pods(&external, &rec.namespace).await?;
    let Some(p) = pods.into_iter().find(|p| p.name == pod) else {
        bail!(
            "hollow node {node} should run in pod {}/{pod}, which does not exist",
            rec.namespace
        );
    };
    Ok(format!(
        "hollow node {node}: pod {}/{} on external node {} ({}{})",
        rec.namespace,
        p.name,
        p.node.as_deref().unwrap_or("<not scheduled>"),
        p.phase,
        p.reason.map(|r| format!(": {r}")).unwrap_or_default()
    ))
}

/// A spec with the recorded shape, for naming nodes and pods.
/// The kubelet serving CA of a PKI kubemark made (none for a master it did not create).
fn kubelet_serving_ca(
    pki: &std::path::Path,
) -> anyhow::Result<Option<kubemark_core::pki::CertAndKey>> {
    use kubemark_core::pki::file_names::{KUBELET_SERVING_CA_CRT, KUBELET_SERVING_CA_KEY};
    let (cert, key) = (
        pki.join(KUBELET_SERVING_CA_CRT),
        pki.join(KUBELET_SERVING_CA_KEY),
    );
    if !cert.exists() || !key.exists() {
        return Ok(None);
    }
    Ok(Some(kubemark_core::pki::CertAndKey {
        cert_pem: std::fs::read_to_string(cert)?,
        key_pem: std::fs::read_to_string(key)?,
    }))
}

/// The deployment's shape (names and pod count).
pub fn spec_shape(rec: &ExternalRecord) -> DeploySpec {
    rec.shape()
}
