//! Helpers shared by the CLI's integration tests (each test file is its own crate, so each uses
//! what it needs).
#![allow(dead_code)]

use std::path::Path;

use kubemark_tests::sshd::Sshd;

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `master:` section of a config file that puts the master on the test `sshd`, with its
/// directories under `root`, free ports, and `extra` settings (one `key: value` per item).
pub fn master_on_sshd(sshd: &Sshd, root: &Path, extra: &[String]) -> String {
    let mut yaml = format!(
        "master:
  sshUser: {user}
  sshKey: {key}
  knownHostsFile: {known}
  sshConfig: {cfg}
  configDir: {root}/etc-srv-kubernetes
  dataDir: {root}/var-lib-kubemark
  logDir: {root}/var-log-kubemark
  ports: {{ apiserver: {a}, etcdClient: {b}, etcdPeer: {c}, controllerManager: {d}, scheduler: {e} }}
",
        user = sshd.user,
        key = sshd.key.display(),
        known = sshd.known_hosts.display(),
        cfg = sshd.ssh_config.display(),
        root = root.display(),
        a = free_port(),
        b = free_port(),
        c = free_port(),
        d = free_port(),
        e = free_port(),
    );
    for e in extra {
        yaml.push_str("  ");
        yaml.push_str(e);
        yaml.push('\n');
    }
    yaml
}
