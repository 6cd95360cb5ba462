//! Where a cluster's state lives: `<state dir>/<cluster>/`, 0700, holding core's `cluster.json`
//! (`kubemark_core::cluster`), which records everything `start` made, the hollow nodes and the
//! user's kubeconfig included. The CLI keeps no state of its own.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kubemark_core::cluster::{Cluster, ExternalDeployment, HollowProcess, NodePlacement};

/// Which cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// The cluster's name.
    #[arg(long, env = "KUBEMARK_CLUSTER", default_value = "kubemark")]
    pub cluster: String,

    /// Where cluster state lives (default: $XDG_STATE_HOME/kubemark or ~/.local/state/kubemark).
    #[arg(long, env = "KUBEMARK_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// The directory of one cluster's state.
pub fn cluster_dir(args: &ClusterArgs) -> anyhow::Result<PathBuf> {
    kubemark_core::provider::ClusterName::new(args.cluster.clone())?;
    let root = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => match std::env::var_os("XDG_STATE_HOME") {
            Some(dir) => PathBuf::from(dir).join("kubemark"),
            None => PathBuf::from(
                std::env::var_os("HOME").context("HOME is not set; pass --state-dir")?,
            )
            .join(".local/state/kubemark"),
        },
    };
    Ok(root.join(&args.cluster))
}

/// What kubemark up to 2026-12-05 recorded beside `cluster.json` (`cli.json`).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyRecord {
    kubeconfig: PathBuf,
    #[serde(default)]
    hollow: Option<HollowProcess>,
    #[serde(default)]
    external: Option<ExternalDeployment>,
}

/// Loads what `start` recorded for a cluster; `None` when nothing is. A `cli.json` of an
/// older kubemark is folded into the cluster's state first.
pub fn load(dir: &Path) -> anyhow::Result<Option<Cluster>> {
    let Some(mut cluster) = Cluster::load(dir)? else {
        return Ok(None);
    };
    let legacy = dir.join("cli.json");
    match std::fs::read_to_string(&legacy) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", legacy.display())),
        Ok(text) => {
            let old: LegacyRecord = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} (an older kubemark's record) is unreadable; stop the cluster's processes and remove {}",
                    legacy.display(),
                    dir.display()
                )
            })?;
            if cluster.nodes().is_none() {
                let nodes = match (old.external, old.hollow) {
                    (Some(e), _) => Some(NodePlacement::External(e)),
                    (None, Some(h)) => Some(NodePlacement::LocalProcess(h)),
                    (None, None) => None,
                };
                if let Some(n) = nodes {
                    cluster.record_nodes(n)?;
                }
            }
            cluster.record_user_kubeconfig(&old.kubeconfig)?;
            std::fs::remove_file(&legacy)
                .with_context(|| format!("removing {}", legacy.display()))?;
        }
    }
    Ok(Some(cluster))
}
