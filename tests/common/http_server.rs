//! A static file server on a loopback port (Python's `http.server`), with an access log a test
//! can count requests in: channels and indexes served as a CDN would serve them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
        let log_file = std::fs::File::create(log).expect("creating the access log");
        // Port 0: the system picks a free port and the server prints it, so no other server of
        // a parallel test can take it in between.
        let mut child = Command::new(python)
            .args([
                "-c",
                "import functools, http.server, sys\n\
                 handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])\n\
                 server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)\n\
                 print(server.server_address[1], flush=True)\n\
                 server.serve_forever()",
            ])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("starting python3's http.server");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("the server's stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("reading the server's port");
        let port: u16 = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the http.server did not start (it printed `{line}`)")
        });
        Some(StaticServer {
            child,
            port,
            log: log.to_path_buf(),
        })
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
