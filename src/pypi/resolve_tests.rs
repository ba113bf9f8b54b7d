//! The resolver and index client against a real HTTP simple index over the fixture wheels.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Arch, Error, ResolvedWheel, Target, resolve};
use crate::http::Timeouts;
use crate::pypi::index::{self, HttpOptions, Index, IndexOptions, Locations};
use crate::pypi::provides::{Evidence, Provided};
use crate::pypi::requirements::{Origin, Requirement, Requirements};
use crate::pypi::test_index::{Mode, Served, TestIndex, fixture_wheels};
use crate::reporter::{Reporter, Retry};

const CP311: Target = Target {
    python: (3, 11, 7),
    glibc: (2, 17),
    arch: Arch::X86_64,
};

fn reqs(lines: &[&str]) -> Requirements {
    Requirements {
        requirements: lines
            .iter()
            .enumerate()
            .map(|(i, l)| Requirement {
                text: l.to_string(),
                origin: Origin {
                    file: "environment.yml".into(),
                    line: i + 1,
                    pip_item: true,
                },
            })
            .collect(),
        ..Requirements::default()
    }
}

fn options(url: &str, cache: &Path) -> IndexOptions {
    IndexOptions {
        locations: Locations {
            index_url: Some(url.to_string()),
            ..Locations::default()
        },
        cache_dir: cache.to_path_buf(),
        ..IndexOptions::default()
    }
}

fn names(wheels: &[ResolvedWheel]) -> Vec<(String, String, bool)> {
    wheels
        .iter()
        .map(|w| (w.name.clone(), w.version.clone(), w.requested))
        .collect()
}

fn none() -> BTreeMap<String, Provided> {
    BTreeMap::new()
}

fn conda_click(version: &str) -> BTreeMap<String, Provided> {
    BTreeMap::from([(
        "click".to_string(),
        Provided {
            name: "click".into(),
            version: version.into(),
            package: format!("click-{version}-pyh707e725_0"),
            evidence: Evidence::Purl,
        },
    )])
}

async fn run(
    index: &TestIndex,
    lines: &[&str],
    target: &Target,
    provided: &BTreeMap<String, Provided>,
) -> (Result<Vec<ResolvedWheel>, Error>, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let idx = Index::new(&options(&index.url, cache.path())).unwrap();
    (resolve(&reqs(lines), target, provided, &idx).await, cache)
}

#[tokio::test]
async fn an_extra_pulls_its_requirements_and_dependencies_come_first() {
    for mode in [
        Mode {
            metadata: true,
            ..Mode::default()
        },
        Mode {
            html_only: true,
            ..Mode::default()
        },
    ] {
        let index = TestIndex::start(mode);
        let (wheels, cache) = run(&index, &["python-dotenv[cli]"], &CP311, &none()).await;
        let wheels = wheels.unwrap();
        assert_eq!(
            names(&wheels),
            [
                ("click".into(), "8.5.1".into(), false),
                ("python-dotenv".into(), "1.2.4".into(), true)
            ],
            "{mode:?}"
        );
        assert_eq!(
            wheels[0].sha256,
            "8bb5376d2006950386f8c6427613334a2acadc5f559cb80e638d00b4df957e37"
        );
        assert!(
            wheels[0]
                .url
                .as_str()
                .ends_with("/files/click-8.5.1-py3-none-any.whl")
        );
        let requests = index.requests();
        let kind = if mode.html_only { "html" } else { "json" };
        assert!(
            requests.contains(&format!("GET /simple/python-dotenv/ {kind}")),
            "{requests:?}"
        );
        // Metadata from `.metadata` when offered (no wheel downloaded), else from the wheel.
        let cached = std::fs::read_dir(cache.path().join("pypi-v1"))
            .map(|d| d.count())
            .unwrap_or(0);
        if mode.metadata {
            assert!(requests.iter().any(|r| r.contains(".whl.metadata")));
            assert_eq!(cached, 0);
        } else {
            assert!(!requests.iter().any(|r| r.contains(".metadata")));
            assert_eq!(cached, 2, "both wheels were read for their METADATA");
        }
    }
}

#[tokio::test]
async fn a_chain_with_a_marker_resolves_for_the_target_python() {
    let index = TestIndex::start(Mode::default());
    let (wheels, _cache) = run(&index, &["typing-inspect"], &CP311, &none()).await;
    assert_eq!(
        names(&wheels.unwrap()),
        [
            ("mypy-extensions".into(), "1.2.0".into(), false),
            ("typing-extensions".into(), "4.16.0".into(), false),
            ("typing-inspect".into(), "0.9.0".into(), true),
        ]
    );
    // `typing>=3.7.4; python_version < "3.5"` is not for 3.11: no page for it was asked for.
    assert!(
        !index
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /simple/typing/"))
    );
    // A requirement whose marker is false for the target is dropped.
    let (wheels, _cache) = run(
        &index,
        &["click; python_version < '3.0'", "jmespath"],
        &CP311,
        &none(),
    )
    .await;
    assert_eq!(
        names(&wheels.unwrap()),
        [("jmespath".into(), "1.1.0".into(), true)]
    );
}

#[tokio::test]
async fn the_most_specific_wheel_for_the_platform_is_chosen() {
    let index = TestIndex::start(Mode::default());
    // A pure wheel of the same version: the manylinux one is preferred.
    index.add(Served::new(
        "markupsafe-3.0.4-py3-none-any.whl",
        b"never downloaded".to_vec(),
    ));
    let (wheels, _cache) = run(&index, &["MarkupSafe"], &CP311, &none()).await;
    let wheels = wheels.unwrap();
    assert_eq!(wheels.len(), 1);
    assert_eq!(
        wheels[0].filename,
        "markupsafe-3.0.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl"
    );
    // Without the pure wheel, a glibc older than 2.17 or another CPU gets nothing.
    let index = TestIndex::start(Mode::default());
    for target in [
        Target {
            glibc: (2, 12),
            ..CP311
        },
        Target {
            arch: Arch::Aarch64,
            ..CP311
        },
        Target {
            python: (3, 12, 1),
            ..CP311
        },
    ] {
        let (e, _cache) = run(&index, &["markupsafe"], &target, &none()).await;
        match e {
            Err(e @ Error::NoWheel { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("`markupsafe` has no wheel for") && text.contains("manylinux"),
                    "{text}"
                );
            }
            other => panic!("{target:?}: {other:?}"),
        }
    }
}

#[test]
fn tags_follow_packaging_order() {
    let tags = CP311.tags();
    assert_eq!(tags[0], "cp311-cp311-manylinux_2_17_x86_64");
    assert_eq!(tags[1], "cp311-cp311-manylinux2014_x86_64");
    assert!(tags.contains(&"cp311-cp311-manylinux2010_x86_64".to_string()));
    assert!(tags.contains(&"cp311-cp311-manylinux1_x86_64".to_string()));
    assert!(tags.contains(&"cp38-abi3-manylinux_2_17_x86_64".to_string()));
    assert!(
        !tags
            .iter()
            .any(|t| t.contains("musllinux")
                || t.contains("linux_x86_64") && !t.contains("manylinux"))
    );
    let pos = |t: &str| tags.iter().position(|x| x == t).unwrap();
    assert!(pos("cp311-abi3-manylinux_2_17_x86_64") < pos("cp310-abi3-manylinux_2_17_x86_64"));
    assert!(pos("cp311-none-any") < pos("py3-none-any"));
    assert_eq!(tags.last().unwrap(), "py30-none-any");
    let arm = Target {
        arch: Arch::Aarch64,
        glibc: (2, 28),
        ..CP311
    }
    .platforms();
    assert_eq!(arm.first().unwrap(), "manylinux_2_28_aarch64");
    assert_eq!(arm.last().unwrap(), "manylinux2014_aarch64");
    assert!(
        !arm.iter()
            .any(|p| p.contains("x86_64") || p.contains("manylinux1"))
    );
}

#[tokio::test]
async fn conda_provided_distributions_are_not_resolved_again_and_a_conflict_names_both() {
    let index = TestIndex::start(Mode::default());
    let (wheels, _cache) = run(
        &index,
        &["python-dotenv[cli]"],
        &CP311,
        &conda_click("8.1.7"),
    )
    .await;
    assert_eq!(
        names(&wheels.unwrap()),
        [("python-dotenv".into(), "1.2.4".into(), true)]
    );
    assert!(
        !index.requests().iter().any(|r| r.contains("/files/click")),
        "{:?}",
        index.requests()
    );
    let (e, _cache) = run(&index, &["click>=8.5"], &CP311, &conda_click("8.1.7")).await;
    let text = e.unwrap_err().to_string();
    assert!(
        text.contains("`click>=8.5`")
            && text.contains("click-8.1.7-pyh707e725_0")
            && text.contains("environment.yml, pip: item 1"),
        "{text}"
    );
}

#[tokio::test]
async fn an_sdist_only_project_is_refused_naming_it() {
    let index = TestIndex::start(Mode::default());
    index.add(Served::new("sdist_only-1.0.tar.gz", b"not built".to_vec()));
    let (e, _cache) = run(&index, &["sdist-only"], &CP311, &none()).await;
    match e {
        Err(e @ Error::SdistOnly { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("`sdist-only`") && text.contains("does not build sdists"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unsatisfiable_set_gets_the_resolvers_explanation() {
    let index = TestIndex::start(Mode::default());
    let mut served = Served::new("needs_new_click-1.0-py3-none-any.whl", b"fake".to_vec());
    served.metadata = Some(
        b"Metadata-Version: 2.1\nName: needs-new-click\nVersion: 1.0\nRequires-Dist: click>=9\n"
            .to_vec(),
    );
    index.add(served);
    let (e, _cache) = run(&index, &["needs-new-click", "jmespath"], &CP311, &none()).await;
    match e {
        Err(e @ Error::Unsatisfiable { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("needs-new-click 1.0 depends on click >=9")
                    && text.contains("no version of click")
                    && !text.contains("requirements 0"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    let (e, _cache) = run(&index, &["no-such-project"], &CP311, &none()).await;
    let text = e.unwrap_err().to_string();
    assert!(
        text.contains("`no-such-project` is not on any index"),
        "{text}"
    );
}

#[tokio::test]
async fn yanked_and_pre_releases_only_when_asked_for() {
    let index = TestIndex::start(Mode::default());
    for (version, yanked) in [("9.0", true), ("9.1rc1", false)] {
        let filename = format!("click-{version}-py3-none-any.whl");
        let mut served = Served::new(&filename, b"a fake wheel".to_vec());
        served.yanked = yanked;
        served.metadata =
            Some(format!("Metadata-Version: 2.1\nName: click\nVersion: {version}\n").into_bytes());
        index.add(served);
    }
    for (line, pre, expected) in [
        ("click", false, "8.5.1"),
        ("click==9.0", false, "9.0"),
        ("click>=9.1rc1", false, "9.1rc1"),
        ("click", true, "9.1rc1"),
    ] {
        let cache = tempfile::tempdir().unwrap();
        let idx = Index::new(&options(&index.url, cache.path())).unwrap();
        let mut r = reqs(&[line]);
        r.pre = pre;
        let wheels = resolve(&r, &CP311, &none(), &idx).await.unwrap();
        assert_eq!(wheels[0].version, expected, "{line} pre={pre}");
    }
}

#[tokio::test]
async fn requires_python_is_honoured() {
    let index = TestIndex::start(Mode::default());
    let mut served = Served::new("jmespath-9.0-py3-none-any.whl", b"fake".to_vec());
    served.requires_python = Some(">=3.13".into());
    index.add(served);
    let (wheels, _cache) = run(&index, &["jmespath"], &CP311, &none()).await;
    assert_eq!(wheels.unwrap()[0].version, "1.1.0");
}

#[tokio::test]
async fn find_links_without_an_index() {
    let cache = tempfile::tempdir().unwrap();
    let idx = Index::new(&IndexOptions {
        locations: Locations {
            no_index: true,
            find_links: vec![fixture_wheels().display().to_string()],
            ..Locations::default()
        },
        cache_dir: cache.path().to_path_buf(),
        ..IndexOptions::default()
    })
    .unwrap();
    let wheels = resolve(&reqs(&["typing_inspect"]), &CP311, &none(), &idx)
        .await
        .unwrap();
    assert_eq!(wheels.len(), 3);
    assert!(wheels.iter().all(|w| w.url.as_str().starts_with("file://")));
    assert_eq!(
        wheels[2].sha256,
        "9ee6fc59062311ef8547596ab6b955e1b8aa46242d854bfc78f4f6b0eff35f9f"
    );
    // And the cache takes a local wheel as it takes a downloaded one.
    let (path, _) = idx
        .fetch_wheel(&wheels[2].url, Some(&wheels[2].sha256), &wheels[2].filename)
        .await
        .unwrap();
    assert_eq!(
        path,
        cache
            .path()
            .join("pypi-v1")
            .join(format!("{}.whl", wheels[2].sha256))
    );
}

#[tokio::test]
async fn a_hash_mismatch_leaves_no_cache_entry() {
    let index = TestIndex::start(Mode::default());
    let click = "click-8.5.1-py3-none-any.whl";
    let wrong = "0".repeat(64);
    index.edit(click, |s| s.sha256 = wrong.clone());
    let cache = tempfile::tempdir().unwrap();
    let idx = Index::new(&options(&index.url, cache.path())).unwrap();
    // The resolution reads click's METADATA from the wheel, whose hash does not match.
    let e = resolve(&reqs(&["click"]), &CP311, &none(), &idx)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, Error::Index(index::Error::HashMismatch { .. }))
            && text.contains(click)
            && text.contains(&wrong)
            && text.contains("8bb5376d2006950386f8c6427613334a2acadc5f559cb80e638d00b4df957e37"),
        "{text}"
    );
    let url = format!("{}/../files/{click}", index.url.trim_end_matches("/simple"));
    let url = url.replace("/../", "/");
    for (url, sha) in [
        (url.clone(), wrong.clone()),
        (
            format!("file://{}/{click}", fixture_wheels().display()),
            wrong.clone(),
        ),
    ] {
        let parsed = url::Url::parse(&url).unwrap();
        let e = idx
            .fetch_wheel(&parsed, Some(&sha), click)
            .await
            .unwrap_err();
        assert!(matches!(e, index::Error::HashMismatch { .. }), "{url}: {e}");
    }
    let left: Vec<_> = std::fs::read_dir(cache.path().join("pypi-v1"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The right hash caches it.
    let right = "8bb5376d2006950386f8c6427613334a2acadc5f559cb80e638d00b4df957e37";
    let url = url::Url::parse(&url).unwrap();
    let (path, _) = idx.fetch_wheel(&url, Some(right), click).await.unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(fixture_wheels().join(click)).unwrap()
    );
}

#[tokio::test]
async fn an_unreachable_index_is_named() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/simple");
    let cache = tempfile::tempdir().unwrap();
    let mut options = options(&url, cache.path());
    // One retry, 0.5 s on: the next (1 s) would end beyond the timeout.
    options.http.timeouts.timeout = Duration::from_secs(1);
    let idx = Index::new(&options).unwrap();
    let e = resolve(&reqs(&["click"]), &CP311, &none(), &idx)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, Error::Index(index::Error::Unreachable { .. }))
            && text.contains(&format!("http://127.0.0.1:{port}/simple/click/"))
            && text.contains("`click`"),
        "{text}"
    );
}

/// The retries it hears, as their lines and the waits asked for.
#[derive(Default)]
struct Retries(Mutex<Vec<(String, Option<Duration>)>>);

impl Reporter for Retries {
    fn retrying(&self, retry: &Retry<'_>) {
        let mut heard = self.0.lock().unwrap();
        heard.push((retry.to_string(), retry.asked));
    }
}

/// A test index answering as `mode`, a cache, and the index options for them.
fn serving(mode: Mode) -> (TestIndex, tempfile::TempDir, IndexOptions) {
    let index = TestIndex::start(mode);
    let cache = tempfile::tempdir().unwrap();
    let options = options(&index.url, cache.path());
    (index, cache, options)
}

#[tokio::test]
async fn a_503_with_retry_after_is_waited_out_and_reported() {
    let (index, _cache, options) = serving(Mode {
        unavailable_once: true,
        ..Mode::default()
    });
    let heard = Arc::new(Retries::default());
    let idx = Index::new(&IndexOptions {
        reporter: heard.clone(),
        ..options
    })
    .unwrap();
    let start = Instant::now();
    let project = idx.project("click").await.unwrap();
    let waited = start.elapsed();
    assert!(!project.files.is_empty());
    // Retry-After: 1, where the backoff alone would have waited 0.5 s.
    assert!(waited >= Duration::from_secs(1), "{waited:?}");
    assert_eq!(
        index.requests(),
        ["GET /simple/click/ json", "GET /simple/click/ json"]
    );
    let heard = heard.0.lock().unwrap();
    let host = index
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/simple");
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(heard[0].1, Some(Duration::from_secs(1)));
    assert!(
        heard[0].0.starts_with(&format!(
            "index `{host}` asked us to wait 1 s (answered 503"
        )),
        "{}",
        heard[0].0
    );
}

#[tokio::test]
async fn a_crawling_index_fails_on_the_low_speed_limit() {
    let (_index, _cache, mut options) = serving(Mode {
        trickle: true,
        ..Mode::default()
    });
    // 200 bytes/s is moving (never silent for 2 s) but under 1000 bytes/s for 0.3 s.
    options.http.timeouts = Timeouts {
        timeout: Duration::from_secs(2),
        low_speed_limit: 1000,
        low_speed_time: Duration::from_millis(300),
    };
    let idx = Index::new(&options).unwrap();
    let start = Instant::now();
    let e = idx.project("click").await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, index::Error::Unreachable { attempts: 2.., .. })
            && text.contains("the transfer was slower than 1000 bytes/s for 0.3 s"),
        "{text}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn credentials_in_the_index_url_are_sent_and_not_shown() {
    let index = TestIndex::start(Mode::default());
    let url = index.url.replace("http://", "http://me:secret@");
    let cache = tempfile::tempdir().unwrap();
    let idx = Index::new(&options(&url, cache.path())).unwrap();
    let wheels = resolve(&reqs(&["jmespath"]), &CP311, &none(), &idx)
        .await
        .unwrap();
    assert!(!wheels[0].url.as_str().contains("secret"));
    assert!(!format!("{idx:?}").contains("secret"));
    assert!(!idx.sources().iter().any(|s| s.contains("secret")));
}

#[tokio::test]
async fn real_pypi_resolves_a_small_requirement() {
    let cache = tempfile::tempdir().unwrap();
    let idx = Index::new(&IndexOptions {
        cache_dir: cache.path().to_path_buf(),
        http: HttpOptions {
            timeouts: Timeouts {
                timeout: Duration::from_secs(20),
                ..Timeouts::default()
            },
            ..HttpOptions::default()
        },
        ..IndexOptions::default()
    })
    .unwrap();
    match resolve(&reqs(&["python-dotenv[cli]==1.0.1"]), &CP311, &none(), &idx).await {
        Ok(wheels) => {
            let names: Vec<&str> = wheels.iter().map(|w| w.name.as_str()).collect();
            assert_eq!(names, ["click", "python-dotenv"]);
            assert!(
                wheels[1]
                    .url
                    .as_str()
                    .starts_with("https://files.pythonhosted.org/")
            );
            assert_eq!(wheels[1].sha256.len(), 64);
        }
        Err(Error::Index(e @ index::Error::Unreachable { .. })) => {
            eprintln!("SKIPPED real_pypi_resolves_a_small_requirement: {e}");
        }
        Err(e) => panic!("{e}"),
    }
}

/// Resolves `secret` on the index at `url` in a thread of its own, watched: a resolution that
/// opens a FIFO would hang there, and fails the test after 60 s instead.
fn resolve_watched(url: &str, cache: &Path) -> (usize, Result<Vec<ResolvedWheel>, String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let options = options(url, cache);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let idx = Index::new(&options).unwrap();
        let listed = rt.block_on(idx.project("secret")).unwrap().files.len();
        let resolved = rt.block_on(resolve(&reqs(&["secret"]), &CP311, &none(), &idx));
        let _ = tx.send((listed, resolved.map_err(|e| e.to_string())));
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the resolution hung: it opened the host's FIFO")
}

#[test]
fn an_http_index_cannot_make_the_build_read_host_files() {
    let host = tempfile::tempdir().unwrap();
    // A real wheel on the host, linked with its right hash, and a FIFO (a read would block)
    // linked with a wrong hash and with the wheel's.
    let wheel = host.path().join("secret-1.0-py3-none-any.whl");
    std::fs::copy(
        fixture_wheels().join("jmespath-1.1.0-py3-none-any.whl"),
        &wheel,
    )
    .unwrap();
    let right = crate::pypi::sha256_file(&wheel).unwrap();
    let fifo = host.path().join("fifo.whl");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let wrong = "ab".repeat(32);
    for html_only in [false, true] {
        let index = TestIndex::start(Mode {
            html_only,
            ..Mode::default()
        });
        let file = |path: &Path| format!("file://{}", path.display());
        index.add(Served::linked(
            "secret-1.0-py3-none-any.whl",
            &file(&wheel),
            &right,
        ));
        index.add(Served::linked(
            "secret-2.0-py3-none-any.whl",
            &file(&fifo),
            &wrong,
        ));
        index.add(Served::linked(
            "secret-3.0-py3-none-any.whl",
            &file(&fifo),
            &right,
        ));
        let cache = tempfile::tempdir().unwrap();
        let (listed, resolved) = resolve_watched(&index.url, cache.path());
        // No link followed, nothing copied, no hash told.
        assert_eq!(listed, 0, "html: {html_only}");
        let err = resolved.unwrap_err();
        assert!(
            err.contains("secret") && err.contains("3 link(s) not followed"),
            "{err}"
        );
        assert!(!err.contains(&right) && !err.contains(&wrong), "{err}");
        let cached = std::fs::read_dir(cache.path().join("pypi-v1")).map_or(0, |d| d.count());
        assert_eq!(cached, 0);
    }
}

#[test]
fn a_local_index_may_link_local_files_checked_before_they_are_read_as_wheels() {
    // An index the user gave as a path: its `file://` links are followed, and a file that is
    // not the one its hash names is refused by that hash, not parsed (it is no zip).
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("secret-1.0-py3-none-any.whl");
    std::fs::write(&garbage, b"not a zip: a host file's bytes").unwrap();
    let found = crate::pypi::sha256_file(&garbage).unwrap();
    let page = dir.path().join("simple/secret");
    std::fs::create_dir_all(&page).unwrap();
    let wrong = "cd".repeat(32);
    std::fs::write(
        page.join("index.html"),
        format!(
            "<a href=\"file://{}#sha256={wrong}\">secret-1.0-py3-none-any.whl</a>",
            garbage.display()
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}/simple", dir.path().display());
    let (listed, resolved) = resolve_watched(&url, cache.path());
    assert_eq!(listed, 1);
    let err = resolved.unwrap_err();
    assert!(
        err.contains("sha256") && err.contains(&wrong) && !err.contains("zip"),
        "{err}"
    );
    assert!(!err.contains(&found), "{err}");
}

#[tokio::test]
async fn a_wheel_download_broken_midway_resumes_from_where_it_broke() {
    let index = TestIndex::start(Mode {
        break_once: true,
        ..Mode::default()
    });
    let cache = tempfile::tempdir().unwrap();
    let idx = Index::new(&options(&index.url, cache.path())).unwrap();
    let click = "click-8.5.1-py3-none-any.whl";
    let right = "8bb5376d2006950386f8c6427613334a2acadc5f559cb80e638d00b4df957e37";
    let url = url::Url::parse(&format!(
        "{}/files/{click}",
        index.url.trim_end_matches("/simple")
    ))
    .unwrap();
    let (path, sha256) = idx.fetch_wheel(&url, Some(right), click).await.unwrap();
    assert_eq!(sha256, right);
    let whole = std::fs::read(fixture_wheels().join(click)).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), whole);
    // Asked again for the rest, from the byte the first answer broke at.
    let gets: Vec<String> = index
        .requests()
        .into_iter()
        .filter(|r| r.contains(click))
        .collect();
    assert_eq!(
        gets,
        [
            format!("GET /files/{click} html"),
            format!("GET /files/{click} html from {}", whole.len() / 2)
        ]
    );
}
