//! The connection model: one HTTP/2 connection per hollow node, with every request and watch of
//! that node multiplexed on it, as a real kubelet does. kube-client's default stack speaks
//! HTTP/1.1 with one connection per open watch, which would cost each node 3-4 sockets (and the
//! API server 3-4 TLS sessions) instead of one. See `docs/hollow-nodes.md`.
//!
//! The connection is driven with `h2` directly, not through hyper's client: hyper's pool and
//! per-connection dispatch queue cost every node about 12 KiB more, for features (pooling,
//! HTTP/1.1) a hollow node does not use. Requests are kube-core's, sent by [`ApiClient`] rather
//! than `kube::Client`, whose 1,024-slot request queue and its worker task cost every node
//! another 10 KiB (see [`ApiClient`]).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncBufRead, TryStreamExt};
use http_body::Frame;
use http_body_util::BodyExt;
use kube::client::ConfigExt;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tower::{BoxError, ServiceBuilder, ServiceExt};

mod tls;
pub use tls::TlsStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 receive window of each stream, as client-go's transport (see `dial`).
const STREAM_WINDOW: u32 = 4 << 20;
/// HTTP/2 receive window of the whole connection, as client-go's transport (see `dial`).
const CONNECTION_WINDOW: u32 = 1 << 30;
/// client-go's HTTP/2 health check: a PING when nothing was read for 30 s (`ReadIdleTimeout`),
/// the connection closed when no answer comes within 15 s (`PingTimeout`). Watches on a dead
/// connection (API server restarted, half-open socket) then resume on a new one.
const READ_IDLE: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// Set by [`use_stock_connection`].
static STOCK_CONNECTION: AtomicBool = AtomicBool::new(false);

/// Connections dialled from now on go through tokio-rustls with h2's default settings, as a
/// client built from the crates alone would: the reference `kubemark bench
/// --stock-connection` measures this crate's connection against.
pub fn use_stock_connection() {
    STOCK_CONNECTION.store(true, Ordering::Relaxed);
}

/// Why a node could not connect to the API server.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The kubeconfig's server is not an `https://` URL with a host.
    #[error("the API server URL {0} is not https://host[:port]: hollow nodes speak only TLS")]
    Url(String),
    /// The TLS server name is not a valid DNS name or IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// TCP connect failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// host:port
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// TCP connect or TLS handshake took longer than 10 s.
    #[error("connecting to {0}: timed out after 10 s")]
    Timeout(String),
    /// The TLS handshake failed.
    #[error("TLS handshake with {addr}: {source}")]
    Tls {
        /// host:port
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server did not agree to HTTP/2 (ALPN `h2`), which every kube-apiserver does.
    #[error(
        "{0} did not negotiate HTTP/2 (ALPN h2); a load balancer in front of the API server that speaks only HTTP/1.1 is not supported"
    )]
    NoHttp2(String),
    /// The HTTP/2 handshake or a request on the connection failed.
    #[error("HTTP/2: {0}")]
    Http2(#[from] h2::Error),
}

/// Request bodies are whole (`Full`): kube's token-refreshing auth layer wants an
/// `http_body::Body`.
type RequestBody = http_body_util::Full<Bytes>;

type BoxService = tower::util::BoxCloneSyncService<
    http::Request<RequestBody>,
    http::Response<ResponseBody>,
    BoxError,
>;

/// A hollow node's API client: kube-core's requests (`kube::core::Request`), sent on one
/// HTTP/2 connection that is redialled when it fails, with client-go's retries, answers decoded
/// and failures turned into `kube::Error` as `kube::Client` does.
///
/// Why not `kube::Client`: it always puts a 1,024-slot `tower::Buffer` and that buffer's worker
/// task in front of the service, 10 KiB for every node, and one more task hop per request; the
/// connection here is shared under a lock and needs no queue. Like `kube::Client` it takes any
/// `tower::Service` ([`ApiClient::from_service`]), which is how tests put a scripted API server
/// behind it; [`ApiClient::to_kube`] lends it to code that wants a `kube::Client`.
#[derive(Clone)]
pub struct ApiClient {
    // Shared: a node's kubelet loops, informers and pod workers each hold a clone for the node's
    // life, and a boxed service's clone is a new allocation (~200 bytes with kube's layers).
    // Each request clones the service itself, as `oneshot` needs one it owns.
    service: Arc<BoxService>,
    user_agent: Option<http::HeaderValue>,
    /// Where answers are counted (a node's `rest_client_requests_total`).
    counts: Option<Arc<RequestCounts>>,
}

/// Requests a client sent, by method and answer code (0: no answer), as client-go counts them
/// in `rest_client_requests_total`. Empty until the first request; a handful of pairs after.
#[derive(Debug, Default)]
pub struct RequestCounts(std::sync::Mutex<Vec<(&'static str, u16, u64)>>);

impl RequestCounts {
    fn record(&self, method: &http::Method, code: u16) {
        let method = match *method {
            http::Method::GET => "GET",
            http::Method::PUT => "PUT",
            http::Method::PATCH => "PATCH",
            http::Method::POST => "POST",
            http::Method::DELETE => "DELETE",
            _ => "OTHER",
        };
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match counts
            .iter_mut()
            .find(|(m, c, _)| *m == method && *c == code)
        {
            Some((_, _, n)) => *n += 1,
            None => counts.push((method, code, 1)),
        }
    }

    /// (method, code, count), sorted; code 0 is a request that got no answer.
    pub fn snapshot(&self) -> Vec<(&'static str, u16, u64)> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        counts.sort();
        counts
    }
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client for `config`'s server and credentials (client certificates, or tokens through
    /// kube's auth layer) on one HTTP/2 connection, dialled on first use.
    pub fn new(config: &kube::Config) -> Result<Self, kube::Error> {
        kubemark_core::tls::install_crypto_provider();
        let mut tls = config.rustls_client_config()?;
        // No TLS session resumption, as client-go (Go's TLS client keeps no session cache
        // unless told to). rustls's default cache (256 sessions, allocated up front) cost every
        // hollow node 14 KiB, a smaller one still 2 KiB, for a server it dials once.
        tls.resumption = rustls::client::Resumption::disabled();
        if let Some(verifier) = shared_verifier(config) {
            tls.dangerous().set_certificate_verifier(verifier);
        }
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let target = Target::new(config, tls).map_err(|e| kube::Error::Service(Box::new(e)))?;
        // Bearer tokens (bootstrap) need kube's auth layer; client certificates live in the
        // TLS config.
        let service = ServiceBuilder::new()
            .layer(config.base_uri_layer())
            .option_layer(config.auth_layer()?)
            .service(Connection(Arc::new(target)));
        Ok(Self::from_service(service))
    }

    /// A client over any service answering HTTP requests: a scripted API server in tests, or
    /// another transport.
    pub fn from_service<S>(service: S) -> Self
    where
        S: tower::Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        ApiClient {
            service: Arc::new(BoxService::new(service.map_err(Into::into))),
            user_agent: None,
            counts: None,
        }
    }

    /// The same connection, sending `agent` as every request's `User-Agent` (a kubelet sends
    /// `kubelet/<version> (<os>/<arch>) kubernetes/<commit>`; audit logs show it). A value that
    /// cannot be a header (a control character) sends none.
    pub fn with_user_agent(mut self, agent: &str) -> Self {
        self.user_agent = http::HeaderValue::from_str(agent).ok();
        self
    }

    /// The same connection, counting every answer in `counts`.
    pub fn with_request_counts(mut self, counts: Arc<RequestCounts>) -> Self {
        self.counts = Some(counts);
        self
    }

    /// Sends one request with this client's `User-Agent`, re-sent as client-go re-sends (see
    /// [`retry_after`]); the answer whatever its status.
    async fn exchange(
        &self,
        mut parts: http::request::Parts,
        body: Bytes,
    ) -> Result<http::Response<ResponseBody>, BoxError> {
        if let Some(agent) = &self.user_agent {
            parts
                .headers
                .entry(http::header::USER_AGENT)
                .or_insert_with(|| agent.clone());
        }
        let mut retries = 0;
        loop {
            let attempt = rebuilt(&parts, RequestBody::new(body.clone()));
            let response = BoxService::clone(&self.service).oneshot(attempt).await;
            if let Some(counts) = &self.counts {
                let code = response.as_ref().map_or(0, |r| r.status().as_u16());
                counts.record(&parts.method, code);
            }
            let response = response?;
            match retry_after(&response) {
                Some(wait) if retries < MAX_RETRIES => {
                    retries += 1;
                    tracing::debug!(uri = %parts.uri, status = %response.status(), ?wait, retries, "retrying after the server's Retry-After");
                    drop(response);
                    tokio::time::sleep(wait).await;
                }
                _ => return Ok(response),
            }
        }
    }

    /// Sends `request` (see [`ApiClient::exchange`]); an error status becomes
    /// `kube::Error::Api` with the server's `Status`.
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<ResponseBody>, kube::Error> {
        let (parts, body) = request.into_parts();
        let response = self
            .exchange(parts, Bytes::from(body))
            .await
            // kube's auth layer fails with a `kube::Error` (a token that cannot be refreshed).
            .map_err(|e| match e.downcast::<kube::Error>() {
                Ok(e) => *e,
                Err(e) => kube::Error::Service(e),
            })?;
        let status = response.status();
        if !(status.is_client_error() || status.is_server_error()) {
            return Ok(response);
        }
        let bytes = whole(response).await?;
        Err(kube::Error::Api(failure(status, &bytes).boxed()))
    }

    /// Sends `request` and decodes its JSON answer.
    pub async fn request<T: DeserializeOwned>(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<T, kube::Error> {
        let bytes = self.request_bytes(request).await?;
        serde_json::from_slice(&bytes).map_err(kube::Error::SerdeError)
    }

    /// Sends `request` and returns its whole answer. A short answer is a slice of the
    /// connection's read buffer and keeps that buffer allocated: copy what you hold on to.
    pub async fn request_bytes(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<Bytes, kube::Error> {
        whole(self.send(request).await?).await
    }

    /// Sends `request` and returns its answer as it arrives (a watch).
    pub async fn request_stream(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<impl AsyncBufRead + Send + 'static, kube::Error> {
        Ok(self.watch_stream(request).await?.1)
    }

    /// [`ApiClient::request_stream`], and whether the server answered in protobuf frames.
    pub(crate) async fn watch_stream(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<(bool, impl AsyncBufRead + Send + 'static), kube::Error> {
        let response = self.send(request).await?;
        let protobuf =
            crate::protobuf::is_protobuf(response.headers().get(http::header::CONTENT_TYPE));
        let body = response
            .into_body()
            .into_data_stream()
            .map_err(std::io::Error::other)
            .into_async_read();
        Ok((protobuf, body))
    }

    /// The API server's version (`GET /version`).
    pub async fn apiserver_version(
        &self,
    ) -> Result<k8s_openapi::apimachinery::pkg::version::Info, kube::Error> {
        let request = http::Request::get("/version")
            .body(Vec::new())
            .map_err(kube::Error::HttpError)?;
        self.request(request).await
    }

    /// A `kube::Client` over the same connection, for code written against kube's `Api` (it
    /// brings kube's request queue back; meant for short-lived uses such as bootstrapping).
    pub fn to_kube(&self) -> kube::Client {
        let client = self.clone();
        let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
            let client = client.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await?.to_bytes();
                client.exchange(parts, body).await
            }
        });
        kube::Client::new(service, "default")
    }
}

/// The server certificate verifier for `config`'s CA bundle, one per bundle for the whole
/// process. Built per node (as `rustls_client_config` does), every node's client kept its own
/// parsed copy of the cluster CA, ~0.5 KiB each, for thousands of nodes that trust the same CA.
/// `None` where kube's own verifier must stay: no CA bundle (platform roots), a CA file kube
/// re-reads for rotation, or verification turned off.
fn shared_verifier(
    config: &kube::Config,
) -> Option<Arc<dyn rustls::client::danger::ServerCertVerifier>> {
    type Verifiers = Vec<(Vec<Vec<u8>>, Arc<rustls::client::WebPkiServerVerifier>)>;
    static VERIFIERS: std::sync::Mutex<Verifiers> = std::sync::Mutex::new(Vec::new());
    if config.accept_invalid_certs || config.root_cert_file.is_some() {
        return None;
    }
    let roots = config.root_cert.as_ref()?;
    let mut verifiers = VERIFIERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, verifier)) = verifiers.iter().find(|(r, _)| r == roots) {
        return Some(verifier.clone());
    }
    let mut store = rustls::RootCertStore::empty();
    for der in roots {
        store
            .add(rustls::pki_types::CertificateDer::from(der.clone()))
            .ok()?;
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder(Arc::new(store))
        .build()
        .ok()?;
    verifiers.push((roots.clone(), verifier.clone()));
    Some(verifier)
}

/// A request with `parts`' method, URI and headers (`Parts` itself is not `Clone`), to send
/// the same request again.
fn rebuilt<B>(parts: &http::request::Parts, body: B) -> http::Request<B> {
    let mut request = http::Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.headers_mut() = parts.headers.clone();
    request
}

/// A response's whole body.
async fn whole(response: http::Response<ResponseBody>) -> Result<Bytes, kube::Error> {
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| kube::Error::Service(Box::new(e)))?;
    Ok(body.to_bytes())
}

/// The `Status` of a failed request: the server's, or, for a body that is not one (a proxy's
/// page, `{}`), its text on one line (at most 1 KiB) with the HTTP status as the code.
fn failure(status: http::StatusCode, body: &[u8]) -> kube::core::Status {
    let text = || {
        let text = String::from_utf8_lossy(body);
        let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        line.chars().take(1024).collect::<String>()
    };
    // A client that accepts protobuf gets its errors in protobuf.
    let protobuf = crate::protobuf::unwrap(bytes::Bytes::copy_from_slice(body))
        .ok()
        .filter(|u| u.kind == "Status")
        .and_then(|u| crate::protobuf::status(&u.raw).ok())
        .map(|(code, reason, message)| {
            kube::core::Status::failure(&message, &reason).with_code(code)
        });
    // Every field of `Status` has a default, so any JSON object decodes as one; an empty one
    // is not the server's answer.
    let mut failure = match protobuf {
        Some(s) => s,
        None => match serde_json::from_slice::<kube::core::Status>(body) {
            Ok(s) if s.code != 0 || !s.message.is_empty() => s,
            _ => kube::core::Status::failure(&text(), "Failed to parse error data"),
        },
    };
    if failure.code == 0 {
        failure.code = status.as_u16();
    }
    failure
}

/// A `tower::Service` sending each request as a stream of the node's HTTP/2 connection.
#[derive(Clone)]
struct Connection(Arc<Target>);

struct Target {
    addr: String,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    current: Mutex<Option<Live>>,
}

struct Live {
    send: h2::client::SendRequest<Bytes>,
    /// Set by the connection's task when the connection ends.
    closed: Arc<AtomicBool>,
}

impl Target {
    fn new(config: &kube::Config, tls: rustls::ClientConfig) -> Result<Self, ConnectError> {
        let url = &config.cluster_url;
        let host = url
            .host()
            .filter(|_| url.scheme_str() == Some("https"))
            .ok_or_else(|| ConnectError::Url(url.to_string()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = config.tls_server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|_| ConnectError::ServerName(name.to_string()))?;
        let port = url.port_u16().unwrap_or(443);
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Target {
            addr,
            server_name,
            tls: Arc::new(tls),
            current: Mutex::new(None),
        })
    }

    /// The live connection (with its "closed" flag), dialled if there is none. Callers wait for
    /// one dial together (under the lock) instead of each dialling a connection of its own.
    async fn sender(
        &self,
    ) -> Result<(h2::client::SendRequest<Bytes>, Arc<AtomicBool>), ConnectError> {
        let mut current = self.current.lock().await;
        if let Some(live) = current
            .as_ref()
            .filter(|l| !l.closed.load(Ordering::Acquire))
        {
            return Ok((live.send.clone(), live.closed.clone()));
        }
        *current = None;
        let live = self.dial().await?;
        let found = (live.send.clone(), live.closed.clone());
        *current = Some(live);
        Ok(found)
    }

    async fn dial(&self) -> Result<Live, ConnectError> {
        let addr = &self.addr;
        let timed_out = |_| ConnectError::Timeout(addr.clone());
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr.as_str()))
            .await
            .map_err(timed_out)?
            .map_err(|source| ConnectError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let handshake = async {
            if STOCK_CONNECTION.load(Ordering::Relaxed) {
                let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                    .connect(self.server_name.clone(), tcp)
                    .await?;
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                Ok::<_, std::io::Error>(Handshake::Stock(tls, h2))
            } else {
                let tls =
                    TlsStream::connect(self.tls.clone(), self.server_name.clone(), tcp).await?;
                let h2 = tls.alpn_protocol() == Some(b"h2");
                Ok(Handshake::Own(tls, h2))
            }
        };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .map_err(timed_out)?
            .map_err(|source| ConnectError::Tls {
                addr: addr.clone(),
                source,
            })?;
        match tls {
            Handshake::Own(_, false) | Handshake::Stock(_, false) => {
                Err(ConnectError::NoHttp2(addr.clone()))
            }
            Handshake::Own(io, true) => Ok(start(io, http2()).await?),
            Handshake::Stock(io, true) => Ok(start(io, stock_http2()).await?),
        }
    }

    /// Sends one request on the connection (dialled if needed) and waits for its response head.
    async fn send(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
    ) -> Result<http::Response<h2::RecvStream>, ConnectError> {
        let end = body.is_empty();
        // A connection that cannot open another stream (the server sent GOAWAY, as an API server
        // with --goaway-chance does, while its open watches go on) is left to its streams and
        // the request goes to a new one, as Go's HTTP/2 transport does: otherwise every request
        // of the node would fail until the last watch on the old connection ended.
        let mut attempts = 0;
        let (response, mut stream) = loop {
            attempts += 1;
            let (send, closed) = self.sender().await?;
            let opened = match send.ready().await {
                Ok(mut send) => send.send_request(rebuilt(parts, ()), end),
                Err(e) => Err(e),
            };
            match opened {
                Ok(opened) => break opened,
                Err(e) => {
                    closed.store(true, Ordering::Release);
                    if attempts >= 2 {
                        return Err(e.into());
                    }
                    tracing::debug!(error = %e, "API server connection takes no new streams; redialling");
                }
            }
        };
        if !end {
            stream.send_data(body, true)?;
        }
        Ok(response.await?)
    }
}

/// The TLS stream of a new connection and whether the server chose HTTP/2.
enum Handshake {
    Own(TlsStream<TcpStream>, bool),
    Stock(tokio_rustls::client::TlsStream<TcpStream>, bool),
}

/// The HTTP/2 settings of a node's connection.
fn http2() -> h2::client::Builder {
    let mut builder = h2::client::Builder::new();
    // Flow-control windows as client-go's transport announces them (golang.org/x/net/http2:
    // 4 MiB per stream, 1 GiB per connection). h2's default is 64 KiB for both, so one watch
    // whose reader was busy elsewhere (the pod worker awaiting a token request while its own
    // pod watch filled with a burst of pods) held the whole connection's window: no response
    // could arrive on any stream, that request included, nor a lease renewal's. The windows
    // are credit, not buffers: memory is spent only on what a reader leaves unread.
    builder
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        // No HPACK dynamic table for responses (SETTINGS_HEADER_TABLE_SIZE 0, which Go's
        // server honours): the API server's per-response values (`audit-id`, `date`) fill the
        // 4 KiB table a client announces by default, and h2 keeps its entries, ~8 KiB per
        // connection, for the connection's life. Responses then carry those headers
        // literally, ~100 bytes more each.
        .header_table_size(0);
    builder
}

/// The HTTP/2 settings of the `--stock-connection` reference: h2's defaults but for the windows,
/// which a node needs to work at all (see [`http2`]).
fn stock_http2() -> h2::client::Builder {
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW);
    builder
}

/// Runs the HTTP/2 handshake over `io` and drives the connection on a task of its own.
async fn start<T>(io: T, builder: h2::client::Builder) -> Result<Live, h2::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let read = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicBool::new(false));
    let io = Tracked {
        io,
        read: read.clone(),
    };
    let (send, connection) = builder.handshake(io).await?;
    // Boxed: moved into the task by value, the connection (2.4 KiB with its TLS stream) was
    // laid out three times in the task's future (argument, pinned local, select arm): 7.3 KiB
    // per node for a 2.4 KiB value.
    tokio::spawn(drive(Box::pin(connection), read, closed.clone()));
    Ok(Live { send, closed })
}

/// Runs the connection until it ends or fails its health check.
async fn drive<T>(
    mut connection: Pin<Box<h2::client::Connection<T, Bytes>>>,
    read: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut ping = connection.ping_pong();
    loop {
        tokio::select! {
            result = &mut connection => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "API server connection ended");
                }
                break;
            }
            _ = tokio::time::sleep(READ_IDLE) => {
                if read.swap(false, Ordering::Relaxed) {
                    continue;
                }
                let Some(ping) = ping.as_mut() else { continue };
                let pong = tokio::time::timeout(PING_TIMEOUT, ping.ping(h2::Ping::opaque()));
                tokio::select! {
                    _ = &mut connection => break,
                    answered = pong => if !matches!(answered, Ok(Ok(_))) {
                        tracing::debug!("API server connection failed its health check; closing it");
                        break;
                    }
                }
            }
        }
    }
    closed.store(true, Ordering::Release);
}

impl tower::Service<http::Request<RequestBody>> for Connection {
    type Response = http::Response<ResponseBody>;
    // Boxed: kube's auth layer, put in front of this service for tokens, has this error type.
    type Error = BoxError;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Backpressure is the connection's stream limit, met in `ready()` below.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let target = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            let response = target.send(&parts, body).await?;
            Ok(response.map(|stream| ResponseBody(Inner::Stream(stream))))
        })
    }
}

/// client-go's request retries: at most 10 (`rest.Request`'s default `maxRetries`).
const MAX_RETRIES: u32 = 10;

/// As client-go's `checkWait`: a 429 (API Priority and Fairness rejecting the request) or a 5xx
/// that says when to come back (`Retry-After: <seconds>`) is sent again after that long; the
/// request was not processed. Without the header the error goes to the caller.
fn retry_after<B>(response: &http::Response<B>) -> Option<Duration> {
    let status = response.status();
    if status != http::StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
        return None;
    }
    let seconds: u64 = response
        .headers()
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// A response body: read from its HTTP/2 stream, releasing flow-control capacity as it is
/// read, or whole (from a service other than the connection, such as a test's).
pub struct ResponseBody(Inner);

enum Inner {
    Stream(h2::RecvStream),
    Whole(Option<Bytes>),
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        ResponseBody(Inner::Whole(Some(bytes).filter(|b| !b.is_empty())))
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let stream = match &mut self.0 {
            Inner::Stream(stream) => stream,
            Inner::Whole(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        };
        match ready!(stream.poll_data(cx)) {
            Some(Ok(data)) => {
                let _ = stream.flow_control().release_capacity(data.len());
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => match ready!(stream.poll_trailers(cx)) {
                Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                Ok(None) => Poll::Ready(None),
                Err(e) => Poll::Ready(Some(Err(e))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Stream(stream) => stream.is_end_stream(),
            Inner::Whole(bytes) => bytes.is_none(),
        }
    }
}

/// The TLS stream, noting that something was read (for the health check).
struct Tracked<T> {
    io: T,
    read: Arc<AtomicBool>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut self.io).poll_read(cx, buf));
        if buf.filled().len() > before {
            self.read.store(true, Ordering::Relaxed);
        }
        Poll::Ready(result)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A token bucket, as client-go's `--kube-api-qps` / `--kube-api-burst` limiter.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    inner: Arc<Mutex<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    burst: f64,
    qps: f64,
    last: Instant,
}

impl RateLimiter {
    /// `qps` tokens per second, at most `burst` at once; `qps <= 0` means unlimited.
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            inner: Arc::new(Mutex::new(Bucket {
                tokens: burst,
                burst,
                qps,
                last: Instant::now(),
            })),
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let wait = {
            let mut b = self.inner.lock().await;
            if b.qps <= 0.0 {
                return;
            }
            let now = Instant::now();
            b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * b.qps).min(b.burst);
            b.last = now;
            b.tokens -= 1.0;
            if b.tokens >= 0.0 {
                None
            } else {
                // Bounded: a tiny qps from a library caller must not overflow the Duration.
                Some(
                    Duration::try_from_secs_f64(-b.tokens / b.qps)
                        .unwrap_or(Duration::from_secs(3600))
                        .min(Duration::from_secs(3600)),
                )
            }
        };
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA (its certificate's DER) and a server certificate for `127.0.0.1` it signed.
    fn ca_and_server() -> (Vec<u8>, rustls::pki_types::CertificateDer<'static>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_der = ca.self_signed(&ca_key).unwrap().der().to_vec();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        (ca_der, server.der().clone())
    }

    fn trusting(ca: &[u8]) -> kube::Config {
        let mut config = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
        config.root_cert = Some(vec![ca.to_vec()]);
        config
    }

    #[test]
    fn nodes_trusting_one_ca_share_one_verifier_that_still_checks_the_chain() {
        kubemark_core::tls::install_crypto_provider();
        let (ca, server) = ca_and_server();
        let (other_ca, other_server) = ca_and_server();
        let a = shared_verifier(&trusting(&ca)).unwrap();
        let b = shared_verifier(&trusting(&ca)).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one verifier per CA bundle");
        let other = shared_verifier(&trusting(&other_ca)).unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
        let verify = |v: &Arc<dyn rustls::client::danger::ServerCertVerifier>, cert| {
            v.verify_server_cert(
                cert,
                &[],
                &ServerName::try_from("127.0.0.1").unwrap(),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
        };
        verify(&a, &server).expect("the CA's own server certificate is trusted");
        verify(&other, &other_server).expect("each bundle verifies its own chain");
        assert!(
            verify(&a, &other_server).is_err(),
            "a certificate of another CA is refused"
        );
        // Where kube's own verifier must stay, none is shared.
        let mut insecure = trusting(&ca);
        insecure.accept_invalid_certs = true;
        assert!(shared_verifier(&insecure).is_none());
        let mut reloading = trusting(&ca);
        reloading.root_cert_file = Some("/ca.crt".into());
        assert!(shared_verifier(&reloading).is_none());
        let mut platform = trusting(&ca);
        platform.root_cert = None;
        assert!(shared_verifier(&platform).is_none());
    }

    #[test]
    fn retries_follow_client_go_429_and_5xx_with_retry_after_only() {
        let response = |code, after| respond(code, after, "");
        assert_eq!(
            retry_after(&response(429, Some("1"))),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            retry_after(&response(503, Some("3"))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retry_after(&response(429, None)), None);
        assert_eq!(retry_after(&response(500, Some("soon"))), None);
        assert_eq!(retry_after(&response(409, Some("1"))), None);
        assert_eq!(retry_after(&response(200, Some("1"))), None);
    }

    /// What the scripted server was sent.
    type Seen = Arc<std::sync::Mutex<Vec<(http::Method, http::HeaderMap, Bytes)>>>;

    /// A client whose API server answers from `script` in order, recording the requests.
    fn scripted(script: Vec<http::Response<&'static str>>) -> (ApiClient, Seen) {
        let seen = Seen::default();
        let script = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
            script,
        )));
        let recorded = seen.clone();
        let service = tower::service_fn(move |request: http::Request<RequestBody>| {
            let next = script
                .lock()
                .unwrap()
                .pop_front()
                .expect("script exhausted");
            let recorded = recorded.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await?.to_bytes();
                recorded
                    .lock()
                    .unwrap()
                    .push((parts.method, parts.headers, body));
                Ok::<_, BoxError>(next.map(|b| ResponseBody::from(Bytes::from(b))))
            }
        });
        (ApiClient::from_service(service), seen)
    }

    fn respond(
        code: u16,
        retry_after: Option<&str>,
        body: &'static str,
    ) -> http::Response<&'static str> {
        let mut r = http::Response::builder().status(code);
        if let Some(a) = retry_after {
            r = r.header("Retry-After", a);
        }
        r.body(body).unwrap()
    }

    const AGENT: &str = "kubelet/v1.36.3 (linux/amd64) kubernetes/unknown";
    const CREATED: &str =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"ns"}}"#;

    fn config_map() -> k8s_openapi::api::core::v1::ConfigMap {
        serde_json::from_str(CREATED).unwrap()
    }

    /// Every request the server saw was the same POST of the config map, with our agent.
    fn all_the_same_post(seen: &Seen, n: usize) {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), n);
        for (method, headers, body) in seen.iter() {
            assert_eq!(method, http::Method::POST);
            assert_eq!(headers[http::header::USER_AGENT], AGENT);
            assert_eq!(headers[http::header::CONTENT_TYPE], "application/json");
            let sent: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(sent["metadata"]["name"], "c", "the body is re-sent whole");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_request_is_sent_again_after_retry_after() {
        let (client, seen) = scripted(vec![
            respond(429, Some("2"), "{}"),
            respond(503, Some("1"), "{}"),
            respond(201, None, CREATED),
        ]);
        let client = client.with_user_agent(AGENT);
        let start = Instant::now();
        let api = crate::api::Api::namespaced(client, "ns");
        api.create(&kube::api::PostParams::default(), &config_map())
            .await
            .unwrap();
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(3),
            "waited 2 s, then 1 s"
        );
        all_the_same_post(&seen, 3);
        // The answer is not read, so it is asked for in protobuf, as the kubelet asks.
        for (_, headers, _) in seen.lock().unwrap().iter() {
            assert_eq!(headers[http::header::ACCEPT], crate::protobuf::ACCEPT);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_kube_client_lent_by_to_kube_retries_and_identifies_itself_too() {
        let (client, seen) = scripted(vec![
            respond(429, Some("1"), "{}"),
            respond(201, None, CREATED),
        ]);
        let kube = client.with_user_agent(AGENT).to_kube();
        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(kube, "ns");
        api.create(&kube::api::PostParams::default(), &config_map())
            .await
            .unwrap();
        all_the_same_post(&seen, 2);
    }

    #[tokio::test]
    async fn failures_carry_the_servers_status_or_its_text_on_one_line() {
        let long: &'static str = "x".repeat(3000).leak();
        let (client, seen) = scripted(vec![
            respond(
                409,
                None,
                r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"already exists","reason":"AlreadyExists","code":409}"#,
            ),
            respond(502, None, "<html>\n<b>Bad gateway</b>\n</html>"),
            respond(500, None, "{}"),
            respond(404, None, r#"{"message":"no such thing"}"#),
            respond(503, None, long),
        ]);
        let get = || {
            http::Request::get("/api/v1/nodes/n")
                .body(Vec::new())
                .unwrap()
        };
        let mut failures = Vec::new();
        for _ in 0..5 {
            let Err(kube::Error::Api(s)) = client.request_bytes(get()).await else {
                panic!("a failure accepted")
            };
            failures.push(s);
        }
        assert_eq!(
            (failures[0].code, failures[0].reason.as_str()),
            (409, "AlreadyExists")
        );
        assert_eq!(failures[1].code, 502);
        assert_eq!(failures[1].message, "<html> <b>Bad gateway</b> </html>");
        // JSON that is not a Status: the HTTP status is the code.
        assert_eq!(
            (failures[2].code, failures[2].message.as_str()),
            (500, "{}")
        );
        assert_eq!(
            (failures[3].code, failures[3].message.as_str()),
            (404, "no such thing")
        );
        assert_eq!(failures[4].message.len(), 1024, "long pages are cut");
        // A 5xx without Retry-After is the caller's to handle: not sent again.
        assert_eq!(seen.lock().unwrap().len(), 5);
    }

    #[tokio::test]
    async fn connection_errors_name_the_server_and_the_cause() {
        let plain = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let Err(err) = ApiClient::new(&plain) else {
            panic!("an http:// server was accepted")
        };
        let err = err.to_string();
        assert!(err.contains("is not https://"), "{err}");

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("https://127.0.0.1:{port}");
        let client = ApiClient::new(&kube::Config::new(url.parse().unwrap())).unwrap();
        let err = client.apiserver_version().await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("connecting to 127.0.0.1:{port}")) && err.contains("refused"),
            "{err}"
        );
        assert!(!err.contains('\n'), "one line: {err}");
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_burst_then_paces_at_qps() {
        let limiter = RateLimiter::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst passes at once");
        for _ in 0..10 {
            limiter.acquire().await;
        }
        let elapsed = start.elapsed().as_secs_f64();
        assert!(
            (0.95..=1.05).contains(&elapsed),
            "10 more at 10 qps take ~1 s, took {elapsed}"
        );
    }
}
