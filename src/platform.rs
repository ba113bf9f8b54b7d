//! Where the conda side and the image side meet on platforms: a conda subdir (`linux-aarch64`,
//! parsed by [`crate::conda::channel::parse_subdir`]) and the OCI platform of its images
//! (`linux/arm64/v8`).

use rattler_conda_types::Subdir;

use crate::image::Platform;

pub use crate::conda::channel::parse_subdir;

/// The OCI platform of a conda subdir (`linux-64` is `linux/amd64`).
pub fn oci_platform(subdir: Subdir) -> Platform {
    let (arch, variant) = match subdir {
        Subdir::Linux64 => ("amd64".to_string(), None),
        Subdir::LinuxAarch64 => ("arm64".to_string(), Some("v8")),
        Subdir::LinuxPpc64le => ("ppc64le".to_string(), None),
        Subdir::LinuxS390X => ("s390x".to_string(), None),
        Subdir::Linux32 => ("386".to_string(), None),
        Subdir::LinuxArmV7l => ("arm".to_string(), Some("v7")),
        Subdir::LinuxArmV6l => ("arm".to_string(), Some("v6")),
        other => (
            other.arch().map(|a| a.to_string()).unwrap_or_default(),
            None,
        ),
    };
    Platform::linux(&arch, variant)
}

/// The conda subdir of an OCI platform (`linux/arm64` is `linux-aarch64`), if it has one.
pub fn conda_subdir(platform: &Platform) -> Option<Subdir> {
    [
        Subdir::Linux64,
        Subdir::LinuxAarch64,
        Subdir::LinuxPpc64le,
        Subdir::LinuxS390X,
        Subdir::Linux32,
        Subdir::LinuxArmV7l,
        Subdir::LinuxArmV6l,
    ]
    .into_iter()
    .find(|s| {
        let p = oci_platform(*s);
        (&p.os, &p.architecture) == (&platform.os, &platform.architecture)
            && (platform.variant.is_none() || p.variant == platform.variant)
    })
}
