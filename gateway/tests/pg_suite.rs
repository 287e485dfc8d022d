//! The contract suite again, on PostgreSQL: the same test files, whose
//! every gateway here keeps its log and state in a fresh database of the
//! test harness's server (`xgate_tests::postgres::suite_store`: a test
//! binary whose name starts with `pg_suite`). Envelopes and receipts, the log
//! API, inboxes, assets, medical exchange and hostile inputs must behave
//! exactly as on the embedded store.
//!
//! Files that open a gateway's data directory themselves (the log, sled)
//! are not here: on PostgreSQL that directory holds only the log's key.

// Each file brings its own copy of the shared helpers (`mod federation;`),
// as it does as a test binary of its own.
#![allow(clippy::duplicate_mod)]

#[path = "assets_custody.rs"]
mod assets_custody;
#[path = "assets_rules.rs"]
mod assets_rules;
#[path = "hostile_envelopes.rs"]
mod hostile_envelopes;
#[path = "inbox_paging.rs"]
mod inbox_paging;
#[path = "medical_flow.rs"]
mod medical_flow;
#[path = "medical_rules.rs"]
mod medical_rules;
#[path = "serve.rs"]
mod serve;
