//! The public Rust API used as a library user would, with no binary involved: build an image
//! from the demo channel, write it to an OCI layout, push it and pull it back, change it, and
//! write it again; and a whole job from a `BuildRequest`, as the front ends run it.

mod common;

use std::collections::BTreeMap;

use conda_docker::builder::{Builder, Context};
use conda_docker::env::Env;
use conda_docker::image::{Cancel, Image, Platform, Reference};
use conda_docker::input::Input;
use conda_docker::request::BuildRequest;
use conda_docker::store::Store;
use conda_docker::transport::registry::RegistryOptions;
use conda_docker::transport::{self, Location, Publishable, Remote, Session, WriteOptions};

use common::tools::{Registry, RegistryAuth, tool};
use common::{cache_dir, channel, repo, run_ok, tempdir};

/// The demo's base, as the README's quick start takes it.
fn demo_base() -> String {
    format!("docker-archive:{}", repo().join("demo/base.tar").display())
}

/// The diff_ids of a read image's config, as strings.
fn diff_ids(image: &Image) -> Vec<String> {
    let config: serde_json::Value =
        serde_json::from_slice(&image.config_bytes(image.config().rootfs.diff_ids.clone()))
            .unwrap();
    config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn build_write_pull_change_and_write_again() {
    let test = "build_write_pull_change_and_write_again";
    let dir = tempdir();
    let store = Store::new(dir.path().join("store"));
    let built = Builder::new()
        .with_channels([channel().display().to_string()])
        .with_base(demo_base())
        .with_cache_dir(cache_dir())
        .with_store_root(store.root())
        .build(&Context::new(), &Input::specs(["bzip2"]))
        .await
        .expect("building from the demo channel");
    assert!(
        built
            .records()
            .iter()
            .any(|r| r.package_record.name.as_normalized() == "bzip2")
    );

    let cancel = Cancel::new();
    let remote = Remote {
        options: RegistryOptions::default(),
        cache: store.blobs(),
    };
    let session = Session::new(&cancel).with_remote(&remote);
    let tags: Vec<Reference> = vec!["library-test:1".parse().unwrap()];
    let layout_dir = dir.path().join("layout");
    let layout = Location::parse_destination(&format!("oci:{}:v1", layout_dir.display())).unwrap();
    let written = transport::write(
        Publishable::Image(built.image()),
        &layout,
        &session.write(&tags, WriteOptions::default()),
    )
    .await
    .expect("writing the OCI layout");
    let id = written.id().expect("an image ID").clone();
    let ids: Vec<String> = written.images[0]
        .layers
        .iter()
        .map(|l| l.diff_id.to_string())
        .collect();
    assert_eq!(ids.len(), built.image().layers().len());

    // Read back from the layout: the same layers.
    let platform = Platform::linux("amd64", None);
    let read = transport::read(&layout, &session.read(&platform))
        .await
        .unwrap();
    assert_eq!(diff_ids(&read), ids, "the layout holds the layers built");
    if let Some(mut umoci) = tool("umoci", test) {
        let stat = run_ok(
            umoci
                .arg("stat")
                .arg("--image")
                .arg(format!("{}:v1", layout_dir.display())),
        );
        assert!(stat.contains("conda-docker"), "{stat}");
    }

    // Push it and pull it back: the same image ID.
    if let Some(registry) = Registry::start(RegistryAuth::None, test) {
        let pushed =
            Location::parse_destination(&format!("docker://{}/library/test:1", registry.addr))
                .unwrap();
        transport::write(
            Publishable::Image(&read),
            &pushed,
            &session.write(&tags, WriteOptions::default()),
        )
        .await
        .expect("pushing");
        let pulled = transport::read(
            &Location::parse_source(&format!("{}/library/test:1", registry.addr)).unwrap(),
            &session.read(&platform),
        )
        .await
        .expect("pulling");
        assert_eq!(
            diff_ids(&pulled),
            ids,
            "the registry holds the layers built"
        );
    }

    // Change it: one more layer and a variable; the old layers stay as they were.
    let mut changed = read;
    changed
        .add_layer_contents(BTreeMap::from([("etc/motd".into(), b"hi\n".to_vec())]), 0)
        .unwrap();
    changed.config_mut().config.set_env_var("GREETING", "hi");
    let archive = dir.path().join("changed.tar");
    let out = Location::parse_destination(archive.to_str().unwrap()).unwrap();
    let rewritten = transport::write(
        Publishable::Image(&changed),
        &out,
        &session.write(&tags, WriteOptions::default()),
    )
    .await
    .expect("writing the docker-archive");
    assert_ne!(rewritten.id(), Some(&id), "a changed image has another ID");
    let again = transport::read(
        &Location::parse_source(&format!("docker-archive:{}", archive.display())).unwrap(),
        &session.read(&platform),
    )
    .await
    .unwrap();
    let again_ids = diff_ids(&again);
    assert_eq!(again_ids.len(), ids.len() + 1);
    assert_eq!(
        again_ids[..ids.len()],
        ids[..],
        "the built layers are untouched"
    );
    assert_eq!(again.config().config.env_var("GREETING"), Some("hi"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_resolves_and_runs_as_the_front_ends_run_it() {
    let dir = tempdir();
    let archive = dir.path().join("request.tar");
    let request = BuildRequest {
        specs: vec!["zstd".into()],
        channels: vec![channel().display().to_string()],
        base: demo_base(),
        images: vec!["request:1".into()],
        outputs: vec![archive.display().to_string()],
        max_layers: 4,
        cache_dir: Some(cache_dir().to_path_buf()),
        ..BuildRequest::default()
    };
    let env = Env::new([("HOME", dir.path().to_str().unwrap())], dir.path());
    let (builder, job) = request.resolve(&env).expect("the request resolves");
    let outcome = builder
        .run(&Context::new().with_env(env), &job)
        .await
        .expect("the job runs");
    let [(_, built)] = outcome.built.as_slice() else {
        panic!("one platform, one image");
    };
    // The base's layers, at most 4 in all: the budget reached the builder through the request.
    assert!(
        built.image().layers().len() <= 4,
        "{} layers",
        built.image().layers().len()
    );
    assert!(archive.is_file(), "the output was written");
    assert_eq!(outcome.written.len(), 1);
}
