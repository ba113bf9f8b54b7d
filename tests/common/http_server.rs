//! A static file server on a loopback port (Python's `http.server`), with an access log a test
//! can count requests in: channels and indexes served as a CDN would serve them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Serves a directory until dropped.
pub struct StaticServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl StaticServer {
    /// Serves `dir`, logging each request to `log`; `None` (a skip, or a failure in CI) when
    /// python3 is missing.
    pub fn start(dir: &Path, log: &Path, test: &str) -> Option<StaticServer> {
        let python = super::tools::require("python3", test)?;
        let port = super::tools::free_port();
        let log_file = std::fs::File::create(log).expect("creating the access log");
        let child = Command::new(python)
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("starting python3 -m http.server");
        let mut server = StaticServer {
            child,
            port,
            log: log.to_path_buf(),
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = server.child.kill();
        panic!("the http.server on port {port} did not start");
    }

    /// `http://127.0.0.1:PORT/` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// The paths requested so far, in order.
    pub fn requested(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let request = l.split('"').nth(1)?;
                let mut parts = request.split(' ');
                let _method = parts.next()?;
                parts.next().map(str::to_string)
            })
            .collect()
    }

    /// The package archives (`.conda`, `.tar.bz2`) requested so far.
    pub fn archives(&self) -> Vec<String> {
        self.requested()
            .into_iter()
            .filter(|p| p.ends_with(".conda") || p.ends_with(".tar.bz2"))
            .collect()
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
