//! Known answers from the RFC 6962 reference test data: the 8-leaf set used by
//! the Certificate Transparency implementations, as published in
//! transparency-dev/merkle (`testonly/constants.go`, `proof/verify_test.go`).
//!
//! The log on a real sled store must produce these roots and proofs to the
//! byte, and the verifiers must accept them and refuse every corruption.

use xgate_ledger::{
    ConsistencyProof, Hash, InclusionProof, Log, OpenOptions, leaf_hash, verify_consistency,
    verify_inclusion,
};

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Roots for tree sizes 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (leaf index, tree size, audit path).
const INCLUSION: [(u64, u64, &[&str]); 5] = [
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// (old size, new size, proof).
const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn h(hex_str: &str) -> Hash {
    Hash::from_slice(&hex::decode(hex_str).expect("hex")).expect("32 bytes")
}

fn hashes(list: &[&str]) -> Vec<Hash> {
    list.iter().map(|s| h(s)).collect()
}

fn reference_log() -> (tempfile::TempDir, Log<xgate_ledger::DiskStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("open");
    for leaf in LEAVES {
        log.append(&hex::decode(leaf).expect("hex"))
            .expect("append");
    }
    (dir, log)
}

#[test]
fn roots_match_the_reference_for_every_size() {
    let (_dir, log) = reference_log();
    for (size, root) in ROOTS.iter().enumerate() {
        assert_eq!(
            log.root_at(size as u64).expect("root"),
            h(root),
            "size {size}"
        );
    }
}

#[test]
fn rs_merkle_with_the_rfc_hasher_gives_the_reference_roots() {
    let leaves: Vec<Hash> = LEAVES
        .iter()
        .map(|l| leaf_hash(&hex::decode(l).expect("hex")))
        .collect();
    for (size, root) in ROOTS.iter().enumerate() {
        assert_eq!(
            xgate_ledger::hash::root_of(&leaves[..size]),
            h(root),
            "size {size}"
        );
    }
}

#[test]
fn inclusion_proofs_match_the_reference() {
    let (_dir, log) = reference_log();
    for (index, size, path) in INCLUSION {
        let proof = log.inclusion(index, size).expect("proof");
        assert_eq!(proof.hashes, hashes(path), "leaf {index} in size {size}");
        let leaf = leaf_hash(&hex::decode(LEAVES[index as usize]).expect("hex"));
        verify_inclusion(&proof, &leaf, &h(ROOTS[size as usize])).expect("verifies");
    }
}

#[test]
fn consistency_proofs_match_the_reference() {
    let (_dir, log) = reference_log();
    for (old, new, path) in CONSISTENCY {
        let proof = log.consistency(old, new).expect("proof");
        assert_eq!(proof.hashes, hashes(path), "{old} -> {new}");
        verify_consistency(&proof, &h(ROOTS[old as usize]), &h(ROOTS[new as usize]))
            .expect("verifies");
    }
}

#[test]
fn inclusion_verifier_refuses_every_corruption() {
    let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
    for (index, size, path) in INCLUSION {
        let leaf = leaf_hash(&hex::decode(LEAVES[index as usize]).expect("hex"));
        let root = h(ROOTS[size as usize]);
        let good = InclusionProof {
            leaf_index: index,
            tree_size: size,
            hashes: hashes(path),
        };
        let mut probes = vec![
            InclusionProof {
                leaf_index: index.wrapping_sub(1),
                ..good.clone()
            },
            InclusionProof {
                leaf_index: index + 1,
                ..good.clone()
            },
            InclusionProof {
                leaf_index: index ^ 2,
                ..good.clone()
            },
            InclusionProof {
                tree_size: size * 2,
                ..good.clone()
            },
            InclusionProof {
                tree_size: size / 2,
                ..good.clone()
            },
        ];
        let mut longer = good.clone();
        longer.hashes.push(root);
        probes.push(longer);
        let mut front = good.clone();
        front.hashes.insert(0, root);
        probes.push(front);
        for i in 0..good.hashes.len() {
            let mut flipped = good.clone();
            flipped.hashes[i].0[0] ^= 8;
            probes.push(flipped);
        }
        if !good.hashes.is_empty() {
            let mut shorter = good.clone();
            shorter.hashes.pop();
            probes.push(shorter);
        }
        for probe in &probes {
            assert!(
                verify_inclusion(probe, &leaf, &root).is_err(),
                "accepted {probe:?}"
            );
        }
        assert!(verify_inclusion(&good, &some, &root).is_err());
        assert!(verify_inclusion(&good, &leaf, &Hash::EMPTY_ROOT).is_err());
        assert!(verify_inclusion(&good, &leaf, &some).is_err());
    }
}

#[test]
fn consistency_verifier_refuses_every_corruption() {
    for (old, new, path) in CONSISTENCY
        .iter()
        .copied()
        .filter(|(_, _, p)| !p.is_empty())
    {
        let (r1, r2) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
        let good = ConsistencyProof {
            old_size: old,
            new_size: new,
            hashes: hashes(path),
        };
        let mut probes = vec![
            (
                ConsistencyProof {
                    old_size: old - 1,
                    ..good.clone()
                },
                r1,
                r2,
            ),
            (
                ConsistencyProof {
                    old_size: old + 1,
                    ..good.clone()
                },
                r1,
                r2,
            ),
            (
                ConsistencyProof {
                    old_size: old ^ 2,
                    ..good.clone()
                },
                r1,
                r2,
            ),
            (
                ConsistencyProof {
                    new_size: new * 2,
                    ..good.clone()
                },
                r1,
                r2,
            ),
            (
                ConsistencyProof {
                    new_size: new / 2,
                    ..good.clone()
                },
                r1,
                r2,
            ),
            (good.clone(), r2, r1),
            (good.clone(), Hash::EMPTY_ROOT, r2),
            (good.clone(), r1, Hash::EMPTY_ROOT),
            (
                ConsistencyProof {
                    hashes: vec![],
                    ..good.clone()
                },
                r1,
                r2,
            ),
        ];
        for extra in [r1, r2, good.hashes[0]] {
            let mut p = good.clone();
            p.hashes.push(extra);
            probes.push((p.clone(), r1, r2));
            let mut p = good.clone();
            p.hashes.insert(0, extra);
            probes.push((p, r1, r2));
        }
        let mut shorter = good.clone();
        shorter.hashes.pop();
        probes.push((shorter, r1, r2));
        for i in 0..good.hashes.len() {
            let mut flipped = good.clone();
            flipped.hashes[i].0[0] ^= 16;
            probes.push((flipped, r1, r2));
        }
        for (probe, a, b) in &probes {
            assert!(
                verify_consistency(probe, a, b).is_err(),
                "accepted {probe:?}"
            );
        }
    }
}

#[test]
fn trivial_consistency_cases() {
    let empty = ConsistencyProof {
        old_size: 0,
        new_size: 5,
        hashes: vec![],
    };
    assert!(verify_consistency(&empty, &Hash::EMPTY_ROOT, &h(ROOTS[5])).is_ok());
    assert!(verify_consistency(&empty, &h(ROOTS[1]), &h(ROOTS[5])).is_err());
    let same = ConsistencyProof {
        old_size: 3,
        new_size: 3,
        hashes: vec![],
    };
    assert!(verify_consistency(&same, &h(ROOTS[3]), &h(ROOTS[3])).is_ok());
    assert!(verify_consistency(&same, &h(ROOTS[3]), &h(ROOTS[4])).is_err());
    let reversed = ConsistencyProof {
        old_size: 4,
        new_size: 3,
        hashes: vec![],
    };
    assert!(verify_consistency(&reversed, &h(ROOTS[4]), &h(ROOTS[3])).is_err());
    let padded = ConsistencyProof {
        old_size: 3,
        new_size: 3,
        hashes: vec![Hash::EMPTY_ROOT],
    };
    assert!(verify_consistency(&padded, &h(ROOTS[3]), &h(ROOTS[3])).is_err());
}
