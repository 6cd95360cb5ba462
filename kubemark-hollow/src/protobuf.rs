//! The Kubernetes protobuf wire format, as far as a hollow node speaks it.
//!
//! Kubelets and kube-proxy talk protobuf to the API server (`--kube-api-content-type`, default
//! `application/vnd.kubernetes.protobuf`): the server decodes their bodies and encodes their
//! answers and watch events in protobuf, which costs it less CPU than JSON. A hollow node that
//! spoke JSON would load the API server more than the nodes it stands for. Where a hollow node
//! reads only a few fields (resource versions, a Lease it sends back with a new renew time, the
//! status code of an error) it reads them from protobuf with this module; objects it needs
//! whole (its pods, its Node) stay JSON.
//!
//! The format (k8s.io/apimachinery `runtime/serializer/protobuf`): a body is the magic
//! `k8s\0` followed by a `runtime.Unknown` message whose `raw` is the object's message. A watch
//! is a sequence of frames, each a 4-byte big-endian length and a bare `metav1.WatchEvent` whose
//! object is a `RawExtension` holding an enveloped object.
//!
//! The messages are `prost` types declared here with only the fields read or written, numbered
//! as in the `generated.proto` files of k8s.io/api and k8s.io/apimachinery v0.36: prost skips
//! the fields a type does not declare, so an object's spec and status cost nothing to pass
//! over. Generated types for every kind (the `k8s-pb` crate, 39k lines of prost types in one
//! crate, self-described as not yet usable) would decode whole objects, the cost this module
//! exists to avoid.
//!
//! Re-encoding a partial message would drop what it does not declare, so a renewal never
//! decodes and re-encodes a Lease: it copies the Lease as the server sent it and appends the
//! fields it changes. Protobuf decoders merge a repeated occurrence of a field into the first
//! (the last scalar wins, messages merge, repeated fields append), and the API server's
//! generated `Unmarshal` does exactly that.

use bytes::Bytes;
use prost::Message;

/// The protobuf media type.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The kubelet's `Accept` header: protobuf, or JSON for kinds that have no protobuf form.
pub(crate) const ACCEPT: &str = "application/vnd.kubernetes.protobuf,application/json";

/// What starts every enveloped body.
const MAGIC: &[u8; 4] = b"k8s\0";

/// A body or frame that is not what the wire format says.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// Not a protobuf message of the expected type.
    #[error("malformed protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    /// Well-formed protobuf that does not say what it must.
    #[error("malformed protobuf: {0}")]
    Malformed(&'static str),
}

/// Whether a response's `Content-Type` is protobuf (with or without `;stream=watch`).
pub(crate) fn is_protobuf(content_type: Option<&http::HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with(MEDIA_TYPE))
}

/// `runtime.TypeMeta` (not `metav1.TypeMeta`: its field numbers differ).
#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
}

/// `runtime.Unknown`, the envelope.
#[derive(Clone, PartialEq, Message)]
struct Envelope {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "bytes", optional, tag = "2")]
    raw: Option<Bytes>,
}

/// `metav1.WatchEvent` with its `runtime.RawExtension`.
#[derive(Clone, PartialEq, Message)]
struct WatchEvent {
    #[prost(string, optional, tag = "1")]
    r#type: Option<String>,
    #[prost(message, optional, tag = "2")]
    object: Option<RawExtension>,
}

#[derive(Clone, PartialEq, Message)]
struct RawExtension {
    #[prost(bytes = "bytes", optional, tag = "1")]
    raw: Option<Bytes>,
}

/// `metav1.ObjectMeta`: what is read of objects a hollow node does not decode.
#[derive(Clone, PartialEq, Message)]
struct ObjectMeta {
    #[prost(string, optional, tag = "5")]
    uid: Option<String>,
    #[prost(string, optional, tag = "6")]
    resource_version: Option<String>,
    /// A `metav1.Time`, of the same wire form as a `MicroTime`.
    #[prost(message, optional, tag = "9")]
    deletion_timestamp: Option<MicroTime>,
    /// Values as bytes: only the wanted ones need to be UTF-8.
    #[prost(btree_map = "string, bytes", tag = "12")]
    annotations: std::collections::BTreeMap<String, Vec<u8>>,
}

/// Any object: its `metadata` is field 1 in every kind.
#[derive(Clone, PartialEq, Message)]
struct Object {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
}

/// Any list: `metav1.ListMeta` and the items' messages.
#[derive(Clone, PartialEq, Message)]
struct List {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ListMeta>,
    #[prost(bytes = "bytes", repeated, tag = "2")]
    items: Vec<Bytes>,
}

#[derive(Clone, PartialEq, Message)]
struct ListMeta {
    #[prost(string, optional, tag = "2")]
    resource_version: Option<String>,
}

/// `metav1.Status`.
#[derive(Clone, PartialEq, Message)]
struct Status {
    #[prost(string, optional, tag = "2")]
    status: Option<String>,
    #[prost(string, optional, tag = "3")]
    message: Option<String>,
    #[prost(string, optional, tag = "4")]
    reason: Option<String>,
    #[prost(int32, optional, tag = "6")]
    code: Option<i32>,
}

/// `coordination.k8s.io/v1` `Lease`: what a renewal reads and writes.
#[derive(Clone, PartialEq, Message)]
struct Lease {
    #[prost(message, optional, tag = "1")]
    metadata: Option<LeaseMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<LeaseSpec>,
}

/// The Lease's `metav1.ObjectMeta`.
#[derive(Clone, PartialEq, Message)]
struct LeaseMeta {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "3")]
    namespace: Option<String>,
    #[prost(message, repeated, tag = "13")]
    owner_references: Vec<OwnerReference>,
}

#[derive(Clone, PartialEq, Message)]
struct OwnerReference {
    #[prost(string, optional, tag = "1")]
    kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    uid: Option<String>,
    #[prost(string, optional, tag = "5")]
    api_version: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct LeaseSpec {
    #[prost(string, optional, tag = "1")]
    holder_identity: Option<String>,
    #[prost(int32, optional, tag = "2")]
    lease_duration_seconds: Option<i32>,
    #[prost(message, optional, tag = "4")]
    renew_time: Option<MicroTime>,
}

/// An enveloped object: its kind and message.
#[derive(Debug)]
pub(crate) struct Unknown {
    pub(crate) kind: String,
    pub(crate) raw: Bytes,
}

/// Opens the envelope of a body (or of a watch event's object); `raw` shares `body`'s memory.
pub(crate) fn unwrap(body: Bytes) -> Result<Unknown, ProtobufError> {
    if !body.starts_with(MAGIC) {
        return Err(ProtobufError::Malformed("no k8s protobuf prefix"));
    }
    let envelope = Envelope::decode(body.slice(MAGIC.len()..))?;
    Ok(Unknown {
        kind: envelope.type_meta.and_then(|t| t.kind).unwrap_or_default(),
        raw: envelope.raw.unwrap_or_default(),
    })
}

/// Puts `raw`, a message of `kind` in `api_version`, into an envelope.
pub(crate) fn wrap(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let envelope = Envelope {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_string()),
            kind: Some(kind.to_string()),
        }),
        raw: Some(Bytes::copy_from_slice(raw)),
    };
    let mut body = Vec::with_capacity(MAGIC.len() + envelope.encoded_len());
    body.extend_from_slice(MAGIC);
    envelope.encode_raw(&mut body);
    body
}

/// The few `ObjectMeta` fields a hollow node reads from objects it does not decode.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) deleting: bool,
    /// The annotations named in the call, with their values.
    pub(crate) annotations: Vec<(String, String)>,
}

/// `metadata` of an object's message, with the values of the annotations in `wanted`.
pub(crate) fn object_meta(object: &[u8], wanted: &[&str]) -> Result<Meta, ProtobufError> {
    let meta = Object::decode(object)?.metadata.unwrap_or_default();
    let mut annotations = Vec::new();
    for (key, value) in meta.annotations {
        if wanted.contains(&key.as_str()) {
            let value = String::from_utf8(value)
                .map_err(|_| ProtobufError::Malformed("annotation is not UTF-8"))?;
            annotations.push((key, value));
        }
    }
    Ok(Meta {
        uid: meta.uid,
        resource_version: meta.resource_version,
        deleting: meta.deletion_timestamp.is_some(),
        annotations,
    })
}

/// A list's `metadata.resourceVersion` and its items' messages (sharing `list`'s memory).
pub(crate) fn list(list: Bytes) -> Result<(Option<String>, Vec<Bytes>), ProtobufError> {
    let list = List::decode(list)?;
    Ok((list.metadata.and_then(|m| m.resource_version), list.items))
}

/// A watch frame: the event's type (`ADDED`, `BOOKMARK`, `ERROR`, ...) and its enveloped
/// object (sharing `frame`'s memory).
pub(crate) fn watch_event(frame: Bytes) -> Result<(String, Bytes), ProtobufError> {
    let event = WatchEvent::decode(frame)?;
    let kind = event
        .r#type
        .ok_or(ProtobufError::Malformed("watch event without a type"))?;
    let object = event.object.and_then(|o| o.raw).unwrap_or_default();
    Ok((kind, object))
}

/// A `Status` message's code, reason and message.
pub(crate) fn status(message: &[u8]) -> Result<(u16, String, String), ProtobufError> {
    let status = Status::decode(message)?;
    let code = u16::try_from(status.code.unwrap_or_default()).unwrap_or_default();
    Ok((
        code,
        status.reason.unwrap_or_default(),
        status.message.unwrap_or_default(),
    ))
}

/// A point in time as `metav1.MicroTime` sends it: seconds and nanoseconds (whole
/// microseconds). Both are always written, so a renewal's time replaces the old one whole
/// when the two are merged.
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub(crate) struct MicroTime {
    #[prost(int64, optional, tag = "1")]
    seconds: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    nanos: Option<i32>,
}

impl MicroTime {
    /// Now, to the microsecond.
    pub(crate) fn now() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        MicroTime::at(now.as_secs() as i64, (now.subsec_micros() * 1000) as i32)
    }

    fn at(seconds: i64, nanos: i32) -> Self {
        MicroTime {
            seconds: Some(seconds),
            nanos: Some(nanos),
        }
    }
}

/// What a renewal changes in a Lease; `None` leaves a field as it is.
#[derive(Debug, Clone)]
pub(crate) struct LeaseRenewal<'a> {
    pub(crate) holder: Option<&'a str>,
    pub(crate) duration_seconds: Option<i32>,
    pub(crate) renew_time: MicroTime,
    /// The node (name, uid) that owns the Lease, set when the Lease has no owner yet (the
    /// kubelet adds it on the first renewal after its Node is known).
    pub(crate) owner: Option<(&'a str, &'a str)>,
}

impl LeaseRenewal<'_> {
    fn spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: self.holder.map(str::to_string),
            lease_duration_seconds: self.duration_seconds,
            renew_time: Some(self.renew_time),
        }
    }

    fn owner_references(&self) -> Vec<OwnerReference> {
        self.owner
            .map(|(node, uid)| OwnerReference {
                kind: Some("Node".into()),
                name: Some(node.into()),
                uid: Some(uid.into()),
                api_version: Some("v1".into()),
            })
            .into_iter()
            .collect()
    }
}

/// `lease` (a `coordination.k8s.io/v1` Lease message, as the API server returned it) with
/// its spec changed by `renewal` and its owner added if it has none: the message is copied
/// byte for byte, `metadata.resourceVersion` included (which makes the update conditional),
/// and the changed fields follow it, overriding the ones before when the server decodes it.
pub(crate) fn renewed_lease(
    lease: &[u8],
    renewal: &LeaseRenewal<'_>,
) -> Result<Vec<u8>, ProtobufError> {
    let current = Lease::decode(lease)?;
    let owned = current
        .metadata
        .is_some_and(|m| !m.owner_references.is_empty());
    let owner_references = if owned {
        Vec::new()
    } else {
        renewal.owner_references()
    };
    let changes = Lease {
        metadata: (!owner_references.is_empty()).then(|| LeaseMeta {
            owner_references,
            ..Default::default()
        }),
        spec: Some(renewal.spec()),
    };
    let mut out = Vec::with_capacity(lease.len() + changes.encoded_len());
    out.extend_from_slice(lease);
    changes.encode_raw(&mut out);
    Ok(out)
}

/// A new node Lease (`kube-node-lease/<node>`), owned by the Node when `renewal.owner` says
/// so, as the kubelet creates it.
pub(crate) fn new_lease(node: &str, renewal: &LeaseRenewal<'_>) -> Vec<u8> {
    Lease {
        metadata: Some(LeaseMeta {
            name: Some(node.to_string()),
            namespace: Some("kube-node-lease".to_string()),
            owner_references: renewal.owner_references(),
        }),
        spec: Some(renewal.spec()),
    }
    .encode_to_vec()
}

/// A protobuf watch frame as the API server writes it (length prefix included): an event of
/// `event_type` whose object is a `kind` at `version`, with `annotations`; for `ERROR`, a Status
/// with `version` as its code.
#[cfg(test)]
pub(crate) fn test_frame(
    event_type: &str,
    kind: &str,
    version: &str,
    annotations: &[(&str, &str)],
) -> Vec<u8> {
    let object = if event_type == "ERROR" {
        Status {
            status: Some("Failure".into()),
            code: Some(version.parse().unwrap()),
            ..Default::default()
        }
        .encode_to_vec()
    } else {
        tests::object("", version, annotations)
    };
    let event = WatchEvent {
        r#type: Some(event_type.into()),
        object: Some(RawExtension {
            raw: Some(wrap("v1", kind, &object).into()),
        }),
    }
    .encode_to_vec();
    let mut frame = (event.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&event);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An object's message: metadata with `uid`, `version` and `annotations`.
    pub(super) fn object(uid: &str, version: &str, annotations: &[(&str, &str)]) -> Vec<u8> {
        Object {
            metadata: Some(ObjectMeta {
                uid: Some(uid.into()),
                resource_version: Some(version.into()),
                deletion_timestamp: None,
                annotations: annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                    .collect(),
            }),
        }
        .encode_to_vec()
    }

    #[test]
    fn truncated_or_malformed_input_is_an_error_not_a_panic() {
        // A length past the end, a varint cut off, an unknown wire type, a bad prefix.
        for bad in [&[0x0a, 0x05, b'a'][..], &[0x08, 0x80], &[0x0f], &[0x0a]] {
            assert!(object_meta(bad, &[]).is_err(), "{bad:?} should not parse");
            assert!(status(bad).is_err(), "{bad:?} should not parse");
            assert!(list(Bytes::copy_from_slice(bad)).is_err());
            assert!(watch_event(Bytes::copy_from_slice(bad)).is_err());
            let mut enveloped = MAGIC.to_vec();
            enveloped.extend_from_slice(bad);
            assert!(unwrap(enveloped.into()).is_err());
        }
        assert!(unwrap(Bytes::from_static(b"{\"kind\":\"Status\"}")).is_err());
        assert!(watch_event(Bytes::new()).is_err(), "an event needs a type");
        assert!(renewed_lease(&[0x12, 0x05], &renewal(None, None)).is_err());
    }

    #[test]
    fn an_enveloped_object_opens_to_its_kind_and_message() {
        let message = object("uid-1", "42", &[]);
        let body = wrap("v1", "Service", &message);
        assert_eq!(&body[..4], b"k8s\0");
        let opened = unwrap(body.into()).unwrap();
        assert_eq!(opened.kind, "Service");
        assert_eq!(opened.raw, message);
        let m = object_meta(&opened.raw, &[]).unwrap();
        assert_eq!(m.resource_version.as_deref(), Some("42"));
        assert_eq!(m.uid.as_deref(), Some("uid-1"));
        assert!(!m.deleting);
    }

    #[test]
    fn only_the_annotations_asked_for_are_read() {
        let message = object(
            "",
            "12",
            &[("k8s.io/initial-events-end", "true"), ("other", "x")],
        );
        let m = object_meta(&message, &["k8s.io/initial-events-end"]).unwrap();
        assert_eq!(
            m.annotations,
            [("k8s.io/initial-events-end".to_string(), "true".to_string())]
        );
        // A value that is not UTF-8 matters only when it is asked for.
        let mut meta = Object::decode(message.as_slice())
            .unwrap()
            .metadata
            .unwrap();
        meta.annotations.insert("other".into(), vec![0xff]);
        let message = Object {
            metadata: Some(meta),
        }
        .encode_to_vec();
        assert!(object_meta(&message, &["k8s.io/initial-events-end"]).is_ok());
        assert!(object_meta(&message, &["other"]).is_err());
    }

    #[test]
    fn watch_frames_lists_and_statuses_decode() {
        let frame = test_frame("ADDED", "Service", "7", &[]);
        assert_eq!(frame[..4], ((frame.len() - 4) as u32).to_be_bytes());
        let (kind, enveloped) = watch_event(Bytes::from(frame).slice(4..)).unwrap();
        assert_eq!(kind, "ADDED");
        assert_eq!(enveloped, wrap("v1", "Service", &object("", "7", &[])));

        let l = List {
            metadata: Some(ListMeta {
                resource_version: Some("99".into()),
            }),
            items: vec![object("a", "5", &[]).into(), object("b", "6", &[]).into()],
        };
        let (version, items) = list(l.encode_to_vec().into()).unwrap();
        assert_eq!(version.as_deref(), Some("99"));
        assert_eq!(items, l.items);

        let s = Status {
            status: Some("Failure".into()),
            message: Some("too old resource version".into()),
            reason: Some("Expired".into()),
            code: Some(410),
        };
        assert_eq!(
            status(&s.encode_to_vec()).unwrap(),
            (410, "Expired".into(), "too old resource version".into())
        );
    }

    fn renewal<'a>(holder: Option<&'a str>, owner: Option<(&'a str, &'a str)>) -> LeaseRenewal<'a> {
        LeaseRenewal {
            holder,
            duration_seconds: holder.map(|_| 40),
            renew_time: MicroTime::at(1_800_000_000, 123_000),
            owner,
        }
    }

    #[test]
    fn a_renewal_changes_the_renew_time_and_keeps_everything_else() {
        let lease = new_lease("node-1", &renewal(Some("node-1"), None));
        let later = renewal(None, None);
        let renewed = renewed_lease(&lease, &later).unwrap();
        assert!(renewed.starts_with(&lease), "the lease is copied as it was");
        // What follows it is the new renew time alone.
        let changes = Lease::decode(&renewed[lease.len()..]).unwrap();
        assert_eq!(changes.metadata, None);
        assert_eq!(
            changes.spec,
            Some(LeaseSpec {
                renew_time: Some(later.renew_time),
                ..Default::default()
            })
        );
        let merged = Lease::decode(renewed.as_slice()).unwrap().spec.unwrap();
        assert_eq!(merged.holder_identity.as_deref(), Some("node-1"));
        assert_eq!(merged.lease_duration_seconds, Some(40));
        assert_eq!(merged.renew_time, Some(later.renew_time));

        // Taking over a Lease another holder left sets holder and duration too, and adds the
        // owner, once.
        let takeover = renewal(Some("node-2"), Some(("node-2", "uid-2")));
        let taken = renewed_lease(&renewed, &takeover).unwrap();
        let merged = Lease::decode(taken.as_slice()).unwrap();
        assert_eq!(
            merged.spec.unwrap().holder_identity.as_deref(),
            Some("node-2")
        );
        let owners = merged.metadata.unwrap().owner_references;
        assert_eq!(owners, takeover.owner_references());
        let again = renewed_lease(&taken, &takeover).unwrap();
        let owners = Lease::decode(again.as_slice())
            .unwrap()
            .metadata
            .unwrap()
            .owner_references;
        assert_eq!(owners.len(), 1);
    }

    #[test]
    fn a_renew_time_replaces_the_old_one_whole() {
        // A renewal on a whole second: its zero nanoseconds must not leave the old ones.
        let lease = new_lease("n", &renewal(Some("n"), None));
        let mut on_the_second = renewal(None, None);
        on_the_second.renew_time = MicroTime::at(1_900_000_000, 0);
        let renewed = renewed_lease(&lease, &on_the_second).unwrap();
        let spec = Lease::decode(renewed.as_slice()).unwrap().spec.unwrap();
        assert_eq!(spec.renew_time, Some(MicroTime::at(1_900_000_000, 0)));
    }

    /// Bodies kube-apiserver v1.36.3 sent (see testdata/protobuf/README.md).
    mod apiserver {
        use bytes::Bytes;

        pub(super) const LEASE: Bytes =
            Bytes::from_static(include_bytes!("../testdata/protobuf/lease.pb"));
        pub(super) const LEASE_RENEWED: Bytes =
            Bytes::from_static(include_bytes!("../testdata/protobuf/lease-renewed.pb"));
        pub(super) const LEASE_DELETING: Bytes =
            Bytes::from_static(include_bytes!("../testdata/protobuf/lease-deleting.pb"));
        pub(super) const LIST: Bytes =
            Bytes::from_static(include_bytes!("../testdata/protobuf/list.pb"));
        pub(super) const STATUS_404: Bytes =
            Bytes::from_static(include_bytes!("../testdata/protobuf/status-404.pb"));
        pub(super) const WATCH: Bytes =
            Bytes::from_static(include_bytes!("../testdata/protobuf/watch.pb"));
        pub(super) const UID: &str = "fbc80f4f-0b8f-4aa3-b1c4-da46d0424485";
    }

    #[test]
    fn what_the_api_server_sends_decodes() {
        let lease = unwrap(apiserver::LEASE).unwrap();
        assert_eq!(lease.kind, "Lease");
        assert_eq!(
            object_meta(&lease.raw, &["note"]).unwrap(),
            Meta {
                uid: Some(apiserver::UID.into()),
                resource_version: Some("220".into()),
                deleting: false,
                annotations: vec![("note".into(), "kept".into())],
            }
        );
        let deleting = unwrap(apiserver::LEASE_DELETING).unwrap().raw;
        assert!(object_meta(&deleting, &[]).unwrap().deleting);

        let status_404 = unwrap(apiserver::STATUS_404).unwrap();
        assert_eq!(status_404.kind, "Status");
        assert_eq!(
            status(&status_404.raw).unwrap(),
            (
                404,
                "NotFound".into(),
                r#"leases.coordination.k8s.io "missing" not found"#.into()
            )
        );

        let (version, items) = list(unwrap(apiserver::LIST).unwrap().raw).unwrap();
        assert_eq!(version.as_deref(), Some("220"));
        assert_eq!(items, [lease.raw]);

        // A watch list: the Lease, then the bookmark that ends the initial events.
        let mut stream = apiserver::WATCH;
        let mut events = Vec::new();
        while !stream.is_empty() {
            let len = u32::from_be_bytes(stream[..4].try_into().unwrap()) as usize;
            let frame = stream.slice(4..4 + len);
            stream = stream.slice(4 + len..);
            let (kind, object) = watch_event(frame).unwrap();
            let object = unwrap(object).unwrap();
            let meta = object_meta(&object.raw, &["k8s.io/initial-events-end"]).unwrap();
            events.push((kind, object.kind, meta.resource_version, meta.annotations));
        }
        let end = vec![("k8s.io/initial-events-end".into(), "true".into())];
        assert_eq!(
            events,
            [
                ("ADDED".into(), "Lease".into(), Some("220".into()), vec![]),
                ("BOOKMARK".into(), "Lease".into(), Some("222".into()), end),
            ]
        );
    }

    /// Every field of a v1.36 Lease, to compare two of them whole.
    #[derive(Clone, PartialEq, Message)]
    struct WholeLease {
        #[prost(message, optional, tag = "1")]
        metadata: Option<WholeMeta>,
        #[prost(message, optional, tag = "2")]
        spec: Option<WholeSpec>,
    }

    #[derive(Clone, PartialEq, Message)]
    struct WholeMeta {
        #[prost(string, optional, tag = "1")]
        name: Option<String>,
        #[prost(string, optional, tag = "2")]
        generate_name: Option<String>,
        #[prost(string, optional, tag = "3")]
        namespace: Option<String>,
        #[prost(string, optional, tag = "4")]
        self_link: Option<String>,
        #[prost(string, optional, tag = "5")]
        uid: Option<String>,
        #[prost(string, optional, tag = "6")]
        resource_version: Option<String>,
        #[prost(int64, optional, tag = "7")]
        generation: Option<i64>,
        #[prost(message, optional, tag = "8")]
        creation_timestamp: Option<MicroTime>,
        #[prost(message, optional, tag = "9")]
        deletion_timestamp: Option<MicroTime>,
        #[prost(int64, optional, tag = "10")]
        deletion_grace_period_seconds: Option<i64>,
        #[prost(btree_map = "string, string", tag = "11")]
        labels: std::collections::BTreeMap<String, String>,
        #[prost(btree_map = "string, string", tag = "12")]
        annotations: std::collections::BTreeMap<String, String>,
        #[prost(bytes = "vec", repeated, tag = "13")]
        owner_references: Vec<Vec<u8>>,
        #[prost(string, repeated, tag = "14")]
        finalizers: Vec<String>,
        #[prost(bytes = "vec", repeated, tag = "17")]
        managed_fields: Vec<Vec<u8>>,
    }

    #[derive(Clone, PartialEq, Message)]
    struct WholeSpec {
        #[prost(string, optional, tag = "1")]
        holder_identity: Option<String>,
        #[prost(int32, optional, tag = "2")]
        lease_duration_seconds: Option<i32>,
        #[prost(message, optional, tag = "3")]
        acquire_time: Option<MicroTime>,
        #[prost(message, optional, tag = "4")]
        renew_time: Option<MicroTime>,
        #[prost(int32, optional, tag = "5")]
        lease_transitions: Option<i32>,
        #[prost(string, optional, tag = "6")]
        strategy: Option<String>,
        #[prost(string, optional, tag = "7")]
        preferred_holder: Option<String>,
    }

    /// The Lease in `message`, checked to hold nothing `WholeLease` does not.
    fn whole_lease(message: &[u8]) -> WholeLease {
        let lease = WholeLease::decode(message).unwrap();
        assert_eq!(lease.encoded_len(), message.len(), "a field not declared");
        lease
    }

    #[test]
    fn a_real_lease_is_renewed_with_every_field_kept() {
        let lease = unwrap(apiserver::LEASE).unwrap().raw;
        let before = whole_lease(&lease);
        let spec = before.spec.clone().unwrap();
        // The fixture has every field the server keeps (without the CoordinatedLeaderElection
        // gate it drops `strategy` and `preferredHolder`).
        assert!(spec.acquire_time.is_some() && spec.lease_transitions == Some(3));
        let meta = before.metadata.clone().unwrap();
        assert!(!meta.labels.is_empty() && !meta.annotations.is_empty());
        assert!(!meta.finalizers.is_empty() && !meta.managed_fields.is_empty());
        assert_eq!(meta.owner_references.len(), 1);

        // It has an owner already (its namespace): the node is not added.
        let renewal = LeaseRenewal {
            holder: None,
            duration_seconds: None,
            renew_time: MicroTime::at(1_800_000_000, 654_321_000),
            owner: Some(("node", "uid")),
        };
        let renewed = renewed_lease(&lease, &renewal).unwrap();
        assert!(renewed.starts_with(&lease));
        let mut expected = before.clone();
        expected.spec.as_mut().unwrap().renew_time = Some(renewal.renew_time);
        assert_eq!(WholeLease::decode(renewed.as_slice()).unwrap(), expected);

        // The API server's answer to that renewal: the same Lease but for the server's own
        // bookkeeping (the resource version, the time in the managed fields).
        let mut answer = whole_lease(&unwrap(apiserver::LEASE_RENEWED).unwrap().raw);
        let meta = answer.metadata.as_mut().unwrap();
        assert_ne!(
            meta.resource_version,
            before.metadata.as_ref().unwrap().resource_version
        );
        let kept = expected.metadata.as_ref().unwrap();
        meta.resource_version.clone_from(&kept.resource_version);
        assert_eq!(meta.managed_fields.len(), 1);
        meta.managed_fields.clone_from(&kept.managed_fields);
        assert_eq!(answer, expected);
    }

    #[test]
    fn a_new_lease_is_owned_by_its_node() {
        let mut r = renewal(Some("n"), Some(("n", "uid-9")));
        let lease = Lease::decode(new_lease("n", &r).as_slice()).unwrap();
        let meta = lease.metadata.unwrap();
        assert_eq!(meta.name.as_deref(), Some("n"));
        assert_eq!(meta.namespace.as_deref(), Some("kube-node-lease"));
        let [owner] = meta.owner_references.as_slice() else {
            panic!("one owner expected: {:?}", meta.owner_references);
        };
        assert_eq!(owner.kind.as_deref(), Some("Node"));
        assert_eq!(owner.name.as_deref(), Some("n"));
        assert_eq!(owner.uid.as_deref(), Some("uid-9"));
        assert_eq!(owner.api_version.as_deref(), Some("v1"));
        assert_eq!(
            lease.spec,
            Some(LeaseSpec {
                holder_identity: Some("n".into()),
                lease_duration_seconds: Some(40),
                renew_time: Some(r.renew_time),
            })
        );
        r.owner = None;
        let lease = Lease::decode(new_lease("n", &r).as_slice()).unwrap();
        assert!(lease.metadata.unwrap().owner_references.is_empty());
    }
}
