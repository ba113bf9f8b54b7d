//! What changed from one image to another: the conda packages added, removed and changed, the
//! layers shared and what a registry holding the first would receive for the second, and the
//! run-time config (env, entrypoint, cmd, workdir, user, labels, exposed ports).
//!
//! [`diff`] compares two [`Report`]s of [`crate::describe::inspect`]; [`diff_images`] reads both images
//! first. Every list in a [`Diff`] is in a stable order, so its JSON is stable too.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::describe::inspect::{LayerReport, Report};
use crate::describe::records::Package;
use crate::image::{Cancel, Digest, Image, Result, RunConfig};

/// The differences between image A (the old) and image B (the new).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diff {
    /// The conda packages.
    pub packages: PackageDiff,
    /// The layers.
    pub layers: LayerDiff,
    /// The run-time config, field by field.
    pub config: Vec<ConfigChange>,
}

impl Diff {
    /// True when the images hold the same packages, layers (diff_ids, in order) and config.
    pub fn is_empty(&self) -> bool {
        self.packages.added.is_empty()
            && self.packages.removed.is_empty()
            && self.packages.changed.is_empty()
            && self.layers.added.is_empty()
            && self.layers.removed.is_empty()
            && !self.layers.reordered
            && self.config.is_empty()
    }
}

/// Conda packages, matched by prefix and name.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PackageDiff {
    /// In B only.
    pub added: Vec<Package>,
    /// In A only.
    pub removed: Vec<Package>,
    /// In both, with another version, build, channel or sha256.
    pub changed: Vec<PackageChange>,
}

/// A package in both images, changed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PackageChange {
    /// As A holds it.
    pub old: Package,
    /// As B holds it.
    pub new: Package,
}

/// One layer, as a [`LayerDiff`] lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerInfo {
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Digest of the stored blob, when the image's transport names one.
    pub digest: Option<Digest>,
    /// Size of the stored blob; the uncompressed size when it is not stored as a blob.
    pub size: u64,
    /// The conda packages whose records are in it.
    pub packages: Vec<String>,
    /// The history entry's `created_by`, if any.
    pub created_by: Option<String>,
}

impl LayerInfo {
    fn of(l: &LayerReport) -> Self {
        Self {
            diff_id: l.diff_id.clone(),
            digest: l.digest.clone(),
            size: l.size.unwrap_or(l.uncompressed_size),
            packages: l.packages.clone(),
            created_by: l.created_by.clone(),
        }
    }
}

/// Layers, matched by diff_id.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LayerDiff {
    /// B's layers A has too (same diff_id), in B's order, as B stores them.
    pub shared: Vec<LayerInfo>,
    /// How many of `shared` have the same blob digest in both images (where both name one).
    pub shared_blobs: usize,
    /// B's layers A does not have, in B's order.
    pub added: Vec<LayerInfo>,
    /// A's layers B does not have, in A's order.
    pub removed: Vec<LayerInfo>,
    /// True when the shared layers are in another order in B.
    pub reordered: bool,
    /// The bytes a registry holding A receives when B is pushed: the sizes of B's layers
    /// whose blob A lacks. A layer of A with B's diff_id counts as the same blob unless both
    /// name blob digests and they differ (a docker-archive names none).
    pub bytes_to_send: u64,
    /// All of B's layer sizes.
    pub size: u64,
}

/// One changed config field (or one key of a map field).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigChange {
    /// `platform`, `env`, `entrypoint`, `cmd`, `workdir`, `user`, `label` or `exposed_port`.
    pub field: &'static str,
    /// The variable of `env`, the name of `label`; absent for the other fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A's value (a string, or an array for `entrypoint` and `cmd`); absent when A has none.
    pub old: Option<Value>,
    /// B's value; absent when B has none.
    pub new: Option<Value>,
}

/// Reads both images (every layer, checking its digests; the bottom layers both stacks share
/// once, see [`crate::describe::inspect::inspect_pair`]) and compares them.
pub fn diff_images(a: &Image, b: &Image, cancel: &Cancel) -> Result<Diff> {
    let (a, b) = crate::describe::inspect::inspect_pair(a, b, cancel)?;
    Ok(diff(&a, &b))
}

/// Compares the reports of image A (the old) and image B (the new).
pub fn diff(a: &Report, b: &Report) -> Diff {
    let mut config = Vec::new();
    if a.platform != b.platform {
        config.push(change(
            "platform",
            None,
            Some(&a.platform),
            Some(&b.platform),
        ));
    }
    config.extend(config_changes(&a.config.config, &b.config.config));
    Diff {
        packages: packages(&a.packages, &b.packages),
        layers: layers(&a.layers, &b.layers),
        config,
    }
}

fn packages(a: &[Package], b: &[Package]) -> PackageDiff {
    let key = |p: &Package| (p.prefix.clone(), p.name.clone());
    let a: BTreeMap<_, &Package> = a.iter().map(|p| (key(p), p)).collect();
    let b: BTreeMap<_, &Package> = b.iter().map(|p| (key(p), p)).collect();
    let mut out = PackageDiff::default();
    for (k, new) in &b {
        match a.get(k) {
            None => out.added.push((*new).clone()),
            Some(old)
                if (&old.version, &old.build, &old.channel, &old.sha256)
                    != (&new.version, &new.build, &new.channel, &new.sha256) =>
            {
                out.changed.push(PackageChange {
                    old: (*old).clone(),
                    new: (*new).clone(),
                });
            }
            Some(_) => {}
        }
    }
    out.removed = a
        .iter()
        .filter(|(k, _)| !b.contains_key(*k))
        .map(|(_, p)| (*p).clone())
        .collect();
    out
}

fn layers(a: &[LayerReport], b: &[LayerReport]) -> LayerDiff {
    let a_ids: BTreeMap<&Digest, &LayerReport> = a.iter().map(|l| (&l.diff_id, l)).collect();
    let b_ids: BTreeSet<&Digest> = b.iter().map(|l| &l.diff_id).collect();
    let mut out = LayerDiff::default();
    for l in b {
        let layer = LayerInfo::of(l);
        out.size += layer.size;
        let Some(in_a) = a_ids.get(&l.diff_id) else {
            out.bytes_to_send += layer.size;
            out.added.push(layer);
            continue;
        };
        match (&in_a.digest, &l.digest) {
            (Some(x), Some(y)) if x == y => out.shared_blobs += 1,
            (Some(_), Some(_)) => out.bytes_to_send += layer.size,
            _ => {}
        }
        out.shared.push(layer);
    }
    out.removed = a
        .iter()
        .filter(|l| !b_ids.contains(&l.diff_id))
        .map(LayerInfo::of)
        .collect();
    let order_a: Vec<&Digest> = a
        .iter()
        .map(|l| &l.diff_id)
        .filter(|d| out.shared.iter().any(|s| &s.diff_id == *d))
        .collect();
    let order_b: Vec<&Digest> = out.shared.iter().map(|l| &l.diff_id).collect();
    out.reordered = order_a != order_b;
    out
}

fn change(
    field: &'static str,
    key: Option<&str>,
    old: Option<&str>,
    new: Option<&str>,
) -> ConfigChange {
    ConfigChange {
        field,
        key: key.map(str::to_string),
        old: old.map(|v| Value::String(v.to_string())),
        new: new.map(|v| Value::String(v.to_string())),
    }
}

/// The changed keys of two maps, each with its old and new value.
fn map_changes(
    field: &'static str,
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
) -> Vec<ConfigChange> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            change(
                field,
                Some(k),
                a.get(k).map(String::as_str),
                b.get(k).map(String::as_str),
            )
        })
        .collect()
}

fn config_changes(a: &RunConfig, b: &RunConfig) -> Vec<ConfigChange> {
    // `KEY=VALUE` entries as a map; a later entry of one key wins, as in a container.
    let env = |c: &RunConfig| -> BTreeMap<String, String> {
        c.env
            .iter()
            .flatten()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e.clone(), String::new()),
            })
            .collect()
    };
    let mut out = map_changes("env", &env(a), &env(b));
    for (field, old, new) in [
        ("entrypoint", &a.entrypoint, &b.entrypoint),
        ("cmd", &a.cmd, &b.cmd),
    ] {
        if old != new {
            let words = |v: &Option<Vec<String>>| v.as_ref().map(|w| Value::from(w.clone()));
            out.push(ConfigChange {
                field,
                key: None,
                old: words(old),
                new: words(new),
            });
        }
    }
    for (field, old, new) in [
        ("workdir", &a.working_dir, &b.working_dir),
        ("user", &a.user, &b.user),
    ] {
        if old != new {
            out.push(change(field, None, old.as_deref(), new.as_deref()));
        }
    }
    let empty = BTreeMap::new();
    out.extend(map_changes(
        "label",
        a.labels.as_ref().unwrap_or(&empty),
        b.labels.as_ref().unwrap_or(&empty),
    ));
    let ports = |c: &RunConfig| -> BTreeSet<String> {
        c.exposed_ports
            .iter()
            .flatten()
            .map(|(p, _)| p.clone())
            .collect()
    };
    let (pa, pb) = (ports(a), ports(b));
    for p in pa.union(&pb) {
        let (old, new) = (pa.contains(p), pb.contains(p));
        if old != new {
            out.push(change(
                "exposed_port",
                None,
                old.then_some(p.as_str()),
                new.then_some(p.as_str()),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_changes_field_by_field() {
        let a = RunConfig {
            env: Some(vec!["PATH=/bin".into(), "A=1".into(), "GONE=x".into()]),
            cmd: Some(vec!["sh".into()]),
            labels: Some(BTreeMap::from([("team".into(), "data".into())])),
            exposed_ports: Some(BTreeMap::from([("80/tcp".into(), Value::Null)])),
            ..Default::default()
        };
        let b = RunConfig {
            env: Some(vec!["PATH=/bin".into(), "A=2".into()]),
            cmd: Some(vec!["sh".into()]),
            user: Some("app".into()),
            exposed_ports: Some(BTreeMap::from([("8000/tcp".into(), Value::Null)])),
            ..Default::default()
        };
        let got: Vec<String> = config_changes(&a, &b)
            .iter()
            .map(|c| format!("{} {:?} {:?} {:?}", c.field, c.key, c.old, c.new))
            .collect();
        assert_eq!(
            got,
            [
                r#"env Some("A") Some(String("1")) Some(String("2"))"#,
                r#"env Some("GONE") Some(String("x")) None"#,
                r#"user None None Some(String("app"))"#,
                r#"label Some("team") Some(String("data")) None"#,
                r#"exposed_port None Some(String("80/tcp")) None"#,
                r#"exposed_port None None Some(String("8000/tcp"))"#,
            ]
        );
        assert!(config_changes(&a, &a).is_empty());
    }
}
