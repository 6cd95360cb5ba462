//! Command-line flags. Precedence: flags, then environment variables (upstream's names where
//! upstream had one), then defaults.

pub mod test;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Kubemark: a real Kubernetes control plane against thousands of hollow nodes.
#[derive(Debug, Parser)]
#[command(name = "kubemark", version, about)]
pub struct Cli {
    /// Log level (error, warn, info, debug, trace) or a tracing filter; KUBEMARK_LOG wins.
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,

    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a kubemark cluster and write its kubeconfig.
    Start(Box<StartArgs>),
    /// Stop a kubemark cluster and remove what it created. Safe to repeat.
    Stop(StopArgs),
    /// Show a kubemark cluster's master health and hollow nodes.
    Status(ClusterArgs),
    /// Run a scalability test (density, load) against a kubemark cluster or any kubeconfig, or compare runs (report).
    Test(test::TestArgs),
    /// Measure hollow nodes on this machine: time until N nodes are Ready, idle RSS and CPU per
    /// node, and the API requests they make.
    Bench(BenchArgs),
    /// Where a hollow node runs: the external pod (namespace, pod, external node) or local process.
    Debug(DebugArgs),
    /// Print one hollow node's log lines.
    Logs(LogsArgs),
    /// Build the hollow-node image (no container daemon needed) and push it to a registry.
    Image(ImageArgs),
}

/// Parses the process's arguments; `--provider` takes the names of `registry`, and
/// `start --help` lists every provider's settings.
pub fn parse(registry: &kubemark_core::registry::ProviderRegistry) -> Result<Cli, clap::Error> {
    use clap::builder::{PossibleValue, PossibleValuesParser};
    use clap::{CommandFactory, FromArgMatches};
    let values: Vec<PossibleValue> = registry
        .entries()
        .iter()
        .map(|e| PossibleValue::new(e.name()).help(e.description()))
        .collect();
    let provider = |a: clap::Arg| a.value_parser(PossibleValuesParser::new(values.clone()));
    let command = Cli::command()
        .mut_subcommand("start", |c| {
            c.mut_arg("provider", provider)
                .after_long_help(crate::providers::settings_help(registry))
        })
        .mut_subcommand("stop", |c| c.mut_arg("provider", provider))
        .mut_subcommand("image", |c| {
            c.mut_subcommand("push", |c| c.mut_arg("provider", provider))
        });
    Cli::from_arg_matches(&command.get_matches())
}

pub use crate::state::ClusterArgs;

/// Flags of `kubemark start`. Settings that a config file can also give are optional here, so
/// that the precedence flag > env > file > default can be applied (see `config.rs`).
#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// A YAML config file (apiVersion kubemark.io/v1alpha1, kind ClusterConfig); flags and
    /// environment variables win over it.
    #[arg(long, env = "KUBEMARK_CONFIG")]
    pub config: Option<PathBuf>,

    /// Where the master runs [default: local].
    #[arg(long, env = "CLOUD_PROVIDER")]
    pub provider: Option<String>,

    /// A setting of the provider, `KEY=VALUE` (repeatable; wins over its environment variables
    /// and the config file's provider.settings). `--help` lists each provider's settings.
    #[arg(long = "provider-setting", value_name = "KEY=VALUE")]
    pub provider_settings: Vec<String>,

    /// Directory with etcd, kube-apiserver, kube-controller-manager and kube-scheduler.
    #[arg(long, env = "KUBEMARK_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,

    /// Download the official release binaries (sha256-verified) when they are not found.
    #[arg(long)]
    pub download: bool,

    /// Where to write the admin kubeconfig.
    #[arg(long, default_value = "kubeconfig.kubemark")]
    pub kubeconfig_out: PathBuf,

    /// Keep the master's data, PKI and logs after stop (local master).
    #[arg(long)]
    pub keep_data: bool,

    /// Seconds to wait for each readiness step (control plane, then all nodes Ready) [default: 300].
    #[arg(long)]
    pub timeout: Option<u64>,

    /// Number of hollow nodes (env KUBEMARK_NUM_NODES, then NUM_NODES, as upstream) [default: 10].
    #[arg(long, env = "KUBEMARK_NUM_NODES")]
    pub nodes: Option<usize>,

    /// Extra flags for the hollow nodes, e.g. "--max-pods=50 --node-labels=pool=a".
    #[arg(long)]
    pub hollow_node_flags: Option<String>,

    /// An extra flag for a control-plane component, `COMPONENT=--flag[=value]` with COMPONENT
    /// one of kube-apiserver, kube-controller-manager, kube-scheduler (repeatable; wins over
    /// kubemark's defaults; --provider local only, for now), e.g. `kube-controller-manager=--kube-api-qps=500`.
    #[arg(long = "master-arg", value_name = "COMPONENT=FLAG")]
    pub master_args: Vec<String>,

    /// How the hollow nodes get their identities [default: preissued].
    #[arg(long, value_enum)]
    pub node_certs: Option<NodeCerts>,

    /// The existing master host, address[:port] (pre-existing provider).
    #[arg(long, env = "MASTER_IP")]
    pub master: Option<String>,

    /// Admin kubeconfig of a master that already runs (pre-existing provider, instead of
    /// --master): nothing is installed, and stop leaves the master running.
    #[arg(long, env = "KUBEMARK_MASTER_KUBECONFIG")]
    pub master_kubeconfig: Option<PathBuf>,

    /// SSH login on the master [default: root].
    #[arg(long, env = "KUBEMARK_SSH_USER")]
    pub ssh_user: Option<String>,

    /// SSH private key for the master.
    #[arg(long, env = "KUBEMARK_SSH_KEY")]
    pub ssh_key: Option<PathBuf>,

    /// known_hosts file with the master's host key [default: the user's].
    #[arg(long, env = "KUBEMARK_SSH_KNOWN_HOSTS")]
    pub ssh_known_hosts: Option<PathBuf>,

    /// Trust the master's host key on first use (a changed key is still refused).
    #[arg(long)]
    pub ssh_accept_new_host_key: bool,

    /// host:port to reach a cloud master's SSH instead of the VM's address (an emulator, NAT, a
    /// forwarded port).
    #[arg(long, env = "KUBEMARK_MASTER_SSH_ADDRESS")]
    pub master_ssh_address: Option<String>,

    /// Machine type of a cloud master (gce, aws).
    #[arg(long, env = "KUBEMARK_MASTER_SIZE")]
    pub master_size: Option<String>,

    /// Run the hollow nodes as pods on this cluster instead of as a local process.
    #[arg(long, env = "KUBEMARK_EXTERNAL_KUBECONFIG")]
    pub external_kubeconfig: Option<PathBuf>,

    /// The hollow-node image (`kubemark image push`), for hollow-node pods.
    #[arg(long, env = "KUBEMARK_IMAGE")]
    pub image: Option<String>,

    /// Hollow nodes per pod on the external cluster [default: 10].
    #[arg(long)]
    pub nodes_per_pod: Option<usize>,

    /// Namespace of the hollow-node pods on the external cluster [default: kubemark].
    #[arg(long)]
    pub external_namespace: Option<String>,
}

/// Flags of `kubemark stop`.
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Also (or, without a state file, only) delete what the provider finds tagged as this
    /// cluster's: the leak finder for clusters whose state is lost.
    #[arg(long, env = "CLOUD_PROVIDER")]
    pub provider: Option<String>,

    /// A setting of the provider, `KEY=VALUE` (repeatable; see `kubemark start --help`).
    #[arg(long = "provider-setting", value_name = "KEY=VALUE")]
    pub provider_settings: Vec<String>,

    /// List what stop would delete (tagged cloud resources, recorded processes and files) and
    /// delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Flags of `kubemark bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Node counts to measure, one fresh control plane each.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub nodes: Vec<usize>,

    /// Seconds of idle measurement after all nodes are Ready.
    #[arg(long, default_value_t = 60)]
    pub idle: u64,

    /// Seconds to wait for all nodes to be Ready.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,

    /// Directory with the control-plane binaries.
    #[arg(long, env = "KUBEMARK_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,

    /// Write the results as JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Also measure upstream's hollow node (cmd/kubemark, as its pods run it: a hollow kubelet
    /// and a hollow proxy process per node) at these node counts, against a fresh control plane
    /// of the same binaries.
    #[arg(long, value_delimiter = ',')]
    pub upstream: Vec<usize>,

    /// How our hollow nodes get their identities.
    #[arg(long, value_enum, default_value = "preissued")]
    pub node_certs: NodeCerts,

    /// Also measure our hollow nodes with their kubelet API off (`--kubelet-port=0`) at these
    /// node counts, against a fresh control plane: what serving it costs while nobody calls it.
    #[arg(long, value_delimiter = ',')]
    pub kubelet_api_off: Vec<usize>,
    /// Also measure our hollow nodes connecting through tokio-rustls with h2's default
    /// settings (the crates as they come) at these node counts, against a fresh control plane:
    /// what kubemark's own TLS stream and HTTP/2 settings save per node.
    #[arg(long, value_delimiter = ',')]
    pub stock_connection: Vec<usize>,

    /// After the idle and pod phases, a real metrics-server (built by
    /// `scripts/build-control-plane.sh --metrics-server`) scrapes every one of our nodes'
    /// `/metrics/resource` every 15 s for this many seconds; the hollow side's CPU and RSS
    /// meanwhile (0: no scrape phase).
    #[arg(long, default_value_t = 0)]
    pub scrape: u64,

    /// Also measure KWOK (one controller for all nodes, as deployed) at these node counts,
    /// against a fresh control plane of the same binaries (built by
    /// `scripts/build-control-plane.sh --with-peers`).
    #[arg(long, value_delimiter = ',')]
    pub kwok: Vec<usize>,

    /// After the idle phase, create this many pods pre-bound to the nodes (`spec.nodeName`),
    /// time until all are Running and until their deletion completes, with the request mix and
    /// the hollow side's share of the machine's CPU meanwhile (0: no pod phase).
    #[arg(long, default_value_t = 0)]
    pub pods: usize,

    /// Repeat the pod phase this many times on the same nodes. The report gives each
    /// implementation's means and, per request kind, the range over the rounds: one round cannot
    /// tell a difference in the request mix from run-to-run variation.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub pod_rounds: u32,

    /// Client rate limit of every hollow node of the run, ours and upstream's alike, in requests
    /// per second per node (leases are not limited). 50 is the kubelet's default; upstream's
    /// hollow node defaults to 10 (burst 20), which delays its status updates and so coalesces
    /// more of them: with the same limit on both sides the request mix compares behaviour, not
    /// configuration.
    #[arg(long, default_value_t = 50.0)]
    pub kube_api_qps: f64,

    /// Client burst of every hollow node of the run (see `--kube-api-qps`; the kubelet's default).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub kube_api_burst: u32,

    /// Upstream's hollow-node binary (default: `kubemark` in the control-plane cache, built by
    /// `scripts/build-control-plane.sh --with-peers`).
    #[arg(long)]
    pub upstream_bin: Option<PathBuf>,

    /// An extra flag for a control-plane component, `COMPONENT=--flag[=value]` with COMPONENT
    /// one of kube-apiserver, kube-controller-manager, kube-scheduler (repeatable; wins over
    /// kubemark's defaults; every control plane of the run gets it), e.g. `kube-controller-manager=--kube-api-qps=500`.
    #[arg(long = "master-arg", value_name = "COMPONENT=FLAG")]
    pub master_args: Vec<String>,
}

/// Flags of `kubemark debug`.
#[derive(Debug, Clone, Args)]
pub struct DebugArgs {
    /// What to debug.
    #[command(subcommand)]
    pub what: DebugWhat,
}

/// `kubemark debug` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum DebugWhat {
    /// The pod that runs hollow node NODE (upstream's get-real-pod-for-hollow-node).
    HollowNode {
        /// The cluster.
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The hollow node's name.
        node: String,
    },
}

/// Flags of `kubemark logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The hollow node's name.
    pub node: String,
}

/// Flags of `kubemark image`.
#[derive(Debug, Clone, Args)]
pub struct ImageArgs {
    /// What to do.
    #[command(subcommand)]
    pub what: ImageWhat,
}

/// `kubemark image` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ImageWhat {
    /// Build the image and push it as REFERENCE (host[:port]/repository[:tag]); prints
    /// REFERENCE@sha256:... Credentials: KUBEMARK_REGISTRY_USERNAME and KUBEMARK_REGISTRY_PASSWORD
    /// (or --password-stdin); never a flag, so they stay out of shell history and process lists.
    ///
    /// With --provider gce|aws and no REFERENCE, the provider's registry for the cluster is
    /// made (Artifact Registry / ECR, tagged as the cluster's) and pushed to with the provider's
    /// own short-lived credentials.
    Push {
        /// Where to push (required without --provider).
        reference: Option<String>,
        /// Push to this provider's registry for the cluster.
        #[arg(long)]
        provider: Option<String>,
        /// A setting of the provider, `KEY=VALUE` (repeatable; see `kubemark start --help`).
        #[arg(long = "provider-setting", value_name = "KEY=VALUE")]
        provider_settings: Vec<String>,
        /// The cluster whose registry to use (with --provider).
        #[arg(long, env = "KUBEMARK_CLUSTER", default_value = "kubemark")]
        cluster: String,
        /// The tag (with --provider).
        #[arg(long, default_value = concat!("v", env!("CARGO_PKG_VERSION")))]
        tag: String,
        /// The binary to put in the image [default: the `hollow-node` kubemark runs].
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Registry user.
        #[arg(long, env = "KUBEMARK_REGISTRY_USERNAME")]
        username: Option<String>,
        /// Read the registry password or token from stdin.
        #[arg(long)]
        password_stdin: bool,
        /// A CA (PEM) to trust for the registry, besides the system's.
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
    /// Build the image into an OCI image layout directory (for skopeo, crane, containerd).
    Build {
        /// The directory to write.
        #[arg(long)]
        layout: PathBuf,
        /// The tag to record in index.json.
        #[arg(long, default_value = "latest")]
        tag: String,
        /// The binary to put in the image [default: the `hollow-node` kubemark runs].
        #[arg(long)]
        binary: Option<PathBuf>,
    },
}

/// How hollow nodes of a local cluster get their client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeCerts {
    /// Issued by kubemark from the cluster CA before the nodes start (one per node; no CSR
    /// round trips, so thousands of nodes join in seconds).
    Preissued,
    /// TLS bootstrap: each node creates a CSR that the controller-manager approves and signs, as
    /// real kubelets join.
    Bootstrap,
}
