//! xgate-server: the gateway that anchors inter-agency exchanges in a
//! transparency log, as a library (docs/architecture.md draws the whole).
//!
//! # A tour
//!
//! - [`registry`]: the agencies of the federation, their certificate
//!   bindings and public JOSE keys.
//! - [`policy`]: who may send which envelope kinds to whom, and when an
//!   emergency request breaks the glass; deny by default, rules in `policies/`.
//! - [`contracts`]: declarative rules in the policy file that react to
//!   the log (a trigger, a CEL condition, an act): loaded and checked.
//! - [`pipeline`]: the stages an envelope goes through, in order; the
//!   `committer` commits accepted envelopes in log order. [`envelope`]
//!   opens an envelope; [`signatures`] checks EdDSA signatures in batches.
//! - [`apply`]: the apply stage, one step of a fold over the log: the
//!   committer runs it for each envelope it accepts, and [`recompute`]
//!   (`xgate audit replay`) runs it over the log for auditors.
//! - [`assets`]: asset custody and reconciliation: the bodies, the rules,
//!   where the state lives and what agencies may read of it.
//! - [`medical`]: emergency medical requests, break-the-glass grants,
//!   encrypted responses and reviews, likewise.
//! - [`store_keys`]: every key the gateway keeps beside the log, in one
//!   table.
//! - [`sealed`]: sealed parts, signed by the sender and encrypted to the
//!   recipient, which the gateway carries but cannot read (records and the
//!   personal fields of medical requests).
//! - [`data_dir`]: why nobody but the gateway reads its data directory.
//! - [`pki`]: the development PKI (`xgate certs`): CA, certificates, JOSE
//!   keys, CRL and registry; `crl` decides which CRL the gateway trusts
//!   (signed by the CA, never older than the one in force) and [`tls`]
//!   applies it to handshakes, requests and open event streams.
//! - [`public_log`]: the log as C2SP tlog-tiles to anyone (checkpoint,
//!   tiles, entry bundles), which [`server::serve_public`] serves on the
//!   public listener.
//! - [`witnessing`]: gathering witnesses' cosignatures (the configured
//!   ones and, in a federation, the peer gateways') before a checkpoint
//!   is served; [`peer_witness`]: the witness each gateway of a
//!   federation runs for its peers' logs, answering through
//!   [`witness_http`], as `xgate witness serve` does.
//!
//! The log itself (hashing, proofs, checkpoints, storage) is the
//! `xgate_ledger` crate; nothing here re-implements any of it.
//!
//! The machinery behind the pipeline (the commit thread, the rate limiter,
//! replay ids, the free-space guard, metrics, the CRL's checks) is private:
//! what an embedder meets of it is re-exported where it surfaces
//! ([`pipeline::CommitError`], [`pipeline::RateLimited`],
//! [`pipeline::DiskFull`], [`pipeline::Metrics`], [`tls::Crl`],
//! [`policy::Rate`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acts;
pub mod apply;
pub mod assets;
mod committer;
pub mod config;
pub mod contracts;
mod crl;
pub mod crl_watch;
pub mod data_dir;
pub mod entry;
pub mod envelope;
pub mod fields;
pub mod forward;
pub mod http;
pub mod inbox;
pub mod kind;
pub mod logview;
pub mod medical;
mod metrics;
pub mod outbound;
pub mod peer_witness;
pub mod pipeline;
pub mod pki;
pub mod policy;
pub mod public_log;
mod rate;
pub mod receipt;
pub mod recompute;
pub mod registry;
mod replay;
pub mod sealed;
pub mod server;
pub mod signatures;
mod space;
pub mod store_keys;
pub mod store_setting;
pub mod strict_json;
pub mod tls;
pub mod witness_http;
pub mod witnessing;
