//! The release-download path against a local HTTP server playing dl.k8s.io and GitHub releases.

use std::collections::HashMap;
use std::sync::Arc;

use kubemark_core::binaries::{BinariesError, Downloader, ETCD_VERSION, KUBERNETES_VERSION};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A minimal HTTP/1.1 file server on 127.0.0.1 (one request per connection).
async fn serve(files: HashMap<String, Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let files = Arc::new(files);
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let files = files.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut len = 0;
                while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = sock.read(&mut buf[len..]).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    len += n;
                }
                let head = String::from_utf8_lossy(&buf[..len]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = match files.get(&path) {
                    Some(b) => ("200 OK", b.clone()),
                    None => ("404 Not Found", b"not found".to_vec()),
                };
                let header = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                sock.write_all(header.as_bytes()).await.unwrap();
                sock.write_all(&body).await.unwrap();
            });
        }
    });
    format!("http://{addr}")
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn etcd_tarball(arch: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let body = b"#!/bin/sh\necho etcd\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(body.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            format!("etcd-{ETCD_VERSION}-linux-{arch}/etcd"),
            &body[..],
        )
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

fn release(corrupt: Option<&str>) -> HashMap<String, Vec<u8>> {
    let arch = if std::env::consts::ARCH == "aarch64" {
        "arm64"
    } else {
        "amd64"
    };
    let mut files = HashMap::new();
    for name in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let body = format!("#!/bin/sh\necho {name}\n").into_bytes();
        let path = format!("/k8s/{KUBERNETES_VERSION}/bin/linux/{arch}/{name}");
        let sum = if corrupt == Some(name) {
            sha(b"something else")
        } else {
            sha(&body)
        };
        files.insert(format!("{path}.sha256"), sum.into_bytes());
        files.insert(path, body);
    }
    let tarball = etcd_tarball(arch);
    let archive = format!("etcd-{ETCD_VERSION}-linux-{arch}.tar.gz");
    let sum = if corrupt == Some("etcd") {
        sha(b"x")
    } else {
        sha(&tarball)
    };
    files.insert(
        format!("/etcd/{ETCD_VERSION}/SHA256SUMS"),
        format!("{sum}  {archive}\nabc  other.tar.gz\n").into_bytes(),
    );
    files.insert(format!("/etcd/{ETCD_VERSION}/{archive}"), tarball);
    files
}

fn cache_entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn verified_downloads_are_installed_executable() {
    let base = serve(release(None)).await;
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("bin").join(KUBERNETES_VERSION);
    Downloader::new()
        .with_endpoints(format!("{base}/k8s"), format!("{base}/etcd"))
        .download_missing(&dir)
        .await
        .unwrap();
    assert_eq!(
        cache_entries(&dir),
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler"
        ]
    );
    let out = std::process::Command::new(dir.join("kube-scheduler"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "kube-scheduler"
    );
    let out = std::process::Command::new(dir.join("etcd"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "etcd");
}

#[tokio::test]
async fn checksum_mismatch_is_a_clear_error_and_installs_nothing() {
    for corrupt in ["kube-scheduler", "etcd"] {
        let base = serve(release(Some(corrupt))).await;
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join("bin").join(KUBERNETES_VERSION);
        let err = Downloader::new()
            .with_endpoints(format!("{base}/k8s"), format!("{base}/etcd"))
            .download_missing(&dir)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BinariesError::ChecksumMismatch { .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("checksum mismatch") && text.contains(corrupt),
            "{text}"
        );
        assert!(!text.contains('\n'));
        assert_eq!(
            cache_entries(&dir),
            Vec::<String>::new(),
            "the cache must be left empty"
        );
    }
}

#[tokio::test]
async fn a_missing_file_on_the_server_is_a_download_error() {
    let mut files = release(None);
    files.retain(|k, _| !k.ends_with("kube-apiserver.sha256"));
    let base = serve(files).await;
    let cache = tempfile::tempdir().unwrap();
    let err = Downloader::new()
        .with_endpoints(format!("{base}/k8s"), format!("{base}/etcd"))
        .download_missing(cache.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kube-apiserver.sha256") && err.contains("404"),
        "{err}"
    );
    assert_eq!(cache_entries(cache.path()), Vec::<String>::new());
}
