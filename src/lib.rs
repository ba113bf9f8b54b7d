//! conda-docker: build minimal, reproducible Docker/OCI images from conda environments, without a
//! Docker daemon.
//!
//! - [`image`]: the image model (config, layers, digests, references) and editing it; knows no conda.
//! - [`transport`]: reading and writing images (docker-archive, OCI layout).
//! - [`conda`]: resolving, fetching and installing conda packages, and planning their layers;
//!   knows no tar or OCI.
//! - [`build`]: the builder that joins them: specs and a base image in, an image out.

#![deny(missing_docs)]

pub mod build;
pub mod conda;
pub mod image;
pub mod inspect;
pub mod reporter;
pub mod settings;
pub mod transport;

/// Installs rustls' ring crypto provider for this process (once; later calls do nothing).
pub(crate) fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
