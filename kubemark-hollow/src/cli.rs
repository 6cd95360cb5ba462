//! The `hollow-node` command line, shared by the `hollow-node` binary and `kubemark hollow-node`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::config::{parse_labels, parse_resources, parse_taints};
use crate::{Credentials, HollowNodes, HollowOptions, NodeConfig};

/// The flags of `hollow-node` (and `kubemark hollow-node`), compatible with upstream's
/// `kubemark` binary where they make sense.
#[derive(Debug, Clone, Args)]
pub struct HollowNodeArgs {
    /// What to simulate: `kubelet` (with a hollow proxy too when --proxy-kubeconfig is given),
    /// or `proxy` alone (with --kubeconfig as kube-proxy's).
    #[arg(long)]
    pub morph: String,
    /// Node name; with --count N > 1, nodes are named <name>-0 .. <name>-(N-1).
    #[arg(long, default_value = "fake-node")]
    pub name: String,
    /// How many hollow nodes this process hosts.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// A kubeconfig whose user is the node (used when --bootstrap-kubeconfig is not given).
    #[arg(long, default_value = "/kubeconfig/kubeconfig")]
    pub kubeconfig: PathBuf,
    /// TLS bootstrap: a bootstrap-token kubeconfig; each node requests its own certificate.
    #[arg(long)]
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// Where bootstrapped node certificates are kept.
    #[arg(long, default_value = "/etc/srv/")]
    pub cert_dir: PathBuf,
    /// Extra node labels, k=v,...
    #[arg(long, default_value = "")]
    pub node_labels: String,
    /// Taints to register with, key=value:Effect,...
    #[arg(long, default_value = "")]
    pub register_with_taints: String,
    /// Pod capacity.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// Extra capacity, name=quantity,...; may override cpu and memory.
    #[arg(long, default_value = "")]
    pub extended_resources: String,
    /// Client QPS per node (the kubelet's default; upstream kubemark used 10).
    #[arg(long, default_value_t = 50.0)]
    pub kube_api_qps: f64,
    /// Client burst per node (the kubelet's default; upstream kubemark used 20).
    #[arg(long, default_value_t = 100)]
    pub kube_api_burst: u32,
    /// Node lease duration; renewed every quarter of it.
    #[arg(long, default_value_t = 40)]
    pub node_lease_duration_seconds: u64,
    /// The hollow kube-proxy's kubeconfig (a kube-proxy identity, shared by the nodes of the
    /// process as real clusters share one); with it every hollow node also runs a hollow proxy.
    #[arg(long)]
    pub proxy_kubeconfig: Option<PathBuf>,
    /// Do not run the hollow proxy even when --proxy-kubeconfig is given.
    #[arg(long)]
    pub no_proxy: bool,
    /// Do not emit the kubelet's events (pod lifecycle, and the node's start and readiness
    /// changes); upstream's hollow kubelet sends none.
    #[arg(long)]
    pub no_events: bool,
    /// At most this many nodes join (bootstrap, register) at once.
    #[arg(long, default_value_t = 64)]
    pub join_concurrency: usize,

    // Upstream flags that no longer do anything; accepted so existing manifests keep working.
    /// Deprecated, no effect.
    #[arg(long, hide = true)]
    pub use_real_proxier: Option<String>,
    /// Deprecated, no effect.
    #[arg(long, hide = true)]
    pub proxier_sync_period: Option<String>,
    /// Deprecated, no effect.
    #[arg(long, hide = true)]
    pub proxier_min_sync_period: Option<String>,
    /// Deprecated, no effect: hollow nodes never talk to an image service.
    #[arg(long, hide = true)]
    pub use_host_image_service: Option<String>,
    /// Deprecated, no effect.
    #[arg(long, hide = true)]
    pub kubelet_port: Option<String>,
    /// Deprecated, no effect.
    #[arg(long, hide = true)]
    pub kubelet_read_only_port: Option<String>,
    /// Deprecated, no effect.
    #[arg(long, hide = true)]
    pub api_server_port: Option<String>,
    /// Deprecated, no effect: JSON is used.
    #[arg(long, hide = true)]
    pub kube_api_content_type: Option<String>,
}

impl HollowNodeArgs {
    /// Validates the flags into [`HollowOptions`]; warns about deprecated no-op flags.
    pub fn options(&self) -> anyhow::Result<HollowOptions> {
        options(self)
    }
}

fn options(flags: &HollowNodeArgs) -> anyhow::Result<HollowOptions> {
    let kubelet = match flags.morph.as_str() {
        "kubelet" => true,
        "proxy" => false,
        other => anyhow::bail!("unknown --morph {other:?}: known morphs are kubelet and proxy"),
    };
    anyhow::ensure!(flags.count >= 1, "--count must be at least 1");
    let deprecated = [
        ("--use-real-proxier", &flags.use_real_proxier),
        ("--proxier-sync-period", &flags.proxier_sync_period),
        ("--proxier-min-sync-period", &flags.proxier_min_sync_period),
        ("--use-host-image-service", &flags.use_host_image_service),
        ("--kubelet-port", &flags.kubelet_port),
        ("--kubelet-read-only-port", &flags.kubelet_read_only_port),
        ("--api-server-port", &flags.api_server_port),
        ("--kube-api-content-type", &flags.kube_api_content_type),
    ];
    for (flag, value) in deprecated {
        if value.is_some() {
            tracing::warn!("{flag} is deprecated and has no effect");
        }
    }
    if !kubelet {
        anyhow::ensure!(
            flags.kubeconfig.is_file(),
            "--kubeconfig {} does not exist",
            flags.kubeconfig.display()
        );
        return Ok(HollowOptions {
            names: HollowOptions::names(&flags.name, flags.count),
            credentials: Credentials::Kubeconfig(flags.kubeconfig.clone()),
            config: NodeConfig::default(),
            join_concurrency: flags.join_concurrency,
            kubelet: false,
            proxy: Some(flags.kubeconfig.clone()),
        });
    }
    if let Some(p) = &flags.proxy_kubeconfig {
        anyhow::ensure!(
            p.is_file(),
            "--proxy-kubeconfig {} does not exist",
            p.display()
        );
    }
    let credentials = match &flags.bootstrap_kubeconfig {
        Some(b) => Credentials::Bootstrap {
            bootstrap_kubeconfig: b.clone(),
            cert_dir: flags.cert_dir.clone(),
        },
        None => {
            anyhow::ensure!(
                flags.count == 1,
                "--count > 1 needs --bootstrap-kubeconfig (and --cert-dir) so that each node has its own identity"
            );
            anyhow::ensure!(
                flags.kubeconfig.is_file(),
                "--kubeconfig {} does not exist",
                flags.kubeconfig.display()
            );
            Credentials::Kubeconfig(flags.kubeconfig.clone())
        }
    };
    if let Some(b) = &flags.bootstrap_kubeconfig {
        anyhow::ensure!(
            b.is_file(),
            "--bootstrap-kubeconfig {} does not exist",
            b.display()
        );
    }
    let mut config = NodeConfig {
        labels: parse_labels(&flags.node_labels)?,
        taints: parse_taints(&flags.register_with_taints)?,
        lease_duration: Duration::from_secs(flags.node_lease_duration_seconds.max(4)),
        qps: flags.kube_api_qps,
        burst: flags.kube_api_burst,
        events: !flags.no_events,
        ..NodeConfig::default()
    };
    config.set_max_pods(flags.max_pods);
    config
        .capacity
        .extend(parse_resources(&flags.extended_resources)?);
    Ok(HollowOptions {
        names: HollowOptions::names(&flags.name, flags.count),
        credentials,
        config,
        join_concurrency: flags.join_concurrency,
        kubelet: true,
        proxy: if flags.no_proxy {
            None
        } else {
            flags.proxy_kubeconfig.clone()
        },
    })
}

/// Runs hollow nodes until SIGTERM or Ctrl-C, on a new multi-threaded runtime. Logging must be
/// set up by the caller.
pub fn run(args: &HollowNodeArgs) -> ExitCode {
    kubemark_core::tls::install_crypto_provider();
    let options = match args.options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let count = options.names.len();
    let result = runtime.block_on(async move {
        tracing::info!(count, "starting hollow nodes");
        let nodes = HollowNodes::spawn(options);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = nodes.wait() => r.map_err(anyhow::Error::from),
            _ = tokio::signal::ctrl_c() => Ok(()),
            _ = term.recv() => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
