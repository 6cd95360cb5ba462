//! Finding the control-plane binaries: `--bin-dir` / `KUBEMARK_BIN_DIR`, then `PATH`, then the
//! versioned cache that `scripts/build-control-plane.sh` and [`Downloader`] fill.

mod download;

use std::path::{Path, PathBuf};

pub use download::Downloader;

/// The Kubernetes version kubemark is built and tested against.
pub const KUBERNETES_VERSION: &str = "v1.36.3";
/// The etcd version that Kubernetes version requires (from its go.mod).
pub const ETCD_VERSION: &str = "v3.6.8";

/// Environment variable naming a directory with the binaries.
pub const BIN_DIR_ENV: &str = "KUBEMARK_BIN_DIR";
/// Environment variable overriding the cache root (default `~/.cache/kubemark`).
pub const CACHE_DIR_ENV: &str = "KUBEMARK_CACHE_DIR";

/// A control-plane program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// etcd.
    Etcd,
    /// kube-apiserver.
    KubeApiserver,
    /// kube-controller-manager.
    KubeControllerManager,
    /// kube-scheduler.
    KubeScheduler,
}

impl Component {
    /// Every component, in start order.
    pub const ALL: [Component; 4] = [
        Component::Etcd,
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
    ];

    /// The executable's file name.
    pub fn file_name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
        }
    }
}

/// Errors of finding or downloading binaries.
#[derive(Debug, thiserror::Error)]
pub enum BinariesError {
    /// A binary is nowhere to be found.
    #[error(
        "{name} not found (looked in: {looked}); run scripts/build-control-plane.sh, pass --bin-dir, or use --download"
    )]
    NotFound {
        /// The binary.
        name: &'static str,
        /// Where we looked, comma-separated.
        looked: String,
    },
    /// The download failed.
    #[error("downloading {url}: {message}")]
    Download {
        /// What was fetched.
        url: String,
        /// Why it failed.
        message: String,
    },
    /// The downloaded bytes do not match the published checksum.
    #[error(
        "checksum mismatch for {url}: expected sha256 {expected}, got {actual}; nothing was installed"
    )]
    ChecksumMismatch {
        /// What was fetched.
        url: String,
        /// The published sha256.
        expected: String,
        /// The sha256 of what arrived.
        actual: String,
    },
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Where each control-plane binary is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinarySet {
    /// etcd.
    pub etcd: PathBuf,
    /// kube-apiserver.
    pub kube_apiserver: PathBuf,
    /// kube-controller-manager.
    pub kube_controller_manager: PathBuf,
    /// kube-scheduler.
    pub kube_scheduler: PathBuf,
}

impl BinarySet {
    /// The path of `component`.
    pub fn path(&self, component: Component) -> &Path {
        match component {
            Component::Etcd => &self.etcd,
            Component::KubeApiserver => &self.kube_apiserver,
            Component::KubeControllerManager => &self.kube_controller_manager,
            Component::KubeScheduler => &self.kube_scheduler,
        }
    }
}

/// Looks up binaries in the documented order.
#[derive(Debug, Clone)]
pub struct BinaryLocator {
    bin_dir: Option<PathBuf>,
    search_path: Option<std::ffi::OsString>,
    cache_root: PathBuf,
    version: String,
}

/// The default cache root: `$KUBEMARK_CACHE_DIR`, else `$XDG_CACHE_HOME/kubemark`, else
/// `~/.cache/kubemark`.
pub fn default_cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("kubemark");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("kubemark")
}

impl BinaryLocator {
    /// A locator that reads `KUBEMARK_BIN_DIR`, `PATH` and the default cache.
    pub fn from_env() -> Self {
        Self {
            bin_dir: std::env::var_os(BIN_DIR_ENV).map(PathBuf::from),
            search_path: std::env::var_os("PATH"),
            cache_root: default_cache_root(),
            version: KUBERNETES_VERSION.to_string(),
        }
    }

    /// Looks in `dir` first (the `--bin-dir` flag, which wins over the environment).
    pub fn with_bin_dir(mut self, dir: Option<PathBuf>) -> Self {
        if dir.is_some() {
            self.bin_dir = dir;
        }
        self
    }

    /// Uses `root` as the cache root.
    pub fn with_cache_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.cache_root = root.into();
        self
    }

    /// Replaces `PATH` (`None` skips the PATH step).
    pub fn with_search_path(mut self, path: Option<std::ffi::OsString>) -> Self {
        self.search_path = path;
        self
    }

    /// The cache directory for this version: `<cache root>/bin/<version>`.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_root.join("bin").join(&self.version)
    }

    fn candidates(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        dirs.extend(self.bin_dir.clone());
        if let Some(path) = &self.search_path {
            dirs.extend(std::env::split_paths(path));
        }
        dirs.push(self.cache_dir());
        dirs
    }

    /// Finds one binary.
    pub fn find(&self, component: Component) -> Result<PathBuf, BinariesError> {
        let dirs = self.candidates();
        for dir in &dirs {
            let candidate = dir.join(component.file_name());
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
        let looked = [
            self.bin_dir
                .as_ref()
                .map(|d| format!("--bin-dir/{BIN_DIR_ENV} {}", d.display())),
            self.search_path.as_ref().map(|_| "PATH".to_string()),
            Some(self.cache_dir().display().to_string()),
        ];
        Err(BinariesError::NotFound {
            name: component.file_name(),
            looked: looked.into_iter().flatten().collect::<Vec<_>>().join(", "),
        })
    }

    /// Finds every binary.
    pub fn locate(&self) -> Result<BinarySet, BinariesError> {
        Ok(BinarySet {
            etcd: self.find(Component::Etcd)?,
            kube_apiserver: self.find(Component::KubeApiserver)?,
            kube_controller_manager: self.find(Component::KubeControllerManager)?,
            kube_scheduler: self.find(Component::KubeScheduler)?,
        })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fake_bin(dir: &Path, name: &str) {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn build_script_pins_the_version_the_code_expects() {
        let script = include_str!("../../../scripts/build-control-plane.sh");
        let pin = format!("KUBEMARK_K8S_VERSION:-{KUBERNETES_VERSION}}}");
        assert!(
            script.contains(&pin),
            "scripts/build-control-plane.sh must default to {KUBERNETES_VERSION}"
        );
    }

    #[test]
    fn lookup_order_is_bin_dir_then_path_then_cache() {
        let root = tempfile::tempdir().unwrap();
        let (flag, on_path, cache) = (
            root.path().join("flag"),
            root.path().join("path"),
            root.path().join("cache"),
        );
        let locator = BinaryLocator::from_env()
            .with_bin_dir(Some(flag.clone()))
            .with_search_path(Some(on_path.clone().into_os_string()))
            .with_cache_root(&cache);
        fake_bin(&locator.cache_dir(), "etcd");
        assert_eq!(
            locator.find(Component::Etcd).unwrap(),
            locator.cache_dir().join("etcd")
        );
        fake_bin(&on_path, "etcd");
        assert_eq!(locator.find(Component::Etcd).unwrap(), on_path.join("etcd"));
        fake_bin(&flag, "etcd");
        assert_eq!(locator.find(Component::Etcd).unwrap(), flag.join("etcd"));
    }

    #[test]
    fn missing_binary_error_says_where_it_looked_and_what_to_do() {
        let root = tempfile::tempdir().unwrap();
        let locator = BinaryLocator::from_env()
            .with_search_path(None)
            .with_cache_root(root.path());
        let err = locator
            .find(Component::KubeScheduler)
            .unwrap_err()
            .to_string();
        assert!(err.contains("kube-scheduler not found"), "{err}");
        assert!(err.contains(&root.path().display().to_string()), "{err}");
        assert!(err.contains("build-control-plane.sh"), "{err}");
        // A file that is not executable does not count.
        std::fs::create_dir_all(locator.cache_dir()).unwrap();
        std::fs::write(locator.cache_dir().join("kube-scheduler"), "x").unwrap();
        assert!(locator.find(Component::KubeScheduler).is_err());
    }
}
