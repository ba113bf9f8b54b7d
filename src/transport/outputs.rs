//! Writing a build's images to all its outputs at once: one image, or an index of one image per
//! platform, each with its referrers (SBOMs) attached beside it where the output holds them.

use crate::image::Image;
use crate::image::referrer::Artifact;

use super::{Location, Publishable, WriteContext, Written};

/// An image to write, with what to attach beside it as OCI referrers.
#[derive(Clone, Debug)]
pub struct Publish<'a> {
    /// The image.
    pub image: &'a Image,
    /// Artifacts whose subject is the image's manifest (its SBOMs); may be empty.
    pub referrers: Vec<Artifact>,
}

/// Why an output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// An archive was asked to hold several platforms.
    #[error(
        "{location}: an archive holds one platform; write the {images} platforms to `oci:DIR` or \
         push them to a registry"
    )]
    OnePlatform {
        /// The archive, as given.
        location: String,
        /// How many images were to go in it.
        images: usize,
    },
    /// Writing the images failed.
    #[error("writing {location}")]
    Write {
        /// The output, as given.
        location: String,
        /// The cause.
        #[source]
        source: Box<super::Error>,
    },
    /// Attaching the referrers failed (the images are written).
    #[error("attaching the SBOMs to {location}")]
    Attach {
        /// The output, as given.
        location: String,
        /// The cause.
        #[source]
        source: Box<super::Error>,
    },
}

impl OutputError {
    /// The cause from the image side (for telling a cancellation or a refusal apart).
    pub fn image_error(&self) -> Option<&crate::image::Error> {
        self.transport_error().and_then(super::Error::image_error)
    }

    /// The cause from the transport (for telling a registry's refusal apart).
    pub fn transport_error(&self) -> Option<&super::Error> {
        match self {
            Self::OnePlatform { .. } => None,
            Self::Write { source, .. } | Self::Attach { source, .. } => Some(&**source),
        }
    }
}

/// Checks, before any work, that every output can take `images` images: each writable, and
/// none an archive when there are several.
///
/// # Errors
/// [`OutputError::OnePlatform`]; [`OutputError::Write`] for an output that cannot be written
/// (see [`Location::check_writable`]).
pub fn check_outputs(outputs: &[Location], images: usize) -> Result<(), OutputError> {
    for location in outputs {
        location
            .check_writable()
            .map_err(|source| OutputError::Write {
                location: location.to_string(),
                source: Box::new(source.into()),
            })?;
        if images > 1
            && matches!(
                location,
                Location::DockerArchive { .. } | Location::OciArchive { .. }
            )
        {
            return Err(OutputError::OnePlatform {
                location: location.to_string(),
                images,
            });
        }
    }
    Ok(())
}

/// Writes `images` to every output in turn, named by the context's tags: one image as itself,
/// several under one OCI index; then attaches each image's referrers where the output holds
/// them.
///
/// # Errors
/// [`OutputError`], naming the output; its source is
/// [`crate::image::Error::Cancelled`] when the context's cancel was set.
pub async fn write_all(
    images: &[Publish<'_>],
    outputs: &[Location],
    ctx: &WriteContext<'_>,
) -> Result<Vec<Written>, OutputError> {
    let all: Vec<&Image> = images.iter().map(|p| p.image).collect();
    let what = match all.as_slice() {
        [one] => Publishable::Image(one),
        several => Publishable::Index(several),
    };
    let mut written_all = Vec::with_capacity(outputs.len());
    for location in outputs {
        let mut written = tokio::select! {
            w = super::write(what, location, ctx) => w,
            () = ctx.session.cancel.cancelled() => Err(crate::image::Error::Cancelled.into()),
        }
        .map_err(|source| OutputError::Write {
            location: location.to_string(),
            source: Box::new(source),
        })?;
        for (publish, image) in images.iter().zip(&written.images) {
            let Some(subject) = image.manifest_descriptor() else {
                continue;
            };
            if publish.referrers.is_empty() {
                continue;
            }
            let attached = super::attach(&subject, &publish.referrers, location, ctx)
                .await
                .map_err(|source| OutputError::Attach {
                    location: location.to_string(),
                    source: Box::new(source),
                })?;
            written.referrers.extend(attached);
        }
        written_all.push(written);
    }
    Ok(written_all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_hold_one_platform_and_layouts_several() {
        let dir = tempfile::tempdir().unwrap();
        let archive =
            Location::parse_destination(&dir.path().join("a.tar").display().to_string()).unwrap();
        let layout =
            Location::parse_destination(&format!("oci:{}", dir.path().join("l").display()))
                .unwrap();
        assert!(check_outputs(&[archive.clone(), layout.clone()], 1).is_ok());
        assert!(check_outputs(std::slice::from_ref(&layout), 2).is_ok());
        let err = check_outputs(&[layout, archive], 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a.tar") && err.contains("one platform"),
            "{err}"
        );
        // Nothing was written by the checks.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
