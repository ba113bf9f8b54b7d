//! Writing a build's images to all its outputs at once: one image, or an index of one image per
//! platform, each with its referrers (SBOMs) attached beside it where the output holds them.

use crate::image::referrer::Artifact;
use crate::image::{Cancel, Digest, Image, Reference};
use crate::reporter::Reporter;

use super::registry::PushStats;
use super::{Location, Remote, WriteOptions, WrittenImage};

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

/// What one output received.
#[derive(Clone, Debug)]
pub struct Written {
    /// The output.
    pub location: Location,
    /// Each image as written, in the order given.
    pub images: Vec<WrittenImage>,
    /// The index's digest, when several images went under one index.
    pub index: Option<Digest>,
    /// What a push to a registry transferred (the whole output's).
    pub push: Option<PushStats>,
    /// The referrers attached, by their manifests' digests.
    pub referrers: Vec<Digest>,
}

impl Written {
    /// What identifies the output's content: the index's digest, else the image ID.
    pub fn id(&self) -> Option<&Digest> {
        self.index
            .as_ref()
            .or_else(|| self.images.first().map(|i| &i.config_digest))
    }

    /// The digest a registry serves the output by: the index's, else the manifest's.
    pub fn digest(&self) -> Option<&Digest> {
        self.index
            .as_ref()
            .or_else(|| self.images.first().and_then(|i| i.manifest_digest.as_ref()))
    }

    /// `REF@DIGEST` for a push, which is what CI pins.
    pub fn pushed(&self) -> Option<String> {
        match (&self.location, self.digest()) {
            (Location::Registry(reference), Some(digest)) if self.push.is_some() => {
                Some(format!("{}@{digest}", reference.familiar_tagged()))
            }
            _ => None,
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

/// Writes `images` to every output in turn, tagged `tags`: one image as itself, several under
/// one OCI index; then attaches each image's referrers where the output holds them.
///
/// # Errors
/// [`OutputError`], naming the output; its source is
/// [`crate::image::Error::Cancelled`] when `cancel` was set.
pub async fn write_all(
    images: &[Publish<'_>],
    outputs: &[Location],
    tags: &[Reference],
    remote: &Remote,
    options: &WriteOptions,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> Result<Vec<Written>, OutputError> {
    let mut all = Vec::with_capacity(outputs.len());
    for location in outputs {
        let write_error = |source| OutputError::Write {
            location: location.to_string(),
            source: Box::new(source),
        };
        let (written, index, push) = tokio::select! {
            w = write_one_output(images, location, tags, remote, options, cancel, reporter) => w,
            () = cancel.cancelled() => Err(crate::image::Error::Cancelled.into()),
        }
        .map_err(write_error)?;
        let mut referrers = Vec::new();
        for (publish, image) in images.iter().zip(&written) {
            let Some(subject) = image.manifest_descriptor() else {
                continue;
            };
            if publish.referrers.is_empty() {
                continue;
            }
            let attached = super::attach(location, &subject, &publish.referrers, remote, reporter)
                .await
                .map_err(|source| OutputError::Attach {
                    location: location.to_string(),
                    source: Box::new(source),
                })?;
            referrers.extend(attached);
        }
        all.push(Written {
            location: location.clone(),
            images: written,
            index,
            push,
            referrers,
        });
    }
    Ok(all)
}

/// One output's write: the images, the index digest (several images) and the push's figures.
async fn write_one_output(
    images: &[Publish<'_>],
    location: &Location,
    tags: &[Reference],
    remote: &Remote,
    options: &WriteOptions,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> super::Result<(Vec<WrittenImage>, Option<Digest>, Option<PushStats>)> {
    if let [one] = images {
        let w =
            super::write_with(one.image, location, tags, remote, options, cancel, reporter).await?;
        let push = w.push.clone();
        return Ok((vec![w], None, push));
    }
    let all: Vec<&Image> = images.iter().map(|p| p.image).collect();
    let w =
        super::write_index_with(&all, location, tags, remote, options, cancel, reporter).await?;
    Ok((w.images, Some(w.digest), w.push))
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
