//! `kubemark status`: master health, hollow nodes Ready/total.

use anyhow::bail;

use crate::cli::ClusterArgs;
use crate::state;

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let dir = state::cluster_dir(&args)?;
    let Some(known) = state::load(&dir)? else {
        bail!(
            "no kubemark cluster {} (state dir {})",
            args.cluster,
            dir.display()
        );
    };
    let c = &known.cluster;
    let s = c.state();
    println!("cluster:    {}", s.cluster);
    println!("provider:   {}", s.provider);
    println!("phase:      {:?}", s.phase);
    if let Some(r) = &known.record {
        println!("kubeconfig: {}", r.kubeconfig.display());
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
    if let Some(h) = known.record.as_ref().and_then(|r| r.hollow.as_ref()) {
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
    if !healthy {
        bail!("cluster {} is not healthy", s.cluster);
    }
    Ok(())
}
