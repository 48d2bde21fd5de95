//! `--quick`: a scenario shrunk for CI by its `[quick]` table.

use super::duration::Dur;
use super::model::Scenario;

impl Scenario {
    /// The scenario as `--quick` runs it: shorter, fewer users, events scaled in time.
    pub fn quick(mut self) -> Scenario {
        if let Some(d) = self.quick.duration {
            let scale = d.0.as_secs_f64() / self.duration.0.as_secs_f64();
            for e in &mut self.events {
                e.at = Dur(e.at.0.mul_f64(scale));
            }
            if let Some(b) = &mut self.bucket {
                b.0 = b.0.mul_f64(scale);
            }
            self.duration = d;
        }
        if let Some(u) = self.quick.users {
            self.load.users = u;
        }
        if let Some(t) = self.quick.think {
            self.load.think = t;
        }
        if let Some(a) = self.quick.affinity.clone() {
            self.matrix.affinity = a;
        }
        if let Some(s) = self.quick.sessions.clone() {
            self.matrix.sessions = s;
        }
        if let Some(keep) = self.quick.variants.clone() {
            if let Some(app) = &mut self.app {
                app.variants.retain(|v| keep.contains(&v.name));
            }
            self.shop.variants.retain(|v| keep.contains(&v.name));
        }
        self
    }
}
