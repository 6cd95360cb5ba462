//! Where a cluster's hollow nodes run, as recorded in its state, and how stop ends them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::deploy::DeploySpec;
use crate::master::{pid_is_ours, pids_mentioning, terminate_pid};
use crate::provider::ClusterName;

/// The directory, inside a cluster's state directory, of a hollow-node process started on this
/// machine: its command line names it, so stop finds the process even when a start crashed
/// before recording it.
pub const HOLLOW_DIR: &str = "hollow";

/// Where the hollow nodes run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum NodePlacement {
    /// In the process that started the cluster (a harness with `kubemark-hollow`): they end
    /// with it; stop only removes their Node objects from a master it keeps.
    InProcess {
        /// How many.
        count: usize,
        /// The node name prefix (`<prefix>-<i>`, or `<prefix>` for one node).
        prefix: String,
    },
    /// A hollow-node process on this machine.
    LocalProcess(HollowProcess),
    /// Pods on an external cluster.
    External(ExternalDeployment),
}

/// A hollow-node process on this machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HollowProcess {
    /// Its PID (the leader of its process group).
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

/// Hollow-node pods on an external cluster (`crate::deploy`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDeployment {
    /// Kubeconfig of the external cluster.
    pub kubeconfig: PathBuf,
    /// Namespace.
    pub namespace: String,
    /// Hollow nodes.
    pub nodes: usize,
    /// Per pod.
    pub nodes_per_pod: usize,
}

fn prefixed(count: usize, prefix: &str) -> Vec<String> {
    if count == 1 {
        vec![prefix.to_string()]
    } else {
        (0..count).map(|i| format!("{prefix}-{i}")).collect()
    }
}

impl HollowProcess {
    /// The names of its nodes.
    pub fn node_names(&self) -> Vec<String> {
        prefixed(self.count, &self.prefix)
    }

    /// Stops the process and its group: SIGTERM, then SIGKILL after 10 s. A PID reused by
    /// another program (one whose command line does not name [`HollowProcess::dir`]) is left
    /// alone.
    pub async fn stop(&self) {
        let marker = self.dir.display().to_string();
        // The process leads its own group; a wrapper (KUBEMARK_HOLLOW_WRAPPER) puts the hollow
        // process below the leader, so the whole group is signalled, not only the leader.
        let group = nix::unistd::Pid::from_raw(-(self.pid as i32));
        let ours = pid_is_ours(self.pid, &marker);
        if ours {
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
        }
        terminate_pid(self.pid, &marker, Duration::from_secs(10)).await;
        if ours {
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl ExternalDeployment {
    /// The deployment's shape (names and pod count; no image or credentials).
    pub fn shape(&self) -> DeploySpec {
        DeploySpec {
            cluster: ClusterName::new("shape").expect("valid name"),
            namespace: self.namespace.clone(),
            image: String::new(),
            nodes: self.nodes,
            nodes_per_pod: self.nodes_per_pod,
            bootstrap_kubeconfig: String::new(),
            proxy_kubeconfig: None,
            settings: Default::default(),
            extra_flags: Vec::new(),
            cpu_millis_per_node: 0,
            memory_mib_per_node: 0,
            kubelet_serving_ca: None,
        }
    }
}

impl NodePlacement {
    /// The names of the hollow nodes.
    pub fn node_names(&self) -> Vec<String> {
        match self {
            NodePlacement::InProcess { count, prefix } => prefixed(*count, prefix),
            NodePlacement::LocalProcess(h) => h.node_names(),
            NodePlacement::External(e) => e.shape().all_node_names(),
        }
    }
}

/// Stops the hollow-node processes whose command line names `<dir>/hollow`: those of a start
/// that crashed before it recorded them.
pub async fn stop_unrecorded_hollow(dir: &Path) {
    let marker = dir.join(HOLLOW_DIR).display().to_string();
    for pid in pids_mentioning(&marker) {
        terminate_pid(pid, &marker, Duration::from_secs(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_are_recorded_by_type_and_name_their_nodes() {
        let p = NodePlacement::LocalProcess(HollowProcess {
            pid: 7,
            count: 2,
            prefix: "hollow-node".into(),
            log: "/l".into(),
            dir: "/d".into(),
        });
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["type"], "local-process");
        assert_eq!(json["pid"], 7);
        assert_eq!(serde_json::from_value::<NodePlacement>(json).unwrap(), p);
        assert_eq!(p.node_names(), ["hollow-node-0", "hollow-node-1"]);
        let one = NodePlacement::InProcess {
            count: 1,
            prefix: "n".into(),
        };
        assert_eq!(one.node_names(), ["n"]);
        let ext = NodePlacement::External(ExternalDeployment {
            kubeconfig: "/k".into(),
            namespace: "kubemark".into(),
            nodes: 4,
            nodes_per_pod: 2,
        });
        let names = ext.node_names();
        assert_eq!(names.len(), 4);
        assert_eq!(names[3], "hollow-node-1-1");
    }
}
