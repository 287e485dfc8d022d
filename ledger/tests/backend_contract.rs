//! The storage boundary's contract suites (`xgate_ledger::sequencer::contract`),
//! run against every backend this crate has: the journal as the sequencer,
//! sled as the store. A backend added later (PostgreSQL, issue 23) runs the
//! same two functions.

use xgate_ledger::SledStore;
use xgate_ledger::journal::{Journal, JournalOptions};
use xgate_ledger::sequencer::contract;

#[test]
fn the_journal_keeps_the_sequencer_contract() {
    contract::sequencer(|dir| {
        Journal::open(
            dir,
            JournalOptions {
                // Small segments, so releasing frees whole ones.
                segment_bytes: 64 << 10,
                ..JournalOptions::default()
            },
        )
        .expect("open the journal")
    });
}

#[test]
fn sled_keeps_the_store_contract() {
    contract::store(|dir| SledStore::open(dir, 1 << 20).expect("open sled"));
}
