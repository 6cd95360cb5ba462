//! The hollow-node image's home: an ECR repository `kubemark-<cluster>/hollow-node` with the
//! ownership tags, pushed to with the token ECR hands out (user `AWS`, valid 12 hours).

use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::{Repository, Tag};
use kubemark_core::provider::{
    ClusterName, ErrorKind, Registry, RegistryCredentials, ResourceRef, Result, Role,
    ownership_tags,
};

use crate::AwsConfig;
use crate::error::{map, unexpected};

/// The repository name of `cluster`.
fn name(cluster: &ClusterName) -> String {
    format!("kubemark-{cluster}/hollow-node")
}

async fn describe(client: &Client, name: &str) -> Result<Option<Repository>> {
    match client
        .describe_repositories()
        .repository_names(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.repositories().first().cloned()),
        Err(e) => match map("describe_repositories", e) {
            e if e.kind() == ErrorKind::NotFound => Ok(None),
            e => Err(e),
        },
    }
}

async fn owner(client: &Client, repo: &Repository) -> Result<Option<(ClusterName, Role)>> {
    let Some(arn) = repo.repository_arn() else {
        return Ok(None);
    };
    let out = client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| map("list_tags_for_resource", e))?;
    let map: std::collections::BTreeMap<String, String> = out
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    Ok(kubemark_core::provider::owner_of(&map))
}

/// ECR's token as registry credentials (`AWS` and the password in the base64 token).
async fn credentials(client: &Client) -> Result<RegistryCredentials> {
    use base64::Engine;
    let out = client
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| map("get_authorization_token", e))?;
    let token = out
        .authorization_data()
        .first()
        .and_then(|d| d.authorization_token())
        .ok_or_else(|| unexpected("get_authorization_token", "no token in the answer"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| unexpected("get_authorization_token", "the token is not base64 text"))?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| unexpected("get_authorization_token", "the token is not USER:PASSWORD"))?;
    Ok(RegistryCredentials {
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// `<host>/<repository>`: ECR's own URI, or the configured host (emulators) in front of the name.
fn repository(config: &AwsConfig, repo: &Repository, name: &str) -> Result<String> {
    if let Some(host) = &config.registry_host {
        return Ok(format!("{host}/{name}"));
    }
    repo.repository_uri()
        .map(String::from)
        .ok_or_else(|| unexpected("create_repository", "the repository has no URI"))
}

pub(crate) async fn ensure(
    client: &Client,
    config: &AwsConfig,
    cluster: &ClusterName,
) -> Result<Registry> {
    let name = name(cluster);
    let repo = match describe(client, &name).await? {
        Some(r) => {
            kubemark_core::provider::check_owner(
                crate::PROVIDER_NAME,
                "create_repository",
                owner(client, &r).await?,
                cluster,
                Role::Registry,
                &name,
            )?;
            r
        }
        None => {
            let mut req = client.create_repository().repository_name(&name);
            for (k, v) in ownership_tags(cluster, Role::Registry) {
                req = req.tags(Tag::builder().key(k).value(v).build().map_err(|e| {
                    unexpected("create_repository", format!("building a tag: {e}"))
                })?);
            }
            let out = req.send().await.map_err(|e| map("create_repository", e))?;
            tracing::info!(cluster = %cluster, repository = name, "created ECR repository");
            out.repository()
                .cloned()
                .ok_or_else(|| unexpected("create_repository", "no repository in the answer"))?
        }
    };
    Ok(Registry {
        repository: repository(config, &repo, &name)?,
        credentials: Some(credentials(client).await?),
    })
}

/// kubemark's repositories (by name prefix, then by their tags) of `cluster`.
pub(crate) async fn list(client: &Client, cluster: &ClusterName) -> Result<Vec<ResourceRef>> {
    let mut out = Vec::new();
    let mut pages = client.describe_repositories().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| map("describe_repositories", e))?;
        for r in page.repositories() {
            let Some(n) = r.repository_name() else {
                continue;
            };
            if !n.starts_with("kubemark-") {
                continue;
            }
            if let Some((c, role)) = owner(client, r).await?
                && &c == cluster
            {
                out.push(ResourceRef {
                    cluster: c,
                    role,
                    name: n.to_string(),
                    id: r.repository_arn().unwrap_or(n).to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// Deletes the repository with its images.
pub(crate) async fn delete(client: &Client, r: &ResourceRef) -> Result<()> {
    match client
        .delete_repository()
        .repository_name(&r.name)
        .force(true)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => match map("delete_repository", e) {
            e if e.kind() == ErrorKind::NotFound => Ok(()),
            e => Err(e),
        },
    }
}
