//! The hollow-node image, built without a container daemon and pushed through the OCI
//! distribution API.
//!
//! The image is one layer: the `hollow-node` binary (kubemark-hollow) at
//! `/usr/local/bin/hollow-node`, its entrypoint, plus the shared
//! libraries it links (found with `ldd`, copied from this machine at the same paths), so it runs
//! on any Linux node of this machine's architecture without a base image. The tar is
//! reproducible (sorted, mtime 0, root-owned), so the same binary gives the same digest.

mod push;

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::Digest;

pub use push::{ImageReference, PushOptions, check_access, fetch_manifest, push};

/// Errors of building or pushing an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A local file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The registry refused or failed a request.
    #[error("registry {registry}: {what}: {detail}")]
    Registry {
        /// `host[:port]`.
        registry: String,
        /// What was being done.
        what: String,
        /// Status and the registry's error message, on one line (never credentials).
        detail: String,
    },
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// OCI media types.
pub mod media {
    /// Image manifest.
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// Image config.
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Gzipped layer.
    pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
}

/// A content-addressed blob.
#[derive(Clone)]
pub struct Blob {
    /// `sha256:<hex>`.
    pub digest: String,
    /// The bytes.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blob")
            .field("digest", &self.digest)
            .field("size", &self.data.len())
            .finish()
    }
}

impl Blob {
    fn of(data: Vec<u8>) -> Self {
        Self {
            digest: digest(&data),
            data,
        }
    }
}

/// `sha256:<hex>` of `data`.
pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// A built image.
#[derive(Debug, Clone)]
pub struct Image {
    /// The one layer.
    pub layer: Blob,
    /// The config.
    pub config: Blob,
    /// The manifest.
    pub manifest: Blob,
}

/// Where the binary goes in the image.
pub const BINARY_PATH: &str = "usr/local/bin/hollow-node";

/// The files the image needs besides the binary: its shared libraries and loader, from `ldd`.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| ImageError::Invalid(format!("running ldd on {}: {e}", binary.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    let mut libs: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    libs.sort();
    libs.dedup();
    Ok(libs)
}

fn add_file(
    tar: &mut tar::Builder<Vec<u8>>,
    path_in_image: &str,
    data: &[u8],
    mode: u32,
) -> Result<(), ImageError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path_in_image, data)
        .map_err(|e| ImageError::Invalid(format!("writing {path_in_image} into the layer: {e}")))
}

fn add_dir(
    tar: &mut tar::Builder<Vec<u8>>,
    path_in_image: &str,
    mode: u32,
) -> Result<(), ImageError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(0);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Directory);
    tar.append_data(&mut header, format!("{path_in_image}/"), std::io::empty())
        .map_err(|e| ImageError::Invalid(format!("writing {path_in_image} into the layer: {e}")))
}

/// Builds the image around `binary` (normally `hollow-node`).
pub fn build(binary: &Path) -> Result<Image, ImageError> {
    let bytes = std::fs::read(binary).map_err(io(binary))?;
    let mut files: Vec<(String, Vec<u8>, u32)> = vec![(BINARY_PATH.to_string(), bytes, 0o755)];
    for lib in shared_libraries(binary)? {
        // Follow symlinks: the image has no /lib -> /usr/lib, so each path gets the real bytes.
        let data = std::fs::read(&lib).map_err(io(&lib))?;
        let inside = lib.to_string_lossy().trim_start_matches('/').to_string();
        files.push((inside, data, 0o755));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut dirs: Vec<String> = files
        .iter()
        .flat_map(|(p, _, _)| {
            let parts: Vec<&str> = p.split('/').collect();
            (1..parts.len())
                .map(|i| parts[..i].join("/"))
                .collect::<Vec<_>>()
        })
        .collect();
    dirs.push("tmp".into());
    dirs.sort();
    dirs.dedup();
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    for d in &dirs {
        add_dir(&mut tar, d, if d == "tmp" { 0o1777 } else { 0o755 })?;
    }
    for (p, data, mode) in &files {
        add_file(&mut tar, p, data, *mode)?;
    }
    let uncompressed = tar
        .into_inner()
        .map_err(|e| ImageError::Invalid(format!("finishing the layer: {e}")))?;
    let diff_id = digest(&uncompressed);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&uncompressed)
        .and_then(|()| gz.flush())
        .map_err(|e| ImageError::Invalid(format!("compressing the layer: {e}")))?;
    let layer = Blob::of(
        gz.finish()
            .map_err(|e| ImageError::Invalid(format!("compressing the layer: {e}")))?,
    );
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Entrypoint": [format!("/{BINARY_PATH}")],
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "User": "65532:65532",
            "WorkingDir": "/tmp",
            "Labels": {
                "org.opencontainers.image.title": "kubemark hollow-node",
                "org.opencontainers.image.version": env!("CARGO_PKG_VERSION"),
            },
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created_by": "kubemark image build: the hollow-node binary and its shared libraries" }],
    });
    let config = Blob::of(serde_json::to_vec(&config).expect("static JSON"));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::MANIFEST,
        "config": { "mediaType": media::CONFIG, "digest": config.digest, "size": config.data.len() },
        "layers": [{ "mediaType": media::LAYER, "digest": layer.digest, "size": layer.data.len() }],
    });
    let manifest = Blob::of(serde_json::to_vec(&manifest).expect("static JSON"));
    Ok(Image {
        layer,
        config,
        manifest,
    })
}

/// Writes the image as an OCI image layout directory (`oci-layout`, `index.json`, `blobs/`),
/// which `skopeo`, `crane` and containerd import.
pub fn write_layout(image: &Image, dir: &Path, tag: &str) -> Result<(), ImageError> {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(io(&blobs))?;
    for b in [&image.layer, &image.config, &image.manifest] {
        let path = blobs.join(b.digest.trim_start_matches("sha256:"));
        std::fs::write(&path, &b.data).map_err(io(&path))?;
    }
    let layout = dir.join("oci-layout");
    std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io(&layout))?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media::MANIFEST,
            "digest": image.manifest.digest,
            "size": image.manifest.data.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    let path = dir.join("index.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&index).expect("static JSON"),
    )
    .map_err(io(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_holds_the_binary_and_its_libraries_and_is_reproducible() {
        let exe = std::env::current_exe().unwrap();
        let a = build(&exe).unwrap();
        let b = build(&exe).unwrap();
        assert_eq!(
            a.manifest.digest, b.manifest.digest,
            "same input, same digest"
        );
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&a.layer.data[..]));
        let names: Vec<String> = tar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(names.contains(&BINARY_PATH.to_string()), "{names:?}");
        assert!(names.iter().any(|n| n.contains("libc.so")), "{names:?}");
        let manifest: serde_json::Value = serde_json::from_slice(&a.manifest.data).unwrap();
        assert_eq!(manifest["layers"][0]["digest"], a.layer.digest);
        assert_eq!(manifest["config"]["digest"], a.config.digest);
        let config: serde_json::Value = serde_json::from_slice(&a.config.data).unwrap();
        let diff_id = {
            let mut raw = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(&a.layer.data[..]),
                &mut raw,
            )
            .unwrap();
            digest(&raw)
        };
        assert_eq!(config["rootfs"]["diff_ids"][0], diff_id);
        assert_eq!(
            config["config"]["Entrypoint"][0],
            "/usr/local/bin/hollow-node"
        );
    }
}
