//! `--master-arg COMPONENT=--flag[=value]` of `start` and `bench`.

use kubemark_core::registry::ComponentArgs;

/// `--master-arg COMPONENT=--flag[=value]` values, by component, checked.
#[derive(Debug, Default)]
pub struct MasterArgs(ComponentArgs);

impl MasterArgs {
    /// Parses and checks `COMPONENT=--flag[=value]` values.
    pub fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut parsed = ComponentArgs::default();
        for arg in args {
            let (component, flag) = arg.split_once('=').unwrap_or((arg, ""));
            let flags = match component {
                "kube-apiserver" => &mut parsed.apiserver,
                "kube-controller-manager" => &mut parsed.controller_manager,
                "kube-scheduler" => &mut parsed.scheduler,
                other => anyhow::bail!(
                    "--master-arg {arg}: unknown component {other:?} (kube-apiserver, kube-controller-manager or kube-scheduler)"
                ),
            };
            anyhow::ensure!(
                flag.starts_with("--") && flag.len() > 2,
                "--master-arg {arg}: expected COMPONENT=--flag[=value]"
            );
            flags.push(flag.to_string());
        }
        Ok(Self(parsed))
    }

    /// Adds the flags to a local control plane's.
    pub fn apply(&self, options: &mut kubemark_core::master::LocalOptions) {
        self.0.apply(options);
    }

    /// The flags, by component.
    pub fn components(&self) -> &ComponentArgs {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_args_go_to_their_component_and_bad_ones_are_named() {
        let none = std::path::PathBuf::from("/none");
        let binaries = kubemark_core::binaries::BinarySet {
            etcd: none.clone(),
            kube_apiserver: none.clone(),
            kube_controller_manager: none.clone(),
            kube_scheduler: none,
        };
        let mut options = kubemark_core::master::LocalOptions::new(binaries);
        MasterArgs::parse(&[
            "kube-controller-manager=--kube-api-qps=500".into(),
            "kube-apiserver=--max-requests-inflight=800".into(),
            "kube-scheduler=--v=2".into(),
        ])
        .unwrap()
        .apply(&mut options);
        assert_eq!(options.controller_manager_args, ["--kube-api-qps=500"]);
        assert_eq!(options.apiserver_args, ["--max-requests-inflight=800"]);
        assert_eq!(options.scheduler_args, ["--v=2"]);
        for (bad, says) in [
            ("etcd=--quota-backend-bytes=1", "unknown component \"etcd\""),
            ("kube-apiserver", "expected COMPONENT=--flag"),
            ("kube-apiserver=v=2", "expected COMPONENT=--flag"),
        ] {
            let err = MasterArgs::parse(&[bad.into()]).unwrap_err().to_string();
            assert!(err.contains(says) && err.contains(bad), "{err}");
        }
    }
}
