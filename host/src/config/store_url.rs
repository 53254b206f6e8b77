//! The `[store]` section: which store keeps the state, named by `url`
//! (`sqlite:///path/payhost.db` or `postgres://user@host:port/db`) or, as
//! before, by `sqlite_path`. Giving both is an error (which one was meant
//! is not guessed); giving neither is SQLite in `payhost.db`.
//!
//! A PostgreSQL URL may hold a password, so `url` is either a literal
//! without one or a secret reference (`env:NAME`, `file:PATH`) to the URL;
//! a literal password is refused like any other literal secret. Errors and
//! the summary never repeat the URL: they name the user, host, port and
//! database at most.

use super::{ConfigError, SecretRef, setting};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

/// `[store]` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawStore {
    sqlite_path: Option<PathBuf>,
    url: Option<String>,
}

/// Where the state is kept.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    /// One SQLite file: the embedded store, for one machine.
    Sqlite { path: PathBuf },
    /// A PostgreSQL database, which several replicas may share. The URL
    /// may hold the password: a secret.
    Postgres { url: SecretString },
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings::Sqlite {
            path: "payhost.db".into(),
        }
    }
}

const BOTH: &str = "give the store as either `url` or `sqlite_path`, not both";
const SCHEMES: &str = "must start with `sqlite://` (a file) or `postgres://` (a database)";
const LITERAL_PASSWORD: &str = "holds a password, which is a secret: give the whole URL as a \
     reference `env:NAME` or `file:PATH` instead";

impl RawStore {
    pub(super) fn resolve(self) -> Result<StoreSettings, ConfigError> {
        match (self.url, self.sqlite_path) {
            (Some(_), Some(_)) => Err(setting("store", BOTH)),
            (None, Some(path)) => Ok(StoreSettings::Sqlite { path }),
            (None, None) => Ok(StoreSettings::default()),
            (Some(url), None) => {
                let field = "store.url";
                if url.starts_with("env:") || url.starts_with("file:") {
                    let reference = SecretRef::parse(&url).map_err(|p| setting(field, p))?;
                    let value = reference.resolve().map_err(|p| setting(field, p))?;
                    parse_url(value.expose_secret(), true).map_err(|p| setting(field, p))
                } else {
                    parse_url(&url, false).map_err(|p| setting(field, p))
                }
            }
        }
    }
}

/// A store URL; `secret` when it came from a reference (a password is
/// then allowed). Problems never repeat the URL.
fn parse_url(url: &str, secret: bool) -> Result<StoreSettings, String> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err("`sqlite://` must be followed by the database file's path".into());
        }
        return Ok(StoreSettings::Sqlite { path: path.into() });
    }
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(SCHEMES.into());
    }
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|_| "is not a valid PostgreSQL URL (postgres://user@host:port/db)".to_string())?;
    if config.get_hosts().is_empty() {
        return Err("names no host (postgres://user@host:port/db)".into());
    }
    if config.get_password().is_some() && !secret {
        return Err(LITERAL_PASSWORD.into());
    }
    Ok(StoreSettings::Postgres { url: url.into() })
}

impl fmt::Display for StoreSettings {
    /// For the summary: never the password, nor the URL as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSettings::Sqlite { path } => write!(f, "SQLite {}", path.display()),
            StoreSettings::Postgres { url } => {
                let Ok(c) = url.expose_secret().parse::<tokio_postgres::Config>() else {
                    return f.write_str("PostgreSQL");
                };
                let host = match c.get_hosts().first() {
                    Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
                    Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
                    None => String::new(),
                };
                let port = c.get_ports().first().copied().unwrap_or(5432);
                write!(
                    f,
                    "PostgreSQL {}@{host}:{port}/{}, password {}",
                    c.get_user().unwrap_or(""),
                    c.get_dbname().unwrap_or(""),
                    if c.get_password().is_some() {
                        "set"
                    } else {
                        "not set"
                    }
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StoreSettings;
    use crate::config::{Config, ConfigError};
    use std::path::Path;

    fn store(section: &str) -> Result<StoreSettings, ConfigError> {
        Config::from_toml_str(&format!("[store]\n{section}\n")).map(|c| c.store)
    }

    fn sqlite_file(s: StoreSettings) -> std::path::PathBuf {
        match s {
            StoreSettings::Sqlite { path } => path,
            other => panic!("{other:?}"),
        }
    }

    /// A file holding `text`, for `file:` references; removed by the caller.
    fn secret_file(name: &str, text: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("payhost-store-url-{name}-{}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn sqlite_path_and_a_sqlite_url_name_the_same_file() {
        let path = Path::new("/srv/payhost.db");
        assert_eq!(
            sqlite_file(store(r#"sqlite_path = "/srv/payhost.db""#).unwrap()),
            path
        );
        assert_eq!(
            sqlite_file(store(r#"url = "sqlite:///srv/payhost.db""#).unwrap()),
            path
        );
        assert_eq!(
            sqlite_file(store(r#"url = "sqlite://data/payhost.db""#).unwrap()),
            Path::new("data/payhost.db")
        );
        // Neither: the embedded default's file.
        assert_eq!(sqlite_file(store("").unwrap()), Path::new("payhost.db"));
    }

    #[test]
    fn an_override_alone_selects_postgres_over_the_embedded_default() {
        use figment::Figment;
        use figment::providers::{Format, Toml};
        // What PAYHOST_STORE__URL yields, on the file used when none is given.
        let base = Figment::from(Toml::string(crate::config::EMBEDDED_DEFAULT));
        let env = Toml::string(r#"store.url = "postgres://payhost@127.0.0.1/pay""#);
        let c = Config::build(base, env).unwrap();
        assert!(
            matches!(c.store, StoreSettings::Postgres { .. }),
            "{:?}",
            c.store
        );
    }

    #[test]
    fn url_and_sqlite_path_together_are_refused() {
        let err = store("sqlite_path = \"a.db\"\nurl = \"sqlite://b.db\"").unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
    }

    #[test]
    fn a_postgres_url_without_a_password_is_taken_as_written() {
        let s = store(r#"url = "postgres://payhost@db.internal:5433/pay""#).unwrap();
        assert!(matches!(s, StoreSettings::Postgres { .. }), "{s:?}");
        assert_eq!(
            s.to_string(),
            "PostgreSQL payhost@db.internal:5433/pay, password not set"
        );
        let s = store(r#"url = "postgresql://payhost@db.internal/pay""#).unwrap();
        assert_eq!(
            s.to_string(),
            "PostgreSQL payhost@db.internal:5432/pay, password not set"
        );
    }

    #[test]
    fn a_password_written_in_the_file_is_refused_without_repeating_it() {
        let err = store(r#"url = "postgres://payhost:s3cret-pw@db/pay""#).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("store.url") && text.contains("env:NAME"),
            "{text}"
        );
        assert!(!text.contains("s3cret-pw"), "{text}");
    }

    #[test]
    fn a_referenced_url_may_hold_the_password_which_is_never_shown() {
        let file = secret_file("pw", "postgres://payhost:s3cret-pw@127.0.0.1:5432/pay\n");
        let config =
            Config::from_toml_str(&format!("[store]\nurl = \"file:{}\"\n", file.display()));
        std::fs::remove_file(&file).unwrap();
        let config = config.unwrap();
        assert!(matches!(config.store, StoreSettings::Postgres { .. }));
        let summary = config.to_string();
        assert!(
            summary.contains("store:      PostgreSQL payhost@127.0.0.1:5432/pay, password set"),
            "{summary}"
        );
        assert!(!summary.contains("s3cret-pw"), "{summary}");
        assert!(!format!("{config:?}").contains("s3cret-pw"));
    }

    #[test]
    fn other_schemes_and_broken_urls_are_refused_without_repeating_them() {
        for (url, problem) in [
            ("mysql://u:s3cret-pw@h/db", "must start with"),
            ("postgres://u@[::1/s3cret-pw", "not a valid PostgreSQL URL"),
            ("sqlite://", "followed by the database file"),
        ] {
            let err = store(&format!("url = \"{url}\"")).unwrap_err().to_string();
            assert!(err.contains(problem), "{url}: {err}");
            assert!(!err.contains("s3cret-pw"), "{err}");
        }
        let file = secret_file("broken", "mysql://u:s3cret-pw@h/db");
        let err = store(&format!("url = \"file:{}\"", file.display()));
        std::fs::remove_file(&file).unwrap();
        let err = err.unwrap_err().to_string();
        assert!(
            err.contains("must start with") && !err.contains("s3cret-pw"),
            "{err}"
        );
    }
}
