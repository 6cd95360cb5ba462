//! `kubemark image push|build`: the hollow-node image without a container daemon.

use std::io::Read;

use anyhow::{Context, bail};
use kubemark_core::image::{self, ImageReference, PushOptions};
use kubemark_core::provider::{DynProvider, RegistryCredentials};
use kubemark_core::registry::ProviderRegistry;

use crate::cli::{ImageArgs, ImageWhat};
use crate::progress::Spinner;

fn binary(given: Option<std::path::PathBuf>) -> anyhow::Result<std::path::PathBuf> {
    match given {
        Some(b) => Ok(b),
        None => crate::hollow_binary::locate(),
    }
}

fn build(binary: &std::path::Path) -> anyhow::Result<image::Image> {
    let spinner = Spinner::start(&format!("building the image around {}", binary.display()));
    match image::build(binary) {
        Ok(i) => {
            spinner.finish(&format!(
                "built image {} ({} MiB compressed)",
                i.manifest.digest,
                i.layer.data.len() / (1024 * 1024)
            ));
            Ok(i)
        }
        Err(e) => {
            spinner.abandon();
            Err(e.into())
        }
    }
}

/// The provider whose registry gets the image: the one cluster `cluster` was started with when
/// its state names `name` (with its recorded settings), else built from the environment.
fn registry_provider(
    registry: &ProviderRegistry,
    name: &str,
    cluster: &str,
    flags: &[String],
) -> anyhow::Result<DynProvider> {
    let dir = crate::state::cluster_dir(&crate::cli::ClusterArgs {
        cluster: cluster.to_string(),
        state_dir: std::env::var_os("KUBEMARK_STATE_DIR").map(Into::into),
    })?;
    if let Some(c) = kubemark_core::cluster::Cluster::load(&dir)?
        && c.state().provider == name
    {
        return crate::providers::from_state(registry, c.state(), flags);
    }
    crate::providers::build(registry, name, flags)
}

/// Runs `kubemark image ...`.
pub async fn run(args: ImageArgs, registry: &ProviderRegistry) -> anyhow::Result<()> {
    match args.what {
        ImageWhat::Build {
            layout,
            tag,
            binary: b,
        } => {
            let image = build(&binary(b)?)?;
            image::write_layout(&image, &layout, &tag)?;
            println!("{} ({})", layout.display(), image.manifest.digest);
            Ok(())
        }
        ImageWhat::Push {
            reference,
            provider,
            cluster,
            tag,
            binary: b,
            provider_settings,
            username,
            password_stdin,
            ca_file,
        } => {
            let (reference, provided) = match (reference, provider) {
                (Some(_), Some(p)) => bail!(
                    "give either an image reference or --provider {p}, not both: the provider decides where its registry is"
                ),
                (Some(r), None) => (r, None),
                (None, Some(name)) => {
                    let p = registry_provider(registry, &name, &cluster, &provider_settings)?;
                    let cluster = kubemark_core::provider::ClusterName::new(&cluster)?;
                    if !p.capabilities().registry {
                        bail!(
                            "the {} provider has no image registry; give a REFERENCE",
                            p.name()
                        );
                    }
                    let spinner = Spinner::start(&format!(
                        "ensuring the {} registry of cluster {cluster}",
                        p.name()
                    ));
                    let registry = match p.ensure_registry(&cluster).await {
                        Ok(r) => {
                            spinner.finish(&format!("registry {}", r.repository));
                            r
                        }
                        Err(e) => {
                            spinner.abandon();
                            return Err(e.into());
                        }
                    };
                    (
                        format!("{}:{tag}", registry.repository),
                        registry.credentials,
                    )
                }
                (None, None) => bail!(
                    "image push needs a REFERENCE (host[:port]/repository[:tag]) or --provider gce|aws"
                ),
            };
            let reference: ImageReference = reference.parse()?;
            let password = if password_stdin {
                let mut p = String::new();
                std::io::stdin()
                    .read_to_string(&mut p)
                    .context("reading the password from stdin")?;
                Some(p.trim_end_matches(['\n', '\r']).to_string())
            } else {
                std::env::var("KUBEMARK_REGISTRY_PASSWORD").ok()
            };
            let credentials = match (username, password) {
                (Some(username), Some(password)) => {
                    Some(RegistryCredentials { username, password })
                }
                (None, None) => provided,
                (Some(_), None) => bail!(
                    "a registry user needs a password: KUBEMARK_REGISTRY_PASSWORD or --password-stdin"
                ),
                (None, Some(_)) => bail!(
                    "a registry password needs a user: --username or KUBEMARK_REGISTRY_USERNAME"
                ),
            };
            let ca_pem = match &ca_file {
                Some(f) => {
                    Some(std::fs::read(f).with_context(|| format!("CA file {}", f.display()))?)
                }
                None => None,
            };
            let opts = PushOptions {
                credentials,
                ca_pem,
            };
            // Fail on TLS or credentials before spending time on the build.
            image::check_access(&reference, &opts).await?;
            let image = build(&binary(b)?)?;
            let spinner = Spinner::start(&format!("pushing to {reference}"));
            match image::push(&image, &reference, &opts).await {
                Ok(digest) => {
                    spinner.finish(&format!("pushed {reference}"));
                    println!("{}/{}@{digest}", reference.registry, reference.repository);
                    Ok(())
                }
                Err(e) => {
                    spinner.abandon();
                    Err(e.into())
                }
            }
        }
    }
}
