//! The federation's development PKI (`xgate certs`, and the one
//! `xgate serve` creates on first start): [`files`] says where each file
//! lives, [`issue`] makes a PKI (with [`gateways`] for a federation's
//! gateways, [`cert`] for certificates and CRLs), [`revoke`] revokes
//! certificates.

pub mod cert;
pub mod error;
pub mod files;
pub mod gateways;
pub mod issue;
pub mod revoke;
mod write;

pub use cert::fingerprint;
pub use error::PkiError;
pub use files::*;
pub use gateways::{GatewayPlan, InvalidGatewayUrl};
pub use issue::*;
pub use revoke::*;
