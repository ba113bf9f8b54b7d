//! Email-style header blocks (RFC 822, as a wheel's `METADATA` and `WHEEL` write them): one
//! reader for every header a wheel or an index gives. A header block ends at the first blank
//! line; a line starting with a space or a tab continues the header above it (its text joined
//! with one space); a line without `:` is passed over.

/// The header fields of `text`'s header block, in order, continuation lines joined; names and
/// values trimmed.
pub fn headers(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                if !v.is_empty() {
                    v.push(' ');
                }
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// The first value of header `key` (any case) in `text`'s header block.
pub fn header(text: &str, key: &str) -> Option<String> {
    headers(text)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_lines_join_and_the_body_is_not_read() {
        let text = "Metadata-Version: 2.1\nName: foo\nRequires-Dist: bar\n  >=1.0\n\tand more\n\
                    Summary:\n  on the next line\nnot a header\n\nName: in-the-body\n";
        assert_eq!(
            headers(text),
            [
                ("Metadata-Version", "2.1"),
                ("Name", "foo"),
                ("Requires-Dist", "bar >=1.0 and more"),
                ("Summary", "on the next line"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(header(text, "name").as_deref(), Some("foo"));
        assert_eq!(header(text, "Version"), None);
        // A continuation line is not a header of its own.
        let tricky = "Name: foo\nDescription: x\n  Version: 9\nVersion: 1.0\n";
        assert_eq!(header(tricky, "Version").as_deref(), Some("1.0"));
    }
}
