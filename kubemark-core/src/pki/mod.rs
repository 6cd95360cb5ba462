//! The cluster PKI, generated per cluster with rcgen and independent of any provider: a cluster
//! CA, a separate etcd CA (so that no Kubernetes client certificate can talk to etcd directly),
//! serving and client certificates for every component and the service-account key pair. The
//! cluster CA also signs kubelet CSRs in the controller-manager. There is no static token: every
//! client authenticates with a certificate or a token the API server issues.

mod authority;
mod files;
mod kubeconfig;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

pub use authority::{CertAndKey, CertSpec, CertificateAuthority, self_signed};
pub use files::{PkiDir, write_private, write_public};
pub use kubeconfig::{Kubeconfig, KubeconfigCredentials};
use time::Duration;

/// Errors of PKI generation and writing.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or key material.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An option is invalid.
    #[error("invalid PKI option: {0}")]
    InvalidOption(String),
    /// A kubeconfig could not be serialized.
    #[error("kubeconfig serialization failed: {0}")]
    Kubeconfig(String),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the PKI must cover.
#[derive(Debug, Clone)]
pub struct PkiOptions {
    /// Cluster name, used in the CA's name.
    pub cluster: String,
    /// Addresses clients use to reach the API server (public and private).
    pub master_ips: Vec<IpAddr>,
    /// Extra DNS names of the master.
    pub master_dns_names: Vec<String>,
    /// The service CIDR; its first address is the `kubernetes` Service's ClusterIP.
    pub service_cidr: String,
    /// Validity of the CAs and every certificate.
    pub validity: Duration,
}

impl PkiOptions {
    /// Options for `cluster` with a master at `master_ips`, service CIDR `10.0.0.0/16`, valid a year.
    pub fn new(cluster: impl Into<String>, master_ips: Vec<IpAddr>) -> Self {
        Self {
            cluster: cluster.into(),
            master_ips,
            master_dns_names: Vec::new(),
            service_cidr: "10.0.0.0/16".into(),
            validity: Duration::days(365),
        }
    }
}

/// The first usable address of an IPv4 CIDR, which the API server gives the `kubernetes` Service.
pub fn first_service_ip(cidr: &str) -> Result<IpAddr, PkiError> {
    let bad = || {
        PkiError::InvalidOption(format!(
            "service CIDR {cidr:?} is not an IPv4 CIDR like 10.0.0.0/16"
        ))
    };
    let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u32 = len.parse().map_err(|_| bad())?;
    if !(1..=30).contains(&len) {
        return Err(bad());
    }
    let mask = u32::MAX << (32 - len);
    Ok(IpAddr::V4(Ipv4Addr::from((u32::from(addr) & mask) + 1)))
}

/// The Kubernetes user names of the control-plane components, which the API server's bootstrap
/// RBAC policy already binds.
pub mod users {
    /// The controller-manager.
    pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";
    /// The scheduler.
    pub const SCHEDULER: &str = "system:kube-scheduler";
    /// kube-proxy.
    pub const KUBE_PROXY: &str = "system:kube-proxy";
    /// The cluster administrator (member of `system:masters`).
    pub const ADMIN: &str = "kubemark-admin";
    /// The group of cluster administrators.
    pub const MASTERS_GROUP: &str = "system:masters";
    /// The group of kubelets.
    pub const NODES_GROUP: &str = "system:nodes";

    /// The user name of the kubelet of node `name`, as the Node authorizer expects it.
    pub fn node(name: &str) -> String {
        format!("system:node:{name}")
    }
}

/// Every certificate and key of a cluster. `Debug` prints no key.
pub struct ClusterPki {
    /// The cluster CA: API server clients, kubelets, and the controller-manager's CSR signer.
    pub ca: CertificateAuthority,
    /// The CA that etcd trusts, separate from the cluster CA.
    pub etcd_ca: CertificateAuthority,
    /// The CA of the hollow kubelets' serving certificates, a root of its own: the hollow-node
    /// processes (on an external cluster too) hold its key, so nothing but the API server's
    /// kubelet client and metrics-server may trust it. Chained to the cluster CA, its key
    /// could sign a certificate for the API server's own names.
    pub kubelet_serving_ca: CertificateAuthority,
    /// The CA of the aggregation layer's front proxy (the API server's requests to extension
    /// API servers), separate from the cluster CA as kubeadm keeps it.
    pub front_proxy_ca: CertificateAuthority,
    /// The API server's client certificate towards extension API servers.
    pub front_proxy_client: CertAndKey,
    /// kube-apiserver serving certificate.
    pub apiserver: CertAndKey,
    /// kube-apiserver's client certificate towards kubelets.
    pub apiserver_kubelet_client: CertAndKey,
    /// kube-apiserver's client certificate towards etcd.
    pub apiserver_etcd_client: CertAndKey,
    /// etcd serving certificate (clients and peers).
    pub etcd_server: CertAndKey,
    /// Admin client certificate (`O=system:masters`).
    pub admin: CertAndKey,
    /// kube-controller-manager client certificate.
    pub controller_manager: CertAndKey,
    /// kube-scheduler client certificate.
    pub scheduler: CertAndKey,
    /// kube-proxy client certificate.
    pub kube_proxy: CertAndKey,
    /// Service-account token signing key, PEM (PKCS#8).
    pub service_account_key_pem: String,
    /// Service-account token verification key, PEM.
    pub service_account_pub_pem: String,
    /// The options the PKI was made for.
    pub options: PkiOptions,
}

/// The file names [`ClusterPki::write`] uses, relative to the PKI directory.
pub mod file_names {
    /// Cluster CA certificate.
    pub const CA_CRT: &str = "ca.crt";
    /// Cluster CA key.
    pub const CA_KEY: &str = "ca.key";
    /// etcd CA certificate.
    pub const ETCD_CA_CRT: &str = "etcd-ca.crt";
    /// Service-account signing key.
    pub const SA_KEY: &str = "sa.key";
    /// Service-account public key.
    pub const SA_PUB: &str = "sa.pub";
    /// The kubelet serving CA's certificate (`--kubelet-certificate-authority`).
    pub const KUBELET_SERVING_CA_CRT: &str = "kubelet-serving-ca.crt";
    /// The kubelet serving CA's key.
    pub const KUBELET_SERVING_CA_KEY: &str = "kubelet-serving-ca.key";
    /// The front proxy's CA certificate (`--requestheader-client-ca-file`).
    pub const FRONT_PROXY_CA_CRT: &str = "front-proxy-ca.crt";
}

impl ClusterPki {
    /// Generates the whole PKI in memory.
    pub fn generate(options: PkiOptions) -> Result<Self, PkiError> {
        if options.master_ips.is_empty() {
            return Err(PkiError::InvalidOption(
                "at least one master IP is needed".into(),
            ));
        }
        let service_ip = first_service_ip(&options.service_cidr)?;
        let ca = CertificateAuthority::generate(
            &format!("kubemark-ca-{}", options.cluster),
            options.validity,
        )?;
        let etcd_ca = CertificateAuthority::generate(
            &format!("kubemark-etcd-ca-{}", options.cluster),
            options.validity,
        )?;

        let kubelet_serving_ca = CertificateAuthority::generate(
            &format!("kubemark-kubelet-serving-ca-{}", options.cluster),
            options.validity,
        )?;

        let front_proxy_ca = CertificateAuthority::generate(
            &format!("kubemark-front-proxy-ca-{}", options.cluster),
            options.validity,
        )?;
        let front_proxy_client =
            front_proxy_ca.issue(&CertSpec::client("front-proxy-client", &[]))?;

        let mut ips = options.master_ips.clone();
        for ip in [service_ip, IpAddr::V4(Ipv4Addr::LOCALHOST)] {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        let mut dns: Vec<String> = [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "localhost",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        dns.extend(options.master_dns_names.iter().cloned());
        let apiserver = ca.issue(&CertSpec::server("kube-apiserver", dns, ips))?;

        let mut etcd_ips = options.master_ips.clone();
        if !etcd_ips.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)) {
            etcd_ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        // One certificate serves both directions of the peer link, so it is server and client.
        let mut etcd_spec = CertSpec::server("etcd", vec!["localhost".into()], etcd_ips);
        etcd_spec.client = true;
        let etcd_server = etcd_ca.issue(&etcd_spec)?;
        let apiserver_etcd_client =
            etcd_ca.issue(&CertSpec::client("kube-apiserver-etcd-client", &[]))?;

        let apiserver_kubelet_client = ca.issue(&CertSpec::client(
            "kube-apiserver-kubelet-client",
            &[users::MASTERS_GROUP],
        ))?;
        let admin = ca.issue(&CertSpec::client(users::ADMIN, &[users::MASTERS_GROUP]))?;
        let controller_manager = ca.issue(&CertSpec::client(users::CONTROLLER_MANAGER, &[]))?;
        let scheduler = ca.issue(&CertSpec::client(users::SCHEDULER, &[]))?;
        let kube_proxy = ca.issue(&CertSpec::client(users::KUBE_PROXY, &[]))?;

        let sa = rcgen::KeyPair::generate()?;

        Ok(Self {
            ca,
            etcd_ca,
            kubelet_serving_ca,
            front_proxy_ca,
            front_proxy_client,
            apiserver,
            apiserver_kubelet_client,
            apiserver_etcd_client,
            etcd_server,
            admin,
            controller_manager,
            scheduler,
            kube_proxy,
            service_account_key_pem: sa.serialize_pem(),
            service_account_pub_pem: sa.public_key_pem(),
            options,
        })
    }

    /// A client certificate for the kubelet of node `name` (`CN=system:node:<name>`,
    /// `O=system:nodes`), which the Node authorizer limits to that node.
    pub fn issue_kubelet_client(&self, name: &str) -> Result<CertAndKey, PkiError> {
        self.ca
            .issue(&CertSpec::client(users::node(name), &[users::NODES_GROUP]))
    }

    /// Writes every file into `dir` (created 0700): certificates 0644, keys 0600.
    pub fn write(&self, dir: &Path) -> Result<(), PkiError> {
        files::create_private_dir(dir)?;
        let pairs: [(&str, &CertAndKey); 9] = [
            ("front-proxy-client", &self.front_proxy_client),
            ("apiserver", &self.apiserver),
            ("apiserver-kubelet-client", &self.apiserver_kubelet_client),
            ("apiserver-etcd-client", &self.apiserver_etcd_client),
            ("etcd-server", &self.etcd_server),
            ("admin", &self.admin),
            ("controller-manager", &self.controller_manager),
            ("scheduler", &self.scheduler),
            ("kube-proxy", &self.kube_proxy),
        ];
        for (name, pair) in pairs {
            write_public(&dir.join(format!("{name}.crt")), &pair.cert_pem)?;
            write_private(&dir.join(format!("{name}.key")), &pair.key_pem)?;
        }
        write_public(&dir.join(file_names::CA_CRT), self.ca.cert_pem())?;
        write_private(&dir.join(file_names::CA_KEY), &self.ca.key_pem())?;
        write_public(&dir.join(file_names::ETCD_CA_CRT), self.etcd_ca.cert_pem())?;
        write_private(&dir.join("etcd-ca.key"), &self.etcd_ca.key_pem())?;
        write_public(
            &dir.join(file_names::FRONT_PROXY_CA_CRT),
            self.front_proxy_ca.cert_pem(),
        )?;
        write_public(
            &dir.join(file_names::KUBELET_SERVING_CA_CRT),
            self.kubelet_serving_ca.cert_pem(),
        )?;
        write_private(
            &dir.join(file_names::KUBELET_SERVING_CA_KEY),
            &self.kubelet_serving_ca.key_pem(),
        )?;
        write_private(&dir.join(file_names::SA_KEY), &self.service_account_key_pem)?;
        write_public(&dir.join(file_names::SA_PUB), &self.service_account_pub_pem)?;
        Ok(())
    }
}

impl std::fmt::Debug for ClusterPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The certificates' own Debug redacts their keys; the service-account key is a bare PEM.
        f.debug_struct("ClusterPki")
            .field("ca", &self.ca)
            .field("etcd_ca", &self.etcd_ca)
            .field("kubelet_serving_ca", &self.kubelet_serving_ca)
            .field("front_proxy_ca", &self.front_proxy_ca)
            .field("admin", &self.admin)
            .field("service_account_key_pem", &"<redacted>")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
