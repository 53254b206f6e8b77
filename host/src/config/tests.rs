//! Unit tests of loading, validation, secret references and overrides.

use super::*;
use crate::contract::{AdapterInfo, Capabilities, ConfigField, FieldKind};
use crate::egress::HostPort;
use crate::limits::Industry;
use crate::merchant::FieldValue;
use secrecy::ExposeSecret;

const SECRET_B64: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A scratch directory under the target dir, removed on drop.
struct Scratch(PathBuf);
impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "payhost-config-{name}-{}-{}",
            std::process::id(),
            ulid::Ulid::new()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn merchant_toml(scratch: &Scratch, extra: &str) -> String {
    let secret = scratch.file("whsec", &format!("whsec_{SECRET_B64}\n"));
    format!(
        r#"
[server]
bind = "0.0.0.0:9000"
public_base_url = "https://pay.example.com/"

[[merchants]]
id = "shop-1"
api_keys = ["{key}"]
adapter = "wechat-v2"
currency = "CNY"
industry = "virtual"
callback_url = "https://shop.example.com/hooks"
webhook_secret = "file:{secret}"
{extra}
[merchants.config]
mch_id = 1900000109
api_key = "file:{secret}"
"#,
        key = api_key_hash("key-1"),
        secret = secret.display(),
    )
}

fn info() -> AdapterInfo {
    let field = |name: &str, kind| ConfigField {
        name: name.into(),
        description: String::new(),
        kind,
        required: true,
        default: None,
    };
    AdapterInfo {
        name: "wechat-v2".into(),
        version: "1.0.0".into(),
        contract_version: "0.1.0".into(),
        methods: vec![],
        currencies: vec![],
        capabilities: Capabilities {
            payment_notifications: true,
            refund_notifications: false,
            partial_refunds: true,
            query_by_merchant_order_no: true,
            close: false,
            refund_query: false,
            payouts: false,
            payout_notifications: false,
            contracts: false,
            contract_notifications: false,
            deduction_notifications: false,
        },
        egress_hosts: vec![],
        field_rules: vec![],
        config_schema: vec![
            field("mch_id", FieldKind::Text),
            field("api_key", FieldKind::Secret),
        ],
    }
}

#[test]
fn pins_are_digests() {
    let hex = "AB".repeat(32);
    assert_eq!(parse_digest(&hex).unwrap(), "ab".repeat(32));
    assert_eq!(
        parse_digest(&format!("sha256:{hex}")).unwrap(),
        "ab".repeat(32)
    );
    for bad in ["", "ab", "sha256:", &"zz".repeat(32)] {
        assert!(parse_digest(bad).is_err(), "{bad}");
    }
    let s = Scratch::new("pin");
    let c = Config::from_toml_str(&merchant_toml(&s, &format!("pin = \"sha256:{hex}\""))).unwrap();
    assert_eq!(
        c.merchants[0].pin.as_deref(),
        Some("ab".repeat(32).as_str())
    );
    let e = Config::from_toml_str(&merchant_toml(&s, "pin = \"latest\"")).unwrap_err();
    assert!(
        matches!(e, ConfigError::Merchant { ref field, .. } if field == "pin"),
        "{e}"
    );
    assert_eq!(c.runtime.keep_versions, 5);
    assert!(c.runtime.watch);
}

#[test]
fn embedded_default() {
    let c = Config::embedded_default();
    assert_eq!(c.server.bind, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.server.public_base_url, "http://127.0.0.1:8080");
    assert!(
        matches!(&c.store, StoreSettings::Sqlite { path } if path == Path::new("payhost.db")),
        "{:?}",
        c.store
    );
    assert_eq!(c.runtime.adapters_dir, Path::new("target/components"));
    assert!(c.merchants.is_empty());
    assert_eq!(c.webhooks.max_attempts, 12);
    assert_eq!(c.webhooks.initial_backoff_ms, 1000);
    assert_eq!(c.webhooks.max_backoff_ms, 3_600_000);
    assert_eq!(c.reconciler.interval_ms, 5000);
    assert_eq!(c.reconciler.notify_overdue_secs, 120);
    let rt = c.runtime_config();
    assert_eq!(rt.memory_limit, RuntimeConfig::default().memory_limit);
    assert_eq!(rt.egress.timeout, EgressPolicy::default().timeout);
}

#[test]
fn loads_a_merchant_and_resolves_secrets() {
    let s = Scratch::new("load");
    let c = Config::from_toml_str(&merchant_toml(&s, "")).unwrap();
    let m = &c.merchants[0];
    assert_eq!(m.id, "shop-1");
    assert_eq!(m.refund_currency, "CNY");
    assert_eq!(m.limits.amounts.per_payment_minor, 600_000);
    assert_eq!(m.config["mch_id"], "1900000109");
    assert_eq!(
        m.webhook_secret.as_ref().unwrap().expose_secret(),
        format!("whsec_{SECRET_B64}")
    );
    assert_eq!(
        c.server.notify_url("wechat-v2", "shop-1"),
        "https://pay.example.com/v1/notify/wechat-v2/shop-1"
    );
    let cfg = m.adapter_config(&info()).unwrap();
    assert!(matches!(cfg.fields["api_key"], FieldValue::Secret(_)));
    assert!(matches!(&cfg.fields["mch_id"], FieldValue::Text(t) if t == "1900000109"));
    // Nothing secret in Debug or the summary.
    for text in [format!("{c:?}"), c.to_string(), format!("{cfg:?}")] {
        assert!(!text.contains(SECRET_B64), "{text}");
    }
    assert!(c.to_string().contains("shop-1"));
}

#[test]
fn api_keys_by_hash() {
    let s = Scratch::new("keys");
    let c = Config::from_toml_str(&merchant_toml(&s, "")).unwrap();
    assert_eq!(
        c.merchant_by_api_key("key-1").map(|m| m.id.as_str()),
        Some("shop-1")
    );
    assert!(c.merchant_by_api_key("key-2").is_none());
    assert!(c.merchant_by_api_key(&api_key_hash("key-1")).is_none());
    assert_eq!(
        api_key_hash("abc"),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    // A plain key where a hash belongs is refused without being echoed.
    let plain = merchant_toml(&s, "").replace(&api_key_hash("key-1"), "sk_live_plain");
    let e = Config::from_toml_str(&plain).unwrap_err().to_string();
    assert!(e.contains("shop-1") && e.contains("api_keys[0]"), "{e}");
    assert!(!e.contains("sk_live_plain"), "{e}");
}

#[test]
fn literal_secrets_are_refused() {
    let s = Scratch::new("literal");
    let text = merchant_toml(&s, "").replace(
        &format!("webhook_secret = \"file:{}\"", s.0.join("whsec").display()),
        &format!("webhook_secret = \"whsec_{SECRET_B64}\""),
    );
    let e = Config::from_toml_str(&text).unwrap_err().to_string();
    assert!(e.contains("shop-1") && e.contains("webhook_secret"), "{e}");
    assert!(e.contains("env:") && e.contains("file:"), "{e}");
    assert!(!e.contains(SECRET_B64), "{e}");

    // In the adapter config, the schema decides what must be a reference.
    let text = merchant_toml(&s, "").replace(
        &format!("api_key = \"file:{}\"", s.0.join("whsec").display()),
        "api_key = \"very-secret-literal\"",
    );
    let c = Config::from_toml_str(&text).unwrap();
    let e = c.merchants[0]
        .adapter_config(&info())
        .unwrap_err()
        .to_string();
    assert!(e.contains("shop-1") && e.contains("config.api_key"), "{e}");
    assert!(!e.contains("very-secret-literal"), "{e}");
    assert!(!format!("{c:?}").contains("very-secret-literal"));
}

#[test]
fn secret_references() {
    let s = Scratch::new("refs");
    let p = s.file("crlf", "abc\r\n");
    assert_eq!(
        SecretRef::parse(&format!("file:{}", p.display()))
            .unwrap()
            .resolve()
            .unwrap()
            .expose_secret(),
        "abc"
    );
    // Cargo sets this variable for test processes.
    let env = SecretRef::parse("env:CARGO_PKG_NAME").unwrap();
    assert_eq!(env.resolve().unwrap().expose_secret(), "payhost");
    assert!(
        SecretRef::parse("env:PAYHOST_SURELY_UNSET_9")
            .unwrap()
            .resolve()
            .is_err()
    );
    assert!(
        SecretRef::parse("file:/nonexistent/x")
            .unwrap()
            .resolve()
            .is_err()
    );
    assert!(
        SecretRef::parse(&format!("file:{}", s.file("empty", "\n").display()))
            .unwrap()
            .resolve()
            .is_err()
    );
    for bad in ["plain", "env:", "env:A-B", "file:", "ENV:X"] {
        assert!(SecretRef::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn validation_names_merchant_and_field() {
    let s = Scratch::new("validate");
    let cases = [
        ("currency = \"CNY\"", "currency = \"cny\"", "currency"),
        (
            "industry = \"virtual\"",
            "industry = \"virtual\"\nrefund_currency = \"XYZ\"",
            "refund_currency",
        ),
        (
            "currency = \"CNY\"",
            "currency = \"USD\"",
            "limits.per_payment_minor",
        ),
        (
            "callback_url = \"https://shop.example.com/hooks\"",
            "callback_url = \"ftp://x\"",
            "callback_url",
        ),
        (
            "adapter = \"wechat-v2\"",
            "adapter = \"../evil\"",
            "adapter",
        ),
    ];
    for (from, to, field) in cases {
        let text = merchant_toml(&s, "").replace(from, to);
        match Config::from_toml_str(&text) {
            Err(ConfigError::Merchant {
                merchant, field: f, ..
            }) => {
                assert_eq!((merchant.as_str(), f.as_str()), ("shop-1", field), "{to}");
            }
            other => panic!("{to}: {other:?}"),
        }
    }
    // A callback needs a secret.
    let no_secret: String = merchant_toml(&s, "")
        .lines()
        .filter(|l| !l.starts_with("webhook_secret"))
        .collect::<Vec<_>>()
        .join("\n");
    let e = Config::from_toml_str(&no_secret).unwrap_err();
    assert!(matches!(e, ConfigError::Merchant { ref field, .. } if field == "webhook_secret"));
    // A secret not in whsec_ form.
    let bad = s.file("bad", "not-a-whsec");
    let text = merchant_toml(&s, "").replace(
        &format!("webhook_secret = \"file:{}\"", s.0.join("whsec").display()),
        &format!("webhook_secret = \"file:{}\"", bad.display()),
    );
    assert!(
        Config::from_toml_str(&text)
            .unwrap_err()
            .to_string()
            .contains("whsec_")
    );
    // Unknown keys are typos, not silently ignored.
    let e = Config::from_toml_str(&merchant_toml(&s, "colour = \"red\"")).unwrap_err();
    assert!(e.to_string().contains("colour"), "{e}");
    // Converted limits for another currency.
    let text = merchant_toml(&s, "[merchants.limits]\ncny_rate = 0.1385\n")
        .replace("currency = \"CNY\"", "currency = \"USD\"");
    let c = Config::from_toml_str(&text).unwrap();
    assert_eq!(c.merchants[0].limits.amounts.per_payment_minor, 83_100);
    assert_eq!(c.merchants[0].currencies, ["USD"]);
    // Order currencies: the merchant's own plus, at most, CNY with a rate.
    let usd =
        |extra: &str| merchant_toml(&s, extra).replace("currency = \"CNY\"", "currency = \"USD\"");
    let c = Config::from_toml_str(&usd(
        "currencies = [\"USD\", \"CNY\"]\n[merchants.limits]\ncny_rate = 0.1385\n",
    ))
    .unwrap();
    assert_eq!(c.merchants[0].currencies, ["USD", "CNY"]);
    assert_eq!(c.merchants[0].cny_rate.as_deref(), Some("0.1385"));
    for (list, says) in [
        ("[\"CNY\"]", "must include the merchant's currency `USD`"),
        ("[\"USD\", \"EUR\"]", "only CNY may be added"),
        ("[\"USD\", \"USD\"]", "listed twice"),
        ("[\"USD\", \"cny\"]", "`cny`"),
    ] {
        let e = Config::from_toml_str(&usd(&format!(
            "currencies = {list}\n[merchants.limits]\ncny_rate = 0.1385\n"
        )))
        .unwrap_err();
        assert!(
            matches!(e, ConfigError::Merchant { ref field, ref problem, .. } if field == "currencies" && problem.contains(says)),
            "{list}: {e}"
        );
    }
    let e = Config::from_toml_str(&usd(
        "currencies = [\"USD\", \"CNY\"]\n[merchants.limits]\nper_payment_minor = 100\nper_payer_day_minor = 100\n",
    ))
    .unwrap_err();
    assert!(e.to_string().contains("set `limits.cny_rate`"), "{e}");
    // Two merchants sharing an id or a key.
    let one = merchant_toml(&s, "");
    let second = one[one.find("[[merchants]]").unwrap()..].to_string();
    let e = Config::from_toml_str(&format!("{one}\n{second}")).unwrap_err();
    assert!(
        matches!(e, ConfigError::Merchant { ref field, .. } if field == "id"),
        "{e}"
    );
    let e = Config::from_toml_str(&format!(
        "{one}\n{}",
        second.replace("id = \"shop-1\"", "id = \"shop-2\"")
    ))
    .unwrap_err();
    assert!(
        matches!(e, ConfigError::Merchant { ref field, .. } if field == "api_keys"),
        "{e}"
    );
}

#[test]
fn adapter_config_checks_the_schema() {
    let s = Scratch::new("schema");
    // A reference on a field the schema does not mark secret.
    let text = merchant_toml(&s, "").replace("mch_id = 1900000109", "mch_id = \"env:MCH\"");
    let c = Config::from_toml_str(&text).unwrap();
    let e = c.merchants[0].adapter_config(&info()).unwrap_err();
    assert!(
        matches!(e, ConfigError::Merchant { ref field, .. } if field == "config.mch_id"),
        "{e}"
    );
    // Missing and unknown fields come from MerchantConfig::validate.
    let text = merchant_toml(&s, "").replace("mch_id = 1900000109", "mch_idd = \"1\"");
    let c = Config::from_toml_str(&text).unwrap();
    match c.merchants[0].adapter_config(&info()).unwrap_err() {
        ConfigError::Adapter(e) => assert_eq!(
            (e.merchant.as_str(), e.field.as_str()),
            ("shop-1", "mch_idd")
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn adapter_slots_take_an_egress_list_of_hosts_and_ports() {
    let s = Scratch::new("slots");
    let text = format!(
        "{}\n[adapters.wechat-v2]\negress = [\"API.mch.weixin.qq.com:443\", \"127.0.0.1:*\"]\n",
        merchant_toml(&s, "")
    );
    let c = Config::from_toml_str(&text).unwrap();
    let policy = c.runtime_config().egress;
    assert_eq!(
        policy.slots["wechat-v2"],
        [
            HostPort::new("api.mch.weixin.qq.com", Some(443)),
            HostPort::new("127.0.0.1", None)
        ]
    );
    assert!(
        c.to_string().contains(
            "adapter wechat-v2: egress allowed to [api.mch.weixin.qq.com:443, 127.0.0.1:*]"
        ),
        "{c}"
    );
    // A host without a port, and an unknown key, are refused by name.
    let bad = format!(
        "{}\n[adapters.wechat-v2]\negress = [\"api.mch.weixin.qq.com:443\", \"api2.mch.weixin.qq.com\"]\n",
        merchant_toml(&s, "")
    );
    let e = Config::from_toml_str(&bad).unwrap_err().to_string();
    assert!(
        e.contains("adapters.wechat-v2.egress[1]") && e.contains("host:port"),
        "{e}"
    );
    let bad = format!(
        "{}\n[adapters.wechat-v2]\nhosts = []\n",
        merchant_toml(&s, "")
    );
    assert!(Config::from_toml_str(&bad).is_err());
}

#[test]
fn secret_references_are_secrets_before_any_schema_is_known() {
    let s = Scratch::new("preload");
    let c = Config::from_toml_str(&merchant_toml(&s, "")).unwrap();
    let cfg = c.merchants[0].merchant_config().unwrap();
    assert!(matches!(cfg.fields["api_key"], FieldValue::Secret(_)));
    assert!(matches!(&cfg.fields["mch_id"], FieldValue::Text(t) if t == "1900000109"));
    // Against a schema that no longer marks it secret: refused, and
    // the error never advises writing the value in the file.
    let mut info = info();
    for f in &mut info.config_schema {
        if f.name == "api_key" {
            f.kind = FieldKind::Text;
        }
    }
    let e = c.merchants[0]
        .adapter_config(&info)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("config.api_key") && e.contains("marks it secret"),
        "{e}"
    );
    for advice in ["directly", "literal", "plain value"] {
        assert!(!e.contains(advice), "{e}");
    }
    let e = cfg.validate(&info).unwrap_err().to_string();
    assert!(
        e.contains("api_key") && e.contains("never hands a secret"),
        "{e}"
    );
}

#[test]
fn environment_overrides() {
    let s = Scratch::new("env");
    let base = Figment::from(Toml::string(&merchant_toml(&s, "")));
    // What Env::prefixed("PAYHOST_").split("__") yields for
    // PAYHOST_SERVER__BIND, PAYHOST_WEBHOOKS__MAX_ATTEMPTS,
    // PAYHOST_MERCHANTS__SHOP_1__CURRENCY/..., PAYHOST_MERCHANTS__0__CONFIG__MCH_ID.
    let env = Toml::string(
        r#"
server.bind = "0.0.0.0:8081"
webhooks.max_attempts = 3
merchants.shop_1.currency = "USD"
merchants.shop_1.limits.cny_rate = 0.5
merchants.0.config.mch_id = 42
"#,
    );
    let c = Config::build(base, env).unwrap();
    assert_eq!(c.server.bind.port(), 8081);
    assert_eq!(c.webhooks.max_attempts, 3);
    let m = &c.merchants[0];
    assert_eq!(m.currency, "USD");
    assert_eq!(m.limits.amounts.per_payment_minor, 300_000);
    assert_eq!(m.config["mch_id"], "42");
    // The rest of the merchant is kept.
    assert_eq!(m.industry, Industry::Virtual);
    assert!(m.webhook_secret.is_some());

    let base = Figment::from(Toml::string(&merchant_toml(&s, "")));
    let e = Config::build(base, Toml::string("merchants.nobody.currency = \"USD\"")).unwrap_err();
    assert!(e.to_string().contains("nobody"), "{e}");
    let base = Figment::from(Toml::string(&merchant_toml(&s, "")));
    let e = Config::build(base, Toml::string("server.bindd = \"x\"")).unwrap_err();
    assert!(e.to_string().contains("bindd"), "{e}");
}

#[test]
fn load_reads_a_file_or_fails_clearly() {
    let s = Scratch::new("file");
    let p = s.file("payhost.toml", &merchant_toml(&s, ""));
    let c = Config::load(Some(&p)).unwrap();
    assert_eq!(c.merchants.len(), 1);
    let e = Config::load(Some(&s.0.join("missing.toml"))).unwrap_err();
    assert!(e.to_string().contains("missing.toml"), "{e}");
    let bad = s.file("bad.toml", "[server\nbind = 1");
    assert!(matches!(
        Config::load(Some(&bad)),
        Err(ConfigError::Load(_))
    ));
}

#[test]
fn log_format_is_text_unless_json_is_asked_for() {
    use crate::logging::LogFormat;
    assert_eq!(Config::embedded_default().log.format, LogFormat::Text);
    let c = Config::from_toml_str("[log]\nformat = \"json\"\n").unwrap();
    assert_eq!(c.log.format, LogFormat::Json);
    assert!(c.to_string().contains("log:        JSON lines"), "{c}");
    let e = Config::from_toml_str("[log]\nformat = \"xml\"\n").unwrap_err();
    assert!(e.to_string().contains("xml"), "{e}");
}

#[test]
fn a_merchant_without_the_field_refunds_need_is_warned_about_by_name() {
    let mut info = info();
    info.config_schema.push(ConfigField {
        name: "client_cert".into(),
        description: "PEM certificate and key for refunds over mutual TLS".into(),
        kind: FieldKind::Secret,
        required: false,
        default: None,
    });
    // Optional, but not about refunds: no warning.
    info.config_schema.push(ConfigField {
        name: "sub_key".into(),
        description: "Partner mode key".into(),
        kind: FieldKind::Secret,
        required: false,
        default: None,
    });
    let without = crate::merchant::MerchantConfig::new("shop-1")
        .text("mch_id", "1900000109")
        .secret("api_key", "k");
    let warnings = super::missing_refund_fields(&info, &without);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("merchant `shop-1`")
            && warnings[0].contains("refunds need `config.client_cert`"),
        "{}",
        warnings[0]
    );
    let with = without.secret("client_cert", "-----BEGIN CERTIFICATE-----");
    assert!(super::missing_refund_fields(&info, &with).is_empty());
}

#[test]
fn a_failover_rule_is_checked_and_reaches_the_egress_policy() {
    let scratch = Scratch::new("failover");
    let with = |table: &str| Config::from_toml_str(&merchant_toml(&scratch, table));
    let config = with(
        "[merchants.failover]\nprimary = \"https://api.mch.weixin.qq.com/\"\nbackup = \"https://api2.mch.weixin.qq.com\"\n",
    )
    .unwrap();
    let rule = config.merchants[0].failover.clone().unwrap();
    assert_eq!(rule.primary, "https://api.mch.weixin.qq.com");
    assert_eq!(
        rule.after_failures,
        crate::provider_health::DEFAULT_AFTER_FAILURES
    );
    assert_eq!(
        rule.probe_interval,
        crate::provider_health::DEFAULT_PROBE_INTERVAL
    );
    assert_eq!(config.runtime_config().egress.failover["shop-1"], rule);
    assert!(
        with("")
            .unwrap()
            .runtime_config()
            .egress
            .failover
            .is_empty()
    );

    for (table, field) in [
        (
            "primary = \"https://api.mch.weixin.qq.com/pay\"\nbackup = \"https://b.example\"",
            "failover.primary",
        ),
        (
            "primary = \"https://a.example\"\nbackup = \"https://a.example\"",
            "failover.backup",
        ),
        (
            "primary = \"https://a.example\"\nbackup = \"https://b.example\"\nafter_failures = 0",
            "failover.after_failures",
        ),
    ] {
        let e = with(&format!("[merchants.failover]\n{table}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("shop-1") && e.contains(field), "{table}: {e}");
    }
    let e = with("[merchants.failover]\nprimary = \"https://a.example\"\nbackup = \"https://b.example\"\nafter = 3\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("after"), "{e}");
}

#[test]
fn a_failover_primary_no_provider_url_uses_is_warned_about() {
    let mut info = info();
    info.config_schema.push(ConfigField {
        name: "base_url".into(),
        description: String::new(),
        kind: FieldKind::Url,
        required: false,
        default: Some("https://api.mch.weixin.qq.com".into()),
    });
    let rule = |primary: &str| {
        crate::provider_health::FailoverRule::new(
            primary,
            "https://api2.mch.weixin.qq.com",
            5,
            crate::provider_health::DEFAULT_PROBE_INTERVAL,
            "/",
        )
        .unwrap()
    };
    let merchant = crate::merchant::MerchantConfig::new("shop-1");
    // The adapter's default is the primary: fine.
    assert_eq!(
        super::unused_failover(&info, &merchant, &rule("https://api.mch.weixin.qq.com")),
        None
    );
    let w =
        super::unused_failover(&info, &merchant, &rule("https://apihk.mch.weixin.qq.com")).unwrap();
    assert!(w.contains("shop-1") && w.contains("never switches"), "{w}");
    // A configured URL replaces the default.
    let hk = merchant.text("base_url", "https://apihk.mch.weixin.qq.com/");
    assert_eq!(
        super::unused_failover(&info, &hk, &rule("https://apihk.mch.weixin.qq.com")),
        None
    );
}
