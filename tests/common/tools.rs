//! The real container tools the tests drive: a Docker engine on a private socket, podman with a
//! private store, skopeo, umoci and oci-image-tool.
//!
//! Every setup failure (a missing tool, a daemon that does not start, a scratch file that cannot
//! be written) goes through [`skip`]: it fails the test when `CI=true`; elsewhere the test is
//! skipped with a `SKIPPED <test>: <why>` line that `.ci/run` counts.

use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// True when a missing tool or a failed setup must fail the test (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The file `.ci/run` counts skips in (cargo hides the stderr of a test that passes).
pub const SKIP_LOG: &str = "CONDA_DOCKER_SKIP_LOG";

/// The one way a test gives up on its setup. With `CI=true` the test fails, naming itself and
/// `why`. Elsewhere `SKIPPED <test>: <why>` goes to stderr and, as `<binary>: SKIPPED <test>:
/// <why>`, to the file [`SKIP_LOG`] names; `None` is returned for the test to return (or to
/// leave out the part that needed the tool). `<test>` is libtest's name for the running test
/// (its thread's name), or `test` off a test thread.
pub fn skip<T>(test: &str, why: impl Display) -> Option<T> {
    let current = std::thread::current();
    let name = current.name().filter(|n| *n != "main").unwrap_or(test);
    if in_ci() {
        panic!("{name}: {why} (CI=true: a test that cannot run fails; .ci/run installs the tools)");
    }
    let line = format!("SKIPPED {name}: {why}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os(SKIP_LOG) {
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .map(|s| match s.rsplit_once('-') {
                Some((name, hash)) if hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.into(),
                _ => s,
            })
            .unwrap_or_default();
        // One write of the whole line, so that tests skipping at once do not interleave.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(format!("{binary}: {line}\n").as_bytes()));
        if let Err(e) = written {
            panic!(
                "{name}: recording the skip in {}: {e}",
                log.to_string_lossy()
            );
        }
    }
    None
}

/// A setup step's result as an `Option`: a failure goes through [`skip`], naming the step.
pub trait OrSkip<T> {
    /// `Some(value)`, or [`skip`] with "`what`: the error".
    fn or_skip(self, test: &str, what: &str) -> Option<T>;
}

impl<T, E: Display> OrSkip<T> for Result<T, E> {
    fn or_skip(self, test: &str, what: &str) -> Option<T> {
        match self {
            Ok(value) => Some(value),
            Err(e) => skip(test, format!("{what}: {e}")),
        }
    }
}

/// Finds `name` on PATH, as the commands the tests run will.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `Some(path)` if `name` is on PATH; otherwise [`skip`].
pub fn require(name: &str, test: &str) -> Option<PathBuf> {
    which(name).or_else(|| {
        skip(
            test,
            format!("`{name}` is not on PATH (run .ci/run to install it)"),
        )
    })
}

/// `python3` when it imports every module of `imports` (`"spdx_tools, cyclonedx"`); otherwise
/// [`skip`], saying to `install` them.
pub fn python_with(imports: &str, install: &str, test: &str) -> Option<PathBuf> {
    let python = require("python3", test)?;
    let ok = Command::new(&python)
        .args(["-c", &format!("import {imports}")])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    skip(test, format!("{imports} not installed ({install})"))
}

/// What `syft scan SOURCE --select-catalogers +sbom-cataloger -o json` finds (syft reads the
/// SBOMs in the image too), or [`skip`] without syft.
pub fn syft_scan(source: &str, test: &str) -> Option<serde_json::Value> {
    let out = super::run_ok(
        tool("syft", test)?
            .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
            .args(["scan", source])
            .args(["--select-catalogers", "+sbom-cataloger", "-o", "json", "-q"]),
    );
    Some(serde_json::from_str(&out).expect("syft prints JSON"))
}

/// Removes `dir` once this test process has exited.
pub fn remove_at_exit(dir: &Path) {
    let me = std::process::id();
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "( while kill -0 {me} 2>/dev/null; do sleep 1; done; rm -rf '{}' ) &",
            dir.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Starts `script` under `sh` with a watchdog that stops it when this test process exits (and
/// then removes `dir`). The daemon's pid is written to `dir/NAME.pid`.
fn spawn_with_watchdog(script: &str, dir: &Path) {
    spawn_named(script, dir, "daemon", true);
}

/// Starts `script` under `sh` with a watchdog that stops it when this test process exits; the
/// pid goes to `dir/NAME.pid` (and `dir` is removed after, if `remove_dir`).
pub fn spawn_named(script: &str, dir: &Path, name: &str, remove_dir: bool) {
    let me = std::process::id();
    let cleanup = if remove_dir {
        format!("rm -rf '{}'", dir.display())
    } else {
        "true".into()
    };
    let watchdog = format!(
        "{script} & child=$!; echo $child > '{}/{name}.pid'; \
         while kill -0 {me} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done; \
         kill $child 2>/dev/null; wait $child; {cleanup}",
        dir.display()
    );
    // The outer shell backgrounds the watchdog and exits at once.
    Command::new("sh")
        .arg("-c")
        .arg(format!("( {watchdog} ) &"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("starting a daemon");
}

/// A Docker engine started by the tests on a private socket.
pub struct Docker {
    host: String,
    log: PathBuf,
}

impl Docker {
    /// The shared engine for this test process, started on first use.
    pub fn get(test: &str) -> Option<&'static Docker> {
        static DOCKER: OnceLock<Result<Docker, String>> = OnceLock::new();
        require("dockerd", test)?;
        require("docker", test)?;
        DOCKER
            .get_or_init(Docker::start)
            .as_ref()
            .or_skip(test, "the Docker engine")
    }

    fn start() -> Result<Docker, String> {
        let dir = tempfile::Builder::new()
            .prefix("cd-dockerd-")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?
            .keep();
        let sock = dir.join("docker.sock");
        let config = serde_json::json!({
            "data-root": dir.join("data"),
            "exec-root": dir.join("exec"),
            "pidfile": dir.join("exec/dockerd.pid"),
            "hosts": [format!("unix://{}", sock.display())],
            "iptables": false, "ip6tables": false, "bridge": "none",
            "insecure-registries": ["127.0.0.1:5000"],
            "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 20000, "Soft": 20000}}
        });
        std::fs::write(dir.join("daemon.json"), config.to_string()).map_err(|e| e.to_string())?;
        let log = dir.join("dockerd.log");
        spawn_with_watchdog(
            &format!(
                "dockerd --config-file '{}' >'{}' 2>&1",
                dir.join("daemon.json").display(),
                log.display()
            ),
            &dir,
        );
        let docker = Docker {
            host: format!("unix://{}", sock.display()),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if docker
                .cmd()
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
            {
                return Ok(docker);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!(
            "dockerd did not start: {}",
            std::fs::read_to_string(&docker.log).unwrap_or_default()
        ))
    }

    /// A `docker` command talking to this engine.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", &self.host);
        c
    }
}

/// podman with a private store and runc (crun does not work on this cgroup setup).
pub struct Podman {
    root: tempfile::TempDir,
}

impl Podman {
    /// A podman with its own empty store.
    pub fn new(test: &str) -> Option<Podman> {
        require("podman", test)?;
        require("runc", test)?;
        let root = tempfile::Builder::new()
            .prefix("cd-podman-")
            .tempdir_in("/tmp")
            .or_skip(test, "creating podman's store")?;
        std::fs::write(
            root.path().join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .or_skip(test, "writing podman's containers.conf")?;
        Some(Podman { root })
    }

    /// A `podman` command using this store.
    pub fn cmd(&self) -> Command {
        let r = self.root.path();
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", r.join("containers.conf"))
            .arg("--root")
            .arg(r.join("storage"))
            .arg("--runroot")
            .arg(r.join("run"))
            .arg("--storage-driver")
            .arg("vfs");
        c
    }
}

/// A plain command if `name` is installed (see [`require`]).
pub fn tool(name: &str, test: &str) -> Option<Command> {
    require(name, test).map(Command::new)
}

/// A free TCP port on 127.0.0.1.
/// A loopback port nothing listens on, held until dropped (bound, never listening), so that no
/// test running beside it can take it: connecting to it is refused.
pub struct ClosedPort {
    _socket: socket2::Socket,
    /// The port.
    pub port: u16,
}

/// A [`ClosedPort`].
pub fn closed_port() -> ClosedPort {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).expect("binding a loopback port");
    let port = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .expect("the bound port");
    ClosedPort {
        _socket: socket,
        port,
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("finding a free port")
}

fn wait_for(url: &str, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let ok = Command::new("curl")
            .args(["-s", "-k", "-o", "/dev/null", "-w", "%{http_code}", url])
            .output()
            .is_ok_and(|o| matches!(String::from_utf8_lossy(&o.stdout).as_ref(), "200" | "401"));
        if ok {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("{what} did not start"))
}

/// How a test registry checks who is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryAuth {
    /// Anyone may pull and push.
    None,
    /// Basic auth against an htpasswd file (user `alice`, password `s3cret`).
    Htpasswd,
    /// Bearer tokens from a token server (user `alice`, password `s3cret`).
    Token,
    /// Anyone may pull and push, over TLS only, with a certificate for 127.0.0.1 signed by a CA
    /// of the test's own (see [`Registry::certs_d`]).
    Tls,
}

/// The user the test registries accept.
pub const USER: &str = "alice";
/// Her password.
pub const PASSWORD: &str = "s3cret";

/// A CNCF distribution registry (Debian's docker-registry) on a loopback port.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    dir: tempfile::TempDir,
    config: PathBuf,
    scheme: &'static str,
}

impl Registry {
    /// Starts a registry with `auth`, or returns `None` (skip) when the tools are missing.
    pub fn start(auth: RegistryAuth, test: &str) -> Option<Registry> {
        require("docker-registry", test)?;
        require("curl", test)?;
        if auth == RegistryAuth::Htpasswd {
            require("htpasswd", test)?;
        }
        if matches!(auth, RegistryAuth::Token | RegistryAuth::Tls) {
            require("openssl", test)?;
        }
        if auth == RegistryAuth::Token {
            let ok = Command::new("/usr/bin/python3")
                .args(["-c", "import jwt, cryptography"])
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return skip(
                    test,
                    "/usr/bin/python3 lacks jwt or cryptography (python3-jwt, python3-cryptography)",
                );
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("cd-registry-")
            .tempdir_in("/tmp")
            .or_skip(test, "creating the registry's directory")?;
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let d = dir.path();
        let sh = |script: &str| {
            let status = Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(d)
                .status();
            assert!(status.is_ok_and(|s| s.success()), "failed: {script}");
        };
        let auth_yaml = match auth {
            RegistryAuth::None => String::new(),
            RegistryAuth::Tls => {
                // A CA, and a server certificate for 127.0.0.1 it signs; the CA goes where
                // Docker's certs.d would hold it: certs.d/127.0.0.1:PORT/ca.crt.
                let ca_dir = d.join("certs.d").join(&addr);
                std::fs::create_dir_all(&ca_dir).or_skip(test, "creating certs.d")?;
                let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
                sh(&format!(
                    "openssl req -x509 {ec} -keyout ca.key -out ca.pem -days 2 \
                     -subj /CN=conda-docker-test-ca 2>/dev/null"
                ));
                sh(&format!(
                    "openssl req {ec} -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null"
                ));
                sh(
                    "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > ext.cnf",
                );
                sh(
                    "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
                    -out server.pem -days 2 -extfile ext.cnf 2>/dev/null",
                );
                std::fs::copy(d.join("ca.pem"), ca_dir.join("ca.crt"))
                    .or_skip(test, "copying the CA to certs.d")?;
                format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    d.join("server.pem").display(),
                    d.join("server.key").display()
                )
            }
            RegistryAuth::Htpasswd => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", USER, PASSWORD])
                    .output()
                    .or_skip(test, "running htpasswd")?;
                if !out.status.success() {
                    return skip(test, format!("htpasswd failed: {}", out.status));
                }
                std::fs::write(d.join("htpasswd"), out.stdout)
                    .or_skip(test, "writing the htpasswd file")?;
                format!(
                    "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                    d.join("htpasswd").display()
                )
            }
            RegistryAuth::Token => {
                let token_port = free_port();
                sh("openssl ecparam -name prime256v1 -genkey -noout -out key.pem 2>/dev/null");
                sh(
                    "openssl req -new -x509 -key key.pem -out cert.pem -days 2 -subj /CN=test-token-issuer 2>/dev/null",
                );
                let server = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/token_server.py");
                spawn_named(
                    &format!(
                        "/usr/bin/python3 {server} {token_port} '{d}/key.pem' '{d}/cert.pem' {USER} {PASSWORD} 2>'{d}/token.log'",
                        d = d.display()
                    ),
                    d,
                    "token",
                    false,
                );
                wait_for(
                    &format!("http://127.0.0.1:{token_port}/token"),
                    "the token server",
                )
                .map_err(|e| {
                    let log = std::fs::read_to_string(d.join("token.log")).unwrap_or_default();
                    format!("{e}: {log}")
                })
                .or_skip(test, "starting the token server")?;
                format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: test-registry\n    \
                     issuer: test-issuer\n    rootcertbundle: {}\n    autoredirect: false\n",
                    d.join("cert.pem").display()
                )
            }
        };
        let (tls_yaml, auth_yaml) = match auth {
            RegistryAuth::Tls => (auth_yaml, String::new()),
            _ => (String::new(), auth_yaml),
        };
        let config = d.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls_yaml}{auth_yaml}",
                d.join("data").display()
            ),
        )
        .or_skip(test, "writing the registry's config.yml")?;
        let scheme = if auth == RegistryAuth::Tls {
            "https"
        } else {
            "http"
        };
        let registry = Registry {
            addr,
            dir,
            config,
            scheme,
        };
        registry.spawn();
        wait_for(&registry.url("/v2/"), "docker-registry")
            .map_err(|e| format!("{e}: {}", registry.log()))
            .or_skip(test, "starting the registry")?;
        Some(registry)
    }

    fn spawn(&self) {
        spawn_named(
            &format!(
                "docker-registry serve '{}' >>'{}' 2>&1",
                self.config.display(),
                self.dir.path().join("registry.log").display()
            ),
            self.dir.path(),
            "registry",
            false,
        );
    }

    /// The URL of `path` on this registry.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// A `certs.d`-style directory holding this registry's CA as `127.0.0.1:PORT/ca.crt`
    /// ([`RegistryAuth::Tls`] only).
    pub fn certs_d(&self) -> PathBuf {
        self.dir.path().join("certs.d")
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many access-log lines show `method` on a path containing `path_part`.
    pub fn requests(&self, method: &str, path_part: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains(&format!("\"{method} ")) && l.contains(path_part))
            .count()
    }

    /// Kills the registry at once (as a crash would); its storage stays.
    pub fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.path().join("registry.pid")).unwrap_or_default();
        let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        std::thread::sleep(Duration::from_millis(200));
    }

    /// Starts the registry again on the same port and storage.
    pub fn restart(&self) {
        self.spawn();
        wait_for(&self.url("/v2/"), "docker-registry").expect("restarting the registry");
    }

    /// The file holding blob `digest` (`sha256:...`) in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.path().join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for name in ["registry", "token"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.path().join(format!("{name}.pid"))) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

/// How long a command under test may run before it counts as hung: generous, since the test
/// machines are shared; how fast a command is belongs in `scripts/bench`, never in a test.
pub const HANG: Duration = Duration::from_secs(300);

/// Runs `cmd` to its end, as [`run_within`], with the [`HANG`] watchdog; returns its output and
/// its peak resident memory in bytes (its `VmHWM`, read every 5 ms while it runs).
pub fn run_measured(cmd: &mut Command) -> (std::process::Output, u64) {
    run_watched(cmd, HANG)
}

/// Runs `cmd` to its end with piped output; one still running after `limit` is killed and the
/// test fails as a hang, with what it printed.
pub fn run_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    run_watched(cmd, limit).0
}

/// The one watchdog: runs `cmd`, killing it after `limit` (a hang fails the test rather than
/// stalling the run); returns its output and its peak resident memory.
fn run_watched(cmd: &mut Command, limit: Duration) -> (std::process::Output, u64) {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let status_file = format!("/proc/{}/status", child.id());
    let started = Instant::now();
    let mut peak = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb * 1024);
        }
        if let Some(status) = child.try_wait().expect("waiting") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "hung: {cmd:?} was still running after {limit:?} and was killed:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let output = std::process::Output {
        status,
        stdout: out.join().expect("stdout"),
        stderr: err.join().expect("stderr"),
    };
    (output, peak)
}
