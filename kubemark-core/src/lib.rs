#![doc = include_str!("../README.md")]

#[cfg(feature = "master")]
pub mod binaries;
#[cfg(feature = "master")]
pub mod bootstrap;
#[cfg(feature = "master")]
pub mod cluster;
#[cfg(feature = "master")]
pub mod deploy;
#[cfg(feature = "master")]
pub mod image;
#[cfg(feature = "master")]
pub mod master;
pub mod pki;
#[cfg(feature = "master")]
pub mod provider;
pub mod tls;
