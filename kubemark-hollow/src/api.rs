//! Typed requests of one resource kind, the subset of `kube::Api` a hollow node sends, on an
//! [`ApiClient`]. The requests themselves are kube-core's (`kube::core::Request`), so paths,
//! parameters and bodies are exactly what `kube::Api` would send.

use std::marker::PhantomData;

use bytes::Bytes;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::Request;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::ApiClient;

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

    /// `POST`.
    pub async fn create(&self, params: &PostParams, object: &K) -> Result<K, kube::Error> {
        let body = serde_json::to_vec(object).map_err(kube::Error::SerdeError)?;
        let request = self
            .request
            .create(params, body)
            .map_err(kube::Error::BuildRequest)?;
        self.client.request(request).await
    }

    /// `PUT` (the object's `resourceVersion` makes it conditional). The answer is kept as the
    /// server sent it: for an object held between updates, one allocation instead of a decoded
    /// tree (a Lease with its managed fields is 2.5 KiB decoded, under 1 KiB as JSON).
    pub async fn replace_json(
        &self,
        name: &str,
        params: &PostParams,
        object: &K,
    ) -> Result<Bytes, kube::Error> {
        let body = serde_json::to_vec(object).map_err(kube::Error::SerdeError)?;
        let request = self
            .request
            .replace(name, params, body)
            .map_err(kube::Error::BuildRequest)?;
        // Copied: the answer is a slice of the connection's read buffer (8 KiB), which it would
        // keep allocated for as long as the caller holds it.
        let answer = self.client.request_bytes(request).await?;
        Ok(Bytes::copy_from_slice(&answer))
    }

    /// `PATCH` of the `status` subresource.
    pub async fn patch_status<P: Serialize + std::fmt::Debug>(
        &self,
        name: &str,
        params: &PatchParams,
        patch: &Patch<P>,
    ) -> Result<K, kube::Error> {
        let request = self
            .request
            .patch_subresource("status", name, params, patch)
            .map_err(kube::Error::BuildRequest)?;
        self.client.request(request).await
    }

    /// `DELETE`; the answer (the object, or a `Status`) is not decoded.
    pub async fn delete(&self, name: &str, params: &DeleteParams) -> Result<(), kube::Error> {
        let request = self
            .request
            .delete(name, params)
            .map_err(kube::Error::BuildRequest)?;
        self.client.request_bytes(request).await.map(drop)
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

    /// The plain `GET` of object `name`, to decode as something other than `K` (a few fields).
    pub fn get_request(&self, name: &str) -> Result<http::Request<Vec<u8>>, kube::Error> {
        self.request
            .get(name, &Default::default())
            .map_err(kube::Error::BuildRequest)
    }
}
