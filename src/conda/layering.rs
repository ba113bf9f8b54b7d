//! The `auto` layering strategy: which packages share a layer, from names and sizes alone.
