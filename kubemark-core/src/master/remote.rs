//! A master on another host, bootstrapped over SSH: certificates, keys and tokens (0600),
//! kubeconfigs, the control-plane binaries and an env file are uploaded, and each component runs
//! under `kubemark-supervise`, which restarts it when it exits.
//!
//! Everything kubemark puts on the host lives in three directories (config, data, logs), each
//! claimed with a `.kubemark-cluster` marker naming the cluster: a directory that holds another
//! cluster's marker, or anything without one, is never written to or removed.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

use super::flags::{
    MasterLayout, MasterNetwork, MasterPorts, apiserver_args, controller_manager_args, etcd_args,
    scheduler_args,
};
use super::{MasterError, apiserver_ready};
use crate::binaries::BinarySet;
use crate::bootstrap::{BootstrapError, SshSession, plain_path, quote};
use crate::pki::{CertAndKey, ClusterPki, Kubeconfig, KubeconfigCredentials, PkiDir};
use crate::provider::ClusterName;

const SUPERVISOR: &str = include_str!("supervise.sh");
const MARKER: &str = ".kubemark-cluster";
/// Components in start order.
const COMPONENTS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];
const STOP_GRACE_SECONDS: u64 = 10;

/// Where and how the remote master runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteMasterSpec {
    /// The cluster; written into each directory's ownership marker.
    pub cluster: ClusterName,
    /// Certificates, keys, tokens, kubeconfigs, binaries, env file (upstream:
    /// `/etc/srv/kubernetes`).
    pub config_dir: PathBuf,
    /// etcd's data.
    pub data_dir: PathBuf,
    /// Component logs.
    pub log_dir: PathBuf,
    /// Addresses and ports. etcd, the controller-manager and the scheduler listen on the master's
    /// loopback only; the API server on `bind_address`.
    pub network: MasterNetwork,
    /// How long to wait for `/readyz` and the leader leases.
    #[serde(skip, default = "default_ready_timeout")]
    pub ready_timeout: Duration,
}

fn default_ready_timeout() -> Duration {
    Duration::from_secs(180)
}

impl RemoteMasterSpec {
    /// A master reachable at `advertise`: the API server on `0.0.0.0:6443`, etcd 2379/2380,
    /// controller-manager 10257, scheduler 10259; config in `/etc/srv/kubernetes`, data in
    /// `/var/lib/kubemark`, logs in `/var/log/kubemark`.
    pub fn new(cluster: ClusterName, advertise: IpAddr) -> Self {
        let mut network = MasterNetwork::loopback(MasterPorts {
            etcd_client: 2379,
            etcd_peer: 2380,
            apiserver: 6443,
            controller_manager: 10257,
            scheduler: 10259,
        });
        network.bind_address = IpAddr::from([0, 0, 0, 0]);
        network.advertise_address = advertise;
        Self {
            cluster,
            config_dir: "/etc/srv/kubernetes".into(),
            data_dir: "/var/lib/kubemark".into(),
            log_dir: "/var/log/kubemark".into(),
            network,
            ready_timeout: default_ready_timeout(),
        }
    }

    /// `https://<advertise>:<port>`: how clients reach the API server.
    pub fn server_url(&self) -> String {
        format!(
            "https://{}:{}",
            self.network.advertise_address, self.network.ports.apiserver
        )
    }

    /// The file layout on the master.
    pub fn layout(&self) -> MasterLayout {
        MasterLayout {
            pki_dir: self.config_dir.join("pki"),
            etcd_data_dir: self.data_dir.join("etcd"),
            kubeconfig_dir: self.config_dir.join("kubeconfigs"),
            run_dir: self.config_dir.join("run"),
            log_dir: self.log_dir.clone(),
        }
    }
}

/// What one component is doing on the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentStatus {
    /// `etcd`, `kube-apiserver`, ...
    pub name: String,
    /// PID of its supervisor, when that runs.
    pub supervisor_pid: Option<u32>,
    /// PID of the component, when it runs.
    pub pid: Option<u32>,
    /// How often the supervisor restarted it.
    pub restarts: u32,
}

/// A master on a host reached by [`SshSession`].
#[derive(Debug)]
pub struct RemoteMaster<'a> {
    ssh: &'a SshSession,
    spec: RemoteMasterSpec,
    layout: MasterLayout,
    dirs: [String; 3],
}

fn ssh_err(e: BootstrapError) -> MasterError {
    MasterError::Ssh(e)
}

impl<'a> RemoteMaster<'a> {
    /// Checks the spec's paths (absolute, no blanks or shell characters).
    pub fn new(ssh: &'a SshSession, spec: RemoteMasterSpec) -> Result<Self, MasterError> {
        let dirs = [
            plain_path(&spec.config_dir).map_err(ssh_err)?,
            plain_path(&spec.data_dir).map_err(ssh_err)?,
            plain_path(&spec.log_dir).map_err(ssh_err)?,
        ];
        let layout = spec.layout();
        Ok(Self {
            ssh,
            spec,
            layout,
            dirs,
        })
    }

    /// The spec.
    pub fn spec(&self) -> &RemoteMasterSpec {
        &self.spec
    }

    fn path(&self, p: &Path) -> Result<String, MasterError> {
        plain_path(p).map_err(ssh_err)
    }

    fn bin(&self, component: &str) -> PathBuf {
        self.spec.config_dir.join("bin").join(component)
    }

    async fn run(&self, script: &str, what: &str) -> Result<String, MasterError> {
        self.ssh.run(script, what).await.map_err(ssh_err)
    }

    /// A kubeconfig for `name` that reaches the API server from outside the master.
    pub fn kubeconfig(&self, pki: &ClusterPki, name: &str, cert: CertAndKey) -> Kubeconfig {
        Kubeconfig {
            name: name.to_string(),
            server: self.spec.server_url(),
            ca_pem: pki.ca.cert_pem().to_string(),
            credentials: KubeconfigCredentials::ClientCert(cert),
        }
    }

    /// Installs and starts the master, then waits until the API server is ready and the
    /// controller-manager and scheduler hold their leader leases. Components of this cluster that
    /// already run (a re-run after a crash) are stopped first, so the master always matches
    /// `pki`. Returns an admin client.
    pub async fn bootstrap(
        &self,
        pki: &ClusterPki,
        binaries: &BinarySet,
    ) -> Result<kube::Client, MasterError> {
        self.claim().await?;
        self.stop().await?;
        self.install(pki, binaries).await?;
        let admin = self.kubeconfig(pki, "kubemark-admin", pki.admin.clone());
        let client = client_from_yaml(&admin.to_yaml()?).await?;
        for c in &COMPONENTS[..2] {
            self.start_component(c).await?;
        }
        self.wait_for("kube-apiserver /readyz", || {
            let client = client.clone();
            async move { apiserver_ready(&client).await }
        })
        .await?;
        for c in &COMPONENTS[2..] {
            self.start_component(c).await?;
        }
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
        for name in ["kube-controller-manager", "kube-scheduler"] {
            let leases = leases.clone();
            self.wait_for(&format!("{name} to hold its leader lease"), move || {
                let leases = leases.clone();
                async move {
                    let lease = leases.get_opt(name).await.ok().flatten();
                    lease
                        .and_then(|l| l.spec?.holder_identity)
                        .is_some_and(|h| !h.is_empty())
                }
            })
            .await?;
        }
        Ok(client)
    }

    async fn wait_for<F, Fut>(&self, what: &str, mut ready: F) -> Result<(), MasterError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            if ready().await {
                return Ok(());
            }
            if start.elapsed() > self.spec.ready_timeout {
                let status = self.status().await.unwrap_or_default();
                let down: Vec<String> = status
                    .iter()
                    .filter(|s| s.pid.is_none() || s.restarts > 0)
                    .map(|s| format!("{} (restarts {})", s.name, s.restarts))
                    .collect();
                return Err(MasterError::Timeout {
                    what: format!(
                        "{what} on {}{}",
                        self.ssh.target(),
                        if down.is_empty() {
                            String::new()
                        } else {
                            format!("; not running or restarting: {}", down.join(", "))
                        }
                    ),
                    seconds: self.spec.ready_timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Creates the three directories (0700) with this cluster's marker; refuses directories of
    /// another cluster and non-empty ones kubemark did not create.
    async fn claim(&self) -> Result<(), MasterError> {
        let name = quote(self.spec.cluster.as_str());
        let mut script = String::from("set -e\n");
        for d in &self.dirs {
            script.push_str(&format!(
                r#"if [ -f {d}/{MARKER} ]; then
  owner=$(cat {d}/{MARKER})
  if [ "$owner" != {name} ]; then echo "{d} belongs to kubemark cluster $owner" >&2; exit 3; fi
elif [ -e {d} ] && [ -n "$(ls -A {d} 2>/dev/null)" ]; then
  echo "{d} exists, is not empty and was not created by kubemark; choose another directory" >&2; exit 3
fi
mkdir -p {d} && chmod 0700 {d} && printf '%s\n' {name} > {d}/{MARKER}
"#
            ));
        }
        self.run(&script, "claim the master's directories").await?;
        Ok(())
    }

    async fn install(&self, pki: &ClusterPki, binaries: &BinarySet) -> Result<(), MasterError> {
        let l = &self.layout;
        let dirs = [&l.pki_dir, &l.kubeconfig_dir, &l.run_dir, &l.etcd_data_dir]
            .into_iter()
            .map(|d| self.path(d))
            .collect::<Result<Vec<_>, _>>()?
            .join(" ");
        self.run(
            &format!("umask 077 && mkdir -p {dirs} && chmod 0700 {dirs}"),
            "create the master's directories",
        )
        .await?;
        // PKI goes through a private temp dir here (removed on every exit path) so the set of
        // files is exactly what ClusterPki::write produces.
        let local = PkiDir::temporary()?;
        pki.write(local.path())?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(local.path())
            .map_err(super::io_err(local.path()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for f in files {
            let name = f.file_name().unwrap_or_default();
            let data = std::fs::read(&f).map_err(super::io_err(&f))?;
            self.ssh
                .upload(&data, &l.pki_dir.join(name), 0o600)
                .await
                .map_err(ssh_err)?;
        }
        drop(local);
        // The controllers talk to the API server over the master's loopback, or over the one
        // address it is bound to.
        let bind = self.spec.network.bind_address;
        let host = if bind.is_unspecified() {
            "127.0.0.1".to_string()
        } else if bind.is_ipv6() {
            format!("[{bind}]")
        } else {
            bind.to_string()
        };
        let internal = format!("https://{host}:{}", self.spec.network.ports.apiserver);
        for (component, cert) in [
            ("controller-manager", &pki.controller_manager),
            ("scheduler", &pki.scheduler),
        ] {
            let mut k = self.kubeconfig(pki, component, cert.clone());
            k.server = internal.clone();
            self.ssh
                .upload(k.to_yaml()?.as_bytes(), &l.kubeconfig(component), 0o600)
                .await
                .map_err(ssh_err)?;
        }
        for (component, local) in [
            ("etcd", &binaries.etcd),
            ("kube-apiserver", &binaries.kube_apiserver),
            ("kube-controller-manager", &binaries.kube_controller_manager),
            ("kube-scheduler", &binaries.kube_scheduler),
        ] {
            tracing::info!(component, target = self.ssh.target(), "uploading binary");
            self.ssh
                .upload_file(local, &self.bin(component), 0o700)
                .await
                .map_err(ssh_err)?;
        }
        self.ssh
            .upload(
                SUPERVISOR.as_bytes(),
                &self.bin("kubemark-supervise"),
                0o700,
            )
            .await
            .map_err(ssh_err)?;
        self.ssh
            .upload(
                self.env_file()?.as_bytes(),
                &self.spec.config_dir.join("master.env"),
                0o600,
            )
            .await
            .map_err(ssh_err)?;
        Ok(())
    }

    /// `master.env`: every component's binary and arguments, the one place a person on the
    /// master reads to see how a component runs.
    fn env_file(&self) -> Result<String, MasterError> {
        let (l, n) = (&self.layout, &self.spec.network);
        let mut out = format!(
            "# Written by kubemark for cluster {}; read by kubemark-supervise.\nLOG_DIR={}\nRUN_DIR={}\nSTOP_GRACE_SECONDS={STOP_GRACE_SECONDS}\n",
            self.spec.cluster,
            self.path(&l.log_dir)?,
            self.path(&l.run_dir)?
        );
        for (component, args) in [
            ("etcd", etcd_args(l, n)),
            ("kube-apiserver", apiserver_args(l, n)),
            ("kube-controller-manager", controller_manager_args(l, n)),
            ("kube-scheduler", scheduler_args(l, n)),
        ] {
            if let Some(bad) = args.iter().find(|a| {
                a.chars()
                    .any(|c| c.is_whitespace() || "'\"\\$`".contains(c))
            }) {
                return Err(MasterError::State(format!(
                    "{component} argument {bad:?} has a blank or quote; the env file cannot carry it"
                )));
            }
            let var = component.to_uppercase().replace('-', "_");
            out.push_str(&format!(
                "{var}_BIN={}\n{var}_ARGS='{}'\n",
                self.path(&self.bin(component))?,
                args.join(" ")
            ));
        }
        Ok(out)
    }

    async fn start_component(&self, component: &str) -> Result<(), MasterError> {
        let config = self.path(&self.spec.config_dir)?;
        let run = self.path(&self.layout.run_dir)?;
        let sup = self.path(&self.bin("kubemark-supervise"))?;
        let script = format!(
            r#"{ALIVE}
if [ -f {run}/{component}.supervisor.pid ] && alive "$(cat {run}/{component}.supervisor.pid)"; then exit 0; fi
cd / && setsid nohup /bin/sh {sup} {component} {config} </dev/null >/dev/null 2>&1 &
i=0; while [ ! -f {run}/{component}.pid ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
[ -f {run}/{component}.pid ] || {{ echo "kubemark-supervise did not start {component}" >&2; exit 1; }}
"#
        );
        self.run(&script, &format!("start {component}")).await?;
        Ok(())
    }

    /// Stops every component of this cluster (newest first): SIGTERM to each supervisor, which
    /// stops its component with a grace period; anything left after that is killed. Safe to
    /// repeat; does nothing when the master was never bootstrapped.
    pub async fn stop(&self) -> Result<(), MasterError> {
        let run = self.path(&self.layout.run_dir)?;
        let config = self.path(&self.spec.config_dir)?;
        let wait = STOP_GRACE_SECONDS * 10 + 50;
        let mut script = format!("{ALIVE}\n[ -d {run} ] || exit 0\n");
        for c in COMPONENTS.iter().rev() {
            script.push_str(&format!(
                r#"f={run}/{c}.supervisor.pid
if [ -f $f ]; then
  p=$(cat $f)
  if alive "$p" && grep -q kubemark-supervise /proc/$p/cmdline; then
    kill -TERM "$p"
    i=0; while alive "$p" && [ $i -lt {wait} ]; do sleep 0.1; i=$((i+1)); done
    kill -KILL -"$p" 2>/dev/null || true
  fi
  rm -f $f
fi
f={run}/{c}.pid
if [ -f $f ]; then
  p=$(cat $f)
  if alive "$p" && tr '\0' ' ' < /proc/$p/cmdline | grep -q {config}; then kill -KILL "$p"; fi
  rm -f $f
fi
"#
            ));
        }
        self.run(&script, "stop the master's components").await?;
        Ok(())
    }

    /// Stops the master and removes the three directories, each only when its marker names this
    /// cluster. Safe to repeat.
    pub async fn teardown(&self) -> Result<(), MasterError> {
        self.stop().await?;
        let name = quote(self.spec.cluster.as_str());
        let mut script = String::new();
        for d in &self.dirs {
            script.push_str(&format!(
                r#"if [ -f {d}/{MARKER} ]; then
  if [ "$(cat {d}/{MARKER})" = {name} ]; then rm -rf {d}; else echo "{d} belongs to another kubemark cluster; left alone" >&2; fi
fi
"#
            ));
        }
        self.run(&script, "remove the master's directories").await?;
        Ok(())
    }

    /// What each component is doing.
    pub async fn status(&self) -> Result<Vec<ComponentStatus>, MasterError> {
        let run = self.path(&self.layout.run_dir)?;
        let mut script = format!("{ALIVE}\n");
        for c in COMPONENTS {
            script.push_str(&format!(
                r#"s=-; p=-; r=0
[ -f {run}/{c}.supervisor.pid ] && s=$(cat {run}/{c}.supervisor.pid) && {{ alive "$s" || s=-; }}
[ -f {run}/{c}.pid ] && p=$(cat {run}/{c}.pid) && {{ alive "$p" || p=-; }}
[ -f {run}/{c}.restarts ] && r=$(cat {run}/{c}.restarts)
echo {c} $s $p $r
"#
            ));
        }
        let out = self.run(&script, "read the master's status").await?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let [name, s, p, r] = f[..] else {
                    return None;
                };
                Some(ComponentStatus {
                    name: name.to_string(),
                    supervisor_pid: s.parse().ok(),
                    pid: p.parse().ok(),
                    restarts: r.parse().unwrap_or(0),
                })
            })
            .collect())
    }

    /// CPU time and resident memory of each running component, read from `/proc` on the master.
    pub async fn usage(&self) -> Result<RemoteUsage, MasterError> {
        let run = self.path(&self.layout.run_dir)?;
        let mut script = String::from("echo clock $(getconf CLK_TCK)\npage=$(getconf PAGESIZE)\n");
        for c in COMPONENTS {
            script.push_str(&format!(
                r#"if [ -f {run}/{c}.pid ] && p=$(cat {run}/{c}.pid) && [ -r /proc/$p/stat ]; then
  echo {c} $(sed 's/.*) //' /proc/$p/stat | awk '{{print $12+$13}}') $(awk -v pg=$page '{{print $2*pg}}' /proc/$p/statm)
fi
"#
            ));
        }
        let out = self.run(&script, "read the master's /proc").await?;
        let mut usage = RemoteUsage {
            clock_ticks: 100,
            components: Vec::new(),
        };
        for l in out.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f[..] {
                ["clock", hz] => usage.clock_ticks = hz.parse().unwrap_or(100),
                [name, ticks, rss] => {
                    if let (Ok(t), Ok(r)) = (ticks.parse(), rss.parse()) {
                        usage.components.push((name.to_string(), t, r));
                    }
                }
                _ => {}
            }
        }
        Ok(usage)
    }
}

/// Resource use of a remote master's components at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUsage {
    /// The host's clock ticks per second (`CLK_TCK`).
    pub clock_ticks: u64,
    /// Component, CPU ticks used so far (user + system), resident bytes.
    pub components: Vec<(String, u64, u64)>,
}

/// Shell function: whether a PID is a live process (a zombie is not).
const ALIVE: &str = r#"alive() { [ -n "$1" ] && [ -r /proc/$1/stat ] && [ "$(sed 's/.*) //' /proc/$1/stat | cut -c1)" != Z ]; }"#;

/// A client from kubeconfig text.
pub async fn client_from_yaml(yaml: &str) -> Result<kube::Client, MasterError> {
    crate::tls::install_crypto_provider();
    let bad = |e: &dyn std::fmt::Display| MasterError::Kubeconfig(e.to_string());
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml).map_err(|e| bad(&e))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| bad(&e))?;
    Ok(kube::Client::try_from(config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supervisor_passes_arguments_as_written_never_as_globs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("matched-by-glob"), "").unwrap();
        let out = d.join("args");
        let bin = d.join("fake");
        std::fs::write(
            &bin,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\nexec sleep 30\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::write(
            d.join("master.env"),
            format!(
                "LOG_DIR={0}\nRUN_DIR={0}\nSTOP_GRACE_SECONDS=1\nFAKE_BIN={1}\nFAKE_ARGS='--a=* matched-*'\n",
                d.display(),
                bin.display()
            ),
        )
        .unwrap();
        let script = d.join("supervise.sh");
        std::fs::write(&script, SUPERVISOR).unwrap();
        let mut sup = std::process::Command::new("/bin/sh")
            .arg(&script)
            .args(["fake", &d.display().to_string()])
            .current_dir(d)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let args = loop {
            match std::fs::read_to_string(&out) {
                Ok(a) if a.ends_with('\n') => break a,
                _ if std::time::Instant::now() > deadline => panic!("the fake never ran"),
                _ => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        };
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(sup.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        sup.wait().unwrap();
        assert_eq!(args, "--a=*\nmatched-*\n");
    }

    #[test]
    fn the_default_spec_is_upstreams_layout_with_a_public_api_server_only() {
        let spec =
            RemoteMasterSpec::new(ClusterName::new("c1").unwrap(), IpAddr::from([10, 0, 0, 5]));
        assert_eq!(spec.server_url(), "https://10.0.0.5:6443");
        let l = spec.layout();
        assert_eq!(l.pki_dir, Path::new("/etc/srv/kubernetes/pki"));
        assert_eq!(l.etcd_data_dir, Path::new("/var/lib/kubemark/etcd"));
        let etcd = etcd_args(&l, &spec.network).join(" ");
        assert!(
            etcd.contains("--listen-client-urls=https://127.0.0.1:2379"),
            "{etcd}"
        );
        let api = apiserver_args(&l, &spec.network).join(" ");
        assert!(api.contains("--bind-address=0.0.0.0"));
        assert!(api.contains("--advertise-address=10.0.0.5"));
        let kcm = controller_manager_args(&l, &spec.network).join(" ");
        assert!(kcm.contains("--bind-address=127.0.0.1"));
    }
}
