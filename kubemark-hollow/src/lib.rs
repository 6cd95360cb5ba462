#![doc = include_str!("../README.md")]

mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod identity;
pub mod node;
pub mod npd;
pub mod pods;
mod protobuf;
pub mod proxy;
pub mod quantity;
pub mod runtime;
pub mod server;
mod watch;

pub use config::NodeConfig;
pub use identity::Credentials;
pub use runtime::{HollowError, HollowNodes, HollowOptions};
