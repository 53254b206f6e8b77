use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Logging is set up by the command: its format may come from the
    // configuration it loads.
    match payhost::cli::run(payhost::cli::Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
