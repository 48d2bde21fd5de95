//! `[app]`: the user's own service as the lab's backends: the command started once per
//! backend (with placeholders), its readiness path, its environment and its variants.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::Dur;
use super::placeholder;

/// Placeholders an app command, variant argument or environment value may use.
pub const APP_PLACEHOLDERS: &[&str] = &["port", "id", "index", "redis_url", "data_dir"];

/// The user's service, started once per backend id.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// Program and arguments; `{port}` is where the process must listen on 127.0.0.1.
    pub command: Vec<String>,
    /// Polled with GET until it answers 2xx before the process counts as started.
    #[serde(default = "default_ready")]
    pub ready: String,
    /// How long `ready` may take to answer 2xx.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout: Dur,
    /// Extra environment, placeholders allowed in values.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: the scenario file's directory; for `verify`, the current
    /// directory).
    pub dir: Option<PathBuf>,
    /// The matrix's second axis: the same command with extra arguments per variant.
    #[serde(default, rename = "variant")]
    pub variants: Vec<Variant>,
}

/// One variant of the app: a name for the report and arguments appended to the command.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Shown as the cell's second coordinate ("memory", "redis").
    pub name: String,
    /// Appended to `command`.
    #[serde(default)]
    pub args: Vec<String>,
}

fn default_ready() -> String {
    "/healthz".into()
}

fn default_ready_timeout() -> Dur {
    Dur(Duration::from_secs(10))
}

impl AppSpec {
    /// The variants to run: the declared ones, or one named "default" without extra args.
    pub fn variants(&self) -> Vec<Variant> {
        if self.variants.is_empty() {
            vec![Variant {
                name: "default".into(),
                args: Vec::new(),
            }]
        } else {
            self.variants.clone()
        }
    }

    /// Whether any variant needs the lab's redis-server (see `variant_uses_redis`).
    pub fn uses_redis(&self) -> bool {
        self.variants().iter().any(|v| self.variant_uses_redis(v))
    }

    /// Whether the command, the environment or `v`'s arguments use `{redis_url}`: the lab then
    /// starts a redis-server for that variant's cells.
    pub fn variant_uses_redis(&self, v: &Variant) -> bool {
        self.command
            .iter()
            .chain(self.env.values())
            .chain(&v.args)
            .any(|s| placeholder::uses(s, "redis_url"))
    }

    /// Every string that may hold placeholders, with its key path for messages.
    fn strings(&self) -> impl Iterator<Item = (String, &String)> {
        let cmd = self
            .command
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("app.command[{i}]"), s));
        let env = self.env.iter().map(|(k, v)| (format!("app.env.{k}"), v));
        let vars = self.variants.iter().enumerate().flat_map(|(i, v)| {
            v.args
                .iter()
                .enumerate()
                .map(move |(j, a)| (format!("app.variant[{i}].args[{j}]"), a))
        });
        cmd.chain(env).chain(vars)
    }

    /// Refuses what cannot run; the error names the key.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.command.first().is_some_and(|c| !c.is_empty()),
            "app.command: empty (give the program and its arguments, with {{port}})"
        );
        for (key, s) in self.strings() {
            placeholder::check(s, APP_PLACEHOLDERS, &key)?;
        }
        anyhow::ensure!(
            self.strings().any(|(_, s)| placeholder::uses(s, "port")),
            "app.command: no {{port}} placeholder: the lab must tell each process where to listen"
        );
        anyhow::ensure!(
            self.ready.starts_with('/'),
            "app.ready: {:?} must be a path starting with /",
            self.ready
        );
        let mut names: Vec<&str> = self.variants.iter().map(|v| v.name.as_str()).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        anyhow::ensure!(before == names.len(), "app.variant: names must be unique");
        anyhow::ensure!(
            !names.iter().any(|n| n.is_empty() || n.contains(['/', ','])),
            "app.variant.name: names must be non-empty, without / or ,"
        );
        Ok(())
    }
}
