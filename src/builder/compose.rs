//! Package layers: composed straight from the packages (their verified archives, read once
//! into a spool, or a directory rattler's cache already holds extracted; never an installed
//! tree), and cached by what goes in.
//!
//! A layer's key hashes everything its bytes depend on: [`LAYER_FORMAT`], the target prefix, the
//! owner, the mtime, and per package its sha256 and its `conda-meta` record (which lists every
//! file the layer holds, so placement, clobbers and trimming are in it). A warm build looks the
//! key up in the blob cache and reads no package file; a miss reads the package through the
//! checked reader, patches placeholders while streaming, and stores the tar by its diff_id.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::contents::Environment;
use super::fetch::FetchedPackages;
use super::lookup::Found;
use super::plan::{Plan, Recipe};
use super::wheels::Wheels;
use super::{Context, Error};
use crate::conda::contents::ContentsCache;
use crate::reporter::Stage;

use crate::conda::contents::{PackageContents, PathKind, Placeholder};
use crate::conda::package_files::PackageFiles;
use crate::conda::place::{PlacedPackage, Source, Trim};
use crate::conda::placeholder::{BinaryReplacer, replace_text};
use crate::image::layer_tar::{Entry, EntryData, FileSource, Ownership, write_layer_tar_owned};
use crate::image::{Cancel, Digest};
use crate::store::{BlobCache, KeyedLayer};

/// Bump whenever the bytes of a package layer could change for the same inputs.
pub const LAYER_FORMAT: u32 = 1;

/// The largest text file with a placeholder that is patched (in memory).
const TEXT_PATCH_CAP: u64 = 512 << 20;

/// One package of a layer, with what is needed to key and compose it.
#[derive(Clone, Debug)]
pub struct Member<'a> {
    /// `name-version-build`, for messages.
    pub dist: String,
    /// The package's cache key (its sha256), if the record has one.
    pub package_key: Option<String>,
    /// What the package holds.
    pub contents: &'a PackageContents,
    /// Where its files go.
    pub placed: &'a PlacedPackage,
}

/// Everything a package layer's bytes depend on besides its members.
#[derive(Clone, Debug)]
pub struct LayerSettings {
    /// Where the environment lives in the image (absolute).
    pub target_prefix: PathBuf,
    /// Who owns the prefix, for `--writable-prefix`.
    pub owner: Option<Ownership>,
    /// The mtime of every entry.
    pub mtime: u64,
    /// What is trimmed.
    pub trim: Trim,
}

/// The key of a layer of `members` (and of `extra` entries whose bytes `extra_digest` names),
/// or `None` when a member has no hash to key it by.
pub fn layer_key(
    members: &[Member<'_>],
    extra_digest: Option<&Digest>,
    settings: &LayerSettings,
) -> Option<Digest> {
    let packages: Option<Vec<serde_json::Value>> = members
        .iter()
        .map(|m| {
            m.package_key.as_ref().map(|k| {
                serde_json::json!({
                    "package": k,
                    "record": Digest::of(&m.placed.record_json).to_string(),
                })
            })
        })
        .collect();
    let key = serde_json::json!({
        "format": LAYER_FORMAT,
        "prefix": settings.target_prefix.to_string_lossy(),
        "owner": settings.owner.as_ref().map(|o| (o.root.to_string_lossy().into_owned(), o.uid, o.gid)),
        "mtime": settings.mtime,
        "trim": settings.trim.names(),
        "packages": packages?,
        "extra": extra_digest.map(Digest::to_string),
    });
    Some(Digest::of(key.to_string().as_bytes()))
}

/// The members of a layer of the packages at `indexes` of `env`.
pub(crate) fn members<'a>(env: &'a Environment, indexes: &[usize]) -> Vec<Member<'a>> {
    indexes
        .iter()
        .map(|&i| Member {
            dist: env.dists[i].clone(),
            package_key: ContentsCache::key(&env.records[i]),
            contents: &env.contents[i],
            placed: &env.placement.packages[i],
        })
        .collect()
}

/// Makes every planned layer `stored` lacks, as many at once as there are cores, and stores
/// each in `cache`: package layers from their packages (`dirs`, by dist), wheel layers
/// from the wheels. The one place a missing layer is made.
pub(crate) fn make_missing(
    plan: &Plan,
    env: &Environment,
    wheels: Option<&Wheels>,
    fetched: &FetchedPackages,
    stored: &mut [Option<Found>],
    cache: &BlobCache,
    ctx: &Context,
) -> Result<(), Error> {
    let missing: Vec<usize> = (0..plan.layers.len())
        .filter(|&i| stored[i].is_none())
        .collect();
    let reporter = ctx.reporter();
    if !missing.is_empty() {
        reporter.stage_started(Stage::Compose, &format!("{} layers", missing.len()));
        reporter.compose_started(missing.len());
    }
    let made_bytes = std::sync::atomic::AtomicU64::new(0);
    let make = |i: usize| {
        let layer = &plan.layers[i];
        let cancel = ctx.cancel();
        match &layer.recipe {
            Recipe::Packages(m) => {
                let members = members(env, m);
                let key = layer.key.as_ref();
                make_layer(
                    &members,
                    &plan.extra,
                    fetched,
                    &layer.settings,
                    key,
                    cache,
                    cancel,
                )
            }
            Recipe::Wheels(group) => {
                let (installed, _) = wheels.ok_or_else(Error::cancelled)?;
                let members: Vec<_> = group.iter().map(|&w| &installed[w]).collect();
                let key = layer.key.as_ref().ok_or_else(Error::cancelled)?;
                super::pypi::make_layer(&members, &layer.settings, key, cache, cancel)
            }
        }
        .map_err(Error::from)
        .inspect(|made| {
            made_bytes.fetch_add(made.size, Ordering::Relaxed);
            reporter.layer_made(&plan.layers[i].description, made.size);
        })
    };
    for (i, layer) in in_parallel(&missing, make, ctx.cancel())? {
        stored[i] = Some(Found::Made(layer));
    }
    if !missing.is_empty() {
        let bytes = made_bytes.load(Ordering::Relaxed);
        let line = format!("{} layers, {:.1} MB", missing.len(), bytes as f64 / 1e6);
        reporter.stage_finished(Stage::Compose, &line);
    }
    ctx.check_cancel()
}

/// Runs `make` on each of `jobs` on as many threads as there are cores; the first failure
/// stops the rest.
fn in_parallel<T: Send>(
    jobs: &[usize],
    make: impl Fn(usize) -> Result<T, Error> + Sync,
    cancel: &Cancel,
) -> Result<Vec<(usize, T)>, Error> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(jobs.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some(&job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let made = make(job);
                    let failed = made.is_err();
                    if let Ok(mut r) = results.lock() {
                        r.push((job, made));
                    }
                    if failed || cancel.is_cancelled() {
                        // Stop the other workers: the build fails anyway.
                        next.store(jobs.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut made = Vec::new();
    for (job, result) in results.into_inner().unwrap_or_default() {
        made.push((job, result?));
    }
    Ok(made)
}

/// Makes the layer of `members` (plus `extra` entries) from their packages (`sources`, by
/// dist; an archive's spool goes in `tmp`) and stores it in `cache` under `key`.
pub(crate) fn make_layer(
    members: &[Member<'_>],
    extra: &[Entry],
    fetched: &FetchedPackages,
    settings: &LayerSettings,
    key: Option<&Digest>,
    cache: &BlobCache,
    cancel: &Cancel,
) -> crate::image::Result<KeyedLayer> {
    let mut entries = extra.to_vec();
    for m in members {
        let files = match fetched.files.get(&m.dist) {
            Some(kept) => kept.clone(),
            None => fetched
                .sources
                .get(&m.dist)
                .ok_or_else(|| {
                    crate::image::Error::invalid(&m.dist, "the package was not fetched")
                })?
                .files_for(m.contents, &fetched.tmp, &|| cancel.is_cancelled())
                .map_err(|e| crate::image::Error::invalid(&m.dist, e.to_string()))?,
        };
        entries.extend(package_entries(m, &Arc::new(files), settings));
    }
    store_layer(entries, settings, key, cache, cancel)
}

/// Writes the layer tar of `entries` (with `settings`' mtime and owner) into `cache` under
/// `key`: the one place package and wheel layers are written.
pub fn store_layer(
    entries: Vec<Entry>,
    settings: &LayerSettings,
    key: Option<&Digest>,
    cache: &BlobCache,
    cancel: &Cancel,
) -> crate::image::Result<KeyedLayer> {
    let compressions = cache.layer_compressions();
    cache.put_layer_compressed(key, compressions, cancel, |out| {
        write_layer_tar_owned(
            entries,
            settings.mtime,
            settings.owner.as_ref(),
            out,
            cancel,
        )
    })
}

/// The entries of one package's part of a layer.
fn package_entries(
    m: &Member<'_>,
    dir: &Arc<PackageFiles>,
    settings: &LayerSettings,
) -> Vec<Entry> {
    let in_image = settings
        .target_prefix
        .strip_prefix("/")
        .unwrap_or(&settings.target_prefix);
    let target = settings.target_prefix.to_string_lossy().into_owned();
    // Hard links within the package stay hard links: the first path (in tar order) of each inode
    // carries the bytes. Patched files are copies, as conda makes them.
    let mut first_of_inode: HashMap<u64, PathBuf> = HashMap::new();
    let mut files: Vec<(PathBuf, &crate::conda::place::PlacedFile)> = m
        .placed
        .files
        .iter()
        .map(|f| (in_image.join(&f.path), f))
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut entries = Vec::with_capacity(files.len() + 1);
    for (path, f) in files {
        let (data, mode) = match &f.source {
            Source::Script(text) => (EntryData::Bytes(text.clone().into_bytes()), 0o755),
            Source::Package(i) => {
                let p = &m.contents.paths[*i];
                // 0755 or 0644 only: the extracted file's mode depends on the umask of whoever
                // extracted it, and a setuid bit from a package has no place in an image.
                let mode = if p.mode & 0o111 != 0 { 0o755 } else { 0o644 };
                match p.kind {
                    PathKind::Dir => (EntryData::Dir, 0o755),
                    PathKind::Symlink => (
                        EntryData::Symlink(p.link_target.clone().unwrap_or_default()),
                        0o777,
                    ),
                    PathKind::File => {
                        let shared = p.inode.filter(|_| p.placeholder.is_none());
                        match shared.and_then(|ino| first_of_inode.get(&ino)) {
                            Some(first) => (EntryData::HardLink(first.clone()), mode),
                            None => {
                                if let Some(ino) = shared {
                                    first_of_inode.insert(ino, path.clone());
                                }
                                (
                                    EntryData::Source(Arc::new(PackageFile {
                                        dir: dir.clone(),
                                        package: m.dist.clone(),
                                        rel: p.path.clone(),
                                        placeholder: p.placeholder.clone(),
                                        target: target.clone(),
                                        size: p.size,
                                        sha256: p.sha256.as_deref().and_then(sha256_bytes),
                                    })),
                                    mode,
                                )
                            }
                        }
                    }
                }
            }
        };
        entries.push(Entry { path, data, mode });
    }
    entries.push(Entry {
        path: in_image.join(&m.placed.record_path),
        data: EntryData::Bytes(m.placed.record_json.clone()),
        mode: 0o644,
    });
    entries
}

/// A file of an extracted package, read through the checked reader and patched for the target
/// prefix as it streams.
#[derive(Debug)]
struct PackageFile {
    dir: Arc<PackageFiles>,
    package: String,
    rel: String,
    placeholder: Option<Placeholder>,
    target: String,
    size: u64,
    /// The sha256 `paths.json` records for the file as shipped, checked as it streams.
    sha256: Option<[u8; 32]>,
}

/// The 32 bytes of a sha256 in hex, if it is one.
fn sha256_bytes(hex_digest: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut bytes).ok()?;
    Some(bytes)
}

/// A package file's bytes, hashed as they are read and refused at their last byte when they
/// are not what `paths.json` recorded.
struct Checked<R> {
    inner: R,
    hasher: sha2::Sha256,
    expected: [u8; 32],
    left: u64,
    what: String,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.left = self.left.saturating_sub(n as u64);
        if self.left == 0 && n > 0 && self.hasher.clone().finalize()[..] != self.expected[..] {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: its bytes are not what paths.json's sha256 records",
                    self.what
                ),
            ));
        }
        Ok(n)
    }
}

impl PackageFile {
    /// The file's bytes as shipped, checked against `paths.json`'s sha256 when it has one.
    fn shipped<'a>(&self, file: Box<dyn Read + Send>, len: u64) -> Box<dyn Read + 'a> {
        match self.sha256 {
            Some(expected) if len > 0 => Box::new(Checked {
                inner: file,
                hasher: Default::default(),
                expected,
                left: len,
                what: format!("package `{}`: `{}`", self.package, self.rel),
            }),
            _ => Box::new(file),
        }
    }

    fn context(&self, e: impl std::fmt::Display) -> io::Error {
        io::Error::other(format!("package `{}`: `{}`: {e}", self.package, self.rel))
    }
}

impl FileSource for PackageFile {
    fn open(&self) -> io::Result<(u64, Box<dyn Read + '_>)> {
        let (len, file) = self.dir.open_file(&self.rel).map_err(|e| self.context(e))?;
        if len != self.size {
            return Err(self.context(format!(
                "the package cache holds {len} bytes where {} were recorded; remove the package from the cache",
                self.size
            )));
        }
        let file = self.shipped(file, len);
        match &self.placeholder {
            None => Ok((len, file)),
            Some(Placeholder {
                prefix,
                binary: true,
            }) => {
                let reader = BinaryReplacer::new(
                    io::BufReader::with_capacity(256 * 1024, file),
                    prefix.as_bytes(),
                    self.target.as_bytes(),
                )
                .map_err(|e| self.context(e))?;
                Ok((len, Box::new(reader)))
            }
            Some(Placeholder {
                prefix,
                binary: false,
            }) => {
                if len > TEXT_PATCH_CAP {
                    return Err(self.context(format!(
                        "a text file with a prefix placeholder larger than {TEXT_PATCH_CAP} bytes"
                    )));
                }
                let mut bytes = Vec::with_capacity(len as usize);
                file.take(len).read_to_end(&mut bytes)?;
                let patched = replace_text(&bytes, prefix.as_bytes(), self.target.as_bytes());
                Ok((patched.len() as u64, Box::new(io::Cursor::new(patched))))
            }
        }
    }
}

/// Checks, before anything is written, that every binary placeholder can hold `target`.
pub fn check_placeholders(
    members: &[(&str, &PackageContents)],
    target: &Path,
) -> Result<(), crate::conda::Error> {
    let target_len = target.as_os_str().len();
    for (dist, contents) in members {
        for p in &contents.paths {
            if let Some(Placeholder {
                prefix,
                binary: true,
            }) = &p.placeholder
                && prefix.len() < target_len
            {
                return Err(crate::conda::Error::UnsafePackage {
                    package: dist.to_string(),
                    path: p.path.clone(),
                    reason: format!(
                        "its binary prefix placeholder has {} bytes, too few for the target prefix `{}` ({target_len} bytes): choose a shorter --target-prefix",
                        prefix.len(),
                        target.display()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// A cached layer's tar, as a layer of the image.
pub fn cached_layer(
    cache: &BlobCache,
    stored: &KeyedLayer,
    description: String,
) -> crate::image::Layer {
    use crate::image::layer::{FileRange, LayerSource};
    crate::image::Layer::from_blob(
        LayerSource::Blob {
            range: FileRange {
                path: cache.blob_path(&stored.diff_id),
                offset: 0,
                size: stored.size,
            },
            compression: crate::image::Compression::None,
            digest: Some(stored.diff_id.clone()),
        },
        Some(stored.diff_id.clone()),
        description,
    )
}
