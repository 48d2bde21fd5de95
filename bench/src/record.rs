//! The raw record: every request of a cell as one JSON line in `requests.jsonl` (who, which
//! session and step, intended/sent/finished times, status, backend, outcome), written by `run`
//! and read back by `recompute`, losslessly: every figure of the report derives from it.

use std::io::{BufRead as _, BufWriter, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::load::{LoadResult, Outcome, Replay, Sample, WS_KINDS};

/// The file name of a cell's record, inside `cells/<slug>/` of the report directory.
pub const FILE: &str = "requests.jsonl";

/// Beside it, in revocation cells: one line per logout and its replay (`load::Replay`).
pub const REPLAYS: &str = "replays.jsonl";

/// The reasons a session is lost, as `Sample::lost` spells them.
const LOSS_REASONS: [&str; 2] = ["session not found", "write missing"];

/// One request, one line. Times are microseconds since the cell's load began.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Line {
    /// The virtual user's identity.
    pub user: u32,
    /// The identity's session (its n-th login attempt, from 0).
    pub session: u32,
    /// The flow step (0 starts a session).
    pub step: usize,
    /// Intended send time.
    pub intended_us: u64,
    /// Actual send time.
    pub sent_us: u64,
    /// End of the response body, or of the failure.
    pub finished_us: u64,
    /// HTTP status, if a response came back.
    pub status: Option<u16>,
    /// The backend that answered.
    pub backend: Option<String>,
    /// `ok`, `no_session` (an unexpected status below 500) or `error`.
    pub outcome: String,
    /// The error's kind (`502`, `timeout`, `connect: ConnectionRefused`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// This request showed its session lost: `session not found` or `write missing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<String>,
    /// An action's first request, sent on time: how late the generator's timer fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_us: Option<u64>,
    /// An action's first request, sent late behind the user's previous (slow) request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
    /// On a WebSocket step: `open`, `echo` or `drop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws: Option<String>,
    /// A request of a step that writes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub write: bool,
    /// A read that came back without this many of the session's writes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missing: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

impl Line {
    /// The line of one sample.
    pub fn of(x: &Sample) -> Line {
        let (outcome, error) = match &x.outcome {
            Outcome::Ok => ("ok", None),
            Outcome::NoSession => ("no_session", None),
            Outcome::Error(kind) => ("error", Some(kind.clone())),
        };
        Line {
            user: x.identity,
            session: x.session,
            step: x.step,
            intended_us: us(x.at),
            sent_us: us(x.sent),
            finished_us: us(x.finished),
            status: x.status,
            backend: x.backend.as_deref().map(str::to_string),
            outcome: outcome.into(),
            error,
            lost: x.lost.map(str::to_string),
            lag_us: x.lag.map(us),
            late: x.late,
            ws: x.ws.map(str::to_string),
            write: x.write,
            missing: x.missing,
        }
    }

    /// The sample this line records.
    pub fn sample(&self) -> anyhow::Result<Sample> {
        let t = Duration::from_micros;
        let outcome = match self.outcome.as_str() {
            "ok" => Outcome::Ok,
            "no_session" => Outcome::NoSession,
            "error" => Outcome::Error(self.error.clone().unwrap_or_default()),
            o => anyhow::bail!("unknown outcome {o:?}"),
        };
        let lost = match &self.lost {
            None => None,
            Some(why) => Some(
                *LOSS_REASONS
                    .iter()
                    .find(|r| **r == why.as_str())
                    .with_context(|| format!("unknown loss reason {why:?}"))?,
            ),
        };
        let ws = match &self.ws {
            None => None,
            Some(k) => Some(
                *WS_KINDS
                    .iter()
                    .find(|w| **w == k.as_str())
                    .with_context(|| format!("unknown ws kind {k:?}"))?,
            ),
        };
        Ok(Sample {
            ws,
            step: self.step,
            session: self.session,
            outcome,
            status: self.status,
            backend: self.backend.as_deref().map(Arc::from),
            identity: self.user,
            lost,
            lag: self.lag_us.map(t),
            late: self.late,
            write: self.write,
            missing: self.missing,
            ..Sample::timed(t(self.intended_us), t(self.sent_us), t(self.finished_us))
        })
    }
}

/// Writes every sample of `r` to `path`, one line each.
pub fn write(path: &Path, r: &LoadResult) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::new(f);
    for x in &r.samples {
        serde_json::to_writer(&mut w, &Line::of(x))?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    if !r.replays.is_empty() {
        let mut text = String::new();
        for x in &r.replays {
            text.push_str(&serde_json::to_string(x)?);
            text.push('\n');
        }
        std::fs::write(path.with_file_name(REPLAYS), text)?;
    }
    Ok(())
}

/// Reads a record back into the samples it was written from (losses' backends are not
/// recorded: nothing in the report needs them).
pub fn read(path: &Path) -> anyhow::Result<LoadResult> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut r = LoadResult::default();
    // Bounded by the file's length.
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        let parsed: Line =
            serde_json::from_str(&line).with_context(|| format!("{}:{}", path.display(), n + 1))?;
        r.samples.push(
            parsed
                .sample()
                .with_context(|| format!("{}:{}", path.display(), n + 1))?,
        );
    }
    let replays = path.with_file_name(REPLAYS);
    if replays.is_file() {
        // Bounded by the file's length.
        for (n, line) in std::fs::read_to_string(&replays)?.lines().enumerate() {
            let x: Replay = serde_json::from_str(line)
                .with_context(|| format!("{}:{}", replays.display(), n + 1))?;
            r.replays.push(x);
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_round_trips_its_sample() {
        let mut x = Sample::timed(
            Duration::from_nanos(1_234_567),
            Duration::from_nanos(1_300_999),
            Duration::from_nanos(9_000_001),
        );
        x.identity = 7;
        x.session = 2;
        x.step = 2;
        x.outcome = Outcome::Error("timeout".into());
        x.lost = Some("write missing");
        x.lag = Some(Duration::from_micros(40));
        x.write = true;
        x.missing = 3;
        let line = Line::of(&x);
        let text = serde_json::to_string(&line).unwrap();
        let back: Line = serde_json::from_str(&text).unwrap();
        assert_eq!(back, line);
        let y = back.sample().unwrap();
        assert_eq!((y.at, y.latency, y.service), (x.at, x.latency, x.service));
        assert_eq!((y.outcome, y.lost, y.lag), (x.outcome, x.lost, x.lag));
        assert_eq!((y.write, y.missing), (true, 3));
    }
}
