//! `environment.yml`: name, channels, dependencies and variables, as conda reads them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Error, Result};

/// What an `environment.yml` declares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnvironmentFile {
    /// The environment's name (the image name, unless `-i` is given).
    pub name: Option<String>,
    /// Channels in priority order.
    pub channels: Vec<String>,
    /// Match specs.
    pub dependencies: Vec<String>,
    /// The `pip:` list: requirement lines as conda hands them to pip (read by
    /// [`crate::pypi::requirements`]).
    pub pip: Vec<String>,
    /// Environment variables for the image.
    pub variables: BTreeMap<String, String>,
    /// The `conda-docker:` section (image settings), which conda ignores.
    pub image: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Dependency {
    Spec(String),
    Pip { pip: Vec<serde_yaml::Value> },
    Other(serde_yaml::Value),
}

#[derive(Deserialize)]
struct Raw {
    name: Option<String>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    dependencies: Vec<Dependency>,
    #[serde(default)]
    variables: BTreeMap<String, serde_yaml::Value>,
    #[serde(rename = "conda-docker")]
    image: Option<serde_yaml::Value>,
}

/// An error with the file's name, line and column.
pub fn yaml_error(path: &Path, e: &serde_yaml::Error) -> Error {
    let location = e
        .location()
        .map(|l| format!("line {}, column {}: ", l.line(), l.column()))
        .unwrap_or_default();
    Error::Lock {
        path: path.to_path_buf(),
        reason: format!("{location}{e}"),
    }
}

/// Parses the text of an `environment.yml` read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<EnvironmentFile> {
    let raw: Raw = serde_yaml::from_str(text).map_err(|e| yaml_error(path, &e))?;
    let mut dependencies = Vec::new();
    let mut pip = Vec::new();
    for d in raw.dependencies {
        match d {
            Dependency::Spec(s) => dependencies.push(s),
            Dependency::Pip { pip: lines } => {
                for line in lines {
                    match line {
                        serde_yaml::Value::String(s) => pip.push(s),
                        other => {
                            return Err(Error::Lock {
                                path: path.to_path_buf(),
                                reason: format!(
                                    "`pip:` holds {other:?}; expected requirement lines such as \
                                     `requests>=2.31`"
                                ),
                            });
                        }
                    }
                }
            }
            Dependency::Other(v) => {
                return Err(Error::Lock {
                    path: path.to_path_buf(),
                    reason: format!(
                        "`dependencies` holds {v:?}; expected package specs such as `numpy>=1.26`"
                    ),
                });
            }
        }
    }
    let variables = raw
        .variables
        .into_iter()
        .map(|(k, v)| {
            let value = match v {
                serde_yaml::Value::String(s) => s,
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::Bool(b) => b.to_string(),
                other => serde_yaml::to_string(&other)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            };
            (k, value)
        })
        .collect();
    Ok(EnvironmentFile {
        name: raw.name,
        channels: raw.channels,
        dependencies,
        pip,
        variables,
        image: raw.image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_conda_fields_and_variables() {
        let text = "name: demo\nchannels: [conda-forge]\ndependencies:\n  - bzip2\n  - zstd>=1.5\nvariables:\n  GREETING: hello\n  LEVEL: 3\n";
        let env = parse(Path::new("environment.yml"), text).unwrap();
        assert_eq!(env.name.as_deref(), Some("demo"));
        assert_eq!(env.dependencies, ["bzip2", "zstd>=1.5"]);
        assert_eq!(env.variables["LEVEL"], "3");
    }

    #[test]
    fn pip_lines_are_kept_and_bad_yaml_is_an_error_with_its_location() {
        let env = parse(
            Path::new("e.yml"),
            "dependencies:\n  - bzip2\n  - pip:\n    - requests\n    - -r more.txt\n",
        )
        .unwrap();
        assert_eq!(
            (env.dependencies, env.pip),
            (
                vec!["bzip2".to_string()],
                vec!["requests".to_string(), "-r more.txt".to_string()]
            )
        );
        let e = parse(
            Path::new("e.yml"),
            "dependencies:\n  - pip:\n    - {a: 1}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("pip"), "{e}");
        let e = parse(Path::new("e.yml"), "name: x\ndependencies: [bzip2\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
