//! Cosignatures against the specs' examples, against another
//! implementation's ML-DSA-44 signature, and against an independent
//! implementation of the signed messages written here from the spec, with
//! ed25519-dalek and ml-dsa called directly.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ml_dsa::MlDsa44;
use sha2::{Digest, Sha256};

use super::*;
use crate::checkpoint::{Checkpoint, NoteSigner};
use crate::hash::Hash;
use crate::note::parse_signature_line;

/// The ML-DSA-44 log key and a checkpoint it signed (timestamp 0), from
/// filippo.io/torchwood's litewitness tests (`testdata/mldsa.txt`): an
/// implementation of tlog-cosignature independent of this one.
const TORCHWOOD_VKEY: &str = include_str!("testdata/torchwood_mldsa.vkey");
const TORCHWOOD_NOTE: &str = include_str!("testdata/torchwood_mldsa.note");

const ROOT_B64: &str = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";

fn text(origin: &str, size: u64) -> String {
    format!("{origin}\n{size}\n{ROOT_B64}\n")
}

/// The Ed25519 message, from the spec's prose.
fn spec_ed25519_message(t: u64, text: &str) -> Vec<u8> {
    let mut m = b"cosignature/v1\n".to_vec();
    m.extend_from_slice(format!("time {t}\n").as_bytes());
    m.extend_from_slice(text.as_bytes());
    m
}

/// The ML-DSA-44 `cosigned_message`, from the spec's struct.
fn spec_ml_dsa_message(name: &str, t: u64, origin: &str, end: u64, root: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(b"subtree/v1\n\x00");
    m.push(name.len() as u8);
    m.extend_from_slice(name.as_bytes());
    m.extend_from_slice(&t.to_be_bytes());
    m.push(origin.len() as u8);
    m.extend_from_slice(origin.as_bytes());
    m.extend_from_slice(&0u64.to_be_bytes());
    m.extend_from_slice(&end.to_be_bytes());
    m.extend_from_slice(root);
    m
}

fn spec_key_id(name: &str, ty: u8, key: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ty]);
    h.update(key);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// Splits a signature line into name, key id, timestamp and signature.
fn spec_split(line: &str) -> (String, [u8; 4], u64, Vec<u8>) {
    let rest = line
        .trim_end_matches('\n')
        .strip_prefix("\u{2014} ")
        .expect("em dash");
    let (name, b64) = rest.split_once(' ').expect("space");
    let blob = B64.decode(b64).expect("base64");
    let id = [blob[0], blob[1], blob[2], blob[3]];
    let t = u64::from_be_bytes(blob[4..12].try_into().expect("8 bytes"));
    (name.to_owned(), id, t, blob[12..].to_vec())
}

#[test]
fn verifies_torchwoods_ml_dsa_44_signature() {
    let verifier = CosignerVerifier::parse(TORCHWOOD_VKEY).expect("vkey parses");
    assert_eq!(verifier.name(), "example.com/mldsa-log");
    assert_eq!(verifier.alg(), CosignatureAlg::MlDsa44);
    assert_eq!(verifier.key_id(), [0xb5, 0xdf, 0x45, 0xc5]);
    assert_eq!(verifier.to_string(), TORCHWOOD_VKEY.trim_end());
    let parsed = crate::note::parse_note(TORCHWOOD_NOTE).expect("note parses");
    assert_eq!(verifier.verify(parsed.text, &parsed.signatures[0]), Ok(0));
    // One bit anywhere in the text or the signature, and it fails.
    let tampered = TORCHWOOD_NOTE.replacen("\n1\n", "\n2\n", 1);
    let parsed = crate::note::parse_note(&tampered).expect("note parses");
    assert_eq!(
        verifier.verify(parsed.text, &parsed.signatures[0]),
        Err(CosignError::BadSignature("example.com/mldsa-log".into()))
    );
}

#[test]
fn reads_the_timestamp_of_the_spec_example() {
    // tlog-cosignature's example line; its message has `time 1679315147`.
    let line = parse_signature_line(
        "\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==",
    )
    .expect("parses");
    assert_eq!(line.signature.len(), 8 + 64);
    let t = u64::from_be_bytes(line.signature[..8].try_into().expect("8 bytes"));
    assert_eq!(t, 1679315147);
}

#[test]
fn ed25519_cosignatures_match_an_implementation_from_the_spec() {
    let seed = [7u8; 32];
    let cosigner =
        Cosigner::from_seed("witness.example/w1", CosignatureAlg::Ed25519, seed).expect("key");
    let dalek = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = dalek.verifying_key();
    // The vkey, key id and private key, written from signed-note.
    let id = spec_key_id("witness.example/w1", 0x04, public.as_bytes());
    let mut material = vec![0x04];
    material.extend_from_slice(public.as_bytes());
    let vkey = format!(
        "witness.example/w1+{}+{}",
        hex::encode(id),
        B64.encode(&material)
    );
    assert_eq!(cosigner.verifier().to_string(), vkey);
    assert_eq!(cosigner.verifier().key_id(), id);
    assert_eq!(
        CosignerVerifier::parse(&vkey).as_ref(),
        Ok(cosigner.verifier())
    );
    let restored = Cosigner::from_private_key(&cosigner.to_private_key()).expect("round trip");
    assert_eq!(restored.verifier(), cosigner.verifier());

    // Ours, checked by hand with dalek.
    let body = text("example.com/behind-the-sofa", 20852163);
    let line = cosigner.cosign(&body, 1679315147).expect("cosigns");
    let (name, line_id, t, sig) = spec_split(&line);
    assert_eq!(
        (name.as_str(), line_id, t),
        ("witness.example/w1", id, 1679315147)
    );
    let sig = ed25519_dalek::Signature::from_slice(&sig).expect("64 bytes");
    public
        .verify_strict(&spec_ed25519_message(t, &body), &sig)
        .expect("dalek verifies our cosignature");
    // Ed25519 is deterministic: the same line again.
    assert_eq!(cosigner.cosign(&body, 1679315147), Ok(line.clone()));

    // Theirs (made by hand with dalek), checked by ours.
    use ed25519_dalek::Signer;
    let t = 1_700_000_000u64;
    let theirs = dalek.sign(&spec_ed25519_message(t, &body));
    let mut blob = id.to_vec();
    blob.extend_from_slice(&t.to_be_bytes());
    blob.extend_from_slice(&theirs.to_bytes());
    let their_line = format!("\u{2014} witness.example/w1 {}\n", B64.encode(&blob));
    assert_eq!(cosigner.verifier().verify_line(&body, &their_line), Ok(t));
    // Extension lines are covered by Ed25519 cosignatures.
    let extended = format!("{body}extension\n");
    let line = cosigner.cosign(&extended, 5).expect("cosigns extensions");
    assert_eq!(cosigner.verifier().verify_line(&extended, &line), Ok(5));
    assert!(cosigner.verifier().verify_line(&body, &line).is_err());
}

#[test]
fn ml_dsa_44_cosignatures_match_an_implementation_from_the_spec() {
    let seed = [9u8; 32];
    let cosigner =
        Cosigner::from_seed("witness.example/pq", CosignatureAlg::MlDsa44, seed).expect("key");
    let direct = ml_dsa::SigningKey::<MlDsa44>::from_seed(&ml_dsa::Seed::from(seed));
    let public: &ml_dsa::VerifyingKey<MlDsa44> = direct.as_ref();
    let encoded = public.encode();
    assert_eq!(encoded.len(), ML_DSA_44_PUBLIC_KEY_LEN);
    let id = spec_key_id("witness.example/pq", 0x06, &encoded);
    let mut material = vec![0x06];
    material.extend_from_slice(&encoded);
    let vkey = format!(
        "witness.example/pq+{}+{}",
        hex::encode(id),
        B64.encode(&material)
    );
    assert_eq!(cosigner.verifier().to_string(), vkey);
    let restored = Cosigner::from_private_key(&cosigner.to_private_key()).expect("round trip");
    assert_eq!(restored.verifier(), cosigner.verifier());

    let body = text("example.com/log", 20852163);
    let root = B64.decode(ROOT_B64).expect("root");
    let line = cosigner.cosign(&body, 1679315147).expect("cosigns");
    let (name, line_id, t, sig) = spec_split(&line);
    assert_eq!(
        (name.as_str(), line_id, t),
        ("witness.example/pq", id, 1679315147)
    );
    assert_eq!(sig.len(), ML_DSA_44_SIGNATURE_LEN);
    let message = spec_ml_dsa_message("witness.example/pq", t, "example.com/log", 20852163, &root);
    let sig = ml_dsa::Signature::<MlDsa44>::try_from(sig.as_slice()).expect("decodes");
    assert!(
        public.verify_with_context(&message, &[], &sig),
        "ml-dsa verifies our cosignature over the spec's message (empty context)"
    );
    // The message commits to the cosigner's name: another name fails.
    let other = spec_ml_dsa_message("witness.example/px", t, "example.com/log", 20852163, &root);
    assert!(!public.verify_with_context(&other, &[], &sig));
    // Hedged: two signatures differ, both verify.
    let again = cosigner.cosign(&body, 1679315147).expect("cosigns");
    assert_ne!(again, line);
    assert_eq!(
        cosigner.verifier().verify_line(&body, &again),
        Ok(1679315147)
    );

    // Theirs (ml-dsa called directly), checked by ours.
    let t = 1_700_000_000u64;
    let expanded = ml_dsa::ExpandedSigningKey::<MlDsa44>::from_seed(&ml_dsa::Seed::from(seed));
    let message = spec_ml_dsa_message("witness.example/pq", t, "example.com/log", 20852163, &root);
    let theirs = expanded.sign_deterministic(&message, &[]).expect("signs");
    let mut blob = id.to_vec();
    blob.extend_from_slice(&t.to_be_bytes());
    blob.extend_from_slice(&theirs.encode());
    let their_line = format!("\u{2014} witness.example/pq {}", B64.encode(&blob));
    assert_eq!(cosigner.verifier().verify_line(&body, &their_line), Ok(t));
    // Extension lines cannot be cosigned, nor accepted as cosigned.
    let extended = format!("{body}extension\n");
    assert_eq!(
        cosigner.cosign(&extended, 1),
        Err(CosignError::ExtensionLines)
    );
    assert_eq!(
        cosigner.verifier().verify_line(&extended, &their_line),
        Err(CosignError::ExtensionLines)
    );
}

#[test]
fn refuses_malformed_cosignature_lines_field_by_field() {
    for alg in [CosignatureAlg::Ed25519, CosignatureAlg::MlDsa44] {
        let cosigner = Cosigner::from_seed("w.example/1", alg, [3; 32]).expect("key");
        let v = cosigner.verifier();
        let body = text("example.com/log", 5);
        let line = cosigner.cosign(&body, 1000).expect("cosigns");
        let (_, id, t, sig) = spec_split(&line);
        let build = |name: &str, id: &[u8], t: &[u8], sig: &[u8]| {
            let mut blob = id.to_vec();
            blob.extend_from_slice(t);
            blob.extend_from_slice(sig);
            format!("\u{2014} {name} {}", B64.encode(blob))
        };
        let tb = t.to_be_bytes();
        assert_eq!(
            v.verify_line(&body, &build("w.example/1", &id, &tb, &sig)),
            Ok(1000)
        );
        // Another name or key id: not this key's line.
        assert!(matches!(
            v.verify_line(&body, &build("w.example/2", &id, &tb, &sig)),
            Err(CosignError::OtherKey(_))
        ));
        let mut other_id = id;
        other_id[3] ^= 1;
        assert!(matches!(
            v.verify_line(&body, &build("w.example/1", &other_id, &tb, &sig)),
            Err(CosignError::OtherKey(_))
        ));
        // The timestamp is signed.
        let later = (t + 1).to_be_bytes();
        assert!(matches!(
            v.verify_line(&body, &build("w.example/1", &id, &later, &sig)),
            Err(CosignError::BadSignature(_))
        ));
        let huge = (MAX_TIMESTAMP + 1).to_be_bytes();
        assert!(matches!(
            v.verify_line(&body, &build("w.example/1", &id, &huge, &sig)),
            Err(CosignError::Timestamp(_))
        ));
        // Truncated, extended, flipped signatures.
        for bad_sig in [
            sig[..sig.len() - 1].to_vec(),
            [sig.clone(), vec![0]].concat(),
            Vec::new(),
            {
                let mut s = sig.clone();
                s[0] ^= 0x80;
                s
            },
            {
                let mut s = sig.clone();
                let last = s.len() - 1;
                s[last] ^= 1;
                s
            },
        ] {
            assert!(
                matches!(
                    v.verify_line(&body, &build("w.example/1", &id, &tb, &bad_sig)),
                    Err(CosignError::BadSignature(_))
                ),
                "{alg}: accepted a bad signature of {} bytes",
                bad_sig.len()
            );
        }
        // Every line of the checkpoint is signed.
        for other in [
            text("example.com/other", 5),
            text("example.com/log", 6),
            format!("example.com/log\n5\n{}\n", B64.encode([1u8; 32])),
        ] {
            assert!(matches!(
                v.verify_line(&other, &line),
                Err(CosignError::BadSignature(_))
            ));
        }
        // Not a signature line, not a checkpoint.
        assert!(matches!(
            v.verify_line(&body, "- w.example/1 AAAA"),
            Err(CosignError::Note(_))
        ));
        assert!(matches!(
            v.verify_line("not a checkpoint\n", &line),
            Err(CosignError::NotACheckpoint(_))
        ));
        // Size zero needs the empty tree's root.
        assert_eq!(
            cosigner.cosign(&text("example.com/log", 0), 1),
            Err(CosignError::EmptyTreeRoot)
        );
        let empty = Checkpoint {
            origin: "example.com/log".into(),
            size: 0,
            root: Hash::EMPTY_ROOT,
        }
        .body();
        let line = cosigner.cosign(&empty, 1).expect("cosigns the empty tree");
        assert_eq!(v.verify_line(&empty, &line), Ok(1));
    }
}

#[test]
fn refuses_malformed_vkeys_and_private_keys() {
    let good = Cosigner::from_seed("w.example/1", CosignatureAlg::Ed25519, [1; 32])
        .expect("key")
        .verifier()
        .to_string();
    let (name_id, key) = good.rsplit_once('+').expect("three parts");
    let material = B64.decode(key).expect("base64");
    let with = |m: &[u8]| format!("{name_id}+{}", B64.encode(m));
    // Type 0x01 (a log key) is not a cosigner key.
    assert_eq!(
        CosignerVerifier::parse(&with(&[&[1u8][..], &material[1..]].concat())),
        Err(CosignError::UnsupportedType(1))
    );
    // Right type, wrong length.
    assert!(matches!(
        CosignerVerifier::parse(&with(&material[..32])),
        Err(CosignError::MalformedKey(_))
    ));
    assert!(matches!(
        CosignerVerifier::parse(&with(&[&[6u8][..], &material[1..]].concat())),
        Err(CosignError::MalformedKey(_))
    ));
    // Another name: the key id no longer matches.
    assert_eq!(
        CosignerVerifier::parse(&good.replacen("w.example/1", "w.example/2", 1)),
        Err(CosignError::KeyIdMismatch)
    );
    for bad in [
        "",
        "w.example/1",
        "w example+00000000+BA==",
        "+00000000+BA==",
    ] {
        assert!(CosignerVerifier::parse(bad).is_err(), "accepted {bad:?}");
    }
    assert!(
        Cosigner::from_private_key(&good).is_err(),
        "a vkey is no private key"
    );
    let private = Cosigner::from_seed("w.example/1", CosignatureAlg::MlDsa44, [1; 32])
        .expect("key")
        .to_private_key();
    assert!(matches!(
        Cosigner::from_private_key(&private.replacen("w.example/1", "w.example/2", 1)),
        Err(CosignError::KeyIdMismatch)
    ));
    assert!(Cosigner::from_private_key(&private).is_ok());
    assert!(Cosigner::generate("bad name", CosignatureAlg::Ed25519).is_err());
    assert_eq!("ml-dsa-44".parse(), Ok(CosignatureAlg::MlDsa44));
    assert_eq!("ed25519".parse(), Ok(CosignatureAlg::Ed25519));
    assert!("rsa".parse::<CosignatureAlg>().is_err());
}

/// A log, three witnesses and a note the log signed.
struct Fixture {
    log: NoteSigner,
    witnesses: Vec<Cosigner>,
    note: String,
}

fn fixture() -> Fixture {
    let log = NoteSigner::from_seed("example.com/log", [5; 32]).expect("log key");
    let witnesses = vec![
        Cosigner::from_seed("w.example/a", CosignatureAlg::Ed25519, [10; 32]).expect("a"),
        Cosigner::from_seed("w.example/b", CosignatureAlg::MlDsa44, [11; 32]).expect("b"),
        Cosigner::from_seed("w.example/c", CosignatureAlg::Ed25519, [12; 32]).expect("c"),
    ];
    let note = log.sign_note(&text("example.com/log", 42));
    Fixture {
        log,
        witnesses,
        note,
    }
}

impl Fixture {
    fn verifiers(&self) -> Vec<CosignerVerifier> {
        self.witnesses
            .iter()
            .map(|w| w.verifier().clone())
            .collect()
    }

    fn cosigned_by(&self, which: &[(usize, u64)]) -> String {
        let text = text("example.com/log", 42);
        let lines: String = which
            .iter()
            .map(|&(i, t)| self.witnesses[i].cosign(&text, t).expect("cosigns"))
            .collect();
        attach(&self.note, &lines).expect("attaches")
    }
}

#[test]
fn a_quorum_counts_distinct_listed_witnesses() {
    let f = fixture();
    let log = f.log.verifier();
    let all = f.verifiers();
    let note = f.cosigned_by(&[(0, 300), (1, 100), (2, 200)]);
    let cosigned = verify_quorum(&note, &log, &all, 3).expect("three of three");
    assert_eq!(cosigned.checkpoint.checkpoint.size, 42);
    assert_eq!(cosigned.checkpoint.note, note);
    let names: Vec<&str> = cosigned
        .cosignatures
        .iter()
        .map(|c| c.witness.as_str())
        .collect();
    assert_eq!(names, ["w.example/a", "w.example/b", "w.example/c"]);
    assert_eq!(cosigned.earliest_time(), Some(100));
    assert_eq!(cosigned.time_vouched_by(2), Some(200));
    assert_eq!(cosigned.time_vouched_by(3), Some(300));
    assert_eq!(cosigned.time_vouched_by(4), None);
    assert_eq!(cosigned.time_vouched_by(0), None);

    // Two of three present: quorum 2 holds, quorum 3 names the missing one.
    let note = f.cosigned_by(&[(0, 300), (2, 200)]);
    assert!(verify_quorum(&note, &log, &all, 2).is_ok());
    assert_eq!(
        verify_quorum(&note, &log, &all, 3),
        Err(QuorumError::TooFew {
            needed: 3,
            got: 2,
            missing: vec!["w.example/b".into()]
        })
    );
    // A witness signing twice counts once, with its earliest time; a
    // witness listed twice is one witness.
    let note = f.cosigned_by(&[(0, 300), (0, 250)]);
    let twice = [all[0].clone(), all[0].clone()];
    assert_eq!(
        verify_quorum(&note, &log, &twice, 2),
        Err(QuorumError::Impossible {
            quorum: 2,
            witnesses: 1
        })
    );
    let one = verify_quorum(&note, &log, &all, 1).expect("one");
    assert_eq!(one.cosignatures.len(), 1);
    assert_eq!(one.earliest_time(), Some(250));
    // Quorum 0: the log's signature alone.
    assert!(verify_quorum(&f.note, &log, &[], 0).is_ok());
}

#[test]
fn a_quorum_ignores_strangers_and_refuses_bad_lines_from_listed_keys() {
    let f = fixture();
    let log = f.log.verifier();
    let all = f.verifiers();
    let text = text("example.com/log", 42);
    // Cosignatures from unlisted witnesses do not count, and do not harm.
    let stranger =
        Cosigner::from_seed("w.example/z", CosignatureAlg::MlDsa44, [99; 32]).expect("stranger");
    // Same name as a listed witness, another key: ignored too.
    let impostor =
        Cosigner::from_seed("w.example/a", CosignatureAlg::Ed25519, [98; 32]).expect("impostor");
    let lines = [
        stranger.cosign(&text, 1).expect("cosigns"),
        impostor.cosign(&text, 1).expect("cosigns"),
        f.witnesses[1].cosign(&text, 7).expect("cosigns"),
    ]
    .concat();
    let note = attach(&f.note, &lines).expect("attaches");
    let got = verify_quorum(&note, &log, &all, 1).expect("one listed witness");
    assert_eq!(got.cosignatures.len(), 1);
    assert_eq!(got.cosignatures[0].witness, "w.example/b");
    assert!(matches!(
        verify_quorum(&note, &log, &all, 2),
        Err(QuorumError::TooFew { got: 1, .. })
    ));
    // A listed witness's cosignature over another checkpoint refuses the note.
    let other = f.witnesses[2]
        .cosign(&self::text("example.com/log", 41), 5)
        .expect("cosigns");
    let note = attach(&f.cosigned_by(&[(0, 1), (1, 2)]), &other).expect("attaches");
    assert!(matches!(
        verify_quorum(&note, &log, &all, 2),
        Err(QuorumError::BadCosignature { witness, .. }) if witness == "w.example/c"
    ));
    // No valid log signature: refused whatever the witnesses say.
    let other_log = NoteSigner::from_seed("example.com/log", [6; 32]).expect("key");
    assert!(matches!(
        verify_quorum(&note, &other_log.verifier(), &all, 0),
        Err(QuorumError::Log(_))
    ));
    // Attaching checks the lines' form.
    assert!(attach(&f.note, "not a line\n").is_err());
    assert!(attach("no note", &other).is_err());
}
