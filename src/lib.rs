//! conda-docker: build minimal, reproducible Docker/OCI images from conda environments, without a
//! Docker daemon.
//!
//! - [`image`]: the image model (config, layers, digests, references), editing it, and where
//!   layer tars are written ([`image::layer_tar`]); knows no conda.
//! - [`transport`]: reading and writing images: docker-archive, OCI layout, oci-archive and
//!   registries (pull, push, credentials); knows no conda.
//! - [`conda`]: channels, solving, installing into a staging prefix, lockfiles, environment files,
//!   existing prefixes, and planning which files go in which layer; knows no tar or OCI.
//! - [`input`]: what to build, read from specs, an environment file, a lockfile or an existing
//!   environment; [`build`]: the builder that joins it all: packages and a base image in, an
//!   image out.
//! - [`settings`]: image settings from environment files and flags; [`inspect`]: what an image
//!   holds; [`reporter`]: progress events for a front end.

#![deny(missing_docs)]

pub mod build;
pub mod conda;
pub mod image;
pub mod input;
pub mod inspect;
pub mod reporter;
pub mod settings;
pub mod transport;

/// Installs rustls' ring crypto provider for this process (once; later calls do nothing).
pub(crate) fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
