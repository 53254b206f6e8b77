//! The `payhost` command line.

use crate::builder::{self, BuildOptions};
use crate::contract::CallContext;
use crate::egress::EgressPolicy;
use crate::logging::LogFormat;
use crate::merchant::{FieldValue, MerchantConfig};
use crate::runtime::{Operation, Output, Runtime, RuntimeConfig};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "payhost",
    version,
    about = "A payment front whose provider integrations are sandboxed WebAssembly components."
)]
pub struct Cli {
    /// How log lines are written to standard error: `text`, or `json` (one
    /// object per line). For `serve` the default is `[log] format`.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build, inspect and try out adapters.
    #[command(subcommand)]
    Adapter(AdapterCommand),
    /// Walk one payment from creation to refund against a simulated WeChat Pay.
    Demo {
        /// The provider to walk it through (its simulator and adapter).
        #[arg(long, default_value = "wechat-v2")]
        provider: crate::demo::Provider,
        /// What to walk: a payment, or a payout (`--provider wechat-v3`).
        #[arg(long, default_value = "payment")]
        flow: crate::demo::Flow,
    },
    /// Run the payment front: the HTTP API, webhook delivery and the reconciler.
    Serve {
        /// The TOML file (default: $PAYHOST_CONFIG, else the embedded default).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        env: EnvFileArg,
    },
    /// Stand in for a merchant's provider: the WeChat Pay v2 simulator on
    /// the loopback address of its `base_url`, with its credentials, and
    /// payers who pay every order.
    Simulator {
        /// The TOML file (default: $PAYHOST_CONFIG, else the embedded default).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The merchant (default: the only one using `wechat-v2`).
        #[arg(long)]
        merchant: Option<String>,
        /// How long after an order is created its payer pays.
        #[arg(long, default_value_t = 2000)]
        pay_after_ms: u64,
        /// The provider to simulate: WeChat Pay v2, or Acme Pay (the
        /// fictitious provider of `payhost adapter new`).
        #[arg(long, value_enum, default_value = "wechat-v2")]
        provider: SimulatedProvider,
        #[command(flatten)]
        env: EnvFileArg,
    },
    /// Check a configuration file, or hash an API key for one.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load a configuration (with PAYHOST_* overrides), resolve its secret
    /// references and validate every merchant against its adapter; print a
    /// summary without secrets.
    Check {
        /// The TOML file (default: $PAYHOST_CONFIG, else the embedded default).
        file: Option<PathBuf>,
        #[command(flatten)]
        env: EnvFileArg,
    },
    /// Write a starter configuration: one merchant with a fresh API key
    /// (stored hashed), admin token and webhook secret (in 0600 files next
    /// to it), the simulator as its provider. Never overwrites.
    Init {
        /// Where to write it.
        #[arg(default_value = "payhost.toml")]
        path: PathBuf,
        /// `[server] bind`.
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: std::net::SocketAddr,
        /// The merchant's `base_url`, where `payhost simulator` will listen.
        #[arg(long, default_value = "http://127.0.0.1:9100")]
        simulator_url: String,
    },
    /// Print the `sha256:<hex>` form of an API key for `api_keys`.
    HashKey {
        /// The key; `-` reads it from standard input (keeps it out of the
        /// shell history).
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdapterCommand {
    /// Write a new adapter crate for a fictitious provider (Acme Pay) to
    /// start from: every operation, signatures, tests, a README to fill in.
    New {
        /// The adapter's name: its crate and its slot (`acme-pay`).
        name: String,
        #[arg(long, value_enum, default_value = "rust")]
        lang: crate::scaffold::Lang,
        /// Where the crate's directory goes (default: `adapters/` in a
        /// payhost checkout, where it joins the workspace; else the
        /// current directory, where it stands alone).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Compile adapter crates into components.
    Build {
        /// Adapter crates, or directories whose subdirectories are adapter
        /// crates (relative to the current directory, else to the workspace).
        #[arg(default_value = "adapters")]
        dirs: Vec<PathBuf>,
        /// Output directory (default: <workspace>/target/components).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where cargo compiles (default: <workspace>/target/wasm).
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// Where JavaScript adapters' toolchains and kept builds go
        /// (default: <workspace>/target/js).
        #[arg(long)]
        js_dir: Option<PathBuf>,
    },
    /// Print an adapter's self-description as JSON, with the egress hosts
    /// the operator's configuration lets it reach (`effective_egress_hosts`).
    Inspect {
        file: PathBuf,
        /// The TOML file whose `[adapters.<name>] egress` applies (default:
        /// $PAYHOST_CONFIG, else the embedded default).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        env: EnvFileArg,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Run one operation of an adapter against the real (or simulated) provider.
    Call {
        file: PathBuf,
        operation: OperationName,
        /// Flat JSON object: field name -> value. Values of the fields named
        /// by --secret are secrets, best given as references (`env:NAME`,
        /// `file:PATH`); every other value is plain text.
        #[arg(long)]
        config: PathBuf,
        /// A field of --config that is a secret (repeat for each). Which
        /// values are secret is the operator's choice, never the adapter's:
        /// a field the adapter's schema does not mark secret is refused.
        #[arg(long = "secret", value_name = "FIELD")]
        secrets: Vec<String>,
        /// The operation's request as JSON.
        #[arg(long)]
        input: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:8080/v1/notify/cli/cli")]
        notify_url: String,
        /// Allow requests to loopback and private addresses (local simulators).
        #[arg(long)]
        allow_private: bool,
        /// Allow requests to this host (any port). The adapter's declared
        /// hosts are reachable only when allowed here; the hosts of url
        /// fields in --config always are.
        #[arg(long = "allow-host")]
        allow_hosts: Vec<String>,
        /// Keep the call's exchanges, secrets masked, in DIR/recording.json
        /// for `adapter replay`.
        #[arg(long, value_name = "DIR")]
        record: Option<PathBuf>,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Run a component offline against a recording of `adapter call
    /// --record`, and say whether its outcome is still the recorded one.
    /// Exits 1 when it is not.
    Replay {
        file: PathBuf,
        /// The recording's directory.
        dir: PathBuf,
        /// The merchant configuration (flat JSON, as for `adapter call`);
        /// the recording holds no secrets.
        #[arg(long)]
        config: PathBuf,
        #[arg(long = "secret", value_name = "FIELD")]
        secrets: Vec<String>,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Check a component offline before it serves anyone: its `describe`,
    /// determinism, what it does with garbage provider answers and forged
    /// notifications, and that no secret byte leaks. Exits 1 on a failure.
    Check {
        file: PathBuf,
        /// A merchant configuration as for `adapter call` (flat JSON); by
        /// default one is made from the schema, with canary secrets.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A field of --config that is a secret (repeat for each).
        #[arg(long = "secret", value_name = "FIELD")]
        secrets: Vec<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Upload a component to a running payhost (`PUT /admin/adapters/{name}`):
    /// it is validated there and, if accepted, active at once.
    Push(PushArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct PushArgs {
    /// The component to upload.
    pub file: PathBuf,
    /// The payhost to upload to, e.g. `https://pay.example.com`.
    #[arg(long)]
    pub to: String,
    /// The adapter slot (default: the file's stem, `wechat-v2` for
    /// `wechat-v2.wasm`).
    #[arg(long)]
    pub name: Option<String>,
    /// The environment variable holding the admin token (never pass the
    /// token itself on the command line).
    #[arg(long, default_value = "PAYHOST_ADMIN_TOKEN")]
    pub token_env: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct EnvFileArg {
    /// Read `NAME=value` lines into the environment first (for `env:`
    /// references and `PAYHOST_*` overrides); variables already set win.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
}

impl EnvFileArg {
    /// Loads the file, before any thread is started.
    fn load(&self) -> Result<()> {
        if let Some(path) = &self.env_file {
            dotenvy::from_path(path)
                .with_context(|| format!("reading the env file {}", path.display()))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeArgs {
    /// Keep compiled components here across runs.
    #[arg(long, env = "PAYHOST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// What `payhost simulator` stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimulatedProvider {
    WechatV2,
    AcmePay,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OperationName {
    UnifiedOrder,
    Query,
    Close,
    Refund,
    RefundQuery,
    ParseNotify,
    /// Contract 0.5: input is a payout-request.
    Payout,
    /// Contract 0.5: input is a payout-query-request.
    PayoutQuery,
    /// Contract 0.6: input is a contract-sign-request.
    ContractSign,
    /// Contract 0.6: input is a contract-query-request.
    ContractQuery,
    /// Contract 0.6: input is a contract-terminate-request.
    ContractTerminate,
    /// Contract 0.6: input is a deduction-request.
    Deduct,
    /// Contract 0.6: input is a deduction-query-request.
    DeductionQuery,
}

/// Runs a parsed command line; the exit code reports failure.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let log_format = cli.log_format;
    let init_logs = |format: Option<LogFormat>, filter| {
        crate::logging::init(log_format.or(format).unwrap_or_default(), filter)
    };
    match cli.command {
        Command::Serve { config, env } => {
            env.load()?;
            let cfg = crate::config::Config::load(config.as_deref())?;
            init_logs(Some(cfg.log.format), crate::logging::SERVE_FILTER);
            tokio::runtime::Runtime::new()?.block_on(crate::server::serve(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulator {
            config,
            merchant,
            pay_after_ms,
            provider,
            env,
        } => {
            env.load()?;
            init_logs(None, crate::logging::COMMAND_FILTER);
            let cfg = crate::config::Config::load(config.as_deref())?;
            let pay_after = Duration::from_millis(pay_after_ms);
            let tokio = tokio::runtime::Runtime::new()?;
            match provider {
                SimulatedProvider::WechatV2 => {
                    tokio.block_on(simulator(&cfg, merchant.as_deref(), pay_after))?
                }
                SimulatedProvider::AcmePay => {
                    tokio.block_on(acme_simulator(&cfg, merchant.as_deref(), pay_after))?
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        command => {
            let filter = match command {
                Command::Demo { .. } => crate::logging::DEMO_FILTER,
                _ => crate::logging::COMMAND_FILTER,
            };
            init_logs(None, filter);
            match command {
                Command::Adapter(cmd) => adapter(cmd),
                Command::Demo { provider, flow } => {
                    tokio::runtime::Runtime::new()?.block_on(crate::demo::run(provider, flow))?;
                    Ok(ExitCode::SUCCESS)
                }
                Command::Config(cmd) => config(cmd),
                Command::Serve { .. } | Command::Simulator { .. } => unreachable!("handled above"),
            }
        }
    }
}

/// `payhost simulator`: runs until interrupted, printing each payment.
async fn simulator(
    cfg: &crate::config::Config,
    merchant: Option<&str>,
    pay_after: Duration,
) -> Result<()> {
    let merchant = crate::simulator::pick_merchant(cfg, merchant)?;
    let addr = crate::simulator::listen_addr(merchant)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} (merchant `{}`'s base_url)", merchant.id))?;
    let provider = crate::simulator::start(merchant, listener, pay_after, |no, fee| {
        println!("paid {no} ({fee} minor units); notification sent");
    })
    .await?;
    println!(
        "WeChat Pay v2 simulator for merchant `{}` on {}; payers pay each order {} ms after it is created",
        provider.merchant,
        provider.base_url(),
        pay_after.as_millis()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// `payhost simulator --provider acme-pay`: runs until interrupted.
async fn acme_simulator(
    cfg: &crate::config::Config,
    merchant: Option<&str>,
    pay_after: Duration,
) -> Result<()> {
    let merchant = crate::simulator::pick_acme_merchant(cfg, merchant)?;
    let addr = crate::simulator::listen_addr(merchant)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} (merchant `{}`'s base_url)", merchant.id))?;
    let sim = crate::simulator::start_acme_pay(merchant, listener, pay_after)?;
    println!(
        "Acme Pay simulator for merchant `{}` on {}; each order is paid and notified {} ms after it is created",
        merchant.id,
        sim.base_url(),
        pay_after.as_millis()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}

fn config(cmd: ConfigCommand) -> Result<ExitCode> {
    match cmd {
        ConfigCommand::HashKey { key } => {
            let key = if key == "-" {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_string()
            } else {
                key
            };
            if key.is_empty() {
                bail!("the key is empty");
            }
            println!("{}", crate::config::api_key_hash(&key));
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Check { file, env } => {
            env.load()?;
            let cfg = match crate::config::Config::load(file.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: invalid configuration: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let report = crate::config::check_adapters(&cfg)?;
            for line in &report.adapters {
                println!("{line}");
            }
            print!("{cfg}");
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            if report.problems.is_empty() {
                println!("configuration OK");
                Ok(ExitCode::SUCCESS)
            } else {
                for f in &report.problems {
                    eprintln!("error: {f}");
                }
                eprintln!(
                    "error: {} problem(s) in the configuration",
                    report.problems.len()
                );
                Ok(ExitCode::FAILURE)
            }
        }
        ConfigCommand::Init {
            path,
            bind,
            simulator_url,
        } => {
            let cwd = std::env::current_dir()?;
            // In a checkout, where `payhost adapter build` puts components.
            let adapters_dir = builder::find_workspace(&cwd)
                .map(|ws| ws.join("target").join("components"))
                .unwrap_or_else(|| "target/components".into());
            let s = crate::config::write_starter(
                &path,
                &crate::config::StarterOptions {
                    bind,
                    simulator_url,
                    adapters_dir,
                },
            )?;
            print_starter(&s);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The credentials of a fresh starter configuration, shown this once.
fn print_starter(s: &crate::config::Starter) {
    use secrecy::ExposeSecret;
    let config = s.config.display();
    let secrets = s.secrets_dir.display();
    println!("wrote {config} and {secrets}/ (admin_token, webhook_secret, wechat_api_key: 0600)");
    println!();
    println!(
        "merchant `{}` API key (shown only now; the file holds its hash):",
        crate::config::STARTER_MERCHANT
    );
    println!("    {}", s.api_key.expose_secret());
    println!("admin token (for /admin, also in {secrets}/admin_token):");
    println!("    {}", s.admin_token.expose_secret());
    println!("webhook secret (to verify payhost's webhooks, also in {secrets}/webhook_secret):");
    println!("    {}", s.webhook_secret.expose_secret());
    println!();
    println!("next:");
    println!("    payhost adapter build                 # if target/components is empty");
    println!("    payhost config check {config}");
    println!("    payhost simulator --config {config} &");
    println!("    payhost serve --config {config}");
}

fn adapter(cmd: AdapterCommand) -> Result<ExitCode> {
    match cmd {
        AdapterCommand::Push(args) => push(args),
        AdapterCommand::Replay {
            file,
            dir,
            config,
            secrets,
            runtime,
        } => {
            let rt = Runtime::new(RuntimeConfig {
                cache_dir: runtime.cache_dir,
                max_instances: 2,
                ..Default::default()
            })?;
            let adapter = rt.load(&read(&file)?)?;
            let merchant = merchant_from_json(&read(&config)?, &secrets)?;
            let recording = crate::recording::load(&dir)?;
            let tokio = tokio::runtime::Runtime::new()?;
            let replay = tokio.block_on(crate::recording::replay(
                &rt, &adapter, &merchant, &recording,
            ))?;
            println!("{}", serde_json::to_string_pretty(&replay)?);
            if !replay.same_outcome {
                eprintln!(
                    "outcome changed; recorded:\n{}",
                    serde_json::to_string_pretty(&recording.outcome)?
                );
            }
            Ok(if replay.same_outcome {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AdapterCommand::Check {
            file,
            config,
            secrets,
            json,
            runtime,
        } => {
            let rt = Runtime::new(RuntimeConfig {
                cache_dir: runtime.cache_dir,
                max_instances: 4,
                ..Default::default()
            })?;
            let adapter = match rt.load(&read(&file)?) {
                Ok(a) => a,
                Err(e) => {
                    // Loading is the first check: imports, exports, describe.
                    println!("load  fail  {e}\nconformance: 1 check(s) failed");
                    return Ok(ExitCode::from(1));
                }
            };
            let merchant = match config {
                Some(path) => merchant_from_json(&read(&path)?, &secrets)?,
                None => crate::conformance::synthetic_config(&adapter.info),
            };
            let tokio = tokio::runtime::Runtime::new()?;
            let report = tokio.block_on(crate::conformance::check(&rt, &adapter, &merchant));
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AdapterCommand::New { name, lang, dir } => {
            let cwd = std::env::current_dir()?;
            let dir = dir.unwrap_or_else(|| crate::scaffold::default_dir(&cwd));
            let created = crate::scaffold::create(&name, lang, &dir)?;
            print!("{}", created.summary(&name));
            Ok(ExitCode::SUCCESS)
        }
        AdapterCommand::Build {
            dirs,
            out,
            target_dir,
            js_dir,
        } => {
            let cwd = std::env::current_dir()?;
            let dirs: Vec<PathBuf> = dirs
                .into_iter()
                .map(|d| match cwd.join(&d) {
                    // Without `.` parts: the paths are printed.
                    here if d.is_relative() && here.exists() => here.components().collect(),
                    _ => d,
                })
                .collect();
            // The first adapter's workspace: a crate standing alone is its
            // own, and so is a JavaScript package outside any workspace.
            let workspace = dirs
                .iter()
                .filter(|d| d.is_absolute())
                .find_map(|d| {
                    builder::find_workspace(d)
                        .or_else(|| builder::is_js_adapter(d).then(|| d.clone()))
                })
                .or_else(|| builder::find_workspace(&cwd))
                .context("not inside a cargo workspace, and no adapter given")?;
            let out_dir = out.unwrap_or_else(|| workspace.join("target").join("components"));
            builder::build(&BuildOptions {
                workspace,
                dirs,
                out_dir,
                target_dir,
                js_dir,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        AdapterCommand::Inspect {
            file,
            config,
            env,
            runtime,
        } => {
            env.load()?;
            let cfg = crate::config::Config::load(config.as_deref())?;
            let policy = cfg.runtime_config().egress;
            let rt = Runtime::new(RuntimeConfig {
                cache_dir: runtime.cache_dir,
                ..Default::default()
            })?;
            let adapter = rt.load(&read(&file)?)?;
            let info = &adapter.info;
            let mut json = serde_json::to_value(info)?;
            json["effective_egress_hosts"] = policy
                .effective_hosts(&info.name, &info.egress_hosts)
                .iter()
                .map(ToString::to_string)
                .collect();
            if let Some(host) = policy.host_outside_list(&info.name, &info.egress_hosts) {
                eprintln!(
                    "warning: `{host}` is not in `[adapters.{}] egress`: payhost would refuse this version",
                    info.name
                );
            }
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(ExitCode::SUCCESS)
        }
        AdapterCommand::Call {
            file,
            operation,
            config,
            input,
            notify_url,
            secrets,
            allow_private,
            allow_hosts,
            record,
            runtime,
        } => {
            let rt = Runtime::new(RuntimeConfig {
                cache_dir: runtime.cache_dir,
                egress: EgressPolicy {
                    allow_private,
                    extra_allowed_hosts: allow_hosts,
                    ..Default::default()
                },
                ..Default::default()
            })?;
            let adapter = rt.load(&read(&file)?)?;
            let merchant = merchant_from_json(&read(&config)?, &secrets)?;
            if let Err(e) = merchant.validate(&adapter.info) {
                if e.problem == crate::merchant::Problem::MustBeSecret {
                    bail!("{e} (pass --secret {})", e.field);
                }
                bail!("{e}");
            }
            let input: serde_json::Value = serde_json::from_slice(&read(&input)?)
                .with_context(|| format!("{} is not JSON", input.display()))?;
            let op = operation_from_json(operation, input)?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
            let call = CallContext {
                request_id: format!("cli-{}-{}", std::process::id(), now.as_millis()),
                timestamp: now.as_secs() as i64,
                seed: now.as_nanos() as u64,
                notify_url,
            };
            let tokio = tokio::runtime::Runtime::new()?;
            if let Some(dir) = record {
                let recording =
                    tokio.block_on(crate::recording::record(&rt, &adapter, &merchant, call, op))?;
                crate::recording::save(&recording, &dir)?;
                println!("{}", serde_json::to_string_pretty(&recording.outcome)?);
                eprintln!(
                    "recorded {} exchange(s) in {}",
                    recording.exchanges.len(),
                    dir.join(crate::recording::FILE).display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            match tokio.block_on(rt.call(&adapter, &merchant, call, op)) {
                Ok(out) => {
                    let json = match &out {
                        Output::OrderCreated(v) => serde_json::to_value(v)?,
                        Output::TradeStatus(v) => serde_json::to_value(v)?,
                        Output::RefundStatus(v) => serde_json::to_value(v)?,
                        Output::Notify(v) => serde_json::to_value(v)?,
                        Output::PayoutStatus(v) => serde_json::to_value(v)?,
                        Output::ContractSigning(v) => serde_json::to_value(v)?,
                        Output::ContractStatus(v) => serde_json::to_value(v)?,
                        Output::DeductionStatus(v) => serde_json::to_value(v)?,
                    };
                    println!("{}", serde_json::to_string_pretty(&json)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    if let crate::CallError::EgressDenied { .. } = &e {
                        // The runtime names the configuration's settings;
                        // this command takes them as flags.
                        eprintln!(
                            "hint: for `payhost adapter call`, --allow-private stands for \
                             `[egress] allow_private` and --allow-host for the allow-lists"
                        );
                    }
                    if let crate::CallError::Adapter { error, ack } = &e {
                        let detail = serde_json::json!({ "error": error, "ack": ack });
                        println!("{}", serde_json::to_string_pretty(&detail)?);
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

/// `payhost adapter push`: prints the outcome; a refusal is printed with
/// its reason and fails the command.
fn push(args: PushArgs) -> Result<ExitCode> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => crate::registry::slot_of(&args.file).with_context(|| {
            format!(
                "cannot tell the adapter name from {}; pass --name",
                args.file.display()
            )
        })?,
    };
    let token = std::env::var(&args.token_env)
        .ok()
        .filter(|t| !t.is_empty())
        .with_context(|| {
            format!(
                "set the admin token in ${} (or name another variable with --token-env)",
                args.token_env
            )
        })?;
    let bytes = read(&args.file)?;
    let url = format!("{}/admin/adapters/{name}", args.to.trim_end_matches('/'));
    let tokio = tokio::runtime::Runtime::new()?;
    let (status, body) = tokio.block_on(async {
        let resp = reqwest::Client::new()
            .put(&url)
            .bearer_auth(&token)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .with_context(|| format!("uploading to {url}"))?;
        let status = resp.status();
        anyhow::Ok((status, resp.text().await.unwrap_or_default()))
    })?;
    let json: Option<serde_json::Value> = serde_json::from_str(&body).ok();
    if status.is_success() {
        match &json {
            Some(j) if j["unchanged"] == true => println!(
                "{name}: {} ({}) was already active",
                j["version"].as_str().unwrap_or("?"),
                j["digest"].as_str().unwrap_or("?")
            ),
            Some(j) => println!(
                "{name}: {} ({}) is active; previous {} ({})",
                j["version"].as_str().unwrap_or("?"),
                j["digest"].as_str().unwrap_or("?"),
                j["previous_version"].as_str().unwrap_or("none"),
                j["previous_digest"].as_str().unwrap_or("-")
            ),
            None => println!("{name}: uploaded ({status})"),
        }
        Ok(ExitCode::SUCCESS)
    } else {
        let why = json
            .as_ref()
            .and_then(|j| {
                Some(format!(
                    "{}: {}",
                    j["code"].as_str()?,
                    j["detail"].as_str()?
                ))
            })
            .unwrap_or(body);
        eprintln!("error: {url} refused the upload ({status}): {why}");
        Ok(ExitCode::FAILURE)
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// A flat JSON object of field -> value. The fields named in `secrets`
/// are secrets (a `env:NAME` / `file:PATH` value is resolved), the rest
/// text: the operator says what is secret, not the adapter under test.
pub fn merchant_from_json(bytes: &[u8], secrets: &[String]) -> Result<MerchantConfig> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes).context("the configuration must be a flat JSON object")?;
    if let Some(missing) = secrets.iter().find(|s| !map.contains_key(*s)) {
        bail!("--secret {missing}: the configuration has no field `{missing}`");
    }
    let mut merchant = MerchantConfig::new("cli");
    for (name, value) in map {
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => bail!("configuration field `{name}` must be a string"),
        };
        let value = if secrets.contains(&name) {
            match crate::config::SecretRef::parse(&text) {
                Ok(r) => FieldValue::Secret(
                    r.resolve()
                        .map_err(|p| anyhow::anyhow!("configuration field `{name}`: {p}"))?,
                ),
                Err(_) => FieldValue::secret(text),
            }
        } else {
            FieldValue::Text(text)
        };
        merchant.fields.insert(name, value);
    }
    Ok(merchant)
}

fn operation_from_json(op: OperationName, v: serde_json::Value) -> Result<Operation> {
    let what = "input does not match the operation's request type";
    Ok(match op {
        OperationName::UnifiedOrder => {
            Operation::UnifiedOrder(serde_json::from_value(v).context(what)?)
        }
        OperationName::Query => Operation::Query(serde_json::from_value(v).context(what)?),
        OperationName::Close => Operation::Close(serde_json::from_value(v).context(what)?),
        OperationName::Refund => Operation::Refund(serde_json::from_value(v).context(what)?),
        OperationName::RefundQuery => {
            Operation::RefundQuery(serde_json::from_value(v).context(what)?)
        }
        OperationName::ParseNotify => {
            Operation::ParseNotify(serde_json::from_value(v).context(what)?)
        }
        OperationName::Payout => Operation::Payout(serde_json::from_value(v).context(what)?),
        OperationName::PayoutQuery => {
            Operation::PayoutQuery(serde_json::from_value(v).context(what)?)
        }
        OperationName::ContractSign => {
            Operation::ContractSign(serde_json::from_value(v).context(what)?)
        }
        OperationName::ContractQuery => {
            Operation::ContractQuery(serde_json::from_value(v).context(what)?)
        }
        OperationName::ContractTerminate => {
            Operation::ContractTerminate(serde_json::from_value(v).context(what)?)
        }
        OperationName::Deduct => Operation::Deduct(serde_json::from_value(v).context(what)?),
        OperationName::DeductionQuery => {
            Operation::DeductionQuery(serde_json::from_value(v).context(what)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_call_takes_secrets_from_the_operator_not_the_schema() {
        let json =
            br#"{"mch_id": "10000100", "api_key": "k-123", "token": "env:PAYHOST_CLI_TEST_TOKEN"}"#;
        // Nothing is secret unless the operator says so, whatever a schema says.
        let m = merchant_from_json(json, &[]).unwrap();
        assert!(matches!(m.fields["api_key"], FieldValue::Text(_)));
        // Named secrets are secrets; a reference is resolved.
        let m = merchant_from_json(json, &["api_key".into()]).unwrap();
        assert!(matches!(m.fields["api_key"], FieldValue::Secret(_)));
        assert!(matches!(m.fields["mch_id"], FieldValue::Text(_)));
        let e = merchant_from_json(json, &["token".into()]).unwrap_err();
        assert!(
            e.to_string().contains("PAYHOST_CLI_TEST_TOKEN"),
            "an unset reference is named: {e}"
        );
        let e = merchant_from_json(json, &["apikey".into()]).unwrap_err();
        assert!(e.to_string().contains("--secret apikey"), "{e}");
    }
}
