//! Each hollow node authenticates as itself (`system:node:<name>`), so the Node authorizer and
//! NodeRestriction judge it as they judge a real kubelet.
//!
//! Either from a kubeconfig used as is, or by TLS bootstrap as the kubelet does it: a bootstrap
//! token creates a CSR for `kubernetes.io/kube-apiserver-client-kubelet`, the controller-manager
//! approves and signs it, and the certificate is kept in `--cert-dir` for the next start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use crate::client::ApiClient;

/// The signer the kubelet's client certificates use.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// Errors of obtaining a node identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The kubeconfig is unusable.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The CSR was denied or failed.
    #[error("CSR {name} for node {node} was {outcome}: {message}")]
    CsrRejected {
        /// The CSR.
        name: String,
        /// The node.
        node: String,
        /// Denied or Failed.
        outcome: String,
        /// The condition's message.
        message: String,
    },
    /// Key or CSR generation failed.
    #[error("generating the node key: {0}")]
    Key(#[from] rcgen::Error),
    /// An API call failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// Waiting for the signed certificate failed.
    #[error("waiting for CSR {name}: {message}")]
    Wait {
        /// The CSR.
        name: String,
        /// Why.
        message: String,
    },
    /// The certificate could not be stored.
    #[error(transparent)]
    Store(#[from] kubemark_core::pki::PkiError),
}

/// Where a node's credentials come from.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A kubeconfig whose user is this node (e.g. `system:node:<name>`).
    Kubeconfig(PathBuf),
    /// TLS bootstrap with a bootstrap-token kubeconfig; certificates kept in `cert_dir`.
    Bootstrap {
        /// The bootstrap kubeconfig (a token in group `system:bootstrappers`).
        bootstrap_kubeconfig: PathBuf,
        /// Where each node's `kubelet-client-<name>.pem` (certificate and key) is kept.
        cert_dir: PathBuf,
    },
}

/// Loads a kubeconfig file as a client configuration.
pub async fn load_config(path: &Path) -> Result<kube::Config, IdentityError> {
    let bad = |message: String| IdentityError::Kubeconfig {
        path: path.to_path_buf(),
        message,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| bad(e.to_string()))
}

fn cert_path(cert_dir: &Path, node: &str) -> PathBuf {
    cert_dir.join(format!("kubelet-client-{node}.pem"))
}

fn with_client_cert(mut config: kube::Config, pem: &str) -> kube::Config {
    let b64 = base64::engine::general_purpose::STANDARD;
    // The file holds the certificate first, then the key, as the kubelet's
    // kubelet-client-current.pem does; rustls takes the key from the same bundle.
    let key_start = pem.find("-----BEGIN PRIVATE KEY-----").unwrap_or(pem.len());
    let (cert, key) = pem.split_at(key_start);
    config.auth_info = AuthInfo {
        client_certificate_data: Some(b64.encode(cert)),
        client_key_data: Some(secrecy::SecretString::from(b64.encode(key))),
        ..AuthInfo::default()
    };
    config
}

/// Resolves the client configuration of node `node`.
pub async fn node_config(
    credentials: &Credentials,
    node: &str,
) -> Result<kube::Config, IdentityError> {
    Ok(resolve(credentials, node).await?.0)
}

/// A client authenticated as node `node` (HTTP/2, see [`crate::client`]).
pub async fn node_client(
    credentials: &Credentials,
    node: &str,
) -> Result<ApiClient, IdentityError> {
    match resolve(credentials, node).await? {
        (_, Some(client)) => Ok(client),
        (config, None) => Ok(ApiClient::new(&config)?),
    }
}

/// The node's configuration, and the client that already proved a stored certificate valid, so
/// that a joining node opens one TLS connection, not two.
async fn resolve(
    credentials: &Credentials,
    node: &str,
) -> Result<(kube::Config, Option<ApiClient>), IdentityError> {
    match credentials {
        Credentials::Kubeconfig(path) => Ok((load_config(path).await?, None)),
        Credentials::Bootstrap {
            bootstrap_kubeconfig,
            cert_dir,
        } => {
            let bootstrap = load_config(bootstrap_kubeconfig).await?;
            let path = cert_path(cert_dir, node);
            if let Ok(pem) = std::fs::read_to_string(&path) {
                let config = with_client_cert(bootstrap.clone(), &pem);
                // The kubelet judges a stored certificate locally and sends nothing; so does a
                // hollow node whose certificate the cluster's CA verifies. Only one that does
                // not verify (another CA signs client certificates, or the file is from an
                // earlier cluster) is tried against the API server.
                if signed_by_cluster_ca(&bootstrap, &pem) {
                    return Ok((config, None));
                }
                if let Some(client) = still_valid(&config, node).await {
                    return Ok((config, Some(client)));
                }
                tracing::info!(
                    node,
                    "stored client certificate is no longer accepted; bootstrapping again"
                );
            }
            let pem = request_certificate(&bootstrap, node).await?;
            std::fs::create_dir_all(cert_dir).map_err(|source| {
                kubemark_core::pki::PkiError::Io {
                    path: cert_dir.clone(),
                    source,
                }
            })?;
            kubemark_core::pki::write_private(&path, &pem)?;
            Ok((with_client_cert(bootstrap, &pem), None))
        }
    }
}

/// Whether the certificate (first in `pem`) is valid now for client authentication and chains
/// to the CA the bootstrap kubeconfig trusts for the API server (the cluster CA, which also
/// signs kubelet client certificates where the controller-manager signs with it). The kubelet's
/// own check is expiry only; the chain check also catches a cert dir kept from an earlier
/// cluster.
fn signed_by_cluster_ca(bootstrap: &kube::Config, pem: &str) -> bool {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, UnixTime};
    kubemark_core::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    let from_file = bootstrap
        .root_cert_file
        .as_ref()
        .and_then(|f| CertificateDer::pem_file_iter(f).ok())
        .into_iter()
        .flatten()
        .flatten();
    let inline = bootstrap
        .root_cert
        .iter()
        .flatten()
        .map(|der| CertificateDer::from(der.clone()));
    let (added, _) = roots.add_parsable_certificates(from_file.chain(inline));
    if added == 0 {
        return false;
    }
    let Ok(verifier) = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build()
    else {
        return false;
    };
    let Some(Ok(cert)) = CertificateDer::pem_slice_iter(pem.as_bytes()).next() else {
        return false;
    };
    verifier
        .verify_client_cert(&cert, &[], UnixTime::now())
        .is_ok()
}

/// A client with `config` when the API server accepts its certificate.
async fn still_valid(config: &kube::Config, node: &str) -> Option<ApiClient> {
    let client = ApiClient::new(config).ok()?;
    // 401 means the certificate is not (or no longer) accepted; anything else proves it is.
    let rejected = matches!(
        crate::api::Api::<Node>::all(client.clone()).get_opt(node).await,
        Err(kube::Error::Api(s)) if s.code == 401
    );
    (!rejected).then_some(client)
}

/// Creates a CSR for `system:node:<node>` and waits until it is approved and signed. Returns the
/// certificate followed by the key, PEM.
pub async fn request_certificate(
    bootstrap: &kube::Config,
    node: &str,
) -> Result<String, IdentityError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, kubemark_core::pki::users::node(node));
    dn.push(
        DnType::OrganizationName,
        kubemark_core::pki::users::NODES_GROUP,
    );
    params.distinguished_name = dn;
    let request = params.serialize_request(&key)?.pem()?;

    // Short-lived: kube's `Api` (and kube-runtime's wait) are fine here.
    let client = ApiClient::new(bootstrap)?.to_kube();
    let csrs: Api<CertificateSigningRequest> = Api::all(client);
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some("csr-".into()),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.into_bytes()),
            signer_name: KUBELET_CLIENT_SIGNER.into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    let created = csrs.create(&PostParams::default(), &csr).await?;
    let name = created.metadata.name.unwrap_or_default();
    let signed = kube::runtime::wait::await_condition(
        csrs,
        &name,
        |csr: Option<&CertificateSigningRequest>| {
            csr.and_then(|c| c.status.as_ref()).is_some_and(|s| {
                s.certificate.as_ref().is_some_and(|c| !c.0.is_empty())
                    || s.conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "Denied" || c.type_ == "Failed")
            })
        },
    );
    let csr = tokio::time::timeout(std::time::Duration::from_secs(300), signed)
        .await
        .map_err(|_| IdentityError::Wait {
            name: name.clone(),
            message: "not signed within 300s (is the controller-manager running?)".into(),
        })?
        .map_err(|e| IdentityError::Wait {
            name: name.clone(),
            message: e.to_string(),
        })?;
    let status = csr.and_then(|c| c.status).unwrap_or_default();
    if let Some(rejected) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Denied" || c.type_ == "Failed")
    {
        return Err(IdentityError::CsrRejected {
            name,
            node: node.into(),
            outcome: rejected.type_.to_lowercase(),
            message: rejected.message.clone().unwrap_or_default(),
        });
    }
    let cert = String::from_utf8_lossy(&status.certificate.unwrap_or_default().0).into_owned();
    Ok(format!("{cert}{}", key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubemark_core::pki::{CertSpec, CertificateAuthority};
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    fn trusting(ca: &CertificateAuthority) -> kube::Config {
        let mut config = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
        let der = CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap();
        config.root_cert = Some(vec![der.to_vec()]);
        config
    }

    fn node_pem(ca: &CertificateAuthority) -> String {
        let issued = ca
            .issue(&CertSpec::client("system:node:n-0", &["system:nodes"]))
            .unwrap();
        format!("{}{}", issued.cert_pem, issued.key_pem)
    }

    #[test]
    fn a_stored_certificate_is_judged_locally_against_the_cluster_ca() {
        let day = time::Duration::days(1);
        let cluster = CertificateAuthority::generate("cluster", day).unwrap();
        let earlier = CertificateAuthority::generate("cluster", day).unwrap();
        assert!(signed_by_cluster_ca(
            &trusting(&cluster),
            &node_pem(&cluster)
        ));
        // Same name, other key: a cert dir kept from an earlier cluster.
        assert!(!signed_by_cluster_ca(
            &trusting(&cluster),
            &node_pem(&earlier)
        ));
        let lapsed =
            CertificateAuthority::generate("cluster", -time::Duration::minutes(1)).unwrap();
        assert!(!signed_by_cluster_ca(
            &trusting(&lapsed),
            &node_pem(&lapsed)
        ));
        let mut no_ca = trusting(&cluster);
        no_ca.root_cert = None;
        assert!(!signed_by_cluster_ca(&no_ca, &node_pem(&cluster)));
        assert!(!signed_by_cluster_ca(
            &trusting(&cluster),
            "not a certificate"
        ));
    }
}
