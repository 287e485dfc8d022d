//! The `xgate` command line and the agencies' side of the exchange: what
//! an agency runs to talk to a gateway, holding its own keys.
//!
//! The gateway itself (the pipeline an envelope goes through, from TLS to
//! the receipt) is the `xgate_server` crate and the log the `xgate_ledger`
//! crate; this crate builds on both and neither depends on it, so nothing
//! an agency holds (its signing and decryption keys, the bundles it
//! builds) is part of the server's library.
//!
//! - [`client`]: an agency's connection to a gateway (mutual TLS, HTTP/1.1
//!   or HTTP/2) and its envelope signer.
//! - [`seal`]: sealing a part to its recipient and opening one.
//! - [`bundle`]: structural validation of the IPS bundles a holder sends.
//! - [`bench`](mod@bench): the load generator behind `xgate bench`.
//! - [`tiles`]: a C2SP tlog-tiles client that recomputes proofs from a
//!   log's public tiles (`xgate audit`).
//! - [`witness`](mod@witness): the HTTP server of `xgate witness serve`
//!   (C2SP tlog-witness `add-checkpoint`).
//! - [`console`]: the agency console's page and local API (`xgate
//!   console`), acting through the command line's own commands.
//! - [`cli`]: the `xgate` command line; `main.rs` is a thin wrapper over
//!   [`cli::main`], each command group one submodule of `cli`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod bundle;
pub mod cli;
pub mod client;
pub mod console;
pub mod seal;
pub mod tiles;
pub mod witness;
