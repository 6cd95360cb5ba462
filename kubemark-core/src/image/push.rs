//! Pushing through the OCI distribution API: blobs (skipped when the registry has them) by a
//! monolithic upload, then the manifest by tag. Auth: none, Basic (`user:password`, as ECR's
//! `AWS:<token>` and GCP's `oauth2accesstoken:<token>` are used), or the Bearer token exchange
//! a registry asks for in `WWW-Authenticate`. HTTPS only; a private CA can be added.

use std::sync::Mutex;

use reqwest::{Method, StatusCode};

use super::{Image, ImageError, media};
use crate::provider::RegistryCredentials;

/// `host[:port]/repository[:tag]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// `host[:port]`.
    pub registry: String,
    /// `path/name`.
    pub repository: String,
    /// Tag.
    pub tag: String,
}

impl std::str::FromStr for ImageReference {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, ImageError> {
        let bad = || {
            ImageError::Invalid(format!(
                "image reference {s:?} must be host[:port]/repository[:tag], e.g. registry.example.com/kubemark:v0.1.0"
            ))
        };
        let (registry, rest) = s.split_once('/').ok_or_else(bad)?;
        if registry.is_empty()
            || !(registry.contains('.') || registry.contains(':') || registry == "localhost")
        {
            return Err(bad());
        }
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t),
            _ => (rest, "latest"),
        };
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c);
        if repository.is_empty() || !repository.chars().all(ok) || tag.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            registry: registry.into(),
            repository: repository.into(),
            tag: tag.into(),
        })
    }
}

impl std::fmt::Display for ImageReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

/// How to reach the registry.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Credentials (Basic, or exchanged for a Bearer token when the registry asks).
    pub credentials: Option<RegistryCredentials>,
    /// A CA (PEM) to trust besides the system's, for a private registry.
    pub ca_pem: Option<Vec<u8>>,
}

struct Session<'a> {
    http: reqwest::Client,
    reference: &'a ImageReference,
    credentials: Option<&'a RegistryCredentials>,
    bearer: Mutex<Option<String>>,
}

fn err(reference: &ImageReference, what: &str, detail: impl Into<String>) -> ImageError {
    ImageError::Registry {
        registry: reference.registry.clone(),
        what: what.into(),
        detail: detail.into(),
    }
}

/// `401 UNAUTHORIZED: authentication required` from a registry error body.
async fn describe(response: reqwest::Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let errors: Vec<String> = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["errors"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["code"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    if errors.is_empty() {
        format!("{status}")
    } else {
        format!("{status} {}", errors.join("; "))
    }
}

/// Whether a token realm on `realm_host` may receive the credentials of `registry`
/// (`host[:port]`): the registry's own host, or a sibling under its parent domain
/// (`registry-1.docker.io` sends clients to `auth.docker.io`).
fn realm_may_see_credentials(registry: &str, realm_host: &str) -> bool {
    let registry_host = registry
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(registry, |(host, _)| host)
        .to_ascii_lowercase();
    let realm_host = realm_host.to_ascii_lowercase();
    if realm_host == registry_host {
        return true;
    }
    match registry_host.split_once('.') {
        // The parent must itself be a domain (`docker.io`), not a bare TLD.
        Some((_, parent))
            if parent.contains('.') && registry_host.parse::<std::net::IpAddr>().is_err() =>
        {
            realm_host.ends_with(&format!(".{parent}")) || realm_host == parent
        }
        _ => false,
    }
}

/// `realm`, `service`, `scope` of a `WWW-Authenticate: Bearer ...` header.
fn bearer_challenge(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header.strip_prefix("Bearer ")?;
    // Split on commas outside quotes: scopes like "repository:x:push,pull" contain commas.
    let mut parts = Vec::new();
    let (mut current, mut quoted) = (String::new(), false);
    for c in rest.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
        .iter()
        .map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

impl Session<'_> {
    fn url(&self, path: &str) -> String {
        format!("https://{}/v2/{}", self.reference.registry, path)
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(token) = self.bearer.lock().expect("not poisoned").clone() {
            return req.bearer_auth(token);
        }
        match self.credentials {
            Some(c) => req.basic_auth(&c.username, Some(&c.password)),
            None => req,
        }
    }

    /// Sends a request built by `build`, answering one Bearer challenge if the registry makes it.
    async fn send(
        &self,
        what: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ImageError> {
        for attempt in 0..2 {
            let response = self
                .authorize(build(&self.http))
                .send()
                .await
                .map_err(|e| err(self.reference, what, e.without_url().to_string()))?;
            if response.status() != StatusCode::UNAUTHORIZED || attempt == 1 {
                return Ok(response);
            }
            let challenge = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|h| h.to_str().ok())
                .and_then(bearer_challenge);
            let Some(params) = challenge else {
                return Ok(response);
            };
            self.fetch_token(&params).await?;
        }
        unreachable!("the loop returns on its second attempt")
    }

    async fn fetch_token(&self, params: &[(String, String)]) -> Result<(), ImageError> {
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                err(
                    self.reference,
                    "token exchange",
                    "Bearer challenge without realm",
                )
            })?;
        let query: Vec<(&str, &str)> = params
            .iter()
            .filter(|(k, _)| k == "service" || k == "scope")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let url = reqwest::Url::parse_with_params(&realm, &query).map_err(|e| {
            err(
                self.reference,
                "token exchange",
                format!("realm {realm:?}: {e}"),
            )
        })?;
        if url.scheme() != "https" {
            return Err(err(
                self.reference,
                "token exchange",
                format!("the registry's token realm {realm:?} is not https; refusing it"),
            ));
        }
        let mut req = self.http.get(url.clone());
        if let Some(c) = self.credentials {
            let host = url.host_str().unwrap_or_default();
            if !realm_may_see_credentials(&self.reference.registry, host) {
                return Err(err(
                    self.reference,
                    "token exchange",
                    format!(
                        "the registry sends its credentials to {host}, outside its own domain; refusing"
                    ),
                ));
            }
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let response = req.send().await.map_err(|e| {
            err(
                self.reference,
                "token exchange",
                e.without_url().to_string(),
            )
        })?;
        if !response.status().is_success() {
            return Err(err(
                self.reference,
                "token exchange",
                describe(response).await,
            ));
        }
        let text = response
            .text()
            .await
            .map_err(|e| err(self.reference, "token exchange", e.to_string()))?;
        let body: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| err(self.reference, "token exchange", e.to_string()))?;
        let token = body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .ok_or_else(|| err(self.reference, "token exchange", "no token in the answer"))?;
        *self.bearer.lock().expect("not poisoned") = Some(token.to_string());
        Ok(())
    }

    async fn put_blob(&self, digest: &str, data: &[u8]) -> Result<(), ImageError> {
        let repo = &self.reference.repository;
        let what = format!("uploading blob {digest}");
        let head = self
            .send(&what, |c| {
                c.head(self.url(&format!("{repo}/blobs/{digest}")))
            })
            .await?;
        if head.status() == StatusCode::OK {
            tracing::debug!(digest, "blob already in the registry");
            return Ok(());
        }
        let start = self
            .send(&what, |c| {
                c.post(self.url(&format!("{repo}/blobs/uploads/")))
            })
            .await?;
        if start.status() != StatusCode::ACCEPTED {
            return Err(err(self.reference, &what, describe(start).await));
        }
        let location = start
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| err(self.reference, &what, "no upload Location"))?
            .to_string();
        let location = if location.starts_with('/') {
            format!("https://{}{location}", self.reference.registry)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={digest}");
        let done = self
            .send(&what, |c| {
                c.put(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(data.to_vec())
            })
            .await?;
        if done.status() != StatusCode::CREATED {
            return Err(err(self.reference, &what, describe(done).await));
        }
        Ok(())
    }
}

fn client(opts: &PushOptions, reference: &ImageReference) -> Result<reqwest::Client, ImageError> {
    crate::tls::install_crypto_provider();
    let mut b = reqwest::Client::builder().tls_backend_rustls();
    if let Some(pem) = &opts.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| err(reference, "reading the CA", e.to_string()))?;
        b = b.tls_certs_merge(certs);
    }
    b.build()
        .map_err(|e| err(reference, "building the HTTPS client", e.to_string()))
}

/// Checks, before anything is built, that the registry answers over TLS and accepts the
/// credentials (`GET /v2/`, with the Bearer exchange when asked).
pub async fn check_access(
    reference: &ImageReference,
    opts: &PushOptions,
) -> Result<(), ImageError> {
    let s = Session {
        http: client(opts, reference)?,
        reference,
        credentials: opts.credentials.as_ref(),
        bearer: Mutex::new(None),
    };
    let url = format!("https://{}/v2/", reference.registry);
    let response = s.send("checking access", |c| c.get(&url)).await?;
    if !response.status().is_success() {
        return Err(err(reference, "checking access", describe(response).await));
    }
    Ok(())
}

/// Pushes `image` as `reference`; returns the manifest digest the registry stored (checked
/// against ours).
pub async fn push(
    image: &Image,
    reference: &ImageReference,
    opts: &PushOptions,
) -> Result<String, ImageError> {
    let s = Session {
        http: client(opts, reference)?,
        reference,
        credentials: opts.credentials.as_ref(),
        bearer: Mutex::new(None),
    };
    s.put_blob(&image.layer.digest, &image.layer.data).await?;
    s.put_blob(&image.config.digest, &image.config.data).await?;
    let what = format!("putting manifest {}", reference.tag);
    let url = s.url(&format!(
        "{}/manifests/{}",
        reference.repository, reference.tag
    ));
    let response = s
        .send(&what, |c| {
            c.request(Method::PUT, &url)
                .header(reqwest::header::CONTENT_TYPE, media::MANIFEST)
                .body(image.manifest.data.clone())
        })
        .await?;
    if response.status() != StatusCode::CREATED {
        return Err(err(reference, &what, describe(response).await));
    }
    let stored = response
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|h| h.to_str().ok())
        .unwrap_or(&image.manifest.digest)
        .to_string();
    if stored != image.manifest.digest {
        return Err(err(
            reference,
            &what,
            format!(
                "stored digest {stored} differs from ours {}",
                image.manifest.digest
            ),
        ));
    }
    Ok(stored)
}

/// Reads back the manifest of `reference`: its digest (computed from the bytes) and the bytes.
pub async fn fetch_manifest(
    reference: &ImageReference,
    opts: &PushOptions,
) -> Result<(String, Vec<u8>), ImageError> {
    let s = Session {
        http: client(opts, reference)?,
        reference,
        credentials: opts.credentials.as_ref(),
        bearer: Mutex::new(None),
    };
    let url = s.url(&format!(
        "{}/manifests/{}",
        reference.repository, reference.tag
    ));
    let response = s
        .send("fetching the manifest", |c| {
            c.get(&url).header(reqwest::header::ACCEPT, media::MANIFEST)
        })
        .await?;
    if !response.status().is_success() {
        return Err(err(
            reference,
            "fetching the manifest",
            describe(response).await,
        ));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| err(reference, "fetching the manifest", e.to_string()))?
        .to_vec();
    Ok((super::digest(&bytes), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_challenges_parse() {
        let r: ImageReference = "127.0.0.1:5000/kubemark/hollow:v1".parse().unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("127.0.0.1:5000", "kubemark/hollow", "v1")
        );
        let r: ImageReference = "registry.example.com/kubemark".parse().unwrap();
        assert_eq!(r.tag, "latest");
        for bad in ["kubemark:v1", "docker.io/Kubemark", "/x", "host.example/"] {
            assert!(bad.parse::<ImageReference>().is_err(), "{bad}");
        }
        let c = bearer_challenge(r#"Bearer realm="https://auth.example/token",service="registry",scope="repository:k:push,pull""#).unwrap();
        assert_eq!(
            c[0],
            (
                "realm".to_string(),
                "https://auth.example/token".to_string()
            )
        );
        assert_eq!(
            c[2],
            ("scope".to_string(), "repository:k:push,pull".to_string())
        );
        assert!(bearer_challenge("Basic realm=x").is_none());
    }

    #[test]
    fn credentials_go_only_to_the_registrys_own_domain() {
        for (registry, realm, ok) in [
            ("registry-1.docker.io", "auth.docker.io", true),
            ("us-docker.pkg.dev", "us-docker.pkg.dev", true),
            ("127.0.0.1:5000", "127.0.0.1", true),
            ("localhost:5000", "localhost", true),
            ("registry.example.com:443", "auth.example.com", true),
            ("registry.example.com", "attacker.net", false),
            ("registry.example.com", "example.com.attacker.net", false),
            ("127.0.0.1:5000", "127.0.0.2", false),
            ("ghcr.io", "evil.io", false),
        ] {
            assert_eq!(
                realm_may_see_credentials(registry, realm),
                ok,
                "{registry} -> {realm}"
            );
        }
    }
}
