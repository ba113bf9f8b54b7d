//! Tar archives of images (docker-archive, oci-archive): an index of an existing archive's
//! entries, so blobs are read in place, and a writer that streams in the blobs
//! [`crate::image::resolve`] decides (hashed on the way unless the blob cache vouches for them),
//! filling in each tar header afterwards.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use super::oci_layout::{self, LayoutFiles};
use super::{WriteContext, WrittenImage};
use crate::atomic::AtomicFile;
use crate::image::layer::FileRange;
use crate::image::resolve::{ResolvedImage, resolve};
use crate::image::{Compression, Digest, Encoding, Error, Image, Result};

/// The regular files and symlinks of an archive, by normalized name.
pub(crate) struct ArchiveIndex {
    path: PathBuf,
    files: HashMap<String, (u64, u64)>,
    links: HashMap<String, String>,
}

fn normalize(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

impl ArchiveIndex {
    /// Indexes the tar file at `path`, a `kind` of archive (`a docker-archive`), for messages.
    pub(crate) fn read(path: &Path, kind: &str) -> Result<Self> {
        if path.is_dir() {
            return Err(Error::invalid(
                path,
                format!("is a directory; {kind} is a tar file (use `oci:DIR` for a layout)"),
            ));
        }
        let mut file = File::open(path).map_err(Error::io("reading", path))?;
        let len = file.metadata().map_err(Error::io("reading", path))?.len();
        let mut magic = [0u8; 4];
        let n = file.read(&mut magic).map_err(Error::io("reading", path))?;
        let (tool, ext) = match Compression::sniff(&magic[..n]) {
            Compression::Gzip => ("gunzip", "gzip"),
            Compression::Zstd => ("unzstd", "zstd"),
            Compression::None => ("", ""),
        };
        if !tool.is_empty() {
            return Err(Error::invalid(
                path,
                format!(
                    "the whole archive is {ext}-compressed (as `docker save | {ext}` makes it): \
                     decompress it first, e.g. `{tool} -k {}`",
                    path.display()
                ),
            ));
        }
        file.seek(SeekFrom::Start(0))
            .map_err(Error::io("reading", path))?;
        // Seek over entry data rather than read it: only the headers are read here.
        let mut archive = tar::Archive::new(io::BufReader::new(file));
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        let bad = |e: io::Error| {
            // The tar reader's messages can quote raw bytes of the file: keep the first line.
            let msg = e.to_string();
            let first: String = msg
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(120)
                .collect();
            Error::invalid(path, format!("not a readable tar archive ({first})"))
        };
        for entry in archive.entries_with_seek().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            let Some(name) = normalize(&name) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if entry.raw_file_position() + entry.size() > len {
                        return Err(Error::invalid(
                            path,
                            format!("`{name}` is cut short: the archive is truncated"),
                        ));
                    }
                    files.insert(name, (entry.raw_file_position(), entry.size()));
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(target) = entry.link_name().map_err(bad)? {
                        links.insert(name, target.to_string_lossy().into_owned());
                    }
                }
                _ => {}
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            files,
            links,
        })
    }

    /// The byte range of `name`, following symlinks (relative to the link's directory).
    pub(crate) fn range(&self, archive: &Path, name: &str) -> Result<FileRange> {
        let mut current = normalize(name).ok_or_else(|| {
            Error::invalid(
                archive,
                format!("`{name}` is an absolute path or leaves the archive"),
            )
        })?;
        for _ in 0..16 {
            if let Some(&(offset, size)) = self.files.get(&current) {
                return Ok(FileRange {
                    path: archive.to_path_buf(),
                    offset,
                    size,
                });
            }
            let Some(target) = self.links.get(&current) else {
                return Err(Error::invalid(
                    archive,
                    format!("`{name}` is listed in manifest.json but not in the archive"),
                ));
            };
            let base = Path::new(&current).parent().unwrap_or(Path::new(""));
            current = normalize(&base.join(target).to_string_lossy()).ok_or_else(|| {
                Error::invalid(archive, format!("link `{current}` leaves the archive"))
            })?;
        }
        Err(Error::invalid(
            archive,
            format!("`{name}`: too many levels of symlinks"),
        ))
    }

    /// The bytes of the small file `name` (JSON), capped at [`crate::capped::JSON_CAP`].
    pub(crate) fn read_small(&self, archive: &Path, name: &str) -> Result<Vec<u8>> {
        let range = self.range(archive, name)?;
        let mut f = File::open(archive).map_err(Error::io("reading", archive))?;
        f.seek(SeekFrom::Start(range.offset))
            .map_err(Error::io("reading", archive))?;
        let buf = crate::capped::read_capped(
            f.take(range.size),
            Some(range.size),
            crate::capped::JSON_CAP,
        )
        .map_err(|e| {
            if crate::capped::is_too_large(&e) {
                Error::invalid(archive, format!("`{name}` {e}"))
            } else {
                Error::io("reading", archive)(e)
            }
        })?;
        if buf.len() as u64 != range.size {
            return Err(Error::invalid(archive, format!("`{name}` is truncated")));
        }
        Ok(buf)
    }

    /// True if the archive has a regular file or link named `name`.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.files.contains_key(name) || self.links.contains_key(name)
    }
}

impl LayoutFiles for ArchiveIndex {
    fn location(&self) -> &Path {
        &self.path
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        self.read_small(&self.path, name)
    }

    fn blob(&self, digest: &Digest) -> Result<FileRange> {
        self.range(
            &self.path,
            &format!("blobs/{}/{}", digest.algorithm(), digest.hex()),
        )
    }
}

/// The compression of the blob at `range`, from its first bytes.
pub(crate) fn sniff(range: &FileRange) -> Result<Compression> {
    let mut f = File::open(&range.path).map_err(Error::io("reading", &range.path))?;
    f.seek(SeekFrom::Start(range.offset))
        .map_err(Error::io("reading", &range.path))?;
    let mut magic = [0u8; 4];
    let n = f
        .take(range.size.min(4))
        .read(&mut magic)
        .map_err(Error::io("reading", &range.path))?;
    Ok(Compression::sniff(&magic[..n]))
}

/// A tar archive writer whose entries can be streamed before their size and name are known.
pub(crate) struct StreamingTar<W: Write + Seek> {
    out: W,
    mtime: u64,
}

impl<W: Write + Seek> StreamingTar<W> {
    fn header(
        &self,
        name: &str,
        size: u64,
        kind: tar::EntryType,
        mode: u32,
    ) -> io::Result<tar::Header> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)?;
        h.set_size(size);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        Ok(h)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (512 - size % 512) % 512;
        self.out.write_all(&[0u8; 512][..rem as usize])
    }

    fn append_dir(&mut self, name: &str) -> io::Result<()> {
        let h = self.header(name, 0, tar::EntryType::Directory, 0o755)?;
        self.out.write_all(h.as_bytes())
    }

    fn append_bytes(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        let h = self.header(name, data.len() as u64, tar::EntryType::Regular, 0o644)?;
        self.out.write_all(h.as_bytes())?;
        self.out.write_all(data)?;
        self.pad(data.len() as u64)
    }

    /// Streams an entry: `write` produces its bytes and returns its name, known only at the end.
    /// When `write` returns `None` (a duplicate), the entry is rolled back.
    fn append_streamed<T>(
        &mut self,
        write: impl FnOnce(&mut W) -> Result<(Option<String>, T)>,
        io_err: impl Fn(io::Error) -> Error,
    ) -> Result<T> {
        let start = self.out.stream_position().map_err(&io_err)?;
        self.out.write_all(&[0u8; 512]).map_err(&io_err)?;
        let (name, value) = write(&mut self.out)?;
        let end = self.out.stream_position().map_err(&io_err)?;
        match name {
            Some(name) => {
                let size = end - start - 512;
                let h = self
                    .header(&name, size, tar::EntryType::Regular, 0o644)
                    .map_err(&io_err)?;
                self.out.seek(SeekFrom::Start(start)).map_err(&io_err)?;
                self.out.write_all(h.as_bytes()).map_err(&io_err)?;
                self.out.seek(SeekFrom::Start(end)).map_err(&io_err)?;
                self.pad(size).map_err(&io_err)?;
            }
            None => {
                self.out.seek(SeekFrom::Start(start)).map_err(&io_err)?;
            }
        }
        Ok(value)
    }
}

/// The name of a blob inside an archive.
pub(crate) fn blob_name(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// Writes `image` as a tar at `path`: every layer's blob as [`resolve`] decides it for
/// `encoding` (and the context's blob store), the config and the OCI manifest under `blobs/sha256/`, then the
/// files `index_files` names for what was written, then `oci-layout`. Written through
/// [`crate::atomic::AtomicFile`], so a failed or cancelled write leaves no file behind.
pub(crate) fn write_archive(
    image: &Image,
    path: &Path,
    encoding: Encoding,
    ctx: &WriteContext<'_>,
    index_files: impl FnOnce(&ResolvedImage) -> io::Result<Vec<(&'static str, Vec<u8>)>>,
) -> Result<WrittenImage> {
    if path.is_dir() {
        return Err(Error::Output {
            path: path.to_path_buf(),
            reason: "it is a directory (use `oci:DIR` to write an OCI layout)".into(),
        });
    }
    crate::atomic::remove_stale(crate::atomic::parent_dir(path));
    let atomic = AtomicFile::new(path).map_err(|e| Error::Output {
        path: path.to_path_buf(),
        reason: format!("cannot create a file next to it: {}", e.kind()),
    })?;
    let io_err = |e: io::Error| Error::io("writing", path)(e);
    let mut tar = StreamingTar {
        out: BufWriter::with_capacity(1 << 20, atomic.file().try_clone().map_err(io_err)?),
        mtime: 0,
    };
    tar.append_dir("blobs/").map_err(io_err)?;
    tar.append_dir("blobs/sha256/").map_err(io_err)?;

    let (cancel, reporter) = (ctx.session.cancel, ctx.session.reporter);
    let resolution = resolve(image, encoding, ctx.session.blob_store());
    let mut layers = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let total = resolution.layers.len();
    for (i, blob) in resolution.layers.iter().enumerate() {
        reporter.layer_started(i, total, blob.layer());
        let written = tar.append_streamed(
            |out| {
                let w = blob.write_to(out, cancel)?;
                let name = seen.insert(w.digest.clone()).then(|| blob_name(&w.digest));
                Ok((name, w))
            },
            io_err,
        )?;
        reporter.layer_finished(i, blob.layer(), &written);
        layers.push(written);
    }
    let resolved = resolution.finish(layers);
    for (digest, bytes) in [
        (&resolved.config_digest, &resolved.config),
        (&resolved.manifest_digest, &resolved.manifest),
    ] {
        if seen.insert(digest.clone()) {
            tar.append_bytes(&blob_name(digest), bytes)
                .map_err(io_err)?;
        }
    }
    for (name, bytes) in index_files(&resolved).map_err(io_err)? {
        tar.append_bytes(name, &bytes).map_err(io_err)?;
    }
    tar.append_bytes("oci-layout", oci_layout::OCI_LAYOUT_FILE)
        .map_err(io_err)?;
    tar.out.write_all(&[0u8; 1024]).map_err(io_err)?;
    let file = tar.out.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    cancel.check().map_err(io_err)?;
    atomic.commit().map_err(io_err)?;
    Ok(WrittenImage::from_resolved(resolved))
}
