//! Wheels installed as pip installs them (real wheels from PyPI, compared with what pip 23.2.1
//! installed for them), and hostile wheels refused with the error that names them.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pypi")
}

fn options(python: &str) -> InstallOptions {
    InstallOptions {
        scheme: Scheme::conda(3, 11, ""),
        python: python.into(),
        requested: true,
        direct_url: None,
    }
}

/// pip's RECORD with its `INSTALLER` row (`pip`) made ours (`conda-docker`).
fn pip_record(name: &str) -> String {
    let text = std::fs::read_to_string(fixtures().join("pip").join(name)).unwrap();
    let ours: [u8; 32] = Sha256::digest(b"conda-docker\n").into();
    text.split_inclusive("\r\n")
        .map(|line| match line.split_once(".dist-info/INSTALLER,") {
            Some((head, _)) => format!(
                "{head}.dist-info/INSTALLER,{},13\r\n",
                record::hash_field(&ours)
            ),
            None => line.to_string(),
        })
        .collect()
}

fn pip_python() -> String {
    std::fs::read_to_string(fixtures().join("pip/python"))
        .unwrap()
        .trim()
        .to_string()
}

fn installed_bytes(installed: &InstalledWheel, path: &str, wheel: &Path) -> Vec<u8> {
    let file = installed.files.iter().find(|f| f.path == path).unwrap();
    read_file(file, wheel).unwrap()
}

/// `mode path` lines, as `find -printf '%m %P'` lists pip's install.
fn listing(installed: &InstalledWheel) -> String {
    installed
        .files
        .iter()
        .map(|f| format!("{:o} {}\n", f.mode, f.path))
        .collect()
}

#[test]
fn real_wheels_install_as_pip_installs_them() {
    let python = pip_python();
    let dir = fixtures().join("wheels");
    let mut wheels: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    wheels.sort();
    assert!(wheels.len() >= 7, "{wheels:?}");
    for wheel in wheels {
        let file_name = wheel.file_name().unwrap().to_str().unwrap();
        let key = file_name.split('-').next().unwrap();
        let installed = install(&wheel, file_name, &options(&python), &Limits::default())
            .unwrap_or_else(|e| panic!("{file_name}: {e}"));
        let expected =
            std::fs::read_to_string(fixtures().join(format!("pip/{key}.files"))).unwrap();
        assert_eq!(
            listing(&installed),
            expected,
            "{file_name}: files and modes"
        );
        let record_path = format!("{}/RECORD", installed.dist_info);
        let record = installed_bytes(&installed, &record_path, &wheel);
        assert_eq!(
            String::from_utf8_lossy(&record),
            pip_record(&format!("{key}.RECORD")),
            "{file_name}: RECORD"
        );
        // Every file streams back with the bytes RECORD hashes (the streaming reader checks).
        for f in &installed.files {
            let bytes = read_file(f, &wheel).unwrap();
            if let FileData::Member(m) = &f.data {
                assert_eq!(<[u8; 32]>::from(Sha256::digest(&bytes)), m.sha256);
            }
        }
        assert_eq!(
            installed_bytes(
                &installed,
                &format!("{}/INSTALLER", installed.dist_info),
                &wheel
            ),
            b"conda-docker\n"
        );
    }
}

#[test]
fn entry_points_and_python_scripts_get_the_target_python() {
    let wheel = fixtures().join("wheels/python_dotenv-1.2.4-py3-none-any.whl");
    let installed = install(
        &wheel,
        "python_dotenv-1.2.4-py3-none-any.whl",
        &options("/opt/conda/bin/python"),
        &Limits::default(),
    )
    .unwrap();
    let script = installed_bytes(&installed, "bin/dotenv", &wheel);
    assert!(script.starts_with(b"#!/opt/conda/bin/python\n# -*- coding: utf-8 -*-\n"));
    assert!(
        String::from_utf8(script)
            .unwrap()
            .contains("from dotenv.__main__ import cli\n")
    );

    let wheel = fixtures().join("wheels/jmespath-1.1.0-py3-none-any.whl");
    let installed = install(
        &wheel,
        "jmespath-1.1.0-py3-none-any.whl",
        &options("/opt/conda/bin/python"),
        &Limits::default(),
    )
    .unwrap();
    let script = installed_bytes(&installed, "bin/jp.py", &wheel);
    assert!(script.starts_with(b"#!/opt/conda/bin/python\n\nimport sys\n"));
    let f = installed
        .files
        .iter()
        .find(|f| f.path == "bin/jp.py")
        .unwrap();
    assert_eq!(f.mode, 0o755);
}

#[test]
fn a_wheel_given_by_url_gets_direct_url_json_as_pip_writes_it() {
    let pip_json = std::fs::read(fixtures().join("pip/python_dotenv.direct_url.json")).unwrap();
    let url = serde_json::from_slice::<serde_json::Value>(&pip_json).unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let wheel = fixtures().join("wheels/python_dotenv-1.2.4-py3-none-any.whl");
    let mut opts = options(&pip_python());
    opts.direct_url = Some(url);
    let installed = install(
        &wheel,
        "python_dotenv-1.2.4-py3-none-any.whl",
        &opts,
        &Limits::default(),
    )
    .unwrap();
    let info = &installed.dist_info;
    assert_eq!(
        installed_bytes(&installed, &format!("{info}/direct_url.json"), &wheel),
        pip_json
    );
    assert_eq!(
        String::from_utf8(installed_bytes(
            &installed,
            &format!("{info}/RECORD"),
            &wheel
        ))
        .unwrap(),
        pip_record("python_dotenv.direct.RECORD")
    );
    // Not requested: no REQUESTED, as pip has for a dependency.
    opts.requested = false;
    opts.direct_url = None;
    let installed = install(
        &wheel,
        "python_dotenv-1.2.4-py3-none-any.whl",
        &opts,
        &Limits::default(),
    )
    .unwrap();
    assert!(
        !paths(&installed)
            .iter()
            .any(|p| p.ends_with("/REQUESTED") || p.ends_with("/direct_url.json"))
    );
}

// ---- crafted wheels ----------------------------------------------------------------------

/// A member of a crafted wheel.
enum M<'a> {
    /// A file with these bytes, listed in RECORD with its true hash.
    File(&'a str, &'a [u8]),
    /// An executable file.
    Exec(&'a str, &'a [u8]),
    /// A file RECORD does not list.
    Unlisted(&'a str, &'a [u8]),
    /// A file RECORD lists with the hash of other bytes.
    WrongHash(&'a str, &'a [u8]),
    /// A symlink.
    Symlink(&'a str, &'a str),
    /// A directory entry.
    Dir(&'a str),
}

const META: &str = "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n\n";
const WHEEL: &str = "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n";

fn row(path: &str, bytes: &[u8]) -> String {
    let sha: [u8; 32] = Sha256::digest(bytes).into();
    format!("{path},{},{}\n", record::hash_field(&sha), bytes.len())
}

/// A wheel of `members`, with `demo-1.0.dist-info/{METADATA,WHEEL,RECORD}` added (RECORD
/// listing every other member) unless `info` names another dist-info directory.
fn craft_with(info: &str, metadata: &str, members: &[M<'_>]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut record = String::new();
    let put = |zip: &mut zip::ZipWriter<Cursor<Vec<u8>>>, name: &str, bytes: &[u8], mode| {
        zip.start_file(name, opts.unix_permissions(mode)).unwrap();
        zip.write_all(bytes).unwrap();
    };
    for m in members {
        match m {
            M::File(p, b) => {
                put(&mut zip, p, b, 0o644);
                record += &row(p, b);
            }
            M::Exec(p, b) => {
                put(&mut zip, p, b, 0o755);
                record += &row(p, b);
            }
            M::Unlisted(p, b) => put(&mut zip, p, b, 0o644),
            M::WrongHash(p, b) => {
                put(&mut zip, p, b, 0o644);
                record += &row(p, b"other bytes");
            }
            M::Symlink(p, t) => {
                zip.add_symlink(*p, *t, SimpleFileOptions::default())
                    .unwrap();
                record += &row(p, t.as_bytes());
            }
            M::Dir(p) => zip.add_directory(*p, SimpleFileOptions::default()).unwrap(),
        }
    }
    for (name, text) in [("METADATA", metadata), ("WHEEL", WHEEL)] {
        let path = format!("{info}/{name}");
        put(&mut zip, &path, text.as_bytes(), 0o644);
        record += &row(&path, text.as_bytes());
    }
    record += &format!("{info}/RECORD,,\n");
    put(
        &mut zip,
        &format!("{info}/RECORD"),
        record.as_bytes(),
        0o644,
    );
    zip.finish().unwrap().into_inner()
}

fn craft(members: &[M<'_>]) -> Vec<u8> {
    craft_with("demo-1.0.dist-info", META, members)
}

fn install_bytes(bytes: &[u8], file_name: &str, limits: &Limits) -> Result<InstalledWheel> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    std::fs::write(&path, bytes).unwrap();
    install(&path, file_name, &options("/opt/conda/bin/python"), limits)
}

fn demo(members: &[M<'_>]) -> Result<InstalledWheel> {
    install_bytes(
        &craft(members),
        "demo-1.0-py3-none-any.whl",
        &Limits::default(),
    )
}

/// Replaces every occurrence of `from` by `to` (same length) in the zip's bytes: names in the
/// local and central headers, to make what the zip writer refuses to write.
fn patch(mut bytes: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
        }
        i += 1;
    }
    bytes
}

/// Sets the external attributes of `name`'s central directory header to `mode << 16`.
fn set_mode(mut bytes: Vec<u8>, name: &str, mode: u32) -> Vec<u8> {
    let mut i = 0;
    while i + 46 <= bytes.len() {
        if bytes[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] {
            let len = u16::from_le_bytes([bytes[i + 28], bytes[i + 29]]) as usize;
            if &bytes[i + 46..i + 46 + len] == name.as_bytes() {
                bytes[i + 5] = 3; // made by unix
                bytes[i + 38..i + 42].copy_from_slice(&(mode << 16).to_le_bytes());
                return bytes;
            }
        }
        i += 1;
    }
    panic!("no central header for {name}");
}

#[test]
fn data_directories_go_where_pip_puts_them_in_a_conda_prefix() {
    let installed = demo(&[
        M::File("demo/__init__.py", b"x = 1\n"),
        M::File("demo-1.0.data/purelib/pure.py", b"p\n"),
        M::Exec("demo-1.0.data/platlib/_native.so", b"\x7fELF"),
        M::File("demo-1.0.data/headers/demo.h", b"int x;\n"),
        M::File("demo-1.0.data/data/share/demo/a.txt", b"a\n"),
        M::File("demo-1.0.data/scripts/run", b"#!/bin/sh\necho\n"),
        M::File(
            "demo-1.0.dist-info/entry_points.txt",
            b"[gui_scripts]\ndemo-gui = demo.gui:main\n[console_scripts]\ndemo = demo:main\n",
        ),
    ])
    .unwrap();
    let site = "lib/python3.11/site-packages";
    let mut expected = vec![
        "bin/demo".to_string(),
        "bin/demo-gui".into(),
        "bin/run".into(),
        "include/python3.11/demo/demo.h".into(),
        format!("{site}/_native.so"),
        format!("{site}/demo-1.0.dist-info/INSTALLER"),
        format!("{site}/demo-1.0.dist-info/METADATA"),
        format!("{site}/demo-1.0.dist-info/RECORD"),
        format!("{site}/demo-1.0.dist-info/REQUESTED"),
        format!("{site}/demo-1.0.dist-info/WHEEL"),
        format!("{site}/demo-1.0.dist-info/entry_points.txt"),
        format!("{site}/demo/__init__.py"),
        format!("{site}/pure.py"),
        "share/demo/a.txt".into(),
    ];
    expected.sort();
    assert_eq!(paths(&installed), expected);
    let mode = |p: &str| installed.files.iter().find(|f| f.path == p).unwrap().mode;
    assert_eq!(mode(&format!("{site}/_native.so")), 0o755);
    assert_eq!(mode(&format!("{site}/pure.py")), 0o644);
    assert_eq!(mode("bin/run"), 0o755);
    let FileData::Bytes(record) = &installed
        .files
        .iter()
        .find(|f| f.path.ends_with("RECORD"))
        .unwrap()
        .data
    else {
        panic!("RECORD is generated")
    };
    let record = String::from_utf8(record.clone()).unwrap();
    for line in [
        "../../../bin/demo-gui,sha256=",
        "../../../include/python3.11/demo/demo.h,sha256=",
        "../../../share/demo/a.txt,sha256=",
        "_native.so,sha256=",
        "demo-1.0.dist-info/RECORD,,\r\n",
    ] {
        assert!(record.contains(line), "{line} in\n{record}");
    }
}

#[test]
fn directory_entries_are_skipped() {
    let installed = demo(&[M::Dir("demo/"), M::File("demo/__init__.py", b"")]).unwrap();
    assert!(!paths(&installed).iter().any(|p| p.ends_with("/demo")));
}

fn unsafe_path(result: Result<InstalledWheel>) -> (String, String) {
    match result {
        Err(Error::UnsafePath { wheel, path, .. }) => (wheel, path),
        other => panic!("expected UnsafePath, got {other:?}"),
    }
}

#[test]
fn unsafe_paths_are_refused_with_the_wheel_and_the_path() {
    let wheel = "demo-1.0-py3-none-any.whl";
    for bad in [
        "/etc/passwd",
        "../escape.py",
        "demo/../../x.py",
        "demo/.wh.x",
        ".wh..wh..opq",
        "a\\b.py",
    ] {
        // Write a safe name of the same length, then patch the hostile one in.
        let safe: String = "s".repeat(bad.len());
        let bytes = patch(
            craft(&[M::File(&safe, b"x")]),
            safe.as_bytes(),
            bad.as_bytes(),
        );
        let (w, path) = unsafe_path(install_bytes(&bytes, wheel, &Limits::default()));
        assert_eq!((w.as_str(), path.as_str()), (wheel, bad));
    }
    let (_, path) = unsafe_path(demo(&[M::File(
        "demo-1.0.data/data/conda-meta/x.json",
        b"{}",
    )]));
    assert_eq!(path, "demo-1.0.data/data/conda-meta/x.json");
    let (_, path) = unsafe_path(demo(&[M::File("demo-1.0.data/config/x", b"")]));
    assert_eq!(path, "demo-1.0.data/config/x");
    let (_, path) = unsafe_path(demo(&[M::File("demo-1.0.data/data/../../x", b"")]));
    assert_eq!(path, "demo-1.0.data/data/../../x");
}

#[test]
fn symlinks_and_devices_are_refused() {
    let err = demo(&[M::Symlink("demo/link", "/etc/passwd")]).unwrap_err();
    assert!(
        matches!(&err, Error::NotAFile { path, kind: "a symlink", .. } if path == "demo/link"),
        "{err:?}"
    );
    for (mode, kind) in [
        (0o020644, "a device"),
        (0o060644, "a device"),
        (0o010644, "a FIFO"),
    ] {
        let bytes = set_mode(craft(&[M::File("demo/dev", b"")]), "demo/dev", mode);
        let err =
            install_bytes(&bytes, "demo-1.0-py3-none-any.whl", &Limits::default()).unwrap_err();
        assert!(
            matches!(&err, Error::NotAFile { path, kind: k, .. } if path == "demo/dev" && *k == kind),
            "{err:?}"
        );
        assert!(err.to_string().contains("demo-1.0-py3-none-any.whl"));
    }
}

#[test]
fn record_mismatches_and_unlisted_files_are_refused() {
    let err = demo(&[M::WrongHash("demo/x.py", b"print(1)\n")]).unwrap_err();
    assert!(
        matches!(&err, Error::HashMismatch { path, .. } if path == "demo/x.py"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("demo-1.0-py3-none-any.whl"),
        "{err}"
    );
    let err = demo(&[M::Unlisted("demo/y.py", b"")]).unwrap_err();
    assert!(
        matches!(&err, Error::NotInRecord { path, .. } if path == "demo/y.py"),
        "{err:?}"
    );
}

#[test]
fn duplicate_paths_are_refused() {
    // Two members of one name (the zip writer refuses them, so one is renamed in the bytes).
    let bytes = patch(
        craft(&[M::File("demo/aaaa.py", b"1"), M::File("demo/bbbb.py", b"2")]),
        b"demo/bbbb.py",
        b"demo/aaaa.py",
    );
    let err = install_bytes(&bytes, "demo-1.0-py3-none-any.whl", &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, Error::DuplicatePath { path, .. } if path.contains("lists twice")),
        "{err:?}"
    );
    // Two members installed at one path.
    let err = demo(&[
        M::File("x.py", b"1"),
        M::File("demo-1.0.data/purelib/x.py", b"2"),
    ])
    .unwrap_err();
    assert!(
        matches!(&err, Error::DuplicatePath { path, .. } if path == "lib/python3.11/site-packages/x.py"),
        "{err:?}"
    );
    // A script and an entry point of one name.
    let err = demo(&[
        M::File("demo-1.0.data/scripts/demo", b"#!/bin/sh\n"),
        M::File(
            "demo-1.0.dist-info/entry_points.txt",
            b"[console_scripts]\ndemo = demo:main\n",
        ),
    ])
    .unwrap_err();
    assert!(
        matches!(&err, Error::DuplicatePath { path, .. } if path == "bin/demo"),
        "{err:?}"
    );
}

#[test]
fn zip_bombs_are_refused_before_decompressing() {
    let zeros = vec![0u8; 4 << 20];
    let bytes = craft(&[M::File("demo/zeros.bin", &zeros)]);
    assert!(bytes.len() < 64 << 10, "{} bytes", bytes.len());
    let limits = Limits {
        max_total_size: 1 << 20,
        ..Limits::default()
    };
    let err = install_bytes(&bytes, "demo-1.0-py3-none-any.whl", &limits).unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { limit, .. } if limit == 1 << 20),
        "{err:?}"
    );

    let many: Vec<String> = (0..50).map(|i| format!("demo/f{i}.py")).collect();
    let members: Vec<M<'_>> = many.iter().map(|p| M::File(p, b"")).collect();
    let limits = Limits {
        max_entries: 20,
        ..Limits::default()
    };
    let err = install_bytes(&craft(&members), "demo-1.0-py3-none-any.whl", &limits).unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 20, .. }), "{err:?}");

    // A member whose central directory understates its size is caught while streaming.
    let bytes = craft(&[M::File("demo/big.bin", &zeros)]);
    let size = (zeros.len() as u32).to_le_bytes();
    let small = 16u32.to_le_bytes();
    let bytes = patch(bytes, &size, &small);
    let err = install_bytes(&bytes, "demo-1.0-py3-none-any.whl", &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, Error::HashMismatch { path, .. } | Error::Io { path, .. } if path == "demo/big.bin")
            || matches!(err, Error::Zip { .. }),
        "{err:?}"
    );
}

#[test]
fn a_wheel_naming_another_distribution_is_refused() {
    let bytes = craft_with("other-1.0.dist-info", META, &[]);
    let err = install_bytes(&bytes, "demo-1.0-py3-none-any.whl", &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, Error::NameMismatch { found, .. } if found == "other-1.0"),
        "{err:?}"
    );
    let bytes = craft_with("demo-1.0.dist-info", "Name: demo\nVersion: 2.0\n\n", &[]);
    let err = install_bytes(&bytes, "demo-1.0-py3-none-any.whl", &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, Error::NameMismatch { place: "METADATA", found, .. } if found == "demo-2.0"),
        "{err:?}"
    );
    // Normalised names and versions match: `Demo_Pkg-1.0.0` is `demo-pkg 1.0`.
    let bytes = craft_with(
        "Demo_Pkg-1.0.0.dist-info",
        "Name: Demo.Pkg\nVersion: 1.0\n\n",
        &[],
    );
    install_bytes(&bytes, "demo_pkg-1.0-py3-none-any.whl", &Limits::default()).unwrap();
    let err = install_bytes(&craft(&[]), "demo-1.0.whl", &Limits::default()).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
}

#[test]
fn a_member_changed_after_the_check_fails_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo-1.0-py3-none-any.whl");
    let body = b"print('hello')\n";
    std::fs::write(&path, craft(&[M::File("demo/x.py", body)])).unwrap();
    let installed = install(
        &path,
        "demo-1.0-py3-none-any.whl",
        &options("/opt/conda/bin/python"),
        &Limits::default(),
    )
    .unwrap();
    let file = installed
        .files
        .iter()
        .find(|f| f.path.ends_with("demo/x.py"))
        .unwrap();
    assert_eq!(read_file(file, &path).unwrap(), body);
    let FileData::Member(member) = &file.data else {
        panic!("a member")
    };
    let mut reader = member.open(&path).unwrap();
    std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
    assert_eq!(std::io::Read::read(&mut reader, &mut [0u8; 8]).unwrap(), 0);
    std::fs::write(&path, craft(&[M::File("demo/x.py", b"print('HELLO')\n")])).unwrap();
    let err = read_file(file, &path).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
}

#[test]
fn a_wheel_name_with_a_path_in_it_is_no_wheel_name() {
    use crate::pypi::wheel::WheelName;
    for name in [
        "../evil-1.0-py3-none-any.whl",
        "a/b-1.0-py3-none-any.whl",
        "b-1.0-py3-none-any.whl\0",
        "b-1.0-py3-none-any\\.whl",
    ] {
        assert!(WheelName::parse(name).is_err(), "{name:?}");
    }
    let ok = WheelName::parse("torch-2.5.1+cpu-cp311-cp311-linux_x86_64.whl").unwrap();
    assert_eq!(
        (ok.name.as_str(), ok.version.as_str()),
        ("torch", "2.5.1+cpu")
    );
}
