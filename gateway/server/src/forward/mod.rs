//! Store-and-forward between the gateways of a federation
//! (docs/federation.md): an envelope for an agency another gateway serves
//! is logged here, queued ([`outbox`]) and forwarded ([`forwarder`]) over
//! mutual TLS to that gateway, which checks it end to end, logs it once
//! ([`received`]) and in order ([`order`]), and answers with its receipt,
//! kept here for the sender. [`wire`] is the protocol's JSON.

pub mod forwarder;
pub mod order;
pub mod outbox;
pub mod received;
pub mod status;
pub mod wire;
