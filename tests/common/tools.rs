//! The real container tools the tests drive: a Docker engine on a private socket, podman with a
//! private store, skopeo, umoci and oci-image-tool.
//!
//! A missing tool fails the test when `CI=true`; elsewhere the test is skipped with a message.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// True when a missing tool must fail the test run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Finds `name` on PATH (or the usual sbin dirs).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// `Some(path)` if `name` is installed; otherwise fails under CI or prints a skip message.
pub fn require(name: &str, test: &str) -> Option<PathBuf> {
    match which(name) {
        Some(p) => Some(p),
        None if in_ci() => panic!("{test}: `{name}` is required but not installed (run .ci/run)"),
        None => {
            eprintln!("SKIPPED {test}: `{name}` is not installed (run .ci/run to install it)");
            None
        }
    }
}

/// Starts `script` under `sh` with a watchdog that stops it when this test process exits.
fn spawn_with_watchdog(script: &str, dir: &Path) {
    let me = std::process::id();
    let watchdog = format!(
        "{script} & child=$!; while kill -0 {me} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done; \
         kill $child 2>/dev/null; wait $child; rm -rf '{}'",
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
        match DOCKER.get_or_init(Docker::start) {
            Ok(d) => Some(d),
            Err(e) if in_ci() => panic!("{test}: {e}"),
            Err(e) => {
                eprintln!("SKIPPED {test}: {e}");
                None
            }
        }
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
            .ok()?;
        std::fs::write(
            root.path().join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .ok()?;
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
