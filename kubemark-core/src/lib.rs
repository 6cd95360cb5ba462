#![doc = include_str!("../README.md")]

pub mod binaries;
pub mod bootstrap;
pub mod cluster;
pub mod deploy;
pub mod image;
pub mod master;
pub mod pki;
pub mod provider;
pub mod registry;
pub mod tls;
