//! What the CLI keeps about a cluster it started, next to the core's state file
//! (`kubemark_core::cluster`, `cluster.json`): the user's kubeconfig and the hollow-node process
//! (`cli.json`). Both live in `<state dir>/<cluster>/`, 0700, files 0600.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kubemark_core::cluster::Cluster;

use crate::cli::ClusterArgs;

/// `apiVersion` of the record; bumped when its shape changes incompatibly.
pub const API_VERSION: &str = "kubemark.io/v1alpha1";

/// What `start` made on this machine besides the master.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CliRecord {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always `CliState`.
    pub kind: String,
    /// The kubeconfig written for the user.
    pub kubeconfig: PathBuf,
    /// The hollow-node process, when it runs on this machine.
    #[serde(default)]
    pub hollow: Option<HollowProcess>,
    /// The hollow-node pods, when they run on an external cluster.
    #[serde(default)]
    pub external: Option<crate::commands::external::ExternalRecord>,
}

/// A hollow-node process started by `kubemark start`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HollowProcess {
    /// Its PID.
    pub pid: u32,
    /// How many nodes it hosts.
    pub count: usize,
    /// The node name prefix.
    pub prefix: String,
    /// Its log.
    pub log: PathBuf,
    /// Its working directory (bootstrap kubeconfig, certificates); its command line names it.
    pub dir: PathBuf,
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

fn record_path(dir: &Path) -> PathBuf {
    dir.join("cli.json")
}

/// Reads the CLI's record, `None` when there is none.
pub fn read(dir: &Path) -> anyhow::Result<Option<CliRecord>> {
    let path = record_path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let record: CliRecord = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a kubemark state file", path.display()))?;
    anyhow::ensure!(
        record.api_version == API_VERSION,
        "{} has apiVersion {}, this kubemark reads {API_VERSION}",
        path.display(),
        record.api_version
    );
    Ok(Some(record))
}

/// Writes the record (0600: it points at credentials).
pub fn write(dir: &Path, record: &CliRecord) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(record)?;
    kubemark_core::pki::write_private(&record_path(dir), &json)?;
    Ok(())
}

/// A started cluster as the CLI knows it: the core's state and the CLI's record.
pub struct Known {
    /// The master and the provider's resources.
    pub cluster: Cluster,
    /// The CLI's part; `None` when start crashed before writing it.
    pub record: Option<CliRecord>,
}

/// Loads what `start` recorded for a cluster; `None` when nothing is.
pub fn load(dir: &Path) -> anyhow::Result<Option<Known>> {
    let Some(cluster) = Cluster::load(dir)? else {
        // A CLI record without the core's state cannot happen in order; still honour it.
        return Ok(None);
    };
    Ok(Some(Known {
        cluster,
        record: read(dir)?,
    }))
}
