#![doc = include_str!("../README.md")]

pub mod binaries;
pub mod bootstrap;
pub mod cluster;
pub mod deploy;
pub mod image;
pub mod master;
#[cfg(feature = "workloads")]
pub mod measurement;
pub mod pki;
pub mod provider;
pub mod tls;
#[cfg(feature = "workloads")]
pub mod workload;
