//! The structural pass over a config file: TOML syntax, unknown keys and wrong-typed values.
//!
//! serde stops at the first such error, so each one is recorded and taken out of a working copy
//! of the text, and serde runs again until the raw tree deserializes. Taking out never moves a
//! byte: a wrong-typed value first becomes `""` padded with spaces (most keys are strings, so the
//! file usually still deserializes and validation sees the rest of its table); an unknown key, or
//! a value that is not a string either, has its whole lines overwritten with spaces; a missing
//! required key is written as `key = ""` on such a blanked line of its table, when there is one
//! (a misspelled `adr = ...` leaves room for `addr = ""`). Every span
//! and line number in the copy is therefore the original's, and validation problems on a line
//! that was touched are dropped as echoes of the structural one.

use std::collections::BTreeSet;
use std::ops::Range;

use serde_path_to_error::Segment;
use toml_edit::{ImDocument, Item, TableLike};

use super::problems::line_of;
use super::raw::RawConfig;
use super::suggest;

/// Enough for any hand-written file; a bound so a pathological one cannot loop for long.
const MAX_PASSES: usize = 200;

/// What the structural pass found.
pub(super) struct Structure {
    /// The raw tree, unless an error could not be taken out (syntax, a missing required key
    /// with no blanked line in its table to write it on).
    pub(super) raw: Option<RawConfig>,
    /// (line, message), in the order found.
    pub(super) problems: Vec<(usize, String)>,
    /// Lines that were blanked or replaced: validation problems there are echoes.
    pub(super) touched: BTreeSet<usize>,
}

/// Deserializes `text`, recording every unknown key and wrong-typed value on the way.
pub(super) fn parse(text: &str) -> Structure {
    let mut work = text.as_bytes().to_vec();
    let mut out = Structure {
        raw: None,
        problems: Vec::new(),
        touched: BTreeSet::new(),
    };
    for _ in 0..MAX_PASSES {
        // Blanking only writes ASCII spaces and quotes over whole characters' bytes.
        let Ok(current) = std::str::from_utf8(&work) else {
            break;
        };
        let err = match serde_path_to_error::deserialize::<_, RawConfig>(toml::Deserializer::new(
            current,
        )) {
            Ok(raw) => {
                out.raw = Some(raw);
                return out;
            }
            Err(e) => e,
        };
        let path: Vec<String> = err
            .path()
            .iter()
            .filter_map(|s| match s {
                // `Spanned<T>` wraps T in a private struct: not a key of the file.
                Segment::Map { key } if key.starts_with("$__") => None,
                Segment::Map { key } => Some(key.clone()),
                Segment::Seq { index } => Some(format!("[{index}]")),
                _ => None,
            })
            .collect();
        let inner = err.into_inner();
        let msg = inner.message().trim().replace('\n', "; ");
        let err_line = inner.span().map(|s| line_of(text, s.start));
        let Ok(doc) = ImDocument::parse(current) else {
            // Syntax: nothing to take out safely, and serde's message names the line. (If only
            // the working copy fails, a blanking broke it: stop with what was found.)
            if out.problems.is_empty() {
                out.problems
                    .push((err_line.unwrap_or(usize::MAX), at("config", err_line, &msg)));
            }
            return out;
        };
        if let Some((field, valid)) = unknown_field(&msg) {
            // serde_path_to_error's path may or may not end at the unknown key itself.
            let mut full = path.clone();
            if full.last() != Some(&field) {
                full.push(field.clone());
            }
            let found = locate(&doc, &full);
            let line = found.as_ref().map(|f| f.line).or(err_line);
            let message = suggest::unknown_key(&field, &valid);
            out.problems.push((
                line.unwrap_or(usize::MAX),
                at(&key_path(&full), line, &message),
            ));
            let Some(found) = found else { return out };
            if !blank(&mut work, &found.lines, &mut out.touched) {
                return out;
            }
            continue;
        }
        let key = key_path(&path);
        let found = locate(&doc, &path);
        if let Some(field) = msg
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
        {
            let line = err_line.or(found.as_ref().map(|f| f.line));
            out.problems
                .push((line.unwrap_or(usize::MAX), at(&key, line, &msg)));
            // A required key is absent. If its table has a line this pass blanked (typically the
            // misspelled key itself), `key = ""` goes there and serde gets past it.
            let filled = found
                .as_ref()
                .is_some_and(|f| fill_missing(&mut work, f, field, &mut out.touched, text));
            if filled {
                continue;
            }
            return out;
        }
        if found.is_none() {
            out.problems
                .push((err_line.unwrap_or(usize::MAX), at(&key, err_line, &msg)));
            return out;
        }
        let found = found.expect("located above");
        let line = err_line.unwrap_or(found.line);
        // An error on a line already touched is the placeholder's own (`""` is not a table).
        let echo = out.touched.contains(&line) || out.touched.contains(&found.line);
        if !echo {
            out.problems.push((line, at(&key, Some(line), &msg)));
        }
        let replaced = !echo
            && found
                .value
                .clone()
                .is_some_and(|v| empty_string(&mut work, v, &mut out.touched, text));
        if !replaced && !blank(&mut work, &found.lines, &mut out.touched) {
            return out;
        }
    }
    out
}

/// `key (line N): msg`, or `key: msg` without a line.
fn at(key: &str, line: Option<usize>, msg: &str) -> String {
    match line {
        Some(line) => format!("{key} (line {line}): {msg}"),
        None => format!("{key}: {msg}"),
    }
}

/// `pool.app.backend[1].addr` from its segments.
fn key_path(segments: &[String]) -> String {
    let mut out = String::new();
    for s in segments {
        if !out.is_empty() && !s.starts_with('[') {
            out.push('.');
        }
        out.push_str(s);
    }
    if out.is_empty() {
        out.push_str("config");
    }
    out
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a` or `b`"):
/// the field and the valid names.
fn unknown_field(msg: &str) -> Option<(String, Vec<&str>)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let valid = rest.split('`').skip(1).step_by(2).collect();
    Some((field.to_string(), valid))
}

/// Where a key sits in the file.
struct Found {
    /// The line of the key.
    line: usize,
    /// Byte ranges whose lines hold the key and everything under it.
    lines: Vec<Range<usize>>,
    /// The byte range of its value, when it is a plain `key = value`.
    value: Option<Range<usize>>,
}

/// Finds the entry at `path` (map keys and `[i]` indices). Inside an inline value (an inline
/// table or array) the whole `key = value` that holds it is returned: those are taken out whole.
fn locate(doc: &ImDocument<&str>, path: &[String]) -> Option<Found> {
    let text = doc.raw();
    let mut table: &dyn TableLike = doc.as_table();
    let mut i = 0;
    while i < path.len() {
        let (key, item) = table.get_key_value(&path[i])?;
        let key_span = key.span()?;
        let line = line_of(text, key_span.start);
        i += 1;
        match item {
            Item::Value(v) => {
                let span = v.span()?;
                return Some(Found {
                    line,
                    lines: std::iter::once(key_span.start..span.end).collect(),
                    value: Some(span),
                });
            }
            Item::Table(t) if i == path.len() => {
                let mut lines = vec![key_span.clone()];
                table_lines(t, &mut lines);
                return Some(Found {
                    line,
                    lines,
                    value: None,
                });
            }
            Item::Table(t) => table = t,
            Item::ArrayOfTables(a) if i == path.len() => {
                let mut lines = vec![key_span.clone()];
                for t in a.iter() {
                    table_lines(t, &mut lines);
                }
                return Some(Found {
                    line,
                    lines,
                    value: None,
                });
            }
            Item::ArrayOfTables(a) => {
                let index: usize = path[i].strip_prefix('[')?.strip_suffix(']')?.parse().ok()?;
                i += 1;
                let t = a.get(index)?;
                if i == path.len() {
                    let mut lines = Vec::new();
                    table_lines(t, &mut lines);
                    let line = line_of(text, lines.first()?.start);
                    return Some(Found {
                        line,
                        lines,
                        value: None,
                    });
                }
                table = t;
            }
            Item::None => return None,
        }
    }
    None
}

/// The header of `t` (if it has one of its own) and every entry under it.
fn table_lines(t: &toml_edit::Table, out: &mut Vec<Range<usize>>) {
    if let Some(span) = t.span() {
        out.push(span);
    }
    for (name, _) in t.iter() {
        let Some((key, item)) = t.get_key_value(name) else {
            continue;
        };
        match item {
            Item::Value(v) => {
                if let (Some(k), Some(v)) = (key.span(), v.span()) {
                    out.push(k.start..v.end);
                }
            }
            Item::Table(t) => table_lines(t, out),
            Item::ArrayOfTables(a) => a.iter().for_each(|t| table_lines(t, out)),
            Item::None => {}
        }
    }
}

/// Overwrites every line touched by `ranges` with spaces. False if nothing changed (a loop guard).
fn blank(work: &mut [u8], ranges: &[Range<usize>], touched: &mut BTreeSet<usize>) -> bool {
    let mut changed = false;
    for r in ranges {
        let start = work[..r.start.min(work.len())]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let end = work[r.end.min(work.len())..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(work.len(), |p| r.end + p);
        for b in &mut work[start..end] {
            if !matches!(*b, b'\n' | b' ') {
                *b = b' ';
                changed = true;
            }
        }
        let text = String::from_utf8_lossy(&work[..end]);
        let first = line_of(&text, start);
        touched.extend(first..=line_of(&text, end));
    }
    changed
}

/// Writes `field = ""` on a line of the table `found` that this pass blanked (a whole line that
/// held an entry, so never the inside of a value). False if the table has none long enough.
fn fill_missing(
    work: &mut [u8],
    found: &Found,
    field: &str,
    touched: &mut BTreeSet<usize>,
    text: &str,
) -> bool {
    if found.value.is_some() {
        return false;
    }
    let Some(header) = found.lines.iter().map(|r| r.start).min() else {
        return false;
    };
    let entry = format!("{field} = \"\"");
    let mut pos = header;
    // From the line after the header to the next header.
    while let Some(newline) = work[pos..].iter().position(|&b| b == b'\n') {
        pos += newline + 1;
        let end = work[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(work.len(), |p| pos + p);
        let line = &work[pos..end];
        if line.trim_ascii_start().starts_with(b"[") {
            return false;
        }
        let number = line_of(text, pos);
        if touched.contains(&number) && line.iter().all(|&b| b == b' ') && line.len() >= entry.len()
        {
            work[pos..pos + entry.len()].copy_from_slice(entry.as_bytes());
            return true;
        }
    }
    false
}

/// Replaces the value at `span` with `""` and spaces (keeping newlines, so lines stay put).
/// False when the value is a single byte with no space before it to borrow.
fn empty_string(
    work: &mut [u8],
    mut span: Range<usize>,
    touched: &mut BTreeSet<usize>,
    text: &str,
) -> bool {
    if span.len() < 2 {
        if span.start == 0 || !matches!(work[span.start - 1], b' ' | b'\t') {
            return false;
        }
        span.start -= 1;
    }
    for (i, b) in work[span.clone()].iter_mut().enumerate() {
        if i < 2 {
            *b = b'"';
        } else if *b != b'\n' {
            *b = b' ';
        }
    }
    touched.extend(line_of(text, span.start)..=line_of(text, span.end));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_messages_give_the_field_and_valid_names() {
        let (f, v) = unknown_field("unknown field `helth`, expected one of `balance`, `health`")
            .expect("parsed");
        assert_eq!((f.as_str(), v), ("helth", vec!["balance", "health"]));
        let (f, v) = unknown_field("unknown field `x`, expected `id` or `addr`").expect("parsed");
        assert_eq!((f.as_str(), v), ("x", vec!["id", "addr"]));
        assert!(unknown_field("invalid type: integer `1`, expected a string").is_none());
    }

    #[test]
    fn key_paths_read_like_the_file() {
        let segs = ["pool", "app", "backend", "[1]", "addr"].map(String::from);
        assert_eq!(key_path(&segs), "pool.app.backend[1].addr");
        assert_eq!(key_path(&[]), "config");
    }
}
