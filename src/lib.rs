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
//!   environment; [`build`]: the builder that joins it all: packages and a base image in, an
//!   image out, each package layer composed straight from the package cache
//!   ([`build::compose`]) and kept in the blob cache by a key of what went in.
//! - [`store`]: the caches under one root (blobs, layer keys, package contents, wheels), their
//!   size and pruning;
//!   [`atomic`]: the one way files are written (temporary file, explicit mode, rename);
//!   [`capped`]: the one way small inputs (JSON) are read, with a cap.
//! - [`http`]: the one HTTP retry policy (timeouts, the low-speed limit, `Retry-After`) of
//!   the registry client and the PyPI index client; knows no OCI and no conda.
//! - [`env`]: the process environment as a value, read once by a front end and passed down.
//! - [`platform`]: conda subdirs and the OCI platforms of their images.
//! - [`cli`] (feature `cli`): the `conda-docker` command line, for the binary and the Python
//!   package; it parses, calls the library and prints.
//! - [`settings`]: image settings from environment files and flags; [`inspect`]: what an image
//!   holds, with its conda packages read from their `conda-meta` records ([`records`]);
//!   [`diff`]: what changed from one image to another; [`image_lock`]: the lockfile an image
//!   was built from, read back from it; [`sbom`]: SPDX and CycloneDX documents of an
//!   environment; [`reporter`]: progress events for a front end.

#![deny(missing_docs)]

pub mod atomic;
pub mod build;
pub mod capped;
#[cfg(feature = "cli")]
pub mod cli;
pub mod conda;
pub mod diff;
pub mod env;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod image;
pub mod image_lock;
pub mod input;
pub mod inspect;
pub mod platform;
pub mod pypi;
pub mod records;
pub mod reporter;
pub mod sbom;
pub mod settings;
pub mod store;
pub mod transport;

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
