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
    /// The master's AMI; `None` looks one up by filter.
    pub ami: Option<String>,
    /// CIDR allowed to reach SSH on the master (the operator's address).
    pub ssh_cidr: Option<String>,
    /// The EC2 endpoint (`AWS_ENDPOINT_URL`, for emulators such as moto); `None` is the real API.
    pub endpoint: Option<String>,
    /// The availability zone of the master and its volumes; `None` takes the region's first.
    pub availability_zone: Option<String>,
    /// The image's login user (`admin` on Debian, `ubuntu` on Ubuntu).
    pub ssh_user: Option<String>,
}
