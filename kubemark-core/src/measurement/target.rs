//! What a run measures: the cluster's API server, and where known its processes and its etcd.

use crate::bootstrap::SshTarget;
use crate::master::{LocalState, RemoteMasterSpec};

/// The cluster a run measures. Only the client is needed; the rest adds measurements: processes
/// on this machine (master components, hollow nodes) for resource usage, a local master's state
/// for etcd's own metrics, a remote master for its components' resource usage over SSH.
#[derive(Clone)]
pub struct Target {
    client: kube::Client,
    processes: Vec<(String, u32)>,
    local_master: Option<LocalState>,
    remote_master: Option<(SshTarget, RemoteMasterSpec)>,
}

impl Target {
    /// A cluster reached through `client` (admin rights: the run creates namespaces and reads
    /// `/metrics`).
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            processes: Vec::new(),
            local_master: None,
            remote_master: None,
        }
    }

    /// Samples the CPU and memory of these processes on this machine, by (component name, PID);
    /// several PIDs may share a name.
    #[must_use]
    pub fn with_processes(mut self, processes: impl IntoIterator<Item = (String, u32)>) -> Self {
        self.processes.extend(processes);
        self
    }

    /// A master on this machine: etcd's own metrics are scraped too.
    #[must_use]
    pub fn with_local_master(mut self, state: LocalState) -> Self {
        self.local_master = Some(state);
        self
    }

    /// A master on another host: its components' CPU and memory are sampled over SSH.
    #[must_use]
    pub fn with_remote_master(mut self, ssh: SshTarget, spec: RemoteMasterSpec) -> Self {
        self.remote_master = Some((ssh, spec));
        self
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    pub(crate) fn processes(&self) -> &[(String, u32)] {
        &self.processes
    }

    pub(crate) fn local_master(&self) -> Option<&LocalState> {
        self.local_master.as_ref()
    }

    pub(crate) fn remote_master(&self) -> Option<&(SshTarget, RemoteMasterSpec)> {
        self.remote_master.as_ref()
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("processes", &self.processes)
            .field("local_master", &self.local_master.is_some())
            .field("remote_master", &self.remote_master.is_some())
            .finish_non_exhaustive()
    }
}
