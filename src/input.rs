//! What to build, read from what a user keeps: package specs, an `environment.yml`, a lockfile
//! (conda-lock, pixi or conda's explicit format, told apart by content) or an existing
//! environment. [`crate::builder::Builder::build`] builds it; [`Source`] says where it is read
//! from, once per platform (a lockfile holds one set of packages per platform).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::conda::lock::{LockedPackage, LockedPypi};
use crate::conda::{Subdir, env_file, lock, prefix};
use crate::pypi::requirements::{self, Requirements};
use crate::settings::{ImageSettings, Recorded};
use rattler_conda_types::RepoDataRecord;

/// Why an input cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read, or asks for something it cannot give.
    #[error("`{path}`: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An environment or lockfile is malformed (with file, line and column), or a prefix is
    /// not a conda environment.
    #[error(transparent)]
    Conda(#[from] crate::conda::Error),
    /// A `pip:` line (or a `-r` file it names) cannot be taken.
    #[error(transparent)]
    Requirements(#[from] requirements::Error),
}

/// Which packages go into the environment.
#[derive(Clone, Debug)]
pub enum Packages {
    /// Match specs, solved against the channels.
    Specs(Vec<String>),
    /// Exact packages from a lockfile (as the lockfile records them; no solve, no repodata).
    Locked(Vec<LockedPackage>),
    /// Exact records, e.g. from an existing environment's `conda-meta`.
    Records(Vec<RepoDataRecord>),
}

/// What an input asks of PyPI, installed after the conda packages.
#[derive(Clone, Debug, Default)]
pub enum Pypi {
    /// Nothing.
    #[default]
    None,
    /// Requirements to resolve (an environment file's `pip:` list).
    Requirements(Requirements),
    /// Exact wheels from a lockfile.
    Locked(Vec<LockedPypi>),
}

impl Pypi {
    /// Nothing is asked of PyPI.
    pub fn is_none(&self) -> bool {
        match self {
            Self::None => true,
            Self::Requirements(r) => r.is_empty(),
            Self::Locked(l) => l.is_empty(),
        }
    }
}

/// The packages and the image settings an input describes.
#[derive(Clone, Debug)]
pub struct Input {
    /// Which packages go into the environment.
    pub packages: Packages,
    /// The PyPI distributions installed after them.
    pub pypi: Pypi,
    /// The channels the input names, in priority order (empty when it names none).
    pub channels: Vec<String>,
    /// The environment's name (the default image name).
    pub name: Option<String>,
    /// Variables set in the image (`variables:`, or an environment's `conda env config vars`).
    pub variables: BTreeMap<String, String>,
    /// Image settings declared beside the environment (its `conda-docker:` section).
    pub settings: ImageSettings,
}

impl Input {
    /// Match specs to solve.
    pub fn specs(specs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            packages: Packages::Specs(specs.into_iter().map(Into::into).collect()),
            pypi: Pypi::None,
            channels: Vec::new(),
            name: None,
            variables: BTreeMap::new(),
            settings: ImageSettings::default(),
        }
    }

    /// The image name a build of this input gets when none is given: `NAME:latest` after the
    /// environment's name (lowercase, as references are), else `conda-docker:latest`.
    pub fn image_name(&self) -> String {
        match &self.name {
            Some(n) => format!("{}:latest", n.to_lowercase()),
            None => "conda-docker:latest".to_string(),
        }
    }

    /// Reads the environment file or lockfile at `path` for `subdir`. `extra_specs` are added
    /// to an environment file's and refused with a lockfile, which pins every package;
    /// `environment` picks a pixi.lock environment; `${VAR}` in a `pip:` section is
    /// expanded from `vars`.
    pub fn read_file(
        path: &Path,
        subdir: Subdir,
        environment: &str,
        extra_specs: &[String],
        vars: &crate::env::Env,
    ) -> Result<Self, Error> {
        let error = |reason: String| Error::File {
            path: path.to_path_buf(),
            reason,
        };
        let text = crate::capped::read_document(path).map_err(|e| error(refusal(&e)))?;
        if let Some(format) = lock::detect(&text) {
            if !extra_specs.is_empty() {
                return Err(error(
                    "is a lockfile: it pins every package, so give no specs with it".into(),
                ));
            }
            let locked = lock::read(path, &text, format, subdir, environment)?;
            // What the image was built from beyond its packages, when conda-docker wrote it.
            let recorded = Recorded::from_comment_lines(&text)
                .map_err(|e| error(e.to_string()))?
                .unwrap_or_default();
            return Ok(Self {
                packages: Packages::Locked(locked.conda),
                pypi: Pypi::Locked(locked.pypi),
                name: recorded.name,
                variables: recorded.variables,
                settings: recorded.settings,
                ..Self::specs(Vec::<String>::new())
            });
        }
        let env = env_file::parse(path, &text)?;
        let pypi = if env.pip.is_empty() {
            Pypi::None
        } else {
            Pypi::Requirements(requirements::from_pip_section(path, &env.pip, vars)?)
        };
        let mut settings: ImageSettings = match env.image {
            Some(section) => serde_yaml::from_value(section)
                .map_err(|e| error(format!("the `conda-docker:` section: {e}")))?,
            None => ImageSettings::default(),
        };
        // `files:` names host paths from where the environment file is.
        let dir = path.parent().unwrap_or(Path::new(""));
        settings.files = std::mem::take(&mut settings.files)
            .into_iter()
            .map(|f| f.relative_to(dir))
            .collect();
        let specs = env
            .dependencies
            .into_iter()
            .chain(extra_specs.iter().cloned());
        Ok(Self {
            pypi,
            channels: env.channels,
            name: env.name,
            variables: env.variables,
            settings,
            ..Self::specs(specs)
        })
    }

    /// The packages of the existing environment at `prefix` (installed fresh, never copied)
    /// and the variables set on it, named after its directory.
    pub fn from_prefix(prefix: &Path) -> Result<Self, Error> {
        Ok(Self {
            packages: Packages::Records(prefix::read_records(prefix)?),
            pypi: Pypi::None,
            channels: Vec::new(),
            name: prefix.file_name().map(|n| n.to_string_lossy().into_owned()),
            variables: prefix::state_variables(prefix)?,
            settings: ImageSettings::default(),
        })
    }
}

/// Why an environment file or a lockfile could not be read, with what to do when it is over a
/// cap.
fn refusal(e: &std::io::Error) -> String {
    if crate::capped::is_too_large(e) || crate::capped::is_too_deep(e) {
        format!(
            "{e}: real environment files and lockfiles are a few MB at most and nest a few \
             levels; check that this is the file you meant"
        )
    } else {
        e.to_string()
    }
}

/// Where what to build is read from, as `conda-docker build` names it: plain specs, `-f FILE`
/// (an environment file, to which specs are added, or a lockfile), `-p PREFIX` or `-n NAME`.
#[derive(Clone, Debug)]
pub enum Source {
    /// Match specs to solve.
    Specs(Vec<String>),
    /// An environment file or a lockfile, told apart by content.
    File {
        /// The file.
        path: PathBuf,
        /// The pixi.lock environment to take (`default` unless told).
        environment: String,
        /// Specs added to an environment file's (refused with a lockfile).
        specs: Vec<String>,
    },
    /// An existing environment, by its directory.
    Prefix(PathBuf),
    /// An existing environment, by its name (found as `conda activate NAME` finds it); the
    /// image is named after it.
    Named {
        /// The name given.
        name: String,
        /// Where it was found.
        prefix: PathBuf,
    },
}

impl Source {
    /// What `specs`, `file`, `prefix` and `name` say together, as the command line takes them
    /// (a prefix wins over a name; either refuses specs); a name is looked up where `env`
    /// says conda keeps environments.
    pub fn from_parts(
        specs: Vec<String>,
        file: Option<PathBuf>,
        environment: &str,
        prefix: Option<PathBuf>,
        name: Option<String>,
        env: &crate::env::Env,
    ) -> Result<Self, Error> {
        let (path, flag, existing) = match (prefix, name) {
            (Some(p), _) => (p.clone(), "--prefix", Self::Prefix(p)),
            (None, Some(n)) if !specs.is_empty() || file.is_some() => {
                (PathBuf::from(&n), "--name", Self::Prefix(PathBuf::new()))
            }
            (None, Some(n)) => {
                let prefix = prefix::find_named(&n, env)?;
                (prefix.clone(), "--name", Self::Named { name: n, prefix })
            }
            (None, None) => {
                return Ok(match file {
                    Some(path) => Self::File {
                        path,
                        environment: environment.to_string(),
                        specs,
                    },
                    None => Self::Specs(specs),
                });
            }
        };
        if !specs.is_empty() || file.is_some() {
            return Err(Error::File {
                path,
                reason: format!(
                    "{flag} builds an existing environment's packages: give no specs and no \
                     --file with it"
                ),
            });
        }
        Ok(existing)
    }

    /// Reads what to build for `subdir` (`${VAR}` in a `pip:` section from `vars`).
    pub fn read(&self, subdir: Subdir, vars: &crate::env::Env) -> Result<Input, Error> {
        match self {
            Self::Specs(specs) => Ok(Input::specs(specs.clone())),
            Self::File {
                path,
                environment,
                specs,
            } => Input::read_file(path, subdir, environment, specs, vars),
            Self::Prefix(path) => Input::from_prefix(path),
            Self::Named { name, prefix } => {
                let mut input = Input::from_prefix(prefix)?;
                input.name = Some(name.clone());
                Ok(input)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_apart_and_an_existing_environment_takes_no_specs() {
        let specs = vec!["zstd".to_string()];
        let err = Source::from_parts(
            specs.clone(),
            None,
            "default",
            Some("/env".into()),
            None,
            &crate::env::Env::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--prefix") && err.contains("no specs"),
            "{err}"
        );
        let err = Source::from_parts(
            Vec::new(),
            Some("e.yml".into()),
            "default",
            None,
            Some("app".into()),
            &crate::env::Env::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--name") && err.contains("--file"), "{err}");
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".conda/envs/app/conda-meta")).unwrap();
        let env = crate::env::Env::new([("HOME", home.path().to_str().unwrap())], "/");
        assert!(matches!(
            Source::from_parts(Vec::new(), None, "default", None, Some("app".into()), &env),
            Ok(Source::Named { name, prefix }) if name == "app" && prefix.ends_with(".conda/envs/app")
        ));
        assert!(matches!(
            Source::from_parts(specs.clone(), Some("e.yml".into()), "dev", None, None, &crate::env::Env::default()),
            Ok(Source::File { environment, specs: s, .. }) if environment == "dev" && s == specs
        ));
        let input = Source::Specs(specs)
            .read(Subdir::Linux64, &crate::env::Env::default())
            .unwrap();
        assert_eq!(input.image_name(), "conda-docker:latest");
    }

    #[test]
    fn environment_files_add_specs_and_lockfiles_refuse_them() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("environment.yml");
        std::fs::write(
            &env,
            "name: app\nchannels: [conda-forge]\ndependencies: [bzip2]\nvariables: {MODE: prod}\n\
             conda-docker:\n  cmd: [bzip2, --help]\n",
        )
        .unwrap();
        let input = Input::read_file(
            &env,
            Subdir::Linux64,
            "default",
            &["zstd".into()],
            &crate::env::Env::default(),
        )
        .unwrap();
        match &input.packages {
            Packages::Specs(specs) => assert_eq!(specs, &["bzip2", "zstd"]),
            other => panic!("{other:?}"),
        }
        assert_eq!(input.name.as_deref(), Some("app"));
        assert_eq!(input.channels, ["conda-forge"]);
        assert_eq!(input.variables["MODE"], "prod");
        assert_eq!(
            input.settings.cmd,
            Some(vec!["bzip2".to_string(), "--help".to_string()])
        );

        let lock = dir.path().join("explicit.txt");
        std::fs::write(&lock, "@EXPLICIT\n").unwrap();
        let err = Input::read_file(
            &lock,
            Subdir::Linux64,
            "default",
            &["zstd".into()],
            &crate::env::Env::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("lockfile") && err.contains("no specs"),
            "{err}"
        );

        let missing = dir.path().join("nope.yml");
        let err = Input::read_file(
            &missing,
            Subdir::Linux64,
            "default",
            &[],
            &crate::env::Env::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("nope.yml"), "{err}");
    }
}
