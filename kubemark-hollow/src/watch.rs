//! A lean list+watch for the informers whose events a hollow component never reads (the
//! kubelet's Services, CSIDrivers, RuntimeClasses, mounted ConfigMaps and Secrets; all of the
//! proxy's). The API server sees what a client-go reflector sends: a LIST served from its cache
//! (`resourceVersion=0`), then a WATCH from the list's version with bookmarks and a random 5-10
//! minute timeout, resumed from the last version seen, and a new LIST after `410 Gone`.
//!
//! Why not kube-runtime's watcher: it decodes every object and keeps an 8 KiB line buffer and a
//! large state machine per watch for the watch's whole life. A hollow node holds about ten such
//! watches, which made them the biggest part of its memory. Here only the resource version is
//! decoded, a line is buffered only while it arrives, and the LIST exists only while it runs.

use std::time::Duration;

use futures::AsyncBufReadExt;
use kube::api::{ListParams, WatchParams};
use rand::Rng;
use serde::Deserialize;

/// One informer's list+watch target.
#[derive(Debug, Clone)]
pub(crate) struct Informer {
    path: String,
    fields: Option<String>,
    labels: Option<String>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
}

#[derive(Deserialize)]
struct Listed {
    metadata: Meta,
}

#[derive(Deserialize)]
struct Object {
    metadata: Option<Meta>,
    /// Set when the object is a Status (an `ERROR` event).
    code: Option<u16>,
}

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    type_: String,
    object: Object,
}

/// How a watch ended.
enum End {
    /// The server closed it (timeout): resume from this version.
    Closed(String),
    /// The version is too old (`410 Gone`) or the server sent an error: list again.
    Relist,
}

impl Informer {
    /// All objects of `K` (in `namespace`, or cluster-wide).
    pub(crate) fn of<K: kube::Resource<DynamicType = ()>>(namespace: Option<&str>) -> Self {
        Informer {
            path: K::url_path(&(), namespace),
            fields: None,
            labels: None,
        }
    }

    /// Restricts to a field selector.
    pub(crate) fn fields(mut self, selector: &str) -> Self {
        self.fields = Some(selector.to_string());
        self
    }

    /// Restricts to a label selector.
    pub(crate) fn labels(mut self, selector: &str) -> Self {
        self.labels = Some(selector.to_string());
        self
    }

    /// Keeps the informer's list+watch going until dropped; failures are retried after a second,
    /// as a reflector's back-off does.
    pub(crate) async fn drain(self, client: kube::Client, node: &str, what: &str) {
        let mut version: Option<String> = None;
        loop {
            let from = match version.take() {
                Some(v) => v,
                None => match Box::pin(self.list(&client)).await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::debug!(node, what, error = %e, "list failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            match Box::pin(self.watch(&client, &from)).await {
                Ok(End::Closed(last)) => version = Some(last),
                Ok(End::Relist) => {}
                Err(e) => {
                    tracing::debug!(node, what, error = %e, "watch failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    version = Some(from);
                }
            }
        }
    }

    fn request(&self) -> kube::core::Request {
        kube::core::Request::new(self.path.clone())
    }

    async fn list(&self, client: &kube::Client) -> Result<String, kube::Error> {
        let mut params = ListParams::default().match_any().limit(500);
        params.field_selector = self.fields.clone();
        params.label_selector = self.labels.clone();
        let request = self
            .request()
            .list(&params)
            .map_err(kube::Error::BuildRequest)?;
        let text = client.request_text(request).await?;
        let listed: Listed = serde_json::from_str(&text).map_err(kube::Error::SerdeError)?;
        Ok(listed.metadata.resource_version.unwrap_or_default())
    }

    async fn watch(&self, client: &kube::Client, from: &str) -> Result<End, kube::Error> {
        // client-go's reflector: minWatchTimeout (5 min) times a factor in [1, 2).
        let timeout = 300 + rand::rng().random_range(0..300);
        let mut params = WatchParams::default().timeout(timeout);
        params.field_selector = self.fields.clone();
        params.label_selector = self.labels.clone();
        let request = self
            .request()
            .watch(&params, from)
            .map_err(kube::Error::BuildRequest)?;
        let body = Box::pin(client.request_stream(request)).await?;
        let mut body = std::pin::pin!(body);
        let mut last = from.to_string();
        loop {
            // A fresh buffer per event: an idle watch holds no buffer at all.
            let mut line = Vec::new();
            let n = body
                .read_until(b'\n', &mut line)
                .await
                .map_err(kube::Error::ReadEvents)?;
            if n == 0 {
                return Ok(End::Closed(last));
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event: WatchEvent =
                serde_json::from_slice(&line).map_err(kube::Error::SerdeError)?;
            if event.type_ == "ERROR" {
                tracing::debug!(path = %self.path, code = ?event.object.code, "watch error event; relisting");
                return Ok(End::Relist);
            }
            if let Some(v) = event.object.metadata.and_then(|m| m.resource_version) {
                last = v;
            }
        }
    }
}
