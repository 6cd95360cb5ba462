//! The connection model: one HTTP/2 connection per hollow node, with every request and watch of
//! that node multiplexed on it, as a real kubelet does. kube-client's default stack speaks
//! HTTP/1.1 with one connection per open watch, which would cost each node 3-4 sockets (and the
//! API server 3-4 TLS sessions) instead of one. See `docs/hollow-nodes.md`.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ConfigExt};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tower::ServiceBuilder;

/// Builds a client that negotiates HTTP/2 (falling back to HTTP/1.1 if the server refuses).
pub fn http2_client(config: &kube::Config) -> Result<kube::Client, kube::Error> {
    kubemark_core::tls::install_crypto_provider();
    let mut tls = config.rustls_client_config()?;
    // One server per client: rustls's default resumption cache (256 sessions, allocated up
    // front) cost every hollow node 14 KiB for nothing.
    tls.resumption = rustls::client::Resumption::in_memory_sessions(4);
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let hyper: HyperClient<_, Body> = HyperClient::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        // Keepalive pings find a dead connection (API server restart) within ~30 s, so watches
        // resume instead of hanging on a half-open socket.
        .http2_keep_alive_interval(Some(Duration::from_secs(15)))
        .http2_keep_alive_timeout(Duration::from_secs(15))
        .http2_keep_alive_while_idle(true)
        .build(https);
    // Bearer tokens (bootstrap) need kube's auth layer; client certificates live in the TLS config.
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .map_err(|e: hyper_util::client::legacy::Error| -> tower::BoxError { Box::new(e) })
        .service(hyper);
    Ok(kube::Client::new(service, config.default_namespace.clone()))
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
                Some(Duration::from_secs_f64(-b.tokens / b.qps))
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
