//! `{name}` placeholders in app commands and flow steps: finding them, refusing unknown ones
//! with the key that holds them, and filling them in.

/// The `{name}` placeholders in `s` (a lower-case word between braces; JSON such as
/// `{"a": 1}` is left alone because a quote is not a word character).
pub fn names(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    // Each pass consumes at least one byte: bounded by the length of `s`.
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let word = after
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(after.len());
        if word > 0 && after[word..].starts_with('}') {
            out.push(&after[..word]);
            rest = &after[word + 1..];
        } else {
            rest = after;
        }
    }
    out
}

/// Refuses a placeholder of `s` that is not in `known`; the error names `key`.
pub fn check(s: &str, known: &[&str], key: &str) -> anyhow::Result<()> {
    for n in names(s) {
        anyhow::ensure!(
            known.contains(&n),
            "{key}: unknown placeholder {{{n}}} in {s:?} (known here: {})",
            known
                .iter()
                .map(|k| format!("{{{k}}}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(())
}

/// `s` with every `{name}` of `values` replaced.
pub fn fill(s: &str, values: &[(&str, &str)]) -> String {
    if !s.contains('{') {
        return s.to_string();
    }
    let mut out = s.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// Whether `s` uses placeholder `name`.
pub fn uses(s: &str, name: &str) -> bool {
    names(s).contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_checks_and_fills() {
        assert_eq!(names("--port {port} {\"a\": {nonce}}"), ["port", "nonce"]);
        assert!(check("{prot}", &["port"], "app.command[2]")
            .unwrap_err()
            .to_string()
            .contains("app.command[2]: unknown placeholder {prot}"));
        assert_eq!(
            fill("x={port}&y={id}", &[("port", "80"), ("id", "a")]),
            "x=80&y=a"
        );
        assert!(uses("redis={redis_url}", "redis_url"));
    }
}
