//! The seed's image-editing example, in Rust: pull an image, drop its top layer, add a directory
//! and some files, set an environment variable, and write it as a docker-archive.
//!
//! `cargo run --example edit_image -- BASE OUTPUT.tar` where BASE is a registry reference
//! (`localhost:5000/app:1`) or any transport (`docker-archive:x.tar`, `oci:DIR:TAG`).

use std::collections::BTreeMap;
use std::path::Path;

use conda_docker::conda::Subdir;
use conda_docker::env::Env;
use conda_docker::image::{Cancel, Reference};
use conda_docker::platform::oci_platform;
use conda_docker::transport::{self, Location, Publishable, Remote, Session};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(base), Some(output)) = (args.next(), args.next()) else {
        return Err("usage: edit_image BASE OUTPUT.tar".into());
    };
    let cancel = Cancel::new();
    let remote = Remote::from_env(&Env::from_process());
    // image = pull_image('frolvlad/alpine-glibc', 'latest')
    let source = Location::parse_source(&base)?;
    let platform = oci_platform(Subdir::Linux64);
    let session = Session::new(&cancel).with_remote(&remote);
    let ctx = session.read(&platform);
    let mut image = transport::read(&source, &ctx).await?;
    // image.remove_layer()
    image.remove_layer();
    // image.add_layer_path('./')
    image.add_layer_path(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .as_path(),
        "/srv/examples",
        0,
    )?;
    // image.add_layer_contents({'this/is/a/test1': b'this is test 1', ...})
    let contents = BTreeMap::from([
        ("this/is/a/test1".to_string(), b"this is test 1".to_vec()),
        ("this/is/a/test2".to_string(), b"this is test 2".to_vec()),
    ]);
    image.add_layer_contents(contents, 0)?;
    // image.layers[0].config['Env'].append('FOO=BAR')
    image.config_mut().config.set_env_var("FOO", "BAR");
    // image.name = 'this-is-a-test'; image.write_file('example-filter.tar')
    let tags: Vec<Reference> = vec!["this-is-a-test:latest".parse()?];
    let ctx = session.write(&tags, Default::default());
    let written = transport::write(
        Publishable::Image(&image),
        &Location::parse_destination(&output)?,
        &ctx,
    )
    .await?;
    println!("{}", written.images[0].config_digest);
    Ok(())
}
