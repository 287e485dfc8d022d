//! Receipts made with a gateway's own log key (`gateways/<id>/checkpoint.key`
//! from the PKI), for entries that gateway never logged: what a forwarding
//! gateway that lies could send. Each is a valid receipt of a two-entry
//! tree (a filler entry, then the forged one), so everything but what a
//! test breaks on purpose checks out.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use serde_json::Value;
use xgate_ledger::{Checkpoint, NoteSigner, NoteVerifier, leaf_hash, node_hash};
use xgate_server::entry::{ENTRY_VERSION, Entry};
use xgate_server::receipt::Receipt;

use super::envelope_id;

/// Signs checkpoints as one gateway's log.
pub struct Forger {
    signer: NoteSigner,
}

/// What a forged entry says of its envelope; each field as the envelope's
/// claims say unless changed.
#[derive(Clone, Debug)]
pub struct Logged {
    /// `iss`.
    pub iss: String,
    /// `aud`.
    pub aud: String,
    /// `jti`.
    pub jti: String,
    /// `kind`.
    pub kind: String,
    /// The envelope id the entry logs.
    pub envelope: String,
    /// When the gateway says it logged it.
    pub time: i64,
}

impl Logged {
    /// What gateway would log for `jws` now.
    pub fn of(jws: &str) -> Logged {
        let claims = claims(jws);
        let text = |name: &str| claims[name].as_str().expect("a claim").to_owned();
        Logged {
            iss: text("iss"),
            aud: text("aud"),
            jti: text("jti"),
            kind: text("kind"),
            envelope: envelope_id(jws),
            time: xgate_server::pipeline::unix_now(),
        }
    }

    /// The entry's bytes, encoded as a gateway encodes its entries.
    pub fn encode(&self) -> Vec<u8> {
        let policy = "0".repeat(64);
        Entry {
            aud: &self.aud,
            decision: "allow",
            envelope: self.envelope.clone(),
            expires: None,
            iss: &self.iss,
            jti: &self.jti,
            kind: &self.kind,
            outcome: None,
            person: None,
            policy: &policy,
            purpose: None,
            request: None,
            sent: None,
            tag: None,
            time: self.time,
            uses: None,
            v: ENTRY_VERSION,
        }
        .encode()
        .expect("encode an entry")
    }
}

impl Forger {
    /// Gateway `gateway`'s log key from the PKI in `pki`.
    pub fn of(pki: &Path, gateway: &str) -> Forger {
        let path = pki
            .join("gateways")
            .join(gateway)
            .join(xgate_server::pki::CHECKPOINT_KEY);
        let text = std::fs::read_to_string(&path).expect("the gateway's checkpoint key");
        Forger {
            signer: NoteSigner::from_private_key(&text).expect("a signer key"),
        }
    }

    /// Its verifier key.
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// A receipt for `jws` whose entry says what the gateway would log.
    pub fn receipt(&self, jws: &str) -> Receipt {
        self.receipt_of(jws, &Logged::of(jws))
    }

    /// A receipt for `jws` whose entry says `logged`.
    pub fn receipt_of(&self, jws: &str, logged: &Logged) -> Receipt {
        let entry = logged.encode();
        let filler = leaf_hash(b"an entry before it");
        let leaf = leaf_hash(&entry);
        let checkpoint = Checkpoint {
            origin: self.signer.name().to_owned(),
            size: 2,
            root: node_hash(&filler, &leaf),
        };
        Receipt {
            id: envelope_id(jws),
            log_index: 1,
            tree_size: 2,
            leaf_hash: B64.encode(leaf.as_bytes()),
            inclusion_proof: vec![B64.encode(filler.as_bytes())],
            checkpoint: self.signer.sign_note(&checkpoint.body()),
            entry: B64.encode(entry),
        }
    }
}

/// The claims of a compact JWS, unverified.
pub fn claims(jws: &str) -> Value {
    let payload = jws.split('.').nth(1).expect("a compact JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

/// `receipt` with one bit of its inclusion proof flipped.
pub fn tamper_proof(receipt: &Receipt) -> Receipt {
    let mut hash = B64
        .decode(&receipt.inclusion_proof[0])
        .expect("a proof hash");
    hash[7] ^= 0x10;
    Receipt {
        inclusion_proof: vec![B64.encode(hash)],
        ..receipt.clone()
    }
}

/// `jws` with its signature changed (one bit of its first byte).
pub fn bad_signature(jws: &str) -> String {
    let (signed, signature) = jws.rsplit_once('.').expect("a compact JWS");
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    bytes[0] ^= 0x01;
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes))
}
