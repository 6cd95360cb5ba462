//! Configuration of the pre-existing provider.

use std::path::PathBuf;

/// The machines the user already has.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct PreexistingConfig {
    /// The master host as `address[:port]` (`MASTER_IP`), bootstrapped over SSH.
    pub master: Option<String>,
    /// SSH login user on the master (`KUBEMARK_SSH_USER`, default `root`).
    pub ssh_user: Option<String>,
    /// SSH private key for the master (`KUBEMARK_SSH_KEY`).
    pub ssh_key: Option<PathBuf>,
    /// A kubeconfig of an already running master (then no bootstrap happens).
    pub master_kubeconfig: Option<PathBuf>,
    /// The external cluster that runs the hollow-node pods; `None` is the current context.
    pub external_kubeconfig: Option<PathBuf>,
    /// The OCI repository for the hollow-node image (`KUBEMARK_IMAGE_REGISTRY`).
    pub registry: Option<String>,
}
