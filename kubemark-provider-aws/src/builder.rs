//! Building an [`AwsProvider`].

use kubemark_core::provider::{Error, ErrorKind, Result};

use crate::{AwsConfig, AwsProvider, PROVIDER_NAME};

/// Builds an [`AwsProvider`] from the environment, explicit settings, or both.
#[derive(Debug, Clone, Default)]
pub struct AwsProviderBuilder {
    config: AwsConfig,
    credentials: Option<aws_sdk_ec2::config::Credentials>,
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

impl AwsProviderBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `AWS_REGION` / `AWS_DEFAULT_REGION`, `KUBEMARK_MASTER_SIZE`, `KUBEMARK_AWS_AMI`
    /// (or `KUBEMARK_AWS_AMI_OWNER` + `KUBEMARK_AWS_AMI_NAME` for a lookup), `KUBEMARK_AWS_ZONE`,
    /// `KUBEMARK_SSH_CIDR`, `KUBEMARK_SSH_USER`, `KUBEMARK_AWS_VPC`, `KUBEMARK_AWS_SUBNET`,
    /// `KUBEMARK_AWS_REGISTRY_HOST` and
    /// `AWS_ENDPOINT_URL`.
    pub fn from_env() -> Self {
        Self {
            config: AwsConfig {
                region: env(&["AWS_REGION", "AWS_DEFAULT_REGION"]),
                instance_type: env(&["KUBEMARK_MASTER_SIZE"]),
                ami: env(&["KUBEMARK_AWS_AMI"]),
                ami_owner: env(&["KUBEMARK_AWS_AMI_OWNER"]),
                ami_name: env(&["KUBEMARK_AWS_AMI_NAME"]),
                registry_host: env(&["KUBEMARK_AWS_REGISTRY_HOST"]),
                vpc: env(&["KUBEMARK_AWS_VPC"]),
                subnet: env(&["KUBEMARK_AWS_SUBNET"]),
                ssh_cidr: env(&["KUBEMARK_SSH_CIDR"]),
                endpoint: env(&["AWS_ENDPOINT_URL"]),
                availability_zone: env(&["KUBEMARK_AWS_ZONE"]),
                ssh_user: env(&["KUBEMARK_SSH_USER"]),
            },
            credentials: None,
        }
    }

    /// Replaces the whole configuration.
    pub fn with_config(mut self, config: AwsConfig) -> Self {
        self.config = config;
        self
    }

    /// Talks to `endpoint` instead of the real EC2 API (moto, tests).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.config.endpoint = Some(endpoint.into());
        self
    }

    /// Uses fixed credentials instead of the standard chain (for emulators such as moto, whose
    /// tests must not read or write the process environment).
    pub fn with_static_credentials(mut self, access_key: &str, secret_key: &str) -> Self {
        self.credentials = Some(aws_sdk_ec2::config::Credentials::new(
            access_key,
            secret_key,
            None,
            None,
            "kubemark-static",
        ));
        self
    }

    /// Sets the region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.config.region = Some(region.into());
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<AwsProvider> {
        if let Some(cidr) = &self.config.ssh_cidr {
            let valid = cidr.split_once('/').is_some_and(|(ip, len)| {
                ip.parse::<std::net::IpAddr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= 128)
            });
            if !valid {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    PROVIDER_NAME,
                    "build",
                    "ssh CIDR must look like 203.0.113.4/32",
                )
                .with_context("ssh_cidr", cidr.clone()));
            }
        }
        Ok(AwsProvider {
            config: self.config,
            credentials: self.credentials,
            sdk: Default::default(),
            client: Default::default(),
            ecr: Default::default(),
            zone: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ssh_cidr_is_rejected_with_the_value() {
        let config = AwsConfig {
            ssh_cidr: Some("everyone".into()),
            ..AwsConfig::default()
        };
        let err = AwsProviderBuilder::new()
            .with_config(config)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("ssh_cidr=everyone"), "{err}");
        assert!(
            AwsProviderBuilder::new()
                .with_region("us-east-1")
                .build()
                .is_ok()
        );
    }
}
