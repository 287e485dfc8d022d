//! xgate's transparency log: an append-only Merkle log with RFC 9162 hashing
//! and proofs, and C2SP signed checkpoints.
//!
//! # A tour
//!
//! In dependency order: each file imports only files listed before it.
//!
//! The verification half, with no storage:
//!
//! - [`hash`]: leaf and node hashes (RFC 9162 section 2.1) and the
//!   `rs_merkle` hasher that gives the RFC tree shape.
//! - `tree` and `tile`: which complete subtrees exist and how they are
//!   grouped into tiles for storage, after C2SP tlog-tiles.
//! - [`proof`] builds inclusion and consistency proofs from stored hashes;
//!   [`verify`] checks them with no storage at all.
//! - [`note`]: C2SP signed-note framing (text, signature lines, key
//!   encoding), the one parser of notes.
//! - [`checkpoint`]: the C2SP tlog-checkpoint body in a C2SP signed note,
//!   signed by the log (Ed25519).
//! - [`cosign`]: C2SP tlog-cosignature: witnesses' timestamped cosignatures
//!   (Ed25519 and ML-DSA-44), and checking a quorum of them.
//!
//! Storage:
//!
//! - `store` ([`Store`]): the small-state contract (an ordered map with
//!   atomic batches; a batch may carry bodies the log keeps in files);
//!   `store_sled` ([`SledStore`]) implements it on sled, and `faults`
//!   (tests only) wraps it, and the journal, to fail on demand.
//! - [`fsutil`]: atomic, private small-file writes; directories created
//!   durably.
//! - [`tlog`]: the log's public C2SP tlog-tiles files (tiles, entry bundles,
//!   checkpoint) in a directory to serve as it is.
//! - [`journal`]: the write-ahead journal, the durability point: one record
//!   per commit batch, one `pwritev` and one `fdatasync`, segments prepared
//!   ahead, crash recovery to the last durable record.
//! - [`blobs`]: envelope bodies in plain files, written without a barrier
//!   (the journal holds a copy), synced before the journal lets go of it,
//!   reclaimed online once no live body pins a file.
//! - `nodes`: the private proof sidecar (full height-4 tiles above the
//!   bottom level), for proofs that hash nothing.
//! - [`sequencer`]: the storage boundary ([`sequencer::Sequencer`] for the
//!   durability point, [`Store`] for small state) and the contract suites
//!   every backend runs.
//! - `error` ([`Error`]): the one error type at the crate's boundary.
//! - `layout`: the log's own keys in the store.
//! - `disk`: the files of a data directory ([`OpenOptions`],
//!   [`published_checkpoint`]), which `log/open` opens a log from.
//!
//! The log, in `log/`: its internals (`lock`; `record`: a journal record;
//! `edge`: the unfinished right edge of the tree; `head`: the edge and
//! durable size readers see; `pending`: what the journal holds that the
//! files do not yet; `reader`: hashes for proofs; `latest`: the signer, the
//! latest checkpoint and its mirror; `notes`: the published checkpoints;
//! `progress` and `worker`: the integrator's state and thread), then
//! [`Log`] itself (`log/mod.rs`), then one file per concern, none importing
//! another:
//!
//! - `open`: open a data directory and recover (replay the journal);
//! - `append`: the one write path. An append takes the writer's turn,
//!   writes one journal record with one barrier, applies its small writes,
//!   publishes, and returns; concurrent appends take turns, and group
//!   commit is the caller's (the gateway's committer batches envelopes
//!   into one append);
//! - `integrate`: off the write path, tlog-tiles files, published
//!   checkpoints, release of the journal and body files;
//! - `read`: entries, bodies, roots and proofs at any past size;
//! - `publish`: checkpoints, on demand or with every commit;
//! - `audit`: recomputing the whole log ([`Log::verify`]).
//!
//! A witness, in [`witness`]: the latest checkpoint it cosigned per log, and
//! `add-checkpoint` with C2SP tlog-witness's semantics (no HTTP).
//!
//! Beside [`Log`]: [`Ledger`] (`backend`), what the gateway needs of a log
//! whatever holds it, with [`turn`] (a writer's turn and what other
//! writers changed); [`pg`] (feature `postgres`), the same log in a
//! PostgreSQL database that several processes append to; and
//! [`transfer()`], which copies a stopped log whole between the two.
//!
//! On top: `compact` ([`compact()`]) copies a stopped log's data directory
//! with a fresh store of live keys, and `migrate` ([`migrate()`]) converts a
//! directory of the layout before the journal.
//!
//! Build with `default-features = false` to leave out storage: what remains
//! verifies ([`verify_inclusion`], [`verify_consistency`],
//! [`verify_checkpoint`]) with no storage or network.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "sled")] {
//! use xgate_ledger::{Log, OpenOptions, verify_inclusion, leaf_hash};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let log = Log::create_or_open(dir.path(), &OpenOptions::default()).unwrap();
//! let range = log.append_batch(&["alpha", "beta", "gamma"]).unwrap();
//! let checkpoint = log.checkpoint().unwrap();
//!
//! // Anyone holding the checkpoint can check an entry against it.
//! let proof = log.inclusion(1, checkpoint.checkpoint.size).unwrap();
//! verify_inclusion(&proof, &leaf_hash(b"beta"), &checkpoint.checkpoint.root).unwrap();
//! # assert_eq!(range, 0..3);
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checkpoint;
pub mod cosign;
pub mod hash;
pub mod note;
pub mod proof;
pub mod verify;

#[cfg(feature = "sled")]
mod tile;
mod tree;

#[cfg(feature = "sled")]
mod backend;
#[cfg(feature = "sled")]
pub mod blobs;
#[cfg(feature = "sled")]
mod compact;
#[cfg(feature = "sled")]
mod copy;
#[cfg(feature = "sled")]
mod disk;
mod error;
#[cfg(feature = "faults")]
pub mod faults;
pub mod fsutil;
#[cfg(feature = "sled")]
pub mod journal;
#[cfg(feature = "sled")]
mod layout;
#[cfg(feature = "sled")]
mod log;
#[cfg(feature = "sled")]
mod migrate;
#[cfg(feature = "sled")]
mod nodes;
#[cfg(feature = "postgres")]
pub mod pg;
#[cfg(feature = "sled")]
pub mod sequencer;
mod store;
#[cfg(feature = "sled")]
mod store_sled;
#[cfg(feature = "sled")]
pub mod tlog;
#[cfg(feature = "sled")]
mod transfer;
pub mod turn;
#[cfg(feature = "sled")]
pub mod witness;

pub use checkpoint::{
    Checkpoint, CheckpointError, NoteSigner, NoteVerifier, SignedCheckpoint, verify_checkpoint,
};
pub use hash::{Hash, leaf_hash, node_hash};
pub use proof::{ConsistencyProof, InclusionProof};
pub use tree::NodeId;
pub use verify::{VerifyError, verify_consistency, verify_inclusion};

#[cfg(feature = "sled")]
pub use backend::{BodyKind, Ledger, StoredBody};
#[cfg(feature = "sled")]
pub use compact::{Compacted, compact};
#[cfg(feature = "sled")]
pub use disk::{
    CHECKPOINT_FILE, DB_DIR, DEFAULT_ORIGIN, KEY_FILE, LEDGER_DIR, LOG_DIR, OpenOptions, TILES_DIR,
    published_checkpoint, verifier_of,
};
pub use error::{ConvertError, Error};
#[cfg(feature = "sled")]
pub use log::Log;
#[cfg(feature = "sled")]
pub use log::append::{Committed, MAX_ENTRY_LEN, WithEntries};
#[cfg(feature = "sled")]
pub use log::audit::VerifyReport;
#[cfg(feature = "sled")]
pub use log::read::DiskUsage;
#[cfg(feature = "sled")]
pub use migrate::{Convert, Migrated, migrate};
pub use store::{BodyWrite, KeyValue, Store, StoreError, StoreRead, WriteBatch};
#[cfg(feature = "sled")]
pub use store_sled::SledStore;
#[cfg(feature = "sled")]
pub use transfer::{Transferred, transfer, transfer_into_dir};

/// The store under a log on disk ([`Log::create_or_open`]): sled, wrapped
/// in the fault injector in builds with the `faults` feature.
#[cfg(all(feature = "sled", not(feature = "faults")))]
pub type DiskStore = SledStore;
/// The store under a log on disk ([`Log::create_or_open`]): sled, wrapped
/// in the fault injector in builds with the `faults` feature.
#[cfg(all(feature = "sled", feature = "faults"))]
pub type DiskStore = faults::Faulty<SledStore>;
