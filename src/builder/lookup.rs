//! Stage 5, lookup: which planned layers a cache holds already, by key. A hit reads no
//! package file at all.

use crate::store::{BlobCache, KeyedLayer};

use super::plan::Plan;

/// Per planned layer, the cached layer its key names, if the cache has it.
pub(crate) fn lookup(plan: &Plan, cache: &BlobCache) -> Vec<Option<KeyedLayer>> {
    plan.layers
        .iter()
        .map(|l| l.key.as_ref().and_then(|k| cache.keyed_layer(k)))
        .collect()
}
