//! TLS set-up shared by every client in the process.

/// Installs aws-lc-rs as rustls' process-wide crypto provider.
///
/// Binaries call this first thing: when two providers are compiled in (a cloud SDK can bring
/// another), rustls cannot pick one and panics on the first TLS connection. Idempotent.
pub fn install_crypto_provider() {
    // An Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
