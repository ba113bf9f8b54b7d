//! Channels as users name them: `conda-forge`, an http(s) or `file://` URL, or a local directory.

use std::path::Path;

use rattler_conda_types::{Channel, ChannelConfig, Subdir};
use url::Url;

use super::{Error, Result};

/// Parses a channel as given on the command line, relative to `cwd` for local paths.
///
/// A name such as `conda-forge` means `https://conda.anaconda.org/conda-forge`. A local channel
/// must exist and hold `noarch/repodata.json` or `<subdir>/repodata.json`.
pub fn parse_channel(input: &str, cwd: &Path, subdir: Subdir) -> Result<Channel> {
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
        return Ok(Channel::from_url(url));
    } else if input.starts_with(['/', '.', '~']) || Path::new(input).exists() {
        Some(cwd.join(input))
    } else {
        None
    };
    match local_dir {
        Some(dir) => {
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
            Channel::try_from_directory(&dir).map_err(|e| err(e.to_string()))
        }
        None => Channel::from_str(
            input,
            &ChannelConfig::default_with_root_dir(cwd.to_path_buf()),
        )
        .map_err(|e| err(e.to_string())),
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
        let c = parse_channel("conda-forge", &cwd, Subdir::Linux64).unwrap();
        assert_eq!(
            c.base_url.as_str(),
            "https://conda.anaconda.org/conda-forge/"
        );
        let c = parse_channel("https://example.org/ch", &cwd, Subdir::Linux64).unwrap();
        assert_eq!(c.base_url.as_str(), "https://example.org/ch/");
    }

    #[test]
    fn missing_or_empty_directories_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let e = parse_channel("./no-such-dir", tmp.path(), Subdir::Linux64).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e =
            parse_channel(tmp.path().to_str().unwrap(), tmp.path(), Subdir::Linux64).unwrap_err();
        assert!(e.to_string().contains("not a conda channel"), "{e}");
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
