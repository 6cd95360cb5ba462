use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::*;

use super::*;

struct Parsed {
    der: Vec<u8>,
}

impl Parsed {
    fn new(pem: &str) -> Self {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("valid PEM");
        Self { der: pem.contents }
    }
    fn cert(&self) -> X509Certificate<'_> {
        X509Certificate::from_der(&self.der).expect("valid DER").1
    }
}

fn attr(cert: &X509Certificate<'_>, cn: bool) -> Vec<String> {
    let subject = cert.subject();
    let it: Vec<_> = if cn {
        subject.iter_common_name().collect()
    } else {
        subject.iter_organization().collect()
    };
    it.into_iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn sans(cert: &X509Certificate<'_>) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Some(ext) = cert.subject_alternative_name().unwrap() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    ips.push(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
                }
                other => panic!("unexpected SAN {other:?}"),
            }
        }
    }
    (dns, ips)
}

fn eku(cert: &X509Certificate<'_>) -> (bool, bool) {
    let e = cert
        .extended_key_usage()
        .unwrap()
        .expect("EKU present")
        .value;
    (e.server_auth, e.client_auth)
}

fn verify_chain(leaf: &str, ca: &str) {
    let leaf = Parsed::new(leaf);
    let ca = Parsed::new(ca);
    let (leaf, ca) = (leaf.cert(), ca.cert());
    assert_eq!(
        leaf.issuer(),
        ca.subject(),
        "issuer must be the CA's subject"
    );
    leaf.verify_signature(Some(ca.public_key()))
        .expect("leaf signed by the CA");
}

fn pki() -> ClusterPki {
    let master = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    let mut opts = PkiOptions::new("unit", vec![master]);
    opts.master_dns_names.push("master.example".into());
    ClusterPki::generate(opts).unwrap()
}

#[test]
fn cas_are_self_signed_cas_with_cert_sign_usage() {
    let pki = pki();
    for ca in [
        pki.ca.cert_pem(),
        pki.etcd_ca.cert_pem(),
        pki.kubelet_serving_ca.cert_pem(),
        pki.front_proxy_ca.cert_pem(),
    ] {
        let p = Parsed::new(ca);
        let c = p.cert();
        assert!(c.is_ca());
        assert!(c.basic_constraints().unwrap().unwrap().value.ca);
        assert!(c.key_usage().unwrap().unwrap().value.key_cert_sign());
        c.verify_signature(None).expect("self-signed");
    }
    assert_ne!(pki.ca.cert_pem(), pki.etcd_ca.cert_pem());
    // The hollow-node processes hold the kubelet serving CA's key: it must not chain to the
    // cluster CA, or it could sign a certificate for the API server that clients accept.
    let serving = Parsed::new(pki.kubelet_serving_ca.cert_pem());
    let ca = Parsed::new(pki.ca.cert_pem());
    assert_ne!(serving.cert().issuer(), ca.cert().subject());
    assert!(
        serving
            .cert()
            .verify_signature(Some(ca.cert().public_key()))
            .is_err()
    );
    // The API server's client certificate towards extension API servers.
    verify_chain(
        &pki.front_proxy_client.cert_pem,
        pki.front_proxy_ca.cert_pem(),
    );
}

#[test]
fn apiserver_serving_cert_has_every_san_and_server_usage() {
    let pki = pki();
    verify_chain(&pki.apiserver.cert_pem, pki.ca.cert_pem());
    let p = Parsed::new(&pki.apiserver.cert_pem);
    let c = p.cert();
    let (dns, ips) = sans(&c);
    for name in [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
        "master.example",
    ] {
        assert!(
            dns.contains(&name.to_string()),
            "missing DNS SAN {name}: {dns:?}"
        );
    }
    for ip in ["203.0.113.7", "10.0.0.1", "127.0.0.1"] {
        assert!(
            ips.contains(&ip.parse().unwrap()),
            "missing IP SAN {ip}: {ips:?}"
        );
    }
    assert_eq!(eku(&c), (true, false));
    assert!(!c.is_ca());
    let ku = c.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
}

#[test]
fn client_certs_carry_user_and_groups() {
    let pki = pki();
    let node = pki.issue_kubelet_client("hollow-1").unwrap();
    let cases: [(&CertAndKey, &str, &[&str]); 6] = [
        (&pki.admin, users::ADMIN, &["system:masters"]),
        (
            &pki.controller_manager,
            "system:kube-controller-manager",
            &[],
        ),
        (&pki.scheduler, "system:kube-scheduler", &[]),
        (&pki.kube_proxy, "system:kube-proxy", &[]),
        (
            &pki.apiserver_kubelet_client,
            "kube-apiserver-kubelet-client",
            &["system:masters"],
        ),
        (&node, "system:node:hollow-1", &["system:nodes"]),
    ];
    for (pair, cn, orgs) in cases {
        verify_chain(&pair.cert_pem, pki.ca.cert_pem());
        let p = Parsed::new(&pair.cert_pem);
        let c = p.cert();
        assert_eq!(attr(&c, true), vec![cn.to_string()]);
        assert_eq!(
            attr(&c, false),
            orgs.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        );
        assert_eq!(eku(&c), (false, true), "{cn} must be client-only");
    }
}

#[test]
fn etcd_certs_chain_to_the_etcd_ca_not_the_cluster_ca() {
    let pki = pki();
    verify_chain(&pki.etcd_server.cert_pem, pki.etcd_ca.cert_pem());
    verify_chain(&pki.apiserver_etcd_client.cert_pem, pki.etcd_ca.cert_pem());
    let server = Parsed::new(&pki.etcd_server.cert_pem);
    let ca = Parsed::new(pki.ca.cert_pem());
    assert!(
        server
            .cert()
            .verify_signature(Some(ca.cert().public_key()))
            .is_err()
    );
    assert_eq!(eku(&server.cert()), (true, true));
}

#[test]
fn validity_covers_now_and_the_requested_period() {
    let pki = pki();
    let p = Parsed::new(&pki.apiserver.cert_pem);
    let c = p.cert();
    assert!(c.validity().is_valid());
    let days = (c.validity().not_after.timestamp() - c.validity().not_before.timestamp()) / 86_400;
    assert!((365..=366).contains(&days), "validity {days} days");
}

#[test]
fn loaded_ca_issues_certificates_that_chain() {
    let pki = pki();
    let ca = CertificateAuthority::load(
        pki.ca.cert_pem(),
        &pki.ca.key_pem(),
        ::time::Duration::days(1),
    )
    .unwrap();
    let leaf = ca
        .issue(&CertSpec::client("system:node:later", &["system:nodes"]))
        .unwrap();
    verify_chain(&leaf.cert_pem, pki.ca.cert_pem());
}

#[test]
fn keys_are_written_0600_and_certs_0644_and_debug_hides_keys() {
    let pki = pki();
    let dir = PkiDir::temporary().unwrap();
    let sub = dir.path().join("pki");
    pki.write(&sub).unwrap();
    let mode = |name: &str| {
        std::fs::metadata(sub.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(
        std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for key in [
        "ca.key",
        "etcd-ca.key",
        "apiserver.key",
        "admin.key",
        "sa.key",
    ] {
        assert_eq!(mode(key), 0o600, "{key}");
    }
    for cert in ["ca.crt", "apiserver.crt", "sa.pub"] {
        assert_eq!(mode(cert), 0o644, "{cert}");
    }
    for debug in [format!("{:?}", pki.admin), format!("{pki:?}")] {
        assert!(
            !debug.contains("PRIVATE KEY"),
            "Debug leaked a key: {debug}"
        );
    }
    assert!(
        !sub.join("known_tokens.csv").exists(),
        "no static token file: nothing uses one"
    );
}

#[test]
fn temporary_pki_dir_is_removed_on_drop_and_on_panic() {
    let dir = PkiDir::temporary().unwrap();
    let path = dir.path().to_path_buf();
    assert!(path.is_dir());
    drop(dir);
    assert!(!path.exists());

    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let dir = PkiDir::temporary().unwrap();
        *seen.lock().unwrap() = Some(dir.path().to_path_buf());
        panic!("boom");
    });
    assert!(result.is_err());
    let path = seen.lock().unwrap().clone().unwrap();
    assert!(!path.exists(), "PKI dir survived a panic");
}

#[test]
fn kubeconfig_is_valid_yaml_with_embedded_credentials() {
    let pki = pki();
    let kc = Kubeconfig {
        name: "kubemark".into(),
        server: "https://127.0.0.1:6443".into(),
        ca_pem: pki.ca.cert_pem().to_string(),
        credentials: KubeconfigCredentials::ClientCert(pki.admin.clone()),
    };
    let yaml = kc.to_yaml().unwrap();
    let parsed: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(parsed["current-context"], "kubemark");
    assert_eq!(
        parsed["clusters"][0]["cluster"]["server"],
        "https://127.0.0.1:6443"
    );
    assert!(
        parsed["users"][0]["user"]["client-key-data"]
            .as_str()
            .unwrap()
            .len()
            > 100
    );
    let dir = PkiDir::temporary().unwrap();
    let path = dir.path().join("kubeconfig");
    kc.write(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!format!("{:?}", KubeconfigCredentials::Token("s3cret".into())).contains("s3cret"));
}

#[test]
fn first_service_ip_is_network_plus_one() {
    assert_eq!(
        first_service_ip("10.0.0.0/16").unwrap(),
        "10.0.0.1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        first_service_ip("10.96.5.7/12").unwrap(),
        "10.96.0.1".parse::<IpAddr>().unwrap()
    );
    assert!(first_service_ip("10.0.0.0").is_err());
    assert!(first_service_ip("fd00::/64").is_err());
}

#[test]
fn private_files_replace_a_planted_link_and_leave_no_temporary_behind() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, "the user's file").unwrap();
    let target = dir.path().join("admin.key");
    std::os::unix::fs::symlink(&elsewhere, &target).unwrap();

    write_private(&target, "secret").unwrap();

    assert_eq!(
        std::fs::read_to_string(&elsewhere).unwrap(),
        "the user's file",
        "the write followed the link"
    );
    let meta = std::fs::symlink_metadata(&target).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "secret");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "a temporary file was left: {names:?}");
}
