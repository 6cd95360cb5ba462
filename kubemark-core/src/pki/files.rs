//! Writing key material safely: keys 0600 from the moment they exist, and temporary PKI
//! directories that disappear on every exit path.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{PkiError, io_err};

fn write_mode(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    // Write to a sibling temp file created with the final mode, then rename: the key is never
    // readable by others, not even for an instant, and never half-written.
    let tmp = path.with_extension("tmp~");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    // `mode` is filtered by the umask on creation; an existing file keeps its old mode.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err(&tmp))?;
    file.write_all(contents.as_bytes()).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// Writes a private key, token or kubeconfig with credentials: mode 0600.
pub fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    write_mode(path, contents, 0o600)
}

/// Writes a certificate or public key: mode 0644.
pub fn write_public(path: &Path, contents: &str) -> Result<(), PkiError> {
    write_mode(path, contents, 0o644)
}

pub(crate) fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
}

/// A directory of PKI material that is removed when dropped, unless [`PkiDir::keep`] is called.
///
/// Drop runs on errors and panics; the CLI turns Ctrl-C into an orderly return so it runs then too.
#[derive(Debug)]
pub struct PkiDir {
    path: PathBuf,
    remove_on_drop: bool,
}

impl PkiDir {
    /// A new private (0700) temporary directory.
    pub fn temporary() -> Result<Self, PkiError> {
        let dir = tempfile::Builder::new()
            .prefix("kubemark-pki-")
            .tempdir()
            .map_err(io_err(Path::new("<tmpdir>")))?;
        let path = dir.keep();
        create_private_dir(&path)?;
        Ok(Self {
            path,
            remove_on_drop: true,
        })
    }

    /// Uses `path` (created 0700 if missing) and removes it on drop.
    pub fn at(path: impl Into<PathBuf>) -> Result<Self, PkiError> {
        let path = path.into();
        create_private_dir(&path)?;
        Ok(Self {
            path,
            remove_on_drop: true,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory after drop (for a cluster that outlives this process).
    pub fn keep(mut self) -> PathBuf {
        self.remove_on_drop = false;
        self.path.clone()
    }
}

impl Drop for PkiDir {
    fn drop(&mut self) {
        if !self.remove_on_drop {
            return;
        }
        if let Err(e) = fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove PKI directory");
        }
    }
}
