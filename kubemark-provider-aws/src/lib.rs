#![doc = include_str!("../README.md")]

mod address;
mod builder;
mod config;
mod disk;
mod entry;
mod error;
mod firewall;
mod instance;
mod network;
mod registry;
mod tags;

pub use builder::AwsProviderBuilder;
pub use config::AwsConfig;
pub use entry::AwsEntry;

use aws_sdk_ec2::Client;
use kubemark_core::provider::{
    Capabilities, ClusterName, Disk, DiskSpec, FirewallRule, FirewallSpec, MasterSpec, MasterVm,
    Provider, Registry, ResourceRef, Result, Role, StaticIp,
};
use tokio::sync::OnceCell;

/// The name the CLI knows this provider by.
pub const PROVIDER_NAME: &str = "aws";

/// The aws provider: the master on EC2 (instance, EBS volumes, Elastic IP, security group), all
/// tagged with the cluster and role, found again by those tags.
#[derive(Debug)]
pub struct AwsProvider {
    config: AwsConfig,
    credentials: Option<aws_sdk_ec2::config::Credentials>,
    sdk: OnceCell<aws_config::SdkConfig>,
    client: OnceCell<Client>,
    ecr: OnceCell<aws_sdk_ecr::Client>,
    zone: OnceCell<String>,
}

impl AwsProvider {
    /// The configuration this provider was built with.
    pub fn config(&self) -> &AwsConfig {
        &self.config
    }

    /// The standard credential chain and region resolution (or what the builder fixed), the
    /// configured endpoint, the SDK's standard retries (throttling, transient errors) with up to
    /// five attempts.
    async fn sdk(&self) -> &aws_config::SdkConfig {
        self.sdk
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(5));
                if let Some(r) = &self.config.region {
                    loader = loader.region(aws_config::Region::new(r.clone()));
                }
                if let Some(c) = &self.credentials {
                    loader = loader.credentials_provider(c.clone());
                }
                if let Some(e) = &self.config.endpoint {
                    loader = loader.endpoint_url(e);
                }
                loader.load().await
            })
            .await
    }

    /// The EC2 client.
    pub async fn client(&self) -> &Client {
        let sdk = self.sdk().await;
        self.client.get_or_init(|| async { Client::new(sdk) }).await
    }

    /// The ECR client.
    async fn ecr(&self) -> &aws_sdk_ecr::Client {
        let sdk = self.sdk().await;
        self.ecr
            .get_or_init(|| async { aws_sdk_ecr::Client::new(sdk) })
            .await
    }

    async fn zone(&self) -> Result<&str> {
        let client = self.client().await;
        self.zone
            .get_or_try_init(|| async {
                if let Some(z) = &self.config.availability_zone {
                    return Ok(z.clone());
                }
                let out = client
                    .describe_availability_zones()
                    .send()
                    .await
                    .map_err(|e| error::map("describe_availability_zones", e))?;
                let mut zones: Vec<String> = out
                    .availability_zones()
                    .iter()
                    .filter_map(|z| z.zone_name().map(String::from))
                    .collect();
                zones.sort();
                zones.into_iter().next().ok_or_else(|| {
                    error::unexpected("describe_availability_zones", "the region has no zones")
                })
            })
            .await
            .map(String::as_str)
    }

    fn ssh_ranges(&self) -> Vec<String> {
        self.config.ssh_cidr.iter().cloned().collect()
    }
}

#[async_trait::async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &str {
        PROVIDER_NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    async fn ensure_static_ip(&self, cluster: &ClusterName) -> Result<StaticIp> {
        address::ensure(self.client().await, cluster).await
    }

    async fn ensure_disk(&self, cluster: &ClusterName, spec: &DiskSpec) -> Result<Disk> {
        let zone = self.zone().await?.to_string();
        disk::ensure(self.client().await, cluster, spec, &zone).await
    }

    async fn ensure_firewall(
        &self,
        cluster: &ClusterName,
        spec: &FirewallSpec,
    ) -> Result<FirewallRule> {
        let zone = self.zone().await?.to_string();
        let c = self.client().await;
        let net = network::ensure(c, &self.config, cluster, &zone).await?;
        firewall::ensure(c, cluster, spec, &self.ssh_ranges(), &net.vpc).await
    }

    async fn ensure_master(&self, cluster: &ClusterName, spec: &MasterSpec) -> Result<MasterVm> {
        let zone = self.zone().await?.to_string();
        let c = self.client().await;
        let net = network::ensure(c, &self.config, cluster, &zone).await?;
        instance::ensure(c, cluster, spec, &self.config, &zone, net.subnet.as_deref()).await
    }

    async fn ensure_registry(&self, cluster: &ClusterName) -> Result<Registry> {
        registry::ensure(self.ecr().await, &self.config, cluster).await
    }

    async fn list_owned(&self, cluster: &ClusterName) -> Result<Vec<ResourceRef>> {
        let c = self.client().await;
        let mut all = instance::list(c, cluster).await?;
        all.extend(firewall::list(c, cluster).await?);
        all.extend(address::list(c, cluster).await?);
        all.extend(disk::list(c, cluster).await?);
        all.extend(registry::list(self.ecr().await, cluster).await?);
        all.extend(network::list(c, cluster).await?);
        // Only this cluster's: the tag filters already say so; the owner check guards typos.
        all.retain(|r| &r.cluster == cluster);
        Ok(all)
    }

    async fn delete(&self, resource: &ResourceRef) -> Result<()> {
        let c = self.client().await;
        match resource.role {
            Role::Master => instance::delete(c, resource).await,
            Role::Firewall => firewall::delete(c, resource).await,
            Role::StaticIp => address::delete(c, resource).await,
            Role::MasterDisk | Role::EtcdEventsDisk => disk::delete(c, resource).await,
            Role::Registry => registry::delete(self.ecr().await, resource).await,
            Role::Network => network::delete(c, resource).await,
        }
    }
}
