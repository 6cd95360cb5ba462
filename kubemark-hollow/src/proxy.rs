//! The hollow kube-proxy: the informers a kube-proxy of this version keeps open (Services that it
//! proxies, non-headless EndpointSlices, ServiceCIDRs, its own Node), with no dataplane, and the
//! `Starting` event kube-proxy announces itself with. What it contributes is what upstream's
//! hollow proxy contributes (which lacks only the Node watch): load on the API server.

use k8s_openapi::api::core::v1::{Node, ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

use crate::api::Api;
use crate::watch::Informer;

/// Runs the proxy of node `node` with `client` (a kube-proxy identity) until dropped.
pub async fn run(node: String, client: crate::client::ApiClient) {
    let own = format!("metadata.name={node}");
    tokio::join!(
        // Boxed: its request state would otherwise stay part of this future for the node's life.
        Box::pin(starting(&node, &client)),
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

/// kube-proxy's "birth cry": an events.k8s.io Event on its Node, as client-go's event recorder
/// builds it (reporting controller `kube-proxy`, instance `kube-proxy-<host>`, in `default`
/// since a Node has no namespace). Sent while the informers start, as kube-proxy sends it; a
/// failure is logged and the proxy runs on, as kube-proxy's recorder drops what it cannot send.
async fn starting(node: &str, client: &crate::client::ApiClient) {
    let event = starting_event(node, k8s_openapi::jiff::Timestamp::now());
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    if let Err(e) = events.create(&Default::default(), &event).await {
        tracing::debug!(node, error = %e, "kube-proxy's Starting event failed");
    }
}

fn starting_event(node: &str, now: k8s_openapi::jiff::Timestamp) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{node}.{:x}", now.as_nanosecond())),
            namespace: Some("default".into()),
            ..Default::default()
        },
        event_time: Some(MicroTime(now)),
        reporting_controller: Some("kube-proxy".into()),
        reporting_instance: Some(format!("kube-proxy-{node}")),
        action: Some("StartKubeProxy".into()),
        reason: Some("Starting".into()),
        regarding: Some(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.into()),
            ..Default::default()
        }),
        type_: Some("Normal".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starting_event_names_its_node_as_kube_proxys_recorder_does() {
        let at: k8s_openapi::jiff::Timestamp = "2026-11-27T12:00:00.000001Z".parse().unwrap();
        let e = serde_json::to_value(starting_event("n-1", at)).unwrap();
        assert_eq!(
            e["metadata"]["name"],
            format!("n-1.{:x}", at.as_nanosecond())
        );
        assert_eq!(e["metadata"]["namespace"], "default");
        assert_eq!(e["eventTime"], "2026-11-27T12:00:00.000001Z");
        assert_eq!(
            (&e["reason"], &e["action"], &e["type"]),
            (
                &"Starting".into(),
                &"StartKubeProxy".into(),
                &"Normal".into()
            )
        );
        assert_eq!(e["reportingController"], "kube-proxy");
        assert_eq!(e["reportingInstance"], "kube-proxy-n-1");
        assert_eq!(e["regarding"]["kind"], "Node");
        assert_eq!(e["regarding"]["name"], "n-1");
    }
}
