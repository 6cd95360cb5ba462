//! What an idle HTTP/2 connection keeps on the heap, as every hollow node keeps one open for life.
//!
//! The workspace builds h2 from `third_party/h2`, patched so that its write buffer, read buffer,
//! HPACK decode buffer and frame queues exist only while they hold something (stock h2 keeps
//! 16 + 8 + 4 KiB of buffers per connection for life, and its queues at their high-water mark).
//! This test fails if that patch is lost, e.g. when h2 is upgraded and the `[patch.crates-io]`
//! entry quietly stops applying.

use std::time::Duration;

use bytes::Bytes;
use tikv_jemalloc_ctl::{epoch, stats};

// jemalloc's own statistics give the live heap without a counting allocator (which would need
// unsafe code, forbidden in this workspace).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const PAIRS: usize = 64;

/// Bytes the process has allocated and not freed.
fn live_heap() -> usize {
    epoch::advance().expect("jemalloc epoch");
    stats::allocated::read().expect("jemalloc stats.allocated")
}

/// Answers every request with 200 and a 2 KiB body, as long as the connection lives.
async fn serve(io: tokio::io::DuplexStream) {
    let mut connection = h2::server::handshake(io).await.expect("server handshake");
    while let Some(accepted) = connection.accept().await {
        let (request, mut respond) = accepted.expect("accept");
        let mut body = request.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("request body");
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let response = http::Response::builder().status(200).body(()).unwrap();
        let mut send = respond.send_response(response, false).expect("respond");
        send.send_data(Bytes::from(vec![b'x'; 2048]), true)
            .expect("response body");
    }
}

/// Sends one request (with `body` when given) and reads the whole response.
async fn exchange(send: &mut h2::client::SendRequest<Bytes>, body: Option<Bytes>) {
    let request = http::Request::builder()
        .method(if body.is_some() { "PUT" } else { "GET" })
        .uri("https://127.0.0.1/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n")
        .header(
            "user-agent",
            "kubelet/v1.34.0 (linux/amd64) kubernetes/0000000",
        )
        .body(())
        .unwrap();
    let mut ready = send.clone().ready().await.expect("ready");
    let (response, mut stream) = ready
        .send_request(request, body.is_none())
        .expect("send request");
    if let Some(body) = body {
        stream.send_data(body, true).expect("request body");
    }
    let mut body = response.await.expect("response").into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("response body");
        let _ = body.flow_control().release_capacity(chunk.len());
    }
}

#[tokio::test]
async fn an_idle_http2_connection_holds_no_empty_buffers() {
    let before = live_heap();
    let mut clients = Vec::with_capacity(PAIRS);
    for _ in 0..PAIRS {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        tokio::spawn(serve(server_io));
        let (mut send, connection) = h2::client::handshake(client_io)
            .await
            .expect("client handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        exchange(&mut send, None).await;
        exchange(&mut send, Some(Bytes::from(vec![b'{'; 1024]))).await;
        clients.push(send);
    }
    // Let every connection task finish writing and go idle.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let per_pair = live_heap().saturating_sub(before) / PAIRS;
    eprintln!(
        "live heap per idle connection (client and server side, in-memory pipe): {per_pair} bytes"
    );
    // Measured on this test: ~78 KiB per pair with stock h2 0.4.20, ~16 KiB patched.
    assert!(
        per_pair < 40 * 1024,
        "an idle HTTP/2 connection pair keeps {per_pair} bytes: is third_party/h2 still patched in?"
    );
    drop(clients);
}
