//! conda-docker: build minimal, reproducible Docker/OCI images from conda environments, without a
//! Docker daemon.
//!
//! - [`image`]: the image model (config, layers, digests, references), editing it, and where
//!   layer tars are written ([`image::layer_tar`]); knows no conda.
//! - [`transport`]: reading and writing images: docker-archive, OCI layout, oci-archive and
//!   registries (pull, push, credentials); knows no conda.
//! - [`conda`]: channels, solving, lockfiles, environment files, existing prefixes, fetching
//!   packages and reading them through one checked reader, placing their files and planning
//!   which packages share a layer; knows no tar or OCI.
//! - [`pypi`]: wheels installed as pip installs them (files placed for the prefix, `RECORD`
//!   rewritten, entry-point scripts) and the PyPI distributions conda packages provide; knows
//!   no tar or OCI.
//! - [`input`]: what to build, read from specs, an environment file, a lockfile or an existing
//!   environment; [`builder`]: the build as a pipeline of stages (prepare, plan, lookup,
//!   fetch, compose, assemble, write): packages and a base image in, an image out.
//! - [`request`]: a build as plain data, as a front end fills it, resolved once into a
//!   [`builder::Builder`] and a [`builder::Job`]; [`env`]: the process environment as a
//!   value, read once by a front end and passed down.
//! - [`store`]: the caches under one root (blobs, layer keys, package contents, wheels), their
//!   size and pruning;
//!   [`atomic`]: the one way files are written (temporary file, explicit mode, rename);
//!   [`capped`]: the one way small inputs (JSON) are read, with a cap; [`beneath`]: the one
//!   way a directory's files are read (no symlink followed).
//! - [`http`]: the one HTTP retry policy (timeouts, the low-speed limit, `Retry-After`) of
//!   the registry client and the PyPI index client; knows no OCI and no conda.
//! - [`platform`]: conda subdirs and the OCI platforms of their images.
//! - [`cli`] (feature `cli`): the `conda-docker` command line, for the binary and the Python
//!   package; it parses, fills a request, calls the library and prints.
//! - [`settings`]: image settings from environment files and flags; [`describe`]: what an
//!   image holds, read back from it (records, lockfile, inspect, diff, SBOM);
//!   [`reporter`]: progress events for a front end.

#![deny(missing_docs)]

pub mod atomic;
pub mod beneath;
pub mod builder;
pub mod capped;
#[cfg(feature = "cli")]
pub mod cli;
pub mod conda;
pub mod describe;
pub mod env;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod image;
pub mod input;
pub mod platform;
pub mod pypi;
pub mod reporter;
pub mod request;
pub mod settings;
pub mod spool;
pub mod store;
pub mod transport;

/// The one error a cancelled step returns, for every side (found through an error's sources).
pub use image::cancel::Cancelled;

/// An error and its sources, as one line (a source already at the end of the text is not
/// repeated).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !chain.ends_with(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        source = s.source();
    }
    chain
}

/// Installs rustls' ring crypto provider for this process (once; later calls do nothing).
pub(crate) fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
