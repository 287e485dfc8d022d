//! The `xgate` binary: everything lives in the library; this only hands it
//! the process's arguments and turns its outcome into an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    xgate::cli::main(std::env::args_os())
}
