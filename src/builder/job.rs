//! A whole build as `conda-docker build` runs it, for the command line and the Python package
//! alike: what to build, read once per platform; one image per platform; every output written
//! (an index where there are several platforms); the SBOMs and the lockfile beside them. Every
//! check that can fail is made before any work.

use std::path::PathBuf;

use rattler_conda_types::Subdir;

use crate::image::{LayerCompression, Reference};
use crate::input::{Input, Source};
use crate::transport::registry::RegistryOptions;
use crate::transport::{self, Location, Publish, Remote, Session, WriteOptions, Written};

use super::{Builder, BuiltImage, Context, DryRun, Error};

/// What a build makes and where it goes.
#[derive(Clone, Debug)]
pub struct Job {
    /// What to build.
    pub source: Source,
    /// The platforms, one image each (none: the builder's).
    pub platforms: Vec<Subdir>,
    /// The names the images get (none: [`Input::image_name`] of the input).
    pub images: Vec<Reference>,
    /// Where the images are written.
    pub outputs: Vec<Location>,
    /// How to reach the registries pushed to.
    pub registry: RegistryOptions,
    /// How layers are compressed (left at the default, the input's `compression` wins).
    pub write: WriteOptions,
    /// Where the lockfile of what was built is written (conda-lock for `.yml`, else conda's
    /// explicit format, which holds one platform).
    pub lock_output: Option<PathBuf>,
    /// A directory the SBOMs are written to, beside the image (`sbom.spdx.json`, ...).
    pub sbom_dir: Option<PathBuf>,
    /// A layer cache the build's layers are written to, beside the outputs (`--cache-to`).
    pub cache_to: Option<super::remote::CacheTo>,
}

impl Job {
    /// A build of `source` for the builder's platform, written nowhere (registries reached
    /// with [`RegistryOptions::default`]: no stored credentials; a front end resolves them
    /// from its environment with [`RegistryOptions::from_env`]).
    pub fn new(source: Source) -> Self {
        Self {
            source,
            platforms: Vec::new(),
            images: Vec::new(),
            outputs: Vec::new(),
            registry: RegistryOptions::default(),
            write: WriteOptions::default(),
            lock_output: None,
            sbom_dir: None,
            cache_to: None,
        }
    }

    /// The platforms to build, each once, in the order given (none given: `default`).
    fn platforms(&self, default: Subdir) -> Vec<Subdir> {
        let mut platforms = Vec::new();
        for p in &self.platforms {
            if !platforms.contains(p) {
                platforms.push(*p);
            }
        }
        if platforms.is_empty() {
            platforms.push(default);
        }
        platforms
    }

    /// How layers are written: the job's compression, unless it is the default and `input`
    /// declares one (an environment file's or a lockfile's `compression`).
    fn write_options(&self, input: &Input) -> Result<WriteOptions, Error> {
        let declared = input.settings.compression()?;
        let mut write = self.write;
        write.compression = super::prepare::over(
            self.write.compression,
            LayerCompression::default(),
            declared,
        );
        Ok(write)
    }

    /// The compressions `write` gives the layers of this job's outputs (none for a
    /// docker-archive, which holds plain tars).
    fn layer_compressions(&self, write: WriteOptions) -> Vec<LayerCompression> {
        let mut wanted = Vec::new();
        for location in &self.outputs {
            if let crate::image::Encoding::Compressed(c) = write.encoding(location)
                && !wanted.contains(&c)
            {
                wanted.push(c);
            }
        }
        wanted
    }

    /// Creates and removes a temporary file where each output, the lockfile and the SBOMs
    /// go, so that a directory that cannot take one (read-only, `/proc`, no permission)
    /// fails now, before any solve or download.
    fn probe_destinations(&self) -> Result<(), Error> {
        for location in &self.outputs {
            let (given, path) = match location {
                Location::DockerArchive { path, .. } | Location::OciArchive { path, .. } => {
                    (path, crate::atomic::parent_dir(path))
                }
                Location::OciLayout { dir, .. } => (dir, dir.as_path()),
                Location::Registry(_) | Location::Scratch => continue,
            };
            probe(path).map_err(|reason| crate::transport::OutputError::Write {
                location: location.to_string(),
                source: Box::new(
                    crate::image::Error::Output {
                        path: given.clone(),
                        reason,
                    }
                    .into(),
                ),
            })?;
        }
        if let Some(lock) = &self.lock_output {
            probe(crate::atomic::parent_dir(lock)).map_err(|reason| crate::conda::Error::Lock {
                path: lock.clone(),
                reason,
            })?;
        }
        if let Some(dir) = &self.sbom_dir {
            probe(dir).map_err(|reason| Error::SbomDir {
                path: dir.clone(),
                source: std::io::Error::other(reason),
            })?;
        }
        Ok(())
    }

    /// The registry every output goes to, when they all go to one: a layer a remote cache of it
    /// holds is mounted there and never pulled.
    fn only_registry(&self) -> Option<&str> {
        let mut registries = self.outputs.iter().map(|o| match o {
            Location::Registry(r) => Some(r.registry()),
            _ => None,
        });
        let first = registries.next()??;
        registries.all(|r| r == Some(first)).then_some(first)
    }

    /// Checks the lockfile and SBOM destinations before any work.
    fn check_side_outputs(&self, platforms: usize) -> Result<(), Error> {
        if let Some(lock) = &self.lock_output {
            if platforms > 1 && !crate::conda::lock::writes_conda_lock(lock) {
                return Err(Error::LockOnePlatform { path: lock.clone() });
            }
            Location::DockerArchive {
                path: lock.clone(),
                reference: None,
            }
            .check_writable()?;
            crate::conda::lock::check_destination(lock)?;
        }
        // As for `-o` and `--lock-output`: a symlink is never written through.
        if let Some(dir) = &self.sbom_dir
            && std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(Error::SbomDir {
                path: dir.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "it is a symlink, which is never followed: name the directory itself",
                ),
            });
        }
        if let Some(dir) = &self.sbom_dir
            && dir.exists()
            && !dir.is_dir()
        {
            return Err(Error::SbomDir {
                path: dir.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "exists and is not a directory",
                ),
            });
        }
        Ok(())
    }
}

/// What a [`Job`] made, as data: the caller prints it or returns it.
#[derive(Debug)]
pub struct Outcome {
    /// One image per platform, in the job's order.
    pub built: Vec<(Subdir, BuiltImage)>,
    /// The names the images were written under.
    pub tags: Vec<Reference>,
    /// Each output as written, in the job's order.
    pub written: Vec<Written>,
    /// The SBOM files written to the job's SBOM directory.
    pub sbom_files: Vec<PathBuf>,
}

impl Builder {
    /// What `source` says for each platform, read once each.
    /// Read on a thread of its own, so a cancellation (Ctrl-C, SIGTERM) ends the build at once
    /// even while a parser works through a large file.
    async fn inputs(
        &self,
        ctx: &Context,
        source: &Source,
        platforms: &[Subdir],
    ) -> Result<Vec<Input>, Error> {
        let (source, platforms, env) = (source.clone(), platforms.to_vec(), ctx.env().clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let reader = std::thread::spawn(move || {
            let read: Result<Vec<Input>, Error> = platforms
                .iter()
                .map(|p| source.read(*p, &env).map_err(Error::from))
                .collect();
            let _ = tx.send(read);
        });
        tokio::select! {
            read = rx => match read {
                Ok(read) => read,
                // The reader panicked: so does the build, as it would have without the thread.
                Err(_) => std::panic::resume_unwind(reader.join().err().unwrap_or_else(|| Box::new("reading the input"))),
            },
            () = ctx.cancel().cancelled() => Err(Error::cancelled()),
        }
    }

    /// Builds what `source` describes for each of `platforms` (this builder's settings, one
    /// image per platform).
    pub async fn build_platforms(
        &self,
        ctx: &Context,
        source: &Source,
        platforms: &[Subdir],
    ) -> Result<Vec<BuiltImage>, Error> {
        let inputs = self.inputs(ctx, source, platforms).await?;
        let mut built = Vec::with_capacity(platforms.len());
        for (platform, input) in platforms.iter().zip(&inputs) {
            built.push(self.build_for(ctx, input, *platform, None).await?);
        }
        Ok(built)
    }

    /// The layer plans the job's build would follow, per platform ([`Builder::dry_run`]);
    /// nothing is downloaded or written.
    pub async fn plan(&self, ctx: &Context, job: &Job) -> Result<Vec<DryRun>, Error> {
        let platforms = job.platforms(self.subdir);
        let inputs = self.inputs(ctx, &job.source, &platforms).await?;
        let mut plans = Vec::with_capacity(platforms.len());
        for (platform, input) in platforms.iter().zip(&inputs) {
            plans.push(self.dry_run_for(ctx, input, *platform).await?);
        }
        Ok(plans)
    }

    /// Runs `job`: checks everything it can first (inputs, settings, outputs), builds one image
    /// per platform, writes every output, then the SBOMs and the lockfile. A blob of the cache
    /// found damaged on the way is dropped with a warning, and the build is run once more,
    /// hashing every cached blob it finds, so that it makes or fetches again what was lost.
    pub async fn run(&self, ctx: &Context, job: &Job) -> Result<Outcome, Error> {
        let checked = self.check_job(ctx, job).await?;
        // Held until the outputs are written: a prune waits for the whole build.
        let _store = self.lock_store(ctx);
        let error = match self.build_and_write(ctx, job, &checked).await {
            Err(e) if !ctx.cancel().is_cancelled() => e,
            done => return done,
        };
        let Some((digest, reason)) = error.damaged_blob() else {
            return Err(error);
        };
        self.blobs(ctx).drop_damaged(digest, reason);
        let verifying = Self {
            rehash_blobs: true,
            ..self.clone()
        };
        verifying.build_and_write(ctx, job, &checked).await
    }

    /// Reads `job`'s inputs and checks everything that needs no build: settings, names,
    /// outputs, the lockfile's and SBOMs' places, and that each registry answers.
    async fn check_job(&self, ctx: &Context, job: &Job) -> Result<Checked, Error> {
        let platforms = job.platforms(self.subdir);
        let inputs = self.inputs(ctx, &job.source, &platforms).await?;
        let first = &inputs[0];
        first
            .settings
            .clone()
            .merged_with(self.settings.clone())
            .validate()?;
        self.check()?;
        let tags = match job.images.as_slice() {
            [] => {
                let name = first.image_name();
                vec![
                    name.parse::<Reference>()
                        .map_err(|source| Error::ImageName { name, source })?,
                ]
            }
            given => given.to_vec(),
        };
        let write = job.write_options(first)?;
        transport::check_outputs(&job.outputs, platforms.len())?;
        job.check_side_outputs(platforms.len())?;
        job.probe_destinations()?;
        if let Some(lock) = &job.lock_output
            && !crate::conda::lock::writes_conda_lock(lock)
            && inputs.iter().any(|i| !i.pypi.is_none())
        {
            return Err(Error::LockNoPypi { path: lock.clone() });
        }
        // The registries last: one quick probe each, so one that is down fails before the solve.
        transport::registry::check_reachable(
            &job.outputs,
            &job.registry,
            &self.base,
            self.base_options.as_ref(),
            &self.blob_cache(),
        )
        .await?;
        Ok(Checked {
            platforms,
            inputs,
            tags,
            write,
        })
    }

    /// Builds the checked job's images and writes every output, the SBOMs and the lockfile.
    async fn build_and_write(
        &self,
        ctx: &Context,
        job: &Job,
        checked: &Checked,
    ) -> Result<Outcome, Error> {
        let keep_in = job.only_registry();
        // Each layer composed is compressed as its tar is made, as the outputs want it.
        let compressing = Self {
            compress_layers: job.layer_compressions(checked.write),
            ..self.clone()
        };
        let mut built = Vec::with_capacity(checked.platforms.len());
        for (platform, input) in checked.platforms.iter().zip(&checked.inputs) {
            let image = compressing
                .build_for(ctx, input, *platform, keep_in)
                .await?;
            built.push((*platform, image));
        }
        let remote = Remote {
            options: job.registry.clone(),
            cache: self.blobs(ctx),
        };
        let publish: Vec<Publish<'_>> = built
            .iter()
            .map(|(_, b)| Publish {
                image: b.image(),
                referrers: b.referrers(),
            })
            .collect();
        let session = Session::new(ctx.cancel())
            .with_remote(&remote)
            .with_reporter(ctx.reporter());
        let tags = &checked.tags;
        let write_ctx = session.write(tags, checked.write);
        let written = transport::write_all(&publish, &job.outputs, &write_ctx).await?;
        if let Some(to) = &job.cache_to {
            let images: Vec<&BuiltImage> = built.iter().map(|(_, b)| b).collect();
            let pushed_to = job.outputs.iter().find_map(|o| match o {
                Location::Registry(r) if r.registry() == to.reference.registry() => Some(r),
                _ => None,
            });
            super::remote::export(ctx, to, &images, pushed_to, &write_ctx).await;
        }
        let sbom_files = match &job.sbom_dir {
            Some(dir) => write_sboms(dir, &built)?,
            None => Vec::new(),
        };
        if let Some(lock) = &job.lock_output {
            write_lock(lock, &built, checked.write.compression)?;
        }
        Ok(Outcome {
            built,
            tags: tags.clone(),
            written,
            sbom_files,
        })
    }
}

/// A job's inputs and what its checks settled, read once for every run of it.
struct Checked {
    platforms: Vec<Subdir>,
    inputs: Vec<Input>,
    tags: Vec<Reference>,
    write: WriteOptions,
}

/// Writes the lockfile of `built` to `path`: each platform's packages, and what the images
/// were built from beyond them (the first platform's, as every platform shares them), with
/// the layers' `compression` when it is not the default.
fn write_lock(
    path: &std::path::Path,
    built: &[(Subdir, BuiltImage)],
    compression: LayerCompression,
) -> Result<(), Error> {
    let locked: Vec<_> = built
        .iter()
        .map(|(p, b)| crate::conda::lock::Platform {
            subdir: *p,
            records: b.records(),
            pypi: b.pypi(),
        })
        .collect();
    let mut recorded = built
        .first()
        .map(|(_, b)| b.recorded().clone())
        .unwrap_or_default();
    recorded.settings.compression =
        (compression != LayerCompression::default()).then(|| compression.to_string());
    crate::conda::lock::write(path, &locked, &recorded.comment_lines())?;
    Ok(())
}

/// Checks a file can be made in `dir`, or in the nearest directory above it that exists
/// (where it would be made): a temporary file created there and removed.
fn probe(dir: &std::path::Path) -> Result<(), String> {
    let existing = dir
        .ancestors()
        .find(|d| d.as_os_str().is_empty() || d.is_dir())
        .unwrap_or(dir);
    let shown = if existing.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        existing
    };
    crate::atomic::temp_file_in(shown).map(drop).map_err(|e| {
        // The system's words for it, without the temporary file's name.
        let cause = e
            .raw_os_error()
            .map(std::io::Error::from_raw_os_error)
            .map_or_else(|| e.to_string(), |os| os.to_string());
        let cause = cause.split(" (os error").next().unwrap_or_default();
        format!(
            "cannot create a file in `{}` ({cause}): name a writable directory",
            shown.display()
        )
    })
}

/// Writes each platform's SBOMs into `dir` (made if missing): `sbom.spdx.json` and
/// `sbom.cdx.json`, prefixed `PLATFORM.` when there are several platforms.
fn write_sboms(
    dir: &std::path::Path,
    built: &[(Subdir, BuiltImage)],
) -> Result<Vec<PathBuf>, Error> {
    use crate::describe::sbom::Format;
    let error = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| Error::SbomDir { path, source }
    };
    std::fs::create_dir_all(dir).map_err(error(dir))?;
    let mut files = Vec::new();
    for (subdir, b) in built {
        let Some(sbom) = b.sbom() else { continue };
        for (bytes, name) in [
            (sbom.document(Format::Spdx), "sbom.spdx.json"),
            (sbom.document(Format::CycloneDx), "sbom.cdx.json"),
            (&sbom.provenance[..], "provenance.intoto.json"),
        ] {
            let name = match built {
                [_] => name.to_string(),
                _ => format!("{subdir}.{name}"),
            };
            let path = dir.join(name);
            crate::atomic::write(&path, bytes).map_err(error(&path))?;
            files.push(path);
        }
    }
    Ok(files)
}
