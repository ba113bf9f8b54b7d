//! Where packages are found ([`Locations`], as pip's options name them) turned into the
//! sources an [`Index`](super::Index) reads, and the credentials sent to each: the
//! `user:password@` of an index URL (to that host only), else a `~/.netrc` (or `$NETRC`)
//! `machine` entry. A `--find-links` directory is listed here, each wheel hashed.

use std::path::{Path, PathBuf};

use rattler_networking::authentication_storage::backends::netrc::NetRcStorage;
use url::Url;

use super::pages::file_project;
use super::{DEFAULT_INDEX, DistFile, Error};
/// Where packages are found, as pip's options name them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locations {
    /// `--index-url`; [`DEFAULT_INDEX`] when `None`.
    pub index_url: Option<String>,
    /// `--extra-index-url`s, searched after the index, in order (see the module's
    /// documentation).
    pub extra_index_urls: Vec<String>,
    /// `--find-links`: directories of wheels, or URLs of pages of links.
    pub find_links: Vec<String>,
    /// `--no-index`: only `find_links`.
    pub no_index: bool,
}

impl Locations {
    /// The locations given by flags or variables: find-links directories made absolute
    /// against `dir` (the current one), URLs as they are.
    pub fn given(
        index_url: Option<String>,
        extra_index_urls: Vec<String>,
        find_links: &[String],
        dir: &Path,
    ) -> Self {
        Self {
            index_url,
            extra_index_urls,
            find_links: find_links
                .iter()
                .map(|l| crate::pypi::requirements::location(l, dir))
                .collect(),
            no_index: false,
        }
    }

    /// These locations over `under` (a requirements file's), as uv merges them: an index URL
    /// given here wins, extra indexes and find-links are both kept (these first), and either
    /// `--no-index` holds.
    pub fn over(&self, under: &Locations) -> Locations {
        let mut extra = self.extra_index_urls.clone();
        let mut links = self.find_links.clone();
        for e in &under.extra_index_urls {
            if !extra.contains(e) {
                extra.push(e.clone());
            }
        }
        for l in &under.find_links {
            if !links.contains(l) {
                links.push(l.clone());
            }
        }
        Locations {
            index_url: self.index_url.clone().or_else(|| under.index_url.clone()),
            extra_index_urls: extra,
            find_links: links,
            no_index: self.no_index || under.no_index,
        }
    }
}

/// A `user:password` pair for HTTP basic auth.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Basic {
    pub(super) user: String,
    pub(super) password: Option<String>,
}

impl std::fmt::Debug for Basic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Basic({}:***)", self.user)
    }
}

/// One place files are listed.
#[derive(Clone, Debug)]
pub(super) enum Source {
    /// A simple index: its base URL (ending in `/`, without credentials) and credentials.
    Simple { base: Url, auth: Option<Basic> },
    /// A flat directory of files.
    Directory(PathBuf),
    /// A page of links (`--find-links URL`).
    Links { page: Url, auth: Option<Basic> },
}

impl Source {
    /// The source as messages name it.
    pub(super) fn name(&self) -> String {
        match self {
            Self::Simple { base, .. } => base.to_string(),
            Self::Directory(dir) => dir.display().to_string(),
            Self::Links { page, .. } => page.to_string(),
        }
    }
}

/// `url` without its `user:password@` part, and that part.
pub(super) fn split_credentials(mut url: Url) -> (Url, Option<Basic>) {
    let auth = (!url.username().is_empty()).then(|| Basic {
        user: percent_decode(url.username()),
        password: url.password().map(percent_decode),
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    (url, auth)
}

/// `s` with its `%XX` escapes decoded (a URL's file name, as it is on disk).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The URL `location` names, with a trailing `/`.
fn parse_base(location: &str) -> Result<Url, Error> {
    let with_slash = if location.ends_with('/') {
        location.to_string()
    } else {
        format!("{location}/")
    };
    let url = Url::parse(&with_slash).map_err(|e| Error::Location {
        location: location.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https" | "file") {
        return Err(Error::Location {
            location: location.to_string(),
            reason: format!("the scheme `{}` is not http, https or file", url.scheme()),
        });
    }
    Ok(url)
}

/// The sources `locations` name, in order: the index, the extra indexes (unless `no_index`),
/// then the find-links (directories, `file://` URLs or pages of links).
pub(super) fn sources(locations: &Locations) -> Result<Vec<Source>, Error> {
    let mut sources = Vec::new();
    if !locations.no_index {
        let index = locations.index_url.as_deref().unwrap_or(DEFAULT_INDEX);
        for location in
            std::iter::once(index).chain(locations.extra_index_urls.iter().map(|s| s.as_str()))
        {
            let (base, auth) = split_credentials(parse_base(location)?);
            sources.push(Source::Simple { base, auth });
        }
    }
    for location in &locations.find_links {
        if location.contains("://") && !location.starts_with("file://") {
            let page = Url::parse(location).map_err(|e| Error::Location {
                location: location.clone(),
                reason: e.to_string(),
            })?;
            let (page, auth) = split_credentials(page);
            sources.push(Source::Links { page, auth });
        } else {
            let path = match location.strip_prefix("file://") {
                Some(p) => PathBuf::from(percent_decode(p)),
                None => PathBuf::from(location),
            };
            sources.push(Source::Directory(path));
        }
    }
    Ok(sources)
}

/// The netrc file (`$NETRC`, else `~/.netrc`), read once.
pub(super) fn netrc() -> Result<Option<NetRcStorage>, Error> {
    match NetRcStorage::from_env() {
        Ok(n) => Ok(Some(n)),
        Err((path, e)) => Err(Error::Netrc {
            path,
            reason: e.to_string(),
        }),
    }
}

/// The credentials for a request to `url`: an index URL's own for its host, else netrc's.
pub(super) fn credentials(
    sources: &[Source],
    netrc: Option<&NetRcStorage>,
    url: &Url,
) -> Option<Basic> {
    let same_host = |base: &Url| {
        base.host_str() == url.host_str()
            && base.port_or_known_default() == url.port_or_known_default()
    };
    for source in sources {
        if let Source::Simple {
            base,
            auth: Some(auth),
        }
        | Source::Links {
            page: base,
            auth: Some(auth),
        } = source
            && same_host(base)
        {
            return Some(auth.clone());
        }
    }
    let host = url.host_str()?;
    use rattler_networking::Authentication;
    match netrc?.get_password(host) {
        Ok(Some(Authentication::BasicHTTP { username, password })) => Some(Basic {
            user: username,
            password: Some(password),
        }),
        _ => None,
    }
}

/// The path of a `file://` URL.
pub(super) fn local_path(url: &Url) -> Result<PathBuf, Error> {
    url.to_file_path().map_err(|()| Error::Location {
        location: url.to_string(),
        reason: "not a local path".into(),
    })
}

/// The wheels and sdists of project `name` in directory `dir` (`--find-links DIR`), each
/// hashed as it is listed.
pub(super) fn directory_files(dir: &Path, name: &str) -> Result<Vec<DistFile>, Error> {
    let io = |what: &str| {
        let what = what.to_string();
        let path = dir.to_path_buf();
        move |source| Error::Io { path, what, source }
    };
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io("listing a --find-links directory"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let Some(filename) = path
            .file_name()
            .and_then(|f| f.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if file_project(&filename).as_deref() != Some(name) || !path.is_file() {
            continue;
        }
        let absolute =
            std::path::absolute(&path).map_err(io("listing a --find-links directory"))?;
        let url = Url::from_file_path(&absolute).map_err(|()| Error::Location {
            location: absolute.display().to_string(),
            reason: "not an absolute path".into(),
        })?;
        let sha256 = if filename.ends_with(".whl") {
            Some(crate::pypi::sha256_file(&absolute).map_err(io("hashing a wheel"))?)
        } else {
            None
        };
        files.push(DistFile {
            filename,
            url,
            sha256,
            requires_python: None,
            yanked: false,
            metadata: None,
            index: dir.display().to_string(),
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_split_from_urls() {
        let (url, auth) =
            split_credentials(Url::parse("https://me:p%40ss@example.org/simple/").unwrap());
        assert_eq!(url.as_str(), "https://example.org/simple/");
        let auth = auth.unwrap();
        assert_eq!(
            (auth.user.as_str(), auth.password.as_deref()),
            ("me", Some("p@ss"))
        );
        assert!(!format!("{auth:?}").contains("p@ss"));
    }
}
