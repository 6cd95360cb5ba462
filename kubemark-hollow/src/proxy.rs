//! The hollow kube-proxy: the informers a kube-proxy of this version keeps open (Services that it
//! proxies, non-headless EndpointSlices, ServiceCIDRs, its own Node), with no dataplane. What it
//! contributes is exactly what upstream's hollow proxy contributes: watch load on the API server.

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::api::Api;
use kube::runtime::watcher;

use crate::node::drain;

/// Runs the proxy of node `node` with `client` (a kube-proxy identity) until dropped.
pub async fn run(node: String, client: kube::Client) {
    let services = watcher::watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default()
            .labels("!service.kubernetes.io/service-proxy-name")
            .fields("spec.clusterIP!=None"),
    );
    let slices = watcher::watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels("!service.kubernetes.io/headless"),
    );
    let cidrs = watcher::watcher(
        Api::<ServiceCIDR>::all(client.clone()),
        watcher::Config::default(),
    );
    let own = watcher::watcher(
        Api::<Node>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={node}")),
    );
    tokio::join!(
        drain(&node, "services", services),
        drain(&node, "endpointslices", slices),
        drain(&node, "servicecidrs", cidrs),
        drain(&node, "node", own),
    );
}
