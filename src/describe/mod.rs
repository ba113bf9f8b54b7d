//! What an image holds, read back from it: its conda packages ([`records`], from their
//! `conda-meta` records), the lockfile it was built from ([`lock`]), a summary of its layers
//! ([`inspect`]), what changed from another image ([`diff`]), and its SBOMs ([`sbom`], also
//! written into the image by the builder). Reads images through [`crate::image`]; builds none.

pub mod diff;
pub mod inspect;
pub mod lock;
pub mod provenance;
pub mod records;
pub mod sbom;

/// Where an image records the packages it holds (conda's explicit format), in the prefix.
pub const PACKAGE_LIST: &str = "conda-meta/explicit.txt";

/// The label holding the digest of [`PACKAGE_LIST`].
pub const PACKAGES_LABEL: &str = "org.conda-docker.packages.digest";

/// The file at `rel` in an image's environment (`$CONDA_PREFIX/rel`), if it has one (the top
/// layer that has it wins; a symlink there is no file).
pub fn read_prefix_file(
    image: &crate::image::Image,
    rel: &str,
    cancel: &crate::image::Cancel,
) -> crate::image::Result<Option<Vec<u8>>> {
    let Some(prefix) = image.config().config.env_var("CONDA_PREFIX") else {
        return Ok(None);
    };
    let path = format!("{}/{rel}", prefix.trim_end_matches('/'));
    let found = crate::image::files::read_files(image, &[&path], cancel)?;
    Ok(found.into_values().find_map(|c| match c {
        crate::image::files::FileContent::File(bytes) => Some(bytes),
        crate::image::files::FileContent::Symlink(_) => None,
    }))
}
