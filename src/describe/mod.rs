//! What an image holds, read back from it: its conda packages ([`records`], from their
//! `conda-meta` records), the lockfile it was built from ([`lock`]), a summary of its layers
//! ([`inspect`]), what changed from another image ([`diff`]), and its SBOMs ([`sbom`], also
//! written into the image by the builder). Reads images through [`crate::image`]; builds none.

pub mod diff;
pub mod inspect;
pub mod lock;
pub mod records;
pub mod sbom;

/// Where an image records the packages it holds (conda's explicit format), in the prefix.
pub const PACKAGE_LIST: &str = "conda-meta/explicit.txt";

/// The label holding the digest of [`PACKAGE_LIST`].
pub const PACKAGES_LABEL: &str = "org.conda-docker.packages.digest";
