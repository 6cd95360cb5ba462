#![doc = include_str!("../README.md")]

mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod identity;
pub mod node;
pub mod npd;
mod pod_worker;
pub mod pods;
mod protobuf;
pub mod proxy;
pub mod quantity;
pub mod runtime;
pub mod server;
mod watch;

// jemalloc in unit tests too: its per-thread counters measure what a connection keeps
// (client/tls.rs), and the binaries run on it.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub use config::NodeConfig;
pub use identity::Credentials;
pub use runtime::{HollowError, HollowNodes, HollowOptions};
