//! Problems found in a config file, each with its key path and line, collected so that every
//! one is reported at once.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use toml::Spanned;

/// Every problem found in a config file, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Collects problems with their key paths and lines.
pub(super) struct Problems<'a> {
    text: &'a str,
    /// (line, message); problems without a line sort last.
    pub(super) list: Vec<(usize, String)>,
    /// Warnings, in the order found.
    pub(super) warnings: Vec<String>,
}

impl<'a> Problems<'a> {
    /// No problems yet in `text`.
    pub(super) fn new(text: &'a str) -> Self {
        Self {
            text,
            list: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(super) fn add<T>(&mut self, key: &str, at: &Spanned<T>, msg: impl fmt::Display) {
        let line = line_of(self.text, at.span().start);
        self.list
            .push((line, format!("{key} (line {line}): {msg}")));
    }

    pub(super) fn warn<T>(&mut self, key: &str, at: &Spanned<T>, msg: impl fmt::Display) {
        let line = line_of(self.text, at.span().start);
        self.warnings.push(format!("{key} (line {line}): {msg}"));
    }

    pub(super) fn add_plain(&mut self, key: &str, msg: impl fmt::Display) {
        self.list.push((usize::MAX, format!("{key}: {msg}")));
    }

    pub(super) fn addr(&mut self, key: &str, raw: &Spanned<String>) -> Option<SocketAddr> {
        match raw.get_ref().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.add(
                    key,
                    raw,
                    format_args!("invalid socket address {:?}", raw.get_ref()),
                );
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        key: &str,
        raw: &Option<Spanned<String>>,
        default: Duration,
    ) -> Duration {
        let d = self.duration_or_zero(key, raw, default);
        match raw {
            Some(v) if d.is_zero() => {
                self.add(key, v, "must be greater than zero");
                default
            }
            _ => d,
        }
    }

    /// A duration where zero is allowed (it switches something off).
    pub(super) fn duration_or_zero(
        &mut self,
        key: &str,
        raw: &Option<Spanned<String>>,
        default: Duration,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        match humantime::parse_duration(raw.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                self.add(
                    key,
                    raw,
                    format_args!(
                        "invalid duration {:?} ({e}); use e.g. \"500ms\", \"2s\", \"1m\"",
                        raw.get_ref()
                    ),
                );
                default
            }
        }
    }
}
