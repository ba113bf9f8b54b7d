//! A tiny glibc base image made from this machine's own libc and busybox, as a docker-archive.

use std::path::{Path, PathBuf};

use conda_docker::image::layer_tar::{Entry, EntryData};
use conda_docker::image::{Cancel, History, Image, Layer, Platform, Reference};
use conda_docker::reporter::NoReporter;
use conda_docker::transport::docker_archive;

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
    docker_archive::write(&image, &[tag], out, &Cancel::new(), &NoReporter)
        .map_err(|e| e.to_string())?;
    Ok(())
}
