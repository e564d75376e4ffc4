//! The `igniter-ledger` binary.

use clap::Parser;

fn main() -> std::process::ExitCode {
    match igniter_ledger_server::cli::run(igniter_ledger_server::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("igniter-ledger: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
