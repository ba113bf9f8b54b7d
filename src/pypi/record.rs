//! `RECORD`: one CSV row per installed file, `path,sha256=<urlsafe base64, no padding>,size`
//! (PEP 376, PEP 427), read from a wheel and written for the installed paths as pip writes it.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// One row of a `RECORD` as the wheel ships it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRow {
    /// The path, relative to the wheel's root.
    pub path: String,
    /// The sha256 digest, when the row has a `sha256=` hash.
    pub sha256: Option<[u8; 32]>,
    /// A hash of another algorithm (`sha512=...`), which is not checked.
    pub other_hash: Option<String>,
    /// The size, when the row gives one.
    pub size: Option<u64>,
}

/// A file's sha256 and size, as a `RECORD` row gives them.
pub type FileDigest = ([u8; 32], u64);

/// `sha256=<urlsafe base64 without padding>`, as `RECORD` writes a digest.
pub fn hash_field(sha256: &[u8; 32]) -> String {
    format!("sha256={}", URL_SAFE_NO_PAD.encode(sha256))
}

/// Parses a `RECORD`: rows by path. Errors name the line.
pub fn parse(text: &str) -> Result<HashMap<String, RecordRow>, String> {
    let mut rows = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let fields = split_csv(line).ok_or_else(|| format!("line {}: unbalanced quotes", n + 1))?;
        let [path, hash, size] = fields.as_slice() else {
            return Err(format!(
                "line {}: {} fields where path,hash,size were expected",
                n + 1,
                fields.len()
            ));
        };
        let (sha256, other_hash) = match hash.split_once('=') {
            None if hash.is_empty() => (None, None),
            Some(("sha256", digest)) => {
                let bytes = URL_SAFE_NO_PAD
                    .decode(digest.trim_end_matches('='))
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| format!("line {}: `{hash}` is no sha256 digest", n + 1))?;
                (Some(bytes), None)
            }
            Some((_, _)) => (None, Some(hash.clone())),
            None => return Err(format!("line {}: `{hash}` is no `algorithm=digest`", n + 1)),
        };
        let size = match size.as_str() {
            "" => None,
            s => Some(
                s.parse()
                    .map_err(|_| format!("line {}: size `{s}` is not a number", n + 1))?,
            ),
        };
        let row = RecordRow {
            path: path.clone(),
            sha256,
            other_hash,
            size,
        };
        if rows.insert(path.clone(), row).is_some() {
            return Err(format!("line {}: `{path}` is listed twice", n + 1));
        }
    }
    Ok(rows)
}

/// Splits one CSV line (`,` separated, `"` quoted, `""` an escaped quote), or `None` when a
/// quote is left open.
fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return None;
    }
    fields.push(field);
    Some(fields)
}

/// One CSV field as Python's `csv.writer` writes it (quoted only when it must be).
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// Writes a `RECORD` as pip does (Python's `csv.writer`): rows sorted by path, `\r\n` line
/// ends; a row without a digest
/// (the `RECORD` itself) has empty hash and size.
pub fn write(rows: &[(String, Option<FileDigest>)]) -> Vec<u8> {
    let mut rows: Vec<_> = rows.iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (path, digest) in rows {
        out.push_str(&csv_field(path));
        match digest {
            Some((sha, size)) => {
                out.push(',');
                out.push_str(&hash_field(sha));
                out.push(',');
                out.push_str(&size.to_string());
            }
            None => out.push_str(",,"),
        }
        out.push_str("\r\n");
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_with_quotes_and_empty_fields() {
        let text = "a/b.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\r\n\"x,\"\"y\"\".py\",,\nd-1.0.dist-info/RECORD,,\n";
        let rows = parse(text).unwrap();
        assert_eq!(rows["a/b.py"].size, Some(0));
        assert_eq!(
            hash_field(&rows["a/b.py"].sha256.unwrap()),
            "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
        assert_eq!(rows["x,\"y\".py"].sha256, None);
        assert!(rows.contains_key("d-1.0.dist-info/RECORD"));
    }

    #[test]
    fn bad_rows_are_refused() {
        assert!(parse("a,sha256=xyz,1\n").is_err());
        assert!(parse("a,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,big\n").is_err());
        assert!(parse("\"a,b,c\n").is_err());
        assert!(parse("a,,\na,,\n").is_err());
        assert!(parse("a,b\n").is_err());
    }

    #[test]
    fn written_as_pip_writes_it() {
        let empty = [
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
            0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b,
            0x78, 0x52, 0xb8, 0x55,
        ];
        let out = write(&[
            ("b/RECORD".into(), None),
            ("a,b".into(), Some((empty, 0))),
            ("../../../bin/x".into(), Some((empty, 0))),
        ]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "../../../bin/x,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\r\n\"a,b\",sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\r\nb/RECORD,,\r\n"
        );
    }
}
