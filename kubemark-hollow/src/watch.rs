//! The informers of a hollow kubelet and kube-proxy, sent as client-go v1.36's reflector sends
//! them: a *watch list* (`WATCH ?sendInitialEvents=true&resourceVersionMatch=NotOlderThan`, the
//! `WatchListClient` behaviour on by default since client-go 1.35) whose initial events end with
//! a bookmark, then the watch goes on with bookmarks and a random 5-10 minute timeout and is
//! resumed from the last version seen; after `410 Gone` it starts over. An API server that
//! refuses watch lists gets a LIST (`resourceVersion=0`) and a WATCH instead, as client-go falls
//! back.
//!
//! Informers whose events nothing reads (the kubelet's Services, CSIDrivers, RuntimeClasses,
//! mounted ConfigMaps and Secrets; all of the proxy's) decode only resource versions:
//! [`Informer::drain`]. They ask for protobuf, as the kubelet and kube-proxy do, and read the
//! versions from it with partial message types ([`crate::protobuf`]). The kubelet's own pods
//! and Node are decoded whole, from JSON: [`Informer::events`].
//!
//! Why not kube-runtime's watcher: it decodes every object and keeps an 8 KiB line buffer and a
//! large state machine per watch for the watch's whole life. A hollow node holds about ten such
//! watches, which made them the biggest part of its memory. Here a line is buffered only while it
//! arrives, and a LIST exists only while it runs.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use futures::{AsyncBufRead, AsyncBufReadExt, Stream, StreamExt};
use kube::api::{ListParams, WatchParams};
use rand::Rng;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::client::ApiClient;
use crate::protobuf::{self, ProtobufError};

/// The annotation of the bookmark that ends a watch list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// One informer's target.
#[derive(Debug, Clone)]
pub(crate) struct Informer {
    path: String,
    fields: Option<String>,
    labels: Option<String>,
    /// Start with watch lists; false once the server refused their parameters.
    watch_list: bool,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
}

/// An object of which only the version is read.
#[derive(Deserialize)]
pub(crate) struct Skipped {
    metadata: Option<Meta>,
}

#[derive(Deserialize)]
struct Status {
    code: Option<u16>,
}

/// Objects an informer decodes: anything with a resource version.
pub(crate) trait Versioned {
    fn version(&self) -> Option<&str>;
}

impl<K: kube::Resource> Versioned for K {
    fn version(&self) -> Option<&str> {
        self.meta().resource_version.as_deref()
    }
}

impl Versioned for Skipped {
    fn version(&self) -> Option<&str> {
        self.metadata.as_ref()?.resource_version.as_deref()
    }
}

/// Objects an informer decodes: from JSON, and, for those that say so, from protobuf, which the
/// informer then asks the API server for.
pub(crate) trait Decode: Versioned + DeserializeOwned + Send + Sized + 'static {
    /// Ask for protobuf.
    const PROTOBUF: bool = false;

    /// The object from its protobuf message.
    fn from_protobuf(_message: &[u8]) -> Result<Self, ProtobufError> {
        Err(ProtobufError::Malformed("this informer decodes JSON only"))
    }
}

impl<K: kube::Resource + DeserializeOwned + Send + 'static> Decode for K {}

impl Decode for Skipped {
    const PROTOBUF: bool = true;

    fn from_protobuf(message: &[u8]) -> Result<Self, ProtobufError> {
        let meta = protobuf::object_meta(message, &[INITIAL_EVENTS_END])?;
        Ok(Skipped {
            metadata: Some(Meta {
                resource_version: meta.resource_version,
                annotations: Some(meta.annotations.into_iter().collect()),
            }),
        })
    }
}

/// A watch frame in protobuf as the event JSON would have given.
fn protobuf_event<K: Decode>(frame: Vec<u8>) -> Result<TypedEvent<K>, ProtobufError> {
    let (kind, object) = protobuf::watch_event(frame.into())?;
    let object = &protobuf::unwrap(object)?.raw;
    let decoded = |o| K::from_protobuf(o).map(Box::new);
    Ok(match kind.as_str() {
        "ADDED" => TypedEvent::Added(decoded(object)?),
        "MODIFIED" => TypedEvent::Modified(decoded(object)?),
        "DELETED" => TypedEvent::Deleted(decoded(object)?),
        "BOOKMARK" => TypedEvent::Bookmark(Skipped::from_protobuf(object)?),
        "ERROR" => TypedEvent::Error(Status {
            code: Some(protobuf::status(object)?.0),
        }),
        _ => return Err(ProtobufError::Malformed("unknown watch event type")),
    })
}

fn protobuf_failure(e: ProtobufError) -> kube::Error {
    kube::Error::ReadEvents(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The largest watch frame read; the API server's own limit for a request body is 3 MiB and
/// for an object in etcd 1.5 MiB, so anything near this is a broken stream.
const MAX_FRAME: usize = 64 << 20;

/// The next frame of a protobuf watch; `None` at the end of the stream.
async fn read_frame(body: &mut Body) -> std::io::Result<Option<Vec<u8>>> {
    use futures::AsyncReadExt;
    if body.fill_buf().await?.is_empty() {
        return Ok(None);
    }
    let mut len = [0u8; 4];
    body.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("watch frame of {len} bytes"),
        ));
    }
    let mut frame = vec![0; len];
    body.read_exact(&mut frame).await?;
    Ok(Some(frame))
}

/// What a typed informer reports (the shape of kube-runtime's watcher events). Objects are
/// boxed: a consumer's task holds an event across awaits, and an inline `Pod` (2.4 KiB) would
/// be part of that task's state for the node's whole life.
#[derive(Debug)]
pub(crate) enum Event<K> {
    /// A (re)list starts.
    Init,
    /// An object of the list.
    InitApply(Box<K>),
    /// The list is complete: objects not in it are gone.
    InitDone,
    /// Added or changed.
    Apply(Box<K>),
    /// Deleted.
    Delete(Box<K>),
}

#[derive(Deserialize)]
#[serde(tag = "type", content = "object", rename_all = "UPPERCASE")]
enum TypedEvent<K> {
    Added(Box<K>),
    Modified(Box<K>),
    Deleted(Box<K>),
    Bookmark(Skipped),
    Error(Status),
}

#[derive(Deserialize)]
struct TypedList<K> {
    metadata: Meta,
    #[serde(default = "Vec::new")]
    items: Vec<K>,
}

type Body = Pin<Box<dyn AsyncBufRead + Send>>;

enum Phase<K> {
    /// Start over: a watch list (or a LIST where the server refuses those).
    Start,
    /// Start over with a LIST.
    List,
    /// Items of a LIST still to hand out.
    Listed(std::vec::IntoIter<K>, String),
    /// (Re)connect the watch from a version.
    Watch(String),
    /// Reading a watch; `initial` while a watch list's initial events last; `framed` for
    /// protobuf frames (else JSON lines).
    Streaming {
        body: Body,
        version: String,
        initial: bool,
        framed: bool,
    },
}

impl<K> Phase<K> {
    /// After a stream ends or fails: a watch list cut off before its end starts over, a watch
    /// resumes from the last version it saw.
    fn resumed(initial: bool, version: String) -> Self {
        if initial {
            Phase::Start
        } else {
            Phase::Watch(version)
        }
    }
}

fn gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 410)
}

/// A server that does not take watch lists at all (their parameters refused) gets LISTs from
/// then on; any other failure (403 until the Node authorizer catches up) is per attempt.
fn refused(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if matches!(s.code, 400 | 422))
}

impl Informer {
    /// All objects of `K` (in `namespace`, or cluster-wide).
    pub(crate) fn of<K: kube::Resource<DynamicType = ()>>(namespace: Option<&str>) -> Self {
        Informer {
            path: K::url_path(&(), namespace),
            fields: None,
            labels: None,
            watch_list: true,
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

    /// Keeps the informer going until dropped, reading only versions; failures are retried
    /// after a second, as a reflector's back-off does.
    pub(crate) fn drain<'a>(
        self,
        client: ApiClient,
        node: &'a str,
        what: &'a str,
    ) -> impl Future<Output = ()> + Send + 'a {
        // A combinator, not an `async fn`: moved-from parameters and locals would keep their
        // slots in the future's state for the informer's whole life.
        self.events::<Skipped>(client).for_each(move |event| {
            // Logged and dropped here, not held across the wait.
            let failed = event
                .map_err(|e| tracing::debug!(node, what, error = %e, "informer failed; retrying"))
                .is_err();
            async move {
                if failed {
                    // Boxed: a timer inline would be part of the informer's state for life.
                    Box::pin(tokio::time::sleep(Duration::from_secs(1))).await;
                }
            }
        })
    }

    /// The informer's events, objects decoded as `K`. After an error the stream goes on (the
    /// caller decides how long to wait before polling again); a relist starts with `Init`.
    pub(crate) fn events<K>(
        self,
        client: ApiClient,
    ) -> impl Stream<Item = Result<Event<K>, kube::Error>> + Send
    where
        K: Decode,
    {
        let state = (self, client, Phase::Start);
        futures::stream::unfold(state, |(mut me, client, mut phase)| async move {
            // A watch waits here for its next event, in this small future; the stepping one
            // (~0.5 KiB, most of it for states that do not wait) exists only while an event is
            // handled. Inline, it was part of every informer's state for the node's life.
            if let Phase::Streaming {
                body,
                version,
                initial,
                ..
            } = &mut phase
            {
                let ready =
                    futures::future::poll_fn(|cx| body.as_mut().poll_fill_buf(cx).map_ok(|_| ()));
                if let Err(e) = ready.await {
                    // As a failed read in `step`.
                    let next = Phase::resumed(*initial, std::mem::take(version));
                    return Some((Err(kube::Error::ReadEvents(e)), (me, client, next)));
                }
            }
            let (item, next) = Box::pin(me.step::<K>(&client, phase)).await;
            Some((item, (me, client, next)))
        })
    }

    async fn step<K>(
        &mut self,
        client: &ApiClient,
        mut phase: Phase<K>,
    ) -> (Result<Event<K>, kube::Error>, Phase<K>)
    where
        K: Decode,
    {
        loop {
            phase = match phase {
                Phase::Start if self.watch_list => {
                    match Box::pin(self.open(client, "", true, K::PROTOBUF)).await {
                        Ok((framed, body)) => {
                            let next = Phase::Streaming {
                                body,
                                version: String::new(),
                                initial: true,
                                framed,
                            };
                            return (Ok(Event::Init), next);
                        }
                        Err(e) => {
                            // As client-go: a failed watch list (the Node authorizer not yet
                            // knowing the pod that grants access, a timeout) falls back to a
                            // LIST, because progress beats waiting.
                            tracing::debug!(path = %self.path, error = %e, "watch list failed; listing");
                            self.watch_list = !refused(&e);
                            Phase::List
                        }
                    }
                }
                Phase::Start | Phase::List => match Box::pin(self.list::<K>(client)).await {
                    Ok((items, version)) => {
                        return (Ok(Event::Init), Phase::Listed(items.into_iter(), version));
                    }
                    Err(e) => return (Err(e), Phase::Start),
                },
                Phase::Listed(mut items, version) => {
                    return match items.next() {
                        Some(k) => (
                            Ok(Event::InitApply(Box::new(k))),
                            Phase::Listed(items, version),
                        ),
                        None => (Ok(Event::InitDone), Phase::Watch(version)),
                    };
                }
                Phase::Watch(version) => {
                    match Box::pin(self.open(client, &version, false, K::PROTOBUF)).await {
                        Ok((framed, body)) => Phase::Streaming {
                            body,
                            version,
                            initial: false,
                            framed,
                        },
                        Err(e) if gone(&e) => Phase::Start,
                        Err(e) => return (Err(e), Phase::Watch(version)),
                    }
                }
                Phase::Streaming {
                    mut body,
                    version,
                    initial,
                    framed,
                } => {
                    let resume = |version| Phase::resumed(initial, version);
                    // A fresh buffer per event: an idle watch holds no buffer at all.
                    let decoded = if framed {
                        match read_frame(&mut body).await {
                            Ok(None) => {
                                phase = resume(version);
                                continue;
                            }
                            Err(e) => return (Err(kube::Error::ReadEvents(e)), resume(version)),
                            Ok(Some(frame)) => match protobuf_event::<K>(frame) {
                                Ok(decoded) => decoded,
                                Err(e) => return (Err(protobuf_failure(e)), resume(version)),
                            },
                        }
                    } else {
                        let mut line = Vec::new();
                        match body.read_until(b'\n', &mut line).await {
                            Ok(0) => {
                                phase = resume(version);
                                continue;
                            }
                            Err(e) => return (Err(kube::Error::ReadEvents(e)), resume(version)),
                            Ok(_) if line.iter().all(u8::is_ascii_whitespace) => {
                                phase = Phase::Streaming {
                                    body,
                                    version,
                                    initial,
                                    framed,
                                };
                                continue;
                            }
                            Ok(_) => match serde_json::from_slice::<TypedEvent<K>>(&line) {
                                Ok(decoded) => decoded,
                                Err(e) => {
                                    return (Err(kube::Error::SerdeError(e)), resume(version));
                                }
                            },
                        }
                    };
                    let newer =
                        |v: Option<&str>, version: String| v.map_or(version, str::to_string);
                    let (event, version, initial) = match decoded {
                        TypedEvent::Added(k) | TypedEvent::Modified(k) => {
                            let version = newer(k.version(), version);
                            let event = if initial {
                                Event::InitApply(k)
                            } else {
                                Event::Apply(k)
                            };
                            (Some(event), version, initial)
                        }
                        TypedEvent::Deleted(k) => {
                            let version = newer(k.version(), version);
                            (Some(Event::Delete(k)), version, initial)
                        }
                        TypedEvent::Bookmark(b) => {
                            let end = b
                                .metadata
                                .as_ref()
                                .and_then(|m| m.annotations.as_ref())
                                .and_then(|a| a.get(INITIAL_EVENTS_END))
                                .is_some_and(|v| v == "true");
                            let version = newer(b.version(), version);
                            let done = (initial && end).then_some(Event::InitDone);
                            (done, version, initial && !end)
                        }
                        TypedEvent::Error(status) => {
                            tracing::debug!(path = %self.path, code = ?status.code, "watch error event; starting over");
                            phase = Phase::Start;
                            continue;
                        }
                    };
                    let next = Phase::Streaming {
                        body,
                        version,
                        initial,
                        framed,
                    };
                    match event {
                        Some(event) => return (Ok(event), next),
                        None => next,
                    }
                }
            };
        }
    }

    async fn list<K: Decode>(&self, client: &ApiClient) -> Result<(Vec<K>, String), kube::Error> {
        let mut params = ListParams::default().limit(500);
        params.field_selector = self.fields.clone();
        params.label_selector = self.labels.clone();
        let mut request = self
            .request()
            .list(&params)
            .map_err(kube::Error::BuildRequest)?;
        // As client-go's reflector: `limit=500&resourceVersion=0`, served from the API server's
        // watch cache. kube-core drops `resourceVersion=0` when a limit is set, which would
        // turn every fallback LIST into a paginated read from etcd.
        let uri = format!("{}&resourceVersion=0", request.uri());
        *request.uri_mut() = uri.parse().map_err(|e: http::uri::InvalidUri| {
            kube::Error::BuildRequest(kube::core::request::Error::BuildRequest(e.into()))
        })?;
        if K::PROTOBUF {
            request.headers_mut().insert(
                http::header::ACCEPT,
                http::HeaderValue::from_static(protobuf::ACCEPT),
            );
        }
        let body = client.request_bytes(request).await?;
        if let Ok(envelope) = protobuf::unwrap(body.clone()) {
            let (version, items) = protobuf::list(envelope.raw).map_err(protobuf_failure)?;
            let items = items
                .iter()
                .map(|item| K::from_protobuf(item))
                .collect::<Result<Vec<K>, _>>()
                .map_err(protobuf_failure)?;
            return Ok((items, version.unwrap_or_default()));
        }
        let list: TypedList<K> = serde_json::from_slice(&body).map_err(kube::Error::SerdeError)?;
        Ok((
            list.items,
            list.metadata.resource_version.unwrap_or_default(),
        ))
    }

    /// Opens a watch from `from`, or a watch list (`from` empty) when `initial`; true with the
    /// body when the server answers in protobuf frames.
    async fn open(
        &self,
        client: &ApiClient,
        from: &str,
        initial: bool,
        protobuf: bool,
    ) -> Result<(bool, Body), kube::Error> {
        // client-go's reflector: minWatchTimeout (5 min) times a factor in [1, 2).
        let timeout = 300 + rand::rng().random_range(0..300);
        let mut params = WatchParams::default().timeout(timeout);
        params.field_selector = self.fields.clone();
        params.label_selector = self.labels.clone();
        params.send_initial_events = initial;
        let mut request = self
            .request()
            .watch(&params, from)
            .map_err(kube::Error::BuildRequest)?;
        if protobuf {
            request.headers_mut().insert(
                http::header::ACCEPT,
                http::HeaderValue::from_static(protobuf::ACCEPT),
            );
        }
        let (framed, body) = client.watch_stream(request).await?;
        Ok((framed, Box::pin(body)))
    }

    fn request(&self) -> kube::core::Request {
        kube::core::Request::new(self.path.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use k8s_openapi::api::core::v1::{Pod, Service};

    use super::*;

    /// A client whose API server answers from a script, in order, and records the URIs it was
    /// asked for; once the script is exhausted it never answers.
    fn scripted(script: &[(u16, &str)]) -> (ApiClient, Arc<Mutex<Vec<String>>>) {
        let script = script
            .iter()
            .map(|(c, b)| (*c, "application/json", b.as_bytes().to_vec()))
            .collect();
        let (client, uris, _) = scripted_bytes(script);
        (client, uris)
    }

    /// A client whose server answers (status, content type, body) in order, recording the URIs
    /// and `Accept` headers it was sent.
    #[allow(clippy::type_complexity)]
    fn scripted_bytes(
        script: Vec<(u16, &'static str, Vec<u8>)>,
    ) -> (ApiClient, Arc<Mutex<Vec<String>>>, Arc<Mutex<Vec<String>>>) {
        let uris: Arc<Mutex<Vec<String>>> = Arc::default();
        let accepts: Arc<Mutex<Vec<String>>> = Arc::default();
        let queue = Arc::new(Mutex::new(VecDeque::from(script)));
        let (u, a) = (uris.clone(), accepts.clone());
        let service = tower::service_fn(
            move |request: http::Request<http_body_util::Full<bytes::Bytes>>| {
                u.lock().unwrap().push(request.uri().to_string());
                a.lock().unwrap().push(
                    request
                        .headers()
                        .get(http::header::ACCEPT)
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default(),
                );
                let next = queue.lock().unwrap().pop_front();
                async move {
                    let Some((code, content_type, body)) = next else {
                        return std::future::pending().await;
                    };
                    let response = http::Response::builder()
                        .status(code)
                        .header(http::header::CONTENT_TYPE, content_type)
                        .body(crate::client::ResponseBody::from(bytes::Bytes::from(body)))
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(response)
                }
            },
        );
        (ApiClient::from_service(service), uris, accepts)
    }

    #[tokio::test]
    async fn draining_informers_ask_for_protobuf_and_read_its_frames() {
        use crate::protobuf::test_frame;
        let end = [(INITIAL_EVENTS_END, "true")];
        let watch_list = [
            test_frame("ADDED", "Service", "6", &[]),
            test_frame("BOOKMARK", "Service", "7", &end),
            test_frame("MODIFIED", "Service", "8", &[]),
            test_frame("ERROR", "Status", "410", &[]),
        ]
        .concat();
        let stream = "application/vnd.kubernetes.protobuf;stream=watch";
        let (client, uris, accepts) = scripted_bytes(vec![(200, stream, watch_list)]);
        let mut informer = Box::pin(Informer::of::<Service>(None).events::<Skipped>(client));
        let events: Vec<String> = informer
            .by_ref()
            .take(4)
            .map(|e| match e {
                Ok(Event::Init) => "init".to_string(),
                Ok(Event::InitApply(o)) => format!("list {}", o.version().unwrap()),
                Ok(Event::InitDone) => "done".to_string(),
                Ok(Event::Apply(o)) => format!("apply {}", o.version().unwrap()),
                Ok(Event::Delete(o)) => format!("delete {}", o.version().unwrap()),
                Err(e) => format!("error {e}"),
            })
            .collect()
            .await;
        // The bookmark ends the initial events; after the 410 the informer starts over (with a
        // watch list the exhausted script never answers).
        assert_eq!(events, ["init", "list 6", "done", "apply 8"]);
        let next = tokio::time::timeout(Duration::from_millis(100), informer.next()).await;
        assert!(next.is_err(), "no answer expected");
        assert_eq!(accepts.lock().unwrap()[0], crate::protobuf::ACCEPT);
        assert_eq!(kinds(&uris.lock().unwrap()), ["watch-list", "watch-list"]);
    }

    #[tokio::test]
    async fn a_cut_protobuf_frame_is_an_error_and_the_watch_list_starts_over() {
        use crate::protobuf::test_frame;
        let mut cut = test_frame("ADDED", "Service", "6", &[]);
        cut.truncate(cut.len() - 3);
        let stream = "application/vnd.kubernetes.protobuf;stream=watch";
        let (client, uris, _) = scripted_bytes(vec![(200, stream, cut)]);
        let mut events = Box::pin(Informer::of::<Service>(None).events::<Skipped>(client));
        assert!(matches!(events.next().await, Some(Ok(Event::Init))));
        assert!(matches!(events.next().await, Some(Err(_))));
        let next = tokio::time::timeout(Duration::from_millis(100), events.next()).await;
        assert!(next.is_err(), "the script is exhausted; no answer expected");
        assert_eq!(kinds(&uris.lock().unwrap()), ["watch-list", "watch-list"]);
    }

    fn status(code: u16) -> String {
        format!(
            r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"m","reason":"R","code":{code}}}"#
        )
    }

    const LIST: &str = r#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"5"},"items":[{"metadata":{"name":"a","resourceVersion":"4"}}]}"#;
    const WATCH: &str = concat!(
        r#"{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"b","resourceVersion":"6"}}}"#,
        "\n",
        r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"Expired","code":410}}"#,
        "\n",
    );

    /// Reads `n` events and names them.
    async fn names(
        stream: impl Stream<Item = Result<Event<Pod>, kube::Error>>,
        n: usize,
    ) -> Vec<String> {
        let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
        stream
            .take(n)
            .map(|e| match e {
                Ok(Event::Init) => "init".to_string(),
                Ok(Event::InitApply(p)) => format!("list {}", name(&p)),
                Ok(Event::InitDone) => "done".to_string(),
                Ok(Event::Apply(p)) => format!("apply {}", name(&p)),
                Ok(Event::Delete(p)) => format!("delete {}", name(&p)),
                Err(e) => format!("error {e}"),
            })
            .collect()
            .await
    }

    fn kinds(uris: &[String]) -> Vec<&'static str> {
        uris.iter()
            .map(|u| {
                match (
                    u.contains("watch=true"),
                    u.contains("sendInitialEvents=true"),
                ) {
                    (true, true) => "watch-list",
                    (true, false) => "watch",
                    (false, _) => "list",
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn a_server_refusing_watch_lists_gets_lists_from_then_on() {
        let (client, seen) =
            scripted(&[(400, &status(400)), (200, LIST), (200, WATCH), (200, LIST)]);
        let events = names(Informer::of::<Pod>(None).events::<Pod>(client), 5).await;
        assert_eq!(events, ["init", "list a", "done", "apply b", "init"]);
        let seen = seen.lock().unwrap();
        // The watch resumes from the list's version; after 410 the informer lists again
        // instead of retrying the refused watch list.
        assert_eq!(kinds(&seen), ["watch-list", "list", "watch", "list"]);
        assert!(
            seen[1].contains("resourceVersion=0") && seen[1].contains("limit=500"),
            "{}",
            seen[1]
        );
        assert!(seen[2].contains("resourceVersion=5"), "{}", seen[2]);
    }

    #[tokio::test]
    async fn a_forbidden_watch_list_falls_back_to_a_list_for_that_attempt_only() {
        let (client, seen) = scripted(&[(403, &status(403)), (200, LIST), (200, WATCH)]);
        let mut stream = Box::pin(Informer::of::<Pod>(None).events::<Pod>(client));
        let events = names(stream.by_ref(), 4).await;
        assert_eq!(events, ["init", "list a", "done", "apply b"]);
        // After the 410 the informer starts over with a watch list again (which the exhausted
        // script never answers).
        let next = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
        assert!(next.is_err(), "no answer expected");
        assert_eq!(
            kinds(&seen.lock().unwrap()),
            ["watch-list", "list", "watch", "watch-list"]
        );
    }

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
                assert_eq!(b.version(), Some("12"));
                let a = b.metadata.unwrap().annotations.unwrap();
                assert_eq!(a[INITIAL_EVENTS_END], "true");
            }
            _ => panic!("not a BOOKMARK"),
        }
        let gone = br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version","reason":"Expired","code":410}}"#;
        match serde_json::from_slice::<TypedEvent<Pod>>(gone).unwrap() {
            TypedEvent::Error(s) => assert_eq!(s.code, Some(410)),
            _ => panic!("not an ERROR"),
        }
        // The draining informers read only the version, of any kind.
        match serde_json::from_slice::<TypedEvent<Skipped>>(added).unwrap() {
            TypedEvent::Added(o) => assert_eq!(o.version(), Some("7")),
            _ => panic!("not an ADDED event"),
        }
        let list: TypedList<Pod> = serde_json::from_str(
            r#"{"kind":"PodList","metadata":{"resourceVersion":"5"},"items":[{"metadata":{"name":"a"}}]}"#,
        )
        .unwrap();
        assert_eq!(list.metadata.resource_version.as_deref(), Some("5"));
        assert_eq!(list.items.len(), 1);
    }
}
