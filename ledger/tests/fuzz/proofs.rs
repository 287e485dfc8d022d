//! Inclusion and consistency proofs, built over the real tree and its fork
//! and then mutated: nothing panics, and nothing false verifies.

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;
use xgate_ledger::hash::root_of;
use xgate_ledger::proof::{MemoryLeaves, prove_consistency, prove_inclusion};
use xgate_ledger::{
    ConsistencyProof, Hash, InclusionProof, verify_checkpoint, verify_consistency, verify_inclusion,
};

use crate::mutate::{config, corpus, json_corpus};
use crate::{SHARED, SIZE, WORLD, root};

/// Edits of a proof: its sizes, index and hashes.
#[derive(Clone, Debug)]
enum ProofEdit {
    Index(u64),
    Size(u64),
    Old(u64),
    FlipHash(Index, Index, u8),
    Drop(Index),
    Duplicate(Index),
    Swap(Index, Index),
    Push(Hash),
    Truncate(Index),
    /// Replace a hash with one of the real tree's leaves or nodes.
    Real(Index, Index),
}

fn size_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0..=SIZE + 2,
        1 => prop::sample::select(vec![u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1, 1 << 32]),
        1 => any::<u64>(),
    ]
}

fn proof_edits() -> impl Strategy<Value = Vec<ProofEdit>> {
    let edit = prop_oneof![
        2 => size_value().prop_map(ProofEdit::Index),
        2 => size_value().prop_map(ProofEdit::Size),
        2 => size_value().prop_map(ProofEdit::Old),
        3 => (any::<Index>(), any::<Index>(), 0u8..8).prop_map(|(i, j, b)| ProofEdit::FlipHash(i, j, b)),
        2 => any::<Index>().prop_map(ProofEdit::Drop),
        1 => any::<Index>().prop_map(ProofEdit::Duplicate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(i, j)| ProofEdit::Swap(i, j)),
        1 => any::<[u8; 32]>().prop_map(|b| ProofEdit::Push(Hash(b))),
        1 => any::<Index>().prop_map(ProofEdit::Truncate),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(i, j)| ProofEdit::Real(i, j)),
    ];
    prop::collection::vec(edit, 1..4)
}

/// Applies `edits` to (index or old size, size, hashes).
fn apply_proof(
    mut a: u64,
    mut b: u64,
    mut hashes: Vec<Hash>,
    edits: &[ProofEdit],
) -> (u64, u64, Vec<Hash>) {
    let world = &*WORLD;
    for edit in edits {
        let n = hashes.len();
        match edit {
            ProofEdit::Index(v) | ProofEdit::Old(v) => a = *v,
            ProofEdit::Size(v) => b = *v,
            ProofEdit::FlipHash(i, j, bit) if n > 0 => {
                hashes[i.index(n)].0[j.index(32)] ^= 1 << bit
            }
            ProofEdit::Drop(i) if n > 0 => {
                hashes.remove(i.index(n));
            }
            ProofEdit::Duplicate(i) if n > 0 => hashes.insert(i.index(n), hashes[i.index(n)]),
            ProofEdit::Swap(i, j) if n > 0 => hashes.swap(i.index(n), j.index(n)),
            ProofEdit::Push(h) => hashes.push(*h),
            ProofEdit::Truncate(i) => hashes.truncate(i.index(n + 1)),
            ProofEdit::Real(i, j) if n > 0 => {
                let lo = j.index(world.real.len());
                let hi = lo + 1 + i.index(world.real.len() - lo);
                hashes[i.index(n)] = root_of(&world.real[lo..hi]);
            }
            _ => {}
        }
    }
    (a, b, hashes)
}

/// Proof seeds: `{"inclusion": [index, size]}` or `{"consistency": [old,
/// new]}` name a real proof (over the real tree, or `"tree": "fork"`);
/// `"hashes"` (standard base64) replaces its path.
static PROOF_SEEDS: LazyLock<Vec<ProofSeed>> = LazyLock::new(load_proof_seeds);

/// Inclusion or consistency, index or old size, size, path, over the fork.
type ProofSeed = (bool, u64, u64, Vec<Hash>, bool);

fn load_proof_seeds() -> Vec<ProofSeed> {
    let world = &*WORLD;
    json_corpus("proof")
        .into_iter()
        .map(|(name, seed)| {
            let fork = seed["tree"] == "fork";
            let leaves = MemoryLeaves(if fork {
                world.fork.clone()
            } else {
                world.real.clone()
            });
            let pair = |k: &str| {
                seed[k]
                    .as_array()
                    .map(|p| (p[0].as_u64().expect("a"), p[1].as_u64().expect("b")))
            };
            let (inclusion, a, b) = match (pair("inclusion"), pair("consistency")) {
                (Some((a, b)), _) => (true, a, b),
                (_, Some((a, b))) => (false, a, b),
                _ => panic!("proof seed {name}: no inclusion or consistency"),
            };
            let built = |a: u64, b: u64| -> Vec<Hash> {
                let real = b <= SIZE;
                match inclusion {
                    true if a < b && real => prove_inclusion(&leaves, a, b).expect("path").hashes,
                    false if 0 < a && a <= b && real => {
                        prove_consistency(&leaves, a, b).expect("proof").hashes
                    }
                    _ => Vec::new(),
                }
            };
            let hashes = match seed.get("hashes").and_then(Value::as_array) {
                // Garbage base64 and wrong lengths are dropped, as a
                // receipt parser must drop them.
                Some(list) => list
                    .iter()
                    .filter_map(|h| B64.decode(h.as_str()?).ok())
                    .filter_map(|b| Hash::try_from(b).ok())
                    .collect(),
                None => built(a, b),
            };
            (inclusion, a, b, hashes, fork)
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]


    /// Inclusion proofs with wrong sizes, indices past the end, truncated,
    /// extra or altered hashes never panic, and verify only for a leaf that
    /// is at that index in the tree whose root is checked.
    #[test]
    fn inclusion_proof_mutations_never_verify_a_false_claim(
        seed in any::<Index>(),
        edits in proof_edits(),
        leaf in any::<Index>(),
    ) {
        let world = &*WORLD;
        let seeds: Vec<_> = PROOF_SEEDS.iter().filter(|s| s.0).collect();
        let (_, index, size, hashes, fork) = (*seeds[seed.index(seeds.len())]).clone();
        let (index, size, hashes) = apply_proof(index, size, hashes, &edits);
        let tree = if fork { &world.fork } else { &world.real };
        // The leaf checked: usually the seed's own, sometimes any other.
        let leaf_at = if leaf.index(4) == 0 { leaf.index(tree.len()) as u64 } else { index };
        let Some(&claimed) = tree.get(leaf_at as usize) else { return Ok(()) };
        let proof = InclusionProof { leaf_index: index, tree_size: size, hashes };
        for (leaves, checked) in [(&world.real, "real"), (&world.fork, "fork")] {
            // The root checked against is the real root of the size the
            // proof claims, as a checkpoint gives it; past the tree there
            // is no such root, and only the absence of panics is checked.
            if size > SIZE {
                let _ = verify_inclusion(&proof, &claimed, &root(leaves, SIZE));
                continue;
            }
            if verify_inclusion(&proof, &claimed, &root(leaves, size)).is_ok() {
                prop_assert!(index < size);
                prop_assert_eq!(leaves[index as usize], claimed, "false inclusion in the {} tree", checked);
            }
        }
    }

    /// Consistency proofs, mutated, never panic, and verify only when the
    /// old root is a prefix of the new one in the same history.
    #[test]
    fn consistency_proof_mutations_never_verify_a_fork(
        seed in any::<Index>(),
        edits in proof_edits(),
        trees in (any::<bool>(), any::<bool>()),
    ) {
        let world = &*WORLD;
        let seeds: Vec<_> = PROOF_SEEDS.iter().filter(|s| !s.0).collect();
        let (_, old, new, hashes, _) = (*seeds[seed.index(seeds.len())]).clone();
        let (old, new, hashes) = apply_proof(old, new, hashes, &edits);
        let proof = ConsistencyProof { old_size: old, new_size: new, hashes };
        let pick = |fork: bool| if fork { &world.fork } else { &world.real };
        let (a, b) = (pick(trees.0), pick(trees.1));
        let (old_root, new_root) = (root(a, old.min(SIZE)), root(b, new.min(SIZE)));
        let accepted = verify_consistency(&proof, &old_root, &new_root).is_ok();
        // Past the tree the roots are not of the sizes claimed: only the
        // absence of panics is checked there.
        if accepted && new <= SIZE {
            prop_assert!(old <= new);
            prop_assert!(trees.0 == trees.1 || old <= SHARED, "accepted a fork as consistent");
        }
    }
}

/// Every seed names what it is; the valid ones verify, so the mutations
/// start from real proofs.
#[test]
fn valid_seeds_verify() {
    let world = &*WORLD;
    let verifier = world.signer.verifier();
    for note in &world.notes[..world.signed.len()] {
        verify_checkpoint(note, &verifier).expect("signed seed verifies");
    }
    for (name, _) in corpus("proof") {
        assert!(
            name.starts_with("valid-") || name.starts_with("invalid-"),
            "{name}"
        );
    }
    let valid = corpus("proof")
        .iter()
        .filter(|(n, _)| n.starts_with("valid-"))
        .count();
    let seeds = PROOF_SEEDS.clone();
    let mut ok = 0;
    for (inclusion, a, b, hashes, fork) in seeds {
        let tree = if fork { &world.fork } else { &world.real };
        if inclusion {
            let proof = InclusionProof {
                leaf_index: a,
                tree_size: b,
                hashes,
            };
            if a < b
                && b <= SIZE
                && verify_inclusion(&proof, &tree[a as usize], &root(tree, b)).is_ok()
            {
                ok += 1;
            }
        } else {
            let proof = ConsistencyProof {
                old_size: a,
                new_size: b,
                hashes,
            };
            if a <= b
                && b <= SIZE
                && verify_consistency(&proof, &root(tree, a), &root(tree, b)).is_ok()
            {
                ok += 1;
            }
        }
    }
    assert_eq!(ok, valid, "exactly the valid- seeds verify");
}
