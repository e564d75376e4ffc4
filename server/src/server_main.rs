//! The `igniter-ledger-server` binary (the reference's `exe/igniter-ledger-server`).

use igniter_ledger_server::cli::serve::{run, ServerCli};

fn main() -> std::process::ExitCode {
    let code = igniter_ledger_server::cli::main_with(
        std::env::args_os(),
        "igniter-ledger-server",
        |c: ServerCli| run(c.args),
    );
    std::process::ExitCode::from(code as u8)
}
