//! The hollow kube-proxy: the informers a kube-proxy of this version keeps open (Services that it
//! proxies, non-headless EndpointSlices, ServiceCIDRs, its own Node), with no dataplane. What it
//! contributes is exactly what upstream's hollow proxy contributes: watch load on the API server.

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;

use crate::watch::Informer;

/// Runs the proxy of node `node` with `client` (a kube-proxy identity) until dropped.
pub async fn run(node: String, client: crate::client::ApiClient) {
    let own = format!("metadata.name={node}");
    tokio::join!(
        Informer::of::<Service>(None)
            .labels("!service.kubernetes.io/service-proxy-name")
            .fields("spec.clusterIP!=None")
            .drain(client.clone(), &node, "services"),
        Informer::of::<EndpointSlice>(None)
            .labels("!service.kubernetes.io/headless")
            .drain(client.clone(), &node, "endpointslices"),
        Informer::of::<ServiceCIDR>(None).drain(client.clone(), &node, "servicecidrs"),
        Informer::of::<Node>(None)
            .fields(&own)
            .drain(client.clone(), &node, "node"),
    );
}
