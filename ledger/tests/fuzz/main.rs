//! Fuzz targets for what the ledger parses and verifies from outside:
//! C2SP signed notes and checkpoints, verifier keys, and RFC 9162 inclusion
//! and consistency proofs. Every target checks two things: nothing panics,
//! and nothing false is accepted about a real tree built here.
//!
//! Proofs are in `proofs.rs`. Seeds are in
//! `fuzz/corpus/{checkpoint,note-key,proof}/`; the case count
//! is `XGATE_FUZZ_CASES` (see `docs/fuzzing.md`).

#[path = "../../../fuzz/mutate.rs"]
mod mutate;

mod proofs;

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mutate::{ByteEdit, apply_bytes, byte_edits, config, corpus};
use proptest::prelude::*;
use proptest::sample::Index;
use xgate_ledger::checkpoint::check_name;
use xgate_ledger::hash::root_of;
use xgate_ledger::{Checkpoint, Hash, NoteSigner, NoteVerifier, leaf_hash, verify_checkpoint};

/// The log's origin, and its key's name.
const ORIGIN: &str = "fuzz.example/log";
/// Leaves in the real tree.
const SIZE: u64 = 37;
/// Leaves the fork shares with the real tree before it diverges.
const SHARED: u64 = 20;

/// A real tree, a fork of it, the log key, and the notes signed with it.
struct World {
    real: Vec<Hash>,
    fork: Vec<Hash>,
    signer: NoteSigner,
    /// Every text the key signed: a note that verifies must carry one.
    signed: Vec<String>,
    /// Valid notes to mutate, then the raw seeds.
    notes: Vec<String>,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let real: Vec<Hash> = (0..SIZE)
        .map(|i| leaf_hash(format!("fuzz entry {i}").as_bytes()))
        .collect();
    let mut fork = real[..SHARED as usize].to_vec();
    fork.extend((SHARED..SIZE).map(|i| leaf_hash(format!("fork entry {i}").as_bytes())));
    // A fresh key every run: no private key is ever committed.
    let signer = NoteSigner::generate(ORIGIN).expect("key");
    let real_body = Checkpoint {
        origin: ORIGIN.into(),
        size: SIZE,
        root: root_of(&real),
    }
    .body();
    let mut signed = vec![real_body];
    let mut raw = Vec::new();
    for (_, bytes) in corpus("checkpoint") {
        let text = String::from_utf8(bytes).expect("checkpoint seeds are text");
        if Checkpoint::parse_body(&text).is_ok_and(|c| c.origin == ORIGIN) {
            signed.push(text);
        } else {
            raw.push(text);
        }
    }
    let mut notes: Vec<String> = signed.iter().map(|t| signer.sign_note(t)).collect();
    notes.extend(raw);
    World {
        real,
        fork,
        signer,
        signed,
        notes,
    }
});

/// The root of the first `size` leaves of `leaves`.
fn root(leaves: &[Hash], size: u64) -> Hash {
    root_of(&leaves[..size as usize])
}

/// Edits that know the note format: lines, signatures, base64.
#[derive(Clone, Debug)]
enum NoteEdit {
    Bytes(Vec<ByteEdit>),
    /// Replace line `i` with another line.
    Line(Index, String),
    /// Append a signature line, by the log's name or another.
    Signature(bool, Vec<u8>),
    /// Repeat the last line `n` times.
    Repeat(usize),
}

fn note_edit() -> impl Strategy<Value = NoteEdit> {
    let line = prop_oneof![
        Just(String::new()),
        Just(ORIGIN.to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("0".to_owned()),
        any::<u64>().prop_map(|n| n.to_string()),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| B64.encode(b)),
        "\\PC{0,20}",
        prop::collection::vec(any::<u8>(), 0..72)
            .prop_map(|b| format!("\u{2014} {ORIGIN} {}", B64.encode(b))),
    ];
    prop_oneof![
        4 => byte_edits(4).prop_map(NoteEdit::Bytes),
        3 => (any::<Index>(), line).prop_map(|(i, l)| NoteEdit::Line(i, l)),
        2 => (any::<bool>(), prop::collection::vec(any::<u8>(), 0..72))
            .prop_map(|(ours, b)| NoteEdit::Signature(ours, b)),
        1 => (1usize..120).prop_map(NoteEdit::Repeat),
    ]
}

fn apply_note(note: &str, edit: &NoteEdit) -> Vec<u8> {
    let lines = || note.split('\n').map(str::to_owned).collect::<Vec<_>>();
    match edit {
        NoteEdit::Bytes(edits) => apply_bytes(note.as_bytes(), edits),
        NoteEdit::Line(i, line) => {
            let mut lines = lines();
            let n = i.index(lines.len());
            lines[n] = line.clone();
            lines.join("\n").into_bytes()
        }
        NoteEdit::Signature(ours, blob) => {
            let name = if *ours { ORIGIN } else { "other.example/log" };
            format!("{note}\u{2014} {name} {}\n", B64.encode(blob)).into_bytes()
        }
        NoteEdit::Repeat(n) => {
            let mut lines = lines();
            let last = lines.iter().rev().find(|l| !l.is_empty()).cloned();
            let at = lines.len().saturating_sub(1);
            lines.splice(at..at, std::iter::repeat_n(last.unwrap_or_default(), *n));
            lines.join("\n").into_bytes()
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Mutated notes (byte flips, replaced lines, extra or repeated
    /// signature lines, garbage base64) never panic, and verify only when
    /// the text they carry is one the log key signed.
    #[test]
    fn checkpoint_mutations_never_panic_and_never_verify_unsigned_text(
        seed in any::<Index>(),
        edits in prop::collection::vec(note_edit(), 1..4),
    ) {
        let world = &*WORLD;
        let verifier = world.signer.verifier();
        let mut note = world.notes[seed.index(world.notes.len())].clone().into_bytes();
        for edit in &edits {
            note = apply_note(&String::from_utf8_lossy(&note), edit);
        }
        let Ok(note) = String::from_utf8(note) else { return Ok(()) };
        let _ = Checkpoint::parse_body(&note);
        if let Ok(text) = verifier.open(&note) {
            prop_assert!(world.signed.iter().any(|s| s == text), "forged text {text:?}");
        }
        if let Ok(checkpoint) = verify_checkpoint(&note, &verifier) {
            let text = verifier.open(&note).expect("verified notes open");
            prop_assert_eq!(Checkpoint::parse_body(text), Ok(checkpoint));
        }
    }

    /// Verifier and private keys in the signed-note formats, mutated, never
    /// panic; a mutated verifier key that still opens the log's note is the
    /// log's key.
    #[test]
    fn note_keys_parse_without_panic_and_mutants_never_verify(
        seed in any::<Index>(),
        edits in byte_edits(4),
    ) {
        let world = &*WORLD;
        let mut keys: Vec<String> = corpus("note-key")
            .into_iter()
            .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
            .collect();
        keys.push(world.signer.verifier().to_string());
        keys.push(world.signer.to_private_key());
        let key = apply_bytes(keys[seed.index(keys.len())].as_bytes(), &edits);
        let Ok(key) = String::from_utf8(key) else { return Ok(()) };
        let _ = check_name(&key);
        if let Ok(signer) = NoteSigner::from_private_key(&key) {
            prop_assert!(check_name(signer.name()).is_ok());
        }
        if let Ok(verifier) = NoteVerifier::parse(&key)
            && verifier.open(&world.notes[0]).is_ok()
        {
            prop_assert_eq!(verifier, world.signer.verifier());
        }
    }

    /// Arbitrary text never panics the note and checkpoint parsers.
    #[test]
    fn checkpoint_parsers_never_panic_on_arbitrary_text(text in "\\PC{0,200}|[0-9a-z/.+=\n\u{2014} ]{0,200}") {
        let verifier = WORLD.signer.verifier();
        let _ = Checkpoint::parse_body(&text);
        prop_assert!(verify_checkpoint(&text, &verifier).is_err());
        let _ = NoteVerifier::parse(&text);
        let _ = NoteSigner::from_private_key(&text);
    }
}
