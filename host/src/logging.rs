//! Where `tracing` output goes: standard error, as text for a terminal or
//! as one JSON object per line for a log collector (`--log-format json`,
//! or `[log] format = "json"` for `payhost serve`). `RUST_LOG` picks what
//! is logged; without it, warnings, plus payhost's own information while
//! serving (one line per request among it).

use serde::Deserialize;
use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// What is logged when `RUST_LOG` is not set, by `payhost serve` and by
/// the other commands.
pub const SERVE_FILTER: &str = "warn,payhost=info";
pub const COMMAND_FILTER: &str = "warn";
/// `payhost demo`: the demo's merchants reach loopback simulators through
/// their `base_url`, so the registry's warning that the real providers'
/// hosts are not allowed (no `[adapters.<slot>] egress`) is noise there.
pub const DEMO_FILTER: &str = "warn,payhost::registry=error";

/// Installs the global subscriber; a second call changes nothing.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a terminal, not in a file or a collector.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        // Fields at the top level, so a collector reads `request_id`, not
        // `fields.request_id`.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}
