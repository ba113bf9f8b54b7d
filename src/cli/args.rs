//! The command line, as clap structs; no logic here.

use std::path::PathBuf;
use std::time::Duration;

use super::help;
use crate::http::parse_seconds;
use crate::transport::registry::{Credential, RegistryOptions, Timeouts};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// `build --help`'s headings: what goes in, what the image is, where it goes, how it is
/// layered; registry and cache options under their own, on every command that takes them.
const INPUT: &str = "Input";
const IMAGE: &str = "Image";
const OUTPUT: &str = "Output";
const LAYERS: &str = "Layers";
const REGISTRY: &str = "Registry (for images in a registry)";
const CACHE: &str = "Cache";

/// Build minimal, reproducible Docker/OCI images from conda environments, without Docker.
#[derive(Debug, Parser)]
#[command(name = "conda-docker", version, about, after_help = help::TOP, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Show more detail (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Show only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image holding a conda environment solved from package specs.
    #[command(after_help = help::BUILD, override_usage = help::BUILD_USAGE)]
    Build(Box<BuildArgs>),
    /// Store credentials for a registry where `docker login` would.
    #[command(after_help = help::LOGIN)]
    Login(LoginArgs),
    /// Remove the credentials `login` stored for a registry.
    #[command(after_help = help::LOGOUT)]
    Logout(LogoutArgs),
    /// Show an image's layers (with the conda packages each holds), config and size.
    // `--creds` is for the registries written to: the commands that only read hide it.
    #[command(after_help = help::INSPECT, mut_arg("creds", |a| a.hide(true)))]
    Inspect(InspectArgs),
    /// Show what changed from one image to another: conda packages, layers and config.
    #[command(after_help = help::DIFF, mut_arg("creds", |a| a.hide(true)))]
    Diff(DiffArgs),
    /// Write the lockfile an image was built from, read from the image, to rebuild it exactly.
    #[command(after_help = help::LOCK, mut_arg("creds", |a| a.hide(true)))]
    Lock(LockArgs),
    /// Copy an image between transports (docker-archive, OCI layout, oci-archive, registry).
    #[command(after_help = help::COPY)]
    Copy(CopyArgs),
    /// Show or prune conda-docker's caches (blobs, layer keys, package contents).
    #[command(after_help = help::CACHE)]
    Cache(CacheArgs),
    /// Print the SBOM (SPDX or CycloneDX JSON) of an image's conda environment.
    #[command(after_help = help::SBOM, mut_arg("creds", |a| a.hide(true)))]
    Sbom(SbomArgs),
    /// Print the provenance (an in-toto statement, SLSA Provenance v1) of an image's environment.
    #[command(after_help = help::PROVENANCE, mut_arg("creds", |a| a.hide(true)))]
    Provenance(ProvenanceArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or PowerShell.
    #[command(after_help = help::COMPLETIONS)]
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write every command's page to a directory.
    #[command(after_help = help::MAN)]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry host, as `login` took it (default: Docker Hub).
    #[arg(default_value = "docker.io")]
    pub registry: String,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print (default: conda-docker's own).
    pub command: Option<String>,
    /// Write `conda-docker.1` and one page per command (`conda-docker-build.1`, ...) to DIR
    /// instead.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub dir: Option<PathBuf>,
}

/// Registry credentials, plain HTTP and the cache: shared by every command that reads or
/// writes images.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Credentials for the registry read from (the base image's), as USER:PASS.
    #[arg(
        help_heading = REGISTRY,
        long,
        visible_alias = "src-creds",
        value_name = "USER:PASS",
        env = "CONDA_DOCKER_BASE_CREDS",
        hide_env_values = true
    )]
    pub base_creds: Option<String>,
    /// Credentials for the registries written to (`docker://...`), as USER:PASS.
    #[arg(
        help_heading = REGISTRY,
        long,
        value_name = "USER:PASS",
        env = "CONDA_DOCKER_CREDS",
        hide_env_values = true
    )]
    pub creds: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// The cache: conda packages (default: rattler's shared cache, as pixi uses) and registry
    /// blobs (default: ~/.cache/conda-docker).
    #[arg(help_heading = CACHE, long, env = "CONDA_DOCKER_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// How to read and write images, for `inspect` and `copy`.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// The conda platform whose image to pick from a multi-platform index.
    #[arg(long, default_value = "linux-64")]
    pub platform: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image: `docker-archive:PATH`, `oci:DIR[:TAG]`, `oci-archive:PATH[:TAG]` or a registry reference.
    pub image: String,
    /// Print JSON for machines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub struct SbomArgs {
    /// The image: `docker-archive:PATH`, `oci:DIR[:TAG]`, `oci-archive:PATH[:TAG]` or a registry reference.
    pub image: String,
    /// The document's format.
    #[arg(long, value_enum, default_value = "spdx")]
    pub format: SbomFormat,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub struct ProvenanceArgs {
    /// The image: `docker-archive:PATH`, `oci:DIR[:TAG]`, `oci-archive:PATH[:TAG]` or a registry reference.
    pub image: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// An SBOM format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SbomFormat {
    /// SPDX 2.3 JSON.
    Spdx,
    /// CycloneDX 1.6 JSON.
    Cyclonedx,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old image: `docker-archive:PATH`, `oci:DIR[:TAG]`, `oci-archive:PATH[:TAG]` or a
    /// registry reference.
    pub image_a: String,
    /// The new image, as the old.
    pub image_b: String,
    /// Print JSON for machines.
    #[arg(long)]
    pub json: bool,
    /// Exit with 1 when the images differ, 0 when they do not and 2 on an error, as
    /// `git diff --exit-code` and diff(1); without it, 0 whether or not they differ.
    #[arg(long)]
    pub exit_code: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The image: `docker-archive:PATH`, `oci:DIR[:TAG]`, `oci-archive:PATH[:TAG]` or a
    /// registry reference.
    pub image: String,
    /// The lockfile to write: conda-lock's format for `.yml`/`.yaml`, else conda's explicit
    /// format. An existing directory or symlink is refused.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// The environment's prefix in the image (default: the image's CONDA_PREFIX, else the one
    /// environment it holds).
    #[arg(long, value_name = "PATH")]
    pub prefix: Option<String>,
    /// Also print what was written as JSON on stdout: the file, the prefix, the platform and
    /// each package (name, version, build, channel, url, sha256).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Where to read the image from (as `-b` takes it).
    pub source: String,
    /// Where to write it (as `-o` takes it).
    pub destination: String,
    /// Name and tag for the written image (repeatable).
    #[arg(
        short,
        long = "image",
        visible_short_alias = 't',
        visible_alias = "tag",
        value_name = "NAME[:TAG]"
    )]
    pub images: Vec<String>,
    #[command(flatten)]
    pub compression: CompressionArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// How layers are compressed in what is written.
#[derive(Debug, Args)]
pub struct CompressionArgs {
    /// Layer compression for OCI layouts, oci-archives and registries: `gzip`, `zstd` or
    /// `none`, with an optional level (`gzip:1`..`gzip:9`, `zstd:1`..`zstd:22`). Layers of the
    /// base already in it are kept as they are, others recompressed. zstd layers cannot be
    /// pulled by Docker before 23. Docker archives always hold uncompressed layers, as
    /// `docker save` writes them.
    #[arg(long, value_name = "ALGORITHM[:LEVEL]", default_value_t = crate::image::LayerCompression::default())]
    pub compression: crate::image::LayerCompression,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry host, e.g. `ghcr.io` or `localhost:5000` (default: Docker Hub).
    #[arg(default_value = "docker.io")]
    pub registry: String,
    /// User name.
    #[arg(short, long)]
    pub username: String,
    /// Password (prefer --password-stdin: a password on the command line shows in `ps`).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// How to reach registries: TLS, and how long to wait.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// Allow plain HTTP, and TLS certificates that do not verify (as Docker's insecure
    /// registries; loopback registries get plain HTTP without it).
    #[arg(help_heading = REGISTRY, long)]
    pub insecure: bool,
    /// Trust the CA certificates (`*.crt`) and use the client certificate (`*.cert` + `*.key`)
    /// in DIR or DIR/HOST:PORT, besides /etc/docker/certs.d and /etc/containers/certs.d.
    #[arg(help_heading = REGISTRY, long, value_name = "DIR", env = "CONDA_DOCKER_CERT_DIR")]
    pub cert_dir: Option<PathBuf>,
    /// How long a registry or PyPI index may stay silent (connecting, answering, mid-transfer),
    /// and how long the retries of one request may go on, in seconds [default: 60].
    #[arg(help_heading = REGISTRY, long, value_name = "SECONDS", env = "CONDA_DOCKER_TIMEOUT", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,
    /// A transfer slower than --low-speed-limit for this many seconds fails (and is retried)
    /// [default: 30].
    #[arg(help_heading = REGISTRY, long, value_name = "SECONDS", env = "CONDA_DOCKER_LOW_SPEED_TIME", value_parser = parse_seconds)]
    pub low_speed_time: Option<Duration>,
    /// The low-speed limit in bytes per second; 0 turns it off [default: 1024].
    #[arg(help_heading = REGISTRY, long, value_name = "BYTES", env = "CONDA_DOCKER_LOW_SPEED_LIMIT")]
    pub low_speed_limit: Option<u64>,
}

impl TlsArgs {
    /// Registry options with these TLS settings and timeouts, and `credential`.
    pub fn options(
        &self,
        credential: Option<Credential>,
        env: &crate::env::Env,
    ) -> RegistryOptions {
        let default = Timeouts::default();
        RegistryOptions {
            insecure: self.insecure,
            credential,
            cert_dir: self.cert_dir.clone(),
            timeouts: Timeouts {
                timeout: self.timeout.unwrap_or(default.timeout),
                low_speed_limit: self.low_speed_limit.unwrap_or(default.low_speed_limit),
                low_speed_time: self.low_speed_time.unwrap_or(default.low_speed_time),
            },
            ..RegistryOptions::from_env(env)
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Layering {
    /// The largest packages alone, the small ones in a few buckets by name, so an update
    /// changes few layers.
    Auto,
    /// One layer per package, in dependency order (the rest in one when the budget runs out).
    Layered,
    /// The whole environment in one layer.
    Single,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Conda match specs: `numpy>=1.26`, `python=3.12.*`, `conda-forge::zstd`.
    #[arg(help_heading = INPUT)]
    pub specs: Vec<String>,
    /// An environment.yml, or a lockfile (conda-lock.yml, pixi.lock, conda's @EXPLICIT list),
    /// told apart by content. Specs on the command line are added to an environment file's.
    #[arg(help_heading = INPUT, short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The pixi.lock environment to build.
    #[arg(help_heading = INPUT, long, default_value = "default")]
    pub environment: String,
    /// Build the packages of an existing conda environment (reinstalled fresh, not copied).
    #[arg(help_heading = INPUT, short = 'p', long, value_name = "PATH", conflicts_with_all = ["file", "name"])]
    pub prefix: Option<PathBuf>,
    /// Build the packages of the named conda environment (see --prefix).
    #[arg(help_heading = INPUT, short = 'n', long, value_name = "NAME", conflicts_with = "file")]
    pub name: Option<String>,
    /// Channel (repeatable, highest priority first): a name, an http(s) or file:// URL, or a
    /// directory (default: the environment file's channels, else conda-forge).
    #[arg(help_heading = INPUT, short, long = "channel", value_name = "CHANNEL")]
    pub channels: Vec<String>,
    /// Fetch a channel's repodata and packages from a mirror (repeatable):
    /// `CHANNEL=MIRROR`, e.g. `conda-forge=https://mirror.example/conda-forge` or
    /// `conda-forge=./local-copy`. Records and lockfiles keep CHANNEL's URL. Also read from the
    /// `[mirrors]` table of `$CONDA_DOCKER_CONFIG` or `~/.config/conda-docker/config.toml`.
    #[arg(help_heading = INPUT, long = "mirror", value_name = "CHANNEL=MIRROR")]
    pub mirrors: Vec<String>,
    /// The channel a local channel directory is a copy of (repeatable): `NAME=DIR`, NAME a
    /// channel name or URL. Without it, a directory is recorded as its own file:// URL.
    #[arg(help_heading = INPUT, long = "channel-name", value_name = "NAME=DIR")]
    pub channel_names: Vec<String>,
    /// The conda platform (subdir) to build for: linux-64, linux-aarch64, linux-ppc64le, ...
    /// Several (repeated or comma-separated) build a multi-platform image: one image per
    /// platform under an OCI index, for `oci:` outputs and registries.
    #[arg(
        help_heading = INPUT,
        long = "platform",
        value_name = "PLATFORM",
        default_value = "linux-64",
        value_delimiter = ','
    )]
    pub platforms: Vec<String>,
    /// Override a virtual package for the solve: `__glibc=2.28`, `__cuda=12.4` (repeatable).
    #[arg(help_heading = INPUT, long = "virtual-package", value_name = "NAME=VERSION")]
    pub virtual_packages: Vec<String>,
    /// The PyPI index the `pip:` section is resolved on (PEP 503/691 simple API), over the
    /// section's own `--index-url`; by default `PIP_INDEX_URL`, `UV_INDEX_URL`, else PyPI.
    #[arg(help_heading = INPUT, long, value_name = "URL")]
    pub pypi_index_url: Option<String>,
    /// Another index searched after it (repeatable), as pip's `--extra-index-url`.
    #[arg(help_heading = INPUT, long, value_name = "URL")]
    pub pypi_extra_index_url: Vec<String>,
    /// A directory of wheels, or a page of links to them, searched too (repeatable), as pip's
    /// `--find-links`.
    #[arg(help_heading = INPUT, long, value_name = "DIR|URL")]
    pub find_links: Vec<String>,
    /// Install a lockfile's PyPI wheels that carry no sha256 (unchecked); without it they are
    /// refused.
    #[arg(help_heading = INPUT, long)]
    pub allow_unhashed_pypi: bool,
    /// Name and tag of the image (repeatable): `demo:1`, `localhost:5000/team/app:1.0`
    /// (default: the environment file's name, else `conda-docker:latest`).
    #[arg(
        help_heading = IMAGE,
        short,
        long = "image",
        visible_short_alias = 't',
        visible_alias = "tag",
        value_name = "NAME[:TAG]"
    )]
    pub images: Vec<String>,
    /// Base image: `scratch`, `docker-archive:PATH[:NAME:TAG]`, `oci:DIR[:TAG]`,
    /// `oci-archive:PATH[:TAG]`, or a registry reference (`debian:stable-slim`).
    #[arg(help_heading = IMAGE, short, long, default_value = "debian:stable-slim")]
    pub base: String,
    /// Set an environment variable in the image (repeatable).
    #[arg(help_heading = IMAGE, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The entrypoint, as words or a JSON array.
    #[arg(help_heading = IMAGE, long)]
    pub entrypoint: Option<String>,
    /// The default command, as words or a JSON array.
    #[arg(help_heading = IMAGE, long)]
    pub cmd: Option<String>,
    /// The working directory.
    #[arg(help_heading = IMAGE, long)]
    pub workdir: Option<String>,
    /// A label (repeatable).
    #[arg(help_heading = IMAGE, long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// A manifest annotation (repeatable).
    #[arg(help_heading = IMAGE, long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// A port to expose, `8080` or `53/udp` (repeatable).
    #[arg(help_heading = IMAGE, long)]
    pub expose: Vec<String>,
    /// Run as this user, created in the image: NAME[:UID[:GID]] (uid defaults to 1000).
    #[arg(help_heading = IMAGE, long, value_name = "NAME[:UID[:GID]]")]
    pub user: Option<String>,
    /// Make the --user own the environment, so it can install into it.
    #[arg(help_heading = IMAGE, long)]
    pub writable_prefix: bool,
    /// Put a host file or directory at DEST in the image, in a layer of its own above the
    /// environment's (repeatable; a directory's `.dockerignore` leaves paths out).
    #[arg(help_heading = IMAGE, long, value_name = "SRC:DEST")]
    pub add: Vec<crate::settings::AddFiles>,
    /// Make the --user own the files --add puts in (else root does).
    #[arg(help_heading = IMAGE, long)]
    pub chown: bool,
    /// Where the environment lives inside the image.
    #[arg(help_heading = IMAGE, long, default_value = "/opt/conda")]
    pub target_prefix: PathBuf,
    /// Output (repeatable): a path writes a docker-archive, `oci:DIR[:TAG]` an OCI image layout,
    /// `oci-archive:PATH[:TAG]` an OCI layout in a tar, `docker://REGISTRY/REPO:TAG` pushes.
    #[arg(
        help_heading = OUTPUT,
        short,
        long = "output",
        value_name = "OUTPUT",
        required_unless_present = "dry_run"
    )]
    pub outputs: Vec<String>,
    #[command(flatten, next_help_heading = OUTPUT)]
    pub compression: CompressionArgs,
    /// Also write what went into the image as a lockfile: conda-lock format for .yml/.yaml,
    /// else conda's explicit format.
    #[arg(help_heading = OUTPUT, long, value_name = "FILE")]
    pub lock_output: Option<PathBuf>,
    /// Also write the image's SBOMs to DIR: `sbom.spdx.json` (SPDX 2.3) and `sbom.cdx.json`
    /// (CycloneDX 1.6); `<platform>.sbom.spdx.json`, ... for several platforms.
    #[arg(help_heading = OUTPUT, long, value_name = "DIR", conflicts_with = "no_sbom")]
    pub sbom_dir: Option<PathBuf>,
    /// Build without SBOMs: none in the image (`<prefix>/share/sbom/`), none beside it.
    #[arg(help_heading = OUTPUT, long)]
    pub no_sbom: bool,
    /// Print the layer plan (each layer's packages and recorded bytes, and what would be
    /// downloaded) without downloading or writing anything.
    #[arg(help_heading = OUTPUT, long)]
    pub dry_run: bool,
    /// Print the result as JSON on stdout: per output its ID, digests, images and their layers
    /// (digest, diff_id, size, compression); with --dry-run, the plan (an array, one entry per
    /// platform).
    #[arg(help_heading = OUTPUT, long)]
    pub json: bool,
    /// How packages are split into layers.
    #[arg(help_heading = LAYERS, long, value_enum, default_value = "auto")]
    pub layering_strategy: Layering,
    /// The most layers the image may have, the base image's included.
    #[arg(help_heading = LAYERS, long, value_name = "N", default_value_t = crate::conda::plan::MAX_LAYERS,
          value_parser = clap::value_parser!(usize))]
    pub max_layers: usize,
    /// Also leave out these file groups (repeatable, comma-separated): `docs` (share/man,
    /// share/info, share/doc, share/gtk-doc), `headers` (include/). `static-libs` (*.a) and
    /// `js-maps` (*.js.map) are left out by default.
    #[arg(
        help_heading = LAYERS,
        long,
        value_name = "GROUP",
        value_delimiter = ',',
        conflicts_with = "no_trim"
    )]
    pub trim: Vec<String>,
    /// Keep every file of every package.
    #[arg(help_heading = LAYERS, long)]
    pub no_trim: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Take layers from this image or cache (repeatable): an image conda-docker pushed before,
    /// in any repository or registry. Layers found there by key are mounted or pulled instead
    /// of being made, and their packages are not downloaded; a cache that cannot be read is a
    /// warning. Default: `CONDA_DOCKER_CACHE_FROM` (references separated by commas).
    #[arg(help_heading = CACHE, long, value_name = "REF")]
    pub cache_from: Vec<String>,
    /// Also write this build's layers to a layer cache, for outputs that are not pushed (a
    /// docker-archive or `oci:` made in CI): REF[,max-entries=N]. Each build writes its own
    /// entry (`TAG-<hex>`), so many runners may share one cache; the oldest entries beyond N
    /// (default 32) are deleted. `--cache-from REF` reads every entry. Default:
    /// `CONDA_DOCKER_CACHE_TO`.
    #[arg(help_heading = CACHE, long, value_name = "REF[,max-entries=N]")]
    pub cache_to: Option<String>,
    /// Trust no layer found in a --cache-from cache unchecked: make it from its packages too and
    /// compare; a layer that differs is named in a warning, and the image gets the one made here.
    #[arg(help_heading = CACHE, long)]
    pub verify_cache: bool,
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: CacheAction,
    /// The cache directory (default: ~/.cache/conda-docker).
    #[arg(long, env = "CONDA_DOCKER_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Show where the caches are, how many entries they hold and their size.
    #[command(after_help = help::CACHE_INFO)]
    Info {
        /// Print JSON for machines.
        #[arg(long)]
        json: bool,
    },
    /// Remove cache entries: those unused for --older-than DAYS, or all with --all.
    #[command(after_help = help::CACHE_PRUNE)]
    Prune {
        /// Remove entries not used for this many days.
        #[arg(long, value_name = "DAYS", required_unless_present = "all")]
        older_than: Option<u64>,
        /// Remove everything.
        #[arg(long, conflicts_with = "older_than")]
        all: bool,
    },
    /// Check every entry: blobs, manifests and wheels hash to their names, the other entries
    /// parse, nothing is a symlink. Fails when one is damaged, unless --repair removes it.
    #[command(after_help = help::CACHE_VERIFY)]
    Verify {
        /// Remove each damaged entry (the next build makes or fetches it again).
        #[arg(long)]
        repair: bool,
    },
    /// Show what a remote layer cache holds (an image pushed before, or a --cache-to REF):
    /// each image or entry, its keyed layers, their size and the packages it describes.
    #[command(after_help = help::CACHE_REMOTE)]
    Remote {
        /// The cache, as --cache-from takes it.
        reference: String,
        /// The conda platform whose image to read from a multi-platform index.
        #[arg(long, default_value = "linux-64")]
        platform: String,
        /// Credentials for the cache's registry, as USER:PASS.
        #[arg(
            long,
            value_name = "USER:PASS",
            env = "CONDA_DOCKER_CREDS",
            hide_env_values = true
        )]
        creds: Option<String>,
        #[command(flatten)]
        tls: TlsArgs,
        /// Print JSON for machines.
        #[arg(long)]
        json: bool,
    },
}
