//! The kubelet's authentication and authorization, delegated to the API server as a kubelet
//! with `authentication.webhook` and `authorization.mode: Webhook` does: a client certificate
//! of the cluster CA or a bearer token (TokenReview) names the user, and a SubjectAccessReview
//! on the node's `nodes/<subresource>` decides. Both answers are cached for the kubelet's
//! default times.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use sha2::{Digest, Sha256};

use crate::client::{ApiClient, RateLimiter};

/// `authentication.webhook.cacheTTL`.
const TOKEN_TTL: Duration = Duration::from_secs(120);
/// `authorization.webhook.cacheAuthorizedTTL`.
const ALLOWED_TTL: Duration = Duration::from_secs(300);
/// `authorization.webhook.cacheUnauthorizedTTL`.
const DENIED_TTL: Duration = Duration::from_secs(30);
/// Entries a node's cache holds before it drops the expired ones (and, if still full, all).
const CACHE_ENTRIES: usize = 1024;

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// A user named by a client certificate.
    pub(crate) fn from_certificate(name: String, mut groups: Vec<String>) -> Self {
        groups.push("system:authenticated".into());
        User {
            name,
            uid: String::new(),
            groups,
            extra: BTreeMap::new(),
        }
    }
}

/// What the request asks, as the kubelet's authorizer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Attributes {
    pub verb: &'static str,
    pub subresource: &'static str,
}

/// The verb of an HTTP method, as the kubelet maps it.
pub(crate) fn verb(method: &http::Method) -> &'static str {
    match *method {
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "get",
    }
}

/// The `nodes` subresources a request path needs, in order: the kubelet's fine-grained
/// subresource first (allowed alone), then `proxy`, which allows every path.
pub(crate) fn subresources(path: &str) -> &'static [&'static str] {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/stats") {
        &["stats"]
    } else if under("/metrics") {
        &["metrics"]
    } else if under("/logs") {
        &["log"]
    } else if under("/spec") {
        &["spec"]
    } else if under("/checkpoint") {
        &["checkpoint"]
    } else if under("/pods") {
        &["pods", "proxy"]
    } else if under("/configz") {
        &["configz", "proxy"]
    } else if under("/healthz") {
        &["healthz", "proxy"]
    } else {
        &["proxy"]
    }
}

struct Cache<K, V> {
    entries: HashMap<K, (V, Instant)>,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    fn get(&self, key: &K) -> Option<V> {
        self.entries
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v.clone())
    }

    /// Caches `value` for `ttl`; when the cache is full of live entries the new one is not
    /// kept (a flood of junk tokens must not flush the answers that matter).
    fn put(&mut self, key: K, value: V, ttl: Duration) {
        let now = Instant::now();
        if self.entries.len() >= CACHE_ENTRIES {
            self.entries.retain(|_, (_, until)| *until > now);
            if self.entries.len() >= CACHE_ENTRIES {
                return;
            }
        }
        self.entries.insert(key, (value, now + ttl));
    }
}

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Cache {
            entries: HashMap::new(),
        }
    }
}

/// Why a request is refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// No credentials, or credentials the API server does not accept (401).
    Unauthenticated,
    /// The user may not (403).
    Forbidden(String),
    /// The API server could not be asked (a 401 is not the client's fault then: 503).
    Unavailable(String),
}

/// One node's authenticator and authorizer, with their caches (empty until used).
#[derive(Default)]
pub(crate) struct Auth {
    tokens: Mutex<Cache<[u8; 32], Option<User>>>,
    decisions: Mutex<Cache<(User, Attributes), bool>>,
}

impl Auth {
    /// The user of a bearer token, as the API server's TokenReview says.
    pub(crate) async fn token_user(
        &self,
        (client, limiter): (&ApiClient, &RateLimiter),
        token: &str,
    ) -> Result<User, Refusal> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key);
        let user = match cached {
            Some(user) => user,
            None => {
                let user = review_token((client, limiter), token).await?;
                self.tokens.lock().unwrap_or_else(|e| e.into_inner()).put(
                    key,
                    user.clone(),
                    TOKEN_TTL,
                );
                user
            }
        };
        user.ok_or(Refusal::Unauthenticated)
    }

    /// Whether `user` may send this request to node `node`: allowed when any of the path's
    /// subresources is.
    pub(crate) async fn authorize(
        &self,
        (client, limiter): (&ApiClient, &RateLimiter),
        node: &str,
        user: &User,
        verb: &'static str,
        path: &str,
    ) -> Result<(), Refusal> {
        let subresources = subresources(path);
        for &subresource in subresources {
            let attributes = Attributes { verb, subresource };
            let key = (user.clone(), attributes);
            let cached = self
                .decisions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key);
            let allowed = match cached {
                Some(allowed) => allowed,
                None => {
                    let allowed = review_access((client, limiter), node, user, attributes).await?;
                    let ttl = if allowed { ALLOWED_TTL } else { DENIED_TTL };
                    self.decisions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .put(key, allowed, ttl);
                    allowed
                }
            };
            if allowed {
                return Ok(());
            }
        }
        Err(Refusal::Forbidden(format!(
            "Forbidden (user={}, verb={verb}, resource=nodes, subresource(s)=[{}])",
            user.name,
            subresources.join(" ")
        )))
    }
}

async fn review_token(
    client: (&ApiClient, &RateLimiter),
    token: &str,
) -> Result<Option<User>, Refusal> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_string(),
            audiences: None,
        },
        ..TokenReview::default()
    };
    let answer: TokenReview = post(
        client,
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &review,
    )
    .await?;
    let status = answer.status.unwrap_or_default();
    if status.authenticated != Some(true) {
        return Ok(None);
    }
    let info = status.user.unwrap_or_default();
    Ok(Some(User {
        name: info.username.unwrap_or_default(),
        uid: info.uid.unwrap_or_default(),
        groups: info.groups.unwrap_or_default(),
        extra: info.extra.unwrap_or_default(),
    }))
}

async fn review_access(
    client: (&ApiClient, &RateLimiter),
    node: &str,
    user: &User,
    attributes: Attributes,
) -> Result<bool, Refusal> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            uid: Some(user.uid.clone()).filter(|u| !u.is_empty()),
            groups: Some(user.groups.clone()),
            extra: Some(user.extra.clone()).filter(|e| !e.is_empty()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(attributes.verb.into()),
                resource: Some("nodes".into()),
                subresource: Some(attributes.subresource.into()),
                name: Some(node.into()),
                version: Some("v1".into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let answer: SubjectAccessReview = post(
        client,
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        &review,
    )
    .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// A review, within the node's client rate limit as the kubelet's delegated auth is.
async fn post<T: serde::Serialize, A: serde::de::DeserializeOwned>(
    (client, limiter): (&ApiClient, &RateLimiter),
    path: &str,
    body: &T,
) -> Result<A, Refusal> {
    limiter.acquire().await;
    let unavailable = |e: &dyn std::fmt::Display| Refusal::Unavailable(e.to_string());
    let body = serde_json::to_vec(body).map_err(|e| unavailable(&e))?;
    let request = kube::core::Request::new(path)
        .create(&PostParams::default(), body)
        .map_err(|e| unavailable(&e))?;
    client.request(request).await.map_err(|e| unavailable(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_the_kubelets_subresources() {
        assert_eq!(subresources("/stats/summary"), &["stats"]);
        assert_eq!(subresources("/metrics/resource"), &["metrics"]);
        assert_eq!(subresources("/metrics"), &["metrics"]);
        assert_eq!(subresources("/logs/"), &["log"]);
        assert_eq!(subresources("/pods"), &["pods", "proxy"]);
        assert_eq!(subresources("/healthz"), &["healthz", "proxy"]);
        assert_eq!(subresources("/containerLogs/ns/p/c"), &["proxy"]);
        assert_eq!(subresources("/exec/ns/p/c"), &["proxy"]);
        assert_eq!(subresources("/metricsfoo"), &["proxy"]);
        assert_eq!(verb(&http::Method::POST), "create");
        assert_eq!(verb(&http::Method::HEAD), "get");
    }

    #[test]
    fn cached_answers_expire() {
        let mut c: Cache<u8, bool> = Cache::default();
        c.put(1, true, Duration::from_secs(60));
        c.put(2, false, Duration::ZERO);
        assert_eq!(c.get(&1), Some(true));
        assert_eq!(c.get(&2), None);
        let mut full: Cache<u32, bool> = Cache::default();
        for k in 0..CACHE_ENTRIES as u32 {
            full.put(k, true, Duration::from_secs(60));
        }
        // Full of live answers: a new one is not kept, and none of the old ones is lost.
        full.put(u32::MAX, false, Duration::from_secs(60));
        assert_eq!(full.get(&u32::MAX), None);
        assert_eq!(full.get(&0), Some(true));
    }
}
