//! `kubemark debug hollow-node NODE` and `kubemark logs NODE`.

use std::io::BufRead;

use anyhow::{Context, bail};

use crate::cli::{DebugArgs, DebugWhat, LogsArgs};
use kubemark_core::cluster::{Cluster, HollowProcess, NodePlacement};

use crate::state;

fn known(cluster: &crate::cli::ClusterArgs) -> anyhow::Result<Cluster> {
    let dir = state::cluster_dir(cluster)?;
    state::load(&dir)?.with_context(|| {
        format!(
            "no kubemark cluster {} (state dir {})",
            cluster.cluster,
            dir.display()
        )
    })
}

/// `kubemark debug ...`.
pub async fn debug(args: DebugArgs) -> anyhow::Result<()> {
    let DebugWhat::HollowNode { cluster, node } = args.what;
    let k = known(&cluster)?;
    let h = match k.nodes() {
        None => bail!("the cluster has no hollow nodes recorded"),
        Some(NodePlacement::External(ext)) => {
            println!("{}", super::external::describe_node(ext, &node).await?);
            return Ok(());
        }
        Some(NodePlacement::LocalProcess(h)) => h,
        Some(NodePlacement::InProcess { .. }) => {
            bail!("the cluster's hollow nodes run in the process that started it")
        }
    };
    if !owns(h, &node) {
        bail!(
            "{node} is not a hollow node of cluster {} (they are {}-0 .. {}-{})",
            cluster.cluster,
            h.prefix,
            h.prefix,
            h.count.saturating_sub(1)
        );
    }
    println!(
        "hollow node {node}: local process {} on this machine (log {}, `kubemark logs {node}`)",
        h.pid,
        h.log.display()
    );
    Ok(())
}

fn owns(h: &HollowProcess, node: &str) -> bool {
    if h.count == 1 {
        return node == h.prefix;
    }
    node.strip_prefix(&format!("{}-", h.prefix))
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| i < h.count)
}

/// `kubemark logs NODE`: the lines of the hollow-node log about NODE.
pub async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let k = known(&args.cluster)?;
    let h = match k.nodes() {
        None => bail!("the cluster has no hollow nodes recorded"),
        Some(NodePlacement::LocalProcess(h)) => h,
        Some(NodePlacement::InProcess { .. }) => {
            bail!("the cluster's hollow nodes run in the process that started it")
        }
        Some(NodePlacement::External(ext)) => {
            let pod = kubemark_core::deploy::pod_of(&args.node)
                .with_context(|| format!("{} is not a hollow node name", args.node))?;
            bail!(
                "hollow node {} runs in pod {}/{pod} on the external cluster: kubectl --kubeconfig {} -n {} logs {pod} | grep 'node={}'",
                args.node,
                ext.namespace,
                ext.kubeconfig.display(),
                ext.namespace,
                args.node
            );
        }
    };
    if !owns(h, &args.node) {
        bail!("{} is not a hollow node of this cluster", args.node);
    }
    let file = std::fs::File::open(&h.log).with_context(|| format!("{}", h.log.display()))?;
    let needle = format!("node={}", args.node);
    let mut out = std::io::stdout().lock();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        // `node=hollow-node-1` must not match `node=hollow-node-10`.
        let hit = line.match_indices(&needle).any(|(i, _)| {
            line[i + needle.len()..]
                .chars()
                .next()
                .is_none_or(|c| c == ' ' || c == '}' || c == ',')
        });
        if hit {
            use std::io::Write;
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}
