//! SSH to a master host: run commands, upload files, through the system `ssh` (the `openssh`
//! crate drives one multiplexed master connection per session).
//!
//! Host keys are always checked: against the user's known_hosts (or a file named in
//! [`SshTarget::known_hosts_file`]), strictly by default; [`HostKeyCheck::AcceptNew`] trusts a
//! host on first use and never a changed key. There is no "accept anything" mode.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::Digest;
use tokio::io::AsyncWriteExt;

/// Errors of an SSH session. Every message fits on one line and names the host.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The connection or the login failed.
    #[error("ssh {target}: {reason}")]
    Connect {
        /// `user@host:port`.
        target: String,
        /// What ssh said, on one line.
        reason: String,
    },
    /// A remote command failed.
    #[error("ssh {target}: `{what}` failed ({status}): {stderr}")]
    Command {
        /// `user@host:port`.
        target: String,
        /// What the command was for.
        what: String,
        /// Exit status.
        status: String,
        /// The end of its stderr, on one line.
        stderr: String,
    },
    /// A local file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The target or a path is unusable.
    #[error("{0}")]
    Invalid(String),
}

/// How the master's host key is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyCheck {
    /// The key must already be in known_hosts.
    #[default]
    Strict,
    /// Unknown hosts are added on first use; a changed key is still refused.
    AcceptNew,
}

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SshTarget {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Private key.
    pub key: PathBuf,
    /// Host key policy.
    pub host_key_check: HostKeyCheck,
    /// known_hosts file instead of the user's.
    pub known_hosts_file: Option<PathBuf>,
    /// ssh_config file instead of the user's (`/dev/null` ignores every config).
    pub config_file: Option<PathBuf>,
    /// Connect timeout.
    #[serde(skip, default = "default_connect_timeout")]
    pub connect_timeout: Duration,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

impl SshTarget {
    /// `user@host` on port 22 with `key`, strict host key checking, 10 s connect timeout.
    pub fn new(host: impl Into<String>, user: impl Into<String>, key: impl Into<PathBuf>) -> Self {
        Self {
            host: host.into(),
            port: 22,
            user: user.into(),
            key: key.into(),
            host_key_check: HostKeyCheck::Strict,
            known_hosts_file: None,
            config_file: None,
            connect_timeout: default_connect_timeout(),
        }
    }

    /// `user@host:port`, for messages.
    pub fn display(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

/// Quotes `s` for a POSIX shell.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Whether a remote path can go into command lines and env files unquoted: absolute, and only
/// characters that no shell or systemd treats specially.
pub fn plain_path(path: &Path) -> Result<String, BootstrapError> {
    let s = path.to_str().unwrap_or_default();
    let ok = s.starts_with('/')
        && s.len() > 1
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
        && !s.split('/').any(|part| part == "..");
    if ok {
        Ok(s.to_string())
    } else {
        Err(BootstrapError::Invalid(format!(
            "remote path {path:?} must be absolute and use only letters, digits, '/', '-', '_' and '.'"
        )))
    }
}

fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    if tail.is_empty() {
        "no output".into()
    } else {
        tail
    }
}

/// An open SSH connection to a host. Commands run as root: directly when the login user is
/// root, else through `sudo -n` (passwordless sudo is required).
pub struct SshSession {
    session: openssh::Session,
    target: String,
    sudo: bool,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("target", &self.target)
            .field("sudo", &self.sudo)
            .finish()
    }
}

/// `ssh` reads a host or user that starts with `-` as an option (`-oProxyCommand=...`), and a
/// space or control character splits or ends its arguments: refused before ssh runs.
fn check_target(t: &SshTarget) -> Result<(), BootstrapError> {
    for (what, value) in [("host", &t.host), ("user", &t.user)] {
        if value.is_empty()
            || value.starts_with('-')
            || value.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(BootstrapError::Invalid(format!(
                "ssh {what} {value:?} is not a valid {what} (empty, starts with '-', or has spaces)"
            )));
        }
    }
    Ok(())
}

impl SshSession {
    /// Connects and logs in.
    pub async fn connect(t: &SshTarget) -> Result<Self, BootstrapError> {
        check_target(t)?;
        let target = t.display();
        let meta = std::fs::metadata(&t.key).map_err(|e| BootstrapError::Connect {
            target: target.clone(),
            reason: format!("private key {}: {e}", t.key.display()),
        })?;
        if !meta.is_file() {
            return Err(BootstrapError::Connect {
                target,
                reason: format!("private key {} is not a file", t.key.display()),
            });
        }
        let mut b = openssh::SessionBuilder::default();
        b.user(t.user.clone())
            .port(t.port)
            .keyfile(&t.key)
            .connect_timeout(t.connect_timeout)
            .server_alive_interval(Duration::from_secs(15))
            .known_hosts_check(match t.host_key_check {
                HostKeyCheck::Strict => openssh::KnownHosts::Strict,
                HostKeyCheck::AcceptNew => openssh::KnownHosts::Add,
            });
        if let Some(f) = &t.known_hosts_file {
            b.user_known_hosts_file(f);
        }
        if let Some(f) = &t.config_file {
            b.config_file(f);
        }
        let session = b
            .connect(&t.host)
            .await
            .map_err(|e| BootstrapError::Connect {
                target: target.clone(),
                reason: one_line(&error_chain(&e)),
            })?;
        let mut s = Self {
            session,
            target,
            sudo: false,
        };
        let uid = s.run_as_user("id -u", "read the user id").await?;
        if uid.trim() != "0" {
            s.sudo = true;
            s.run(
                "true",
                "run sudo -n (passwordless sudo is required for a non-root user)",
            )
            .await?;
        }
        Ok(s)
    }

    /// `user@host:port`.
    pub fn target(&self) -> &str {
        &self.target
    }

    async fn run_as_user(&self, script: &str, what: &str) -> Result<String, BootstrapError> {
        let out = self
            .session
            .command("sh")
            .arg("-c")
            .arg(script)
            .stdin(openssh::Stdio::null())
            .output()
            .await
            .map_err(|e| self.connect_error(e))?;
        self.check(out, what)
    }

    fn connect_error(&self, e: openssh::Error) -> BootstrapError {
        BootstrapError::Connect {
            target: self.target.clone(),
            reason: one_line(&error_chain(&e)),
        }
    }

    fn check(&self, out: std::process::Output, what: &str) -> Result<String, BootstrapError> {
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        Err(BootstrapError::Command {
            target: self.target.clone(),
            what: what.to_string(),
            status: out
                .status
                .code()
                .map_or("killed".into(), |c| format!("exit {c}")),
            stderr: one_line(&String::from_utf8_lossy(&out.stderr)),
        })
    }

    fn shell(&self, script: &str) -> openssh::OwningCommand<&openssh::Session> {
        let mut cmd = if self.sudo {
            let mut c = self.session.command("sudo");
            c.args(["-n", "sh", "-c"]);
            c
        } else {
            let mut c = self.session.command("sh");
            c.arg("-c");
            c
        };
        cmd.arg(script);
        cmd
    }

    /// Runs `script` with `sh -c` as root; returns its stdout. `what` names it in errors.
    pub async fn run(&self, script: &str, what: &str) -> Result<String, BootstrapError> {
        tracing::debug!(target = %self.target, what, "ssh run");
        let out = self
            .shell(script)
            .stdin(openssh::Stdio::null())
            .output()
            .await
            .map_err(|e| self.connect_error(e))?;
        self.check(out, what)
    }

    /// Writes `data` to `remote` with `mode`, atomically (temp file + rename), creating the
    /// parent directory (0700) if needed. The contents never appear in a command line or a log.
    pub async fn upload(
        &self,
        data: &[u8],
        remote: &Path,
        mode: u32,
    ) -> Result<(), BootstrapError> {
        self.upload_from(&mut &data[..], remote, mode).await
    }

    /// Uploads a local file unless the remote already has the same bytes (sha256).
    pub async fn upload_file(
        &self,
        local: &Path,
        remote: &Path,
        mode: u32,
    ) -> Result<(), BootstrapError> {
        let io = |source| BootstrapError::Io {
            path: local.to_path_buf(),
            source,
        };
        let digest = {
            let local = local.to_path_buf();
            tokio::task::spawn_blocking(move || -> std::io::Result<String> {
                let mut f = std::fs::File::open(&local)?;
                let mut h = sha2::Sha256::new();
                std::io::copy(&mut f, &mut h)?;
                Ok(hex::encode(h.finalize()))
            })
            .await
            .map_err(|e| BootstrapError::Invalid(e.to_string()))?
            .map_err(io)?
        };
        let path = plain_path(remote)?;
        let have = self
            .run(
                &format!("if [ -f {path} ]; then sha256sum {path}; fi"),
                "hash a file",
            )
            .await?;
        if have.split_whitespace().next() == Some(digest.as_str()) {
            self.run(&format!("chmod {mode:o} {path}"), "set a file's mode")
                .await?;
            tracing::debug!(remote = %path, "unchanged, not uploaded");
            return Ok(());
        }
        let mut file = tokio::fs::File::open(local).await.map_err(io)?;
        self.upload_from(&mut file, remote, mode).await
    }

    async fn upload_from<R: tokio::io::AsyncRead + Unpin>(
        &self,
        reader: &mut R,
        remote: &Path,
        mode: u32,
    ) -> Result<(), BootstrapError> {
        let path = plain_path(remote)?;
        let dir = plain_path(remote.parent().unwrap_or(Path::new("/")))?;
        let tmp = format!("{path}.kubemark-upload");
        let script = format!(
            "umask 077 && mkdir -p {dir} && cat > {tmp} && chmod {mode:o} {tmp} && mv -f {tmp} {path}"
        );
        let mut child = self
            .shell(&script)
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::null())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await
            .map_err(|e| self.connect_error(e))?;
        let mut stdin = child
            .stdin()
            .take()
            .ok_or_else(|| BootstrapError::Invalid("ssh gave no stdin".into()))?;
        let copied = tokio::io::copy(reader, &mut stdin).await;
        let _ = stdin.shutdown().await;
        drop(stdin);
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| self.connect_error(e))?;
        let what = format!("upload {path}");
        self.check(out, &what)?;
        copied.map_err(|e| BootstrapError::Command {
            target: self.target.clone(),
            what,
            status: "interrupted".into(),
            stderr: e.to_string(),
        })?;
        Ok(())
    }

    /// Closes the connection.
    pub async fn close(self) -> Result<(), BootstrapError> {
        let target = self.target.clone();
        self.session
            .close()
            .await
            .map_err(|e| BootstrapError::Connect {
                target,
                reason: one_line(&error_chain(&e)),
            })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_host_or_user_that_ssh_would_read_as_an_option_is_refused() {
        let key = tempfile::NamedTempFile::new().unwrap();
        for (host, user) in [
            ("-oProxyCommand=touch /tmp/x", "root"),
            ("10.0.0.1", "-oProxyCommand=x"),
            ("10.0.0.1 -p 1", "root"),
            ("", "root"),
        ] {
            let t = super::SshTarget::new(host, user, key.path());
            let e = super::SshSession::connect(&t)
                .await
                .err()
                .map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains("is not a valid")),
                "{host:?} {user:?}: {e:?}"
            );
        }
    }

    use super::*;

    #[test]
    fn quoting_and_plain_paths() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert!(plain_path(Path::new("/etc/srv/kubernetes")).is_ok());
        for bad in ["relative", "/a b", "/a;rm", "/a/../b", "/$HOME", "/"] {
            assert!(plain_path(Path::new(bad)).is_err(), "{bad}");
        }
        assert_eq!(one_line("a\n\n b \nc\nd\n"), "b | c | d");
        assert_eq!(one_line(""), "no output");
    }
}
