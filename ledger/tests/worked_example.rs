//! Pins every value in the worked example of docs/ledger.md, so the document
//! an auditor checks by hand stays true. The same values were checked with
//! Python's hashlib and the `cryptography` package when the document was
//! written.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use xgate_ledger::{Log, NoteSigner, verify_checkpoint, verify_consistency, verify_inclusion};

fn b64(h: &xgate_ledger::Hash) -> String {
    B64.encode(h.as_bytes())
}

#[test]
fn worked_example_in_docs_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    let signer = NoteSigner::from_seed("example.org/xgate", seed).expect("signer");
    assert_eq!(
        signer.to_private_key(),
        "PRIVATE+KEY+example.org/xgate+4e32c76a+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"
    );
    assert_eq!(
        signer.verifier().to_string(),
        "example.org/xgate+4e32c76a+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
    );

    let log = Log::create_with_signer(dir.path(), signer, &Default::default()).expect("log");
    log.append_batch(&["hello", "world", "xgate"])
        .expect("append");

    let leaves: Vec<String> = (0..3)
        .map(|i| b64(&log.leaf_hash(i).expect("leaf")))
        .collect();
    assert_eq!(
        leaves,
        [
            "iipcm3aIJ95alVLDigRMZpWcaPbS8htSYK9U0vh9uCc=",
            "rqPLszb01JTYtaFXrt/EgKRabefAlo4IVDOyFPm0Hvc=",
            "1LFPrgBOYHEh05nb3cw5N6ZCP/p79WMMUSM5oVWN1mM=",
        ]
    );
    assert_eq!(
        b64(&log.root_at(2).expect("root")),
        "JCMzOarc7fKH0mJBPwPAKOuNs5ft0yooeAkRUbmb8g8="
    );
    let root = log.root_at(3).expect("root");
    assert_eq!(b64(&root), "/XoWuKfgAqYF6T+8JueTYVZ+OtZxPNmQtvs3oVgtzeE=");

    let inclusion = log.inclusion(0, 3).expect("inclusion");
    let path: Vec<String> = inclusion.hashes.iter().map(b64).collect();
    assert_eq!(path, [leaves[1].as_str(), leaves[2].as_str()]);
    verify_inclusion(&inclusion, &log.leaf_hash(0).expect("leaf"), &root).expect("verifies");

    let consistency = log.consistency(2, 3).expect("consistency");
    let path: Vec<String> = consistency.hashes.iter().map(b64).collect();
    assert_eq!(path, [leaves[2].as_str()]);
    verify_consistency(&consistency, &log.root_at(2).expect("root"), &root).expect("verifies");

    let checkpoint = log.checkpoint().expect("checkpoint");
    assert_eq!(
        checkpoint.note,
        "example.org/xgate\n3\n/XoWuKfgAqYF6T+8JueTYVZ+OtZxPNmQtvs3oVgtzeE=\n\n\
         \u{2014} example.org/xgate TjLHavB0eiKjxIDZQjtzNgTFwr+en8BywYWGIm6d8WShwtCGITyipTbmC+mRyGm6p7WK05LKKP9vUMfFZl5f6oOfXwM=\n"
    );
    verify_checkpoint(&checkpoint.note, &log.verifier()).expect("verifies");
}
