//! The fixture of "a running cluster": a local control plane and, when asked, hollow nodes in the
//! test process.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kubemark_core::master::{
    BootstrapToken, LocalControlPlane, LocalOptions, ensure_node_bootstrap,
};
use kubemark_hollow::server::{NodeAddresses, ServerOptions};
use kubemark_hollow::{Credentials, HollowNodes, HollowOptions, NodeConfig};

type Adjust<T> = Box<dyn FnOnce(&mut T) + Send>;

/// A running cluster. Dropped, everything stops (the nodes first: fields drop in order), the
/// control plane's processes killed and its files removed; [`Cluster::stop`] stops it gracefully
/// and fails the test when that fails.
pub struct Cluster {
    nodes: Mutex<Vec<HollowNodes>>,
    /// An admin client.
    pub client: kube::Client,
    /// The control plane.
    pub cp: LocalControlPlane,
    credentials: tokio::sync::OnceCell<Credentials>,
    /// Holds the bootstrap kubeconfig, the nodes' certificates and the kubelet serving CA.
    pub dir: tempfile::TempDir,
}

/// How to start a [`Cluster`]: by default a control plane with stock options and no nodes.
#[must_use]
pub struct ClusterBuilder {
    control_plane: Option<Adjust<LocalOptions>>,
    nodes: Option<(String, usize)>,
    config: NodeConfig,
    addresses: Option<NodeAddresses>,
    server: Option<Adjust<ServerOptions>>,
}

impl ClusterBuilder {
    /// Adjusts the control plane's options (component flags and the like).
    pub fn control_plane(
        mut self,
        adjust: impl FnOnce(&mut LocalOptions) + Send + 'static,
    ) -> Self {
        self.control_plane = Some(Box::new(adjust));
        self
    }

    /// Hollow nodes `<prefix>-0 .. <prefix>-(n-1)` (just `<prefix>` when `n` is 1), Ready
    /// before [`ClusterBuilder::start`] returns.
    pub fn nodes(mut self, prefix: &str, n: usize) -> Self {
        self.nodes = Some((prefix.to_string(), n));
        self
    }

    /// The nodes' configuration.
    pub fn config(mut self, config: NodeConfig) -> Self {
        self.config = config;
        self
    }

    /// The nodes serve their kubelet API at `addresses` ([`Cluster::serving`]).
    pub fn serving(mut self, addresses: NodeAddresses) -> Self {
        self.addresses = Some(addresses);
        self
    }

    /// Adjusts the kubelet API options of [`ClusterBuilder::serving`].
    pub fn server(mut self, adjust: impl FnOnce(&mut ServerOptions) + Send + 'static) -> Self {
        self.server = Some(Box::new(adjust));
        self
    }

    /// Starts the control plane with the binaries found the documented way, failing the test with
    /// the reason (and the fix) when they are missing: integration tests never skip silently.
    pub async fn start(self) -> Cluster {
        crate::init_logging();
        let mut options =
            LocalOptions::from_env().unwrap_or_else(|e| panic!("control-plane binaries: {e}"));
        if let Some(adjust) = self.control_plane {
            adjust(&mut options);
        }
        let cp = LocalControlPlane::start(options)
            .await
            .unwrap_or_else(|e| panic!("local control plane did not start: {e}"));
        let cluster = Cluster {
            nodes: Mutex::default(),
            client: cp.client().await.unwrap(),
            cp,
            credentials: tokio::sync::OnceCell::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        if let Some((prefix, n)) = self.nodes {
            let mut options = cluster.hollow(&prefix, n).await;
            options.config = self.config;
            if let Some(addresses) = self.addresses {
                let mut server = cluster.serving(addresses);
                if let Some(adjust) = self.server {
                    adjust(&mut server);
                }
                options.server = Some(server);
            }
            cluster.spawn(options);
            cluster.wait_ready(n).await;
        }
        cluster
    }
}

impl Cluster {
    /// A builder, for a cluster other than [`Cluster::start`]'s or [`Cluster::with_nodes`]'.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            control_plane: None,
            nodes: None,
            config: NodeConfig::default(),
            addresses: None,
            server: None,
        }
    }

    /// A control plane and no nodes.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// A control plane and `n` Ready hollow nodes named after `prefix` ([`ClusterBuilder::nodes`]).
    pub async fn with_nodes(prefix: &str, n: usize) -> Self {
        Self::builder().nodes(prefix, n).start().await
    }

    /// TLS-bootstrap credentials for hollow nodes; the bootstrap token is installed on first use.
    pub async fn credentials(&self) -> &Credentials {
        self.credentials
            .get_or_init(|| async {
                let token = BootstrapToken::generate();
                ensure_node_bootstrap(&self.client, &token, Duration::from_secs(3600))
                    .await
                    .unwrap();
                let path = self.dir.path().join("bootstrap.kubeconfig");
                token
                    .kubeconfig(&self.cp.server_url(), self.cp.pki().ca.cert_pem())
                    .write(&path)
                    .unwrap();
                Credentials::Bootstrap {
                    bootstrap_kubeconfig: path,
                    cert_dir: self.dir.path().join("certs"),
                }
            })
            .await
    }

    /// Options for hollow nodes named after `prefix` joining this cluster, kubelets only, to
    /// adjust and pass to [`Cluster::spawn`].
    pub async fn hollow(&self, prefix: &str, n: usize) -> HollowOptions {
        HollowOptions {
            names: HollowOptions::names(prefix, n),
            credentials: self.credentials().await.clone(),
            config: NodeConfig::default(),
            join_concurrency: 16,
            kubelet: true,
            proxy: None,
            server: None,
        }
    }

    /// Starts hollow nodes in this process; they run until [`Cluster::stop_nodes`] or the end.
    pub fn spawn(&self, options: HollowOptions) {
        self.nodes.lock().unwrap().push(HollowNodes::spawn(options));
    }

    /// Stops every hollow node started so far at once, as a crash would.
    pub fn stop_nodes(&self) {
        for nodes in self.nodes.lock().unwrap().drain(..) {
            nodes.stop();
        }
    }

    /// Kubelet API options for nodes at `addresses`: serving certificates from the kubelet serving
    /// CA (its files written into [`Cluster::dir`]), client certificates of the cluster CA.
    pub fn serving(&self, addresses: NodeAddresses) -> ServerOptions {
        let dir = self.dir.path();
        let (cert, key) = (dir.join("serving-ca.crt"), dir.join("serving-ca.key"));
        let ca = &self.cp.pki().kubelet_serving_ca;
        kubemark_core::pki::write_public(&cert, ca.cert_pem()).unwrap();
        kubemark_core::pki::write_private(&key, &ca.key_pem()).unwrap();
        ServerOptions {
            addresses,
            port: kubemark_hollow::server::DEFAULT_PORT,
            read_only_port: None,
            serving_ca: Some((cert, key)),
            client_ca: None,
            netns: None,
        }
    }

    /// Waits up to 60 s until `n` nodes are Ready.
    pub async fn wait_ready(&self, n: usize) -> Vec<Node> {
        crate::wait_ready_nodes(&self.client, n, Duration::from_secs(60)).await
    }

    /// The control plane alone, for tests of its own lifecycle (stop, supervision); the nodes stop.
    pub fn into_control_plane(self) -> LocalControlPlane {
        self.stop_nodes();
        self.cp
    }

    /// Stops the nodes, then the control plane gracefully; fails the test when that fails.
    pub async fn stop(self) {
        self.stop_nodes();
        let Self { cp, dir, .. } = self;
        cp.stop().await.unwrap();
        drop(dir);
    }
}
