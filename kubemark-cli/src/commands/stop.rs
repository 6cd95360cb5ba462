//! `kubemark stop`.

use std::path::Path;

use anyhow::Context;
use kubemark_core::master::{pids_mentioning, terminate_pid};
use kubemark_core::provider::{DynProvider, LOCAL};
use kubemark_core::registry::ProviderRegistry;

use crate::cli::StopArgs;
use crate::providers;
use crate::state::{self, Known};

pub async fn run(args: StopArgs, registry: &ProviderRegistry) -> anyhow::Result<()> {
    let dir = state::cluster_dir(&args.cluster)?;
    if args.dry_run {
        return dry_run(&args, &dir, registry).await;
    }
    if state::load(&dir)?.is_none()
        && let Some(name) = &args.provider
        && name != LOCAL
    {
        // No state: find what the provider has tagged as this cluster's.
        let cluster = kubemark_core::provider::ClusterName::new(args.cluster.cluster.clone())?;
        let provider = providers::build(registry, name, &args.provider_settings)?;
        let report = kubemark_core::provider::ProviderExt::teardown(
            provider.as_ref(),
            &cluster,
            Default::default(),
        )
        .await?;
        for r in &report.resources {
            println!("deleted {} {} ({})", r.role, r.name, r.id);
        }
        println!(
            "kubemark cluster {cluster}: no state; deleted {} resource(s) tagged as its own by {}",
            report.resources.len(),
            provider.name()
        );
        return Ok(());
    }
    match state::load(&dir)? {
        Some(known) => {
            let name = known.cluster.state().cluster.clone();
            let provider =
                providers::from_state(registry, known.cluster.state(), &args.provider_settings)?;
            stop_known(known, provider, &dir).await?;
            println!("kubemark cluster {name} stopped");
        }
        None => {
            // Hollow nodes of a start that crashed before its first record are found by the
            // directory their command line names.
            stop_hollow_by_marker(&dir).await;
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", dir.display()));
                }
                _ => {}
            }
            println!(
                "no kubemark cluster {} (state dir {}): nothing to stop",
                args.cluster.cluster,
                dir.display()
            );
        }
    }
    Ok(())
}

/// Lists what stop would delete: the provider's tagged resources (by tags, without the state)
/// and what the state records.
async fn dry_run(args: &StopArgs, dir: &Path, registry: &ProviderRegistry) -> anyhow::Result<()> {
    let cluster = kubemark_core::provider::ClusterName::new(args.cluster.cluster.clone())?;
    let known = state::load(dir)?;
    let provider = match (&known, &args.provider) {
        (_, Some(name)) => providers::build(registry, name, &args.provider_settings)?,
        (Some(k), None) => {
            providers::from_state(registry, k.cluster.state(), &args.provider_settings)?
        }
        (None, None) => providers::build(registry, LOCAL, &[])?,
    };
    let report = kubemark_core::provider::ProviderExt::teardown(
        provider.as_ref(),
        &cluster,
        kubemark_core::provider::TeardownOptions { dry_run: true },
    )
    .await?;
    println!("kubemark stop would delete (dry run, nothing deleted):");
    for r in &report.resources {
        println!("  {} {}: {} ({})", provider.name(), r.role, r.name, r.id);
    }
    if let Some(k) = &known {
        let s = k.cluster.state();
        println!("  master: {:?} (phase {:?})", s.master, s.phase);
        if let Some(h) = k.record.as_ref().and_then(|r| r.hollow.as_ref()) {
            println!("  hollow-node process {} ({} nodes)", h.pid, h.count);
        }
        if let Some(e) = k.record.as_ref().and_then(|r| r.external.as_ref()) {
            println!(
                "  namespace {} on the external cluster {}",
                e.namespace,
                e.kubeconfig.display()
            );
        }
        println!("  state {}", dir.display());
    } else if report.resources.is_empty() {
        println!(
            "  nothing: no state in {} and no resource tagged as {cluster}'s",
            dir.display()
        );
    }
    Ok(())
}

async fn stop_hollow_by_marker(dir: &Path) {
    let marker = dir.join("hollow").display().to_string();
    for pid in pids_mentioning(&marker) {
        terminate_pid(pid, &marker, std::time::Duration::from_secs(10)).await;
    }
}

/// Stops what a start left, in reverse: hollow nodes, the user's kubeconfig, the master and the
/// provider's resources, the state directory. Safe to repeat.
pub async fn stop_known(known: Known, provider: DynProvider, dir: &Path) -> anyhow::Result<()> {
    // Nodes first: their watches would otherwise hold the API server's graceful shutdown.
    if let Some(h) = known.record.as_ref().and_then(|r| r.hollow.as_ref()) {
        super::nodes::stop(h).await;
    }
    stop_hollow_by_marker(dir).await;
    if let Some(ext) = known.record.as_ref().and_then(|r| r.external.as_ref()) {
        super::external::teardown(&known.cluster.state().cluster, ext)
            .await
            .context("removing the hollow-node pods from the external cluster")?;
    }
    if let Some(r) = &known.record {
        match std::fs::remove_file(&r.kubeconfig) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", r.kubeconfig.display()));
            }
            _ => {}
        }
    }
    if matches!(
        known.cluster.state().master,
        kubemark_core::cluster::MasterState::Existing { .. }
    ) {
        // The master stays; what kubemark put on it goes: the hollow Nodes and the bootstrap
        // token with its bindings.
        clean_existing_master(&known).await?;
    }
    let name = known.cluster.state().cluster.clone();
    known
        .cluster
        .stop(provider)
        .await
        .with_context(|| format!("stopping cluster {name}"))?;
    Ok(())
}

async fn clean_existing_master(known: &Known) -> anyhow::Result<()> {
    let client = match known.cluster.client().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warning: cannot reach the running master to remove the hollow nodes: {e}");
            return Ok(());
        }
    };
    let mut names: Vec<String> = Vec::new();
    if let Some(r) = &known.record {
        if let Some(h) = &r.hollow {
            names.extend(super::nodes::node_names(h));
        }
        if let Some(e) = &r.external {
            names.extend(super::external::spec_shape(e).all_node_names());
        }
    }
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    for n in names {
        match nodes.delete(&n, &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("deleting node {n}")),
        }
    }
    kubemark_core::master::remove_node_bootstrap(&client)
        .await
        .context("removing kubemark's bootstrap token")?;
    Ok(())
}
