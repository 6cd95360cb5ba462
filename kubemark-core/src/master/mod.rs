//! The master components (etcd, kube-apiserver, kube-controller-manager, kube-scheduler): their
//! flags, running them as local processes (the `local` provider's master and the fixture of
//! every integration test), and as supervised services on another host over SSH.

mod flags;
mod local;
mod node_bootstrap;
mod process;
mod remote;

use std::path::PathBuf;

pub use flags::{
    MasterLayout, MasterNetwork, MasterPorts, apiserver_args, controller_manager_args, etcd_args,
    scheduler_args,
};
pub use local::{
    LocalControlPlane, LocalOptions, LocalState, apiserver_ready, client_from_kubeconfig,
};
pub use node_bootstrap::{BootstrapToken, ensure_node_bootstrap, remove_node_bootstrap};
pub use process::{log_tail, pid_is_ours, pids_mentioning, terminate_pid};
pub use remote::{ComponentStatus, RemoteMaster, RemoteMasterSpec, RemoteUsage, client_from_yaml};

use crate::binaries::BinariesError;
use crate::pki::PkiError;

/// Errors of starting, watching and stopping master components.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// Binaries are missing.
    #[error(transparent)]
    Binaries(#[from] BinariesError),
    /// PKI generation or writing failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A component could not be started.
    #[error("starting {component} ({binary}): {source}")]
    Spawn {
        /// The component.
        component: &'static str,
        /// Its binary.
        binary: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A component exited while it should be running.
    #[error("{component} exited ({status}); last lines of {log}: {tail}")]
    Exited {
        /// The component.
        component: &'static str,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log, on one line.
        tail: String,
    },
    /// Something did not happen in time.
    #[error("timed out after {seconds}s waiting for {what}")]
    Timeout {
        /// What we waited for.
        what: String,
        /// How long.
        seconds: u64,
    },
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A kubeconfig could not be loaded.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// An SSH operation on a remote master failed.
    #[error(transparent)]
    Ssh(#[from] crate::bootstrap::BootstrapError),
    /// The state of a detached control plane is unreadable or stale.
    #[error("{0}")]
    State(String),
}

impl MasterError {
    /// Whether a component exited because its port was taken.
    pub(crate) fn is_port_taken(&self) -> bool {
        matches!(self, MasterError::Exited { tail, .. } if tail.contains("address already in use"))
    }
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> MasterError + '_ {
    move |source| MasterError::Io {
        path: path.to_path_buf(),
        source,
    }
}
