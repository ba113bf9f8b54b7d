//! The lockfile an image was built from, read back from the image, so that an image found in a
//! registry can be rebuilt exactly.
//!
//! The packages are those its environment's `conda-meta/explicit.txt` lists (the package list
//! conda-docker writes into every image, [`crate::describe::PACKAGE_LIST`]), in its order; an image
//! another tool made has none, and its `conda-meta/*.json` records ([`crate::describe::records`]) are used
//! instead. [`ImageLock::write`] writes it through [`crate::conda::lock::write`].

use std::path::{Path, PathBuf};

use rattler_conda_types::{RepoDataRecord, Subdir};

use crate::conda::lock::{self, LockFormat};
use crate::describe::PACKAGE_LIST;
use crate::describe::records::Package;
use crate::image::files::{FileContent, read_files};
use crate::image::{Cancel, Image};
use crate::settings::Recorded;

/// Why an image's lockfile could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image's layers could not be read.
    #[error("reading the image's layers")]
    Image(#[source] crate::image::Error),
    /// The image holds no conda environment.
    #[error("the image holds no conda environment: {}", no_environment(.prefix.as_deref()))]
    NoEnvironment {
        /// The prefix looked in, when one was given or configured (`CONDA_PREFIX`).
        prefix: Option<String>,
    },
    /// The image holds several environments and none was named.
    #[error(
        "the image holds conda environments in {}, and sets no CONDA_PREFIX: name one",
        .prefixes.join(", ")
    )]
    SeveralEnvironments {
        /// Where they are.
        prefixes: Vec<String>,
    },
    /// The image is for a platform conda has no subdir for.
    #[error("the image's platform {platform} is not a conda platform")]
    Platform {
        /// `os/architecture[/variant]`.
        platform: String,
    },
    /// The package list in the image could not be read.
    #[error("reading `{}` in the image", .path.display())]
    PackageList {
        /// Its path in the image.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<crate::conda::Error>,
    },
    /// The image's history records settings that cannot be read.
    #[error("reading the environment's settings the image's history records")]
    Recorded(#[source] crate::settings::Error),
    /// A record lacks what a lockfile needs.
    #[error(
        "the record of `{package}` in `{prefix}` is not a full conda record (it needs `url`, \
         `fn` and the package's fields), so it cannot be locked"
    )]
    Incomplete {
        /// `name-version-build`.
        package: String,
        /// Its environment.
        prefix: String,
    },
    /// The lockfile could not be written.
    #[error("writing the lockfile")]
    Write(#[source] Box<crate::conda::Error>),
}

/// Where an [`ImageLock`]'s packages were read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockSource {
    /// The environment's `conda-meta/explicit.txt`.
    PackageList,
    /// The environment's `conda-meta/*.json` records.
    Records,
}

/// The packages of an image's conda environment, as a lockfile holds them.
#[derive(Clone, Debug)]
pub struct ImageLock {
    /// The environment's prefix in the image (`/opt/conda`).
    pub prefix: String,
    /// Its conda platform.
    pub subdir: Subdir,
    /// The packages, in the order the image lists them (dependencies first).
    pub records: Vec<RepoDataRecord>,
    /// Where they were read from.
    pub source: LockSource,
    /// What the image was built from beyond its packages (name, variables, settings), as
    /// its history records it (empty for an image that records none).
    pub recorded: Recorded,
}

impl ImageLock {
    /// Reads the lock of `image`'s environment at `prefix` (by default the image's
    /// `CONDA_PREFIX`, else the one environment its records are in). With `full_records`,
    /// each package listed by `explicit.txt` gets the details of its `conda-meta` record too
    /// (dependencies, for conda-lock files), which reads every layer; without, the package
    /// list alone is read, from the top layer that has it.
    pub fn read(
        image: &Image,
        prefix: Option<&str>,
        full_records: bool,
        cancel: &Cancel,
    ) -> Result<Self, Error> {
        let platform = image.platform();
        let subdir = crate::platform::conda_subdir(&platform).ok_or_else(|| Error::Platform {
            platform: platform.to_string(),
        })?;
        let configured = prefix
            .or_else(|| image.config().config.env_var("CONDA_PREFIX"))
            .map(normal_prefix);
        let mut list = match &configured {
            Some(p) => package_list(image, p, subdir, cancel)?,
            None => None,
        };
        let recorded = Recorded::of_image(image)
            .map_err(Error::Recorded)?
            .unwrap_or_default();
        if let (Some(records), Some(prefix), false) = (&list, &configured, full_records) {
            return Ok(Self {
                prefix: prefix.clone(),
                subdir,
                records: records.clone(),
                source: LockSource::PackageList,
                recorded,
            });
        }
        let report = crate::describe::inspect::inspect(image, cancel).map_err(Error::Image)?;
        let prefix = match configured {
            Some(p) => p,
            None => {
                let mut prefixes: Vec<String> =
                    report.packages.iter().map(|p| p.prefix.clone()).collect();
                prefixes.dedup();
                match prefixes.as_slice() {
                    [] => return Err(Error::NoEnvironment { prefix: None }),
                    [one] => {
                        list = package_list(image, one, subdir, cancel)?;
                        one.clone()
                    }
                    _ => return Err(Error::SeveralEnvironments { prefixes }),
                }
            }
        };
        let packages: Vec<&Package> = report
            .packages
            .iter()
            .filter(|p| p.prefix == prefix)
            .collect();
        let full = |p: &Package| {
            p.record
                .as_deref()
                .cloned()
                .ok_or_else(|| Error::Incomplete {
                    package: p.dist(),
                    prefix: p.prefix.clone(),
                })
        };
        let (records, source) = match list {
            Some(listed) => {
                // Each listed package as its record has it, when the record is of that package.
                let records = listed
                    .into_iter()
                    .map(|l| {
                        packages
                            .iter()
                            .filter_map(|p| p.record.as_deref())
                            .find(|r| {
                                r.url == l.url
                                    && (l.package_record.sha256.is_none()
                                        || r.package_record.sha256 == l.package_record.sha256)
                            })
                            .cloned()
                            .unwrap_or(l)
                    })
                    .collect();
                (records, LockSource::PackageList)
            }
            None if packages.is_empty() => {
                return Err(Error::NoEnvironment {
                    prefix: Some(prefix),
                });
            }
            None => {
                let records = packages.into_iter().map(full).collect::<Result<_, _>>()?;
                let records = crate::conda::solve::sort_by_dependency(records);
                (records, LockSource::Records)
            }
        };
        Ok(Self {
            prefix,
            subdir,
            records,
            source,
            recorded,
        })
    }

    /// Writes the lock to `path`: conda-lock's format for `.yml`/`.yaml`, else conda's explicit
    /// format (atomically; an existing destination that is not a regular file is refused).
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let platform = lock::Platform {
            subdir: self.subdir,
            records: &self.records,
            pypi: &[],
        };
        lock::write(path, &[platform], &self.recorded.comment_lines())
            .map_err(|e| Error::Write(Box::new(e)))
    }
}

/// Where [`Error::NoEnvironment`] looked.
fn no_environment(prefix: Option<&str>) -> String {
    match prefix {
        None => "no layer holds a `conda-meta/*.json` record".into(),
        Some(p) => format!(
            "no `{}` and no `{p}/conda-meta/*.json` record in any layer",
            Path::new(p).join(PACKAGE_LIST).display()
        ),
    }
}

/// `/opt/conda` for `opt/conda/`, `/opt/conda` or `/opt//conda`.
fn normal_prefix(prefix: &str) -> String {
    format!(
        "/{}",
        crate::image::files::clean(Path::new(prefix)).display()
    )
}

/// The packages `PREFIX/conda-meta/explicit.txt` lists, if the image has that file.
fn package_list(
    image: &Image,
    prefix: &str,
    subdir: Subdir,
    cancel: &Cancel,
) -> Result<Option<Vec<RepoDataRecord>>, Error> {
    let path = Path::new(prefix).join(PACKAGE_LIST);
    let key = crate::image::files::clean(&path).display().to_string();
    let files = read_files(image, &[&key], cancel).map_err(Error::Image)?;
    let Some(FileContent::File(bytes)) = files.get(&key) else {
        return Ok(None);
    };
    let fail = |source| Error::PackageList {
        path: path.clone(),
        source: Box::new(source),
    };
    let text = String::from_utf8_lossy(bytes);
    let locked = lock::read(&path, &text, LockFormat::Explicit, subdir, "default").map_err(fail)?;
    // Keep the list's order: it is the order the image was built in.
    let records = lock::records_in_order(&locked.conda).map_err(fail)?;
    Ok(Some(records))
}
