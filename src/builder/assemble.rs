//! Stage 8, assemble: the base image, the planned layers as the cache holds them, the top
//! layer of files no package owns, the user, and the config (environment, labels, settings)
//! and annotations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::describe::PACKAGES_LABEL;
use crate::image::config::rfc3339;
use crate::image::host::{Excludes, HostFiles};
use crate::image::layer::EntriesLayer;
use crate::image::layer_tar::{Entry, Ownership, write_layer_tar_owned};
use crate::image::{Digest, History, Image, Layer};
use crate::input::Input;
use crate::settings::{ImageSettings, UserSpec};
use crate::transport::Location;

use super::contents::Environment;
use super::lookup::Found;
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
    stored: &[Option<Found>],
) -> Result<Image, Error> {
    let mut image = prepared.base.clone();
    let cache = b.blobs(ctx);
    for (layer, stored) in plan.layers.iter().zip(stored) {
        let stored = stored.as_ref().ok_or_else(Error::cancelled)?;
        push_layer(&mut image, layer, keyed_layer(&cache, layer, stored));
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
    push_added_files(
        &mut image,
        b,
        ctx,
        &prepared.settings,
        prepared.user.as_ref(),
        mtime,
    )?;
    configure(
        &mut image,
        input,
        &prepared.settings,
        &env.placement.activation,
        &plan.package_list,
        plan.sbom.as_ref(),
    )?;
    annotate(&b.base, &mut image, plan.epoch);
    let annotations = image.annotations_mut();
    annotations.insert(
        super::remote::RECORD.into(),
        Digest::of(&plan.cache_record).to_string(),
    );
    annotations.insert(
        super::remote::RECORD_SIZE.into(),
        plan.cache_record.len().to_string(),
    );
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

/// The image layer of `planned` as `found`, its descriptor annotated with its key and diff_id
/// (what makes every image a layer cache, see [`super::remote`]).
fn keyed_layer(cache: &crate::store::BlobCache, planned: &PlannedLayer, found: &Found) -> Layer {
    let description = planned.description.clone();
    let layer = match found {
        Found::Local(stored) | Found::Made(stored) => {
            compose::cached_layer(cache, stored, description)
        }
        Found::Remote(r) => Layer::remote(r.written.clone(), r.origin.clone(), description),
    };
    match (&planned.key, layer.diff_id().cloned()) {
        (Some(key), Some(diff_id)) => layer
            .with_annotation(super::remote::LAYER_KEY, key.to_string())
            .with_annotation(super::remote::LAYER_DIFF_ID, diff_id.to_string()),
        _ => layer,
    }
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

/// One layer per `--add` (`files:`), above every other layer, so that a change to them
/// changes no layer below: the files in name order, with their modes, `mtime`, owned by root
/// or (`--chown`) by the user. Each layer's tar is kept in the store by its content, so an
/// unchanged SRC is read once and nothing is written.
fn push_added_files(
    image: &mut Image,
    b: &Builder,
    ctx: &Context,
    settings: &ImageSettings,
    user: Option<&UserSpec>,
    mtime: u64,
) -> Result<(), Error> {
    let cache = b.blobs(ctx);
    for add in &settings.files {
        let err = |source| Error::AddFiles {
            add: add.to_string(),
            source: Box::new(source),
        };
        let src = b.working_dir.join(&add.src);
        let is_dir = std::fs::symlink_metadata(&src).is_ok_and(|m| m.is_dir());
        let mut dest = add.dest.clone();
        if dest.ends_with('/') && !is_dir {
            dest.push_str(&src.file_name().unwrap_or_default().to_string_lossy());
        }
        let excludes = if is_dir {
            Excludes::of_dir(&src).map_err(err)?
        } else {
            Excludes::none()
        };
        let mut files = HostFiles::new();
        files
            .scan_excluding(&src, &dest, true, &excludes)
            .map_err(err)?;
        let entries = files.into_entries();
        let owner = user.filter(|_| settings.chown).map(|u| Ownership {
            root: PathBuf::from(dest.trim_start_matches('/')),
            uid: u.uid,
            gid: u.gid,
        });
        let stored = cache
            .put_layer_by_content(&src, |out| {
                write_layer_tar_owned(entries.clone(), mtime, owner.as_ref(), out, ctx.cancel())
            })
            .map_err(err)?;
        let description = format!("files at {}", add.dest);
        image.push_layer(
            compose::cached_layer(&cache, &stored, description.clone()),
            History {
                created: Some(rfc3339(mtime)),
                created_by: Some(format!("conda-docker: --add {description}")),
                ..Default::default()
            },
        );
    }
    Ok(())
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
