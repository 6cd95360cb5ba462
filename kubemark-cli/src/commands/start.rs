//! `kubemark start`: the core's cluster plan (provider, PKI, master) plus hollow nodes as a local
//! process or pods on an external cluster, and the user's kubeconfig, all recorded in the
//! cluster's state.

use std::time::Duration;

use anyhow::{Context, bail};
use kubemark_core::binaries::{BinaryLocator, BinarySet, Downloader};
use kubemark_core::cluster::{
    Cluster, ClusterSpec, HOLLOW_DIR, MasterPlacement, NodePlacement, crash_point,
};
use kubemark_core::provider::ClusterName;
use kubemark_core::registry::{BinarySource, Placement, PlacementRequest, ProviderRegistry};

use crate::cli::StartArgs;
use crate::config::resolve;
use crate::progress::Spinner;
use crate::state;

pub async fn run(args: StartArgs, registry: &ProviderRegistry) -> anyhow::Result<()> {
    let config = resolve(&args)?;
    let dir = state::cluster_dir(&args.cluster)?;
    let cluster = ClusterName::new(args.cluster.cluster.clone())?;
    let entry = registry.get(&config.provider)?;
    let settings = crate::providers::resolve(
        entry.as_ref(),
        &args.provider_settings,
        &config.provider_settings,
    )?;
    let provider = entry.provider(&settings)?;
    let master_args = crate::master_args::MasterArgs::parse(&args.master_args)?;
    let Placement {
        master: placement,
        infrastructure,
    } = entry
        .placement(PlacementRequest {
            cluster: &cluster,
            dir: &dir,
            settings: &settings,
            master: &config.master,
            component_args: master_args.components(),
            timeout: Duration::from_secs(config.timeout),
            keep_data: args.keep_data,
            binaries: &Binaries(&args),
        })
        .await?;
    // Checked before anything starts: a bad external cluster must not leave a master behind.
    let external = super::external::record(&config.external, config.nodes)?;
    if external.is_some() && config.external.image.is_none() {
        bail!(
            "hollow nodes on an external cluster need an image with kubemark: --image, KUBEMARK_IMAGE or external.image (`kubemark image push --provider gce|aws` pushes one to the provider's registry and prints its reference)"
        );
    }

    if let Some(known) = state::load(&dir)? {
        if known.healthy().await && known.state().user_kubeconfig.is_some() {
            bail!(
                "cluster {cluster} is already running (state in {}); run `kubemark stop{}` first",
                dir.display(),
                cluster_flag(&cluster)
            );
        }
        // A previous start crashed or the machine rebooted: clean what is left, then start afresh.
        eprintln!("found what a previous start of cluster {cluster} left; cleaning it up first");
        let previous = crate::providers::from_state(registry, known.state(), &[])?;
        super::stop::stop_known(known, previous).await?;
    }

    let spinner = Spinner::start(&match &placement {
        MasterPlacement::Local(_) => {
            "starting etcd, kube-apiserver, kube-controller-manager and kube-scheduler".to_string()
        }
        MasterPlacement::Ssh { target, .. } => format!(
            "bootstrapping the master on {} over SSH (uploads certificates and binaries)",
            target.display()
        ),
        MasterPlacement::Provisioned { .. } => format!(
            "creating the master VM and its infrastructure with the {} provider, then bootstrapping it over SSH",
            provider.name()
        ),
        MasterPlacement::Existing { kubeconfig } => {
            format!("checking the running master of {}", kubeconfig.display())
        }
    });
    let mut spec = ClusterSpec::new(cluster.clone(), dir.clone(), placement);
    spec.infrastructure = infrastructure;
    spec.provider_settings = settings.public(entry.settings());
    let started = tokio::select! {
        r = Cluster::start(provider.clone(), spec) => r,
        _ = crate::signals::interrupted() => {
            spinner.abandon();
            // The start future is dropped; what it recorded is removed like any leftover.
            if let Some(known) = state::load(&dir)? {
                super::stop::stop_known(known, provider.clone()).await?;
            }
            bail!("interrupted; nothing was left running");
        }
    };
    let mut cluster_state = match started {
        Ok(c) => c,
        Err(e) => {
            spinner.abandon();
            return Err(e).context(format!("starting cluster {cluster}"));
        }
    };
    spinner.finish("control plane ready");

    let kubeconfig = std::path::absolute(&args.kubeconfig_out)?;
    cluster_state.record_user_kubeconfig(&kubeconfig)?;
    if let Some(ext) = &external {
        // Recorded before anything is deployed, so that stop removes a half-done deployment.
        cluster_state.record_nodes(NodePlacement::External(ext.clone()))?;
    }
    let admin = std::fs::read_to_string(cluster_state.admin_kubeconfig())?;
    kubemark_core::pki::write_private(&kubeconfig, &admin)?;
    crash_point("kubeconfig");

    // Interrupted from here on, the cluster stays (its records exist) for `kubemark stop`.
    let left_running = || {
        anyhow::anyhow!(
            "interrupted; the cluster is left running, `kubemark stop{}` removes it",
            cluster_flag(&cluster)
        )
    };
    let master = super::nodes::MasterAccess::of(&cluster_state)?;
    if let Some(ext) = &external {
        let deployed = tokio::select! {
            r = super::external::deploy(
                &cluster_state,
                &config.external,
                ext,
                &config.hollow_node_flags,
                Duration::from_secs(config.timeout),
            ) => r,
            _ = crate::signals::interrupted() => Err(left_running()),
        };
        if let Err(e) = deployed {
            return Err(e.context(format!("hollow nodes of cluster {cluster}")));
        }
    } else if config.nodes > 0 {
        // From here on the records exist, so a failure leaves a cluster `kubemark stop` removes.
        let hollow = super::nodes::spawn(
            &master,
            &dir.join(HOLLOW_DIR),
            config.nodes,
            &config.hollow_node_flags,
            config.node_certs,
        )
        .await?;
        cluster_state.record_nodes(NodePlacement::LocalProcess(hollow.clone()))?;
        crash_point("hollow");
        let waited = tokio::select! {
            r = super::nodes::wait_ready(&master, &hollow, Duration::from_secs(config.timeout)) => r,
            _ = crate::signals::interrupted() => Err(left_running()),
        };
        if let Err(e) = waited {
            return Err(e.context(format!("hollow nodes of cluster {cluster}")));
        }
    }
    println!("kubemark cluster {cluster} is running");
    println!("  API server: {}", master.server);
    println!("  kubeconfig: {}", kubeconfig.display());
    if let Some(l) = cluster_state.local() {
        println!("  logs:       {}", l.work_dir.join("logs").display());
    }
    if let Some(NodePlacement::LocalProcess(h)) = cluster_state.nodes() {
        println!(
            "  nodes:      {} hollow nodes ({}-0 ..), log {}",
            h.count,
            h.prefix,
            h.log.display()
        );
    }
    if let Some(e) = &external {
        println!(
            "  nodes:      {} hollow nodes in {} pods, namespace {} of the external cluster {}",
            e.nodes,
            e.nodes.div_ceil(e.nodes_per_pod.max(1)),
            e.namespace,
            e.kubeconfig.display()
        );
    }
    println!("try:  kubectl --kubeconfig {} get ns", kubeconfig.display());
    println!("stop: kubemark stop{}", cluster_flag(&cluster));
    Ok(())
}

pub(crate) fn cluster_flag(cluster: &ClusterName) -> String {
    if cluster.as_str() == "kubemark" {
        String::new()
    } else {
        format!(" --cluster {cluster}")
    }
}

async fn binaries(args: &StartArgs) -> anyhow::Result<BinarySet> {
    let locator = BinaryLocator::from_env().with_bin_dir(args.bin_dir.clone());
    match locator.locate() {
        Ok(b) => Ok(b),
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
            Ok(locator.locate()?)
        }
        Err(e) => Err(e.into()),
    }
}

/// The control-plane binaries of `--bin-dir` (or the cache), downloaded with `--download`;
/// looked for only when the provider's placement needs them.
struct Binaries<'a>(&'a StartArgs);

#[async_trait::async_trait]
impl BinarySource for Binaries<'_> {
    async fn binaries(
        &self,
    ) -> Result<BinarySet, Box<dyn std::error::Error + Send + Sync + 'static>> {
        binaries(self.0).await.map_err(Into::into)
    }
}
