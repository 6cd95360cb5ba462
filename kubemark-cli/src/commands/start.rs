//! `kubemark start`: the core's cluster plan (provider, PKI, master) plus hollow nodes as a local
//! process, the user's kubeconfig and the CLI's record.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use kubemark_core::binaries::{BinaryLocator, BinarySet, Downloader};
use kubemark_core::bootstrap::SshTarget;
use kubemark_core::cluster::{Cluster, ClusterSpec, MasterPlacement, crash_point};
use kubemark_core::master::{LocalOptions, MasterPorts, RemoteMasterSpec};
use kubemark_core::provider::{
    ClusterName, DynProvider, FirewallSpec, InfrastructureSpec, MasterSpec,
};

use crate::cli::{ProviderKind, StartArgs};
use crate::config::{StartConfig, resolve};
use crate::progress::Spinner;
use crate::state::{self, CliRecord};

pub async fn run(args: StartArgs) -> anyhow::Result<()> {
    let config = resolve(&args)?;
    let dir = state::cluster_dir(&args.cluster)?;
    let cluster = ClusterName::new(args.cluster.cluster.clone())?;
    let provider = provider(config.provider, &config)?;
    let (placement, infrastructure) = placement(&args, &config, &cluster, &dir).await?;
    // Checked before anything starts: a bad external cluster must not leave a master behind.
    let external = super::external::record(&config.external, config.nodes)?;
    if external.is_some() && config.external.image.is_none() {
        bail!(
            "hollow nodes on an external cluster need an image with kubemark: --image, KUBEMARK_IMAGE or external.image (`kubemark image push --provider gce|aws` pushes one to the provider's registry and prints its reference)"
        );
    }

    if let Some(known) = state::load(&dir)? {
        if known.cluster.healthy().await && known.record.is_some() {
            bail!(
                "cluster {cluster} is already running (state in {}); run `kubemark stop{}` first",
                dir.display(),
                cluster_flag(&cluster)
            );
        }
        // A previous start crashed or the machine rebooted: clean what is left, then start afresh.
        eprintln!("found what a previous start of cluster {cluster} left; cleaning it up first");
        super::stop::stop_known(known, provider.clone(), &dir).await?;
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
    let started = tokio::select! {
        r = Cluster::start(provider.clone(), spec) => r,
        _ = super::interrupted() => {
            spinner.abandon();
            // The start future is dropped; what it recorded is removed like any leftover.
            if let Some(known) = state::load(&dir)? {
                super::stop::stop_known(known, provider.clone(), &dir).await?;
            }
            bail!("interrupted; nothing was left running");
        }
    };
    let cluster_state = match started {
        Ok(c) => c,
        Err(e) => {
            spinner.abandon();
            return Err(e).context(format!("starting cluster {cluster}"));
        }
    };
    spinner.finish("control plane ready");

    let kubeconfig = std::path::absolute(&args.kubeconfig_out)?;
    let mut record = CliRecord {
        api_version: state::API_VERSION.into(),
        kind: "CliState".into(),
        provider: config.provider,
        kubeconfig: kubeconfig.clone(),
        hollow: None,
        // Recorded before anything is deployed, so that stop removes a half-done deployment.
        external: external.clone(),
    };
    state::write(&dir, &record)?;
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
            _ = super::interrupted() => Err(left_running()),
        };
        if let Err(e) = deployed {
            return Err(e.context(format!("hollow nodes of cluster {cluster}")));
        }
    } else if config.nodes > 0 {
        // From here on the records exist, so a failure leaves a cluster `kubemark stop` removes.
        let hollow = super::nodes::spawn(
            &master,
            &dir.join("hollow"),
            config.nodes,
            &config.hollow_node_flags,
            config.node_certs,
        )
        .await?;
        record.hollow = Some(hollow.clone());
        state::write(&dir, &record)?;
        crash_point("hollow");
        let waited = tokio::select! {
            r = super::nodes::wait_ready(&master, &hollow, Duration::from_secs(config.timeout)) => r,
            _ = super::interrupted() => Err(left_running()),
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
    if let Some(h) = &record.hollow {
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

/// The provider, built from the environment (and, for pre-existing, the resolved settings).
pub(crate) fn provider(kind: ProviderKind, config: &StartConfig) -> anyhow::Result<DynProvider> {
    Ok(match kind {
        ProviderKind::Local => Arc::new(kubemark_core::provider::LocalProvider),
        ProviderKind::Gce => {
            Arc::new(kubemark_provider_gce::GceProviderBuilder::from_env().build()?)
        }
        ProviderKind::Aws => {
            Arc::new(kubemark_provider_aws::AwsProviderBuilder::from_env().build()?)
        }
        ProviderKind::PreExisting => {
            let mut c = kubemark_provider_preexisting::PreexistingProviderBuilder::from_env()
                .config()
                .clone();
            c.master = config.master.host.clone().or(c.master);
            c.master_kubeconfig = config.master.kubeconfig.clone().or(c.master_kubeconfig);
            c.ssh_user = config.master.ssh_user.clone().or(c.ssh_user);
            c.ssh_key = config.master.ssh_key.clone().or(c.ssh_key);
            Arc::new(
                kubemark_provider_preexisting::PreexistingProviderBuilder::new()
                    .with_config(c)
                    .build()?,
            )
        }
    })
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

async fn placement(
    args: &StartArgs,
    config: &StartConfig,
    cluster: &ClusterName,
    dir: &Path,
) -> anyhow::Result<(MasterPlacement, InfrastructureSpec)> {
    let none = InfrastructureSpec::default();
    let master_args = super::MasterArgs::parse(&args.master_args)?;
    if !master_args.is_empty() && !matches!(config.provider, ProviderKind::Local) {
        bail!(
            "--master-arg is supported with --provider local only, for now (the other providers render the master's flags on the master)"
        );
    }
    match config.provider {
        ProviderKind::Local => {
            let mut options = LocalOptions::new(binaries(args).await?);
            options.cluster = cluster.clone();
            options.work_dir = Some(dir.join("master"));
            options.keep_data = args.keep_data;
            options.ready_timeout = Duration::from_secs(config.timeout);
            master_args.apply(&mut options);
            Ok((MasterPlacement::Local(options), none))
        }
        ProviderKind::PreExisting => {
            let m = &config.master;
            if let Some(kubeconfig) = &m.kubeconfig {
                if m.host.is_some() {
                    bail!(
                        "--provider pre-existing: give either a master host (--master, MASTER_IP) or a running master's kubeconfig (--master-kubeconfig), not both"
                    );
                }
                return Ok((
                    MasterPlacement::Existing {
                        kubeconfig: kubeconfig.clone(),
                    },
                    none,
                ));
            }
            let Some(host) = &m.host else {
                bail!(
                    "--provider pre-existing needs the master host (--master ADDRESS[:PORT], MASTER_IP or master.host in the config file) or a running master's kubeconfig (--master-kubeconfig)"
                );
            };
            let Some(key) = &m.ssh_key else {
                bail!(
                    "--provider pre-existing needs an SSH key for {host}: --ssh-key, KUBEMARK_SSH_KEY or master.sshKey in the config file"
                );
            };
            let parsed = kubemark_provider_preexisting::parse_master(
                host,
                m.ssh_user.as_deref().unwrap_or("root"),
            )?;
            let mut target = SshTarget::new(parsed.host.clone(), parsed.user, key.clone());
            target.port = parsed.port;
            target.known_hosts_file = m.known_hosts_file.clone();
            target.config_file = m.ssh_config.clone();
            target.host_key_check = m.host_key_check.unwrap_or_default();
            let advertise = match m.advertise_address {
                Some(a) => a,
                None => resolve_host(&parsed.host).await?,
            };
            let mut spec = RemoteMasterSpec::new(cluster.clone(), advertise);
            apply_master_settings(&mut spec, m, config.timeout);
            Ok((
                MasterPlacement::Ssh {
                    target,
                    spec,
                    binaries: binaries(args).await?,
                },
                none,
            ))
        }
        ProviderKind::Aws | ProviderKind::Gce => provisioned(args, config, cluster).await,
    }
}

/// A master VM the provider creates, bootstrapped over SSH with the operator's key (its `.pub`
/// goes into the VM).
async fn provisioned(
    args: &StartArgs,
    config: &StartConfig,
    cluster: &ClusterName,
) -> anyhow::Result<(MasterPlacement, InfrastructureSpec)> {
    let m = &config.master;
    let Some(key) = &m.ssh_key else {
        bail!(
            "--provider {:?} needs an SSH key for the master VM: --ssh-key, KUBEMARK_SSH_KEY or master.sshKey (its .pub is installed on the VM)",
            config.provider
        );
    };
    let public = key.with_extension("pub");
    let public_key = std::fs::read_to_string(&public).with_context(|| {
        format!(
            "the SSH public key {} (next to --ssh-key)",
            public.display()
        )
    })?;
    let mut target = SshTarget::new(
        String::new(),
        // Empty: the provider's user for the VM (the image's login user).
        m.ssh_user.clone().unwrap_or_default(),
        key.clone(),
    );
    target.known_hosts_file = m.known_hosts_file.clone();
    target.config_file = m.ssh_config.clone();
    // A new VM's host key cannot be known in advance: trust it on first use unless told otherwise.
    target.host_key_check = m
        .host_key_check
        .unwrap_or(kubemark_core::bootstrap::HostKeyCheck::AcceptNew);
    let connect_to = match &m.ssh_address {
        Some(a) => {
            let t = kubemark_provider_preexisting::parse_master(a, &target.user)?;
            Some((t.host, t.port))
        }
        None => None,
    };
    let unspecified = IpAddr::from([0, 0, 0, 0]);
    let mut spec =
        RemoteMasterSpec::new(cluster.clone(), m.advertise_address.unwrap_or(unspecified));
    apply_master_settings(&mut spec, m, config.timeout);
    let infrastructure = InfrastructureSpec {
        firewall: FirewallSpec {
            port: spec.network.ports.apiserver,
            ..FirewallSpec::default()
        },
        master: MasterSpec {
            machine_type: m.size.clone(),
            ssh_public_key: Some(public_key.trim().to_string()),
            ssh_user: m.ssh_user.clone(),
            ..MasterSpec::default()
        },
        ..InfrastructureSpec::default()
    };
    Ok((
        MasterPlacement::Provisioned {
            target,
            spec,
            binaries: binaries(args).await?,
            connect_to,
        },
        infrastructure,
    ))
}

/// Directories, bind address and ports of the remote master from the config.
fn apply_master_settings(
    spec: &mut RemoteMasterSpec,
    m: &crate::config::MasterConfig,
    timeout: u64,
) {
    if let Some(d) = &m.config_dir {
        spec.config_dir = d.clone();
    }
    if let Some(d) = &m.data_dir {
        spec.data_dir = d.clone();
    }
    if let Some(d) = &m.log_dir {
        spec.log_dir = d.clone();
    }
    if let Some(b) = m.bind_address {
        spec.network.bind_address = b;
    }
    let p = &m.ports;
    let d = spec.network.ports;
    spec.network.ports = MasterPorts {
        apiserver: p.apiserver.unwrap_or(d.apiserver),
        etcd_client: p.etcd_client.unwrap_or(d.etcd_client),
        etcd_peer: p.etcd_peer.unwrap_or(d.etcd_peer),
        controller_manager: p.controller_manager.unwrap_or(d.controller_manager),
        scheduler: p.scheduler.unwrap_or(d.scheduler),
    };
    spec.ready_timeout = Duration::from_secs(timeout);
}

async fn resolve_host(host: &str) -> anyhow::Result<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    tokio::net::lookup_host((host, 0))
        .await
        .with_context(|| format!("resolving master host {host}"))?
        .map(|a| a.ip())
        .next()
        .with_context(|| format!("master host {host} has no address"))
}
