//! Kubeconfig files, written the way kubectl and client-go read them.

use std::path::Path;

use serde::Serialize;

use super::{CertAndKey, PkiError, write_private};

/// How a kubeconfig user authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum KubeconfigCredentials {
    /// A client certificate and key, embedded.
    ClientCert(CertAndKey),
    /// A bearer token.
    Token(String),
}

impl std::fmt::Debug for KubeconfigCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClientCert(c) => f.debug_tuple("ClientCert").field(c).finish(),
            Self::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// A single-cluster, single-user kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubeconfig {
    /// Name used for the cluster, user and context entries.
    pub name: String,
    /// `https://host:port` of the API server.
    pub server: String,
    /// The CA that signed the API server's certificate, PEM.
    pub ca_pem: String,
    /// The user's credentials.
    pub credentials: KubeconfigCredentials,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct File<'a> {
    api_version: &'static str,
    kind: &'static str,
    clusters: [Named<'a, ClusterEntry>; 1],
    users: [Named<'a, UserEntry>; 1],
    contexts: [Named<'a, ContextEntry<'a>>; 1],
    current_context: &'a str,
}

#[derive(Serialize)]
struct Named<'a, T> {
    name: &'a str,
    #[serde(flatten)]
    value: T,
}

#[derive(Serialize)]
struct ClusterEntry {
    cluster: ClusterFields,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterFields {
    server: String,
    certificate_authority_data: String,
}

#[derive(Serialize)]
struct UserEntry {
    user: UserFields,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "kebab-case")]
struct UserFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    client_certificate_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_key_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

#[derive(Serialize)]
struct ContextEntry<'a> {
    context: ContextFields<'a>,
}

#[derive(Serialize)]
struct ContextFields<'a> {
    cluster: &'a str,
    user: &'a str,
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

impl Kubeconfig {
    /// Renders the kubeconfig as YAML.
    pub fn to_yaml(&self) -> Result<String, PkiError> {
        let user = match &self.credentials {
            KubeconfigCredentials::ClientCert(c) => UserFields {
                client_certificate_data: Some(b64(&c.cert_pem)),
                client_key_data: Some(b64(&c.key_pem)),
                ..UserFields::default()
            },
            KubeconfigCredentials::Token(t) => UserFields {
                token: Some(t.clone()),
                ..UserFields::default()
            },
        };
        let name = self.name.as_str();
        let file = File {
            api_version: "v1",
            kind: "Config",
            clusters: [Named {
                name,
                value: ClusterEntry {
                    cluster: ClusterFields {
                        server: self.server.clone(),
                        certificate_authority_data: b64(&self.ca_pem),
                    },
                },
            }],
            users: [Named {
                name,
                value: UserEntry { user },
            }],
            contexts: [Named {
                name,
                value: ContextEntry {
                    context: ContextFields {
                        cluster: name,
                        user: name,
                    },
                },
            }],
            current_context: name,
        };
        serde_saphyr::to_string(&file).map_err(|e| PkiError::Kubeconfig(e.to_string()))
    }

    /// Writes the kubeconfig with mode 0600 (it holds credentials).
    pub fn write(&self, path: &Path) -> Result<(), PkiError> {
        write_private(path, &self.to_yaml()?)
    }
}
