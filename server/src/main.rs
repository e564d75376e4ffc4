//! The `igniter-ledger` binary.

fn main() -> std::process::ExitCode {
    let code = igniter_ledger_server::cli::main_with(
        std::env::args_os(),
        "igniter-ledger",
        igniter_ledger_server::cli::run,
    );
    std::process::ExitCode::from(code as u8)
}
