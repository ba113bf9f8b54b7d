//! The little HTML an index page needs: its `<a ...>text</a>` elements, their attributes and
//! character references, read by hand (no DOM), tolerant of what real indexes write.

/// An element's attributes: lower-cased names, unescaped values (`None` when bare).
pub(super) type Attributes = Vec<(String, Option<String>)>;

/// The `<a ...>text</a>` elements of `html`: attributes (lower-cased names, unescaped values;
/// `None` for a bare attribute) and the raw text.
pub(super) fn anchors(html: &str) -> Vec<(Attributes, &str)> {
    let mut out = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut at = 0;
    while let Some(found) = lower[at..].find("<a") {
        let start = at + found + 2;
        at = start;
        if !lower[start..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>') {
            continue;
        }
        let Some(end) = find_tag_end(&html[start..]) else {
            break;
        };
        let attrs = parse_attributes(&html[start..start + end]);
        let text_start = start + end + 1;
        let text_end = lower[text_start..]
            .find("</a")
            .map_or(html.len(), |i| text_start + i);
        out.push((attrs, &html[text_start..text_end]));
        at = text_end;
    }
    out
}

/// The offset of the `>` closing a tag, outside quotes.
fn find_tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// The attributes inside a tag (after its name), in order.
fn parse_attributes(s: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == '=' || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (value, tail) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = &after[1..];
                    let end = body.find(q).unwrap_or(body.len());
                    (&body[..end], body.get(end + 1..).unwrap_or(""))
                }
                _ => {
                    let end = after
                        .find(|c: char| c.is_ascii_whitespace())
                        .unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            rest = tail.trim_start();
            Some(unescape(value))
        } else {
            if name.is_empty() {
                // A stray `/` or other character: skip it.
                rest = rest.get(1..).unwrap_or("").trim_start();
                continue;
            }
            None
        };
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

/// HTML character references: the named few an index writes, and numeric ones.
pub(super) fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let entity = &after[..e];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}
