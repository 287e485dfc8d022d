//! Helpers for the tests of witnessing: real `xgate witness` processes,
//! a gateway configured with them, and what its public listener serves.

use std::path::Path;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use xgate::client::{Client, EnvelopeSigner, Protocol};
use xgate_ledger::NoteVerifier;
use xgate_tests::Gateway;

use super::{body, id, runtime, submit, xgate};

/// `xgate witness init --dir DIR --name NAME --alg ALG`: the vkey it
/// prints last.
pub fn init_witness(dir: &Path, name: &str, alg: &str) -> String {
    let out = xgate()
        .run(
            &[
                "witness",
                "init",
                "--dir",
                &dir.display().to_string(),
                "--name",
                name,
                "--alg",
                alg,
            ],
            b"",
        )
        .expect_ok();
    out.lines().last().expect("a vkey line").trim().to_owned()
}

/// Writes a gateway configuration listing `witnesses` (URL, vkey) with
/// `quorum` and a 100 ms interval to `path`; returns the path as text.
pub fn witness_config(path: &Path, witnesses: &[(String, String)], quorum: usize) -> String {
    let mut toml = format!("witness_quorum = {quorum}\nwitness_interval_ms = 100\n");
    for (url, vkey) in witnesses {
        toml.push_str(&format!(
            "\n[[witnesses]]\nurl = \"{url}\"\nvkey = \"{vkey}\"\n"
        ));
    }
    std::fs::write(path, toml).expect("write config");
    path.display().to_string()
}

/// The checkpoint `gateway`'s public listener serves, if any, fetched with
/// no client certificate.
pub fn served_checkpoint(gateway: &Gateway, ca: &Path) -> Option<String> {
    runtime().block_on(async {
        let mut client =
            Client::anonymous(ca, gateway.public_url(), Protocol::Auto).expect("client");
        let reply = client
            .request(Method::GET, "/checkpoint", None, Vec::new())
            .await
            .expect("a response");
        (reply.status == StatusCode::OK)
            .then(|| String::from_utf8(reply.body.to_vec()).expect("utf-8"))
    })
}

/// The first checkpoint of at least `size` entries that `gateway`'s
/// public listener serves, signed by `log` (within 60 s).
pub fn served_at_least(gateway: &Gateway, ca: &Path, size: u64, log: &NoteVerifier) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(note) = served_checkpoint(gateway, ca)
            && xgate_ledger::verify_checkpoint(&note, log)
                .expect("log-signed")
                .size
                >= size
        {
            return note;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size} served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `n` records from state to treasury (bodies `TAG-0` ...), each
/// acknowledged at once; returns the last receipt as the gateway sent it.
pub fn send_records(gateway: &Gateway, pki: &Path, tag: &str, n: usize) -> Vec<u8> {
    runtime().block_on(async {
        let mut client =
            Client::for_agency(pki, &id("state"), gateway.url(), Protocol::Auto).expect("client");
        let signer = EnvelopeSigner::for_agency(pki, &id("state")).expect("signer");
        let mut receipt = Vec::new();
        for i in 0..n {
            let jws = signer
                .sign(
                    &id("treasury"),
                    "record.send",
                    body(&format!("{tag}-{i}")),
                    60,
                    None,
                )
                .expect("sign");
            let reply = submit(&mut client, &jws).await;
            assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
            receipt = reply.body.to_vec();
        }
        receipt
    })
}
