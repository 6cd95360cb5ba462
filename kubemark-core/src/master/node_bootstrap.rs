//! What a master needs so that hollow nodes join as kubelets do (TLS bootstrap): a bootstrap
//! token, and the RBAC bindings that let its holders create CSRs that the controller-manager
//! auto-approves.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use rand::Rng;

use super::MasterError;
use crate::pki::{Kubeconfig, KubeconfigCredentials};

const FIELD_MANAGER: &str = "kubemark";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// A bootstrap token (`<id>.<secret>`), as `kubeadm token` makes them.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    /// Six characters `[a-z0-9]`, public.
    pub id: String,
    /// Sixteen characters `[a-z0-9]`, secret.
    pub secret: String,
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapToken")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

fn random_chars(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl BootstrapToken {
    /// A new random token.
    pub fn generate() -> Self {
        Self {
            id: random_chars(6),
            secret: random_chars(16),
        }
    }

    /// The bearer token.
    pub fn token(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// A kubeconfig that authenticates with this token.
    pub fn kubeconfig(&self, server: &str, ca_pem: &str) -> Kubeconfig {
        Kubeconfig {
            name: "kubemark-bootstrap".into(),
            server: server.into(),
            ca_pem: ca_pem.into(),
            credentials: KubeconfigCredentials::Token(self.token()),
        }
    }
}

fn binding(name: &str, role: &str, group: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(MANAGED_BY.into(), "kubemark".into())])),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Group".into(),
            name: group.into(),
            namespace: None,
        }]),
    }
}

/// Installs `token` (valid for `ttl`) and the bindings for TLS bootstrap. Idempotent.
pub async fn ensure_node_bootstrap(
    client: &kube::Client,
    token: &BootstrapToken,
    ttl: std::time::Duration,
) -> Result<(), MasterError> {
    let expiration = time::OffsetDateTime::now_utc() + ttl;
    let expiration = expiration
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| MasterError::State(format!("formatting the token expiry: {e}")))?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(format!("bootstrap-token-{}", token.id)),
            namespace: Some("kube-system".into()),
            labels: Some(BTreeMap::from([(MANAGED_BY.into(), "kubemark".into())])),
            ..ObjectMeta::default()
        },
        type_: Some("bootstrap.kubernetes.io/token".into()),
        string_data: Some(BTreeMap::from([
            ("token-id".into(), token.id.clone()),
            ("token-secret".into(), token.secret.clone()),
            ("usage-bootstrap-authentication".into(), "true".into()),
            (
                "description".into(),
                "kubemark hollow-node TLS bootstrap".into(),
            ),
            ("expiration".into(), expiration),
        ])),
        ..Secret::default()
    };
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    secrets
        .patch(
            secret.metadata.name.as_deref().unwrap_or_default(),
            &pp,
            &Patch::Apply(&secret),
        )
        .await?;

    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for b in [
        binding(
            "kubemark:node-bootstrapper",
            "system:node-bootstrapper",
            "system:bootstrappers",
        ),
        binding(
            "kubemark:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            "system:bootstrappers",
        ),
        binding(
            "kubemark:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            "system:nodes",
        ),
    ] {
        bindings
            .patch(
                b.metadata.name.as_deref().unwrap_or_default(),
                &pp,
                &Patch::Apply(&b),
            )
            .await?;
    }
    Ok(())
}

/// Removes what [`ensure_node_bootstrap`] installed (every kubemark bootstrap token and the
/// bindings), for a master kubemark does not own and so does not delete. Missing objects are
/// fine.
pub async fn remove_node_bootstrap(client: &kube::Client) -> Result<(), MasterError> {
    let selector = kube::api::ListParams::default().labels(&format!("{MANAGED_BY}=kubemark"));
    let dp = kube::api::DeleteParams::default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    for s in secrets.list_metadata(&selector).await?.items {
        let name = s.metadata.name.unwrap_or_default();
        match secrets.delete(&name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for b in bindings.list_metadata(&selector).await?.items {
        let name = b.metadata.name.unwrap_or_default();
        match bindings.delete(&name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_kubeadms_shape_and_debug_hides_the_secret() {
        let t = BootstrapToken::generate();
        assert_eq!(t.id.len(), 6);
        assert_eq!(t.secret.len(), 16);
        assert!(
            t.token()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.')
        );
        assert!(!format!("{t:?}").contains(&t.secret));
    }
}
