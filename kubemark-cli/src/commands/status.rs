//! `kubemark status`.

use anyhow::bail;
use kubemark_core::master::client_from_kubeconfig;

use crate::cli::ClusterArgs;
use crate::state;

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let dir = state::cluster_dir(&args)?;
    let Some(record) = state::read(&dir)? else {
        bail!(
            "no kubemark cluster {} (state dir {})",
            args.cluster,
            dir.display()
        );
    };
    println!("cluster:    {}", record.cluster);
    println!("provider:   {:?}", record.provider);
    println!("kubeconfig: {}", record.kubeconfig.display());
    let mut healthy = true;
    if let Some(local) = &record.local {
        println!("server:     {}", local.server);
        for (name, pid) in &local.processes {
            let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
            healthy &= alive;
            println!(
                "  {name:<24} pid {pid:<8} {}",
                if alive { "running" } else { "NOT RUNNING" }
            );
        }
        let client = client_from_kubeconfig(&local.admin_kubeconfig).await?;
        let ready = kubemark_core::master::apiserver_ready(&client).await;
        healthy &= ready;
        println!("  /readyz: {}", if ready { "ok" } else { "NOT READY" });
        if let Some(h) = &record.hollow {
            let n = super::nodes::ready_nodes(&client, h)
                .await
                .map(|r| r.len())
                .unwrap_or(0);
            healthy &= n == h.count;
            println!(
                "hollow nodes: {n}/{} Ready (pid {}, log {})",
                h.count,
                h.pid,
                h.log.display()
            );
        }
    }
    if !healthy {
        bail!("cluster {} is not healthy", record.cluster);
    }
    Ok(())
}
