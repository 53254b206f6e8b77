//! `payhost config init`: a starter configuration for one merchant in front
//! of the simulator, with fresh credentials.
//!
//! What the configuration can hold as a hash (the merchant's API key) is
//! written hashed; what payhost needs in clear to use (the admin token it
//! compares, the webhook secret it signs with, the provider key the adapter
//! signs with) goes to its own 0600 file in a 0700 directory next to the
//! configuration, referenced as `file:`. The clear credentials are returned
//! once, for the command to print; nothing is overwritten.

use super::api_key_hash;
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use secrecy::SecretString;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// The merchant id the starter configuration uses.
pub const STARTER_MERCHANT: &str = "shop-1";
/// WeChat's documentation examples; the simulator accepts whatever is configured.
const APPID: &str = "wxd678efh567hg6787";
const MCH_ID: &str = "1230000109";

/// What `config init` may be told.
#[derive(Debug, Clone)]
pub struct StarterOptions {
    /// `[server] bind`.
    pub bind: SocketAddr,
    /// The merchant's `base_url`: where `payhost simulator` will listen.
    pub simulator_url: String,
    /// `[runtime] adapters_dir`.
    pub adapters_dir: PathBuf,
}

/// What was written, and the credentials to show once.
pub struct Starter {
    pub config: PathBuf,
    pub secrets_dir: PathBuf,
    /// The merchant's bearer API key (the file holds its hash).
    pub api_key: SecretString,
    /// The bearer token of `/admin/*`.
    pub admin_token: SecretString,
    /// The Standard Webhooks secret the merchant verifies deliveries with.
    pub webhook_secret: SecretString,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    rand::random()
}

/// Writes the configuration at `path` and its secrets directory
/// (`<stem>-secrets/` beside it); refuses if either file already exists.
pub fn write_starter(path: &Path, options: &StarterOptions) -> Result<Starter> {
    if path.exists() {
        bail!(
            "{} already exists; payhost config init never overwrites a configuration",
            path.display()
        );
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // References are absolute, so the configuration works from any
    // working directory.
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("payhost");
    let secrets_dir = dir.join(format!("{stem}-secrets"));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&secrets_dir)
        .with_context(|| format!("creating {}", secrets_dir.display()))?;

    let hex = |b: &[u8]| hex::encode(b);
    let api_key = format!("pk_{}", hex(&random_bytes::<24>()));
    let admin_token = format!("adm_{}", hex(&random_bytes::<32>()));
    let webhook_secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>())
    );
    // WeChat Pay v2 keys are 32 characters.
    let provider_key = hex(&random_bytes::<16>());

    let config = dir.join(path.file_name().unwrap_or_default());
    let mut written = Vec::new();
    let result = (|| {
        for (name, value) in [
            ("admin_token", &admin_token),
            ("webhook_secret", &webhook_secret),
            ("wechat_api_key", &provider_key),
        ] {
            let p = secrets_dir.join(name);
            write_new(&p, value, 0o600)?;
            written.push(p);
        }
        let text = starter_toml(options, &config, &secrets_dir, &api_key_hash(&api_key));
        write_new(&config, &text, 0o644)
    })();
    if let Err(e) = result {
        // Leave nothing half-written behind.
        for p in written {
            let _ = std::fs::remove_file(p);
        }
        return Err(e);
    }
    Ok(Starter {
        config,
        secrets_dir,
        api_key: api_key.into(),
        admin_token: admin_token.into(),
        webhook_secret: webhook_secret.into(),
    })
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

fn starter_toml(o: &StarterOptions, config: &Path, secrets: &Path, key_hash: &str) -> String {
    let s = secrets.display();
    format!(
        r#"# payhost starter configuration, written by `payhost config init`.
# One merchant in front of the WeChat Pay v2 simulator:
#     payhost config check {config}
#     payhost simulator --config {config}      # the provider, on base_url below
#     payhost serve --config {config}
# docs/payhost.example.toml explains every setting; README "Running payhost"
# says what changes for the real provider.

[server]
bind = "{bind}"
# How providers reach this host (notification URLs); default http://{{bind}}.
# public_base_url = "https://pay.example.com"
admin_token = "file:{s}/admin_token"

[store]
sqlite_path = "{db}"

[runtime]
adapters_dir = "{adapters}"

[egress]
# The simulator listens on loopback, which payhost refuses unless allowed.
# With the real provider, set this back to false.
allow_private = true

# The real WeChat Pay hosts the adapter may reach (unused by the simulator).
[adapters.wechat-v2]
egress = [
    "api.mch.weixin.qq.com:443",
    "api2.mch.weixin.qq.com:443",
    "apihk.mch.weixin.qq.com:443",
]

[[merchants]]
id = "{merchant}"
# The hash of the API key `config init` printed; add more with
# `payhost config hash-key -` to rotate.
api_keys = ["{key_hash}"]
adapter = "wechat-v2"
currency = "CNY"
industry = "physical"
# Where payhost POSTs signed events (payment.paid, ...); set it to your
# backend. The merchant verifies them with the secret below.
# callback_url = "https://shop.example.com/payhost/webhooks"
webhook_secret = "file:{s}/webhook_secret"

[merchants.config]
appid = "{APPID}"
mch_id = "{MCH_ID}"
api_key = "file:{s}/wechat_api_key"
# The simulator; remove this line (the adapter's default is WeChat's
# api.mch.weixin.qq.com) when you switch to the real provider.
base_url = "{sim}"
"#,
        config = config.display(),
        bind = o.bind,
        db = config.with_extension("db").display(),
        adapters = o.adapters_dir.display(),
        merchant = STARTER_MERCHANT,
        sim = o.simulator_url,
    )
}
