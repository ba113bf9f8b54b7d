//! A tiny glibc base image made from this machine's own libc and busybox, as a docker-archive.

use std::path::{Path, PathBuf};

use conda_docker::image::layer_tar::{Entry, EntryData};
use conda_docker::image::{Cancel, History, Image, Layer, Platform, Reference};
use conda_docker::transport::{Publishable, Session, docker_archive};

const LIBS: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
];

const APPLETS: &[&str] = &["sh", "env", "id", "cat", "ls", "echo", "grep", "wc", "head"];

/// Writes a glibc + busybox base image to `out`, tagged `tag`. Needs busybox-static on the host.
pub fn write_glibc_base(out: &Path, tag: &str) -> Result<(), String> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err("busybox is not installed (apt-get install busybox-static)".into());
    }
    let libdir = Path::new("/lib/x86_64-linux-gnu");
    let file = |src: PathBuf, dst: &str, mode: u32| -> Result<Entry, String> {
        let real = src
            .canonicalize()
            .map_err(|e| format!("{}: {e}", src.display()))?;
        Ok(Entry {
            path: dst.into(),
            data: EntryData::File(real),
            mode,
        })
    };
    let mut entries = Vec::new();
    for lib in LIBS {
        entries.push(file(
            libdir.join(lib),
            &format!("lib/x86_64-linux-gnu/{lib}"),
            0o755,
        )?);
    }
    entries.push(Entry {
        path: "lib64/ld-linux-x86-64.so.2".into(),
        data: EntryData::Symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into()),
        mode: 0o777,
    });
    entries.push(file(busybox.to_path_buf(), "bin/busybox", 0o755)?);
    for applet in APPLETS {
        entries.push(Entry {
            path: format!("bin/{applet}").into(),
            data: EntryData::Symlink("busybox".into()),
            mode: 0o777,
        });
    }
    entries.push(Entry {
        path: "tmp".into(),
        data: EntryData::Dir,
        mode: 0o1777,
    });
    entries.push(Entry {
        path: "etc/passwd".into(),
        data: EntryData::Bytes(b"root:x:0:0:root:/root:/bin/sh\n".to_vec()),
        mode: 0o644,
    });
    let mut image = Image::scratch(&Platform::linux("amd64", None));
    image.push_layer(
        Layer::from_entries(entries, 0, "glibc and busybox from the host"),
        History {
            created: Some("1970-01-01T00:00:00Z".into()),
            created_by: Some("glibc base for conda-docker tests".into()),
            ..Default::default()
        },
    );
    let config = image.config_mut();
    config.config.set_env_var(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    config.config.cmd = Some(vec!["/bin/sh".into()]);
    config.config.labels = Some([("org.example.base".to_string(), "glibc".to_string())].into());
    let tag: Reference = tag.parse().map_err(|e| format!("{e}"))?;
    let cancel = Cancel::new();
    let ctx = Session::new(&cancel).write(std::slice::from_ref(&tag), Default::default());
    docker_archive::write(Publishable::Image(&image), out, &ctx).map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes a one-layer base holding `size` bytes of incompressible data (for slow pushes).
pub fn write_big_base(out: &Path, size: usize) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    let mut image = Image::scratch(&Platform::linux("amd64", None));
    image
        .add_layer_contents([("big/random.bin".to_string(), data)].into(), 0)
        .expect("a layer");
    let tag: Reference = "big-base:test".parse().expect("a tag");
    let cancel = Cancel::new();
    let ctx = Session::new(&cancel).write(std::slice::from_ref(&tag), Default::default());
    docker_archive::write(Publishable::Image(&image), out, &ctx).expect("writing the big base");
}

/// Writes an OCI layout at `dir` whose `multi` tag is an index of the glibc base (linux/amd64)
/// and a small linux/arm64 image; returns `dir`.
pub fn write_multi_arch_layout(dir: &Path, glibc_base: &Path) -> PathBuf {
    use conda_docker::image::manifest::{Descriptor, DescriptorPlatform, Index};
    use conda_docker::transport::oci_layout;
    let amd64 = docker_archive::read(glibc_base, None).expect("reading the glibc base");
    let cancel = Cancel::new();
    let ctx = Session::new(&cancel).write(&[], Default::default());
    let layout_write = |image: &Image, tag: &str| {
        let written = oci_layout::write(Publishable::Image(image), dir, Some(tag), &ctx);
        written.expect(tag).images.remove(0)
    };
    let amd = layout_write(&amd64, "amd64");
    let mut arm64 = Image::scratch(&Platform::linux("arm64", Some("v8")));
    arm64
        .add_layer_contents([("etc/arm64".to_string(), b"arm64\n".to_vec())].into(), 0)
        .expect("a layer");
    let arm = layout_write(&arm64, "arm64");
    let entry = |digest: conda_docker::image::Digest, arch: &str, variant: Option<&str>| {
        let path = dir.join("blobs/sha256").join(digest.hex());
        Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: std::fs::metadata(path).expect("manifest blob").len(),
            digest,
            annotations: Default::default(),
            platform: Some(DescriptorPlatform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(Into::into),
            }),
            artifact_type: None,
        }
    };
    let index = Index {
        schema_version: 2,
        media_type: Some("application/vnd.oci.image.index.v1+json".into()),
        manifests: vec![
            entry(amd.manifest_digest.expect("digest"), "amd64", None),
            entry(arm.manifest_digest.expect("digest"), "arm64", Some("v8")),
        ],
        annotations: Default::default(),
    };
    let bytes = serde_json::to_vec(&index).expect("index json");
    let digest = conda_docker::image::Digest::of(&bytes);
    std::fs::write(dir.join("blobs/sha256").join(digest.hex()), &bytes).expect("index blob");
    let top = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest.to_string(),
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"}
        }]
    });
    std::fs::write(dir.join("index.json"), top.to_string()).expect("index.json");
    dir.to_path_buf()
}
