//! Configuration of the AWS provider.

/// Where and how the AWS provider creates the master.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct AwsConfig {
    /// The region (`AWS_REGION` or `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// The master's instance type (`KUBEMARK_MASTER_SIZE`); `None` picks one by node count.
    pub instance_type: Option<String>,
    /// The master's AMI (`KUBEMARK_AWS_AMI`); `None` takes the newest image named
    /// [`ami_name`](Self::ami_name) of [`ami_owner`](Self::ami_owner).
    pub ami: Option<String>,
    /// The owner of the AMI to look up (`KUBEMARK_AWS_AMI_OWNER`, default Debian's
    /// `136693071363`).
    pub ami_owner: Option<String>,
    /// The name pattern of the AMI to look up (`KUBEMARK_AWS_AMI_NAME`, default
    /// `debian-12-amd64-*`).
    pub ami_name: Option<String>,
    /// The Docker host of the image repository (`KUBEMARK_AWS_REGISTRY_HOST`, emulators only);
    /// `None` is ECR's own `<account>.dkr.ecr.<region>.amazonaws.com`.
    pub registry_host: Option<String>,
    /// CIDR allowed to reach SSH on the master (the operator's address).
    pub ssh_cidr: Option<String>,
    /// The EC2 endpoint (`AWS_ENDPOINT_URL`, for emulators such as moto); `None` is the real API.
    pub endpoint: Option<String>,
    /// The availability zone of the master and its volumes; `None` takes the region's first.
    pub availability_zone: Option<String>,
    /// The VPC (`KUBEMARK_AWS_VPC`): `default` (the region's default VPC, or kubemark's own when
    /// there is none), `create` (always kubemark's own, tagged) or a `vpc-...` id.
    pub vpc: Option<String>,
    /// The subnet to launch into with a `vpc-...` id (`KUBEMARK_AWS_SUBNET`).
    pub subnet: Option<String>,
    /// The image's login user (`admin` on Debian, `ubuntu` on Ubuntu).
    pub ssh_user: Option<String>,
}
