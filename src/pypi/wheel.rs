//! A wheel, read hostile-safely and installed as pip installs it into a conda prefix.
//!
//! [`install`] reads the zip's central directory, checks every member (path, kind, size, that
//! `RECORD` lists it with a sha256 that its bytes match) and returns the files the image gets,
//! as paths relative to the prefix ([`InstalledFile`]):
//! - members at the root and `.data/purelib`, `.data/platlib` go to site-packages;
//!   `.data/scripts` to `bin/` (a `#!python` shebang rewritten), `.data/headers` to
//!   `include/pythonX.Y/<name>/`, `.data/data` to the prefix itself;
//! - `console_scripts` and `gui_scripts` become scripts in `bin/`, the text pip writes;
//! - `INSTALLER` (`conda-docker`), `REQUESTED` and `direct_url.json` where pip writes them, and
//!   `RECORD` rewritten for the installed paths (relative to site-packages, sorted).
//!
//! Nothing is extracted and the wheel is never held in memory: each member is streamed once
//! to check it, and its [`WheelMember`] streams it again (checked again) when the layer is
//! written. Directory entries are skipped, as pip skips them; no `.pyc` is compiled.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::metadata::header;
use super::record::{self, RecordRow};
use super::scripts;
use super::{Error, Result, normalize_name, same_version};
use crate::conda::package_files::check_package_path;

/// What `INSTALLER` says.
pub const INSTALLER: &str = "conda-docker";

/// Where a wheel's parts go in the prefix (paths relative to it, `/`-separated).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scheme {
    /// `purelib` and `platlib` (one directory in a conda prefix): `lib/python3.11/site-packages`.
    pub site_packages: String,
    /// `scripts`: `bin`.
    pub scripts: String,
    /// The directory whose `<name>/` subdirectory gets `headers`: `include/python3.11`.
    pub include: String,
}

impl Scheme {
    /// The scheme of a conda prefix on Linux for python `major.minor` (`abiflags` is `t` for a
    /// free-threaded build, else empty), as pip's `posix_prefix` scheme has it.
    pub fn conda(major: u32, minor: u32, abiflags: &str) -> Self {
        Self {
            site_packages: format!("lib/python{major}.{minor}{abiflags}/site-packages"),
            scripts: "bin".into(),
            include: format!("include/python{major}.{minor}{abiflags}"),
        }
    }
}

/// How to install a wheel.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstallOptions {
    /// Where the parts go.
    pub scheme: Scheme,
    /// The interpreter scripts' shebangs name, in the image: `/opt/conda/bin/python`.
    pub python: String,
    /// Writes `REQUESTED`, as pip does for a distribution the user asked for (not a dependency).
    pub requested: bool,
    /// The URL the wheel was given by (a URL or a path, not found on an index): pip writes it
    /// with the wheel's sha256 to `direct_url.json`. `None` for a wheel from an index.
    pub direct_url: Option<String>,
}

/// How large a wheel may be; beyond these it is refused before anything is decompressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Members (files and directories) in the zip.
    pub max_entries: usize,
    /// Uncompressed bytes of all members together.
    pub max_total_size: u64,
    /// Bytes of one file read into memory (`RECORD`, `METADATA`, `WHEEL`, entry points, a
    /// `#!python` script).
    pub max_small_file: u64,
}

impl Default for Limits {
    /// 200,000 entries, 16 GiB uncompressed, 64 MiB per file read into memory.
    fn default() -> Self {
        Self {
            max_entries: 200_000,
            max_total_size: 16 << 30,
            max_small_file: 64 << 20,
        }
    }
}

/// The parts of a wheel's file name: `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WheelName {
    /// The distribution, as escaped in the file name (`typing_extensions`).
    pub name: String,
    /// The version.
    pub version: String,
    /// The build tag, if any.
    pub build: Option<String>,
    /// The python tag(s) (`cp311`, `py2.py3`).
    pub python: String,
    /// The ABI tag(s).
    pub abi: String,
    /// The platform tag(s) (`manylinux_2_17_x86_64.manylinux2014_x86_64`).
    pub platform: String,
}

impl WheelName {
    /// Parses a wheel's file name, or says why it is none.
    pub fn parse(file_name: &str) -> std::result::Result<Self, String> {
        if !file_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+!-".contains(c))
        {
            return Err("a wheel's file name holds only letters, digits and `._+!-`".into());
        }
        let stem = file_name
            .strip_suffix(".whl")
            .ok_or("a wheel's file name ends in `.whl`")?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build, rest) = match parts.as_slice() {
            [n, v, rest @ ..] if rest.len() == 3 => (n, v, None, rest),
            [n, v, b, rest @ ..] if rest.len() == 3 => (n, v, Some(b.to_string()), rest),
            _ => return Err("not `name-version(-build)-python-abi-platform.whl`".into()),
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err("an empty part in `name-version(-build)-python-abi-platform.whl`".into());
        }
        Ok(Self {
            name: name.to_string(),
            version: version.to_string(),
            build,
            python: rest[0].to_string(),
            abi: rest[1].to_string(),
            platform: rest[2].to_string(),
        })
    }
}

/// A regular file of the wheel, to be streamed from it when the layer is written.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WheelMember {
    /// Its name in the zip.
    pub name: String,
    /// Where its (compressed) data starts in the wheel file.
    data_start: u64,
    /// How many bytes of the wheel file it takes.
    compressed_size: u64,
    /// Deflated (else stored).
    deflated: bool,
    /// Its uncompressed size.
    pub size: u64,
    /// Its sha256, checked against `RECORD`.
    pub sha256: [u8; 32],
}

impl WheelMember {
    /// A reader of the member's bytes from the wheel at `wheel`, which fails (`InvalidData`)
    /// if they are not exactly [`Self::size`] bytes with [`Self::sha256`].
    pub fn open(&self, wheel: &Path) -> io::Result<MemberReader> {
        let mut file = File::open(wheel)?;
        file.seek(SeekFrom::Start(self.data_start))?;
        let raw = BufReader::with_capacity(64 * 1024, file).take(self.compressed_size);
        let inner: Box<dyn Read + Send> = if self.deflated {
            Box::new(flate2::read::DeflateDecoder::new(raw))
        } else {
            Box::new(raw)
        };
        Ok(MemberReader {
            inner,
            name: self.name.clone(),
            expected_size: self.size,
            expected_sha256: self.sha256,
            read: 0,
            hasher: Sha256::new(),
            checked: false,
        })
    }
}

/// A member's bytes, checked against its size and sha256 while they stream.
pub struct MemberReader {
    inner: Box<dyn Read + Send>,
    name: String,
    expected_size: u64,
    expected_sha256: [u8; 32],
    read: u64,
    hasher: Sha256,
    checked: bool,
}

impl std::fmt::Debug for MemberReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberReader")
            .field("name", &self.name)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte more than expected is asked for, so a longer member is noticed.
        let room = (self.expected_size - self.read.min(self.expected_size) + 1) as usize;
        let want = buf.len().min(room.max(1));
        let n = self.inner.read(&mut buf[..want])?;
        self.read += n as u64;
        let bad = |what: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("wheel member `{}`: {what}", self.name),
            )
        };
        if self.read > self.expected_size {
            return Err(bad(format!("more than {} bytes", self.expected_size)));
        }
        self.hasher.update(&buf[..n]);
        if n == 0 && !buf.is_empty() && !self.checked {
            self.checked = true;
            if self.read != self.expected_size {
                return Err(bad(format!(
                    "{} bytes where {} were checked",
                    self.read, self.expected_size
                )));
            }
            let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
            if digest != self.expected_sha256 {
                return Err(bad("its sha256 changed since it was checked".into()));
            }
        }
        Ok(n)
    }
}

/// Where an installed file's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FileData {
    /// A member of the wheel, streamed from it.
    Member(WheelMember),
    /// Generated bytes (`RECORD`, `INSTALLER`, a script).
    Bytes(Vec<u8>),
}

/// One file the image gets from a wheel.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstalledFile {
    /// Where it goes, relative to the prefix.
    pub path: String,
    /// Its bytes.
    pub data: FileData,
    /// `0o755` or `0o644`.
    pub mode: u32,
}

/// A wheel, installed: what the image gets from it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstalledWheel {
    /// The distribution's name as `METADATA` gives it.
    pub name: String,
    /// Its version as `METADATA` gives it.
    pub version: String,
    /// The installed `.dist-info` directory, relative to the prefix.
    pub dist_info: String,
    /// Every file, sorted by path.
    pub files: Vec<InstalledFile>,
}

impl InstalledWheel {
    /// The bytes of all files together.
    pub fn size(&self) -> u64 {
        self.files
            .iter()
            .map(|f| match &f.data {
                FileData::Member(m) => m.size,
                FileData::Bytes(b) => b.len() as u64,
            })
            .sum()
    }
}

/// One regular member, as listed by the central directory.
struct Listed {
    index: usize,
    name: String,
    executable: bool,
}

/// The files a wheel installs, by path, each with what put it there (for messages).
type Files = BTreeMap<String, (InstalledFile, String)>;

/// A wheel's zip, opened: its archive and what its file name says.
struct Opened {
    parsed: WheelName,
    archive: zip::ZipArchive<BufReader<File>>,
}

/// An [`Error::Invalid`]: `member` of `wheel` is wrong for `reason`.
fn invalid(wheel: &str, member: &str, reason: String) -> Error {
    Error::Invalid {
        wheel: wheel.to_string(),
        path: member.to_string(),
        reason,
    }
}

/// The zip at `path` (the wheel `file_name`), its file name parsed and its entries counted
/// against `limits`: how [`install`] and [`metadata`] both start.
fn open(path: &Path, file_name: &str, limits: &Limits) -> Result<Opened> {
    let parsed = WheelName::parse(file_name).map_err(|r| invalid(file_name, file_name, r))?;
    let file = File::open(path).map_err(|source| Error::Io {
        wheel: file_name.to_string(),
        path: path.display().to_string(),
        source,
    })?;
    let archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|source| Error::Zip {
        wheel: file_name.to_string(),
        source,
    })?;
    if archive.len() > limits.max_entries {
        return Err(Error::TooLarge {
            wheel: file_name.to_string(),
            what: format!("{} entries", archive.len()),
            limit: limits.max_entries as u64,
        });
    }
    Ok(Opened { parsed, archive })
}

/// Reads the wheel at `path` (its file name is `file_name`, the path may be a cache entry) and
/// returns what installing it puts in the prefix. Refuses, naming the wheel and the member, any
/// unsafe path, symlink or device, duplicate, member missing from `RECORD` or not matching it,
/// a wheel beyond `limits`, and a `.dist-info` or `METADATA` naming another distribution.
pub fn install(
    path: &Path,
    file_name: &str,
    options: &InstallOptions,
    limits: &Limits,
) -> Result<InstalledWheel> {
    let wheel = file_name;
    let Opened {
        parsed,
        mut archive,
    } = open(path, wheel, limits)?;
    if archive.has_duplicate_names() {
        return Err(Error::DuplicatePath {
            wheel: wheel.to_string(),
            path: "(a name the zip's central directory lists twice)".into(),
            first: "one member".into(),
            second: "another".into(),
        });
    }
    let listed = list_members(&mut archive, wheel, limits)?;
    let info_dir = dist_info_dir(&listed, &parsed, wheel)?;
    let mut reader = Reader {
        archive: &mut archive,
        wheel,
        limits,
    };
    let info = read_dist_info(&mut reader, &listed, info_dir, &parsed)?;
    let mut files = Files::new();
    place_members(&mut reader, &listed, &info, options, &mut files)?;
    place_generated(path, wheel, &info, options, &mut files)?;
    Ok(InstalledWheel {
        name: info.name,
        version: info.version,
        dist_info: installed_dist_info(&info.dir, options),
        files: files.into_values().map(|(f, _)| f).collect(),
    })
}

/// The regular members the central directory lists, each name, kind, compression and the
/// total declared size checked (directories checked, then skipped).
fn list_members<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    wheel: &str,
    limits: &Limits,
) -> Result<Vec<Listed>> {
    let mut listed = Vec::with_capacity(archive.len());
    let mut seen = std::collections::HashSet::with_capacity(archive.len());
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let entry = archive.by_index_data(index).map_err(|source| Error::Zip {
            wheel: wheel.to_string(),
            source,
        })?;
        let (name, executable) = check_entry(&entry, wheel)?;
        let is_dir = name.ends_with('/');
        let bare = name.strip_suffix('/').unwrap_or(&name);
        if !seen.insert(bare.to_string()) {
            return Err(Error::DuplicatePath {
                wheel: wheel.to_string(),
                path: bare.to_string(),
                first: name.clone(),
                second: name,
            });
        }
        total = total.saturating_add(entry.size());
        if total > limits.max_total_size {
            return Err(Error::TooLarge {
                wheel: wheel.to_string(),
                what: format!("more than {} uncompressed bytes", limits.max_total_size),
                limit: limits.max_total_size,
            });
        }
        if !is_dir {
            listed.push(Listed {
                index,
                name,
                executable,
            });
        }
    }
    Ok(listed)
}

/// One central-directory entry checked (a safe UTF-8 path, a file or directory, neither
/// encrypted nor compressed as no wheel is): its name and whether it is executable.
fn check_entry(entry: &zip::read::ZipFileEntry<'_>, wheel: &str) -> Result<(String, bool)> {
    let raw = entry.name_raw();
    let name = std::str::from_utf8(raw)
        .map_err(|_| Error::UnsafePath {
            wheel: wheel.to_string(),
            path: String::from_utf8_lossy(raw).into_owned(),
            reason: "the name is not UTF-8".into(),
        })?
        .to_string();
    let is_dir = name.ends_with('/');
    let bare = name.strip_suffix('/').unwrap_or(&name);
    let reason = check_package_path(bare).or_else(|| {
        bare.contains('\\')
            .then_some("the path holds a backslash, which no wheel path has")
    });
    if let Some(reason) = reason {
        return Err(Error::UnsafePath {
            wheel: wheel.to_string(),
            path: name,
            reason: reason.into(),
        });
    }
    let mode = entry.external_attributes() >> 16;
    let kind = match mode & 0o170000 {
        0 | 0o100000 => None,
        0o040000 if is_dir => None,
        0o040000 => Some("a directory without a trailing `/`"),
        0o120000 => Some("a symlink"),
        0o020000 | 0o060000 => Some("a device"),
        0o010000 => Some("a FIFO"),
        0o140000 => Some("a socket"),
        _ => Some("of an unknown kind"),
    };
    if let Some(kind) = kind {
        return Err(Error::NotAFile {
            wheel: wheel.to_string(),
            path: name,
            kind,
        });
    }
    if entry.encrypted() {
        return Err(invalid(wheel, &name, "the member is encrypted".into()));
    }
    let compression = entry.compression();
    if !matches!(
        compression,
        zip::CompressionMethod::Stored | zip::CompressionMethod::Deflated
    ) {
        let reason =
            format!("compression `{compression}` is not one a wheel uses (stored, deflated)");
        return Err(invalid(wheel, &name, reason));
    }
    let executable = mode & 0o170000 == 0o100000 && mode & 0o111 != 0;
    Ok((name, executable))
}

/// Whether `found` (`name-version`) is the distribution `parsed` names.
fn names(parsed: &WheelName, found: &str) -> bool {
    found.rsplit_once('-').is_some_and(|(n, v)| {
        normalize_name(n) == normalize_name(&parsed.name) && same_version(v, &parsed.version)
    })
}

/// The one `.dist-info` directory, named as the file name says.
fn dist_info_dir<'a>(listed: &'a [Listed], parsed: &WheelName, wheel: &str) -> Result<&'a str> {
    let mut info_dirs: Vec<&str> = listed
        .iter()
        .filter_map(|l| l.name.split_once('/').map(|(top, _)| top))
        .filter(|top| top.ends_with(".dist-info"))
        .collect();
    info_dirs.sort_unstable();
    info_dirs.dedup();
    let info_dir = match info_dirs.as_slice() {
        [one] => *one,
        [] => {
            return Err(invalid(
                wheel,
                wheel,
                "it has no `.dist-info` directory".into(),
            ));
        }
        many => {
            let reason = format!(
                "it has several `.dist-info` directories: {}",
                many.join(", ")
            );
            return Err(invalid(wheel, wheel, reason));
        }
    };
    let stem = info_dir.trim_end_matches(".dist-info");
    if !names(parsed, stem) {
        return Err(Error::NameMismatch {
            wheel: wheel.to_string(),
            place: "`.dist-info` directory",
            expected: format!("{}-{}", parsed.name, parsed.version),
            found: stem.to_string(),
        });
    }
    Ok(info_dir)
}

/// What a wheel's `.dist-info` says: its directory, name, version, `RECORD` and entry points.
struct DistInfo {
    /// `name-version.dist-info`.
    dir: String,
    name: String,
    version: String,
    rows: HashMap<String, RecordRow>,
    entry_points: Vec<scripts::EntryPoint>,
}

/// Reads `WHEEL` (a 1.x version), `METADATA` (the name and version the file name gives),
/// `RECORD` and `entry_points.txt` from `info_dir`.
fn read_dist_info<R: Read + Seek>(
    reader: &mut Reader<'_, R>,
    listed: &[Listed],
    info_dir: &str,
    parsed: &WheelName,
) -> Result<DistInfo> {
    let wheel = reader.wheel;
    let mut small = |file: &str| -> Result<Option<(String, String)>> {
        let name = format!("{info_dir}/{file}");
        let Some(l) = listed.iter().find(|l| l.name == name) else {
            return Ok(None);
        };
        let bytes = reader.read_small(l.index, &name)?;
        let text =
            String::from_utf8(bytes).map_err(|_| invalid(wheel, &name, "not UTF-8".into()))?;
        Ok(Some((name, text)))
    };
    let mut required = |file: &str| {
        small(file)?.ok_or_else(|| invalid(wheel, &format!("{info_dir}/{file}"), "missing".into()))
    };
    let (at, wheel_text) = required("WHEEL")?;
    check_wheel_version(&wheel_text).map_err(|r| invalid(wheel, &at, r))?;
    let (at, metadata) = required("METADATA")?;
    let (name, version) = name_and_version(&metadata)
        .ok_or_else(|| invalid(wheel, &at, "no Name or Version".into()))?;
    if !names(parsed, &format!("{name}-{version}")) {
        return Err(Error::NameMismatch {
            wheel: wheel.to_string(),
            place: "METADATA",
            expected: format!("{}-{}", parsed.name, parsed.version),
            found: format!("{name}-{version}"),
        });
    }
    let (at, record_text) = required("RECORD")?;
    let rows = record::parse(&record_text).map_err(|r| invalid(wheel, &at, r))?;
    let entry_points = match small("entry_points.txt")? {
        Some((at, text)) => {
            scripts::parse_entry_points(&text).map_err(|r| invalid(wheel, &at, r))?
        }
        None => Vec::new(),
    };
    Ok(DistInfo {
        dir: info_dir.to_string(),
        name,
        version,
        rows,
        entry_points,
    })
}

/// The installed `.dist-info` directory, relative to the prefix.
fn installed_dist_info(info_dir: &str, options: &InstallOptions) -> String {
    let site = options.scheme.site_packages.trim_end_matches('/');
    format!("{site}/{info_dir}")
}

/// Adds every member but those pip generates to `files`: each listed in `RECORD` with its
/// sha256 (a signature aside), checked against it, placed by its scheme, `#!python` rewritten.
fn place_members<R: Read + Seek>(
    reader: &mut Reader<'_, R>,
    listed: &[Listed],
    info: &DistInfo,
    options: &InstallOptions,
    files: &mut Files,
) -> Result<()> {
    let wheel = reader.wheel;
    let info_dir = &info.dir;
    let record_name = format!("{info_dir}/RECORD");
    let generated =
        ["INSTALLER", "REQUESTED", "direct_url.json", "RECORD"].map(|f| format!("{info_dir}/{f}"));
    let data_dir = format!("{}.data", info_dir.trim_end_matches(".dist-info"));
    for l in listed {
        if generated.contains(&l.name) {
            continue; // rewritten below, as pip does
        }
        let signature =
            l.name == format!("{record_name}.jws") || l.name == format!("{record_name}.p7s");
        let row = info.rows.get(&l.name);
        if row.and_then(|r| r.sha256).is_none() && !signature {
            return Err(Error::NotInRecord {
                wheel: wheel.to_string(),
                path: l.name.clone(),
            });
        }
        let (path, is_script) = install_path(&l.name, &data_dir, &info.name, &options.scheme)
            .map_err(|reason| Error::UnsafePath {
                wheel: wheel.to_string(),
                path: l.name.clone(),
                reason,
            })?;
        let checked = reader.check(l.index, &l.name, row, is_script)?;
        let mode = if l.executable || is_script {
            0o755
        } else {
            0o644
        };
        let data = match checked
            .script
            .and_then(|s| scripts::fix_script(&s, &options.python))
        {
            Some(fixed) => FileData::Bytes(fixed),
            None => FileData::Member(checked.member),
        };
        add(
            files,
            wheel,
            InstalledFile { path, data, mode },
            l.name.clone(),
        )?;
    }
    Ok(())
}

/// Adds what pip writes besides the members: the entry points' scripts, `INSTALLER`,
/// `REQUESTED` and `direct_url.json` as asked, and `RECORD` for it all.
fn place_generated(
    path: &Path,
    wheel: &str,
    info: &DistInfo,
    options: &InstallOptions,
    files: &mut Files,
) -> Result<()> {
    for point in &info.entry_points {
        let text = scripts::entry_point_script(point, &options.python);
        let file = InstalledFile {
            path: format!("{}/{}", options.scheme.scripts, point.name),
            data: FileData::Bytes(text.into_bytes()),
            mode: 0o755,
        };
        add(files, wheel, file, format!("entry point `{}`", point.name))?;
    }
    let mut extra = vec![("INSTALLER", format!("{INSTALLER}\n").into_bytes())];
    if options.requested {
        extra.push(("REQUESTED", Vec::new()));
    }
    if let Some(url) = &options.direct_url {
        let sha256 = super::sha256_file(path).map_err(|source| Error::Io {
            wheel: wheel.to_string(),
            path: path.display().to_string(),
            source,
        })?;
        extra.push(("direct_url.json", direct_url_json(url, &sha256)));
    }
    let installed_info = installed_dist_info(&info.dir, options);
    for (file, bytes) in extra {
        let installed = InstalledFile {
            path: format!("{installed_info}/{file}"),
            data: FileData::Bytes(bytes),
            mode: 0o644,
        };
        add(files, wheel, installed, format!("the generated {file}"))?;
    }
    let record = InstalledFile {
        path: format!("{installed_info}/RECORD"),
        data: FileData::Bytes(installed_record(files, &installed_info, options)),
        mode: 0o644,
    };
    add(files, wheel, record, "the generated RECORD".into())
}

/// `RECORD` for `files`: every file relative to site-packages, then itself without a hash.
fn installed_record(files: &Files, installed_info: &str, options: &InstallOptions) -> Vec<u8> {
    let site = options.scheme.site_packages.trim_end_matches('/');
    let up = "../".repeat(site.split('/').count());
    let relative = |p: &str| match p.strip_prefix(&format!("{site}/")) {
        Some(inside) => inside.to_string(),
        None => format!("{up}{p}"),
    };
    let mut rows: Vec<(String, Option<record::FileDigest>)> = files
        .values()
        .map(|(f, _)| {
            let digest = match &f.data {
                FileData::Member(m) => (m.sha256, m.size),
                FileData::Bytes(b) => (Sha256::digest(b).into(), b.len() as u64),
            };
            (relative(&f.path), Some(digest))
        })
        .collect();
    rows.push((relative(&format!("{installed_info}/RECORD")), None));
    record::write(&rows)
}

/// Adds `file` to `files`, refusing an unsafe or second path (`origin` says what put it there).
fn add(files: &mut Files, wheel: &str, file: InstalledFile, origin: String) -> Result<()> {
    if let Some(reason) = check_package_path(&file.path).or_else(|| {
        (file.path == "conda-meta" || file.path.starts_with("conda-meta/"))
            .then_some("`conda-meta/` holds the environment's conda records")
    }) {
        return Err(Error::UnsafePath {
            wheel: wheel.to_string(),
            path: origin,
            reason: format!("it would be installed at `{}`: {reason}", file.path),
        });
    }
    if let Some((_, first)) = files.get(&file.path) {
        return Err(Error::DuplicatePath {
            wheel: wheel.to_string(),
            path: file.path.clone(),
            first: first.clone(),
            second: origin,
        });
    }
    files.insert(file.path.clone(), (file, origin));
    Ok(())
}

/// Where a member goes (relative to the prefix), and whether it is a script; or why it cannot
/// be installed.
fn install_path(
    member: &str,
    data_dir: &str,
    name: &str,
    scheme: &Scheme,
) -> std::result::Result<(String, bool), String> {
    let site = scheme.site_packages.trim_end_matches('/');
    let Some(rest) = member
        .strip_prefix(data_dir)
        .and_then(|r| r.strip_prefix('/'))
    else {
        return Ok((format!("{site}/{member}"), false));
    };
    let (key, inside) = rest
        .split_once('/')
        .ok_or_else(|| format!("`{data_dir}/` holds only directories named after a scheme"))?;
    Ok(match key {
        "purelib" | "platlib" => (format!("{site}/{inside}"), false),
        "scripts" => {
            if inside.contains('/') {
                return Err("a script in a subdirectory of `.data/scripts`".into());
            }
            (format!("{}/{inside}", scheme.scripts), true)
        }
        "headers" => (format!("{}/{name}/{inside}", scheme.include), false),
        "data" => (inside.to_string(), false),
        other => {
            return Err(format!(
                "`{other}` is no install scheme (purelib, platlib, scripts, headers, data)"
            ));
        }
    })
}

/// Checks `Wheel-Version` in `WHEEL` is 1.x, as pip does.
fn check_wheel_version(text: &str) -> std::result::Result<(), String> {
    let version = header(text, "Wheel-Version").ok_or("no Wheel-Version")?;
    match version.split('.').next().map(str::parse::<u32>) {
        Some(Ok(1)) => Ok(()),
        _ => Err(format!(
            "Wheel-Version `{version}`: only 1.x can be installed"
        )),
    }
}

/// The `METADATA` of the wheel at `path` (its file name is `file_name`), read from the one
/// `.dist-info` directory its file name says, at most `limits.max_small_file` bytes; the zip's
/// directory is checked as [`install`] checks it (entries, UTF-8 safe names), nothing else.
pub fn metadata(path: &Path, file_name: &str, limits: &Limits) -> Result<String> {
    let wheel = file_name;
    let Opened {
        parsed,
        mut archive,
    } = open(path, wheel, limits)?;
    let mut found: Vec<(usize, String)> = Vec::new();
    for index in 0..archive.len() {
        let entry = archive.by_index_data(index).map_err(|source| Error::Zip {
            wheel: wheel.to_string(),
            source,
        })?;
        let Ok(name) = std::str::from_utf8(entry.name_raw()) else {
            continue;
        };
        let Some((dir, "METADATA")) = name.split_once('/') else {
            continue;
        };
        let Some(stem) = dir.strip_suffix(".dist-info") else {
            continue;
        };
        if names(&parsed, stem) && check_package_path(name).is_none() {
            found.push((index, name.to_string()));
        }
    }
    let (index, name) = match found.as_slice() {
        [one] => one.clone(),
        [] => {
            let reason = format!(
                "it has no `{}-{}.dist-info/METADATA`",
                parsed.name, parsed.version
            );
            return Err(invalid(wheel, wheel, reason));
        }
        _ => {
            let reason = "it has several `METADATA` files".into();
            return Err(invalid(wheel, wheel, reason));
        }
    };
    let mut reader = Reader {
        archive: &mut archive,
        wheel,
        limits,
    };
    let bytes = reader.read_small(index, &name)?;
    String::from_utf8(bytes).map_err(|_| invalid(wheel, &name, "not UTF-8".into()))
}

/// `Name` and `Version` of a `METADATA`.
fn name_and_version(metadata: &str) -> Option<(String, String)> {
    Some((header(metadata, "Name")?, header(metadata, "Version")?))
}

/// `direct_url.json` as pip writes it for an archive (`json.dumps(..., sort_keys=True)`).
fn direct_url_json(url: &str, sha256: &str) -> Vec<u8> {
    let url = serde_json::Value::String(url.to_string());
    format!(
        "{{\"archive_info\": {{\"hash\": \"sha256={sha256}\", \"hashes\": {{\"sha256\": \"{sha256}\"}}}}, \"url\": {url}}}"
    )
    .into_bytes()
}

/// Refuses member `name` of `wheel` when the `read` bytes hashing to `sha256` are not the
/// `declared` size of the zip, or not what its `RECORD` row says.
fn compare(
    wheel: &str,
    name: &str,
    declared: u64,
    read: u64,
    sha256: &[u8; 32],
    row: Option<&RecordRow>,
) -> Result<()> {
    let mismatch = |expected: String, found: String| Error::HashMismatch {
        wheel: wheel.to_string(),
        path: name.to_string(),
        expected,
        found,
    };
    if read != declared {
        let more = if read > declared { "more than " } else { "" };
        return Err(mismatch(
            format!("{declared} bytes (the zip's size)"),
            format!("{more}{read} bytes"),
        ));
    }
    let Some(row) = row else {
        return Ok(());
    };
    if let Some(expected) = row.sha256
        && &expected != sha256
    {
        return Err(mismatch(
            record::hash_field(&expected),
            record::hash_field(sha256),
        ));
    }
    if let Some(size) = row.size
        && size != read
    {
        return Err(mismatch(format!("{size} bytes"), format!("{read} bytes")));
    }
    Ok(())
}

/// A member, checked.
struct Checked {
    member: WheelMember,
    /// The bytes of a script that starts with `#!python`, to be rewritten.
    script: Option<Vec<u8>>,
}

/// Streams members of the archive, bounded by the limits.
struct Reader<'a, R: Read + Seek> {
    archive: &'a mut zip::ZipArchive<R>,
    wheel: &'a str,
    limits: &'a Limits,
}

impl<R: Read + Seek> Reader<'_, R> {
    fn io(&self, name: &str) -> impl FnOnce(io::Error) -> Error + use<R> {
        let wheel = self.wheel.to_string();
        let path = name.to_string();
        move |source| Error::Io {
            wheel,
            path,
            source,
        }
    }

    fn zip(&self) -> impl FnOnce(zip::result::ZipError) -> Error + use<R> {
        let wheel = self.wheel.to_string();
        move |source| Error::Zip { wheel, source }
    }

    /// A small member's bytes, at most `max_small_file` of them.
    fn read_small(&mut self, index: usize, name: &str) -> Result<Vec<u8>> {
        let cap = self.limits.max_small_file;
        let too_large = || Error::TooLarge {
            wheel: self.wheel.to_string(),
            what: format!("`{name}`"),
            limit: cap,
        };
        let zip = self.zip();
        let mut file = self.archive.by_index(index).map_err(zip)?;
        if file.size() > cap {
            return Err(too_large());
        }
        let mut bytes = Vec::with_capacity(file.size() as usize);
        (&mut file)
            .take(cap + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Io {
                wheel: self.wheel.to_string(),
                path: name.to_string(),
                source: e,
            })?;
        if bytes.len() as u64 > cap {
            return Err(too_large());
        }
        Ok(bytes)
    }

    /// Streams a member once: its size and sha256, checked against `RECORD`'s row; a script's
    /// bytes kept when it starts with `#!python`.
    fn check(
        &mut self,
        index: usize,
        name: &str,
        row: Option<&RecordRow>,
        script: bool,
    ) -> Result<Checked> {
        let wheel = self.wheel.to_string();
        let cap = self.limits.max_small_file;
        let io = self.io(name);
        let zip = self.zip();
        let mut file = self.archive.by_index(index).map_err(zip)?;
        let declared = file.size();
        let (data_start, compressed_size) = (file.data_start(), file.compressed_size());
        let deflated = file.compression() == zip::CompressionMethod::Deflated;
        let mut hasher = Sha256::new();
        let mut kept: Option<Vec<u8>> = None;
        let mut head: Vec<u8> = Vec::with_capacity(8);
        let mut buf = vec![0u8; 64 * 1024];
        let mut read: u64 = 0;
        let mut limited = (&mut file).take(declared + 1);
        let result: io::Result<()> = (|| {
            loop {
                let n = limited.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                // A script's first bytes decide whether it is kept, to have its shebang fixed.
                if script && head.len() < 8 {
                    let take = n.min(8 - head.len());
                    head.extend_from_slice(&buf[..take]);
                    if head.len() == 8 || take < n {
                        if head.starts_with(b"#!python") {
                            if declared > cap {
                                return Err(io::Error::other(format!(
                                    "a `#!python` script larger than {cap} bytes"
                                )));
                            }
                            let mut k = Vec::with_capacity(declared as usize);
                            k.extend_from_slice(&head);
                            kept = Some(k);
                        }
                        if let Some(k) = kept.as_mut() {
                            k.extend_from_slice(&buf[take..n]);
                        }
                    }
                } else if let Some(k) = kept.as_mut() {
                    k.extend_from_slice(&buf[..n]);
                }
                read += n as u64;
                hasher.update(&buf[..n]);
            }
        })();
        result.map_err(io)?;
        let sha256: [u8; 32] = hasher.finalize().into();
        compare(&wheel, name, declared, read, &sha256, row)?;
        let data_start = data_start.ok_or_else(|| Error::Invalid {
            wheel: wheel.clone(),
            path: name.to_string(),
            reason: "the zip gives no data offset".into(),
        })?;
        Ok(Checked {
            member: WheelMember {
                name: name.to_string(),
                data_start,
                compressed_size,
                deflated,
                size: read,
                sha256,
            },
            script: kept,
        })
    }
}

/// The files of `installed` by path, for tests and messages.
pub fn paths(installed: &InstalledWheel) -> Vec<&str> {
    installed.files.iter().map(|f| f.path.as_str()).collect()
}

/// Reads an installed file's bytes (streamed from the wheel at `wheel` or generated).
pub fn read_file(file: &InstalledFile, wheel: &Path) -> io::Result<Vec<u8>> {
    match &file.data {
        FileData::Bytes(b) => Ok(b.clone()),
        FileData::Member(m) => {
            let mut out = Vec::with_capacity(m.size as usize);
            m.open(wheel)?.read_to_end(&mut out)?;
            Ok(out)
        }
    }
}

#[cfg(test)]
#[path = "wheel_tests.rs"]
mod tests;
