//! `conda_docker._native`: the Python package's one bridge to the `conda_docker` crate.
//!
//! Every operation here calls the library; the Python modules beside it only shape arguments
//! and results. Long calls run on a worker thread (with a tokio runtime) while the calling
//! thread releases the GIL and checks for signals every 50 ms: Ctrl-C sets the library's
//! [`Cancel`] and raises `conda_docker.Cancelled`. Library errors become the exceptions of
//! `conda_docker.errors`, carrying the message and its cause chain.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use conda_docker::builder::{Builder, Context, Job};
use conda_docker::env::Env;
use conda_docker::image::host::{HostFiles, HostKind, Kept};
use conda_docker::image::{
    Cancel, History, Image, Layer, LayerCompression, Platform, Reference, RunConfig,
};
use conda_docker::platform::{oci_platform, parse_subdir};
use conda_docker::reporter::{NoReporter, Reporter, Stage};
use conda_docker::request::{BuildRequest, Words};
use conda_docker::store::Store;
use conda_docker::transport::registry::{Credential, RegistryOptions};
use conda_docker::transport::{self, Location, Remote, Session, WriteOptions};
use pyo3::prelude::*;

mod seed;

// ---------------------------------------------------------------------------------------------
// Errors

/// Which `conda_docker.errors` class a failure raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Base,
    Solve,
    Registry,
    Unauthorized,
    NotFound,
    Invalid,
    Cancelled,
}

impl Kind {
    fn class(self) -> &'static str {
        match self {
            Kind::Base => "CondaDockerError",
            Kind::Solve => "SolveError",
            Kind::Registry => "RegistryError",
            Kind::Unauthorized => "Unauthorized",
            Kind::NotFound => "NotFound",
            Kind::Invalid => "InvalidImage",
            Kind::Cancelled => "Cancelled",
        }
    }
}

/// A failure on a worker thread, turned into a Python exception once the GIL is held again.
#[derive(Debug)]
struct Fail {
    kind: Kind,
    message: String,
}

/// The error's message followed by each cause, as the command line prints them.
fn with_causes(e: &dyn std::error::Error) -> String {
    causes(e.to_string(), e.source())
}

/// `text` followed by each cause from `source` on.
fn causes(mut text: String, mut source: Option<&dyn std::error::Error>) -> String {
    while let Some(cause) = source {
        text.push_str("\n  caused by: ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Fail {
    fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    fn of(kind: Kind, e: &dyn std::error::Error) -> Self {
        Self::new(kind, with_causes(e))
    }

    /// `context`, then the failure's message.
    fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}\n  caused by: {}", self.message);
        self
    }

    fn into_py(self, py: Python<'_>) -> PyErr {
        let class = py
            .import("conda_docker.errors")
            .and_then(|m| m.getattr(self.kind.class()));
        match class.and_then(|c| c.call1((self.message.clone(),))) {
            Ok(value) => PyErr::from_value(value),
            Err(e) => e,
        }
    }
}

fn image_kind(e: &conda_docker::image::Error) -> Kind {
    use conda_docker::image::Error as E;
    match e {
        E::NotFound { .. } => Kind::NotFound,
        E::Invalid { .. } | E::DigestMismatch { .. } => Kind::Invalid,
        E::Cancelled => Kind::Cancelled,
        _ => Kind::Base,
    }
}

fn transport_kind(e: &conda_docker::transport::Error) -> Kind {
    use conda_docker::transport::Error as E;
    match e {
        E::Image(source) => image_kind(source),
        E::Blob { source, .. } => image_kind(source),
        E::Unauthorized { .. } => Kind::Unauthorized,
        E::NotFound { .. } => Kind::NotFound,
        _ => Kind::Registry,
    }
}

impl From<conda_docker::image::Error> for Fail {
    fn from(e: conda_docker::image::Error) -> Self {
        Fail::of(image_kind(&e), &e)
    }
}

impl From<conda_docker::transport::Error> for Fail {
    fn from(e: conda_docker::transport::Error) -> Self {
        Fail::of(transport_kind(&e), &e)
    }
}

impl From<conda_docker::builder::Error> for Fail {
    fn from(e: conda_docker::builder::Error) -> Self {
        use conda_docker::builder::Error as B;
        use conda_docker::conda::Error as C;
        let kind = match &e {
            B::Base { source, .. } => transport_kind(source),
            B::Image(source) => image_kind(source),
            B::Output(o) => o.transport_error().map_or(Kind::Base, transport_kind),
            B::Conda(
                C::Unsolvable { .. }
                | C::NoSuchPackage { .. }
                | C::InvalidSpec { .. }
                | C::Repodata { .. },
            )
            | B::NoSpecs => Kind::Solve,
            _ => Kind::Base,
        };
        // A setting at fault is named as Python names it (`max_layers=`).
        Fail::new(
            kind,
            causes(e.render(Words::Keywords), std::error::Error::source(&e)),
        )
    }
}

/// Any other library error (locations, inputs, lockfiles, settings): a `CondaDockerError`.
fn fail<E: std::error::Error>(e: E) -> Fail {
    Fail::of(Kind::Base, &e)
}

// ---------------------------------------------------------------------------------------------
// Running library calls: off the GIL, cancellable with Ctrl-C

fn runtime() -> Result<&'static tokio::runtime::Runtime, Fail> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("conda-docker")
                .build()
                .map_err(|e| format!("cannot start the async runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| Fail::new(Kind::Base, e.clone()))
}

/// Runs `work` on a worker thread; meanwhile this thread releases the GIL and checks for
/// signals every 50 ms. A signal handler that raises (Ctrl-C's `KeyboardInterrupt`) sets
/// `cancel`, waits for the library to stop, and raises `Cancelled`.
fn run<T: Send + 'static>(
    py: Python<'_>,
    cancel: &Cancel,
    work: impl FnOnce() -> Result<T, Fail> + Send + 'static,
) -> PyResult<T> {
    let (tx, mut rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("conda-docker-call".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| Fail::new(Kind::Base, format!("cannot start a thread: {e}")).into_py(py))?;
    let mut interrupted = false;
    let result = loop {
        let waiting = &mut rx;
        match py.detach(move || waiting.recv_timeout(Duration::from_millis(50))) {
            Ok(result) => break result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if !interrupted && py.check_signals().is_err() {
                    interrupted = true;
                    cancel.cancel();
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                break Err(Fail::new(
                    Kind::Base,
                    "conda-docker stopped unexpectedly (a bug: please report it)",
                ));
            }
        }
    };
    match result {
        Ok(_) if interrupted => Err(Fail::new(
            Kind::Cancelled,
            "interrupted as the call finished: what it wrote is complete",
        )
        .into_py(py)),
        Err(f) if interrupted => Err(Fail::new(
            Kind::Cancelled,
            format!("cancelled; nothing was written ({})", f.message),
        )
        .into_py(py)),
        Ok(value) => Ok(value),
        Err(f) => Err(f.into_py(py)),
    }
}

/// Runs a future with the shared runtime, on the calling (worker) thread.
fn block_on<T>(future: impl std::future::Future<Output = Result<T, Fail>>) -> Result<T, Fail> {
    runtime()?.block_on(future)
}

// ---------------------------------------------------------------------------------------------
// Arguments shared by calls that read or write images

/// `(creds "USER:PASS" or None, insecure, cert_dir, cache_dir)` from Python.
type RemoteSpec = (Option<String>, bool, Option<PathBuf>, Option<PathBuf>);

fn remote(spec: &RemoteSpec) -> Result<Remote, Fail> {
    let (creds, insecure, cert_dir, cache_dir) = spec;
    Ok(Remote {
        options: registry_options(creds.as_deref(), *insecure, cert_dir.clone())?,
        cache: Store::at(
            cache_dir.as_deref(),
            &conda_docker::env::Env::from_process(),
        )
        .blobs(),
    })
}

fn registry_options(
    creds: Option<&str>,
    insecure: bool,
    cert_dir: Option<PathBuf>,
) -> Result<RegistryOptions, Fail> {
    let credential = creds
        .map(|c| {
            Credential::from_user_pass(c).ok_or_else(|| {
                Fail::new(
                    Kind::Base,
                    "credentials must be (username, password) or \"USER:PASS\"",
                )
            })
        })
        .transpose()?;
    Ok(RegistryOptions {
        insecure,
        credential,
        cert_dir,
        ..RegistryOptions::from_env(&conda_docker::env::Env::from_process())
    })
}

fn platform_of(subdir: &str) -> Result<Platform, Fail> {
    Ok(oci_platform(parse_subdir(subdir).map_err(fail)?))
}

fn references(names: &[String]) -> Result<Vec<Reference>, Fail> {
    names
        .iter()
        .map(|n| n.parse::<Reference>().map_err(fail))
        .collect()
}

fn compression(text: &str) -> Result<LayerCompression, Fail> {
    text.parse::<LayerCompression>()
        .map_err(|e| Fail::new(Kind::Base, format!("compression `{text}`: {e}")))
}

/// What a write produced: (image ID, manifest digest, `REF@DIGEST` for a push).
type Written = (String, Option<String>, Option<String>);

/// Writes `image` to `location` (through [`transport::write_all`], as a build's outputs are).
async fn write_one(
    image: &Image,
    location: &Location,
    tags: &[Reference],
    remote: &Remote,
    options: &WriteOptions,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> Result<Written, Fail> {
    let publish = [transport::Publish {
        image,
        referrers: Vec::new(),
    }];
    let outputs = std::slice::from_ref(location);
    let ctx = Session::new(cancel)
        .with_remote(remote)
        .with_reporter(reporter)
        .write(tags, *options);
    let written = transport::write_all(&publish, outputs, &ctx)
        .await
        .map_err(|e| Fail::of(e.transport_error().map_or(Kind::Base, transport_kind), &e))?;
    let w = written
        .first()
        .ok_or_else(|| Fail::new(Kind::Base, format!("nothing was written to {location}")))?;
    let id = w.id().map(|d| d.to_string()).unwrap_or_default();
    Ok((id, w.digest().map(|d| d.to_string()), w.pushed()))
}

// ---------------------------------------------------------------------------------------------
// Images and layers

/// An image: config and layers (bottom first), as the library holds it.
#[pyclass(module = "conda_docker._native")]
#[derive(Clone)]
struct NativeImage {
    image: Image,
}

/// One layer with the history entry that describes it.
#[pyclass(module = "conda_docker._native")]
#[derive(Clone)]
struct NativeLayer {
    layer: Layer,
    history: History,
}

#[pymethods]
impl NativeLayer {
    /// The uncompressed digest (`sha256:...`), when known before writing.
    #[getter]
    fn diff_id(&self) -> Option<String> {
        self.layer.diff_id().map(|d| d.to_string())
    }

    /// What the layer holds, in words.
    #[getter]
    fn description(&self) -> String {
        self.layer.description().to_string()
    }

    /// The history entry's `created_by`.
    #[getter]
    fn created_by(&self) -> Option<String> {
        self.history.created_by.clone()
    }

    /// The history entry's `created`.
    #[getter]
    fn created(&self) -> Option<String> {
        self.history.created.clone()
    }

    /// The paths in the layer's tar, in order (the layer is read and checked).
    fn list_files(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let layer = self.layer.clone();
        let cancel = Cancel::new();
        let c = cancel.clone();
        run(py, &cancel, move || {
            let (names, _) = layer.read_tar(&c, |reader| {
                let mut names = Vec::new();
                for entry in tar::Archive::new(reader).entries()? {
                    let entry = entry?;
                    names.push(String::from_utf8_lossy(&entry.path_bytes()).into_owned());
                }
                Ok(names)
            })?;
            Ok(names)
        })
    }
}

#[pymethods]
impl NativeImage {
    /// An empty image for the conda platform `platform` (`linux-64`).
    #[staticmethod]
    fn scratch(py: Python<'_>, platform: &str) -> PyResult<Self> {
        let platform = platform_of(platform).map_err(|f| f.into_py(py))?;
        Ok(Self {
            image: Image::scratch(&platform),
        })
    }

    /// Reads the image at `location` (as `-b` takes it: a registry reference,
    /// `docker-archive:PATH`, `oci:DIR[:TAG]`, `oci-archive:PATH[:TAG]`).
    #[staticmethod]
    fn read(
        py: Python<'_>,
        location: String,
        platform: String,
        remote_spec: RemoteSpec,
    ) -> PyResult<Self> {
        let cancel = Cancel::new();
        let c = cancel.clone();
        run(py, &cancel, move || {
            let image = read_image(&location, &platform, &remote_spec, &c)?;
            Ok(Self { image })
        })
    }

    /// The image ID (config digest) the image has when written, if every layer's diff_id is
    /// known already (layers of a read image or a build are; host files are hashed on writing).
    fn image_id(&self) -> Option<String> {
        let diff_ids = self
            .image
            .layers()
            .iter()
            .map(|l| l.diff_id().cloned())
            .collect::<Option<Vec<_>>>()?;
        Some(conda_docker::image::Digest::of(&self.image.config_bytes(diff_ids)).to_string())
    }

    /// A copy that edits do not share.
    fn copy(&self) -> Self {
        self.clone()
    }

    /// The whole config blob, as JSON.
    fn config_json(&self) -> PyResult<String> {
        serde_json::to_string(self.image.config())
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
    }

    /// The run-time config (`Env`, `Cmd`, `Entrypoint`, ...), as JSON.
    fn run_config_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.image.config().config)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
    }

    /// Replaces the run-time config with `json`.
    fn set_run_config_json(&mut self, py: Python<'_>, json: &str) -> PyResult<()> {
        let config: RunConfig = serde_json::from_str(json).map_err(|e| {
            Fail::new(
                Kind::Base,
                format!("the image config cannot be used: {e} (keys are Docker's: Env, Cmd, ...)"),
            )
            .into_py(py)
        })?;
        self.image.config_mut().config = config;
        Ok(())
    }

    /// The layers, bottom first, each with its history entry.
    fn layers(&self) -> Vec<NativeLayer> {
        let history: Vec<&History> = self
            .image
            .config()
            .history
            .iter()
            .filter(|h| !h.empty_layer)
            .collect();
        let layers = self.image.layers();
        // History aligned from the top: a base may carry fewer entries than layers.
        let offset = layers.len().saturating_sub(history.len());
        layers
            .iter()
            .enumerate()
            .map(|(i, layer)| NativeLayer {
                layer: layer.clone(),
                history: i
                    .checked_sub(offset)
                    .and_then(|j| history.get(j))
                    .map(|h| (*h).clone())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Removes the top layer; `None` when there is none.
    fn remove_layer(&mut self) -> Option<NativeLayer> {
        let history = self
            .image
            .config()
            .history
            .iter()
            .rev()
            .find(|h| !h.empty_layer)
            .cloned()
            .unwrap_or_default();
        self.image
            .remove_layer()
            .map(|layer| NativeLayer { layer, history })
    }

    /// Puts `layer` on top.
    fn push_layer(&mut self, layer: &NativeLayer) {
        self.image
            .push_layer(layer.layer.clone(), layer.history.clone());
    }

    /// Adds a layer of the scanned entries `kept` lists as `(index, path, mode, link target)`,
    /// in the order and with the names, modes and targets a filter left.
    fn add_scanned(
        &mut self,
        py: Python<'_>,
        scan: &Scan,
        kept: Vec<(usize, String, u32, Option<String>)>,
        mtime: u64,
        created_by: String,
    ) -> PyResult<()> {
        let kept = kept.into_iter().map(|(index, path, mode, target)| Kept {
            index,
            path,
            mode,
            target,
        });
        let layer = scan
            .files
            .layer_of(kept, mtime, created_by.clone())
            .map_err(|e| fail(e).into_py(py))?;
        self.image.push_layer(
            layer,
            History {
                created: Some(conda_docker::image::config::rfc3339(mtime)),
                created_by: Some(created_by),
                ..Default::default()
            },
        );
        Ok(())
    }

    /// Writes the image to `location` (as `-o` takes it), tagged `tags`; with `archive_path`,
    /// to that docker-archive file instead. Returns (image ID, manifest digest, pushed ref).
    #[pyo3(signature = (location, tags, remote_spec, compression_text, archive_path=None))]
    fn write(
        &self,
        py: Python<'_>,
        location: String,
        tags: Vec<String>,
        remote_spec: RemoteSpec,
        compression_text: String,
        archive_path: Option<PathBuf>,
    ) -> PyResult<Written> {
        let image = self.image.clone();
        let cancel = Cancel::new();
        let c = cancel.clone();
        run(py, &cancel, move || {
            let location = match archive_path {
                Some(path) => Location::DockerArchive {
                    path,
                    reference: None,
                },
                None => Location::parse_destination(&location).map_err(fail)?,
            };
            location.check_writable()?;
            let tags = references(&tags)?;
            let remote = remote(&remote_spec)?;
            let options = WriteOptions {
                compression: compression(&compression_text)?,
            };
            block_on(write_one(
                &image,
                &location,
                &tags,
                &remote,
                &options,
                &c,
                &NoReporter,
            ))
        })
    }

    /// What the image holds, as `conda-docker inspect --json` prints it.
    fn inspect_json(&self, py: Python<'_>) -> PyResult<String> {
        let image = self.image.clone();
        let cancel = Cancel::new();
        let c = cancel.clone();
        run(py, &cancel, move || inspect_image(&image, &c))
    }
}

fn read_image(
    location: &str,
    platform: &str,
    remote_spec: &RemoteSpec,
    cancel: &Cancel,
) -> Result<Image, Fail> {
    let source = Location::parse_source(location).map_err(fail)?;
    let platform = platform_of(platform)?;
    let remote = remote(remote_spec)?;
    block_on(async {
        let ctx = Session::new(cancel).with_remote(&remote).read(&platform);
        transport::read(&source, &ctx)
            .await
            .map_err(|e| Fail::from(e).context(format!("reading `{location}`")))
    })
}

fn inspect_image(image: &Image, cancel: &Cancel) -> Result<String, Fail> {
    let report = conda_docker::describe::inspect::inspect(image, cancel)?;
    serde_json::to_string(&report).map_err(fail)
}

// ---------------------------------------------------------------------------------------------
// Layers from host files and from bytes

/// Host files and bytes to become a layer, before a filter has seen them.
#[pyclass(module = "conda_docker._native")]
struct Scan {
    files: HostFiles,
}

#[pymethods]
impl Scan {
    /// `(path, type, mode, size, link target)` per entry; type is `file`, `dir` or `symlink`.
    fn infos(&self) -> Vec<(String, &'static str, u32, u64, String)> {
        self.files
            .files()
            .into_iter()
            .map(|f| {
                let kind = match f.kind {
                    HostKind::Dir => "dir",
                    HostKind::Symlink => "symlink",
                    HostKind::File => "file",
                };
                (f.path, kind, f.mode, f.size, f.target)
            })
            .collect()
    }
}

/// Scans the tree at `path` for a layer, placed at `arcpath` (default: `path` as given, made
/// relative). Nothing is read through a symlink; symlinks are kept as symlinks.
#[pyfunction]
#[pyo3(signature = (path, arcpath=None, recursive=true))]
fn scan_path(
    py: Python<'_>,
    path: PathBuf,
    arcpath: Option<String>,
    recursive: bool,
) -> PyResult<Scan> {
    let arc = arcpath.unwrap_or_else(|| path.to_string_lossy().into_owned());
    let mut files = HostFiles::new();
    files
        .scan(&path, &arc, recursive)
        .map_err(|e| fail(e).into_py(py))?;
    Ok(Scan { files })
}

/// Scans each host path (not recursing into directories) for a layer, at its archive path.
#[pyfunction]
fn scan_paths(py: Python<'_>, paths: Vec<(PathBuf, String)>) -> PyResult<Scan> {
    let mut files = HostFiles::new();
    for (path, arc) in paths {
        files
            .scan(&path, &arc, false)
            .map_err(|e| fail(e).into_py(py))?;
    }
    Ok(Scan { files })
}

/// Files with these contents, mode 0644, for a layer.
#[pyfunction]
fn scan_contents(py: Python<'_>, contents: Vec<(String, Vec<u8>)>) -> PyResult<Scan> {
    let mut files = HostFiles::new();
    for (path, bytes) in contents {
        files
            .add_bytes(&path, bytes)
            .map_err(|e| fail(e).into_py(py))?;
    }
    Ok(Scan { files })
}

// ---------------------------------------------------------------------------------------------
// inspect, copy, login

/// A layer of the tar file at `path` (plain, gzip or zstd), read when the image is written.
#[pyfunction]
fn layer_from_tar(py: Python<'_>, path: PathBuf) -> PyResult<NativeLayer> {
    let mut image = Image::scratch(&Platform::linux("amd64", None));
    image
        .add_layer_tar(&path)
        .map_err(|e| fail(e).into_py(py))?;
    // History names no build-machine path.
    let history = History {
        created_by: Some("conda-docker: a layer from tar bytes".into()),
        ..Default::default()
    };
    match image.remove_layer() {
        Some(layer) => Ok(NativeLayer { layer, history }),
        None => Err(Fail::new(Kind::Base, "no layer was made").into_py(py)),
    }
}

/// `conda-docker inspect --json` of the image at `location`.
#[pyfunction]
fn inspect(
    py: Python<'_>,
    location: String,
    platform: String,
    remote_spec: RemoteSpec,
) -> PyResult<String> {
    let cancel = Cancel::new();
    let c = cancel.clone();
    run(py, &cancel, move || {
        let image = read_image(&location, &platform, &remote_spec, &c)?;
        inspect_image(&image, &c)
    })
}

/// `conda-docker copy`: reads `source` and writes it to `destination`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn copy(
    py: Python<'_>,
    source: String,
    destination: String,
    images: Vec<String>,
    platform: String,
    compression_text: String,
    source_remote: RemoteSpec,
    destination_remote: RemoteSpec,
) -> PyResult<Written> {
    let cancel = Cancel::new();
    let c = cancel.clone();
    run(py, &cancel, move || {
        let location = Location::parse_destination(&destination).map_err(fail)?;
        location.check_writable()?;
        let tags = references(&images)?;
        let options = WriteOptions {
            compression: compression(&compression_text)?,
        };
        let image = read_image(&source, &platform, &source_remote, &c)?;
        let remote = remote(&destination_remote)?;
        block_on(write_one(
            &image,
            &location,
            &tags,
            &remote,
            &options,
            &c,
            &NoReporter,
        ))
    })
}

/// `conda-docker login`: checks the credentials against `registry`, then stores them where
/// `docker login` would. Returns where they went.
#[pyfunction]
fn login(
    py: Python<'_>,
    registry: String,
    username: String,
    password: String,
    insecure: bool,
    cert_dir: Option<PathBuf>,
) -> PyResult<String> {
    let cancel = Cancel::new();
    run(py, &cancel, move || {
        let options = RegistryOptions {
            insecure,
            cert_dir,
            ..RegistryOptions::from_env(&conda_docker::env::Env::from_process())
        };
        let stored = block_on(async {
            Ok(transport::registry::login(&registry, &username, &password, &options).await?)
        })?;
        Ok(stored.display().to_string())
    })
}

// ---------------------------------------------------------------------------------------------
// build

/// Progress events for a Python callable `progress(event, message)`; its errors are ignored.
struct PyReporter(Py<PyAny>);

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::ReadBase => "read_base",
        Stage::Solve => "solve",
        Stage::Install => "install",
        Stage::Pypi => "pypi",
        Stage::Compose => "compose",
        Stage::Write => "write",
    }
}

impl PyReporter {
    fn emit(&self, event: String, message: String) {
        Python::attach(|py| {
            if let Err(e) = self.0.call1(py, (event, message)) {
                e.print(py);
            }
        });
    }
}

impl Reporter for PyReporter {
    fn stage_started(&self, stage: Stage, message: &str) {
        self.emit(format!("{}.started", stage_name(stage)), message.into());
    }
    fn stage_finished(&self, stage: Stage, message: &str) {
        self.emit(format!("{}.finished", stage_name(stage)), message.into());
    }
    fn package_installed(&self, name: &str) {
        self.emit("package_installed".into(), name.into());
    }
    fn warning(&self, message: &str) {
        self.emit("warning".into(), message.into());
    }
    fn layer_finished(
        &self,
        index: usize,
        layer: &Layer,
        written: &conda_docker::image::WrittenLayer,
    ) {
        let _ = written;
        self.emit(
            "layer_written".into(),
            format!("{}: {}", index + 1, layer.description()),
        );
    }
}

/// What a build made: the images (one per platform), each output as written, the records of
/// each platform (JSON), the names the images got.
type Built = (
    Vec<NativeImage>,
    Vec<(String, Written)>,
    Vec<String>,
    Vec<String>,
);

/// The request `conda_docker.build`'s keywords describe (a dict: its keys are
/// [`BuildRequest`]'s fields, less `progress`, which is the callable progress goes to).
struct Options {
    request: BuildRequest,
    progress: Option<Py<PyAny>>,
}

impl<'py> FromPyObject<'_, 'py> for Options {
    type Error = PyErr;

    fn extract(options: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        let py = options.py();
        let options = options.cast::<pyo3::types::PyDict>()?.copy()?;
        let progress = options
            .get_item("progress")?
            .filter(|p| !p.is_none())
            .map(|p| p.unbind());
        options.del_item("progress").ok();
        let json: String = py
            .import("json")?
            .call_method1("dumps", (options,))?
            .extract()?;
        let request = serde_json::from_str(&json)
            .map_err(|e| Fail::new(Kind::Base, format!("build options: {e}")).into_py(py))?;
        Ok(Self { request, progress })
    }
}

/// The builder, the job and the context `o` describes, resolved as the command line resolves
/// its flags (one [`BuildRequest::resolve`] over the environment, read here once).
fn resolve(o: &Options, cancel: Cancel) -> Result<(Builder, Job, Context), Fail> {
    let reporter: Arc<dyn Reporter> = match &o.progress {
        Some(callable) => Arc::new(PyReporter(Python::attach(|py| callable.clone_ref(py)))),
        None => Arc::new(NoReporter),
    };
    let env = Env::from_process();
    let (builder, job) = o.request.resolve(&env).map_err(|e| {
        Fail::new(
            Kind::Base,
            causes(e.render(Words::Keywords), std::error::Error::source(&e)),
        )
    })?;
    let ctx = Context::new()
        .with_cancel(cancel)
        .with_reporter(reporter)
        .with_env(env);
    Ok((builder, job, ctx))
}

fn build_images(o: Options, cancel: Cancel) -> Result<Built, Fail> {
    let (builder, job, ctx) = resolve(&o, cancel)?;
    block_on(async {
        let outcome = builder.run(&ctx, &job).await?;
        let written = o
            .request
            .outputs
            .iter()
            .zip(&outcome.written)
            .map(|(text, w)| {
                let id = w.id().map(|d| d.to_string()).unwrap_or_default();
                let digest = w.digest().map(|d| d.to_string());
                (text.clone(), (id, digest, w.pushed()))
            })
            .collect();
        let records = outcome
            .built
            .iter()
            .map(|(_, b)| serde_json::to_string(b.records()).map_err(fail))
            .collect::<Result<Vec<_>, _>>()?;
        let tags = outcome.tags.iter().map(|t| t.familiar_tagged()).collect();
        let images = outcome
            .built
            .into_iter()
            .map(|(_, b)| NativeImage {
                image: b.image().clone(),
            })
            .collect();
        Ok((images, written, records, tags))
    })
}

/// The layer plan of the build `options` describe, per platform, as JSON (`--dry-run --json`).
#[pyfunction]
fn plan(py: Python<'_>, options: Options) -> PyResult<String> {
    let cancel = Cancel::new();
    let c = cancel.clone();
    run(py, &cancel, move || {
        let (builder, job, ctx) = resolve(&options, c)?;
        let plans = block_on(async { Ok(builder.plan(&ctx, &job).await?) })?;
        serde_json::to_string(&plans).map_err(fail)
    })
}

/// Builds the images `options` describe and writes every output.
#[pyfunction]
fn build(py: Python<'_>, options: Options) -> PyResult<Built> {
    let cancel = Cancel::new();
    let c = cancel.clone();
    run(py, &cancel, move || build_images(options, c))
}

// ---------------------------------------------------------------------------------------------
// The command line

/// Runs the `conda-docker` command line with `argv` (without the program name) in this
/// process; returns its exit status. Ctrl-C stops it as it stops the binary (status 130).
#[pyfunction]
fn run_cli(py: Python<'_>, argv: Vec<String>) -> i32 {
    let args: Vec<String> = std::iter::once("conda-docker".to_string())
        .chain(argv)
        .collect();
    py.detach(|| conda_docker::cli::run_status(args))
}

// ---------------------------------------------------------------------------------------------

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeImage>()?;
    m.add_class::<NativeLayer>()?;
    m.add_class::<Scan>()?;
    m.add_function(wrap_pyfunction!(scan_path, m)?)?;
    m.add_function(wrap_pyfunction!(scan_paths, m)?)?;
    m.add_function(wrap_pyfunction!(scan_contents, m)?)?;
    m.add_function(wrap_pyfunction!(layer_from_tar, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(copy, m)?)?;
    m.add_function(wrap_pyfunction!(login, m)?)?;
    m.add_function(wrap_pyfunction!(build, m)?)?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    seed::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
