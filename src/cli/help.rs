//! The help's words beyond each flag's own: `build`'s usage lines, and every command's
//! `Examples` section (clap's `after_help`).

/// `build`'s `Usage:`: the form, then two examples.
pub const BUILD_USAGE: &str = "conda-docker build [OPTIONS] -o OUTPUT [SPECS]...
       conda-docker build -c conda-forge -t app:1 -o app.tar python=3.12 numpy
       conda-docker build -f environment.yml -o docker://ghcr.io/me/app:1";

/// The top level's examples: a first session.
pub const TOP: &str = "Examples:
  conda-docker build -c conda-forge -t app:1 -o app.tar python=3.12 numpy
  docker load -i app.tar && docker run --rm app:1 python -c 'import numpy'
  conda-docker inspect docker-archive:app.tar
  conda-docker build --help                  every option, under its heading";

/// `build`'s examples.
pub const BUILD: &str = "Examples:
  Python and numpy from conda-forge, as a docker-archive to `docker load`:
    conda-docker build -c conda-forge -t app:1 -o app.tar python=3.12 numpy
  An environment file, pushed to a registry (and written as an OCI layout):
    conda-docker build -f environment.yml -o docker://ghcr.io/me/app:1 -o oci:app-oci
  Exactly what a lockfile pins, on no base at all:
    conda-docker build -f conda-lock.yml -b scratch -o app.tar
  The layer plan and what would be downloaded, without building:
    conda-docker build --dry-run -f environment.yml";

/// `login`'s examples.
pub const LOGIN: &str = "Examples:
  echo \"$GITHUB_TOKEN\" | conda-docker login ghcr.io -u me --password-stdin
  conda-docker login localhost:5000 -u me --password-stdin < password.txt";

/// `logout`'s examples.
pub const LOGOUT: &str = "Examples:
  conda-docker logout ghcr.io
  conda-docker logout                        Docker Hub";

/// `inspect`'s examples.
pub const INSPECT: &str = "Examples:
  conda-docker inspect docker-archive:app.tar
  conda-docker inspect --json ghcr.io/me/app:1 | jq '.layers[].packages'";

/// `diff`'s examples.
pub const DIFF: &str = "Examples:
  conda-docker diff docker-archive:old.tar docker-archive:new.tar
  conda-docker diff --exit-code ghcr.io/me/app:1 ghcr.io/me/app:2 || echo changed";

/// `lock`'s examples.
pub const LOCK: &str = "Examples:
  conda-docker lock ghcr.io/me/app:1 -o conda-lock.yml
  conda-docker build -f conda-lock.yml -o app.tar      the same packages again";

/// `copy`'s examples.
pub const COPY: &str = "Examples:
  conda-docker copy docker-archive:app.tar docker://localhost:5000/app:1
  conda-docker copy ghcr.io/me/app:1 oci:app-oci --compression zstd";

/// `cache`'s examples.
pub const CACHE: &str = "Examples:
  conda-docker cache info
  conda-docker cache prune --older-than 30
  conda-docker cache prune --all
  conda-docker cache verify --repair";

/// `cache info`'s examples.
pub const CACHE_INFO: &str = "Examples:
  conda-docker cache info
  conda-docker cache info --json";

/// `cache prune`'s examples.
pub const CACHE_PRUNE: &str = "Examples:
  conda-docker cache prune --older-than 30   what was not used for 30 days
  conda-docker cache prune --all";

/// `cache verify`'s examples.
pub const CACHE_VERIFY: &str = "Examples:
  conda-docker cache verify            list damaged entries; exit status 1 if there are any
  conda-docker cache verify --repair   remove them: the next build makes or fetches them again";
/// `cache remote`'s examples.
pub const CACHE_REMOTE: &str = "Examples:
  conda-docker cache remote ghcr.io/org/app:main      an image pushed before
  conda-docker cache remote ghcr.io/org/cache:main    every --cache-to entry, newest last";

/// `sbom`'s examples.
pub const SBOM: &str = "Examples:
  conda-docker sbom docker-archive:app.tar > sbom.spdx.json
  conda-docker sbom --format cyclonedx ghcr.io/me/app:1 > sbom.cdx.json";

/// `provenance`'s examples.
pub const PROVENANCE: &str = "Examples:
  conda-docker provenance docker-archive:app.tar > provenance.intoto.json
  conda-docker provenance ghcr.io/me/app:1 | jq .predicate.buildDefinition.externalParameters";

/// `completions`' examples.
pub const COMPLETIONS: &str = "Examples:
  conda-docker completions bash > ~/.local/share/bash-completion/completions/conda-docker
  conda-docker completions zsh > ~/.zfunc/_conda-docker
  conda-docker completions fish > ~/.config/fish/completions/conda-docker.fish";

/// `man`'s examples.
pub const MAN: &str = "Examples:
  conda-docker man | man -l -
  conda-docker man build | man -l -
  conda-docker man --dir ~/.local/share/man/man1";
