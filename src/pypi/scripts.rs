//! Scripts as pip writes them: console and gui entry points from `entry_points.txt`, and the
//! `#!python` shebang of `.data/scripts` rewritten for the environment's python.

/// One `console_scripts` or `gui_scripts` entry point (`name = module:attr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryPoint {
    /// The script's file name in `bin/`.
    pub name: String,
    /// The module to import (`dotenv.__main__`).
    pub module: String,
    /// The callable in it, possibly dotted (`cli`, `Main.run`).
    pub attr: String,
}

/// True for a dotted name of identifiers (`a.b_c.d1`), the only text put into a script.
fn is_dotted_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        })
}

/// Why a script name cannot be a file in `bin/`, or `None` when it can.
fn check_script_name(name: &str) -> Option<&'static str> {
    if name.is_empty() || name == "." || name == ".." {
        Some("it is no file name")
    } else if name.contains('/') || name.contains('\\') {
        Some("it holds a path separator")
    } else if name.starts_with(".wh.") {
        Some("a name starting with `.wh.` would be a whiteout in the image")
    } else if name.chars().any(char::is_control) {
        Some("it holds a control character")
    } else {
        None
    }
}

/// The console and gui entry points of an `entry_points.txt` (other groups are ignored), in
/// file order. Errors say which line is wrong.
pub fn parse_entry_points(text: &str) -> Result<Vec<EntryPoint>, String> {
    let mut points = Vec::new();
    let mut in_scripts = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_scripts = matches!(section.trim(), "console_scripts" | "gui_scripts");
            continue;
        }
        if !in_scripts {
            continue;
        }
        let bad = |reason: &str| format!("line {}: `{line}`: {reason}", n + 1);
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| bad("no `name = module:attr`"))?;
        let name = name.trim();
        if let Some(reason) = check_script_name(name) {
            return Err(bad(&format!("script name `{name}`: {reason}")));
        }
        // `module:attr [extra1, extra2]`; the extras only matter to a resolver.
        let value = match value.split_once('[') {
            Some((v, extras)) if extras.trim_end().ends_with(']') => v,
            Some(_) => return Err(bad("an unclosed `[extras]`")),
            None => value,
        };
        let (module, attr) = value
            .split_once(':')
            .ok_or_else(|| bad("entry points must be `module:attr`"))?;
        let (module, attr) = (module.trim(), attr.trim());
        if !is_dotted_identifier(module) || !is_dotted_identifier(attr) {
            return Err(bad(
                "module and attribute must be dotted Python identifiers",
            ));
        }
        points.push(EntryPoint {
            name: name.to_string(),
            module: module.to_string(),
            attr: attr.to_string(),
        });
    }
    Ok(points)
}

/// The shebang pip (distlib) writes for `python`, with its line end: `#!<python>`, or, when the
/// path holds a space or the line would be longer than 127 bytes, the `/bin/sh` trampoline.
pub fn shebang(python: &str) -> String {
    let quoted = if python.contains(' ') && !python.starts_with('"') {
        format!("\"{python}\"")
    } else {
        python.to_string()
    };
    if !quoted.contains(' ') && quoted.len() + 3 <= 127 {
        format!("#!{quoted}\n")
    } else {
        format!("#!/bin/sh\n'''exec' {quoted} \"$0\" \"$@\"\n' '''\n")
    }
}

/// The script pip writes for an entry point, byte for byte (distlib's template).
pub fn entry_point_script(point: &EntryPoint, python: &str) -> String {
    let import_name = point.attr.split('.').next().unwrap_or(&point.attr);
    format!(
        "{}# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom {} import {}\nif __name__ == '__main__':\n    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    sys.exit({}())\n",
        shebang(python),
        point.module,
        import_name,
        point.attr
    )
}

/// A `.data/scripts` file with its `#!python` (or `#!pythonw`) first line replaced by
/// `#!<python>`, as pip's `fix_script` does, or `None` when it does not start with `#!python`.
pub fn fix_script(content: &[u8], python: &str) -> Option<Vec<u8>> {
    if !content.starts_with(b"#!python") {
        return None;
    }
    let rest = match content.iter().position(|&b| b == b'\n') {
        Some(i) => &content[i + 1..],
        None => &[],
    };
    let mut out = format!("#!{python}\n").into_bytes();
    out.extend_from_slice(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_parse_and_ignore_other_groups() {
        let text = "[console_scripts]\ndotenv = dotenv.__main__:cli\nx=a.b:C.run [extra]\n\n[gui_scripts]\ng = m:main\n[other]\nnot = a script\n";
        let points = parse_entry_points(text).unwrap();
        assert_eq!(
            points.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["dotenv", "x", "g"]
        );
        assert_eq!(points[1].attr, "C.run");
    }

    #[test]
    fn hostile_entry_points_are_refused() {
        for (bad, says) in [
            ("../x = m:f", "line 2: `../x = m:f`: script name `../x`: "),
            ("x/y = m:f", "line 2: `x/y = m:f`: script name `x/y`: "),
            (
                ".wh.x = m:f",
                "line 2: `.wh.x = m:f`: script name `.wh.x`: ",
            ),
            (
                "x = m",
                "line 2: `x = m`: entry points must be `module:attr`",
            ),
            (
                "x = os; import evil:f",
                "line 2: `x = os; import evil:f`: module and attribute must be dotted",
            ),
            (
                "x = m:f()",
                "line 2: `x = m:f()`: module and attribute must be dotted",
            ),
            ("x = m:f [a", "line 2: `x = m:f [a`: an unclosed `[extras]`"),
        ] {
            let err = parse_entry_points(&format!("[console_scripts]\n{bad}\n")).unwrap_err();
            assert!(err.starts_with(says), "{bad}: {err}");
        }
    }

    #[test]
    fn scripts_match_pip() {
        let p = EntryPoint {
            name: "dotenv".into(),
            module: "dotenv.__main__".into(),
            attr: "cli".into(),
        };
        assert_eq!(
            entry_point_script(&p, "/opt/conda/bin/python"),
            "#!/opt/conda/bin/python\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom dotenv.__main__ import cli\nif __name__ == '__main__':\n    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    sys.exit(cli())\n"
        );
        assert_eq!(
            shebang("/a b/bin/python"),
            "#!/bin/sh\n'''exec' \"/a b/bin/python\" \"$0\" \"$@\"\n' '''\n"
        );
        let long = format!("/{}/bin/python", "x".repeat(130));
        assert!(shebang(&long).starts_with("#!/bin/sh\n"));
    }

    #[test]
    fn python_shebangs_are_fixed() {
        assert_eq!(
            fix_script(b"#!python\nprint(1)\n", "/opt/conda/bin/python").unwrap(),
            b"#!/opt/conda/bin/python\nprint(1)\n"
        );
        assert_eq!(
            fix_script(b"#!pythonw -u\nx", "/p/python").unwrap(),
            b"#!/p/python\nx"
        );
        assert_eq!(fix_script(b"#!/bin/sh\necho\n", "/p/python"), None);
    }
}
