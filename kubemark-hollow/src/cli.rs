//! The `hollow-node` command line: the flags and the run of the `hollow-node` binary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use std::os::unix::fs::OpenOptionsExt;

use crate::config::{parse_labels, parse_resources, parse_taints};
use crate::server::{NodeAddresses, ServerOptions};
use crate::{Credentials, HollowNodes, HollowOptions, NodeConfig};

/// The flags of `hollow-node`, compatible with upstream's
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
    /// How long the containers of a Job's pod run when neither the `kubemark.io/run-duration`
    /// annotation nor their command (`sleep 5s`, `exit 0`) says; `none`: until deleted.
    #[arg(long, default_value = "5s")]
    pub job_pod_run_duration: String,

    // The kubelet API.
    /// The first node's address: node i of this process serves its kubelet API at the i-th
    /// address from it (on this machine, any address in 127.0.0.0/8), on --kubelet-port.
    #[arg(long, conflicts_with = "pod_ip")]
    pub node_ip: Option<std::net::Ipv4Addr>,
    /// The address every node of this process shares (a pod's IP): node i serves its kubelet
    /// API on port --kubelet-port + i, and advertises that port.
    #[arg(long)]
    pub pod_ip: Option<std::net::Ipv4Addr>,
    /// The kubelet API's port (the first node's with --pod-ip); 0 serves none.
    #[arg(long, default_value_t = kubemark_core_port())]
    pub kubelet_port: u16,
    /// The unauthenticated read-only port (10255 upstream); 0, the default, serves none.
    #[arg(long, default_value_t = 0)]
    pub kubelet_read_only_port: u16,
    /// The CA certificate (PEM) that signs the nodes' serving certificates; without it each
    /// node signs its own, as a kubelet without certificate files does.
    #[arg(long, requires = "kubelet_serving_ca_key")]
    pub kubelet_serving_ca_cert: Option<PathBuf>,
    /// The key of --kubelet-serving-ca-cert.
    #[arg(long, requires = "kubelet_serving_ca_cert")]
    pub kubelet_serving_ca_key: Option<PathBuf>,
    /// The CA whose client certificates the kubelet API accepts; by default the CA the
    /// kubeconfig trusts for the API server.
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Listen in this network namespace (e.g. /var/run/netns/NAME); the nodes' API clients
    /// stay in this process's namespace.
    #[arg(long)]
    pub listen_netns: Option<PathBuf>,

    // klog's flags, as upstream's hollow-node manifests pass them.
    /// Log verbosity (klog): 0-1 info, 2-3 debug, 4 and more trace.
    #[arg(long = "v", short = 'v')]
    pub verbosity: Option<u8>,
    /// Also log to stderr when --log-file is given (klog).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub alsologtostderr: Option<bool>,
    /// Log to stderr, not to --log-file (klog).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub logtostderr: Option<bool>,
    /// Log to this file (appended to, created 0600 if missing) instead of stderr (klog).
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// Accepted for klog compatibility; kubemark does not split logs by severity into files.
    #[arg(long, hide = true)]
    pub log_dir: Option<PathBuf>,
    /// Accepted for klog compatibility, no effect.
    #[arg(long, hide = true)]
    pub stderrthreshold: Option<String>,
    /// Accepted for klog compatibility, no effect.
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub skip_headers: Option<bool>,
    /// Accepted for klog compatibility, no effect.
    #[arg(long, hide = true)]
    pub log_flush_frequency: Option<String>,

    /// Benchmark reference: connect through tokio-rustls with h2's default settings instead of
    /// this crate's connection, to measure what the latter saves (`kubemark bench
    /// --stock-connection`).
    #[arg(long, hide = true)]
    pub stock_connection: bool,

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

/// The most nodes one process hosts: ~90 KiB each, so 100,000 is ~9 GB; a larger `--count` is
/// a typo far more often than a plan, and would abort on allocation instead of saying so.
const MAX_NODES_PER_PROCESS: usize = 100_000;

fn options(flags: &HollowNodeArgs) -> anyhow::Result<HollowOptions> {
    let kubelet = match flags.morph.as_str() {
        "kubelet" => true,
        "proxy" => false,
        other => anyhow::bail!("unknown --morph {other:?}: known morphs are kubelet and proxy"),
    };
    anyhow::ensure!(flags.count >= 1, "--count must be at least 1");
    anyhow::ensure!(
        flags.count <= MAX_NODES_PER_PROCESS,
        "--count {} is more than one process hosts (at most {MAX_NODES_PER_PROCESS}); run several processes with distinct --name prefixes",
        flags.count
    );
    anyhow::ensure!(
        flags.kube_api_qps == 0.0 || (flags.kube_api_qps.is_finite() && flags.kube_api_qps >= 0.01),
        "--kube-api-qps {} must be 0 (no limit) or at least 0.01",
        flags.kube_api_qps
    );
    let deprecated = [
        ("--use-real-proxier", &flags.use_real_proxier),
        ("--proxier-sync-period", &flags.proxier_sync_period),
        ("--proxier-min-sync-period", &flags.proxier_min_sync_period),
        ("--use-host-image-service", &flags.use_host_image_service),
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
            server: None,
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
        job_run_duration: match flags.job_pod_run_duration.as_str() {
            "none" => None,
            d => Some(crate::pods::parse_duration(d).filter(|d| *d <= MAX_RUN).ok_or_else(|| {
                anyhow::anyhow!("--job-pod-run-duration {d:?} is not a duration of at most a year (e.g. 5s, 2m) or none")
            })?),
        },
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
        server: server_options(flags)?,
    })
}

const MAX_RUN: Duration = Duration::from_secs(365 * 24 * 3600);

const fn kubemark_core_port() -> u16 {
    crate::server::DEFAULT_PORT
}

fn server_options(flags: &HollowNodeArgs) -> anyhow::Result<Option<ServerOptions>> {
    let addresses = match (flags.node_ip, flags.pod_ip) {
        (Some(ip), _) => NodeAddresses::Consecutive(ip),
        (None, Some(ip)) => NodeAddresses::Shared(ip),
        (None, None) => {
            tracing::info!("no --node-ip or --pod-ip: the nodes serve no kubelet API");
            return Ok(None);
        }
    };
    if flags.kubelet_port == 0 {
        return Ok(None);
    }
    for (flag, path) in [
        ("--kubelet-serving-ca-cert", &flags.kubelet_serving_ca_cert),
        ("--kubelet-serving-ca-key", &flags.kubelet_serving_ca_key),
        ("--client-ca-file", &flags.client_ca_file),
        ("--listen-netns", &flags.listen_netns),
    ] {
        if let Some(p) = path {
            anyhow::ensure!(p.exists(), "{flag} {} does not exist", p.display());
        }
    }
    let options = ServerOptions {
        addresses,
        port: flags.kubelet_port,
        read_only_port: (flags.kubelet_read_only_port != 0).then_some(flags.kubelet_read_only_port),
        serving_ca: flags
            .kubelet_serving_ca_cert
            .clone()
            .zip(flags.kubelet_serving_ca_key.clone()),
        client_ca: flags.client_ca_file.clone(),
        netns: flags.listen_netns.clone(),
    };
    // Every node's address and ports exist, checked before anything starts.
    options.endpoint(flags.count.saturating_sub(1))?;
    if let Some(ro) = options.read_only_port {
        // With --pod-ip each node takes the next port of both ranges: they must not overlap.
        let span = match addresses {
            NodeAddresses::Shared(_) => flags.count as u64,
            NodeAddresses::Consecutive(_) => 1,
        };
        let (secure, read_only) = (u64::from(options.port), u64::from(ro));
        anyhow::ensure!(
            secure + span <= read_only || read_only + span <= secure,
            "--kubelet-read-only-port {ro} overlaps the kubelet ports {}-{} of {} nodes",
            secure,
            secure + span - 1,
            flags.count
        );
    }
    Ok(Some(options))
}

/// Each node holds a connection and one or two listening sockets: raise the soft limit on
/// open files to the hard one, and say so when even that is short.
fn raise_open_files_limit(nodes: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() {
        tracing::debug!(soft, hard, "could not raise the open files limit");
    }
    let needed = (nodes as u64).saturating_mul(3).saturating_add(64);
    if hard < needed {
        tracing::warn!(
            limit = hard,
            needed,
            "the open files limit is lower than these nodes need (3 per node); raise it (ulimit -n)"
        );
    }
}

/// Sets up logging for `hollow-node` from klog's flags: `--v` over `level`, `--log-file`
/// (with `--alsologtostderr`, stderr too).
pub fn init_logging(args: &HollowNodeArgs, level: &str) -> anyhow::Result<()> {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let level = match args.verbosity {
        None => level,
        Some(0..=1) => "info",
        Some(2..=3) => "debug",
        Some(_) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBEMARK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},kube_client=off")));
    let to_file = args
        .log_file
        .as_ref()
        .filter(|_| args.logtostderr != Some(true));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match to_file {
        None => builder
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| anyhow::anyhow!("--log-file {}: {e}", path.display()))?;
            let file = std::sync::Mutex::new(file);
            if args.alsologtostderr == Some(true) {
                builder
                    .with_writer(file.and(std::io::stderr))
                    .with_ansi(false)
                    .init();
            } else {
                builder.with_writer(file).with_ansi(false).init();
            }
        }
    }
    Ok(())
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
    raise_open_files_limit(count);
    if args.stock_connection {
        crate::client::use_stock_connection();
    }
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        args: HollowNodeArgs,
    }

    fn parse(args: &str) -> HollowNodeArgs {
        Flags::try_parse_from(std::iter::once("hollow-node").chain(args.split_whitespace()))
            .unwrap()
            .args
    }

    #[test]
    fn upstreams_manifest_flags_parse_and_take_effect() {
        // As upstream's hollow-node template passes them (kubelet container).
        let a = parse(
            "--morph=kubelet --name=hollow-1 --kubeconfig=/kubeconfig/kubelet.kubeconfig \
             --log-file=/var/log/kubelet-hollow-1.log --logtostderr=false --v=2 \
             --kubelet-port=10250 --kubelet-read-only-port=10255 --use-host-image-service=false \
             --alsologtostderr --max-pods=110 --node-labels=a=b",
        );
        assert_eq!(a.verbosity, Some(2));
        assert_eq!(a.logtostderr, Some(false));
        assert_eq!(a.alsologtostderr, Some(true));
        assert_eq!(
            a.log_file.as_deref(),
            Some(Path::new("/var/log/kubelet-hollow-1.log"))
        );
        assert_eq!((a.kubelet_port, a.kubelet_read_only_port), (10250, 10255));
        // No address given: no kubelet API (and no error).
        assert!(server_options(&a).unwrap().is_none());
    }

    #[test]
    fn absurd_counts_and_rates_are_one_clear_error() {
        for (args, want) in [
            ("--count=1000000000", "more than one process hosts"),
            ("--kube-api-qps=1e-300", "--kube-api-qps"),
            ("--kube-api-qps=NaN", "--kube-api-qps"),
            ("--kube-api-qps=-1", "--kube-api-qps"),
        ] {
            let e = parse(&format!("--morph=kubelet {args}"))
                .options()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(want), "{args}: {e:?}");
        }
    }

    #[test]
    fn the_kubelet_api_flags_are_checked_before_anything_starts() {
        let a =
            parse("--morph=kubelet --node-ip=127.9.0.1 --count=3 --kubelet-read-only-port=10255");
        let o = server_options(&a).unwrap().unwrap();
        assert_eq!(
            o.endpoint(2).unwrap().ip,
            std::net::Ipv4Addr::new(127, 9, 0, 3)
        );
        assert_eq!(o.read_only_port, Some(10255));
        let a = parse("--morph=kubelet --pod-ip=10.0.0.1 --count=60000 --kubelet-port=10250");
        let e = server_options(&a).unwrap_err().to_string();
        assert!(e.contains("the port range"), "{e}");
        let a = parse("--morph=kubelet --node-ip=127.9.0.1 --kubelet-read-only-port=10250");
        assert!(server_options(&a).is_err());
        // Node 5's secure port would be node 0's read-only port.
        let a = parse("--morph=kubelet --pod-ip=10.0.0.1 --count=6 --kubelet-read-only-port=10255");
        assert!(
            server_options(&a)
                .unwrap_err()
                .to_string()
                .contains("overlaps")
        );
        let a = parse("--morph=kubelet --pod-ip=10.0.0.1 --count=5 --kubelet-read-only-port=10255");
        assert!(server_options(&a).is_ok());
        let a = parse("--morph=kubelet --node-ip=127.9.0.1 --listen-netns=/nonexistent/ns");
        assert!(
            server_options(&a)
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
        let a = parse("--morph=kubelet --node-ip=127.9.0.1 --kubelet-port=0");
        assert!(server_options(&a).unwrap().is_none());
        assert!(
            Flags::try_parse_from([
                "hollow-node",
                "--morph=kubelet",
                "--node-ip=1.2.3.4",
                "--pod-ip=1.2.3.5"
            ])
            .is_err()
        );
    }
}
