//! Writing key material safely: keys 0600 from the moment they exist, and temporary PKI
//! directories that disappear on every exit path.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{PkiError, io_err};

fn write_mode(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    // A sibling temporary file with a random name, created exclusively (O_EXCL never follows a
    // link planted at the name) with the final mode, then renamed over the target and the
    // directory synced: the key is never readable by others, never half-written, and never
    // written anywhere but where it was asked to go.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| PkiError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        })?
        .to_string_lossy();
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&tmp)(e)),
        }
    };
    let written = (|| {
        // `mode` is filtered by the umask on creation.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path)(e));
    }
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
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
