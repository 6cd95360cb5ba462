//! The Kubernetes protobuf wire format, as far as a hollow node speaks it.
//!
//! Kubelets and kube-proxy talk protobuf to the API server (`--kube-api-content-type`, default
//! `application/vnd.kubernetes.protobuf`): the server decodes their bodies and encodes their
//! answers and watch events in protobuf, which costs it less CPU than JSON. A hollow node that
//! spoke JSON would load the API server more than the nodes it stands for. Where a hollow node
//! reads only a few fields (resource versions, a Lease it sends back with a new renew time, the
//! status code of an error) it reads them straight from the wire with this module, without a
//! schema; objects it needs whole (its pods, its Node) stay JSON.
//!
//! The format (k8s.io/apimachinery `runtime/serializer/protobuf`): a body is the magic
//! `k8s\0` followed by a `runtime.Unknown` message (`typeMeta` = 1, `raw` = 2) whose `raw` is the
//! object's message. A watch is a sequence of frames, each a 4-byte big-endian length and a bare
//! `metav1.WatchEvent` (`type` = 1, `object` = 2, a `RawExtension` whose `raw` = 1 is an
//! enveloped object). Field numbers are those of the `generated.proto` files of k8s.io/api and
//! k8s.io/apimachinery.

/// The protobuf media type.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The kubelet's `Accept` header: protobuf, or JSON for kinds that have no protobuf form.
pub(crate) const ACCEPT: &str = "application/vnd.kubernetes.protobuf,application/json";

/// What starts every enveloped body.
const MAGIC: &[u8; 4] = b"k8s\0";

/// A body or frame that is not what the wire format says.
#[derive(Debug, thiserror::Error)]
#[error("malformed protobuf: {0}")]
pub struct ProtobufError(pub(crate) &'static str);

/// Whether a response's `Content-Type` is protobuf (with or without `;stream=watch`).
pub(crate) fn is_protobuf(content_type: Option<&http::HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with(MEDIA_TYPE))
}

/// One field of a message: its number, its value and the bytes of the whole field (tag
/// included), to copy it as it is.
#[derive(Debug, Clone, Copy)]
struct Field<'a> {
    number: u32,
    value: Value<'a>,
    record: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// Fixed 32- and 64-bit values; nothing read here has one.
    Fixed,
}

fn varint(buf: &mut &[u8]) -> Result<u64, ProtobufError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or(ProtobufError("truncated varint"))?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ProtobufError("varint longer than 10 bytes"))
}

/// The fields of a message, in wire order.
fn fields(message: &[u8]) -> impl Iterator<Item = Result<Field<'_>, ProtobufError>> {
    let mut rest = message;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let start = rest;
        let field = (|| {
            let tag = varint(&mut rest)?;
            let number = u32::try_from(tag >> 3).map_err(|_| ProtobufError("field number"))?;
            let value = match tag & 7 {
                0 => Value::Varint(varint(&mut rest)?),
                2 => {
                    let len =
                        usize::try_from(varint(&mut rest)?).map_err(|_| ProtobufError("length"))?;
                    if len > rest.len() {
                        return Err(ProtobufError("field longer than its message"));
                    }
                    let (bytes, tail) = rest.split_at(len);
                    rest = tail;
                    Value::Bytes(bytes)
                }
                1 | 5 => {
                    let len = if tag & 7 == 1 { 8 } else { 4 };
                    if len > rest.len() {
                        return Err(ProtobufError("truncated fixed-width field"));
                    }
                    rest = &rest[len..];
                    Value::Fixed
                }
                _ => return Err(ProtobufError("unknown wire type")),
            };
            let used = start.len() - rest.len();
            Ok(Field {
                number,
                value,
                record: &start[..used],
            })
        })();
        if field.is_err() {
            // One error ends the iteration.
            rest = &[];
        }
        Some(field)
    })
}

/// The last occurrence of field `number` that `pick` accepts (a later one overrides, as in
/// protobuf's own merging of a non-repeated field).
fn last_field<'a, T>(
    message: &'a [u8],
    number: u32,
    pick: impl Fn(Value<'a>) -> Option<T>,
) -> Result<Option<T>, ProtobufError> {
    let mut found = None;
    for field in fields(message) {
        let field = field?;
        if field.number == number {
            found = pick(field.value).or(found);
        }
    }
    Ok(found)
}

/// The last occurrence of length-delimited field `number`.
fn bytes_field(message: &[u8], number: u32) -> Result<Option<&[u8]>, ProtobufError> {
    last_field(message, number, |v| match v {
        Value::Bytes(b) => Some(b),
        _ => None,
    })
}

fn string_field(message: &[u8], number: u32) -> Result<Option<&str>, ProtobufError> {
    bytes_field(message, number)?
        .map(|b| std::str::from_utf8(b).map_err(|_| ProtobufError("string is not UTF-8")))
        .transpose()
}

/// The last occurrence of varint field `number`.
fn varint_field(message: &[u8], number: u32) -> Result<Option<u64>, ProtobufError> {
    last_field(message, number, |v| match v {
        Value::Varint(v) => Some(v),
        _ => None,
    })
}

/// Appends fields to a message.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    fn tag(&mut self, number: u32, wire_type: u8) {
        self.varint(u64::from(number) << 3 | u64::from(wire_type));
    }

    fn varint_field(&mut self, number: u32, value: u64) {
        self.tag(number, 0);
        self.varint(value);
    }

    fn bytes_field(&mut self, number: u32, bytes: &[u8]) {
        self.tag(number, 2);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn message(&mut self, number: u32, build: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::default();
        build(&mut inner);
        self.bytes_field(number, &inner.0);
    }
}

/// An enveloped object: its `apiVersion`, `kind` and message.
#[derive(Debug)]
pub(crate) struct Unknown<'a> {
    pub(crate) kind: &'a str,
    pub(crate) raw: &'a [u8],
}

/// Opens the envelope of a body (or of a watch event's object).
pub(crate) fn unwrap(body: &[u8]) -> Result<Unknown<'_>, ProtobufError> {
    let message = body
        .strip_prefix(MAGIC)
        .ok_or(ProtobufError("no k8s protobuf prefix"))?;
    let kind = match bytes_field(message, 1)? {
        Some(type_meta) => string_field(type_meta, 2)?.unwrap_or_default(),
        None => "",
    };
    let raw = bytes_field(message, 2)?.unwrap_or_default();
    Ok(Unknown { kind, raw })
}

/// Puts `raw`, a message of `kind` in `api_version`, into an envelope.
pub(crate) fn wrap(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut w = Writer(MAGIC.to_vec());
    w.message(1, |t| {
        t.bytes_field(1, api_version.as_bytes());
        t.bytes_field(2, kind.as_bytes());
    });
    w.bytes_field(2, raw);
    w.0
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

/// `metadata` (field 1 of every object) of an object's message, with the values of the
/// annotations in `wanted`.
pub(crate) fn object_meta(object: &[u8], wanted: &[&str]) -> Result<Meta, ProtobufError> {
    let Some(meta) = bytes_field(object, 1)? else {
        return Ok(Meta::default());
    };
    let mut out = Meta::default();
    for field in fields(meta) {
        let field = field?;
        let Value::Bytes(b) = field.value else {
            continue;
        };
        let text = || {
            std::str::from_utf8(b)
                .map(str::to_string)
                .map_err(|_| ProtobufError("string is not UTF-8"))
        };
        match field.number {
            5 => out.uid = Some(text()?),
            6 => out.resource_version = Some(text()?),
            9 => out.deleting = true,
            12 => {
                let key = string_field(b, 1)?.unwrap_or_default();
                if wanted.contains(&key) {
                    let value = string_field(b, 2)?.unwrap_or_default();
                    out.annotations.push((key.to_string(), value.to_string()));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A list's `metadata.resourceVersion` and its items' messages.
pub(crate) fn list(list: &[u8]) -> Result<(Option<&str>, Vec<&[u8]>), ProtobufError> {
    let version = match bytes_field(list, 1)? {
        Some(meta) => string_field(meta, 2)?,
        None => None,
    };
    let mut items = Vec::new();
    for field in fields(list) {
        let field = field?;
        if let (2, Value::Bytes(item)) = (field.number, field.value) {
            items.push(item);
        }
    }
    Ok((version, items))
}

/// A watch frame: the event's type (`ADDED`, `BOOKMARK`, `ERROR`, ...) and its enveloped object.
pub(crate) fn watch_event(frame: &[u8]) -> Result<(&str, &[u8]), ProtobufError> {
    let kind = string_field(frame, 1)?.ok_or(ProtobufError("watch event without a type"))?;
    let object = match bytes_field(frame, 2)? {
        Some(raw_extension) => bytes_field(raw_extension, 1)?.unwrap_or_default(),
        None => &[],
    };
    Ok((kind, object))
}

/// A `Status` message's code, reason and message.
pub(crate) fn status(message: &[u8]) -> Result<(u16, String, String), ProtobufError> {
    let code = varint_field(message, 6)?.unwrap_or_default() as u16;
    let reason = string_field(message, 4)?.unwrap_or_default().to_string();
    let text = string_field(message, 3)?.unwrap_or_default().to_string();
    Ok((code, reason, text))
}

/// A point in time as `metav1.MicroTime` sends it: seconds and nanoseconds (whole microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MicroTime {
    pub(crate) seconds: i64,
    pub(crate) nanos: i32,
}

impl MicroTime {
    /// Now, to the microsecond.
    pub(crate) fn now() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        MicroTime {
            seconds: now.as_secs() as i64,
            nanos: (now.subsec_micros() * 1000) as i32,
        }
    }

    fn write(self, w: &mut Writer) {
        if self.seconds != 0 {
            w.varint_field(1, self.seconds as u64);
        }
        if self.nanos != 0 {
            // int32 is sign-extended to 64 bits on the wire.
            w.varint_field(2, i64::from(self.nanos) as u64);
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

fn write_node_owner(w: &mut Writer, node: &str, uid: &str) {
    w.message(13, |o| {
        o.bytes_field(1, b"Node");
        o.bytes_field(3, node.as_bytes());
        o.bytes_field(4, uid.as_bytes());
        o.bytes_field(5, b"v1");
    });
}

/// `metadata` with the owner reference added when it has none.
fn owned_meta(meta: &[u8], node: &str, uid: &str) -> Result<Option<Vec<u8>>, ProtobufError> {
    for field in fields(meta) {
        if field?.number == 13 {
            return Ok(None);
        }
    }
    let mut w = Writer(meta.to_vec());
    write_node_owner(&mut w, node, uid);
    Ok(Some(w.0))
}

impl LeaseRenewal<'_> {
    fn write_spec_field(&self, number: u32, w: &mut Writer) -> bool {
        match number {
            1 => self
                .holder
                .map(|h| w.bytes_field(1, h.as_bytes()))
                .is_some(),
            2 => self
                .duration_seconds
                .map(|d| w.varint_field(2, i64::from(d) as u64))
                .is_some(),
            4 => {
                w.message(4, |t| self.renew_time.write(t));
                true
            }
            _ => false,
        }
    }
}

/// `lease` (a `coordination.k8s.io/v1` Lease message, as the API server returned it) with
/// its spec changed by `renewal`; everything else, `metadata.resourceVersion` included (which
/// makes the update conditional), is copied byte for byte.
pub(crate) fn renewed_lease(
    lease: &[u8],
    renewal: &LeaseRenewal<'_>,
) -> Result<Vec<u8>, ProtobufError> {
    let mut out = Writer::default();
    let mut spec_seen = false;
    for field in fields(lease) {
        let field = field?;
        match (field.number, field.value) {
            (1, Value::Bytes(meta)) if renewal.owner.is_some() => {
                let (node, uid) = renewal.owner.unwrap_or_default();
                match owned_meta(meta, node, uid)? {
                    Some(meta) => out.bytes_field(1, &meta),
                    None => out.0.extend_from_slice(field.record),
                }
            }
            (2, Value::Bytes(spec)) if !spec_seen => {
                spec_seen = true;
                out.bytes_field(2, &renewed_spec(spec, renewal)?);
            }
            // A repeated spec would be merged into the first by the decoder: drop it.
            (2, _) => {}
            _ => out.0.extend_from_slice(field.record),
        }
    }
    if !spec_seen {
        out.bytes_field(2, &renewed_spec(&[], renewal)?);
    }
    Ok(out.0)
}

fn renewed_spec(spec: &[u8], renewal: &LeaseRenewal<'_>) -> Result<Vec<u8>, ProtobufError> {
    let mut out = Writer::default();
    let mut written = [false; 5];
    for field in fields(spec) {
        let field = field?;
        let n = field.number;
        let replaced = matches!(n, 1 | 2 | 4) && {
            if written[n as usize] {
                true
            } else {
                written[n as usize] = true;
                renewal.write_spec_field(n, &mut out)
            }
        };
        if !replaced {
            out.0.extend_from_slice(field.record);
        }
    }
    for n in [1, 2, 4] {
        if !written[n as usize] {
            renewal.write_spec_field(n, &mut out);
        }
    }
    Ok(out.0)
}

/// A new node Lease (`kube-node-lease/<node>`), owned by the Node when `renewal.owner` says
/// so, as the kubelet creates it.
pub(crate) fn new_lease(node: &str, renewal: &LeaseRenewal<'_>) -> Vec<u8> {
    let mut w = Writer::default();
    w.message(1, |m| {
        m.bytes_field(1, node.as_bytes());
        m.bytes_field(3, b"kube-node-lease");
        if let Some((node, uid)) = renewal.owner {
            write_node_owner(m, node, uid);
        }
    });
    w.message(2, |s| {
        for n in [1, 2, 4] {
            renewal.write_spec_field(n, s);
        }
    });
    w.0
}

/// A Lease's holder, duration and renew time.
#[cfg(test)]
type LeaseSpec<'a> = (Option<&'a str>, Option<u64>, Option<MicroTime>);

/// The `Lease` message's holder, duration and renew time.
#[cfg(test)]
fn lease_spec(lease: &[u8]) -> Result<LeaseSpec<'_>, ProtobufError> {
    let spec = bytes_field(lease, 2)?.unwrap_or_default();
    let renew = match bytes_field(spec, 4)? {
        Some(t) => Some(MicroTime {
            seconds: varint_field(t, 1)?.unwrap_or_default() as i64,
            nanos: varint_field(t, 2)?.unwrap_or_default() as i32,
        }),
        None => None,
    };
    Ok((string_field(spec, 1)?, varint_field(spec, 2)?, renew))
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
    let mut object = Writer::default();
    if event_type == "ERROR" {
        object.bytes_field(2, b"Failure");
        object.varint_field(6, version.parse().unwrap());
    } else {
        object.message(1, |m| {
            m.bytes_field(6, version.as_bytes());
            for (k, v) in annotations {
                m.message(12, |e| {
                    e.bytes_field(1, k.as_bytes());
                    e.bytes_field(2, v.as_bytes());
                });
            }
        });
    }
    let enveloped = wrap("v1", kind, &object.0);
    let mut event = Writer::default();
    event.bytes_field(1, event_type.as_bytes());
    event.message(2, |r| r.bytes_field(1, &enveloped));
    let mut frame = (event.0.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&event.0);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, version: &str, annotations: &[(&str, &str)]) -> Vec<u8> {
        let mut w = Writer::default();
        w.message(1, |m| {
            m.bytes_field(1, name.as_bytes());
            m.bytes_field(5, b"uid-1");
            m.bytes_field(6, version.as_bytes());
            for (k, v) in annotations {
                m.message(12, |e| {
                    e.bytes_field(1, k.as_bytes());
                    e.bytes_field(2, v.as_bytes());
                });
            }
        });
        w.0
    }

    #[test]
    fn varints_round_trip_at_their_edges() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut w = Writer::default();
            w.varint(v);
            let mut slice = w.0.as_slice();
            assert_eq!(varint(&mut slice).unwrap(), v);
            assert!(slice.is_empty());
        }
        // 300 is the protobuf documentation's example.
        let mut w = Writer::default();
        w.varint(300);
        assert_eq!(w.0, [0xac, 0x02]);
    }

    #[test]
    fn truncated_or_malformed_input_is_an_error_not_a_panic() {
        // A length past the end, a varint cut off, an unknown wire type, a bad prefix.
        for bad in [&[0x0a, 0x05, b'a'][..], &[0x08, 0x80], &[0x0f], &[0x0a]] {
            assert!(fields(bad).any(|f| f.is_err()), "{bad:?} should not parse");
        }
        assert!(unwrap(b"{\"kind\":\"Status\"}").is_err());
        assert!(watch_event(&[]).is_err());
    }

    #[test]
    fn an_enveloped_object_opens_to_its_kind_and_message() {
        let object = meta("a", "42", &[]);
        let body = wrap("v1", "Service", &object);
        assert_eq!(&body[..4], b"k8s\0");
        let opened = unwrap(&body).unwrap();
        assert_eq!(opened.kind, "Service");
        assert_eq!(opened.raw, object.as_slice());
        let m = object_meta(opened.raw, &[]).unwrap();
        assert_eq!(m.resource_version.as_deref(), Some("42"));
        assert_eq!(m.uid.as_deref(), Some("uid-1"));
        assert!(!m.deleting);
    }

    #[test]
    fn only_the_annotations_asked_for_are_read() {
        let object = meta(
            "",
            "12",
            &[("k8s.io/initial-events-end", "true"), ("other", "x")],
        );
        let m = object_meta(&object, &["k8s.io/initial-events-end"]).unwrap();
        assert_eq!(
            m.annotations,
            [("k8s.io/initial-events-end".to_string(), "true".to_string())]
        );
    }

    #[test]
    fn watch_frames_lists_and_statuses_decode() {
        let object = wrap("v1", "Service", &meta("s", "7", &[]));
        let mut frame = Writer::default();
        frame.bytes_field(1, b"ADDED");
        frame.message(2, |r| r.bytes_field(1, &object));
        let (kind, enveloped) = watch_event(&frame.0).unwrap();
        assert_eq!(kind, "ADDED");
        assert_eq!(enveloped, object.as_slice());

        let mut l = Writer::default();
        l.message(1, |m| m.bytes_field(2, b"99"));
        l.bytes_field(2, &meta("a", "5", &[]));
        l.bytes_field(2, &meta("b", "6", &[]));
        let (version, items) = list(&l.0).unwrap();
        assert_eq!(version, Some("99"));
        assert_eq!(items.len(), 2);

        let mut s = Writer::default();
        s.bytes_field(2, b"Failure");
        s.bytes_field(3, b"too old resource version");
        s.bytes_field(4, b"Expired");
        s.varint_field(6, 410);
        assert_eq!(
            status(&s.0).unwrap(),
            (410, "Expired".into(), "too old resource version".into())
        );
    }

    #[test]
    fn a_renewal_changes_the_renew_time_and_keeps_everything_else() {
        // metadata, then a spec with holder, duration, acquire time, renew time, transitions.
        let mut lease = Writer(meta("node-1", "1234", &[]));
        lease.message(2, |s| {
            s.bytes_field(1, b"node-1");
            s.varint_field(2, 40);
            s.message(3, |t| t.varint_field(1, 100));
            s.message(4, |t| t.varint_field(1, 200));
            s.varint_field(5, 3);
        });
        let later = MicroTime {
            seconds: 1_800_000_000,
            nanos: 123_000,
        };
        let renewal = LeaseRenewal {
            holder: None,
            duration_seconds: None,
            renew_time: later,
            owner: None,
        };
        let renewed = renewed_lease(&lease.0, &renewal).unwrap();
        assert_eq!(
            lease_spec(&renewed).unwrap(),
            (Some("node-1"), Some(40), Some(later))
        );
        // The metadata (and with it the resource version the update is conditional on) is
        // copied as it was.
        assert_eq!(
            bytes_field(&renewed, 1).unwrap(),
            bytes_field(&lease.0, 1).unwrap()
        );
        let spec = bytes_field(&renewed, 2).unwrap().unwrap();
        assert_eq!(
            bytes_field(spec, 3).unwrap(),
            Some(&[0x08, 100][..]),
            "acquire time kept"
        );
        assert_eq!(varint_field(spec, 5).unwrap(), Some(3), "transitions kept");
        // Taking over a Lease another holder left sets holder and duration too.
        let takeover = LeaseRenewal {
            holder: Some("node-2"),
            duration_seconds: Some(40),
            renew_time: later,
            owner: Some(("node-2", "uid-2")),
        };
        let taken = renewed_lease(&renewed, &takeover).unwrap();
        assert_eq!(lease_spec(&taken).unwrap().0, Some("node-2"));
        // The owner is added once, to the metadata it had.
        let meta = bytes_field(&taken, 1).unwrap().unwrap();
        assert_eq!(string_field(meta, 6).unwrap(), Some("1234"));
        let owner = bytes_field(meta, 13).unwrap().unwrap();
        assert_eq!(string_field(owner, 4).unwrap(), Some("uid-2"));
        let again = renewed_lease(&taken, &takeover).unwrap();
        let meta = bytes_field(&again, 1).unwrap().unwrap();
        assert_eq!(
            fields(meta)
                .filter(|f| f.as_ref().unwrap().number == 13)
                .count(),
            1
        );
        // Renewing twice gives one renew time, not two.
        let twice = renewed_lease(&taken, &renewal).unwrap();
        let spec = bytes_field(&twice, 2).unwrap().unwrap();
        assert_eq!(
            fields(spec)
                .filter(|f| f.as_ref().unwrap().number == 4)
                .count(),
            1
        );
    }

    #[test]
    fn a_new_lease_is_owned_by_its_node() {
        let mut renewal = LeaseRenewal {
            holder: Some("n"),
            duration_seconds: Some(40),
            renew_time: MicroTime {
                seconds: 5,
                nanos: 0,
            },
            owner: Some(("n", "uid-9")),
        };
        let lease = new_lease("n", &renewal);
        let m = bytes_field(&lease, 1).unwrap().unwrap();
        assert_eq!(string_field(m, 1).unwrap(), Some("n"));
        assert_eq!(string_field(m, 3).unwrap(), Some("kube-node-lease"));
        let owner = bytes_field(m, 13).unwrap().unwrap();
        assert_eq!(string_field(owner, 1).unwrap(), Some("Node"));
        assert_eq!(string_field(owner, 4).unwrap(), Some("uid-9"));
        assert_eq!(string_field(owner, 5).unwrap(), Some("v1"));
        assert_eq!(
            lease_spec(&lease).unwrap(),
            (
                Some("n"),
                Some(40),
                Some(MicroTime {
                    seconds: 5,
                    nanos: 0
                })
            )
        );
        renewal.owner = None;
        assert!(
            bytes_field(&new_lease("n", &renewal), 1)
                .unwrap()
                .is_some_and(|m| bytes_field(m, 13).unwrap().is_none())
        );
    }
}
