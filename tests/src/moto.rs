//! `moto` (PyPI `moto[server]`), an EC2 emulator, on a loopback port: the AWS API of the aws
//! provider's tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server; killed on drop.
pub struct Moto {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    child: Child,
}

impl Moto {
    /// Starts moto and waits until it listens. Panics with the fix when it is not installed.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs: pip install 'moto[server]' (scripts/install-test-deps.sh does; scripts/test.sh runs it)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
        }
    }

    /// Environment for a `kubemark` process that should talk to this moto.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
