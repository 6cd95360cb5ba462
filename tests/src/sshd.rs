//! A real OpenSSH server (Debian's `openssh-server`) on a loopback port, with its own host key,
//! one authorized client key and a known_hosts file for it: the "master host" of SSH tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubemark_core::bootstrap::{HostKeyCheck, SshTarget};

/// A running `sshd`; killed on drop.
pub struct Sshd {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The authorized client's private key.
    pub key: PathBuf,
    /// known_hosts holding the server's host key.
    pub known_hosts: PathBuf,
    /// An empty ssh_config, so the user's config cannot change the test.
    pub ssh_config: PathBuf,
    /// The user tests log in as (the current user).
    pub user: String,
    dir: tempfile::TempDir,
    child: Child,
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "kubemark-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs (Debian's openssh-client)");
    assert!(ok.success(), "ssh-keygen failed");
}

impl Sshd {
    /// Starts sshd and waits until it accepts connections. Panics with the fix when openssh-server
    /// is missing: tests never skip silently.
    pub fn start() -> Self {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "/usr/sbin/sshd is missing: install Debian's openssh-server (scripts/install-test-deps.sh does; scripts/test.sh runs it)"
        );
        let dir = tempfile::Builder::new()
            .prefix("kubemark-sshd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {d}/sshd.pid\n\
             LogLevel ERROR\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        // Privilege separation needs this directory when sshd runs as root.
        let _ = std::fs::create_dir_all("/run/sshd");
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sshd starts");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sshd did not listen: {}",
                std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let mut parts = host_pub.split_whitespace();
        let (kind, key) = (parts.next().unwrap(), parts.next().unwrap());
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {kind} {key}\n"),
        )
        .unwrap();
        std::fs::write(d.join("ssh_config"), "").unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        Self {
            port,
            key: d.join("client_key"),
            known_hosts: d.join("known_hosts"),
            ssh_config: d.join("ssh_config"),
            user,
            dir,
            child,
        }
    }

    /// How to reach it: strict host key checking against its known_hosts, no user config.
    pub fn target(&self) -> SshTarget {
        let mut t = SshTarget::new("127.0.0.1", self.user.clone(), self.key.clone());
        t.port = self.port;
        t.host_key_check = HostKeyCheck::Strict;
        t.known_hosts_file = Some(self.known_hosts.clone());
        t.config_file = Some(self.ssh_config.clone());
        t.connect_timeout = Duration::from_secs(5);
        t
    }

    /// A directory that lives as long as the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
