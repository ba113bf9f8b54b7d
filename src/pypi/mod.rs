//! The PyPI side: what an environment asks pip for ([`requirements`]).
//!
//! Knows no tar or OCI, like [`crate::conda`].

pub mod requirements;
