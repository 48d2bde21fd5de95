//! Scale-in: what a backend removed mid-run (from DNS or through the admin API) still served
//! while it drained, measured on the requests that answered.

use serde::{Deserialize, Serialize};

use crate::load::Sample;

/// How a backend removed mid-run drained.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ScaleIn {
    /// The removed backend.
    pub backend: String,
    /// When it was removed (s).
    pub removed_at_s: f64,
    /// Requests intended after the removal that it answered: clients pinned to it while it
    /// drained, and requests already on their way.
    pub answered_after: u64,
    /// Seconds from the removal to the end of the last response it gave (`null`: none after).
    pub last_answer_s: Option<f64>,
}

/// The drain of `id`, removed at `at` seconds, from the cell's samples.
pub fn scale_in(samples: &[Sample], id: &str, at: f64) -> ScaleIn {
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|x| x.at.as_secs_f64() >= at && x.backend.as_deref() == Some(id))
        .collect();
    let last = after
        .iter()
        .map(|x| x.finished.as_secs_f64() - at)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    ScaleIn {
        backend: id.to_string(),
        removed_at_s: at,
        answered_after: after.len() as u64,
        last_answer_s: last,
    }
}

impl ScaleIn {
    /// One sentence for the terminal and report.md.
    pub fn describe(&self) -> String {
        let last = self
            .last_answer_s
            .map_or("never answered after it".into(), |s| {
                format!("its last response ended {s:.1}s after it")
            });
        format!(
            "{} removed at {:.1}s answered {} request(s) intended after its removal (pinned clients while it drained, requests already sent); {last}",
            self.backend, self.removed_at_s, self.answered_after
        )
    }
}
