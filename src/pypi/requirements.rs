//! Requirements as pip reads them: the lines of an `environment.yml`'s `pip:` list (conda hands
//! them to pip as a requirements file) and of the `-r` files they name.
//!
//! A requirement is kept as its text (a PEP 508 specifier, markers and all, or `NAME @ URL` for
//! a wheel at a URL); the resolver parses it. Index options are gathered beside them. What
//! would make pip build from source (`-e`, a VCS or local source directory, an sdist URL) is
//! refused here, with the line it came from: conda-docker installs wheels only, since building
//! runs a stranger's code on the build machine.

use std::path::{Path, PathBuf};

use crate::env::Env;

/// How deep `-r` files may nest (pip has no limit; a cycle is caught before this).
const MAX_DEPTH: usize = 16;

/// Where a line came from, for messages: `environment.yml, pip: item 2` or `req.txt:4`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file.
    pub file: PathBuf,
    /// The line (1-based), or the item of a `pip:` list.
    pub line: usize,
    /// `line` counts the items of an environment file's `pip:` list.
    pub pip_item: bool,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pip_item {
            write!(f, "{}, pip: item {}", self.file.display(), self.line)
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// One requirement, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The specifier: `requests[socks]>=2; python_version >= "3.8"`, or `NAME @ URL`.
    pub text: String,
    /// Where it was written.
    pub origin: Origin,
}

/// What a requirements list asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    /// The requirements, in the order written (`-r` files in place).
    pub requirements: Vec<Requirement>,
    /// `--index-url` (the last one given wins, as in pip), `--extra-index-url`s in order,
    /// `--find-links` (directories made absolute from their file's, or URLs), `--no-index`.
    pub locations: super::index::Locations,
    /// `--pre`: pre-releases are allowed.
    pub pre: bool,
}

impl Requirements {
    /// Nothing is asked for.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// A requirement line that cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The line asks for something conda-docker does not do, or is malformed.
    #[error("{origin}: `{line}`: {reason}")]
    Line {
        /// Where.
        origin: Origin,
        /// The line as written.
        line: String,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// A `-r` file cannot be read.
    #[error("{origin}: reading the requirements file `{}`", path.display())]
    Read {
        /// The `-r` line.
        origin: Origin,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Reads the items of an `environment.yml`'s `pip:` list; `-r` paths are relative to the
/// file's directory, as conda runs pip there.
pub fn from_pip_section(
    env_file: &Path,
    items: &[String],
    env: &Env,
) -> Result<Requirements, Error> {
    let mut out = Requirements::default();
    let dir = base_dir(env_file);
    let mut stack = vec![env_file.to_path_buf()];
    for (i, item) in items.iter().enumerate() {
        let origin = Origin {
            file: env_file.to_path_buf(),
            line: i + 1,
            pip_item: true,
        };
        read_line(item, &origin, &dir, &mut stack, &mut out, env)?;
    }
    Ok(out)
}

/// Reads a requirements file (`pip install -r PATH`).
pub fn from_file(path: &Path, env: &Env) -> Result<Requirements, Error> {
    let mut out = Requirements::default();
    let origin = Origin {
        file: path.to_path_buf(),
        line: 0,
        pip_item: false,
    };
    include(path, &origin, &mut Vec::new(), &mut out, env)?;
    Ok(out)
}

fn base_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Reads the requirements file `path` (named at `origin`) into `out`.
fn include(
    path: &Path,
    origin: &Origin,
    stack: &mut Vec<PathBuf>,
    out: &mut Requirements,
    env: &Env,
) -> Result<(), Error> {
    let line_error = |reason: String| Error::Line {
        origin: origin.clone(),
        line: format!("-r {}", path.display()),
        reason,
    };
    let canonical = path.canonicalize().map_err(|source| Error::Read {
        origin: origin.clone(),
        path: path.to_path_buf(),
        source,
    })?;
    if stack.contains(&canonical) {
        return Err(line_error(
            "the requirements files include each other".into(),
        ));
    }
    if stack.len() >= MAX_DEPTH {
        return Err(line_error(format!(
            "requirements files nested more than {MAX_DEPTH} deep"
        )));
    }
    let text =
        crate::capped::read_file(&canonical, crate::capped::DOCUMENT_CAP).map_err(|source| {
            Error::Read {
                origin: origin.clone(),
                path: path.to_path_buf(),
                source,
            }
        })?;
    let text = String::from_utf8(text).map_err(|_| line_error("is not UTF-8 text".into()))?;
    stack.push(canonical);
    let dir = base_dir(path);
    for (number, line) in logical_lines(&text) {
        let origin = Origin {
            file: path.to_path_buf(),
            line: number,
            pip_item: false,
        };
        read_line(&line, &origin, &dir, stack, out, env)?;
    }
    stack.pop();
    Ok(())
}

/// The lines of a requirements file with `\` continuations joined and comments removed, each
/// with the number of its first physical line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if current.is_empty() {
            start = i + 1;
        }
        match raw.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(raw);
                lines.push((start, std::mem::take(&mut current)));
            }
        }
    }
    if !current.is_empty() {
        lines.push((start, current));
    }
    lines
}

/// A line with its comment removed: `#` at the start or after whitespace, as pip reads it.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// `${NAME}` replaced by the environment variable, as pip does (`NAME` of `[A-Z0-9_]`).
fn expand_env(line: &str, origin: &Origin, env: &Env) -> Result<String, Error> {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[at..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            out.push_str(&rest[at..at + 3 + end]);
        } else {
            let value = env.raw(name).ok_or_else(|| Error::Line {
                origin: origin.clone(),
                line: line.to_string(),
                reason: format!("`${{{name}}}` names an environment variable that is not set"),
            })?;
            out.push_str(value);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Takes one logical line into `out`.
fn read_line(
    raw: &str,
    origin: &Origin,
    dir: &Path,
    stack: &mut Vec<PathBuf>,
    out: &mut Requirements,
    env: &Env,
) -> Result<(), Error> {
    let line = expand_env(strip_comment(raw).trim(), origin, env)?;
    let line = line.trim();
    if line.is_empty() {
        return Ok(());
    }
    let refuse = |reason: &str| Error::Line {
        origin: origin.clone(),
        line: line.to_string(),
        reason: reason.to_string(),
    };
    if line.starts_with('-') {
        let (option, value) = split_option(line);
        let value = || {
            value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| refuse(&format!("`{option}` needs a value")))
        };
        match option {
            "-r" | "--requirement" => include(&dir.join(value()?), origin, stack, out, env)?,
            "-i" | "--index-url" => out.locations.index_url = Some(value()?.to_string()),
            "--extra-index-url" => out.locations.extra_index_urls.push(value()?.to_string()),
            "-f" | "--find-links" => out.locations.find_links.push(location(value()?, dir)),
            "--no-index" => out.locations.no_index = true,
            "--pre" => out.pre = true,
            "--only-binary" | "--prefer-binary" => {}
            "-e" | "--editable" => {
                return Err(refuse(
                    "an editable install builds the project from source, which conda-docker \
                     does not do (it would run the project's code on this machine): build a \
                     wheel and name it instead",
                ));
            }
            "-c" | "--constraint" => {
                return Err(refuse(
                    "constraints files are not supported: pin the versions in the requirements",
                ));
            }
            "--no-binary" => {
                return Err(refuse(
                    "conda-docker installs wheels only and never builds from source",
                ));
            }
            _ => {
                return Err(refuse(
                    "an option conda-docker does not take here; it reads -r, --index-url, \
                     --extra-index-url, --find-links, --no-index and --pre",
                ));
            }
        }
        return Ok(());
    }
    check_source(line).map_err(|reason| refuse(&reason))?;
    // A wheel by path alone is relative to its file, as pip reads it.
    let text = if line.starts_with('.') {
        dir.join(line).display().to_string()
    } else {
        line.to_string()
    };
    out.requirements.push(Requirement {
        text,
        origin: origin.clone(),
    });
    Ok(())
}

/// `--opt=value`, `--opt value` or `-rvalue` into the option and its value.
fn split_option(line: &str) -> (&str, Option<&str>) {
    if let Some((option, value)) = line.split_once('=')
        && option.starts_with("--")
        && !option.contains(char::is_whitespace)
    {
        return (option, Some(value.trim()));
    }
    if let Some((option, value)) = line.split_once(char::is_whitespace) {
        return (option, Some(value.trim()));
    }
    // `-rfile.txt`: a short option glued to its value.
    if !line.starts_with("--") && line.len() > 2 && line.is_char_boundary(2) {
        return (&line[..2], Some(&line[2..]));
    }
    (line, None)
}

/// A find-links location: a URL as it is, a path made absolute against `dir`.
pub(crate) fn location(value: &str, dir: &Path) -> String {
    if value.contains("://") {
        value.to_string()
    } else {
        dir.join(value).display().to_string()
    }
}

/// Refuses what would be built from source: VCS URLs, local paths and sdist archives. A
/// wheel by URL (`NAME @ https://.../x-1-py3-none-any.whl`) is taken.
fn check_source(line: &str) -> Result<(), String> {
    let url = match line.split_once(" @ ").or_else(|| line.split_once('@')) {
        Some((name, url))
            if !name.trim().is_empty()
                && name
                    .trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.[], ".contains(c)) =>
        {
            Some(url.trim())
        }
        _ if line.contains("://") || line.starts_with('.') || line.starts_with('/') => Some(line),
        _ => None,
    };
    let Some(url) = url else { return Ok(()) };
    let url = url.split(';').next().unwrap_or(url).trim();
    let scheme = url.split("://").next().unwrap_or("");
    if scheme.starts_with("git") || ["hg", "svn", "bzr"].iter().any(|v| scheme.starts_with(v)) {
        return Err(format!(
            "a {scheme} source is built from source, which conda-docker does not do (it would \
             run the project's code on this machine): name a released wheel instead"
        ));
    }
    let file = url.split(['#', '?']).next().unwrap_or(url);
    if !file.ends_with(".whl") {
        return Err(
            "only wheels (`.whl`) are installed: this names a source distribution or \
             directory, which conda-docker does not build (it would run the project's code on \
             this machine)"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn variables_are_expanded_from_the_environment_given() {
        let env = Env::new([("WHEEL_VERSION", "2.31.0")], "/");
        let r = from_pip_section(
            Path::new("env.yml"),
            &items(&["requests==${WHEEL_VERSION}"]),
            &env,
        )
        .unwrap();
        assert_eq!(r.requirements[0].text, "requests==2.31.0");
        let unset = from_pip_section(
            Path::new("env.yml"),
            &items(&["requests==${WHEEL_VERSION}"]),
            &Env::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(unset.contains("is not set"), "{unset}");
    }

    #[test]
    fn pip_sections_take_specifiers_index_options_and_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("environment.yml");
        std::fs::create_dir(dir.path().join("reqs")).unwrap();
        std::fs::write(
            dir.path().join("reqs/base.txt"),
            "# pinned\nattrs==23.2.0  # inline comment\nsix \\\n  >=1.16\n-r more.txt\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("reqs/more.txt"),
            "tomli; python_version < \"3.11\"\n",
        )
        .unwrap();
        let r = from_pip_section(
            &env,
            &items(&[
                "--index-url http://127.0.0.1:1/simple",
                "--extra-index-url=http://127.0.0.1:2/simple",
                "-r reqs/base.txt",
                "requests[socks]>=2.31",
                "wheelonly @ https://example.org/w/wheelonly-1.0-py3-none-any.whl",
                "-f ./wheels",
            ]),
            &Env::default(),
        )
        .unwrap();
        let texts: Vec<&str> = r.requirements.iter().map(|q| q.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "attrs==23.2.0",
                "six   >=1.16",
                "tomli; python_version < \"3.11\"",
                "requests[socks]>=2.31",
                "wheelonly @ https://example.org/w/wheelonly-1.0-py3-none-any.whl",
            ]
        );
        assert_eq!(
            r.requirements[2].origin.file,
            dir.path().join("reqs/./more.txt")
        );
        assert_eq!(r.requirements[2].origin.line, 1);
        assert_eq!(
            r.locations.index_url.as_deref(),
            Some("http://127.0.0.1:1/simple")
        );
        assert_eq!(r.locations.extra_index_urls, ["http://127.0.0.1:2/simple"]);
        assert_eq!(
            r.locations.find_links,
            [dir.path().join("./wheels").display().to_string()]
        );
    }

    #[test]
    fn sources_editables_cycles_and_unknown_options_are_refused_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("environment.yml");
        for (line, needle) in [
            ("-e .", "editable"),
            ("git+https://github.com/o/p.git", "git+https source"),
            (
                "pkg @ git+https://github.com/o/p.git@v1",
                "git+https source",
            ),
            ("pkg @ https://example.org/pkg-1.0.tar.gz", "only wheels"),
            ("./src/project", "only wheels"),
            ("--no-binary :all:", "wheels only"),
            ("--trusted-host example.org", "does not take"),
            ("-c constraints.txt", "constraints"),
            ("--index-url", "needs a value"),
            ("pkg==${CONDA_DOCKER_TEST_UNSET_VARIABLE}", "not set"),
        ] {
            let e = from_pip_section(&env, &items(&["ok", line]), &Env::default())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(needle) && e.contains("environment.yml, pip: item 2"),
                "{line}: {e}"
            );
        }
        std::fs::write(dir.path().join("a.txt"), "-r b.txt\n").unwrap();
        std::fs::write(dir.path().join("b.txt"), "x\n-r a.txt\n").unwrap();
        let e = from_pip_section(&env, &items(&["-r a.txt"]), &Env::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("include each other"), "{e}");
        let e = from_pip_section(&env, &items(&["-r missing.txt"]), &Env::default()).unwrap_err();
        assert!(e.to_string().contains("missing.txt"), "{e}");
    }
}
