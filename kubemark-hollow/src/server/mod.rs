//! The kubelet API of every hollow node: HTTPS on the node's own address and port (10250 by
//! default), with the kubelet's delegated authentication and authorization, and plain HTTP on
//! the read-only port when asked. The API server (`kubectl logs`, the node proxy),
//! metrics-server, Prometheus and resource-usage collectors talk to it as to a kubelet.
//!
//! Each node costs a listening socket and a small accept task while nobody connects; a
//! connection's serving certificate is made for it and kept by nobody.

mod auth;
mod logs;
mod metrics;
mod routes;
mod tls;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use crate::identity::Credentials;
use crate::node::NodeContext;
pub use tls::TlsError;

/// The kubelet's default port.
pub use crate::node::DEFAULT_KUBELET_PORT as DEFAULT_PORT;

/// How long a client has for its TLS handshake and its request headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where each node of a process gets its address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeAddresses {
    /// Node `i` at the `i`-th address from this one, all on the same port (this machine: every
    /// address of 127.0.0.0/8 is local).
    Consecutive(Ipv4Addr),
    /// Every node at this address (a pod's IP), node `i` on the `i`-th port from the base port.
    Shared(Ipv4Addr),
}

/// How the nodes of a process serve their kubelet API.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The nodes' addresses.
    pub addresses: NodeAddresses,
    /// `--kubelet-port` (the first node's, with [`NodeAddresses::Shared`]).
    pub port: u16,
    /// `--kubelet-read-only-port`; `None` (0) is off, as in kubelets today.
    pub read_only_port: Option<u16>,
    /// The serving CA's certificate and key (PEM files); without them each node signs its
    /// own certificate, as a kubelet without certificate files does.
    pub serving_ca: Option<(PathBuf, PathBuf)>,
    /// The CA whose client certificates authenticate (`--client-ca-file`); by default the CA
    /// the nodes trust for the API server (the cluster CA).
    pub client_ca: Option<PathBuf>,
    /// A network namespace (a file such as `/var/run/netns/NAME`) to listen in; the nodes'
    /// API clients stay in this process's namespace.
    pub netns: Option<PathBuf>,
}

/// Errors of the kubelet server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// No client CA is known.
    #[error("no client CA: give --client-ca-file, or a kubeconfig with the cluster CA")]
    NoClientCa,
    /// Node `index` would get an address or port past the end of the range.
    #[error("node {index} has no address: {what} runs out past {start} (too many nodes for it)")]
    OutOfRange {
        /// The node's index in the process.
        index: usize,
        /// Address or port.
        what: &'static str,
        /// Where the range starts.
        start: String,
    },
    /// A listener could not be opened.
    #[error("listening on {address}: {source}")]
    Listen {
        /// Where.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The network namespace could not be entered.
    #[error("entering network namespace {path}: {reason}")]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A node's kubelet API endpoints: its address, its secure port and its read-only port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// The node's address.
    pub ip: Ipv4Addr,
    /// The secure port.
    pub port: u16,
    /// The read-only port, if any.
    pub read_only_port: Option<u16>,
}

impl ServerOptions {
    /// The endpoint of the process's `index`-th node.
    pub fn endpoint(&self, index: usize) -> Result<Endpoint, ServerError> {
        let out = |what, start: String| ServerError::OutOfRange { index, what, start };
        let offset = |base: u16, what| {
            u16::try_from(index)
                .ok()
                .and_then(|i| base.checked_add(i))
                .ok_or_else(|| out(what, base.to_string()))
        };
        match self.addresses {
            NodeAddresses::Consecutive(first) => {
                let ip = u32::try_from(index)
                    .ok()
                    .and_then(|i| u32::from(first).checked_add(i))
                    .map(Ipv4Addr::from)
                    .filter(|ip| !first.is_loopback() || ip.is_loopback())
                    .ok_or_else(|| out("the address range", first.to_string()))?;
                Ok(Endpoint {
                    ip,
                    port: self.port,
                    read_only_port: self.read_only_port,
                })
            }
            NodeAddresses::Shared(ip) => Ok(Endpoint {
                ip,
                port: offset(self.port, "the port range")?,
                read_only_port: match self.read_only_port {
                    Some(p) => Some(offset(p, "the read-only port range")?),
                    None => None,
                },
            }),
        }
    }
}

/// What every node server of a process shares.
pub(crate) struct Shared {
    tls: tls::Tls,
    options: ServerOptions,
    /// The API server's `host:port` (the `host` label of the nodes' request counts).
    api_host: String,
}

impl Shared {
    /// Loads the CAs named by `options` (the client CA from `credentials`' kubeconfig when
    /// not given).
    pub(crate) fn load(
        options: ServerOptions,
        credentials: &Credentials,
    ) -> Result<Arc<Self>, ServerError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| ServerError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let signer = match &options.serving_ca {
            Some((cert, key)) => {
                let cert = String::from_utf8_lossy(&read(cert)?).into_owned();
                let key = String::from_utf8_lossy(&read(key)?).into_owned();
                tls::Signer::from_pem(&cert, &key)?
            }
            None => tls::Signer::SelfSigned,
        };
        let client_ca = match &options.client_ca {
            Some(path) => read(path)?,
            None => kubeconfig_ca(credentials).ok_or(ServerError::NoClientCa)?,
        };
        Ok(Arc::new(Shared {
            tls: tls::Tls::new(signer, &client_ca)?,
            options,
            api_host: kubeconfig_host(credentials).unwrap_or_default(),
        }))
    }
}

fn kubeconfig_path(credentials: &Credentials) -> &Path {
    match credentials {
        Credentials::Kubeconfig(path) => path,
        Credentials::Bootstrap {
            bootstrap_kubeconfig,
            ..
        } => bootstrap_kubeconfig,
    }
}

/// The API server's `host:port` in the kubeconfig of `credentials`.
fn kubeconfig_host(credentials: &Credentials) -> Option<String> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig_path(credentials)).ok()?;
    let server = config.clusters.first()?.cluster.as_ref()?.server.clone()?;
    let uri: http::Uri = server.parse().ok()?;
    Some(uri.authority()?.to_string())
}

/// The CA (PEM) that the kubeconfig of `credentials` trusts for the API server.
fn kubeconfig_ca(credentials: &Credentials) -> Option<Vec<u8>> {
    use base64::Engine;
    let path = kubeconfig_path(credentials);
    let config = kube::config::Kubeconfig::read_from(path).ok()?;
    let cluster = config.clusters.first()?.cluster.as_ref()?;
    if let Some(data) = &cluster.certificate_authority_data {
        return base64::engine::general_purpose::STANDARD.decode(data).ok();
    }
    let file = Path::new(cluster.certificate_authority.as_ref()?);
    let file = if file.is_relative() {
        path.parent()?.join(file)
    } else {
        file.to_path_buf()
    };
    std::fs::read(file).ok()
}

/// The open listeners of one node.
pub(crate) struct Listeners {
    secure: TcpListener,
    read_only: Option<TcpListener>,
}

/// Opens node `endpoint`'s listeners (in the configured network namespace).
pub(crate) fn listen(shared: &Shared, endpoint: Endpoint) -> Result<Listeners, ServerError> {
    let secure = SocketAddr::new(IpAddr::V4(endpoint.ip), endpoint.port);
    let read_only = endpoint
        .read_only_port
        .map(|p| SocketAddr::new(IpAddr::V4(endpoint.ip), p));
    let netns = shared.options.netns.as_deref();
    let open = |address| {
        let listener = bind(address, netns)?;
        TcpListener::from_std(listener).map_err(|source| ServerError::Listen { address, source })
    };
    Ok(Listeners {
        secure: open(secure)?,
        read_only: read_only.map(open).transpose()?,
    })
}

fn bind(address: SocketAddr, netns: Option<&Path>) -> Result<std::net::TcpListener, ServerError> {
    let listen = move || {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    let listen_err = |source| ServerError::Listen { address, source };
    let Some(netns) = netns else {
        return listen().map_err(listen_err);
    };
    // A network namespace is a property of a thread: a short-lived one enters it and opens the
    // socket, which stays in that namespace whichever thread uses it later.
    let path = netns.to_path_buf();
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let ns = std::fs::File::open(&path).map_err(|e| ServerError::Netns {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                    ServerError::Netns {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?;
                listen().map_err(listen_err)
            })
            .join()
            .unwrap_or_else(|_| {
                Err(ServerError::Netns {
                    path: path.clone(),
                    reason: "the thread that entered it panicked".into(),
                })
            })
    })
}

/// One node's server: its context, the shared TLS, and its auth caches.
pub(crate) struct NodeServer {
    ctx: Arc<NodeContext>,
    shared: Arc<Shared>,
    auth: auth::Auth,
}

impl NodeServer {
    /// The node's API client and its rate limit.
    fn api(&self) -> (&crate::client::ApiClient, &crate::client::RateLimiter) {
        (&self.ctx.client, &self.ctx.limiter)
    }
}

/// Serves node `ctx`'s kubelet API on `listeners` until the returned tasks are aborted.
pub(crate) fn serve(
    ctx: Arc<NodeContext>,
    shared: Arc<Shared>,
    listeners: Listeners,
) -> Vec<tokio::task::AbortHandle> {
    let node = Arc::new(NodeServer {
        ctx,
        shared,
        auth: auth::Auth::default(),
    });
    let mut tasks = vec![tokio::spawn(accept(node.clone(), listeners.secure, true)).abort_handle()];
    if let Some(read_only) = listeners.read_only {
        tasks.push(tokio::spawn(accept(node, read_only, false)).abort_handle());
    }
    tasks
}

/// Accepts connections until aborted; the connections end with it (the node stopped). Their
/// set is made on the first connection: an idle node keeps none.
async fn accept(node: Arc<NodeServer>, listener: TcpListener, secure: bool) {
    let mut connections: Option<tokio::task::JoinSet<()>> = None;
    loop {
        let finished = async {
            match connections.as_mut() {
                Some(set) if !set.is_empty() => set.join_next().await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Boxed: the connection's state lives only while the client is connected.
                    let conn = Box::pin(connection(node.clone(), stream, secure));
                    connections.get_or_insert_with(Default::default).spawn(conn);
                }
                Err(e) => {
                    // Out of file descriptors, mostly: wait instead of spinning.
                    tracing::warn!(node = %node.ctx.name, error = %e, "kubelet server cannot accept");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            _ = finished => {
                if connections.as_ref().is_some_and(|c| c.is_empty()) {
                    connections = None;
                }
            }
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// Over TLS with a client certificate of the client CA.
    Certificate(auth::User),
    /// Over TLS without one: a bearer token is needed.
    Anonymous,
    /// On the read-only port: nobody is checked.
    ReadOnly,
}

async fn connection(node: Arc<NodeServer>, stream: TcpStream, secure: bool) {
    let _ = stream.set_nodelay(true);
    if !secure {
        return http(node, TokioIo::new(stream), Caller::ReadOnly).await;
    }
    let endpoint_ip = IpAddr::V4(node.ctx.ip);
    let config = match node.shared.tls.config(&node.ctx.name, endpoint_ip) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(node = %node.ctx.name, error = %e, "kubelet server TLS");
            return;
        }
    };
    let accepted = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_rustls::TlsAcceptor::from(config).accept(stream),
    )
    .await;
    let Ok(Ok(tls)) = accepted else {
        tracing::debug!(node = %node.ctx.name, "kubelet server: TLS handshake failed");
        return;
    };
    let caller = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| tls::certificate_user(c))
        .map(|(name, groups)| Caller::Certificate(auth::User::from_certificate(name, groups)))
        .unwrap_or(Caller::Anonymous);
    http(node, TokioIo::new(tls), caller).await;
}

async fn http<I>(node: Arc<NodeServer>, io: TokioIo<I>, caller: Caller)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let node = node.clone();
        let caller = caller.clone();
        async move { Ok::<_, std::convert::Infallible>(routes::handle(&node, &caller, request).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .serve_connection(io, service)
        .await;
}

/// A response body: whole, or streamed (`follow`).
pub(crate) type Body = BoxBody<Bytes, std::convert::Infallible>;

/// A whole body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into()).boxed()
}

/// A plain-text answer, as the kubelet's errors are.
pub(crate) fn text(code: http::StatusCode, body: &str) -> http::Response<Body> {
    let mut response = http::Response::new(full(body.to_string()));
    *response.status_mut() = code;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(addresses: NodeAddresses, read_only: Option<u16>) -> ServerOptions {
        ServerOptions {
            addresses,
            port: 10250,
            read_only_port: read_only,
            serving_ca: None,
            client_ca: None,
            netns: None,
        }
    }

    #[test]
    fn nodes_get_consecutive_addresses_or_consecutive_ports() {
        let o = options(
            NodeAddresses::Consecutive(Ipv4Addr::new(127, 10, 0, 1)),
            None,
        );
        assert_eq!(
            o.endpoint(300).unwrap(),
            Endpoint {
                ip: Ipv4Addr::new(127, 10, 1, 45),
                port: 10250,
                read_only_port: None
            }
        );
        // Never out of the loopback range when it starts there.
        let o = options(
            NodeAddresses::Consecutive(Ipv4Addr::new(127, 255, 255, 250)),
            None,
        );
        assert!(o.endpoint(5).is_ok());
        assert!(o.endpoint(6).unwrap_err().to_string().contains("node 6"));

        let o = options(
            NodeAddresses::Shared(Ipv4Addr::new(10, 0, 0, 7)),
            Some(20000),
        );
        assert_eq!(
            o.endpoint(3).unwrap(),
            Endpoint {
                ip: Ipv4Addr::new(10, 0, 0, 7),
                port: 10253,
                read_only_port: Some(20003)
            }
        );
        assert!(o.endpoint(60000).is_err());
    }
}
