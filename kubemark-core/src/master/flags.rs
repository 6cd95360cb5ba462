//! The command lines of the master components, independent of where they run (local processes,
//! or services over SSH on a remote master). Pure functions, unit-tested.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::pki::file_names;

/// Where a master keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterLayout {
    /// PKI written by [`ClusterPki::write`](crate::pki::ClusterPki::write).
    pub pki_dir: PathBuf,
    /// etcd's data directory.
    pub etcd_data_dir: PathBuf,
    /// Component kubeconfigs (`controller-manager.kubeconfig`, `scheduler.kubeconfig`).
    pub kubeconfig_dir: PathBuf,
    /// Scratch dir for components that want one (self-signed serving certs of KCM/scheduler).
    pub run_dir: PathBuf,
    /// Component logs.
    pub log_dir: PathBuf,
}

impl MasterLayout {
    /// The standard layout under `root`.
    pub fn under(root: &Path) -> Self {
        Self {
            pki_dir: root.join("pki"),
            etcd_data_dir: root.join("etcd-data"),
            kubeconfig_dir: root.join("kubeconfigs"),
            run_dir: root.join("run"),
            log_dir: root.join("logs"),
        }
    }

    fn pki(&self, name: &str) -> String {
        self.pki_dir.join(name).display().to_string()
    }

    /// The kubeconfig of a component (`controller-manager`, `scheduler`).
    pub fn kubeconfig(&self, component: &str) -> PathBuf {
        self.kubeconfig_dir.join(format!("{component}.kubeconfig"))
    }
}

/// The ports a master listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MasterPorts {
    /// etcd clients.
    pub etcd_client: u16,
    /// etcd peers.
    pub etcd_peer: u16,
    /// The API server's secure port.
    pub apiserver: u16,
    /// kube-controller-manager's secure (health/metrics) port.
    pub controller_manager: u16,
    /// kube-scheduler's secure (health/metrics) port.
    pub scheduler: u16,
}

/// The network shape of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MasterNetwork {
    /// Address every component binds to.
    pub bind_address: IpAddr,
    /// Address the API server advertises (the `kubernetes` Service endpoint).
    pub advertise_address: IpAddr,
    /// The ports.
    pub ports: MasterPorts,
    /// Service ClusterIP range.
    pub service_cidr: String,
    /// Pod range the controller-manager splits into per-node `podCIDR`s.
    pub cluster_cidr: String,
    /// Prefix length of each node's `podCIDR`.
    pub node_cidr_mask_size: u8,
}

impl MasterNetwork {
    /// Loopback defaults: services `10.0.0.0/16`, pods `10.64.0.0/10` cut into /24 per node
    /// (16,384 nodes of up to 254 pods).
    pub fn loopback(ports: MasterPorts) -> Self {
        let lo = IpAddr::from([127, 0, 0, 1]);
        Self {
            bind_address: lo,
            advertise_address: lo,
            ports,
            service_cidr: "10.0.0.0/16".into(),
            cluster_cidr: "10.64.0.0/10".into(),
            node_cidr_mask_size: 24,
        }
    }
}

/// The address of everything only the API server talks to (etcd) or that only needs local
/// health probes (controller-manager, scheduler): they share the master host, so nothing but the
/// API server is exposed beyond it.
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// etcd: TLS for clients and peers, client certificates required, trusted only from the etcd CA,
/// on the master's loopback.
pub fn etcd_args(l: &MasterLayout, n: &MasterNetwork) -> Vec<String> {
    let ip = LOOPBACK;
    let client = format!("https://{ip}:{}", n.ports.etcd_client);
    let peer = format!("https://{ip}:{}", n.ports.etcd_peer);
    vec![
        "--name=kubemark-etcd".into(),
        format!("--data-dir={}", l.etcd_data_dir.display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=kubemark-etcd={peer}"),
        "--initial-cluster-state=new".into(),
        format!("--cert-file={}", l.pki("etcd-server.crt")),
        format!("--key-file={}", l.pki("etcd-server.key")),
        format!("--trusted-ca-file={}", l.pki(file_names::ETCD_CA_CRT)),
        "--client-cert-auth=true".into(),
        format!("--peer-cert-file={}", l.pki("etcd-server.crt")),
        format!("--peer-key-file={}", l.pki("etcd-server.key")),
        format!("--peer-trusted-ca-file={}", l.pki(file_names::ETCD_CA_CRT)),
        "--peer-client-cert-auth=true".into(),
        // Kubernetes compacts etcd itself; a big backend quota keeps 5k-node runs from hitting it.
        "--quota-backend-bytes=8589934592".into(),
        "--log-level=warn".into(),
    ]
}

/// kube-apiserver: secure port only, Node+RBAC authorization, NodeRestriction admission.
pub fn apiserver_args(l: &MasterLayout, n: &MasterNetwork) -> Vec<String> {
    vec![
        format!("--etcd-servers=https://{LOOPBACK}:{}", n.ports.etcd_client),
        format!("--etcd-cafile={}", l.pki(file_names::ETCD_CA_CRT)),
        format!("--etcd-certfile={}", l.pki("apiserver-etcd-client.crt")),
        format!("--etcd-keyfile={}", l.pki("apiserver-etcd-client.key")),
        format!("--bind-address={}", n.bind_address),
        format!("--advertise-address={}", n.advertise_address),
        format!("--secure-port={}", n.ports.apiserver),
        format!("--tls-cert-file={}", l.pki("apiserver.crt")),
        format!("--tls-private-key-file={}", l.pki("apiserver.key")),
        format!("--client-ca-file={}", l.pki(file_names::CA_CRT)),
        format!(
            "--kubelet-client-certificate={}",
            l.pki("apiserver-kubelet-client.crt")
        ),
        format!(
            "--kubelet-client-key={}",
            l.pki("apiserver-kubelet-client.key")
        ),
        // Hollow kubelets serve certificates of the kubelet serving CA (their IP and name), so
        // the API server verifies them; addresses first, as nodes have no DNS.
        format!(
            "--kubelet-certificate-authority={}",
            l.pki(file_names::KUBELET_SERVING_CA_CRT)
        ),
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname".into(),
        // The aggregation layer (metrics-server behind `kubectl top`, other extension API
        // servers): the API server proxies as front-proxy-client, and publishes the
        // request-header CA that the controller-manager and scheduler look for.
        format!(
            "--requestheader-client-ca-file={}",
            l.pki(file_names::FRONT_PROXY_CA_CRT)
        ),
        "--requestheader-allowed-names=front-proxy-client".into(),
        "--requestheader-username-headers=X-Remote-User".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        format!(
            "--proxy-client-cert-file={}",
            l.pki("front-proxy-client.crt")
        ),
        format!(
            "--proxy-client-key-file={}",
            l.pki("front-proxy-client.key")
        ),
        // No kube-proxy runs on a kubemark master: reach extension API servers at their
        // endpoints, not their Service's cluster IP.
        "--enable-aggregator-routing=true".into(),
        // Hollow nodes join as real kubelets do: a bootstrap token, then a CSR the
        // controller-manager approves and signs.
        "--enable-bootstrap-token-auth=true".into(),
        format!("--service-account-key-file={}", l.pki(file_names::SA_PUB)),
        format!(
            "--service-account-signing-key-file={}",
            l.pki(file_names::SA_KEY)
        ),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-cluster-ip-range={}", n.service_cidr),
        "--authorization-mode=Node,RBAC".into(),
        "--enable-admission-plugins=NodeRestriction".into(),
        "--allow-privileged=true".into(),
        format!("--cert-dir={}", l.run_dir.join("apiserver").display()),
        "--profiling=true".into(),
        "--v=1".into(),
    ]
}

/// kube-controller-manager: allocates node pod CIDRs, signs kubelet CSRs with the cluster CA,
/// runs node lifecycle (all default controllers) plus the bootstrap-token controllers.
pub fn controller_manager_args(l: &MasterLayout, n: &MasterNetwork) -> Vec<String> {
    let kubeconfig = l.kubeconfig("controller-manager").display().to_string();
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        format!("--bind-address={LOOPBACK}"),
        format!("--secure-port={}", n.ports.controller_manager),
        format!(
            "--cert-dir={}",
            l.run_dir.join("controller-manager").display()
        ),
        format!(
            "--service-account-private-key-file={}",
            l.pki(file_names::SA_KEY)
        ),
        format!("--root-ca-file={}", l.pki(file_names::CA_CRT)),
        format!("--cluster-signing-cert-file={}", l.pki(file_names::CA_CRT)),
        format!("--cluster-signing-key-file={}", l.pki(file_names::CA_KEY)),
        "--use-service-account-credentials=true".into(),
        "--allocate-node-cidrs=true".into(),
        format!("--cluster-cidr={}", n.cluster_cidr),
        format!("--node-cidr-mask-size={}", n.node_cidr_mask_size),
        format!("--service-cluster-ip-range={}", n.service_cidr),
        "--controllers=*,bootstrapsigner,tokencleaner".into(),
        // The default 20 QPS makes CSR signing, CIDR allocation and node lifecycle the bottleneck
        // of thousands of joining nodes; upstream's kubemark masters raise it the same way.
        "--kube-api-qps=100".into(),
        "--kube-api-burst=200".into(),
        "--v=1".into(),
    ]
}

/// kube-scheduler.
pub fn scheduler_args(l: &MasterLayout, n: &MasterNetwork) -> Vec<String> {
    let kubeconfig = l.kubeconfig("scheduler").display().to_string();
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        format!("--bind-address={LOOPBACK}"),
        format!("--secure-port={}", n.ports.scheduler),
        format!("--cert-dir={}", l.run_dir.join("scheduler").display()),
        "--v=1".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> MasterNetwork {
        MasterNetwork::loopback(MasterPorts {
            etcd_client: 1,
            etcd_peer: 2,
            apiserver: 3,
            controller_manager: 4,
            scheduler: 5,
        })
    }

    #[test]
    fn apiserver_is_secure_and_enforces_node_authorization() {
        let args = apiserver_args(&MasterLayout::under(Path::new("/m")), &net());
        assert!(args.contains(&"--authorization-mode=Node,RBAC".to_string()));
        assert!(args.contains(&"--enable-admission-plugins=NodeRestriction".to_string()));
        assert!(args.contains(&"--secure-port=3".to_string()));
        assert!(args.contains(&"--etcd-servers=https://127.0.0.1:1".to_string()));
        assert!(
            !args.iter().any(|a| a.starts_with("--insecure")),
            "no insecure port: {args:?}"
        );
    }

    #[test]
    fn etcd_requires_client_certificates_everywhere() {
        let args = etcd_args(&MasterLayout::under(Path::new("/m")), &net());
        assert!(args.contains(&"--client-cert-auth=true".to_string()));
        assert!(args.contains(&"--peer-client-cert-auth=true".to_string()));
        assert!(
            args.iter().filter(|a| a.contains("http://")).count() == 0,
            "{args:?}"
        );
    }

    #[test]
    fn controller_manager_allocates_cidrs_and_signs_with_the_cluster_ca() {
        let args = controller_manager_args(&MasterLayout::under(Path::new("/m")), &net());
        assert!(args.contains(&"--allocate-node-cidrs=true".to_string()));
        assert!(args.contains(&"--cluster-signing-cert-file=/m/pki/ca.crt".to_string()));
        assert!(args.contains(&"--cluster-signing-key-file=/m/pki/ca.key".to_string()));
    }
}
