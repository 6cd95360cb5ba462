//! `kubemark status`: master health, hollow nodes Ready/total.

use anyhow::bail;

use kubemark_core::cluster::NodePlacement;
use kubemark_core::registry::ProviderRegistry;

use crate::cli::ClusterArgs;
use crate::state;

pub async fn run(args: ClusterArgs, registry: &ProviderRegistry) -> anyhow::Result<()> {
    let dir = state::cluster_dir(&args)?;
    let Some(known) = state::load(&dir)? else {
        bail!(
            "no kubemark cluster {} (state dir {})",
            args.cluster,
            dir.display()
        );
    };
    let c = &known;
    let s = c.state();
    // Rebuilt as stop would: a provider this kubemark does not know is reported now, not then.
    crate::providers::from_state(registry, s, &[])?;
    println!("cluster:    {}", s.cluster);
    println!("provider:   {}", s.provider);
    if !s.provider_settings.is_empty() {
        let settings: Vec<String> = s
            .provider_settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("settings:   {}", settings.join(" "));
    }
    println!("phase:      {:?}", s.phase);
    if let Some(k) = &s.user_kubeconfig {
        println!("kubeconfig: {}", k.display());
    }
    println!("server:     {}", c.server().unwrap_or("-"));
    let mut healthy = true;
    match c.master_status().await {
        Ok(components) => {
            for comp in components {
                let running = comp.pid.is_some();
                healthy &= running;
                println!(
                    "  {:<24} pid {:<8} {}{}",
                    comp.name,
                    comp.pid.map_or("-".to_string(), |p| p.to_string()),
                    if running { "running" } else { "NOT RUNNING" },
                    if comp.restarts > 0 {
                        format!(" (restarted {}x)", comp.restarts)
                    } else {
                        String::new()
                    }
                );
            }
        }
        Err(e) => {
            healthy = false;
            println!("  master processes: unknown ({e})");
        }
    }
    let ready = c.healthy().await;
    healthy &= ready;
    println!("  /readyz: {}", if ready { "ok" } else { "NOT READY" });
    if let Some(NodePlacement::LocalProcess(h)) = c.nodes() {
        let n = match c.client().await {
            Ok(client) => super::nodes::ready_nodes(&client, h)
                .await
                .map(|r| r.len())
                .unwrap_or(0),
            Err(_) => 0,
        };
        healthy &= n == h.count;
        println!(
            "hollow nodes: {n}/{} Ready (pid {}, log {})",
            h.count,
            h.pid,
            h.log.display()
        );
    }
    if let Some(NodePlacement::External(ext)) = c.nodes() {
        match external_pods(ext).await {
            Ok(pods) => {
                let running = pods
                    .iter()
                    .filter(|p| p.phase == "Running" && p.reason.is_none())
                    .count();
                let want = ext.nodes.div_ceil(ext.nodes_per_pod.max(1));
                healthy &= running == want;
                println!(
                    "hollow-node pods: {running}/{want} Running in namespace {} of the external cluster",
                    ext.namespace
                );
                for p in pods
                    .iter()
                    .filter(|p| p.phase != "Running" || p.reason.is_some())
                {
                    println!(
                        "  {} {}{}",
                        p.name,
                        p.phase,
                        p.reason
                            .as_ref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    );
                }
            }
            Err(e) => {
                healthy = false;
                println!("hollow-node pods: unknown ({e:#})");
            }
        }
        if let Ok(client) = c.client().await {
            let names: std::collections::BTreeSet<String> =
                (0..ext.nodes.div_ceil(ext.nodes_per_pod.max(1)))
                    .flat_map(|o| node_names(ext, o))
                    .collect();
            let n = super::nodes::ready_among(&client, &names)
                .await
                .map(|r| r.len())
                .unwrap_or(0);
            healthy &= n == ext.nodes;
            println!("hollow nodes: {n}/{} Ready", ext.nodes);
        }
    }
    if !healthy {
        bail!("cluster {} is not healthy", s.cluster);
    }
    Ok(())
}

async fn external_pods(
    ext: &super::external::ExternalRecord,
) -> anyhow::Result<Vec<kubemark_core::deploy::PodState>> {
    let client = kubemark_core::master::client_from_kubeconfig(&ext.kubeconfig).await?;
    Ok(kubemark_core::deploy::pods(&client, &ext.namespace).await?)
}

fn node_names(ext: &super::external::ExternalRecord, ordinal: usize) -> Vec<String> {
    super::external::spec_shape(ext).node_names(ordinal)
}
