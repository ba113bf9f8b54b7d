//! A fault-injecting proxy in front of a test registry (`fault_proxy.py`): resets a download
//! mid-body, drops the answer to a forwarded `PUT`, trickles a body at 1 byte/s, answers 429
//! with `Retry-After`, holds a request, or never answers at all.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::tools::{OrSkip, Registry, free_port, skip, spawn_named};

/// A running `fault_proxy.py` on a loopback port.
pub struct FaultProxy {
    /// `127.0.0.1:PORT`, to use as a registry host.
    pub addr: String,
    dir: tempfile::TempDir,
}

impl FaultProxy {
    /// A proxy in front of `registry` applying `rules` (see `fault_proxy.py`), or one that never
    /// answers when `registry` is `None` (`rules` are then ignored). `None` (skip) without python3.
    pub fn start(registry: Option<&Registry>, rules: &[&str], test: &str) -> Option<FaultProxy> {
        let python = PathBuf::from("/usr/bin/python3");
        if !python.exists() {
            return skip(test, "/usr/bin/python3 is not installed");
        }
        let dir = tempfile::Builder::new()
            .prefix("cd-proxy-")
            .tempdir_in("/tmp")
            .or_skip(test, "creating the fault proxy's directory")?;
        let port = free_port();
        let upstream = registry
            .and_then(|r| r.addr.rsplit_once(':').map(|(_, p)| p.to_string()))
            .unwrap_or_else(|| "9".into());
        let rules = match registry {
            Some(_) => rules.iter().map(|r| format!("'{r}'")).collect::<Vec<_>>(),
            None => vec!["silent".into()],
        };
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/fault_proxy.py");
        let d = dir.path();
        spawn_named(
            &format!(
                "{} {script} {port} {upstream} '{}' {} 2>'{}'",
                python.display(),
                d.join("requests.log").display(),
                rules.join(" "),
                d.join("proxy.err").display()
            ),
            d,
            "proxy",
            false,
        );
        let proxy = FaultProxy {
            addr: format!("127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !proxy.dir.path().join("requests.log.ready").exists() {
            assert!(
                Instant::now() < deadline,
                "{test}: the fault proxy did not start: {}",
                std::fs::read_to_string(proxy.dir.path().join("proxy.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(proxy)
    }

    /// The requests seen so far, one line each: `TIME METHOD PATH range=RANGE -> STATUS ACTION`.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("requests.log")).unwrap_or_default()
    }

    /// The logged requests with `method` whose line contains `part`.
    pub fn requests(&self, method: &str, part: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.split(' ').nth(1) == Some(method) && l.contains(part))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("proxy.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}
