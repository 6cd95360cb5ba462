//! A lean list+watch for the informers whose events a hollow component never reads (the
//! kubelet's Services, CSIDrivers, RuntimeClasses, mounted ConfigMaps and Secrets; all of the
//! proxy's). The API server sees what a client-go reflector sends: a LIST served from its cache
//! (`resourceVersion=0`), then a WATCH from the list's version with bookmarks and a random 5-10
//! minute timeout, resumed from the last version seen, and a new LIST after `410 Gone`.
//!
//! Informers whose objects are used (a kubelet's own pods and Node) get the same requests with
//! typed events: [`Informer::events`].
//!
//! Why not kube-runtime's watcher: it decodes every object and keeps an 8 KiB line buffer and a
//! large state machine per watch for the watch's whole life. A hollow node holds about ten such
//! watches, which made them the biggest part of its memory. Here only the resource version is
//! decoded, a line is buffered only while it arrives, and the LIST exists only while it runs.

use std::time::Duration;

use std::pin::Pin;

use futures::{AsyncBufRead, AsyncBufReadExt, Stream};
use kube::api::{ListParams, WatchParams};
use rand::Rng;
use serde::Deserialize;
use serde::de::DeserializeOwned;

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

/// What a typed informer reports (the shape of kube-runtime's watcher events).
#[derive(Debug)]
pub(crate) enum Event<K> {
    /// A (re)list starts.
    Init,
    /// An object of the list.
    InitApply(K),
    /// The list is complete: objects not in it are gone.
    InitDone,
    /// Added or changed.
    Apply(K),
    /// Deleted.
    Delete(K),
}

#[derive(Deserialize)]
#[serde(tag = "type", content = "object", rename_all = "UPPERCASE")]
enum TypedEvent<K> {
    Added(K),
    Modified(K),
    Deleted(K),
    Bookmark(Listed),
    Error(Object),
}

#[derive(Deserialize)]
struct TypedList<K> {
    metadata: Meta,
    #[serde(default = "Vec::new")]
    items: Vec<K>,
}

enum Phase<K> {
    List,
    Initial(std::vec::IntoIter<K>, String),
    Watch(String),
    Streaming(Pin<Box<dyn AsyncBufRead + Send>>, String),
}

fn gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 410)
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

    /// The informer's events, objects decoded as `K`. After an error the stream goes on (the
    /// caller decides how long to wait before polling again); a relist starts with `Init`.
    pub(crate) fn events<K>(
        self,
        client: kube::Client,
    ) -> impl Stream<Item = Result<Event<K>, kube::Error>> + Send
    where
        K: kube::Resource + DeserializeOwned + Send + 'static,
    {
        futures::stream::unfold(
            (self, client, Phase::List),
            |(me, client, phase)| async move {
                let (item, next) = me.step::<K>(&client, phase).await;
                Some((item, (me, client, next)))
            },
        )
    }

    async fn step<K>(
        &self,
        client: &kube::Client,
        mut phase: Phase<K>,
    ) -> (Result<Event<K>, kube::Error>, Phase<K>)
    where
        K: kube::Resource + DeserializeOwned + Send + 'static,
    {
        loop {
            phase = match phase {
                Phase::List => match Box::pin(self.list_typed::<K>(client)).await {
                    Ok((items, version)) => {
                        return (Ok(Event::Init), Phase::Initial(items.into_iter(), version));
                    }
                    Err(e) => return (Err(e), Phase::List),
                },
                Phase::Initial(mut items, version) => {
                    return match items.next() {
                        Some(k) => (Ok(Event::InitApply(k)), Phase::Initial(items, version)),
                        None => (Ok(Event::InitDone), Phase::Watch(version)),
                    };
                }
                Phase::Watch(version) => {
                    let request = match self.watch_request(&version) {
                        Ok(r) => r,
                        Err(e) => return (Err(e), Phase::Watch(version)),
                    };
                    match Box::pin(client.request_stream(request)).await {
                        Ok(body) => Phase::Streaming(Box::pin(body), version),
                        Err(e) if gone(&e) => Phase::List,
                        Err(e) => return (Err(e), Phase::Watch(version)),
                    }
                }
                Phase::Streaming(mut body, version) => {
                    let mut line = Vec::new();
                    match body.read_until(b'\n', &mut line).await {
                        Ok(0) => Phase::Watch(version),
                        Err(e) => return (Err(kube::Error::ReadEvents(e)), Phase::Watch(version)),
                        Ok(_) if line.iter().all(u8::is_ascii_whitespace) => {
                            Phase::Streaming(body, version)
                        }
                        Ok(_) => match serde_json::from_slice::<TypedEvent<K>>(&line) {
                            Ok(TypedEvent::Added(k) | TypedEvent::Modified(k)) => {
                                let version = k.meta().resource_version.clone().unwrap_or(version);
                                return (Ok(Event::Apply(k)), Phase::Streaming(body, version));
                            }
                            Ok(TypedEvent::Deleted(k)) => {
                                let version = k.meta().resource_version.clone().unwrap_or(version);
                                return (Ok(Event::Delete(k)), Phase::Streaming(body, version));
                            }
                            Ok(TypedEvent::Bookmark(b)) => {
                                let version = b.metadata.resource_version.unwrap_or(version);
                                Phase::Streaming(body, version)
                            }
                            Ok(TypedEvent::Error(status)) => {
                                tracing::debug!(path = %self.path, code = ?status.code, "watch error event; relisting");
                                Phase::List
                            }
                            Err(e) => {
                                return (Err(kube::Error::SerdeError(e)), Phase::Watch(version));
                            }
                        },
                    }
                }
            };
        }
    }

    async fn list_typed<K: DeserializeOwned>(
        &self,
        client: &kube::Client,
    ) -> Result<(Vec<K>, String), kube::Error> {
        let text = client.request_text(self.list_request()?).await?;
        let list: TypedList<K> = serde_json::from_str(&text).map_err(kube::Error::SerdeError)?;
        Ok((
            list.items,
            list.metadata.resource_version.unwrap_or_default(),
        ))
    }

    fn list_request(&self) -> Result<http::Request<Vec<u8>>, kube::Error> {
        let mut params = ListParams::default().match_any().limit(500);
        params.field_selector = self.fields.clone();
        params.label_selector = self.labels.clone();
        self.request()
            .list(&params)
            .map_err(kube::Error::BuildRequest)
    }

    fn watch_request(&self, from: &str) -> Result<http::Request<Vec<u8>>, kube::Error> {
        // client-go's reflector: minWatchTimeout (5 min) times a factor in [1, 2).
        let timeout = 300 + rand::rng().random_range(0..300);
        let mut params = WatchParams::default().timeout(timeout);
        params.field_selector = self.fields.clone();
        params.label_selector = self.labels.clone();
        self.request()
            .watch(&params, from)
            .map_err(kube::Error::BuildRequest)
    }

    fn request(&self) -> kube::core::Request {
        kube::core::Request::new(self.path.clone())
    }

    async fn list(&self, client: &kube::Client) -> Result<String, kube::Error> {
        let text = client.request_text(self.list_request()?).await?;
        let listed: Listed = serde_json::from_str(&text).map_err(kube::Error::SerdeError)?;
        Ok(listed.metadata.resource_version.unwrap_or_default())
    }

    async fn watch(&self, client: &kube::Client, from: &str) -> Result<End, kube::Error> {
        let request = self.watch_request(from)?;
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

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    #[test]
    fn watch_lines_decode_as_the_api_server_writes_them() {
        let added = br#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","resourceVersion":"7"}}}"#;
        match serde_json::from_slice::<TypedEvent<Pod>>(added).unwrap() {
            TypedEvent::Added(p) => assert_eq!(p.metadata.resource_version.as_deref(), Some("7")),
            _ => panic!("not an ADDED event"),
        }
        let bookmark = br#"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"12","annotations":{"k8s.io/initial-events-end":"true"}}}}"#;
        match serde_json::from_slice::<TypedEvent<Pod>>(bookmark).unwrap() {
            TypedEvent::Bookmark(b) => {
                assert_eq!(b.metadata.resource_version.as_deref(), Some("12"))
            }
            _ => panic!("not a BOOKMARK"),
        }
        let gone = br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version","reason":"Expired","code":410}}"#;
        match serde_json::from_slice::<TypedEvent<Pod>>(gone).unwrap() {
            TypedEvent::Error(s) => assert_eq!(s.code, Some(410)),
            _ => panic!("not an ERROR"),
        }
        // The untyped drain reads only the version, of any kind.
        let any: WatchEvent = serde_json::from_slice(added).unwrap();
        assert_eq!(
            any.object.metadata.unwrap().resource_version.as_deref(),
            Some("7")
        );
        let list: TypedList<Pod> = serde_json::from_str(
            r#"{"kind":"PodList","metadata":{"resourceVersion":"5"},"items":[{"metadata":{"name":"a"}}]}"#,
        )
        .unwrap();
        assert_eq!(list.metadata.resource_version.as_deref(), Some("5"));
        assert_eq!(list.items.len(), 1);
    }
}
