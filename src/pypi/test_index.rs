//! A real HTTP simple index for the tests: a thread serving PEP 691 JSON or PEP 503 HTML project
//! pages (as the request's `Accept` asks, unless HTML is forced), the files, and PEP 658
//! `.metadata` files, over the real wheels of `tests/fixtures/pypi/wheels` and any file a test
//! adds; it may also answer its first request 503 with `Retry-After`, trickle its bodies, or
//! break a wheel's body once and serve the rest from the byte a `Range` asks for.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::normalize_name;
use super::wheel::{self, Limits};

/// A file the index lists.
#[derive(Clone, Debug)]
pub struct Served {
    pub filename: String,
    pub bytes: Arc<Vec<u8>>,
    /// The sha256 the page gives (the bytes' own unless a test changes it).
    pub sha256: String,
    /// Served at `<file>.metadata` and offered on the page.
    pub metadata: Option<Vec<u8>>,
    pub yanked: bool,
    pub requires_python: Option<String>,
    /// The link the page gives instead of the index's own `/files/<name>` (any URL).
    pub link: Option<String>,
}

impl Served {
    /// A file with these bytes and their sha256, no metadata offered.
    pub fn new(filename: &str, bytes: Vec<u8>) -> Self {
        Self {
            filename: filename.to_string(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            bytes: Arc::new(bytes),
            metadata: None,
            yanked: false,
            requires_python: None,
            link: None,
        }
    }

    /// A file the page links at `link` (anywhere) with `sha256`; the index serves no bytes.
    pub fn linked(filename: &str, link: &str, sha256: &str) -> Self {
        Self {
            sha256: sha256.to_string(),
            link: Some(link.to_string()),
            ..Self::new(filename, Vec::new())
        }
    }
}

/// How the index answers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mode {
    /// HTML pages whatever `Accept` asks.
    pub html_only: bool,
    /// Offer `.metadata` (PEP 658) for the fixture wheels.
    pub metadata: bool,
    /// Answer the first request `503 Service Unavailable` with `Retry-After: 1`.
    pub unavailable_once: bool,
    /// Send every body 10 bytes each 50 ms (200 bytes/s).
    pub trickle: bool,
    /// Break the first wheel's body halfway (its full `Content-Length` announced); a request
    /// with `Range: bytes=N-` is answered `206` from byte N.
    pub break_once: bool,
}

#[derive(Default)]
struct State {
    projects: BTreeMap<String, Vec<Served>>,
    requests: Vec<String>,
    /// A request was answered 503 ([`Mode::unavailable_once`]).
    refused: bool,
    /// A wheel's body was broken ([`Mode::break_once`]).
    broke: bool,
}

/// A running index on a loopback port; stops with the test process.
pub struct TestIndex {
    /// `http://127.0.0.1:PORT/simple`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

/// The fixture wheels' directory.
pub fn fixture_wheels() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pypi/wheels")
}

impl TestIndex {
    /// An index serving the fixture wheels.
    pub fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let index = Self {
            url: format!("http://127.0.0.1:{port}/simple"),
            state: Arc::default(),
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(fixture_wheels())
            .expect("fixture wheels")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let filename = path.file_name().unwrap().to_str().unwrap().to_string();
            let mut served = Served::new(&filename, std::fs::read(&path).unwrap());
            if mode.metadata {
                let text = wheel::metadata(&path, &filename, &Limits::default()).unwrap();
                served.metadata = Some(text.into_bytes());
            }
            index.add(served);
        }
        let state = index.state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = state.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &state, mode);
                });
            }
        });
        index
    }

    /// Lists `file` under its project.
    pub fn add(&self, file: Served) {
        let project = super::index::file_project(&file.filename).expect("a wheel or sdist name");
        self.state
            .lock()
            .unwrap()
            .projects
            .entry(project)
            .or_default()
            .push(file);
    }

    /// Changes what the page says of `filename`.
    pub fn edit(&self, filename: &str, f: impl FnOnce(&mut Served)) {
        let mut state = self.state.lock().unwrap();
        let file = state
            .projects
            .values_mut()
            .flatten()
            .find(|s| s.filename == filename)
            .expect("a listed file");
        f(file);
    }

    /// The request lines served so far (`GET /simple/click/ json`).
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>, mode: Mode) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut accept = String::new();
    let mut range: Option<usize> = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        let Some((k, v)) = h.split_once(':') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("accept") {
            accept = v.trim().to_string();
        } else if k.trim().eq_ignore_ascii_case("range") {
            range = v
                .trim()
                .strip_prefix("bytes=")
                .and_then(|r| r.strip_suffix('-')?.parse().ok());
        }
    }
    let json = !mode.html_only && accept.contains("application/vnd.pypi.simple.v1+json");
    let wheel = path.starts_with("/files/") && path.ends_with(".whl");
    let (answer, refuse, break_now) = {
        let mut state = state.lock().unwrap();
        let from = range.map(|n| format!(" from {n}")).unwrap_or_default();
        state.requests.push(format!(
            "GET {path} {}{from}",
            if json { "json" } else { "html" }
        ));
        let refuse = mode.unavailable_once && !state.refused;
        state.refused |= refuse;
        let break_now = mode.break_once && wheel && !state.broke;
        state.broke |= break_now;
        (answer(&state, &path, json), refuse, break_now)
    };
    let mut stream = stream;
    if refuse {
        stream.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return stream.flush();
    }
    match answer {
        Some((content_type, body)) => {
            let from = range.filter(|&n| mode.break_once && n < body.len());
            let status = match from {
                Some(n) => format!(
                    "206 Partial Content\r\nContent-Range: bytes {n}-{}/{}",
                    body.len() - 1,
                    body.len()
                ),
                None => "200 OK".to_string(),
            };
            let body = &body[from.unwrap_or(0)..];
            write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            write_body(&mut stream, body, mode, break_now)?;
        }
        None => {
            stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
        }
    }
    stream.flush()
}

/// Writes `body`: trickling, or only its first half when `broken`, as `mode` says.
fn write_body(
    stream: &mut TcpStream,
    body: &[u8],
    mode: Mode,
    broken: bool,
) -> std::io::Result<()> {
    if broken {
        stream.write_all(&body[..body.len() / 2])?;
        stream.flush()?;
        return stream.shutdown(std::net::Shutdown::Both);
    }
    if mode.trickle {
        for piece in body.chunks(10) {
            stream.write_all(piece)?;
            stream.flush()?;
            std::thread::sleep(Duration::from_millis(50));
        }
        return Ok(());
    }
    stream.write_all(body)
}

fn answer(state: &State, path: &str, json: bool) -> Option<(&'static str, Vec<u8>)> {
    if let Some(name) = path
        .strip_prefix("/simple/")
        .and_then(|p| p.strip_suffix('/'))
    {
        if normalize_name(name) != name {
            return None;
        }
        let files = state.projects.get(name)?;
        return Some(if json {
            (
                "application/vnd.pypi.simple.v1+json",
                json_page(name, files),
            )
        } else {
            ("text/html", html_page(files))
        });
    }
    let file = path.strip_prefix("/files/")?;
    let files = state.projects.values().flatten();
    if let Some(wheel) = file.strip_suffix(".metadata") {
        let served = files.clone().find(|s| s.filename == wheel)?;
        return served
            .metadata
            .clone()
            .map(|m| ("application/octet-stream", m));
    }
    let served = state
        .projects
        .values()
        .flatten()
        .find(|s| s.filename == file)?;
    Some(("application/octet-stream", served.bytes.to_vec()))
}

fn json_page(name: &str, files: &[Served]) -> Vec<u8> {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            let mut v = serde_json::json!({
                "filename": f.filename,
                "url": f.link.clone().unwrap_or_else(|| format!("../../files/{}", f.filename)),
                "hashes": {"sha256": f.sha256},
                "requires-python": f.requires_python,
                "yanked": f.yanked,
            });
            if let Some(m) = &f.metadata {
                v["core-metadata"] = serde_json::json!({"sha256": hex::encode(Sha256::digest(m))});
            }
            v
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "meta": {"api-version": "1.1"},
        "name": name,
        "files": files,
    }))
    .unwrap()
}

fn html_page(files: &[Served]) -> Vec<u8> {
    let mut out = String::from("<!DOCTYPE html>\n<html><body>\n");
    for f in files {
        let mut attrs = String::new();
        if let Some(rp) = &f.requires_python {
            attrs.push_str(&format!(
                " data-requires-python=\"{}\"",
                rp.replace('>', "&gt;").replace('<', "&lt;")
            ));
        }
        if f.yanked {
            attrs.push_str(" data-yanked=\"\"");
        }
        if let Some(m) = &f.metadata {
            attrs.push_str(&format!(
                " data-dist-info-metadata=\"sha256={}\"",
                hex::encode(Sha256::digest(m))
            ));
        }
        let link = f
            .link
            .clone()
            .unwrap_or_else(|| format!("/files/{}", f.filename));
        out.push_str(&format!(
            "<a href=\"{link}#sha256={1}\"{attrs}>{0}</a><br/>\n",
            f.filename, f.sha256
        ));
    }
    out.push_str("</body></html>\n");
    out.into_bytes()
}
