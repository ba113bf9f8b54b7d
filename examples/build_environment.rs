//! The seed's `build_docker_environment` example, in Rust: solve and install conda packages on a
//! base image, get the image back as a value, and write it.
//!
//! `cargo run --example build_environment -- BASE CHANNEL OUTPUT SPEC...`
//! e.g. `-- docker-archive:demo/base.tar demo/channel example-image.tar bzip2 zstd`.

use conda_docker::builder::{Builder, Context};
use conda_docker::env::Env;
use conda_docker::image::{Cancel, Reference};
use conda_docker::input::Input;
use conda_docker::transport::{self, Location, Publishable, Remote, Session};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, channel, output, specs @ ..] = args.as_slice() else {
        return Err("usage: build_environment BASE CHANNEL OUTPUT SPEC...".into());
    };
    // build_docker_environment(base_image=..., output_image='example-image:123456', packages=[...])
    let mut built = Builder::new()
        .with_channels([channel.clone()])
        .with_base(base.clone())
        .build(&Context::new(), &Input::specs(specs.iter().cloned()))
        .await?;
    // The image is a value: inspect or change it before writing.
    println!(
        "{} packages in {} layers",
        built.records().len(),
        built.image().layers().len()
    );
    built
        .image_mut()
        .config_mut()
        .config
        .set_env_var("BUILT_BY", "conda-docker example");
    let tags: Vec<Reference> = vec!["example-image:123456".parse()?];
    let remote = Remote::from_env(&Env::from_process());
    let cancel = Cancel::new();
    let ctx = Session::new(&cancel)
        .with_remote(&remote)
        .write(&tags, Default::default());
    let written = transport::write(
        Publishable::Image(built.image()),
        &Location::parse_destination(output)?,
        &ctx,
    )
    .await?;
    println!("{}", written.images[0].config_digest);
    Ok(())
}
