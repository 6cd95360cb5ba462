//! The hollow-node image's home: an Artifact Registry Docker repository per cluster
//! (`<region>-docker.pkg.dev/<project>/kubemark-<cluster>-images/hollow-node`), labelled like
//! everything else, pushed to with an OAuth access token (user `oauth2accesstoken`).
//!
//! The Compute crate does not cover Artifact Registry, and its own Rust client is a second large
//! generated crate for four calls; so this speaks the documented `v1` REST API directly.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kubemark_core::provider::{
    ClusterName, Error, ErrorKind, Registry, RegistryCredentials, ResourceRef, Result, Role,
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::client::Clients;
use crate::error::{gone_is_ok, kind_of_status, parse_body, unexpected};
use crate::tags::check_owner;
use crate::{GceConfig, PROVIDER_NAME, tags};

const DEFAULT_ENDPOINT: &str = "https://artifactregistry.googleapis.com";

fn parent(config: &GceConfig, project: &str, region: &str) -> String {
    let base = config
        .registry_endpoint
        .as_deref()
        .unwrap_or(DEFAULT_ENDPOINT)
        .trim_end_matches('/');
    format!("{base}/v1/projects/{project}/locations/{region}")
}

/// One call, retried on throttling and server errors; Google's error body becomes the message.
async fn call(
    c: &Clients,
    operation: &'static str,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> Result<Value> {
    let mut delay = c.poll * 2;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let token = c.access_token().await?;
        let mut req = c
            .http
            .request(method.clone(), url)
            .header("authorization", Clients::bearer(&token));
        if let Some(b) = body {
            req = req.json(b);
        }
        let (kind, message, reason) = match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                return resp
                    .json()
                    .await
                    .map_err(|e| unexpected(operation, format!("unreadable answer: {e}")));
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await.unwrap_or_default();
                let (message, reason) = parse_body(&bytes);
                (
                    kind_of_status(status),
                    message.unwrap_or_else(|| format!("HTTP {status}")),
                    reason,
                )
            }
            Err(e) => (
                ErrorKind::Temporary,
                format!("cannot reach Artifact Registry: {}", e.without_url()),
                None,
            ),
        };
        if kind == ErrorKind::Temporary && attempt < 5 {
            tokio::time::sleep(delay).await;
            delay *= 2;
            continue;
        }
        let mut err = Error::new(kind, PROVIDER_NAME, operation, message.replace('\n', " "));
        if let Some(r) = reason {
            err = err.with_context("reason", r);
        }
        return Err(err);
    }
}

/// Polls a long-running operation until it is done; its error becomes ours.
async fn wait(c: &Clients, operation: &'static str, base: &str, mut op: Value) -> Result<Value> {
    let start = Instant::now();
    let mut delay = c.poll;
    loop {
        if op["done"].as_bool() == Some(true) {
            if let Some(e) = op.get("error") {
                // google.rpc.Status: 5 NOT_FOUND, 6 ALREADY_EXISTS, 7 PERMISSION_DENIED, 8 quota.
                let kind = match e["code"].as_i64() {
                    Some(5) => ErrorKind::NotFound,
                    Some(6) => ErrorKind::AlreadyExists,
                    Some(7 | 16) => ErrorKind::PermissionDenied,
                    Some(3 | 8 | 9) => ErrorKind::InvalidConfig,
                    Some(10 | 13 | 14) => ErrorKind::Temporary,
                    _ => ErrorKind::Unexpected,
                };
                let message = e["message"].as_str().unwrap_or("operation failed");
                return Err(Error::new(kind, PROVIDER_NAME, operation, message));
            }
            return Ok(op);
        }
        let name = op["name"]
            .as_str()
            .ok_or_else(|| unexpected(operation, "an operation without a name"))?
            .to_string();
        if start.elapsed() > Duration::from_secs(600) {
            return Err(Error::new(
                ErrorKind::Temporary,
                PROVIDER_NAME,
                operation,
                format!("operation {name} not done after 600s"),
            ));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
        // The operation's name is `projects/../locations/../operations/..`, relative to `/v1/`.
        let root = base.split("/v1/").next().unwrap_or(base);
        op = call(
            c,
            operation,
            reqwest::Method::GET,
            &format!("{root}/v1/{name}"),
            None,
        )
        .await?;
    }
}

fn labels_of(v: &Value) -> HashMap<String, String> {
    v["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `<host>/<project>/<repository>/hollow-node`, the image name without a tag.
fn image_name(config: &GceConfig, project: &str, region: &str, id: &str) -> String {
    let host = config
        .registry_host
        .clone()
        .unwrap_or_else(|| format!("{region}-docker.pkg.dev"));
    format!("{host}/{project}/{id}/hollow-node")
}

pub(crate) async fn ensure(
    c: &Clients,
    config: &GceConfig,
    project: &str,
    region: &str,
    cluster: &ClusterName,
) -> Result<Registry> {
    let base = parent(config, project, region);
    let id = tags::name(cluster, Role::Registry);
    let url = format!("{base}/repositories/{id}");
    match call(c, "repositories.get", reqwest::Method::GET, &url, None).await {
        Ok(repo) => check_owner(
            "repositories.create",
            tags::owner(&labels_of(&repo)),
            cluster,
            Role::Registry,
            &id,
        )?,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let body = json!({
                "format": "DOCKER",
                "description": tags::description(cluster, Role::Registry),
                "labels": tags::labels(cluster, Role::Registry),
            });
            let create = format!("{base}/repositories?repositoryId={id}");
            let op = call(
                c,
                "repositories.create",
                reqwest::Method::POST,
                &create,
                Some(&body),
            )
            .await?;
            wait(c, "repositories.create", &base, op).await?;
            tracing::info!(cluster = %cluster, repository = id, "created Artifact Registry repository");
        }
        Err(e) => return Err(e),
    }
    let token = c.access_token().await?;
    Ok(Registry {
        repository: image_name(config, project, region, &id),
        credentials: Some(RegistryCredentials {
            username: "oauth2accesstoken".into(),
            password: token.expose_secret().to_string(),
        }),
    })
}

pub(crate) async fn list(
    c: &Clients,
    config: &GceConfig,
    project: &str,
    region: &str,
    cluster: &ClusterName,
) -> Result<Vec<ResourceRef>> {
    let base = parent(config, project, region);
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let url = format!("{base}/repositories?pageSize=100&pageToken={token}");
        let page = call(c, "repositories.list", reqwest::Method::GET, &url, None).await?;
        for r in page["repositories"].as_array().into_iter().flatten() {
            let name = r["name"]
                .as_str()
                .and_then(|n| n.rsplit('/').next())
                .map(String::from);
            out.extend(tags::resource_ref(
                tags::owner(&labels_of(r)),
                name.as_ref(),
                None,
            ));
        }
        match page["nextPageToken"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => break,
        }
    }
    out.retain(|r| &r.cluster == cluster);
    Ok(out)
}

pub(crate) async fn delete(
    c: &Clients,
    config: &GceConfig,
    project: &str,
    region: &str,
    r: &ResourceRef,
) -> Result<()> {
    let base = parent(config, project, region);
    let url = format!("{base}/repositories/{}", r.name);
    gone_is_ok(
        async {
            let op = call(
                c,
                "repositories.delete",
                reqwest::Method::DELETE,
                &url,
                None,
            )
            .await?;
            wait(c, "repositories.delete", &base, op).await.map(|_| ())
        }
        .await,
    )
}
