//! Many hollow nodes in one process, on one tokio runtime. Each keeps its own identity,
//! connection, watches, lease timer and rate limiter; they share nothing but the runtime and
//! the configuration.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::version::Info;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::ApiClient;
use crate::config::NodeConfig;
use crate::identity::{Credentials, IdentityError, node_client};
use crate::node::{self, NodeContext};
use crate::pod_worker::PodWorker;
use crate::server::{self, ServerError, ServerOptions};

/// How to run a set of hollow nodes.
#[derive(Debug, Clone)]
pub struct HollowOptions {
    /// The nodes' names.
    pub names: Vec<String>,
    /// Where their credentials come from.
    pub credentials: Credentials,
    /// Their shape.
    pub config: NodeConfig,
    /// At most this many nodes bootstrap (CSR) or register at the same time, so a big start
    /// does not flood the API server at once.
    pub join_concurrency: usize,
    /// Run the kubelet of each node (false for `--morph proxy`).
    pub kubelet: bool,
    /// Run a hollow kube-proxy for each node with this kubeconfig (a kube-proxy identity).
    pub proxy: Option<std::path::PathBuf>,
    /// Serve each node's kubelet API (`None`: nodes advertise an address nobody can reach).
    pub server: Option<ServerOptions>,
}

impl HollowOptions {
    /// `count` nodes named `<prefix>-<i>` (or just `prefix` when `count` is 1).
    pub fn names(prefix: &str, count: usize) -> Vec<String> {
        if count == 1 {
            vec![prefix.to_string()]
        } else {
            (0..count).map(|i| format!("{prefix}-{i}")).collect()
        }
    }
}

/// Errors that stop the whole set.
#[derive(Debug, thiserror::Error)]
pub enum HollowError {
    /// A node could not get its identity.
    #[error("node {node}: {source}")]
    Identity {
        /// The node.
        node: String,
        /// The cause.
        #[source]
        source: IdentityError,
    },
    /// A node could not join.
    #[error(transparent)]
    Node(#[from] node::NodeError),
    /// The API server's version could not be read.
    #[error("reading the API server version: {0}")]
    Version(kube::Error),
    /// A node's kubelet API could not be served.
    #[error("node {node}: kubelet server: {source}")]
    Server {
        /// The node (empty when every node is concerned).
        node: String,
        /// The cause.
        #[source]
        source: ServerError,
    },
}

/// Running hollow nodes; dropping this stops them all.
#[derive(Debug)]
pub struct HollowNodes {
    tasks: JoinSet<Result<(), HollowError>>,
}

/// Hollow proxies of a process share HTTP/2 connections, this many per connection: each proxy
/// holds four watches, and the API server allows 100 concurrent streams per connection unless
/// told otherwise. The API server still sees every proxy's own watches; what is shared is the
/// TLS connection, which was half of a hollow node's memory and join time.
const PROXIES_PER_CONNECTION: usize = 20;

/// The kube-proxy clients of a process, filled on demand.
struct ProxyPool {
    kubeconfig: std::path::PathBuf,
    clients: tokio::sync::Mutex<Vec<(ApiClient, usize)>>,
}

impl ProxyPool {
    async fn client(&self) -> Result<ApiClient, IdentityError> {
        let mut clients = self.clients.lock().await;
        if let Some((c, users)) = clients
            .iter_mut()
            .find(|(_, users)| *users < PROXIES_PER_CONNECTION)
        {
            *users += 1;
            return Ok(c.clone());
        }
        let config = crate::identity::load_config(&self.kubeconfig).await?;
        let client = ApiClient::new(&config).map_err(IdentityError::Kube)?;
        // Connect before the first proxies open their watches at once: until the connection
        // has negotiated HTTP/2, each concurrent request would dial a connection of its own.
        let version = client
            .apiserver_version()
            .await
            .map_err(IdentityError::Kube)?;
        let client = client.with_user_agent(&user_agent("kube-proxy", &version));
        clients.push((client.clone(), 1));
        Ok(client)
    }
}

/// client-go's default `User-Agent` for `command` built at the API server's version (hollow
/// nodes run at that version): `kubelet/v1.36.3 (linux/amd64) kubernetes/abcdef0`.
fn user_agent(command: &str, version: &Info) -> String {
    // client-go drops a version's `-suffix`, keeps seven characters of the commit and says
    // `unknown` for what is empty.
    let known = |s: &str| {
        if s.is_empty() {
            "unknown".to_string()
        } else {
            s.to_string()
        }
    };
    let release = known(version.git_version.split('-').next().unwrap_or_default());
    let commit = known(&version.git_commit.chars().take(7).collect::<String>());
    format!("{command}/{release} (linux/amd64) kubernetes/{commit}")
}

/// What every node of a process joins with.
struct Joining {
    credentials: Credentials,
    config: Arc<NodeConfig>,
    /// Limits how many nodes join at once.
    gate: Semaphore,
    /// The API server's version, read by the first node that joins.
    version: tokio::sync::OnceCell<Info>,
    kubelet: bool,
    proxies: Option<ProxyPool>,
    /// What the nodes' kubelet servers share, when they serve one.
    server: Option<Arc<server::Shared>>,
}

async fn join_node(
    name: String,
    endpoint: Option<server::Endpoint>,
    joining: Arc<Joining>,
) -> Result<(), HollowError> {
    let j = &*joining;
    let permit = j.gate.acquire().await.expect("never closed");
    // The proxy is its own client (kube-proxy's identity), not the node's.
    let proxy_task = match &j.proxies {
        Some(pool) => {
            let client = Box::pin(pool.client())
                .await
                .map_err(|source| HollowError::Identity {
                    node: name.clone(),
                    source,
                })?;
            Some(AbortOnDrop(tokio::spawn(crate::proxy::run(
                name.clone(),
                client,
            ))))
        }
        None => None,
    };
    if !j.kubelet {
        drop(permit);
        if let Some(mut task) = proxy_task {
            let _ = (&mut task.0).await;
        }
        return Ok(());
    }
    let _proxy = proxy_task;
    // Listen before registering: a node never advertises a port it cannot serve.
    let serving = j.server.as_ref().zip(endpoint);
    let listeners =
        match serving {
            Some((shared, endpoint)) => Some(server::listen(shared, endpoint).map_err(
                |source| HollowError::Server {
                    node: name.clone(),
                    source,
                },
            )?),
            None => None,
        };
    // The joining steps are boxed: inline, their state would be part of this task for the
    // node's whole life (it was the biggest single item of a node's memory).
    let client = Box::pin(node_client(&j.credentials, &name))
        .await
        .map_err(|source| HollowError::Identity {
            node: name.clone(),
            source,
        })?;
    let version = Box::pin(j.version.get_or_try_init(|| client.apiserver_version()))
        .await
        .map_err(HollowError::Version)?;
    let client = client.with_user_agent(&user_agent("kubelet", version));
    let kubelet_version = version.git_version.clone();
    let mut ctx = NodeContext::new(name, client, j.config.clone());
    if let Some((_, endpoint)) = serving {
        ctx = ctx.at(endpoint.ip, endpoint.port);
    }
    let ctx = Arc::new(ctx);
    let _server = match (serving, listeners) {
        (Some((shared, _)), Some(l)) => Some(node::AbortOnDrop(server::serve(
            ctx.clone(),
            shared.clone(),
            l,
        ))),
        _ => None,
    };
    // Registration happens under the permit; the loops run free afterwards.
    let run = node::run(ctx.clone(), kubelet_version, |cidr| {
        vec![
            tokio::spawn(PodWorker::run(ctx.clone(), cidr)),
            tokio::spawn(crate::npd::run(ctx)),
        ]
    });
    tokio::pin!(run);
    tokio::select! {
        r = &mut run => return r.map_err(Into::into),
        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
    }
    drop(permit);
    run.await.map_err(Into::into)
}

impl HollowNodes {
    /// Starts every node in the background.
    pub fn spawn(options: HollowOptions) -> Self {
        let mut tasks = JoinSet::new();
        let fail = |tasks: &mut JoinSet<_>, node: String, source: ServerError| {
            tasks.spawn(async move { Err(HollowError::Server { node, source }) });
        };
        let server = match &options.server {
            None => None,
            Some(o) => match server::Shared::load(o.clone(), &options.credentials) {
                Ok(shared) => Some(shared),
                Err(source) => {
                    fail(&mut tasks, String::new(), source);
                    return Self { tasks };
                }
            },
        };
        let joining = Arc::new(Joining {
            credentials: options.credentials,
            config: Arc::new(options.config),
            gate: Semaphore::new(options.join_concurrency.max(1)),
            version: tokio::sync::OnceCell::new(),
            kubelet: options.kubelet,
            proxies: options.proxy.map(|kubeconfig| ProxyPool {
                kubeconfig,
                clients: Default::default(),
            }),
            server,
        });
        for (index, name) in options.names.into_iter().enumerate() {
            let endpoint = match options
                .server
                .as_ref()
                .map(|o| o.endpoint(index))
                .transpose()
            {
                Ok(endpoint) => endpoint,
                Err(source) => {
                    fail(&mut tasks, name, source);
                    return Self { tasks };
                }
            };
            let join = join_node(name.clone(), endpoint, joining.clone());
            tasks.spawn(async move {
                let result = join.await;
                if let Err(e) = &result {
                    tracing::error!(node = %name, error = %e, "hollow node stopped");
                }
                result
            });
        }
        Self { tasks }
    }

    /// Waits until every node stops; returns the first error (the others keep running until then).
    pub async fn wait(mut self) -> Result<(), HollowError> {
        while let Some(result) = self.tasks.join_next().await {
            match result {
                Ok(Err(e)) => return Err(e),
                Ok(Ok(())) => {}
                Err(e) if e.is_cancelled() => {}
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        Ok(())
    }

    /// Stops every node at once (as a crash would: no goodbye to the API server).
    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

/// Aborts a task when dropped (the node stops).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_client_gos() {
        let version = |v: &str, c: &str| Info {
            git_version: v.into(),
            git_commit: c.into(),
            ..Info::default()
        };
        assert_eq!(
            user_agent("kubelet", &version("v1.36.3", "0123456789abcdef")),
            "kubelet/v1.36.3 (linux/amd64) kubernetes/0123456"
        );
        assert_eq!(
            user_agent("kube-proxy", &version("v1.36.3-dirty", "")),
            "kube-proxy/v1.36.3 (linux/amd64) kubernetes/unknown"
        );
    }
}
