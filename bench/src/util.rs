//! Small shared helpers: human durations, hex, free ports, and the fields of a `listening` log
//! line.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// Parses "500ms", "2s", "1.5s", "1m", "1h" (the same spelling tether's config uses).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration {s:?} has no unit (use ms, s, m or h)"))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("duration {s:?}: {num:?} is not a number"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        u => {
            return Err(format!(
                "duration {s:?}: unknown unit {u:?} (use ms, s, m or h)"
            ))
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("duration {s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Decodes lower- or upper-case hex; `None` on odd length or a non-hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// A port on 127.0.0.1 that was free a moment ago (for servers that cannot bind port 0 and
/// report it, such as redis-server). The tiny race with another process is accepted.
pub fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Splits a command line into words as a POSIX shell would for plain words, 'single' and
/// "double" quotes and backslash escapes (no expansion of any kind: nothing runs a shell).
pub fn split_command(s: &str) -> anyhow::Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                let next = chars.next().unwrap_or('\\');
                word.get_or_insert_with(String::new).push(next);
            }
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, '\\') => {
                let next = chars.next().unwrap_or('\\');
                word.get_or_insert_with(String::new).push(next);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    anyhow::ensure!(quote.is_none(), "unterminated quote in {s:?}");
    words.extend(word);
    Ok(words)
}

/// Finds `key=VALUE` in a log line (tracing's structured field syntax) and parses VALUE.
pub fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("{key}=");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"'))
}

/// Parses a listening line (`listening listener.name=web listener.addr=127.0.0.1:4000`).
pub fn parse_listening(line: &str) -> Option<(String, SocketAddr)> {
    if !line.contains("listening") {
        return None;
    }
    let name = log_field(line, "listener.name")?.to_string();
    let addr = log_field(line, "listener.addr")?.parse().ok()?;
    Some((name, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn commands_split_like_a_shell() {
        let w = split_command(r#"python3 "my app.py" --port {port} --name 'a b' x\ y ''"#).unwrap();
        assert_eq!(
            w,
            [
                "python3",
                "my app.py",
                "--port",
                "{port}",
                "--name",
                "a b",
                "x y",
                ""
            ]
        );
        assert!(split_command("a 'b").is_err());
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex(&hex(b"cart|a,b")).unwrap(), b"cart|a,b");
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }

    #[test]
    fn listening_lines_from_tether_and_backends() {
        let l = "2026-01-01T00:00:00Z  INFO tether: listening listener.name=web listener.addr=127.0.0.1:4000 pool=app";
        assert_eq!(
            parse_listening(l),
            Some(("web".into(), "127.0.0.1:4000".parse().unwrap()))
        );
        assert_eq!(parse_listening("INFO tether: reloaded"), None);
    }
}
