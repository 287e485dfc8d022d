//! The federation's development PKI (`xgate certs`, and the one
//! `xgate serve` creates on first start): [`files`] says where each file
//! lives, [`issue`] makes them.

pub mod files;
pub mod issue;

pub use files::*;
pub use issue::*;
