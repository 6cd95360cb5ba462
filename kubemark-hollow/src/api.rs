//! Typed requests of one resource kind, the subset of `kube::Api` a hollow node sends, on an
//! [`ApiClient`]. The requests themselves are kube-core's (`kube::core::Request`), so paths,
//! parameters and bodies are exactly what `kube::Api` would send.
//!
//! As the kubelet, requests ask for protobuf answers wherever the answer is not read (status
//! writes, events, deletes) or is read as protobuf (the `*_protobuf` requests, whose bodies are
//! protobuf too); see [`crate::protobuf`].

use std::marker::PhantomData;

use bytes::Bytes;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::Request;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::ApiClient;
use crate::protobuf;

/// Asks for a protobuf answer (the kubelet's `Accept`).
fn accept_protobuf<B>(mut request: http::Request<B>) -> http::Request<B> {
    request.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static(protobuf::ACCEPT),
    );
    request
}

/// Sends a protobuf body and asks for a protobuf answer.
fn protobuf_exchange<B>(request: http::Request<B>) -> http::Request<B> {
    let mut request = accept_protobuf(request);
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(protobuf::MEDIA_TYPE),
    );
    request
}

/// The object message of a protobuf answer, copied: the answer is a slice of the connection's
/// read buffer (8 KiB), which it would keep allocated for as long as the caller holds it.
fn protobuf_message(answer: Bytes) -> Result<Bytes, kube::Error> {
    let envelope = protobuf::unwrap(answer).map_err(|e| kube::Error::Service(Box::new(e)))?;
    Ok(Bytes::copy_from_slice(&envelope.raw))
}

/// Requests about objects of kind `K`, cluster-wide or in one namespace.
pub struct Api<K> {
    client: ApiClient,
    request: Request,
    kind: PhantomData<fn() -> K>,
}

impl<K> Api<K>
where
    K: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    /// Objects of every namespace, or of a cluster-scoped kind.
    pub fn all(client: ApiClient) -> Self {
        Self::at(client, None)
    }

    /// Objects of namespace `ns`.
    pub fn namespaced(client: ApiClient, ns: &str) -> Self {
        Self::at(client, Some(ns))
    }

    fn at(client: ApiClient, ns: Option<&str>) -> Self {
        Api {
            client,
            request: Request::new(K::url_path(&(), ns)),
            kind: PhantomData,
        }
    }

    /// `GET`; `None` when there is no such object.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>, kube::Error> {
        let request = self
            .request
            .get(name, &Default::default())
            .map_err(kube::Error::BuildRequest)?;
        match self.client.request(request).await {
            Ok(k) => Ok(Some(k)),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST` of a JSON body; the answer is not read.
    pub async fn create(&self, params: &PostParams, object: &K) -> Result<(), kube::Error> {
        let body = serde_json::to_vec(object).map_err(kube::Error::SerdeError)?;
        let request = self
            .request
            .create(params, body)
            .map_err(kube::Error::BuildRequest)?;
        self.send_unread(request).await
    }

    /// `GET` asking for protobuf: the whole answer, `None` when there is no such object.
    async fn get_answer(&self, name: &str) -> Result<Option<Bytes>, kube::Error> {
        let request = self
            .request
            .get(name, &Default::default())
            .map_err(kube::Error::BuildRequest)?;
        match self.client.request_bytes(accept_protobuf(request)).await {
            Ok(answer) => Ok(Some(answer)),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET` in protobuf: the object's message, `None` when there is no such object.
    pub async fn get_protobuf(&self, name: &str) -> Result<Option<Bytes>, kube::Error> {
        match self.get_answer(name).await? {
            Some(answer) => protobuf_message(answer).map(Some),
            None => Ok(None),
        }
    }

    /// `GET` of an object's uid, resource version and whether it is being deleted, read from
    /// its protobuf (or JSON, if that is what the server sends); `None` when there is no such
    /// object.
    pub async fn get_meta(&self, name: &str) -> Result<Option<protobuf::Meta>, kube::Error> {
        #[derive(serde::Deserialize)]
        struct Json {
            metadata: JsonMeta,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct JsonMeta {
            uid: Option<String>,
            resource_version: Option<String>,
            deletion_timestamp: Option<serde::de::IgnoredAny>,
        }
        let Some(answer) = self.get_answer(name).await? else {
            return Ok(None);
        };
        if let Ok(envelope) = protobuf::unwrap(answer.clone()) {
            return protobuf::object_meta(&envelope.raw, &[])
                .map(Some)
                .map_err(|e| kube::Error::Service(Box::new(e)));
        }
        let json: Json = serde_json::from_slice(&answer).map_err(kube::Error::SerdeError)?;
        Ok(Some(protobuf::Meta {
            uid: json.metadata.uid,
            resource_version: json.metadata.resource_version,
            deleting: json.metadata.deletion_timestamp.is_some(),
            annotations: Vec::new(),
        }))
    }

    /// `POST` of an object's protobuf message; the created object's message.
    pub async fn create_protobuf(
        &self,
        params: &PostParams,
        message: &[u8],
    ) -> Result<Bytes, kube::Error> {
        let body = protobuf::wrap(&K::api_version(&()), &K::kind(&()), message);
        let request = self
            .request
            .create(params, body)
            .map_err(kube::Error::BuildRequest)?;
        self.send_protobuf(request).await
    }

    /// `PUT` of an object's protobuf message (its `resourceVersion` makes it conditional); the
    /// updated object's message, for callers to keep between updates (a Lease's is about 300
    /// bytes; decoded with its managed fields it was 2.5 KiB).
    pub async fn replace_protobuf(
        &self,
        name: &str,
        params: &PostParams,
        message: &[u8],
    ) -> Result<Bytes, kube::Error> {
        let body = protobuf::wrap(&K::api_version(&()), &K::kind(&()), message);
        let request = self
            .request
            .replace(name, params, body)
            .map_err(kube::Error::BuildRequest)?;
        self.send_protobuf(request).await
    }

    /// Sends a protobuf body; the answer's object message.
    async fn send_protobuf(&self, request: http::Request<Vec<u8>>) -> Result<Bytes, kube::Error> {
        let answer = self
            .client
            .request_bytes(protobuf_exchange(request))
            .await?;
        protobuf_message(answer)
    }

    /// Sends a request whose answer is not read, asking for it in protobuf.
    async fn send_unread(&self, request: http::Request<Vec<u8>>) -> Result<(), kube::Error> {
        self.client
            .request_bytes(accept_protobuf(request))
            .await
            .map(drop)
    }

    /// `PATCH` of the `status` subresource; the answer is not read.
    pub async fn patch_status<P: Serialize + std::fmt::Debug>(
        &self,
        name: &str,
        params: &PatchParams,
        patch: &Patch<P>,
    ) -> Result<(), kube::Error> {
        let request = self
            .request
            .patch_subresource("status", name, params, patch)
            .map_err(kube::Error::BuildRequest)?;
        self.send_unread(request).await
    }

    /// `DELETE`; the answer (the object, or a `Status`) is not read.
    pub async fn delete(&self, name: &str, params: &DeleteParams) -> Result<(), kube::Error> {
        let request = self
            .request
            .delete(name, params)
            .map_err(kube::Error::BuildRequest)?;
        self.send_unread(request).await
    }

    /// `POST` to subresource `subresource` of object `name` (a service account's `token`).
    pub async fn create_subresource<T: DeserializeOwned>(
        &self,
        subresource: &str,
        name: &str,
        params: &PostParams,
        body: &impl Serialize,
    ) -> Result<T, kube::Error> {
        let body = serde_json::to_vec(body).map_err(kube::Error::SerdeError)?;
        let request = self
            .request
            .create_subresource(subresource, name, params, body)
            .map_err(kube::Error::BuildRequest)?;
        self.client.request(request).await
    }
}
