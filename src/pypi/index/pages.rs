//! Project pages as an index serves them: PEP 691 JSON, or PEP 503 HTML (every `<a href>`, the
//! hash in its `#sha256=` fragment), read into [`DistFile`]s; and what a file's name says of
//! its project.

use std::collections::HashMap;

use url::Url;

use super::DistFile;
use super::html::{anchors, unescape};
use super::locations::{percent_decode, split_credentials};
use crate::pypi::normalize_name;
use crate::pypi::wheel;

/// The normalised project of a file name: a wheel's first part, an sdist's name before its
/// version (`foo_bar-1.0.tar.gz` -> `foo-bar`).
pub fn file_project(filename: &str) -> Option<String> {
    if filename.ends_with(".whl") {
        return wheel::WheelName::parse(filename)
            .ok()
            .map(|w| normalize_name(&w.name));
    }
    let stem = sdist_stem(filename)?;
    // The version starts after the last `-` followed by a digit.
    let at = stem
        .char_indices()
        .filter(|&(i, c)| c == '-' && stem[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
        .map(|(i, _)| i)
        .next_back()?;
    Some(normalize_name(&stem[..at]))
}

/// The `name-version` of an sdist's file name, or `None` for other files.
pub fn sdist_stem(filename: &str) -> Option<&str> {
    [".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar"]
        .iter()
        .find_map(|ext| filename.strip_suffix(ext))
}

/// The wheels and sdists of project `name` in directory `dir` (`--find-links DIR`), each
/// A project page, JSON (PEP 691) or HTML (PEP 503) as its content type says, with links
/// relative to `page`.
pub(super) fn parse_page(
    page: &Url,
    content_type: Option<&str>,
    body: &[u8],
    index: &str,
) -> Result<Vec<DistFile>, String> {
    let kind = content_type
        .unwrap_or("text/html")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if kind == "application/vnd.pypi.simple.v1+json" {
        parse_json(page, body, index)
    } else if kind.contains("html") {
        let text =
            std::str::from_utf8(body).map_err(|_| "the HTML page is not UTF-8".to_string())?;
        Ok(parse_html(page, text, index))
    } else {
        Err(format!(
            "a project page of type `{kind}`, neither PEP 691 JSON nor PEP 503 HTML"
        ))
    }
}

/// The files listed on `page` whose links are followed, and how many are not: http(s) links
/// from any page, `file://` ones only from a page that is itself local (an index the user gave
/// as a path), so that an index served over the network cannot make the build read the host's
/// files.
pub(super) fn followed(page: &Url, files: Vec<DistFile>) -> (Vec<DistFile>, usize) {
    let (kept, refused): (Vec<DistFile>, Vec<DistFile>) =
        files.into_iter().partition(|f| match f.url.scheme() {
            "http" | "https" => true,
            "file" => page.scheme() == "file",
            _ => false,
        });
    for f in &refused {
        tracing::warn!(
            "{page}: not following the {} link `{}`: an index served over the network links \
             only to http(s)",
            f.url.scheme(),
            f.url
        );
    }
    (kept, refused.len())
}

/// PEP 691 JSON.
fn parse_json(page: &Url, body: &[u8], index: &str) -> Result<Vec<DistFile>, String> {
    #[derive(serde::Deserialize)]
    struct Page {
        meta: Option<Meta>,
        files: Vec<File>,
    }
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "api-version")]
        api_version: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        filename: String,
        url: String,
        #[serde(default)]
        hashes: HashMap<String, String>,
        #[serde(rename = "requires-python")]
        requires_python: Option<String>,
        #[serde(default)]
        yanked: serde_json::Value,
        #[serde(rename = "core-metadata")]
        core_metadata: Option<serde_json::Value>,
        #[serde(rename = "data-dist-info-metadata")]
        dist_info_metadata: Option<serde_json::Value>,
    }
    let parsed: Page =
        serde_json::from_slice(body).map_err(|e| format!("not PEP 691 JSON: {e}"))?;
    if let Some(version) = parsed.meta.and_then(|m| m.api_version)
        && !version.starts_with("1.")
    {
        return Err(format!(
            "PEP 691 api-version {version}; this client reads 1.x"
        ));
    }
    let mut out = Vec::with_capacity(parsed.files.len());
    for f in parsed.files {
        let Ok(url) = page.join(&f.url) else { continue };
        let (mut url, _) = split_credentials(url);
        url.set_fragment(None);
        let metadata = match f.core_metadata.or(f.dist_info_metadata) {
            Some(serde_json::Value::Bool(true)) => Some(None),
            Some(serde_json::Value::Object(hashes)) => Some(
                hashes
                    .get("sha256")
                    .and_then(|h| h.as_str())
                    .map(str::to_string),
            ),
            _ => None,
        };
        out.push(DistFile {
            filename: f.filename,
            url,
            sha256: f.hashes.get("sha256").cloned(),
            requires_python: f.requires_python.filter(|r| !r.trim().is_empty()),
            yanked: match f.yanked {
                serde_json::Value::Bool(b) => b,
                serde_json::Value::String(_) => true,
                _ => false,
            },
            metadata,
            index: index.to_string(),
        });
    }
    Ok(out)
}

/// PEP 503 HTML: every `<a href>`; the hash from the URL's `#sha256=` fragment.
pub(super) fn parse_html(page: &Url, text: &str, index: &str) -> Vec<DistFile> {
    let mut out = Vec::new();
    for (attrs, inner) in anchors(text) {
        let Some(href) = attrs
            .iter()
            .find(|(k, _)| k == "href")
            .and_then(|(_, v)| v.clone())
        else {
            continue;
        };
        let Ok(url) = page.join(&href) else { continue };
        let (mut url, _) = split_credentials(url);
        let sha256 = url
            .fragment()
            .and_then(|f| f.strip_prefix("sha256="))
            .map(str::to_string);
        url.set_fragment(None);
        let from_url = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .map(percent_decode)
            .unwrap_or_default();
        let inner = unescape(inner.trim());
        let filename = if inner.ends_with(".whl") || sdist_stem(&inner).is_some() {
            inner
        } else {
            from_url
        };
        if filename.is_empty() {
            continue;
        }
        let attr = |name: &str| {
            attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let metadata = match attr("data-core-metadata").or_else(|| attr("data-dist-info-metadata"))
        {
            Some(Some(v)) if v.eq_ignore_ascii_case("true") => Some(None),
            Some(Some(v)) if v.starts_with("sha256=") => {
                Some(Some(v["sha256=".len()..].to_string()))
            }
            Some(Some(_)) => Some(None),
            Some(None) => Some(None),
            None => None,
        };
        out.push(DistFile {
            filename,
            url,
            sha256,
            requires_python: attr("data-requires-python")
                .flatten()
                .filter(|r| !r.trim().is_empty()),
            yanked: attr("data-yanked").is_some(),
            metadata,
            index: index.to_string(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_pages_give_files_hashes_and_attributes() {
        let page = Url::parse("https://example.org/simple/foo/").unwrap();
        let html = r#"<!DOCTYPE html><html><body>
            <a href="../../files/foo-1.0-py3-none-any.whl#sha256=abc" data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256=def">foo-1.0-py3-none-any.whl</a><br/>
            <A HREF='https://other.example/foo-1.1.tar.gz' data-yanked>foo-1.1.tar.gz</A>
            <a href="foo-2.0-py3-none-any.whl" data-core-metadata="true">foo-2.0-py3-none-any.whl</a>
            <abbr>not a link</abbr>
        </body></html>"#;
        let files = parse_html(&page, html, "idx");
        assert_eq!(files.len(), 3, "{files:?}");
        assert_eq!(
            files[0].url.as_str(),
            "https://example.org/files/foo-1.0-py3-none-any.whl"
        );
        assert_eq!(files[0].sha256.as_deref(), Some("abc"));
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(files[0].metadata, Some(Some("def".into())));
        assert!(!files[0].yanked);
        assert!(files[1].yanked);
        assert_eq!(files[1].filename, "foo-1.1.tar.gz");
        assert_eq!(files[2].metadata, Some(None));
        assert_eq!(
            files[2].url.as_str(),
            "https://example.org/simple/foo/foo-2.0-py3-none-any.whl"
        );
    }

    #[test]
    fn a_network_page_links_only_to_the_network() {
        let html = r#"<a href="file:///etc/passwd#sha256=aa">foo-1.0-py3-none-any.whl</a>
            <a href="/etc/shadow">foo-1.1-py3-none-any.whl</a>
            <a href="ftp://example.org/foo-1.2-py3-none-any.whl">foo-1.2-py3-none-any.whl</a>
            <a href="https://files.example/foo-1.3-py3-none-any.whl">foo-1.3-py3-none-any.whl</a>"#;
        let json = br#"{"files":[
            {"filename":"foo-1.0-py3-none-any.whl","url":"file:///etc/passwd","hashes":{}},
            {"filename":"foo-1.3-py3-none-any.whl","url":"../foo-1.3-py3-none-any.whl","hashes":{}}
        ]}"#;
        let urls = |page: &Url, files: Vec<DistFile>| -> (Vec<String>, usize) {
            let (files, refused) = followed(page, files);
            (
                files.into_iter().map(|f| f.url.to_string()).collect(),
                refused,
            )
        };
        let remote = Url::parse("http://127.0.0.1:1/simple/foo/").unwrap();
        assert_eq!(
            urls(&remote, parse_html(&remote, html, "idx")),
            (
                vec![
                    "http://127.0.0.1:1/etc/shadow".to_string(),
                    "https://files.example/foo-1.3-py3-none-any.whl".to_string()
                ],
                2
            )
        );
        let json_type = Some("application/vnd.pypi.simple.v1+json");
        assert_eq!(
            urls(
                &remote,
                parse_page(&remote, json_type, json, "idx").unwrap()
            ),
            (
                vec!["http://127.0.0.1:1/simple/foo-1.3-py3-none-any.whl".to_string()],
                1
            )
        );
        // A local index (a path the user gave) may link to local files.
        let local = Url::parse("file:///srv/simple/foo/").unwrap();
        assert_eq!(
            urls(&local, parse_html(&local, html, "idx")),
            (
                vec![
                    "file:///etc/passwd".to_string(),
                    "file:///etc/shadow".to_string(),
                    "https://files.example/foo-1.3-py3-none-any.whl".to_string()
                ],
                1
            )
        );
    }

    #[test]
    fn json_pages_give_files() {
        let page = Url::parse("https://example.org/simple/foo/").unwrap();
        let json = br#"{"meta":{"api-version":"1.1"},"name":"foo","files":[
            {"filename":"foo-1.0-py3-none-any.whl","url":"https://files.example/foo-1.0-py3-none-any.whl","hashes":{"sha256":"aa"},"requires-python":">=3.7","core-metadata":{"sha256":"bb"},"yanked":false},
            {"filename":"foo-0.9-py3-none-any.whl","url":"/f/foo-0.9-py3-none-any.whl","hashes":{},"yanked":"broken","data-dist-info-metadata":true}
        ]}"#;
        let files = parse_page(
            &page,
            Some("application/vnd.pypi.simple.v1+json"),
            json,
            "idx",
        )
        .unwrap();
        assert_eq!(files[0].sha256.as_deref(), Some("aa"));
        assert_eq!(files[0].metadata, Some(Some("bb".into())));
        assert!(files[1].yanked);
        assert_eq!(files[1].metadata, Some(None));
        assert_eq!(
            files[1].url.as_str(),
            "https://example.org/f/foo-0.9-py3-none-any.whl"
        );
        assert!(
            parse_page(
                &page,
                Some("application/vnd.pypi.simple.v1+json"),
                b"{}",
                "idx"
            )
            .is_err()
        );
        assert!(parse_page(&page, Some("image/png"), b"", "idx").is_err());
    }

    #[test]
    fn file_names_give_projects() {
        assert_eq!(
            file_project("typing_extensions-4.16.0-py3-none-any.whl").as_deref(),
            Some("typing-extensions")
        );
        assert_eq!(
            file_project("Foo_Bar-1.0.tar.gz").as_deref(),
            Some("foo-bar")
        );
        assert_eq!(
            file_project("python-dotenv-1.2.4.zip").as_deref(),
            Some("python-dotenv")
        );
        assert_eq!(file_project("README.md"), None);
    }
}
