//! A real OCI registry (Debian's `docker-registry`, the CNCF distribution registry) on a loopback
//! port, with TLS from a test CA and htpasswd (bcrypt) basic auth.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubemark_core::pki::{CertSpec, CertificateAuthority};

/// A running registry; killed on drop.
pub struct Registry {
    /// `127.0.0.1:<port>`.
    pub host: String,
    /// The CA that signed its serving certificate (PEM file).
    pub ca_file: PathBuf,
    /// The user allowed to push.
    pub user: String,
    /// Its password.
    pub password: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    /// Starts the registry and waits until it answers. Panics with the fix when the package is
    /// missing: tests never skip silently.
    pub fn start() -> Self {
        Self::start_with("pusher", &format!("pw-{:x}", rand::random::<u64>()))
    }

    /// Like [`start`](Self::start), with the one user allowed to push (a cloud registry's token
    /// user, say).
    pub fn start_with(user: &str, password: &str) -> Self {
        let bin = Path::new("/usr/bin/docker-registry");
        assert!(
            bin.exists(),
            "/usr/bin/docker-registry is missing: install Debian's docker-registry (scripts/install-test-deps.sh does; scripts/test.sh runs it)"
        );
        let dir = tempfile::Builder::new()
            .prefix("kubemark-registry-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let ca =
            CertificateAuthority::generate("kubemark-test-registry-ca", time::Duration::days(1))
                .unwrap();
        let serving = ca
            .issue(&CertSpec::server(
                "registry",
                vec!["localhost".into()],
                vec![std::net::IpAddr::from([127, 0, 0, 1])],
            ))
            .unwrap();
        std::fs::write(d.join("ca.crt"), ca.cert_pem()).unwrap();
        std::fs::write(d.join("registry.crt"), &serving.cert_pem).unwrap();
        std::fs::write(d.join("registry.key"), &serving.key_pem).unwrap();
        let (user, password) = (user.to_string(), password.to_string());
        let hash = bcrypt::hash_with_result(&password, 4)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoA);
        std::fs::write(d.join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {d}/registry.crt\n    key: {d}/registry.key\n\
             auth:\n  htpasswd:\n    realm: kubemark-test\n    path: {d}/htpasswd\n",
            d = d.display()
        );
        std::fs::write(d.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(d.join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "docker-registry did not listen: {}",
                std::fs::read_to_string(d.join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            host: format!("127.0.0.1:{port}"),
            ca_file: d.join("ca.crt"),
            user,
            password,
            dir,
            child,
        }
    }

    /// A directory that lives as long as the registry.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
