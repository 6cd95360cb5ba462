//! Certificate authorities and the certificates they issue.

use std::fmt;
use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::PkiError;

/// A PEM certificate with its PEM private key. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct CertAndKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
}

impl fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertAndKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Who a certificate is for, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// Subject common name (the user name for client certificates).
    pub common_name: String,
    /// Subject organizations (the groups for client certificates).
    pub organizations: Vec<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ips: Vec<IpAddr>,
    /// Valid for TLS servers.
    pub server: bool,
    /// Valid for TLS clients.
    pub client: bool,
}

impl CertSpec {
    /// A client certificate for user `cn` in groups `orgs`.
    pub fn client(cn: impl Into<String>, orgs: &[&str]) -> Self {
        Self {
            common_name: cn.into(),
            organizations: orgs.iter().map(|o| o.to_string()).collect(),
            dns_names: Vec::new(),
            ips: Vec::new(),
            server: false,
            client: true,
        }
    }

    /// A serving certificate for `cn` with the given names and addresses.
    pub fn server(cn: impl Into<String>, dns_names: Vec<String>, ips: Vec<IpAddr>) -> Self {
        Self {
            common_name: cn.into(),
            organizations: Vec::new(),
            dns_names,
            ips,
            server: true,
            client: false,
        }
    }
}

/// A CA that signs certificates; holds its private key in memory.
pub struct CertificateAuthority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    validity: Duration,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive, as RFC 5280 asks
    SerialNumber::from_slice(&bytes)
}

fn base_params(cn: &str, orgs: &[String], validity: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    for o in orgs {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    params.distinguished_name = dn;
    // Backdated a little so a clock a few minutes behind on another host still accepts it.
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + validity;
    params.serial_number = Some(random_serial());
    params
}

impl CertificateAuthority {
    /// A new self-signed CA named `cn`, valid for `validity`; it issues certificates of the same
    /// validity.
    pub fn generate(cn: &str, validity: Duration) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = base_params(cn, &[], validity);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            validity,
        })
    }

    /// Loads a CA written earlier (to issue more certificates for an existing cluster).
    pub fn load(cert_pem: &str, key_pem: &str, validity: Duration) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            issuer,
            validity,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PEM. Write it only with [`super::write_private`].
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a certificate with a fresh key.
    pub fn issue(&self, spec: &CertSpec) -> Result<CertAndKey, PkiError> {
        let key = KeyPair::generate()?;
        let params = leaf_params(spec, self.validity)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A self-signed certificate for `spec`, valid for a year: what a kubelet without certificate
/// files serves.
pub fn self_signed(spec: &CertSpec) -> Result<CertAndKey, PkiError> {
    let key = KeyPair::generate()?;
    let cert = leaf_params(spec, Duration::days(365))?.self_signed(&key)?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn leaf_params(spec: &CertSpec, validity: Duration) -> Result<CertificateParams, PkiError> {
    let mut params = base_params(&spec.common_name, &spec.organizations, validity);
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    if spec.server {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if spec.client {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    for dns in &spec.dns_names {
        params
            .subject_alt_names
            .push(SanType::DnsName(dns.as_str().try_into()?));
    }
    for ip in &spec.ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    Ok(params)
}
