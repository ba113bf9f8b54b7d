//! Stage 8, assemble: the base image, the planned layers as the cache holds them, the top
//! layer of files no package owns, the user, and the config (environment, labels, settings)
//! and annotations.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::describe::PACKAGES_LABEL;
use crate::image::config::rfc3339;
use crate::image::layer::EntriesLayer;
use crate::image::layer_tar::{Entry, Ownership};
use crate::image::{Digest, History, Image, Layer};
use crate::input::Input;
use crate::settings::ImageSettings;
use crate::store::KeyedLayer;
use crate::transport::Location;

use super::contents::Environment;
use super::plan::{Plan, PlannedLayer};
use super::prepare::Prepared;
use super::{Builder, Context, Error, Sbom, compose};

/// The image: `prepared`'s base with every planned layer (as `stored` holds it) on top, then
/// the environment's files, its user and its config.
pub(crate) fn assemble(
    b: &Builder,
    ctx: &Context,
    input: &Input,
    prepared: &Prepared,
    env: &Environment,
    plan: &Plan,
    stored: &[Option<KeyedLayer>],
) -> Result<Image, Error> {
    let mut image = prepared.base.clone();
    let cache = b.blobs(ctx);
    for (layer, stored) in plan.layers.iter().zip(stored) {
        let stored = stored.as_ref().ok_or_else(Error::cancelled)?;
        push_layer(
            &mut image,
            layer,
            compose::cached_layer(&cache, stored, layer.description.clone()),
        );
    }
    let mtime = plan.epoch.min(plan.clamp);
    if plan.extra.is_empty() {
        push_top_layer(&mut image, plan.top.clone(), mtime, plan.owner.as_ref());
    }
    set_prefix_env(&mut image, &prepared.target_prefix, plan.epoch);
    if let Some(u) = &prepared.user {
        image
            .add_user(&u.name, u.uid, u.gid, plan.epoch, ctx.cancel())
            .map_err(|e| match e {
                taken @ crate::image::Error::UserTaken { .. } => Error::User(taken),
                other => Error::Image(other),
            })?;
    }
    configure(
        &mut image,
        input,
        &prepared.settings,
        &env.placement.activation,
        &plan.package_list,
        plan.sbom.as_ref(),
    )?;
    annotate(&b.base, &mut image, plan.epoch);
    record(&mut image, &plan.recorded, plan.epoch);
    check_config_size(&image)?;
    Ok(image)
}

/// Fails when the config would be larger than readers take ([`crate::capped::JSON_CAP`], as
/// `inspect` and a build on this image as its base read it): the build never writes an image
/// its own reader refuses.
fn check_config_size(image: &Image) -> Result<(), Error> {
    // Every diff_id has the same length, so stand-ins give the exact size.
    let diff_ids = vec![Digest::of(b""); image.layers().len()];
    let size = image.config_bytes(diff_ids).len() as u64;
    if size > crate::capped::JSON_CAP {
        return Err(Error::ConfigTooLarge {
            size,
            cap: crate::capped::JSON_CAP,
        });
    }
    Ok(())
}

/// Records what the image was built from beyond its packages in an empty-layer history entry
/// (as Docker records `ENV` or `CMD`), for `conda-docker lock` to write back; nothing when
/// it is all defaults.
fn record(image: &mut Image, recorded: &crate::settings::Recorded, created: u64) {
    let lines = recorded.comment_lines();
    if lines.is_empty() {
        return;
    }
    image.config_mut().history.push(History {
        created: Some(rfc3339(created)),
        created_by: Some(crate::settings::RECORDED_BY.to_string()),
        comment: Some(lines),
        empty_layer: true,
        ..Default::default()
    });
}

/// Puts a planned layer on the image, with its history: the one way package and wheel layers
/// go in.
fn push_layer(image: &mut Image, planned: &PlannedLayer, layer: Layer) {
    image.push_layer(
        layer,
        History {
            created: Some(rfc3339(planned.settings.mtime)),
            created_by: Some(format!("conda-docker: {}", planned.description)),
            comment: planned.comment.clone(),
            ..Default::default()
        },
    );
}

/// The top layer, of the files no package owns.
fn push_top_layer(image: &mut Image, entries: Vec<Entry>, mtime: u64, owner: Option<&Ownership>) {
    let description = "environment files owned by no package";
    image.push_layer(
        Layer::from_tar_source(
            Arc::new(EntriesLayer {
                entries,
                mtime,
                owner: owner.cloned(),
            }),
            description,
        ),
        History {
            created: Some(rfc3339(mtime)),
            created_by: Some(format!("conda-docker: {description}")),
            ..Default::default()
        },
    );
}

/// Sets `created`, `PATH` and `CONDA_PREFIX` for the environment at `prefix`.
fn set_prefix_env(image: &mut Image, prefix: &Path, created: u64) {
    let config = image.config_mut();
    config.created = Some(rfc3339(created));
    let bin = prefix.join("bin").display().to_string();
    let path = config
        .config
        .env_var("PATH")
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    config.config.set_env_var("PATH", &format!("{bin}:{path}"));
    config
        .config
        .set_env_var("CONDA_PREFIX", &prefix.display().to_string());
}

/// Sets the environment, the package-list label and the image settings in the config.
fn configure(
    image: &mut Image,
    input: &Input,
    settings: &ImageSettings,
    activation: &BTreeMap<String, String>,
    package_list: &str,
    sbom: Option<&Sbom>,
) -> Result<(), Error> {
    let run = &mut image.config_mut().config;
    for (k, v) in &input.variables {
        crate::settings::check_env("variables:", k, v)?;
    }
    for (k, v) in activation {
        crate::settings::check_env("a package's etc/conda/env_vars.d", k, v)?;
    }
    let env_name = input.name.as_deref().unwrap_or("base");
    run.set_env_vars(
        std::iter::once(("CONDA_DEFAULT_ENV", env_name)).chain(
            activation
                .iter()
                .chain(&input.variables)
                .map(|(k, v)| (k.as_str(), v.as_str())),
        ),
    );
    let labels = run.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(
        PACKAGES_LABEL.to_string(),
        Digest::of(package_list.as_bytes()).to_string(),
    );
    if let Some(sbom) = sbom {
        labels.insert(
            crate::describe::sbom::SBOM_LABEL.to_string(),
            Digest::of(&sbom.spdx).to_string(),
        );
    }
    Ok(settings.apply(image)?)
}

/// The manifest's annotations: when the image was made, from what base, and its SBOM.
/// A registry base is named by its reference, and by its digest when pinned by one.
fn annotate(base: &str, image: &mut Image, created: u64) {
    let annotations = image.annotations_mut();
    annotations.insert("org.opencontainers.image.created".into(), rfc3339(created));
    if let Ok(Location::Registry(reference)) = Location::parse_source(base) {
        let name = reference.to_string();
        if let Some((_, digest)) = name.rsplit_once('@') {
            annotations.insert(
                "org.opencontainers.image.base.digest".into(),
                digest.to_string(),
            );
        }
        annotations.insert("org.opencontainers.image.base.name".into(), name);
    }
}
