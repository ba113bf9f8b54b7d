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
