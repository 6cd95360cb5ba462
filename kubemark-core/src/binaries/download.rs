//! Downloading the official Kubernetes and etcd release binaries, verified by sha256 before they
//! are installed into the cache. Nothing unverified ever lands under the cache's final names.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{BinariesError, Component, ETCD_VERSION, KUBERNETES_VERSION};

const K8S_RELEASE_URL: &str = "https://dl.k8s.io/release";
const ETCD_RELEASE_URL: &str = "https://github.com/etcd-io/etcd/releases/download";

/// Downloads release binaries into a cache directory.
#[derive(Debug, Clone)]
pub struct Downloader {
    kubernetes_url: String,
    etcd_url: String,
    kubernetes_version: String,
    etcd_version: String,
    arch: &'static str,
}

impl Default for Downloader {
    fn default() -> Self {
        Self {
            kubernetes_url: K8S_RELEASE_URL.into(),
            etcd_url: ETCD_RELEASE_URL.into(),
            kubernetes_version: KUBERNETES_VERSION.into(),
            etcd_version: ETCD_VERSION.into(),
            arch: match std::env::consts::ARCH {
                "aarch64" => "arm64",
                "x86_64" => "amd64",
                other => other,
            },
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BinariesError + '_ {
    move |source| BinariesError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Downloader {
    /// Downloads from the official release sites.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses other base URLs (a mirror, or a local server in tests). Kubernetes files are fetched
    /// from `<k8s>/<version>/bin/linux/<arch>/<name>` (+ `.sha256`), etcd from
    /// `<etcd>/<version>/etcd-<version>-linux-<arch>.tar.gz` (+ `SHA256SUMS`).
    pub fn with_endpoints(
        mut self,
        kubernetes_url: impl Into<String>,
        etcd_url: impl Into<String>,
    ) -> Self {
        self.kubernetes_url = kubernetes_url.into();
        self.etcd_url = etcd_url.into();
        self
    }

    async fn get(&self, url: &str) -> Result<reqwest::Response, BinariesError> {
        crate::tls::install_crypto_provider();
        let err = |message: String| BinariesError::Download {
            url: url.to_string(),
            message,
        };
        let response = reqwest::get(url).await.map_err(|e| err(e.to_string()))?;
        if !response.status().is_success() {
            return Err(err(format!("HTTP {}", response.status())));
        }
        Ok(response)
    }

    async fn get_text(&self, url: &str) -> Result<String, BinariesError> {
        let response = self.get(url).await?;
        response.text().await.map_err(|e| BinariesError::Download {
            url: url.into(),
            message: e.to_string(),
        })
    }

    /// Streams `url` into `partial`, returning the sha256 of what arrived.
    async fn fetch_to(&self, url: &str, partial: &Path) -> Result<String, BinariesError> {
        let mut response = self.get(url).await?;
        let mut file = std::fs::File::create(partial).map_err(io_err(partial))?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| BinariesError::Download {
                url: url.into(),
                message: e.to_string(),
            })?
        {
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(io_err(partial))?;
        }
        file.sync_all().map_err(io_err(partial))?;
        Ok(hex::encode(hasher.finalize()))
    }

    fn verify(url: &str, expected: &str, actual: &str) -> Result<(), BinariesError> {
        if expected.eq_ignore_ascii_case(actual) {
            Ok(())
        } else {
            Err(BinariesError::ChecksumMismatch {
                url: url.into(),
                expected: expected.into(),
                actual: actual.into(),
            })
        }
    }

    fn install(from: &Path, to: &Path) -> Result<(), BinariesError> {
        std::fs::set_permissions(from, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err(from))?;
        std::fs::rename(from, to).map_err(io_err(to))
    }

    /// Downloads every component missing from `dir`, verifying each against its published sha256.
    ///
    /// All or nothing: files are staged next to `dir` and moved in only when every one verified,
    /// so a failure leaves the cache as it was.
    pub async fn download_missing(&self, dir: &Path) -> Result<(), BinariesError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let missing: Vec<Component> = Component::ALL
            .into_iter()
            .filter(|c| !dir.join(c.file_name()).is_file())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let staging = tempfile::Builder::new()
            .prefix(".download-")
            .tempdir_in(dir)
            .map_err(io_err(dir))?;
        for component in &missing {
            tracing::info!(component = component.file_name(), "downloading");
            match component {
                Component::Etcd => self.download_etcd(staging.path()).await?,
                other => {
                    self.download_kubernetes(other.file_name(), staging.path())
                        .await?
                }
            }
        }
        for component in missing {
            let name = component.file_name();
            Self::install(&staging.path().join(name), &dir.join(name))?;
        }
        Ok(())
    }

    async fn download_kubernetes(&self, name: &str, dir: &Path) -> Result<(), BinariesError> {
        let url = format!(
            "{}/{}/bin/linux/{}/{name}",
            self.kubernetes_url, self.kubernetes_version, self.arch
        );
        let sum_url = format!("{url}.sha256");
        let expected = self.get_text(&sum_url).await?;
        let expected = expected
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let actual = self.fetch_to(&url, &dir.join(name)).await?;
        Self::verify(&url, &expected, &actual)
    }

    async fn download_etcd(&self, dir: &Path) -> Result<(), BinariesError> {
        let v = &self.etcd_version;
        let archive = format!("etcd-{v}-linux-{}.tar.gz", self.arch);
        let url = format!("{}/{v}/{archive}", self.etcd_url);
        let sums_url = format!("{}/{v}/SHA256SUMS", self.etcd_url);
        let sums = self.get_text(&sums_url).await?;
        let expected = sums
            .lines()
            .filter_map(|l| l.split_once(char::is_whitespace))
            .find(|(_, file)| file.trim().trim_start_matches('*') == archive)
            .map(|(sum, _)| sum.to_string())
            .ok_or_else(|| BinariesError::Download {
                url: sums_url.clone(),
                message: format!("no checksum for {archive}"),
            })?;
        let tarball = dir.join("etcd.tar.gz");
        let actual = self.fetch_to(&url, &tarball).await?;
        Self::verify(&url, &expected, &actual)?;

        let binary = dir.join("etcd");
        let file = std::fs::File::open(&tarball).map_err(io_err(&tarball))?;
        let mut entries = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let wanted = format!("etcd-{v}-linux-{}/etcd", self.arch);
        let mut found = false;
        for entry in entries.entries().map_err(io_err(&tarball))? {
            let mut entry = entry.map_err(io_err(&tarball))?;
            if entry.path().map_err(io_err(&tarball))?.to_string_lossy() == wanted {
                let mut out = std::fs::File::create(&binary).map_err(io_err(&binary))?;
                let mut buf = Vec::new();
                entry.read_to_end(&mut buf).map_err(io_err(&tarball))?;
                out.write_all(&buf).map_err(io_err(&binary))?;
                found = true;
                break;
            }
        }
        if !found {
            return Err(BinariesError::Download {
                url,
                message: format!("archive has no {wanted}"),
            });
        }
        Self::install(&binary, &dir.join("etcd"))
    }
}
