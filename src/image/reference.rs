//! Image references (`registry/repository:tag@digest`), parsed the way `docker pull` reads them.

use std::fmt;
use std::str::FromStr;

use super::digest::Digest;

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed image reference: `localhost:5000/team/app:1.0`, `debian`, `app@sha256:...`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not a valid image reference.
#[derive(Debug, thiserror::Error)]
#[error("invalid image reference `{input}`: {reason}")]
pub struct InvalidReference {
    /// The text that was parsed.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Reference {
    /// The registry host (with port), e.g. `docker.io` or `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path, e.g. `library/debian` or `team/app`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if one was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The tag, or `latest` when none was given.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// The digest, if one was given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The name as Docker shows it: `debian` rather than `docker.io/library/debian`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// `name:tag` as `docker images` lists it (the tag defaults to `latest`).
    pub fn familiar_tagged(&self) -> String {
        format!("{}:{}", self.familiar_name(), self.tag_or_latest())
    }

    /// This reference with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

fn invalid(input: &str, reason: impl Into<String>) -> InvalidReference {
    InvalidReference {
        input: input.to_string(),
        reason: reason.into(),
    }
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+ separated by `.`, `_`, `__` or `-`+
    let bytes = c.as_bytes();
    if bytes.is_empty()
        || !bytes[0].is_ascii_alphanumeric()
        || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
    {
        return false;
    }
    c.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
        && !c.contains("..")
        && !c.contains("___")
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl FromStr for Reference {
    type Err = InvalidReference;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (rest, digest) = match input.split_once('@') {
            Some((name, d)) => (
                name,
                Some(
                    d.parse::<Digest>()
                        .map_err(|e| invalid(input, e.to_string()))?,
                ),
            ),
            None => (input, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(invalid(
                input,
                format!(
                    "tag `{tag}` may hold only letters, digits, `_`, `.` and `-` (at most 128)"
                ),
            ));
        }
        if name.is_empty() {
            return Err(invalid(input, "the name is empty"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if let Some(bad) = repository.split('/').find(|c| !valid_path_component(c)) {
            return Err(invalid(
                input,
                format!(
                    "repository component `{bad}` must be lowercase letters and digits, \
                     separated by `.`, `_` or `-`"
                ),
            ));
        }
        Ok(Self {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn docker_hub_defaults() {
        let r = parse("debian");
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/debian");
        assert_eq!(r.tag_or_latest(), "latest");
        assert_eq!(r.familiar_tagged(), "debian:latest");
        assert_eq!(parse("user/app").repository(), "user/app");
        assert_eq!(parse("user/app").familiar_name(), "user/app");
    }

    #[test]
    fn registry_with_port_and_nested_repository() {
        let r = parse("localhost:5000/team/app:1.0");
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.tag(), Some("1.0"));
        assert_eq!(r.familiar_tagged(), "localhost:5000/team/app:1.0");
        let r = parse("ghcr.io/org/app:1");
        assert_eq!((r.registry(), r.repository()), ("ghcr.io", "org/app"));
        let r = parse("localhost/app");
        assert_eq!((r.registry(), r.repository()), ("localhost", "app"));
    }

    #[test]
    fn digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("name:tag@{d}"));
        assert_eq!(r.tag(), Some("tag"));
        assert_eq!(r.digest().unwrap().to_string(), d);
        let r = parse(&format!("host:5000/name@{d}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.registry(), "host:5000");
    }

    #[test]
    fn rejects_bad_names() {
        for (bad, reason) in [
            ("", "the name is empty"),
            (
                "UPPER/case",
                "repository component `UPPER` must be lowercase",
            ),
            ("app:bad tag", "tag `bad tag` may hold only letters"),
            ("app@sha256:xyz", "invalid digest `sha256:xyz`"),
            ("a//b", "repository component `` must be lowercase"),
            (":tag", "the name is empty"),
        ] {
            let err = bad.parse::<Reference>().unwrap_err();
            assert_eq!(err.input, bad);
            assert!(err.reason.starts_with(reason), "{bad}: {err}");
        }
    }
}
