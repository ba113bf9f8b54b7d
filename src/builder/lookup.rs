//! Stage 5, lookup: which planned layers a cache holds already, by key: the local store first,
//! then the remote caches `--cache-from` names. A hit reads no package file at all.

use crate::store::{BlobCache, KeyedLayer};

use super::plan::Plan;
use super::remote::{Caches, RemoteLayer};

/// Where a planned layer was found.
#[derive(Clone, Debug)]
pub(crate) enum Found {
    /// In the local store (or made just now).
    Local(KeyedLayer),
    /// In a remote cache only.
    Remote(RemoteLayer),
    /// Made by this build (and stored).
    Made(KeyedLayer),
}

impl Found {
    /// Where the layer came from, as a build's result tells it.
    pub fn layer_from(&self) -> LayerFrom {
        match self {
            Found::Local(_) => LayerFrom::Cache,
            Found::Remote(r) => LayerFrom::Remote {
                cache: r.origin.to_string(),
            },
            Found::Made(_) => LayerFrom::Built,
        }
    }
}

/// Where a layer of a built image came from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "source")]
pub enum LayerFrom {
    /// A layer of the base image.
    Base,
    /// This machine's layer cache (or a remote cache's layer pulled into it just now).
    Cache,
    /// A remote cache (`--cache-from`), left in its registry.
    Remote {
        /// The reference it was found in.
        cache: String,
    },
    /// Made by this build.
    Built,
}

/// Per planned layer, the cached layer its key names, if a cache has it.
pub(crate) fn lookup(plan: &Plan, cache: &BlobCache, remote: &Caches) -> Vec<Option<Found>> {
    plan.layers
        .iter()
        .map(|l| {
            let key = l.key.as_ref()?;
            match cache.keyed_layer(key) {
                Some(local) => Some(Found::Local(local)),
                None => remote.layer(key).cloned().map(Found::Remote),
            }
        })
        .collect()
}
