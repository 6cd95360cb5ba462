//! The kubelet server's TLS: a serving certificate per node (SANs: its address and name), made
//! when a client connects and kept by nobody, signed by the kubelet serving CA; and client
//! certificates checked against the cluster CA (the API server and metrics-server
//! authenticate with one).

use std::net::IpAddr;
use std::sync::Arc;

use kubemark_core::pki::{CertSpec, CertificateAuthority};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// What went wrong setting up the server's TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The serving CA's files do not load.
    #[error("kubelet serving CA: {0}")]
    ServingCa(String),
    /// The client CA does not load.
    #[error("kubelet client CA: {0}")]
    ClientCa(String),
    /// A serving certificate could not be made.
    #[error("serving certificate for {node}: {reason}")]
    Issue {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
}

/// Who signs the nodes' serving certificates.
pub(crate) enum Signer {
    /// The kubelet serving CA, which the API server (`--kubelet-certificate-authority`) and
    /// metrics-server trust for kubelets.
    Ca(Box<CertificateAuthority>),
    /// Each node signs its own certificate, as a kubelet without certificate files does.
    SelfSigned,
}

impl Signer {
    /// A signer from a CA certificate and key (PEM).
    pub(crate) fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let bad = |e: &dyn std::fmt::Display| TlsError::ServingCa(e.to_string());
        let ca = CertificateAuthority::load(cert_pem, key_pem, time::Duration::days(365))
            .map_err(|e| bad(&e))?;
        Ok(Signer::Ca(Box::new(ca)))
    }

    /// A certificate chain and key for node `name` at `ip`.
    fn issue(
        &self,
        name: &str,
        ip: IpAddr,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let fail = |e: &dyn std::fmt::Display| TlsError::Issue {
            node: name.to_string(),
            reason: e.to_string(),
        };
        let spec = CertSpec::server(name, vec![name.to_string()], vec![ip]);
        let pair = match self {
            Signer::Ca(ca) => ca.issue(&spec),
            Signer::SelfSigned => kubemark_core::pki::self_signed(&spec),
        }
        .map_err(|e| fail(&e))?;
        let leaf =
            CertificateDer::from_pem_slice(pair.cert_pem.as_bytes()).map_err(|e| fail(&e))?;
        let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).map_err(|e| fail(&e))?;
        Ok((vec![leaf], key))
    }
}

/// The TLS of every node server of a process.
pub(crate) struct Tls {
    signer: Signer,
    clients: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl Tls {
    /// Client certificates verified against `client_ca_pem` (PEM, one or more certificates);
    /// a client without one may still send a bearer token.
    pub(crate) fn new(signer: Signer, client_ca_pem: &[u8]) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(client_ca_pem) {
            let cert = cert.map_err(|e| TlsError::ClientCa(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(TlsError::ClientCa("no certificate in it".into()));
        }
        let clients =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
        Ok(Tls {
            signer,
            clients,
            provider,
        })
    }

    /// A server configuration for one connection to node `name` at `ip`.
    pub(crate) fn config(
        &self,
        name: &str,
        ip: IpAddr,
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let (chain, key) = self.signer.issue(name, ip)?;
        let fail = |e: rustls::Error| TlsError::Issue {
            node: name.to_string(),
            reason: e.to_string(),
        };
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(fail)?
            .with_client_cert_verifier(self.clients.clone())
            .with_single_cert(chain, key)
            .map_err(fail)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // One handshake per connection and clients that keep their connections: no session
        // cache (it allocates up front).
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        Ok(Arc::new(config))
    }
}

/// The user a client certificate names: CN, and O as groups.
pub(crate) fn certificate_user(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect();
    Some((user, groups))
}
