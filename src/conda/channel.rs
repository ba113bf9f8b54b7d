//! Channels as users name them (`conda-forge`, an http(s) or `file://` URL, or a local
//! directory), and where each channel's packages are really fetched from.
//!
//! Every channel has a **canonical** URL, the one records, lockfiles and images hold, and a
//! place packages are fetched from: a mirror (`--mirror`, the config file's `[mirrors]`), or the
//! local directory a channel was given as. A local directory is named by `--channel-name
//! NAME=DIR` or by the `--mirror` it is the copy of; else it is recorded as what it is, its
//! `file://` URL (a channel is never invented for it: a lock written from such a build
//! rebuilds on that machine, and [`ChannelSource::is_unnamed_local`] lets the build say how to
//! make the record portable). [`Sources`] maps both ways.

use std::path::{Path, PathBuf};

use rattler_conda_types::{Channel, ChannelConfig, Subdir};
use url::Url;

use super::{Error, Result};

/// Where conda's channel names point (`conda-forge` means `https://conda.anaconda.org/conda-forge`).
pub const CHANNEL_ALIAS: &str = "https://conda.anaconda.org/";

/// A channel to solve against: the canonical URL records get, and the channel to read.
#[derive(Clone, Debug)]
pub struct ChannelSource {
    /// The URL records, lockfiles and images name (ends in `/`).
    pub canonical: Url,
    /// The channel its repodata and packages are read from (a mirror or a local directory).
    pub fetch: Channel,
}

impl ChannelSource {
    /// A local directory neither `--channel-name` nor `--mirror` names: its records hold its
    /// `file://` URL, which only this machine can read.
    pub fn is_unnamed_local(&self) -> bool {
        self.canonical.scheme() == "file"
    }
}

/// Local channel URLs as the paths they are (`/home/me/channel`).
fn shown_dirs(dirs: &[&Url]) -> Vec<String> {
    dirs.iter()
        .map(|u| match u.to_file_path() {
            Ok(p) => p.display().to_string().trim_end_matches('/').to_string(),
            Err(()) => u.to_string(),
        })
        .collect()
}

/// The warning a build with exact packages (a lockfile's) prints, once, of the unnamed local
/// channels no package is in: they name no channel, so nothing is fetched from them.
pub fn unused_local_warning(dirs: &[&Url]) -> String {
    let shown = shown_dirs(dirs);
    let example = shown.first().map_or("DIR", String::as_str);
    format!(
        "no package is fetched from {}: the packages are fetched from their own URLs, and \
         only a local channel named with --channel-name NAME=DIR (e.g. --channel-name \
         conda-forge={example}) or --mirror stands in for a channel",
        shown.join(", ")
    )
}

/// The warning a build from unnamed local channels prints, once: how to name them.
pub fn unnamed_local_warning(dirs: &[&Url]) -> String {
    let shown = shown_dirs(dirs);
    let example = shown.first().map_or("DIR", String::as_str);
    let (what, urls) = match shown.as_slice() {
        [one] => (format!("local channel {one} is"), "its file:// URL"),
        [rest @ .., last] => (
            format!("local channels {} and {last} are", rest.join(", ")),
            "their file:// URLs",
        ),
        [] => ("no local channel is".to_string(), "a file:// URL"),
    };
    format!(
        "{what} recorded as {urls}, which only this machine can read; for a portable record \
         (image, SBOM, lockfile), name the channel each is a copy of with --channel-name \
         NAME=DIR, e.g. --channel-name conda-forge={example}"
    )
}

/// Where each canonical channel's packages are fetched from, and the reverse.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// (canonical base, fetch base), both ending in `/`; the first match wins.
    mirrors: Vec<(Url, Url)>,
    /// Names given to local channel directories (`--channel-name NAME=DIR`).
    names: Vec<(PathBuf, String)>,
}

/// `url` with a trailing `/`, so it can be a prefix of package URLs.
fn as_base(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.set_fragment(None);
    url.set_query(None);
    url
}

/// The canonical URL of a channel named `name` (a name or a URL).
fn named_channel(name: &str) -> std::result::Result<Url, String> {
    let url = if name.contains("://") {
        Url::parse(name).map_err(|e| format!("`{name}` is not a URL: {e}"))?
    } else {
        if name.is_empty()
            || name.starts_with(['/', '.'])
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            return Err(format!(
                "`{name}` is not a channel name (letters, digits, `-`, `_`, `.`, `/`) or URL"
            ));
        }
        Url::parse(&format!("{CHANNEL_ALIAS}{name}")).map_err(|e| e.to_string())?
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{name}`: a canonical channel is an http(s) URL or a name, not `{}:`",
            url.scheme()
        ));
    }
    Ok(as_base(url))
}

/// Reads a place to fetch from: an http(s) URL, a `file://` URL or a directory.
fn fetch_location(input: &str, cwd: &Path) -> std::result::Result<Url, String> {
    if input.contains("://") {
        let url = Url::parse(input).map_err(|e| format!("`{input}` is not a URL: {e}"))?;
        return match url.scheme() {
            "http" | "https" | "file" => Ok(as_base(url)),
            other => Err(format!(
                "unsupported URL scheme `{other}`: use http(s), file:// or a directory"
            )),
        };
    }
    let dir = cwd.join(input);
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("`{}`: {e}", dir.display()))?;
    Url::from_directory_path(&dir).map_err(|()| format!("`{}` is not a usable path", dir.display()))
}

impl Sources {
    /// No mirrors and no names: every channel is fetched from where it is.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fetches `canonical`'s packages from `fetch` (later mirrors of one channel are ignored).
    pub fn with_mirror(mut self, canonical: Url, fetch: Url) -> Self {
        self.mirrors.push((as_base(canonical), as_base(fetch)));
        self
    }

    /// Names the local channel directory `dir` (its records get `name`'s canonical URL).
    pub fn with_channel_name(mut self, dir: PathBuf, name: String) -> Self {
        self.names.push((dir, name));
        self
    }

    /// Reads `--mirror CANONICAL=LOCATION` (LOCATION: a URL or a directory, relative to `cwd`).
    pub fn parse_mirror(self, arg: &str, cwd: &Path) -> Result<Self> {
        let err = |reason: String| Error::Channel {
            channel: arg.to_string(),
            reason: format!("--mirror: {reason}"),
        };
        let (canonical, fetch) = arg
            .split_once('=')
            .ok_or_else(|| err("expected CHANNEL=MIRROR, for example https://conda.anaconda.org/conda-forge=https://mirror.example/conda-forge".into()))?;
        let canonical = named_channel(canonical.trim()).map_err(err)?;
        let fetch = fetch_location(fetch.trim(), cwd).map_err(err)?;
        Ok(self.with_mirror(canonical, fetch))
    }

    /// Reads `--channel-name NAME=DIR` (DIR relative to `cwd`).
    pub fn parse_channel_name(self, arg: &str, cwd: &Path) -> Result<Self> {
        let err = |reason: String| Error::Channel {
            channel: arg.to_string(),
            reason: format!("--channel-name: {reason}"),
        };
        let (name, dir) = arg
            .split_once('=')
            .ok_or_else(|| err("expected NAME=DIR, for example conda-forge=./channel".into()))?;
        named_channel(name.trim()).map_err(err)?;
        let dir = cwd.join(dir.trim());
        let dir = dir
            .canonicalize()
            .map_err(|e| err(format!("`{}`: {e}", dir.display())))?;
        Ok(self.with_channel_name(dir, name.trim().to_string()))
    }

    /// `--mirror` and `--channel-name` arguments (relative to `cwd`), then the `[mirrors]` of
    /// the config file at `config` when there is one: the first mirror named for a channel wins.
    pub fn configured(
        mirrors: &[String],
        channel_names: &[String],
        cwd: &Path,
        config: Option<&Path>,
    ) -> Result<Self> {
        let mut sources = Self::new();
        for m in mirrors {
            sources = sources.parse_mirror(m, cwd)?;
        }
        for n in channel_names {
            sources = sources.parse_channel_name(n, cwd)?;
        }
        if let Some(path) = config {
            let text = crate::capped::read_document(path).map_err(|e| Error::Config {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            sources = sources.read_config(path, &text)?;
        }
        Ok(sources)
    }

    /// Reads the `[mirrors]` table of a config file (pixi's shape: `"CHANNEL" = ["MIRROR", ...]`;
    /// the first mirror is used). Other tables are left to their readers.
    pub fn read_config(mut self, path: &Path, text: &str) -> Result<Self> {
        let err = |reason: String| Error::Config {
            path: path.to_path_buf(),
            reason,
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let Some(mirrors) = table.get("mirrors") else {
            return Ok(self);
        };
        let mirrors = mirrors
            .as_table()
            .ok_or_else(|| err("`mirrors` must be a table of CHANNEL = [MIRROR, ...]".into()))?;
        let cwd = path.parent().unwrap_or(Path::new("."));
        for (channel, places) in mirrors {
            let first = match places {
                toml::Value::String(s) => Some(s.as_str()),
                toml::Value::Array(a) => a.first().and_then(|v| v.as_str()),
                _ => None,
            }
            .ok_or_else(|| {
                err(format!(
                    "mirrors.\"{channel}\" must be a list of mirror URLs"
                ))
            })?;
            let canonical = named_channel(channel).map_err(|r| err(format!("mirrors: {r}")))?;
            let fetch = fetch_location(first, cwd).map_err(|r| err(format!("mirrors: {r}")))?;
            self = self.with_mirror(canonical, fetch);
        }
        Ok(self)
    }

    /// The mirrors, as (canonical base, fetch base), both ending in `/`; the first match wins.
    pub fn mirrors(&self) -> impl Iterator<Item = (&Url, &Url)> {
        self.mirrors.iter().map(|(c, f)| (c, f))
    }

    /// Where to fetch `url` (a canonical package or channel URL) from.
    pub fn fetch_url(&self, url: &Url) -> Url {
        for (canonical, fetch) in &self.mirrors {
            if let Some(rest) = url.as_str().strip_prefix(canonical.as_str())
                && let Ok(mapped) = fetch.join(rest)
            {
                return mapped;
            }
        }
        url.clone()
    }

    /// The canonical URL of `url` (a package URL as fetched): a mirror's or named local
    /// channel's URL mapped back; any other URL (an unnamed local channel's `file://` URL
    /// too) is what it is.
    pub fn canonical_url(&self, url: &Url) -> Url {
        for (canonical, fetch) in &self.mirrors {
            if let Some(rest) = url.as_str().strip_prefix(fetch.as_str())
                && let Ok(mapped) = canonical.join(rest)
            {
                return mapped;
            }
        }
        url.clone()
    }

    /// The canonical URL of the local channel directory `dir`: the name `--channel-name`
    /// gives it, else the channel whose `--mirror` it is, else its own `file://` URL.
    fn local_name(&self, dir: &Path) -> std::result::Result<Url, String> {
        if let Some((_, name)) = self.names.iter().find(|(d, _)| d == dir) {
            return named_channel(name);
        }
        let own = Url::from_directory_path(dir)
            .map_err(|()| format!("`{}` is not a usable path", dir.display()))?;
        let mirrored = self.mirrors.iter().find(|(_, fetch)| fetch == &own);
        Ok(mirrored.map_or(own, |(canonical, _)| canonical.clone()))
    }

    /// Parses a channel as given on the command line, relative to `cwd` for local paths: its
    /// canonical URL, and where to read it (its mirror, or the directory it is).
    ///
    /// A name such as `conda-forge` means `https://conda.anaconda.org/conda-forge`. A local
    /// channel must exist and hold `noarch/repodata.json` or `<subdir>/repodata.json`.
    pub fn parse_channel(&self, input: &str, cwd: &Path, subdir: Subdir) -> Result<ChannelSource> {
        let err = |reason: String| Error::Channel {
            channel: input.to_string(),
            reason,
        };
        let local_dir = if let Some(rest) = input.strip_prefix("file://") {
            let url = Url::parse(input).map_err(|e| err(e.to_string()))?;
            Some(
                url.to_file_path()
                    .map_err(|()| err(format!("`{rest}` is not a local path")))?,
            )
        } else if input.contains("://") {
            let url = Url::parse(input).map_err(|e| err(e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(err(format!(
                    "unsupported URL scheme `{}`: use http(s), file:// or a directory",
                    url.scheme()
                )));
            }
            let canonical = as_base(url);
            return Ok(self.remote(canonical));
        } else if input.starts_with(['/', '.', '~']) || cwd.join(input).exists() {
            Some(cwd.join(input))
        } else {
            None
        };
        let Some(dir) = local_dir else {
            let channel = Channel::from_str(
                input,
                &ChannelConfig::default_with_root_dir(cwd.to_path_buf()),
            )
            .map_err(|e| err(e.to_string()))?;
            return Ok(self.remote(as_base(Url::from(channel.base_url.url().clone()))));
        };
        if !dir.is_dir() {
            return Err(err(format!("directory `{}` does not exist", dir.display())));
        }
        let has_repodata = [Subdir::NoArch, subdir]
            .iter()
            .any(|s| dir.join(s.as_str()).join("repodata.json").is_file());
        if !has_repodata {
            return Err(err(format!(
                "`{}` is not a conda channel: it has neither noarch/repodata.json nor {subdir}/repodata.json",
                dir.display()
            )));
        }
        let dir = dir
            .canonicalize()
            .map_err(|e| err(format!("`{}`: {e}", dir.display())))?;
        let canonical = self.local_name(&dir).map_err(err)?;
        let fetch = Channel::try_from_directory(&dir).map_err(|e| err(e.to_string()))?;
        Ok(ChannelSource { canonical, fetch })
    }

    /// A remote channel, read through its mirror when it has one.
    fn remote(&self, canonical: Url) -> ChannelSource {
        let fetch = self.fetch_url(&canonical);
        ChannelSource {
            fetch: Channel::from_url(fetch),
            canonical,
        }
    }

    /// Adds `source`'s directory or mirror, so its packages' URLs map to its canonical URL.
    pub fn learn(&mut self, source: &ChannelSource) {
        let fetch = as_base(Url::from(source.fetch.base_url.url().clone()));
        if fetch != source.canonical && !self.mirrors.iter().any(|(c, _)| c == &source.canonical) {
            self.mirrors.push((source.canonical.clone(), fetch));
        }
    }
}

/// Parses a conda subdir for an image (`linux-64`, `linux-aarch64`, ...); non-Linux is an error.
pub fn parse_subdir(input: &str) -> Result<Subdir> {
    let err = |reason: String| Error::Platform {
        platform: input.to_string(),
        reason,
    };
    let subdir: Subdir = input
        .parse()
        .map_err(|e: rattler_conda_types::ParseSubdirError| err(e.to_string()))?;
    if !subdir.is_linux() {
        return Err(err(
            "container images run Linux: use linux-64, linux-aarch64, linux-ppc64le or linux-s390x"
                .into(),
        ));
    }
    Ok(subdir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls() {
        let cwd = std::env::temp_dir();
        let s = Sources::new();
        let c = s
            .parse_channel("conda-forge", &cwd, Subdir::Linux64)
            .unwrap();
        assert_eq!(
            c.canonical.as_str(),
            "https://conda.anaconda.org/conda-forge/"
        );
        let c = s
            .parse_channel("https://example.org/ch", &cwd, Subdir::Linux64)
            .unwrap();
        assert_eq!(c.canonical.as_str(), "https://example.org/ch/");
        assert_eq!(c.fetch.base_url.as_str(), "https://example.org/ch/");
    }

    #[test]
    fn missing_or_empty_directories_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Sources::new();
        let e = s
            .parse_channel("./no-such-dir", tmp.path(), Subdir::Linux64)
            .unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = s
            .parse_channel(tmp.path().to_str().unwrap(), tmp.path(), Subdir::Linux64)
            .unwrap_err();
        assert!(e.to_string().contains("not a conda channel"), "{e}");
    }

    #[test]
    fn mirrors_and_local_channels_map_to_canonical_urls() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("my-channel");
        std::fs::create_dir_all(dir.join("noarch")).unwrap();
        std::fs::write(dir.join("noarch/repodata.json"), "{}").unwrap();
        let s = Sources::new()
            .parse_mirror("conda-forge=https://mirror.example/cf", tmp.path())
            .unwrap();
        let cf = s
            .parse_channel("conda-forge", tmp.path(), Subdir::Linux64)
            .unwrap();
        assert_eq!(cf.fetch.base_url.as_str(), "https://mirror.example/cf/");
        let pkg = Url::parse("https://mirror.example/cf/linux-64/a-1-0.conda").unwrap();
        assert_eq!(
            s.canonical_url(&pkg).as_str(),
            "https://conda.anaconda.org/conda-forge/linux-64/a-1-0.conda"
        );
        assert_eq!(s.fetch_url(&s.canonical_url(&pkg)), pkg);

        let mut s = s;
        let local = s
            .parse_channel("my-channel", tmp.path(), Subdir::Linux64)
            .unwrap();
        let own = Url::from_directory_path(dir.canonicalize().unwrap()).unwrap();
        assert_eq!(
            local.canonical, own,
            "an unnamed local channel is what it is"
        );
        assert!(local.is_unnamed_local());
        let as_url = s
            .parse_channel(own.as_str(), tmp.path(), Subdir::Linux64)
            .unwrap();
        assert_eq!(
            as_url.canonical, own,
            "-c DIR and -c file://DIR are one channel"
        );
        s.learn(&local);
        let file = own.join("noarch/b-1-0.conda").unwrap();
        assert_eq!(s.canonical_url(&file), file, "no channel is invented");
        let mirrored = Sources::new()
            .parse_mirror("conda-forge=my-channel", tmp.path())
            .unwrap()
            .parse_channel("my-channel", tmp.path(), Subdir::Linux64)
            .unwrap();
        assert_eq!(
            mirrored.canonical.as_str(),
            "https://conda.anaconda.org/conda-forge/",
            "a local copy a --mirror names is that channel"
        );
        assert!(!mirrored.is_unnamed_local());
        let named = Sources::new()
            .parse_channel_name("https://example.org/named=my-channel", tmp.path())
            .unwrap();
        let local = named
            .parse_channel("my-channel", tmp.path(), Subdir::Linux64)
            .unwrap();
        assert_eq!(local.canonical.as_str(), "https://example.org/named/");
        assert!(
            Sources::new()
                .parse_mirror("conda-forge", tmp.path())
                .is_err()
        );
        let odd = Url::parse("file:///home/me/my%20chan.nel/linux-64/x-1-0.conda").unwrap();
        assert_eq!(Sources::new().canonical_url(&odd), odd);
        assert!(
            !named
                .parse_channel("my-channel", tmp.path(), Subdir::Linux64)
                .unwrap()
                .is_unnamed_local()
        );
        assert!(
            Sources::new()
                .parse_mirror("ftp://x=https://y", tmp.path())
                .is_err()
        );
    }

    #[test]
    fn only_linux_subdirs() {
        assert_eq!(parse_subdir("linux-aarch64").unwrap(), Subdir::LinuxAarch64);
        assert!(
            parse_subdir("osx-arm64")
                .unwrap_err()
                .to_string()
                .contains("Linux")
        );
        assert!(parse_subdir("bogus").is_err());
    }
}
