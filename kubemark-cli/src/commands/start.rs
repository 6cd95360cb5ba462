//! `kubemark start`.

use std::time::Duration;

use anyhow::{Context, bail};
use kubemark_core::binaries::{BinaryLocator, Downloader};
use kubemark_core::master::{LocalControlPlane, LocalOptions};
use kubemark_core::provider::{ClusterName, DynProvider, InfrastructureSpec, ProviderExt};

use crate::cli::{ProviderKind, StartArgs};
use crate::progress::Spinner;
use crate::state::{self, ClusterRecord};

pub async fn run(args: StartArgs) -> anyhow::Result<()> {
    let dir = state::cluster_dir(&args.cluster)?;
    match args.provider {
        ProviderKind::Local => start_local(&args, &dir).await,
        other => start_remote(other, &args).await,
    }
}

async fn start_local(args: &StartArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let cluster = ClusterName::new(args.cluster.cluster.clone())?;
    if let Some(record) = state::read(dir)? {
        let alive = record.local.as_ref().is_some_and(|l| {
            l.processes
                .iter()
                .all(|(_, pid)| std::path::Path::new(&format!("/proc/{pid}")).exists())
        });
        if alive {
            bail!(
                "cluster {cluster} is already running (state in {}); run `kubemark stop` first",
                dir.display()
            );
        }
        // A previous start crashed or the machine rebooted: clean what is left, then start afresh.
        eprintln!("found a stale cluster {cluster}; cleaning it up first");
        super::stop::stop_record(&record, dir).await?;
    }

    let locator = BinaryLocator::from_env().with_bin_dir(args.bin_dir.clone());
    let binaries = match locator.locate() {
        Ok(b) => b,
        Err(e) if args.download => {
            tracing::info!(reason = %e, "downloading release binaries");
            let spinner =
                Spinner::start("downloading and verifying Kubernetes and etcd release binaries");
            if let Err(e) = Downloader::new()
                .download_missing(&locator.cache_dir())
                .await
            {
                spinner.abandon();
                return Err(e.into());
            }
            spinner.finish("downloaded and verified release binaries");
            locator.locate()?
        }
        Err(e) => return Err(e.into()),
    };

    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut options = LocalOptions::new(binaries);
    options.cluster = cluster.clone();
    options.work_dir = Some(dir.join("master"));
    options.keep_data = args.keep_data;
    options.ready_timeout = Duration::from_secs(args.timeout);

    let spinner =
        Spinner::start("starting etcd, kube-apiserver, kube-controller-manager and kube-scheduler");
    let started = tokio::select! {
        r = LocalControlPlane::start(options) => r,
        _ = tokio::signal::ctrl_c() => {
            // Dropping the start future stops whatever it had started and removes its files.
            spinner.abandon();
            let _ = std::fs::remove_dir_all(dir);
            bail!("interrupted; nothing was left running");
        }
    };
    let cp = match started {
        Ok(cp) => cp,
        Err(e) => {
            spinner.abandon();
            let _ = std::fs::remove_dir_all(dir);
            return Err(e).context("starting the local control plane");
        }
    };
    spinner.finish("control plane ready");

    let kubeconfig = std::path::absolute(&args.kubeconfig_out)?;
    let admin = std::fs::read_to_string(cp.kubeconfig_path())?;
    let server = cp.server_url();
    let local = cp.detach()?;
    let mut record = ClusterRecord {
        api_version: state::API_VERSION.into(),
        kind: "ClusterState".into(),
        cluster: cluster.to_string(),
        provider: ProviderKind::Local,
        kubeconfig: kubeconfig.clone(),
        local: Some(local.clone()),
        hollow: None,
    };
    let written = state::write(dir, &record)
        .and_then(|()| Ok(kubemark_core::pki::write_private(&kubeconfig, &admin)?));
    if let Err(e) = written {
        // Without a record nobody could stop it later: stop it now.
        let _ = LocalControlPlane::stop_detached(&local).await;
        let _ = std::fs::remove_dir_all(dir);
        return Err(e);
    }
    if args.nodes > 0 {
        // From here on the record exists, so a failure leaves a cluster `kubemark stop` removes.
        let hollow = super::nodes::spawn(
            &local,
            &dir.join("hollow"),
            args.nodes,
            &args.hollow_node_flags,
            args.node_certs,
        )
        .await?;
        record.hollow = Some(hollow.clone());
        state::write(dir, &record)?;
        let waited = tokio::select! {
            r = super::nodes::wait_ready(&local, &hollow, Duration::from_secs(args.timeout)) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        if let Err(e) = waited {
            return Err(e.context(format!("hollow nodes of cluster {cluster}")));
        }
    }
    println!("kubemark cluster {cluster} is running");
    println!("  API server: {server}");
    println!("  kubeconfig: {}", kubeconfig.display());
    println!("  logs:       {}", local.work_dir.join("logs").display());
    if let Some(h) = &record.hollow {
        println!(
            "  nodes:      {} hollow nodes ({}-0 ..), log {}",
            h.count,
            h.prefix,
            h.log.display()
        );
    }
    println!("try:  kubectl --kubeconfig {} get ns", kubeconfig.display());
    println!("stop: kubemark stop{}", cluster_flag(&cluster));
    Ok(())
}

fn cluster_flag(cluster: &ClusterName) -> String {
    if cluster.as_str() == "kubemark" {
        String::new()
    } else {
        format!(" --cluster {cluster}")
    }
}

async fn start_remote(kind: ProviderKind, args: &StartArgs) -> anyhow::Result<()> {
    let cluster = ClusterName::new(args.cluster.cluster.clone())?;
    let provider: DynProvider = match kind {
        ProviderKind::Gce => {
            std::sync::Arc::new(kubemark_provider_gce::GceProviderBuilder::from_env().build()?)
        }
        ProviderKind::Aws => {
            std::sync::Arc::new(kubemark_provider_aws::AwsProviderBuilder::from_env().build()?)
        }
        ProviderKind::PreExisting => std::sync::Arc::new(
            kubemark_provider_preexisting::PreexistingProviderBuilder::from_env().build()?,
        ),
        ProviderKind::Local => unreachable!("handled by start_local"),
    };
    // Validates the provider's configuration and creates what it declares (nothing yet for the
    // stubs); then stop honestly, because remote bootstrap does not exist yet.
    provider
        .ensure_infrastructure(&cluster, &InfrastructureSpec::default())
        .await?;
    bail!(
        "--provider {}: starting a remote master is not implemented yet (SSH bootstrap and external-cluster \
         deployment are planned); use --provider local",
        provider.name()
    )
}
