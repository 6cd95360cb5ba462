//! `kubemark stop`.

use std::path::Path;

use anyhow::Context;
use kubemark_core::cluster::{Cluster, NodePlacement, stop_unrecorded_hollow};
use kubemark_core::provider::{DynProvider, LOCAL};
use kubemark_core::registry::ProviderRegistry;

use crate::cli::StopArgs;
use crate::providers;
use crate::state;

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
            let name = known.state().cluster.clone();
            let provider = providers::from_state(registry, known.state(), &args.provider_settings)?;
            stop_known(known, provider).await?;
            println!("kubemark cluster {name} stopped");
        }
        None => {
            // Hollow nodes of a start that crashed before its first record are found by the
            // directory their command line names.
            stop_unrecorded_hollow(&dir).await;
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
        (Some(k), None) => providers::from_state(registry, k.state(), &args.provider_settings)?,
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
        let s = k.state();
        println!("  master: {:?} (phase {:?})", s.master, s.phase);
        match k.nodes() {
            Some(NodePlacement::LocalProcess(h)) => {
                println!("  hollow-node process {} ({} nodes)", h.pid, h.count);
            }
            Some(NodePlacement::External(e)) => println!(
                "  namespace {} on the external cluster {}",
                e.namespace,
                e.kubeconfig.display()
            ),
            Some(NodePlacement::InProcess { .. }) | None => {}
        }
        if let Some(kubeconfig) = &s.user_kubeconfig {
            println!("  kubeconfig {}", kubeconfig.display());
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

/// Stops what a start left (core's [`Cluster::stop`], in its one order). Safe to repeat.
pub async fn stop_known(known: Cluster, provider: DynProvider) -> anyhow::Result<()> {
    let name = known.state().cluster.clone();
    known
        .stop(provider)
        .await
        .with_context(|| format!("stopping cluster {name}"))
}
