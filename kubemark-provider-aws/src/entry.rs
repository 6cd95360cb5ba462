//! The aws provider's registry entry.

use std::sync::Arc;

use kubemark_core::provider::{DynProvider, Error};
use kubemark_core::registry::{
    Placement, PlacementError, PlacementRequest, ProviderEntry, ProviderSettings, SettingSpec,
    provisioned_vm,
};

use crate::{AwsConfig, AwsProviderBuilder, PROVIDER_NAME};

/// What the aws provider reads. Credentials come from the SDK's standard chain; the master's
/// instance type and login user are generic master settings (`--master-size`, `--ssh-user`).
const SETTINGS: &[SettingSpec] = &[
    SettingSpec::new(
        "region",
        &["AWS_REGION", "AWS_DEFAULT_REGION"],
        "the region [default: the SDK's]",
    ),
    SettingSpec::new(
        "ami",
        &["KUBEMARK_AWS_AMI"],
        "the master's AMI [default: the newest ami-name of ami-owner]",
    ),
    SettingSpec::new(
        "ami-owner",
        &["KUBEMARK_AWS_AMI_OWNER"],
        "owner of the AMI to look up [default: Debian's 136693071363]",
    ),
    SettingSpec::new(
        "ami-name",
        &["KUBEMARK_AWS_AMI_NAME"],
        "name pattern of the AMI to look up [default: debian-12-amd64-*]",
    ),
    SettingSpec::new(
        "zone",
        &["KUBEMARK_AWS_ZONE"],
        "availability zone of the master [default: the region's first]",
    ),
    SettingSpec::new(
        "vpc",
        &["KUBEMARK_AWS_VPC"],
        "default, create or a vpc-... id [default: default]",
    ),
    SettingSpec::new(
        "subnet",
        &["KUBEMARK_AWS_SUBNET"],
        "the subnet to launch into with a vpc-... id",
    ),
    SettingSpec::new(
        "ssh-cidr",
        &["KUBEMARK_SSH_CIDR"],
        "CIDR allowed to reach SSH on the master [default: none]",
    ),
    SettingSpec::new(
        "endpoint",
        &["AWS_ENDPOINT_URL"],
        "the EC2 endpoint (emulators such as moto) [default: the real API]",
    ),
    SettingSpec::new(
        "registry-host",
        &["KUBEMARK_AWS_REGISTRY_HOST"],
        "the image repository's Docker host (emulators) [default: ECR's]",
    ),
];

/// The aws provider in a [`ProviderRegistry`](kubemark_core::registry::ProviderRegistry):
/// the master on an EC2 instance bootstrapped over SSH.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsEntry;

#[async_trait::async_trait]
impl ProviderEntry for AwsEntry {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    fn description(&self) -> &'static str {
        "Amazon EC2: a master instance bootstrapped over SSH"
    }

    fn settings(&self) -> &'static [SettingSpec] {
        SETTINGS
    }

    fn build(&self, s: &ProviderSettings) -> Result<DynProvider, Error> {
        let config = AwsConfig {
            region: s.string("region"),
            ami: s.string("ami"),
            ami_owner: s.string("ami-owner"),
            ami_name: s.string("ami-name"),
            availability_zone: s.string("zone"),
            vpc: s.string("vpc"),
            subnet: s.string("subnet"),
            ssh_cidr: s.string("ssh-cidr"),
            endpoint: s.string("endpoint"),
            registry_host: s.string("registry-host"),
            ..AwsConfig::default()
        };
        Ok(Arc::new(
            AwsProviderBuilder::new().with_config(config).build()?,
        ))
    }

    async fn placement(&self, request: PlacementRequest<'_>) -> Result<Placement, PlacementError> {
        provisioned_vm(PROVIDER_NAME, &request).await
    }
}
