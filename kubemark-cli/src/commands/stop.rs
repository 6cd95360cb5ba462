//! `kubemark stop`.

use std::path::Path;

use anyhow::Context;
use kubemark_core::master::LocalControlPlane;

use crate::cli::StopArgs;
use crate::state::{self, ClusterRecord};

pub async fn run(args: StopArgs) -> anyhow::Result<()> {
    let dir = state::cluster_dir(&args.cluster)?;
    match state::read(&dir)? {
        Some(record) => {
            stop_record(&record, &dir).await?;
            println!("kubemark cluster {} stopped", record.cluster);
        }
        None => println!(
            "no kubemark cluster {} (state dir {}): nothing to stop",
            args.cluster.cluster,
            dir.display()
        ),
    }
    Ok(())
}

/// Stops what `record` describes and removes its state; safe to repeat.
pub async fn stop_record(record: &ClusterRecord, dir: &Path) -> anyhow::Result<()> {
    // Nodes first: their watches would otherwise hold the API server's graceful shutdown.
    if let Some(h) = &record.hollow {
        super::nodes::stop(h).await;
    }
    if let Some(local) = &record.local {
        LocalControlPlane::stop_detached(local).await?;
    }
    match std::fs::remove_file(&record.kubeconfig) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", record.kubeconfig.display()));
        }
        _ => {}
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}
