//! A fake Google Compute Engine (plus the slice of Artifact Registry and OAuth the gce provider
//! uses) on a loopback port.
//!
//! Google ships no Compute emulator, so this one speaks the documented REST wire format for exactly
//! the endpoints kubemark calls: `compute/v1` instances, disks, regional addresses and firewalls
//! with zone/region/global operations that are `RUNNING` when returned and `DONE` when next
//! polled; `v1` Artifact Registry repositories with long-running operations; and an OAuth token
//! endpoint for `authorized_user` credentials. Ids are decimal strings of a `uint64`, lists page
//! with `maxResults`/`pageToken`/`nextPageToken`, `filter` understands `labels.KEY = "VALUE"`
//! terms joined by `AND`, and errors carry Google's error body (404 `notFound`, 409
//! `alreadyExists`, 400 `resourceInUseByAnotherResource`, 429 `rateLimitExceeded`, 401). Every
//! request must carry the bearer token the token endpoint issued. Faults are injected with
//! [`FakeGce::inject`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

/// The project, zone and region the fake serves.
pub const PROJECT: &str = "kubemark-test";
/// The only zone.
pub const ZONE: &str = "us-central1-b";
/// Its region.
pub const REGION: &str = "us-central1";

/// A fault to inject: the next `times` requests whose method is `method` and whose path contains
/// `path_contains` fail.
#[derive(Debug, Clone)]
pub struct Fault {
    /// `GET`, `POST`, `DELETE`.
    pub method: &'static str,
    /// A part of the request path (`/instances`, `/disks/kubemark-c-master-disk`).
    pub path_contains: String,
    /// How many requests fail.
    pub times: usize,
    /// What they answer.
    pub failure: Failure,
}

/// How an injected fault fails.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The request itself answers this HTTP status with Google's error body and `reason`.
    Http {
        /// 400, 403, 429, 503, ...
        status: u16,
        /// `rateLimitExceeded`, `forbidden`, `backendError`, ...
        reason: String,
    },
    /// The request is accepted, and its operation ends `DONE` with this error (quota, say).
    Operation {
        /// `QUOTA_EXCEEDED`, `ZONE_RESOURCE_POOL_EXHAUSTED`, ...
        code: String,
        /// The operation's `httpErrorStatusCode`.
        http_status: u16,
    },
}

#[derive(Default)]
struct State {
    /// kind ("instances", "disks", "addresses", "firewalls", "repositories") -> name -> resource.
    resources: BTreeMap<&'static str, BTreeMap<String, Value>>,
    /// operation name -> (operation, how many polls until DONE, what it does when done).
    operations: BTreeMap<String, Operation>,
    /// requestId -> operation name: a retried insert with the same id is the same insert.
    request_ids: BTreeMap<String, String>,
    faults: Vec<Fault>,
    log: Vec<String>,
    next_id: u64,
    next_address: u32,
    page_size: usize,
}

struct Operation {
    body: Value,
    polls_left: u32,
}

/// The running fake; stops on drop.
pub struct FakeGce {
    /// `http://127.0.0.1:<port>`: the Compute, Artifact Registry and token endpoint.
    pub url: String,
    token: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

type Answer = Result<(StatusCode, Value), (StatusCode, String, String)>;

fn error(status: StatusCode, reason: &str, message: impl Into<String>) -> Answer {
    Err((status, reason.to_string(), message.into()))
}

fn not_found(path: &str) -> Answer {
    error(
        StatusCode::NOT_FOUND,
        "notFound",
        format!("The resource '{path}' was not found"),
    )
}

/// Google's JSON error body. Compute uses `errors[].reason`; Artifact Registry `status`.
fn error_body(status: StatusCode, reason: &str, message: &str) -> Value {
    let grpc = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    };
    json!({ "error": {
        "code": status.as_u16(),
        "message": message,
        "errors": [{ "message": message, "domain": "global", "reason": reason }],
        "status": grpc,
    }})
}

impl FakeGce {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let token = format!("ya29.fake-{:016x}", rand::random::<u64>());
        let state = Arc::new(Mutex::new(State {
            next_id: 4_611_686_018_427_387_904 + u64::from(rand::random::<u16>()),
            page_size: 500,
            ..State::default()
        }));
        let (s, t, u) = (state.clone(), token.clone(), url.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (s, t, u) = (s.clone(), t.clone(), u.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (s, t, u) = (s.clone(), t.clone(), u.clone());
                        async move { Ok::<_, Infallible>(handle(&s, &t, &u, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url,
            token,
            state,
            task,
        }
    }

    /// The access token the token endpoint issues and every API request must carry.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `authorized_user` credentials (the shape `gcloud auth application-default login` writes)
    /// whose token endpoint is this fake.
    pub fn credentials_json(&self) -> Value {
        json!({
            "type": "authorized_user",
            "client_id": "kubemark-test.apps.googleusercontent.com",
            "client_secret": "fake-client-secret",
            "refresh_token": "fake-refresh-token",
            "token_uri": format!("{}/token", self.url),
        })
    }

    /// The address the next static address reservation will get (so a test can bind to it).
    pub fn next_address(&self) -> String {
        let n = self.state.lock().unwrap().next_address + 1;
        format!("127.0.1.{}", 1 + n % 250)
    }

    /// Environment for a `kubemark` process that should use this fake as Google Cloud, with
    /// Application Default Credentials written to `dir`.
    pub fn env(&self, dir: &std::path::Path) -> Vec<(&'static str, String)> {
        let adc = dir.join("application_default_credentials.json");
        std::fs::write(&adc, self.credentials_json().to_string()).unwrap();
        vec![
            ("PROJECT", PROJECT.into()),
            ("ZONE", ZONE.into()),
            ("KUBEMARK_GCE_ENDPOINT", self.url.clone()),
            ("KUBEMARK_GCE_REGISTRY_ENDPOINT", self.url.clone()),
            ("GOOGLE_APPLICATION_CREDENTIALS", adc.display().to_string()),
        ]
    }

    /// Lists hold at most `n` items per page (500, as the API's default, unless told).
    pub fn set_page_size(&self, n: usize) {
        self.state.lock().unwrap().page_size = n.max(1);
    }

    /// Makes matching requests fail.
    pub fn inject(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push(fault);
    }

    /// Every request so far as `METHOD path?query` (without the bearer token).
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// The names of the resources of `kind` (`instances`, `disks`, `addresses`, `firewalls`,
    /// `repositories`).
    pub fn names(&self, kind: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .resources
            .iter()
            .filter(|(k, _)| **k == kind)
            .flat_map(|(_, m)| m.keys().cloned())
            .collect()
    }

    /// One resource as the API shows it.
    pub fn get(&self, kind: &str, name: &str) -> Option<Value> {
        let state = self.state.lock().unwrap();
        state
            .resources
            .iter()
            .find(|(k, _)| **k == kind)
            .and_then(|(_, m)| m.get(name).cloned())
    }

    /// Adds a resource someone else made (no kubemark labels), straight into the fake's state.
    pub fn insert_foreign(&self, kind: &'static str, name: &str, labels: Value) {
        let mut state = self.state.lock().unwrap();
        let id = state.id();
        let mut body = json!({ "name": name, "labels": labels, "description": "not kubemark's" });
        if kind == "addresses" {
            let address = state.address();
            body["address"] = json!(address);
        }
        let resource = decorate(kind, body, &id, &self.url);
        state
            .resources
            .entry(kind)
            .or_default()
            .insert(name.to_string(), resource);
    }
}

impl Drop for FakeGce {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl State {
    fn id(&mut self) -> String {
        self.next_id += 1 + u64::from(rand::random::<u8>());
        self.next_id.to_string()
    }

    /// Static addresses come from 127.0.1.0/24: they reach this machine.
    fn address(&mut self) -> String {
        self.next_address += 1;
        format!("127.0.1.{}", 1 + self.next_address % 250)
    }

    fn kind(&mut self, kind: &'static str) -> &mut BTreeMap<String, Value> {
        self.resources.entry(kind).or_default()
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn compute_base(url: &str) -> String {
    format!("{url}/compute/v1/projects/{PROJECT}")
}

/// The fields the API adds to every resource it stores.
fn decorate(kind: &str, mut body: Value, id: &str, url: &str) -> Value {
    let name = body["name"].as_str().unwrap_or_default().to_string();
    let base = compute_base(url);
    let (api_kind, scope) = match kind {
        "instances" => ("compute#instance", format!("{base}/zones/{ZONE}")),
        "disks" => ("compute#disk", format!("{base}/zones/{ZONE}")),
        "addresses" => ("compute#address", format!("{base}/regions/{REGION}")),
        _ => ("compute#firewall", format!("{base}/global")),
    };
    body["kind"] = json!(api_kind);
    body["id"] = json!(id);
    body["creationTimestamp"] = json!(now());
    body["selfLink"] = json!(format!("{scope}/{kind}/{name}"));
    if body.get("labels").is_some() {
        body["labelFingerprint"] = json!("42WmSpB8rSM=");
    }
    match kind {
        "instances" => {
            body["zone"] = json!(scope);
            body["status"] = json!("RUNNING");
            body["fingerprint"] = json!("5pTkBVOAm7c=");
        }
        "disks" => {
            body["zone"] = json!(scope);
            body["status"] = json!("READY");
            body["users"] = json!([]);
            if body.get("sizeGb").is_none() {
                body["sizeGb"] = json!("10");
            }
        }
        "addresses" => {
            body["region"] = json!(scope);
            body["status"] = json!("RESERVED");
            body["addressType"] = json!("EXTERNAL");
            body["networkTier"] = json!("PREMIUM");
            body["users"] = json!([]);
        }
        _ => {
            body["direction"] = json!("INGRESS");
            body["priority"] = json!(1000);
            body["disabled"] = json!(false);
        }
    }
    body
}

async fn handle(
    state: &Mutex<State>,
    token: &str,
    url: &str,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), decode(v)))
        .collect();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let answer = {
        let mut s = state.lock().unwrap();
        s.log.push(format!(
            "{method} {path}{}",
            if query.is_empty() {
                String::new()
            } else {
                format!(
                    "?{}",
                    query
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join("&")
                )
            }
        ));
        route(&mut s, token, url, &method, &path, &query, auth, &body)
    };
    let (status, value) = match answer {
        Ok(ok) => ok,
        Err((status, reason, message)) => (status, error_body(status, &reason, &message)),
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=UTF-8")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap()
}

/// Percent-decoding of a query value (`%22`, `+` as space).
fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(&v[i + 1..i + 3], 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[allow(clippy::too_many_arguments)]
fn route(
    s: &mut State,
    token: &str,
    url: &str,
    method: &str,
    path: &str,
    query: &BTreeMap<String, String>,
    auth: Option<String>,
    body: &[u8],
) -> Answer {
    if path == "/token" && method == "POST" {
        // Google's token endpoint takes a form or a JSON body.
        let refresh = match serde_json::from_slice::<Value>(body) {
            Ok(v) => v["refresh_token"].as_str().map(String::from),
            Err(_) => String::from_utf8_lossy(body)
                .split('&')
                .find_map(|kv| kv.strip_prefix("refresh_token=").map(decode)),
        };
        if refresh.as_deref() != Some("fake-refresh-token") {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Bad refresh token",
            );
        }
        return Ok((
            StatusCode::OK,
            json!({
                "access_token": token,
                "expires_in": 3599,
                "scope": "https://www.googleapis.com/auth/cloud-platform",
                "token_type": "Bearer",
            }),
        ));
    }
    if auth.as_deref() != Some(&format!("Bearer {token}")) {
        return error(
            StatusCode::UNAUTHORIZED,
            "authError",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        );
    }
    if let Some(i) = s
        .faults
        .iter()
        .position(|f| f.method == method && path.contains(&f.path_contains) && f.times > 0)
    {
        s.faults[i].times -= 1;
        let fault = s.faults[i].clone();
        if let Failure::Http { status, reason } = &fault.failure {
            let status = StatusCode::from_u16(*status).unwrap();
            return error(status, reason, format!("injected {reason}"));
        }
        return operation_failure(s, url, method, path, &fault.failure);
    }
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "parseError",
                    format!("Invalid JSON payload received. {e}"),
                );
            }
        }
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["compute", "v1", "projects", p, rest @ ..] if *p == PROJECT => {
            compute(s, url, method, rest, query, body)
        }
        ["v1", "projects", p, "locations", l, rest @ ..] if *p == PROJECT => {
            registry(s, method, l, rest, query, body)
        }
        _ => not_found(path),
    }
}

/// The operation of an accepted request that then fails (`Failure::Operation`).
fn operation_failure(
    s: &mut State,
    url: &str,
    method: &str,
    path: &str,
    failure: &Failure,
) -> Answer {
    let Failure::Operation { code, http_status } = failure else {
        unreachable!()
    };
    let scope = scope_of(path);
    let mut op = new_operation(s, url, &scope, method, path, "");
    op["error"] = json!({ "errors": [{ "code": code, "message": format!("injected {code}") }] });
    op["httpErrorStatusCode"] = json!(http_status);
    op["httpErrorMessage"] = json!("injected");
    let name = op["name"].as_str().unwrap().to_string();
    s.operations.insert(
        name,
        Operation {
            body: op.clone(),
            polls_left: 1,
        },
    );
    Ok((StatusCode::OK, op))
}

/// `zones/Z`, `regions/R` or `global` of a compute path.
fn scope_of(path: &str) -> String {
    if path.contains("/zones/") {
        format!("zones/{ZONE}")
    } else if path.contains("/regions/") {
        format!("regions/{REGION}")
    } else {
        "global".into()
    }
}

fn new_operation(
    s: &mut State,
    url: &str,
    scope: &str,
    method: &str,
    target: &str,
    target_id: &str,
) -> Value {
    let id = s.id();
    let name = format!(
        "operation-{}-{:013x}",
        time::OffsetDateTime::now_utc().unix_timestamp(),
        rand::random::<u64>() >> 12
    );
    let base = compute_base(url);
    let mut op = json!({
        "kind": "compute#operation",
        "id": id,
        "name": name,
        "operationType": if method == "DELETE" { "delete" } else { "insert" },
        "targetLink": if target.starts_with("http") { target.to_string() } else { format!("{url}{target}") },
        "status": "RUNNING",
        "user": "kubemark-test@example.com",
        "progress": 0,
        "insertTime": now(),
        "startTime": now(),
        "selfLink": format!("{base}/{scope}/operations/{name}"),
    });
    if !target_id.is_empty() {
        op["targetId"] = json!(target_id);
    }
    if let Some(z) = scope.strip_prefix("zones/") {
        op["zone"] = json!(format!("{base}/zones/{z}"));
    }
    if let Some(r) = scope.strip_prefix("regions/") {
        op["region"] = json!(format!("{base}/regions/{r}"));
    }
    op
}

/// Stores `op` (RUNNING; DONE at the next poll) and answers it.
fn accept(s: &mut State, op: Value, query: &BTreeMap<String, String>) -> Answer {
    let name = op["name"].as_str().unwrap().to_string();
    if let Some(r) = query.get("requestId") {
        s.request_ids.insert(r.clone(), name.clone());
    }
    s.operations.insert(
        name,
        Operation {
            body: op.clone(),
            polls_left: 1,
        },
    );
    Ok((StatusCode::OK, op))
}

fn labels_match(resource: &Value, filter: &str) -> Result<bool, String> {
    if filter.trim().is_empty() {
        return Ok(true);
    }
    for term in filter.split(" AND ") {
        let Some((k, v)) = term.split_once('=') else {
            return Err(format!("Invalid list filter expression '{term}'."));
        };
        let k = k.trim().trim_start_matches('(').trim();
        let v = v.trim().trim_end_matches(')').trim().trim_matches('"');
        let Some(label) = k.strip_prefix("labels.") else {
            return Err(format!(
                "Invalid list filter expression '{term}': the fake knows labels only."
            ));
        };
        if resource["labels"][label].as_str() != Some(v) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A page of `items` as a list answer, in the API's `pageToken` scheme.
fn page(
    items: Vec<Value>,
    query: &BTreeMap<String, String>,
    page_size: usize,
    list_kind: &str,
    items_key: &str,
) -> Answer {
    let size = query
        .get("maxResults")
        .or_else(|| query.get("pageSize"))
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(page_size)
        .min(page_size);
    let start = match query.get("pageToken").filter(|t| !t.is_empty()) {
        Some(t) => match t
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => n,
            None => {
                return error(StatusCode::BAD_REQUEST, "invalid", "Invalid page token.");
            }
        },
        None => 0,
    };
    let end = (start + size).min(items.len());
    let mut out = json!({ items_key: items.get(start..end).unwrap_or_default() });
    if !list_kind.is_empty() {
        out["kind"] = json!(list_kind);
    }
    if end < items.len() {
        out["nextPageToken"] = json!(format!("page-{end}"));
    }
    Ok((StatusCode::OK, out))
}

fn compute(
    s: &mut State,
    url: &str,
    method: &str,
    rest: &[&str],
    query: &BTreeMap<String, String>,
    body: Value,
) -> Answer {
    let (scope, kind, name) = match rest {
        ["zones", z, k, tail @ ..] if *z == ZONE => (format!("zones/{z}"), *k, tail.first()),
        ["regions", r, k, tail @ ..] if *r == REGION => (format!("regions/{r}"), *k, tail.first()),
        ["global", k, tail @ ..] => ("global".to_string(), *k, tail.first()),
        _ => return not_found(&rest.join("/")),
    };
    let kind: &'static str = match (scope.as_str(), kind) {
        (_, "operations") => "operations",
        (s, "instances") if s.starts_with("zones/") => "instances",
        (s, "disks") if s.starts_with("zones/") => "disks",
        (s, "addresses") if s.starts_with("regions/") => "addresses",
        ("global", "firewalls") => "firewalls",
        _ => return not_found(&rest.join("/")),
    };
    let resource_path = |n: &str| format!("projects/{PROJECT}/{scope}/{kind}/{n}");
    if kind == "operations" {
        let Some(n) = name else {
            return not_found("operations");
        };
        let Some(op) = s.operations.get_mut(*n) else {
            return not_found(&resource_path(n));
        };
        if op.polls_left == 0 {
            op.body["status"] = json!("DONE");
            op.body["progress"] = json!(100);
            op.body["endTime"] = json!(now());
        } else {
            op.polls_left -= 1;
        }
        return Ok((StatusCode::OK, op.body.clone()));
    }
    match (method, name) {
        ("GET", None) => {
            let filter = query.get("filter").cloned().unwrap_or_default();
            let mut items = Vec::new();
            for r in s.kind(kind).values() {
                match labels_match(r, &filter) {
                    Ok(true) => items.push(r.clone()),
                    Ok(false) => {}
                    Err(m) => return error(StatusCode::BAD_REQUEST, "invalid", m),
                }
            }
            let list_kind = match kind {
                "addresses" => "compute#addressList",
                "instances" => "compute#instanceList",
                "disks" => "compute#diskList",
                _ => "compute#firewallList",
            };
            let size = s.page_size;
            page(items, query, size, list_kind, "items")
        }
        ("GET", Some(n)) => match s.kind(kind).get(*n) {
            Some(r) => Ok((StatusCode::OK, r.clone())),
            None => not_found(&resource_path(n)),
        },
        ("POST", None) => {
            if let Some(previous) = query.get("requestId").and_then(|r| s.request_ids.get(r)) {
                let op = s.operations[previous].body.clone();
                return Ok((StatusCode::OK, op));
            }
            let n = body["name"].as_str().unwrap_or_default().to_string();
            let valid = !n.is_empty()
                && n.len() <= 63
                && n.starts_with(|c: char| c.is_ascii_lowercase())
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!(
                        "Invalid value for field 'resource.name': '{n}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{{0,61}}[a-z0-9])?)'"
                    ),
                );
            }
            if s.kind(kind).contains_key(&n) {
                return error(
                    StatusCode::CONFLICT,
                    "alreadyExists",
                    format!("The resource '{}' already exists", resource_path(&n)),
                );
            }
            let id = s.id();
            let mut resource = decorate(kind, body, &id, url);
            match kind {
                "addresses" if resource.get("address").is_none() => {
                    let a = s.address();
                    resource["address"] = json!(a);
                }
                "instances" => {
                    let self_link = resource["selfLink"].as_str().unwrap().to_string();
                    attach(s, url, &mut resource, &self_link)?;
                }
                _ => {}
            }
            let target = resource["selfLink"].as_str().unwrap().to_string();
            s.kind(kind).insert(n, resource);
            let op = new_operation(s, url, &scope, method, &target, &id);
            accept(s, op, query)
        }
        ("DELETE", Some(n)) => {
            let Some(resource) = s.kind(kind).get(*n).cloned() else {
                return not_found(&resource_path(n));
            };
            let users = resource["users"].as_array().cloned().unwrap_or_default();
            if !users.is_empty() {
                let what = if kind == "disks" { "disk" } else { "address" };
                return error(
                    StatusCode::BAD_REQUEST,
                    "resourceInUseByAnotherResource",
                    format!(
                        "The {what} resource '{}' is already being used by '{}'",
                        resource_path(n),
                        users[0].as_str().unwrap_or_default()
                    ),
                );
            }
            if kind == "instances" {
                detach(s, &resource);
            }
            s.kind(kind).remove(*n);
            let id = resource["id"].as_str().unwrap_or_default().to_string();
            let target = resource["selfLink"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let op = new_operation(s, url, &scope, method, &target, &id);
            accept(s, op, query)
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "httpMethodNotAllowed",
            format!("{method} is not supported here"),
        ),
    }
}

/// The last path segment of a resource URL or partial path.
fn last(link: &str) -> &str {
    link.rsplit('/').next().unwrap_or(link)
}

/// Checks an instance's disk sources and NAT address, marks them used by it, gives it a boot disk
/// of its own and an internal address.
fn attach(
    s: &mut State,
    url: &str,
    instance: &mut Value,
    self_link: &str,
) -> Result<(), (StatusCode, String, String)> {
    let base = compute_base(url);
    let name = instance["name"].as_str().unwrap_or_default().to_string();
    let mut disks = instance["disks"].as_array().cloned().unwrap_or_default();
    for (index, d) in disks.iter_mut().enumerate() {
        d["kind"] = json!("compute#attachedDisk");
        d["index"] = json!(index);
        d["type"] = json!("PERSISTENT");
        d["mode"] = json!(d["mode"].as_str().unwrap_or("READ_WRITE"));
        d["interface"] = json!("SCSI");
        if let Some(source) = d["source"].as_str().map(String::from) {
            let disk = last(&source).to_string();
            match s.kind("disks").get_mut(&disk) {
                None => {
                    return Err((
                        StatusCode::NOT_FOUND,
                        "notFound".into(),
                        format!(
                            "The resource 'projects/{PROJECT}/zones/{ZONE}/disks/{disk}' was not found"
                        ),
                    ));
                }
                Some(r) if r["users"].as_array().is_some_and(|u| !u.is_empty()) => {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        "resourceInUseByAnotherResource".into(),
                        format!(
                            "The disk resource 'projects/{PROJECT}/zones/{ZONE}/disks/{disk}' is already being used"
                        ),
                    ));
                }
                Some(_) => {}
            }
            d["source"] = json!(format!("{base}/zones/{ZONE}/disks/{disk}"));
        } else if d["boot"].as_bool() == Some(true) {
            // The boot disk is created from initializeParams and named after the instance.
            let id = s.id();
            let size = d["initializeParams"]["diskSizeGb"].clone();
            let disk = decorate("disks", json!({ "name": name, "sizeGb": size }), &id, url);
            d["source"] = disk["selfLink"].clone();
            s.kind("disks").insert(name.clone(), disk);
        }
    }
    for d in &disks {
        if let Some(source) = d["source"].as_str() {
            let disk = last(source).to_string();
            if let Some(r) = s.kind("disks").get_mut(&disk) {
                r["users"] = json!([self_link]);
            }
        }
    }
    instance["disks"] = json!(disks);
    let mut nics = instance["networkInterfaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, nic) in nics.iter_mut().enumerate() {
        nic["name"] = json!(format!("nic{i}"));
        nic["networkIP"] = json!(format!("10.128.0.{}", 2 + rand::random::<u8>() % 200));
        let mut configs = nic["accessConfigs"].as_array().cloned().unwrap_or_default();
        for c in configs.iter_mut() {
            c["kind"] = json!("compute#accessConfig");
            match c["natIP"].as_str().map(String::from) {
                Some(ip) => {
                    let owner = s
                        .kind("addresses")
                        .values_mut()
                        .find(|a| a["address"].as_str() == Some(ip.as_str()));
                    match owner {
                        Some(a) if a["users"].as_array().is_some_and(|u| u.is_empty()) => {
                            a["users"] = json!([self_link]);
                            a["status"] = json!("IN_USE");
                        }
                        _ => {
                            return Err((
                                StatusCode::BAD_REQUEST,
                                "invalid".into(),
                                format!(
                                    "Invalid value for field 'resource.networkInterfaces[{i}].accessConfigs[0].natIP': '{ip}'. The specified external IP address '{ip}' was not found in region '{REGION}'."
                                ),
                            ));
                        }
                    }
                }
                None => {
                    let a = s.address();
                    c["natIP"] = json!(a);
                }
            }
        }
        nic["accessConfigs"] = json!(configs);
    }
    instance["networkInterfaces"] = json!(nics);
    Ok(())
}

/// An instance going away frees its disks and address, and takes its auto-delete disks along.
fn detach(s: &mut State, instance: &Value) {
    let self_link = instance["selfLink"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for d in instance["disks"].as_array().cloned().unwrap_or_default() {
        let disk = last(d["source"].as_str().unwrap_or_default()).to_string();
        if d["autoDelete"].as_bool() == Some(true) {
            s.kind("disks").remove(&disk);
        } else if let Some(r) = s.kind("disks").get_mut(&disk) {
            r["users"] = json!([]);
        }
    }
    for a in s.kind("addresses").values_mut() {
        if a["users"]
            .as_array()
            .is_some_and(|u| u.iter().any(|x| x == &json!(self_link)))
        {
            a["users"] = json!([]);
            a["status"] = json!("RESERVED");
        }
    }
}

/// Artifact Registry `v1`: repositories and their long-running operations.
fn registry(
    s: &mut State,
    method: &str,
    location: &str,
    rest: &[&str],
    query: &BTreeMap<String, String>,
    body: Value,
) -> Answer {
    let parent = format!("projects/{PROJECT}/locations/{location}");
    let lro = |s: &mut State, done_response: Value| -> Value {
        let name = format!("{parent}/operations/{:016x}", rand::random::<u64>());
        let op = json!({
            "name": name,
            "metadata": { "@type": "type.googleapis.com/google.devtools.artifactregistry.v1.OperationMetadata" },
            "done": false,
        });
        let mut done = op.clone();
        done["done"] = json!(true);
        done["response"] = done_response;
        s.operations.insert(
            name,
            Operation {
                body: done,
                polls_left: 0,
            },
        );
        op
    };
    match (method, rest) {
        ("GET", ["operations", id]) => {
            let name = format!("{parent}/operations/{id}");
            match s.operations.get(&name) {
                Some(op) => Ok((StatusCode::OK, op.body.clone())),
                None => not_found(&name),
            }
        }
        ("GET", ["repositories"]) => {
            let items: Vec<Value> = s.kind("repositories").values().cloned().collect();
            let size = s.page_size;
            page(items, query, size, "", "repositories")
        }
        ("GET", ["repositories", id]) => match s.kind("repositories").get(*id) {
            Some(r) => Ok((StatusCode::OK, r.clone())),
            None => not_found(&format!("{parent}/repositories/{id}")),
        },
        ("POST", ["repositories"]) => {
            let Some(id) = query.get("repositoryId").cloned() else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    "repository_id is required",
                );
            };
            if s.kind("repositories").contains_key(&id) {
                return error(
                    StatusCode::CONFLICT,
                    "alreadyExists",
                    format!("the repository already exists: {parent}/repositories/{id}"),
                );
            }
            let mut repo = body;
            repo["name"] = json!(format!("{parent}/repositories/{id}"));
            repo["createTime"] = json!(now());
            repo["updateTime"] = json!(now());
            repo["mode"] = json!("STANDARD_REPOSITORY");
            s.kind("repositories").insert(id, repo.clone());
            let mut response = repo;
            response["@type"] =
                json!("type.googleapis.com/google.devtools.artifactregistry.v1.Repository");
            let op = lro(s, response);
            Ok((StatusCode::OK, op))
        }
        ("DELETE", ["repositories", id]) => {
            if s.kind("repositories").remove(*id).is_none() {
                return not_found(&format!("{parent}/repositories/{id}"));
            }
            let op = lro(
                s,
                json!({ "@type": "type.googleapis.com/google.protobuf.Empty" }),
            );
            Ok((StatusCode::OK, op))
        }
        _ => not_found(&format!("{parent}/{}", rest.join("/"))),
    }
}
