//! `tether-bench verify`: one question for CI without a scenario file: does this service keep
//! hidden local state? Three instances of the user's command behind tether, then in turn
//! anti-affinity (`spread`), a SIGKILL of one instance and a restart of another, with no
//! stickiness; the first lost session (or excess of errors) is named with its step, its
//! instances and its kind.

mod verdict;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use self::verdict::{judge, junit, PhaseResult};
use crate::lab::{Lab, Launcher, Stop};
use crate::redis_server::RedisServer;
use crate::report::CellReport;
use crate::scenario::{
    check_flow, load_flow, Action, AppSpec, Dur, EventSpec, FlowStep, Scenario, Variant,
};
use crate::util::{parse_duration, split_command};

/// Options of `tether-bench verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The command that starts one instance, with {port} (also {id} {index} {redis_url}
    /// {data_dir}); split like a shell would, without running one.
    #[arg(long)]
    pub app: String,
    /// A flow file: [[flow]] steps (method, path, body, headers, expect_status, write,
    /// expect_writes).
    #[arg(long)]
    pub flow: PathBuf,
    /// Also write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Extra environment for the app, K=V (repeatable; placeholders allowed in V).
    #[arg(long, value_name = "K=V")]
    pub env: Vec<String>,
    /// Readiness path, polled until 2xx.
    #[arg(long, default_value = "/healthz")]
    pub ready: String,
    /// How long each phase's load runs.
    #[arg(long, default_value = "4s")]
    pub duration: String,
    /// Concurrent virtual users.
    #[arg(long, default_value_t = 10)]
    pub users: usize,
    /// Logs directory.
    #[arg(long, default_value = "lab-verify")]
    pub out: PathBuf,
    /// The tether binary (default: $TETHER_BIN, else `tether` next to this executable).
    #[arg(long, value_name = "PATH")]
    pub tether: Option<PathBuf>,
}

/// One phase of `verify`.
struct Phase {
    name: &'static str,
    what: &'static str,
    affinity: &'static str,
    /// What happens 40% into the phase, to which backend.
    event: Option<(Action, &'static str)>,
}

/// The phases, in order: the cheapest, most certain exposure of local state first.
const PHASES: &[Phase] = &[
    Phase {
        name: "anti-affinity",
        what: "affinity = spread: every request to another instance than the last",
        affinity: "spread",
        event: None,
    },
    Phase {
        name: "kill",
        what: "SIGKILL app-2 mid-run, no stickiness",
        affinity: "none",
        event: Some((Action::Kill, "app-2")),
    },
    Phase {
        name: "restart",
        what: "restart app-3 mid-run: a new process on its port, no stickiness",
        affinity: "none",
        event: Some((Action::Restart, "app-3")),
    },
];

/// Runs `verify`: `Ok(true)` when every session survived every phase, `Ok(false)` when one
/// did not (the first failure is printed), `Err` for bad input or a lab that could not run.
pub fn run(args: &VerifyArgs, tether: &Path) -> anyhow::Result<bool> {
    let flow = load_flow(&args.flow).context("--flow")?;
    check_flow(&flow).context("--flow")?;
    let sc = scenario(args, flow)?;
    anyhow::ensure!(
        tether.is_file(),
        "tether binary not found at {}: run `cargo build --workspace` first (or pass --tether PATH / set TETHER_BIN)",
        tether.display()
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // On Ctrl-C the future is dropped, and with it every child process (kill on drop).
    let phases = rt.block_on(async {
        tokio::select! {
            r = phases(args, &sc, tether) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; child processes stopped")),
        }
    })?;
    if let Some(j) = &args.junit {
        std::fs::write(j, junit(&args.app, &phases))
            .with_context(|| format!("cannot write {}", j.display()))?;
    }
    match phases.iter().find(|p| p.failure.is_some()) {
        None => {
            println!("no hidden local state found: every session survived anti-affinity, a SIGKILL and a restart");
            Ok(true)
        }
        Some(p) => {
            println!(
                "HIDDEN LOCAL STATE: phase {} ({}) failed at\n  {}",
                p.name,
                p.what,
                p.failure.as_deref().unwrap_or("")
            );
            Ok(false)
        }
    }
}

/// The scenario every phase shares: three instances of the app, the flow, the load.
fn scenario(args: &VerifyArgs, flow: Vec<FlowStep>) -> anyhow::Result<Scenario> {
    let command = split_command(&args.app).context("--app")?;
    let mut env = BTreeMap::new();
    for kv in &args.env {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--env {kv:?}: expected K=V"))?;
        env.insert(k.to_string(), v.to_string());
    }
    let app = AppSpec {
        command,
        ready: args.ready.clone(),
        ready_timeout: Dur(Duration::from_secs(10)),
        env,
        dir: Some(std::env::current_dir()?),
        variants: Vec::new(),
    };
    app.check().map_err(|e| anyhow::anyhow!("--app: {e:#}"))?;
    let mut sc: Scenario = toml::from_str("name = \"verify\"").expect("a minimal scenario");
    sc.duration =
        Dur(parse_duration(&args.duration).map_err(|e| anyhow::anyhow!("--duration: {e}"))?);
    sc.app = Some(app);
    sc.flow = flow;
    sc.topology.backends = 3;
    sc.topology.cookie = Some(toml::Value::Table(toml::toml! {
        keys = ["tether-verify-cookie-key-0123456789abcdef"]
    }));
    sc.load.users = args.users.max(1);
    sc.load.think = Dur(Duration::from_millis(200));
    Ok(sc)
}

async fn phases(
    args: &VerifyArgs,
    base: &Scenario,
    tether: &Path,
) -> anyhow::Result<Vec<PhaseResult>> {
    let app = base.app.clone().expect("verify scenarios have an app");
    let redis = if app.uses_redis() {
        Some(
            RedisServer::start(&args.out)
                .await
                .map_err(|why| anyhow::anyhow!("--app uses {{redis_url}}: {why}"))?,
        )
    } else {
        None
    };
    let variant = Variant {
        name: "default".into(),
        args: Vec::new(),
    };
    eprintln!(
        "verify: {} ({} instances behind tether, flow of {} steps, {:?} per phase)",
        args.app,
        base.topology.backends,
        base.flow.len(),
        base.duration.0
    );
    let mut out = Vec::new();
    let mut result = Ok(());
    for (i, phase) in PHASES.iter().enumerate() {
        let (name, what, affinity) = (phase.name, phase.what, phase.affinity);
        let mut sc = base.clone();
        sc.name = format!("verify-{name}");
        sc.matrix.affinity = vec![affinity.to_string()];
        if let Some((action, backend)) = phase.event {
            sc.events.push(EventSpec {
                at: Dur(sc.duration.0.mul_f64(0.4)),
                action,
                backend: backend.to_string(),
                delay_ms: None,
                error_rate: None,
                hang: None,
                weight: None,
            });
        }
        if let Some(r) = &redis {
            r.client.flushall().await.context("redis FLUSHALL")?;
        }
        let dir = args.out.join(name);
        std::fs::create_dir_all(&dir)?;
        let launcher = Launcher::App {
            spec: app.clone(),
            variant: variant.clone(),
        };
        let redis_url = redis.as_ref().map(|r| r.url.clone());
        let mut lab = Lab::new(&sc, affinity, launcher, dir, tether, redis_url);
        let mut cell = CellReport::new(affinity, "default", &sc.topology.balance);
        let label = format!("[{}/{}] {name}", i + 1, PHASES.len());
        let ran = lab.run(&label, &mut cell, 0).await;
        lab.shutdown().await;
        match ran {
            Ok(load) => {
                let p = judge(name, what, &sc.flow, &cell, &load);
                println!("{}", p.summary);
                let failed = p.failure.is_some();
                out.push(p);
                // The first failure is the answer; later phases would only repeat it.
                if failed {
                    break;
                }
            }
            Err(Stop::Input(why) | Stop::Broken(why) | Stop::Skip(why)) => {
                result = Err(anyhow::anyhow!("phase {name}: {why}"));
                break;
            }
        }
    }
    if let Some(mut r) = redis {
        r.proc.stop(Duration::from_secs(2)).await;
    }
    result.map(|()| out)
}
