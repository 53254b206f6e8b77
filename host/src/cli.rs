//! The `payhost` command line.

use crate::builder::{self, BuildOptions};
use crate::contract::{CallContext, FieldKind};
use crate::egress::EgressPolicy;
use crate::merchant::{FieldValue, MerchantConfig};
use crate::runtime::{Operation, Output, Runtime, RuntimeConfig};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "payhost",
    version,
    about = "A payment front whose provider integrations are sandboxed WebAssembly components."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build, inspect and try out adapters.
    #[command(subcommand)]
    Adapter(AdapterCommand),
    /// Walk one payment from creation to refund against a simulated WeChat Pay.
    Demo,
    /// Run the payment front: the HTTP API, webhook delivery and the reconciler.
    Serve {
        /// The TOML file (default: $PAYHOST_CONFIG, else the embedded default).
        #[arg(long)]
        config: Option<PathBuf>,
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
    /// Compile adapter crates into components.
    Build {
        /// Directories whose subdirectories are adapter crates.
        #[arg(default_value = "adapters")]
        dirs: Vec<PathBuf>,
        /// Output directory (default: <workspace>/target/components).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print an adapter's self-description as JSON.
    Inspect {
        file: PathBuf,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Run one operation of an adapter against the real (or simulated) provider.
    Call {
        file: PathBuf,
        operation: OperationName,
        /// Flat JSON object: field name -> value; fields the adapter's
        /// schema marks secret are treated as secrets.
        #[arg(long)]
        config: PathBuf,
        /// The operation's request as JSON.
        #[arg(long)]
        input: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:8080/v1/notify/cli/cli")]
        notify_url: String,
        /// Allow requests to loopback and private addresses (local simulators).
        #[arg(long)]
        allow_private: bool,
        /// Allow an extra host in addition to the adapter's own list.
        #[arg(long = "allow-host")]
        allow_hosts: Vec<String>,
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
pub struct RuntimeArgs {
    /// Keep compiled components here across runs.
    #[arg(long, env = "PAYHOST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OperationName {
    UnifiedOrder,
    Query,
    Close,
    Refund,
    RefundQuery,
    ParseNotify,
}

/// Runs a parsed command line; the exit code reports failure.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Adapter(cmd) => adapter(cmd),
        Command::Demo => {
            tokio::runtime::Runtime::new()?.block_on(crate::demo::run())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(cmd) => config(cmd),
        Command::Serve { config } => {
            let cfg = crate::config::Config::load(config.as_deref())?;
            tokio::runtime::Runtime::new()?.block_on(crate::server::serve(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
    }
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
        ConfigCommand::Check { file } => {
            let cfg = match crate::config::Config::load(file.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: invalid configuration: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let failures = check_adapters(&cfg)?;
            print!("{cfg}");
            if failures.is_empty() {
                println!("configuration OK");
                Ok(ExitCode::SUCCESS)
            } else {
                for f in &failures {
                    eprintln!("error: {f}");
                }
                eprintln!("error: {} problem(s) in the configuration", failures.len());
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// Loads each merchant's adapter once and validates its configuration
/// against the adapter's schema; returns every problem found.
fn check_adapters(cfg: &crate::config::Config) -> Result<Vec<String>> {
    if cfg.merchants.is_empty() {
        return Ok(Vec::new());
    }
    // Checking needs one instance at a time, not the server's pool.
    let rt = Runtime::new(RuntimeConfig {
        max_instances: 2,
        ..cfg.runtime_config()
    })?;
    let mut loaded = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for m in &cfg.merchants {
        if !loaded.contains_key(&m.adapter) {
            let path = cfg.adapter_path(&m.adapter);
            let adapter = std::fs::read(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|bytes| {
                    rt.load(&bytes)
                        .map_err(|e| format!("{} is not a usable adapter: {e}", path.display()))
                });
            loaded.insert(m.adapter.clone(), adapter);
        }
        match &loaded[&m.adapter] {
            Err(e) => failures.push(format!("merchant `{}`, adapter `{}`: {e}", m.id, m.adapter)),
            Ok(adapter) => {
                if let Err(e) = m.adapter_config(&adapter.info) {
                    failures.push(e.to_string());
                }
            }
        }
    }
    Ok(failures)
}

fn adapter(cmd: AdapterCommand) -> Result<ExitCode> {
    match cmd {
        AdapterCommand::Push(args) => push(args),
        AdapterCommand::Build { dirs, out } => {
            let cwd = std::env::current_dir()?;
            let workspace =
                builder::find_workspace(&cwd).context("not inside a cargo workspace")?;
            let out_dir = out.unwrap_or_else(|| workspace.join("target").join("components"));
            builder::build(&BuildOptions {
                workspace,
                dirs,
                out_dir,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        AdapterCommand::Inspect { file, runtime } => {
            let rt = Runtime::new(RuntimeConfig {
                cache_dir: runtime.cache_dir,
                ..Default::default()
            })?;
            let adapter = rt.load(&read(&file)?)?;
            println!("{}", serde_json::to_string_pretty(&adapter.info)?);
            Ok(ExitCode::SUCCESS)
        }
        AdapterCommand::Call {
            file,
            operation,
            config,
            input,
            notify_url,
            allow_private,
            allow_hosts,
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
            let merchant = merchant_from_json(&read(&config)?, &adapter.info)?;
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
            match tokio.block_on(rt.call(&adapter, &merchant, call, op)) {
                Ok(out) => {
                    let json = match &out {
                        Output::OrderCreated(v) => serde_json::to_value(v)?,
                        Output::TradeStatus(v) => serde_json::to_value(v)?,
                        Output::RefundStatus(v) => serde_json::to_value(v)?,
                        Output::Notify(v) => serde_json::to_value(v)?,
                    };
                    println!("{}", serde_json::to_string_pretty(&json)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
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

/// A flat JSON object of field -> value; the schema decides what is secret.
pub fn merchant_from_json(
    bytes: &[u8],
    info: &crate::contract::AdapterInfo,
) -> Result<MerchantConfig> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes).context("the configuration must be a flat JSON object")?;
    let mut merchant = MerchantConfig::new("cli");
    for (name, value) in map {
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => bail!("configuration field `{name}` must be a string"),
        };
        let secret = info
            .config_schema
            .iter()
            .any(|f| f.name == name && f.kind == FieldKind::Secret);
        merchant.fields.insert(
            name,
            if secret {
                FieldValue::secret(text)
            } else {
                FieldValue::Text(text)
            },
        );
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
    })
}
