//! `hollow-node`: one or many hollow nodes in one process, with upstream kubemark's flags.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kubemark_hollow::config::{parse_labels, parse_resources, parse_taints};
use kubemark_hollow::{Credentials, HollowNodes, HollowOptions, NodeConfig};

/// Hollow nodes: kubelet behaviour as the API server sees it, without running anything.
#[derive(Debug, Parser)]
#[command(name = "hollow-node", version)]
struct Flags {
    /// What to simulate. Only `kubelet` exists so far.
    #[arg(long)]
    morph: String,
    /// Node name; with --count N > 1, nodes are named <name>-0 .. <name>-(N-1).
    #[arg(long, default_value = "fake-node")]
    name: String,
    /// How many hollow nodes this process hosts.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// A kubeconfig whose user is the node (used when --bootstrap-kubeconfig is not given).
    #[arg(long, default_value = "/kubeconfig/kubeconfig")]
    kubeconfig: PathBuf,
    /// TLS bootstrap: a bootstrap-token kubeconfig; each node requests its own certificate.
    #[arg(long)]
    bootstrap_kubeconfig: Option<PathBuf>,
    /// Where bootstrapped node certificates are kept.
    #[arg(long, default_value = "/etc/srv/")]
    cert_dir: PathBuf,
    /// Extra node labels, k=v,...
    #[arg(long, default_value = "")]
    node_labels: String,
    /// Taints to register with, key=value:Effect,...
    #[arg(long, default_value = "")]
    register_with_taints: String,
    /// Pod capacity.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Extra capacity, name=quantity,...; may override cpu and memory.
    #[arg(long, default_value = "")]
    extended_resources: String,
    /// Client QPS per node.
    #[arg(long, default_value_t = 10.0)]
    kube_api_qps: f64,
    /// Client burst per node.
    #[arg(long, default_value_t = 20)]
    kube_api_burst: u32,
    /// Node lease duration; renewed every quarter of it.
    #[arg(long, default_value_t = 40)]
    node_lease_duration_seconds: u64,
    /// Do not emit pod lifecycle events.
    #[arg(long)]
    no_events: bool,
    /// At most this many nodes join (bootstrap, register) at once.
    #[arg(long, default_value_t = 64)]
    join_concurrency: usize,
    /// Log filter (KUBEMARK_LOG wins).
    #[arg(long, default_value = "info")]
    log_level: String,

    // Upstream flags that no longer do anything; accepted so existing manifests keep working.
    /// Deprecated, no effect.
    #[arg(long, hide = true)]
    use_real_proxier: Option<String>,
    /// Deprecated, no effect.
    #[arg(long, hide = true)]
    proxier_sync_period: Option<String>,
    /// Deprecated, no effect.
    #[arg(long, hide = true)]
    proxier_min_sync_period: Option<String>,
    /// Deprecated, no effect: hollow nodes never talk to an image service.
    #[arg(long, hide = true)]
    use_host_image_service: Option<String>,
    /// Deprecated, no effect.
    #[arg(long, hide = true)]
    kubelet_port: Option<String>,
    /// Deprecated, no effect.
    #[arg(long, hide = true)]
    kubelet_read_only_port: Option<String>,
    /// Deprecated, no effect.
    #[arg(long, hide = true)]
    api_server_port: Option<String>,
    /// Deprecated, no effect: JSON is used.
    #[arg(long, hide = true)]
    kube_api_content_type: Option<String>,
}

fn options(flags: &Flags) -> anyhow::Result<HollowOptions> {
    match flags.morph.as_str() {
        "kubelet" => {}
        "proxy" => anyhow::bail!("--morph proxy is not implemented yet; use --morph kubelet"),
        other => anyhow::bail!("unknown --morph {other:?}: known morphs are kubelet and proxy"),
    }
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
    })
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBEMARK_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{},kube_client=off", flags.log_level))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    kubemark_core::tls::install_crypto_provider();
    let options = match options(&flags) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
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
