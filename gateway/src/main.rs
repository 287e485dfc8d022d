//! The `xgate` binary: everything lives in the library; this only hands it
//! the process's arguments and turns its outcome into an exit code.

use std::process::ExitCode;

/// The gateway allocates per request in many threads (sled nodes, TLS
/// records, JSON); glibc's allocator spent a fifth of the gateway's time
/// under load (docs/performance.md, "Gateway").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    xgate::cli::main(std::env::args_os())
}
