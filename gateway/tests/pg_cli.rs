//! The offline log commands on a log in PostgreSQL (`--store URL`, or
//! `XGATE_STORE`), against a real server: each prints what the gateway
//! serves for the same question (`/v1/log/...`), byte for byte, and what the
//! same command prints for the same log on disk; `xgate audit replay`
//! passes; `append` goes on beside a running gateway; reading creates
//! nothing; a database that cannot be used is one `xgate: error:` line
//! that never shows the URL's password; and `xgate db migrate` applies the
//! schema once, over TLS that is verified when `sslmode=require`.

mod federation;

use std::path::Path;
use std::process::Command;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use xgate::client::Client;
use xgate_ledger::{NoteVerifier, verify_checkpoint};
use xgate_server::receipt::Receipt;
use xgate_tests::Run;
use xgate_tests::postgres::TestPostgres;
use xgate_tests::postgres_tls::TLS_ONLY_ROLE;

use federation::{Federation, checkpoint_note, id, runtime, submit, xgate};

/// A password the test server ignores (it trusts loopback): it is in every
/// URL given, and must never be printed.
const PASSWORD: &str = "s3cret-pw-7781";

/// `url` with [`PASSWORD`] as its user's password.
fn with_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) if !user.contains(':') => {
                format!("{scheme}://{user}:{PASSWORD}@{host}")
            }
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn run(args: &[&str], stdin: &[u8]) -> Run {
    xgate().run(args, stdin)
}

/// Runs `xgate` with `XGATE_STORE` set to `store`.
fn run_with_store_var(args: &[&str], store: &str) -> Run {
    run_with_env(args, store, &[])
}

/// Runs `xgate` with `XGATE_STORE` set to `store`, and `env` beside it.
fn run_with_env(args: &[&str], store: &str, env: &[(&str, &Path)]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_xgate"))
        .args(args)
        .env("XGATE_STORE", store)
        .envs(env.iter().copied())
        .output()
        .expect("run xgate");
    Run {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        code: output.status.code(),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A failure's one line, which must not show the password.
fn error_line(run: &Run, code: i32) -> String {
    let message = run.expect_error(code);
    assert!(
        !message.contains(PASSWORD),
        "the password is shown: {message}"
    );
    message
}

/// The raw body of `GET path`, asserting 200.
async fn get(client: &mut Client, path: &str) -> Vec<u8> {
    let reply = client
        .request(Method::GET, path, None, Vec::new())
        .await
        .expect("a response");
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "GET {path}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.body.to_vec()
}

/// The CLI's line must be the API's body, byte for byte (one line of
/// compact JSON, fields in contract order).
fn same_as_api(cli: &str, api: &[u8], what: &str) {
    let api = String::from_utf8(api.to_vec()).expect("utf-8");
    assert_eq!(cli.trim_end(), api.trim_end(), "{what}");
    assert!(
        cli.ends_with('\n') && !cli.trim_end().contains('\n'),
        "{what}: {cli:?}"
    );
}

/// Sends `records` records from state to treasury and `assets` asset
/// registrations; the receipts.
fn traffic(fed: &Federation, records: usize, assets: usize) -> Vec<Receipt> {
    let state = fed.signer("state");
    let mut client = fed.client("state");
    runtime().block_on(async {
        let mut receipts = federation::send_records(&mut client, &state, "treasury", records).await;
        for n in 0..assets {
            let asset = federation::assets::register_body(
                &format!("STATE-LAPTOP-{n:04}"),
                "state",
                "p-1",
                "hq",
            );
            let serde_json::Value::Object(asset) = asset else {
                unreachable!()
            };
            let jws = state
                .sign(&id("state"), "asset.register", asset, 60, None)
                .expect("sign");
            let reply = submit(&mut client, &jws).await;
            assert_eq!(reply.status, StatusCode::CREATED);
            receipts.push(serde_json::from_slice(&reply.body).expect("receipt"));
        }
        receipts
    })
}

#[test]
fn every_read_command_on_postgres_prints_what_the_gateway_serves() {
    let pg = xgate_tests::require_postgres!();
    let db = pg.database();
    let store = with_password(db.url());
    let fed = Federation::start_with(&[], &[("XGATE_STORE", &store)]);
    let receipts = traffic(&fed, 300, 3);
    let mut client = fed.client("treasury");
    let data = fed.data().display().to_string();
    let at = ["--data-dir", data.as_str(), "--store", store.as_str()];
    let log = |command: &[&str]| -> String {
        let mut args = vec!["log"];
        args.extend_from_slice(command);
        args.extend_from_slice(&at);
        run(&args, b"").expect_ok()
    };

    // The replica's data directory holds the key and nothing of the log.
    assert!(!fed.data().join("db").exists());
    let key = run(&["log", "key", "--data-dir", &data], b"").expect_ok();
    assert_eq!(log(&["key"]), key, "the key with and without the store");
    let verifier = NoteVerifier::parse(key.trim()).expect("a verifier key line");

    let note = log(&["checkpoint"]);
    let served = runtime().block_on(checkpoint_note(&mut client));
    assert_eq!(note, served, "the checkpoint, byte for byte");
    let checkpoint = verify_checkpoint(&note, &verifier).expect("signed by the key printed");
    let size = checkpoint.size;
    assert!(size > 300, "{size}");
    for receipt in &receipts {
        receipt.verify(&verifier).expect("a receipt of this log");
    }

    runtime().block_on(async {
        for index in [0, 1, 255, 256, size / 2, size - 1] {
            let cli = log(&["entry", "--index", &index.to_string()]);
            let api = get(&mut client, &format!("/v1/log/entries/{index}")).await;
            same_as_api(&cli, &api, &format!("entry {index}"));
        }
        for (index, at_size) in [(0, size), (size - 1, size), (5, 17), (256, 300)] {
            let cli = log(&[
                "inclusion",
                "--index",
                &index.to_string(),
                "--size",
                &at_size.to_string(),
            ]);
            let api = get(
                &mut client,
                &format!("/v1/log/proof/inclusion?index={index}&size={at_size}"),
            )
            .await;
            same_as_api(&cli, &api, &format!("inclusion {index} in {at_size}"));
        }
        for (from, to) in [(1, size), (17, size), (256, 300), (size - 1, size)] {
            let cli = log(&[
                "consistency",
                "--from",
                &from.to_string(),
                "--to",
                &to.to_string(),
            ]);
            let api = get(
                &mut client,
                &format!("/v1/log/proof/consistency?from={from}&to={to}"),
            )
            .await;
            same_as_api(&cli, &api, &format!("consistency {from} to {to}"));
        }
        // The defaults are the log's size.
        let api = get(
            &mut client,
            &format!("/v1/log/proof/inclusion?index=3&size={size}"),
        )
        .await;
        same_as_api(&log(&["inclusion", "--index", "3"]), &api, "default size");
    });

    let verified = log(&["verify"]);
    let root = xgate_server::logview::b64(&checkpoint.root);
    assert!(
        verified.starts_with(&format!("ok: {size} entries, "))
            && verified.ends_with(&format!(" checkpoints, root {root}\n")),
        "{verified}"
    );
    // XGATE_STORE names the store when --store does not.
    let by_var = run_with_store_var(
        &["log", "entry", "--index", "7", "--data-dir", &data],
        &store,
    );
    assert_eq!(by_var.expect_ok(), log(&["entry", "--index", "7"]));

    // Stopped, the state replays from the log in the database.
    let Federation { root, gateway } = fed;
    assert_eq!(gateway.stop(), Some(0));
    let registry = root.path().join("pki/registry.toml").display().to_string();
    let replayed = run(
        &[
            "audit",
            "replay",
            "--data-dir",
            &data,
            "--store",
            &store,
            "--registry",
            &registry,
        ],
        b"",
    )
    .expect_ok();
    assert!(
        replayed.starts_with(&format!("ok: replayed {size} entries (3 asset"))
            && replayed.contains("the stored state equals"),
        "{replayed}"
    );
    let by_var = run_with_store_var(
        &[
            "audit",
            "replay",
            "--data-dir",
            &data,
            "--registry",
            &registry,
        ],
        &store,
    );
    assert_eq!(by_var.expect_ok(), replayed);
    // Without the store, the replica's directory is no log on disk.
    let refused = run(&["log", "verify", "--data-dir", &data], b"").expect_error(1);
    assert!(refused.contains("no database"), "{refused}");
}

#[test]
fn every_command_prints_on_postgres_what_it_prints_on_disk() {
    let pg = xgate_tests::require_postgres!();
    let db = pg.database();
    let store = with_password(db.url());
    let root = tempfile::tempdir().expect("tempdir");
    let disk = root.path().join("disk");
    let replica = root.path().join("replica");
    let (disk_arg, replica_arg) = (disk.display().to_string(), replica.display().to_string());
    let lines: String = (0..300).map(|i| format!("entry {i}\n")).collect();
    let more: String = (300..340).map(|i| format!("entry {i}\r\n")).collect();

    let on_disk = |command: &[&str], stdin: &[u8]| {
        let mut args = vec!["log"];
        args.extend_from_slice(command);
        args.extend(["--data-dir", disk_arg.as_str()]);
        run(&args, stdin).expect_ok()
    };
    let on_pg = |command: &[&str], stdin: &[u8]| {
        let mut args = vec!["log"];
        args.extend_from_slice(command);
        args.extend([
            "--data-dir",
            replica_arg.as_str(),
            "--store",
            store.as_str(),
        ]);
        run(&args, stdin).expect_ok()
    };
    let first = on_disk(
        &["append", "--origin", "pg-cli.example/log"],
        lines.as_bytes(),
    );
    // The same key in the replica's directory: the same notes, byte for byte.
    std::fs::create_dir(&replica).expect("mkdir");
    copy_private(
        &disk.join("checkpoint.key"),
        &replica.join("checkpoint.key"),
    );
    assert_eq!(on_pg(&["append"], lines.as_bytes()), first);
    assert_eq!(
        on_pg(&["append"], more.as_bytes()),
        on_disk(&["append"], more.as_bytes())
    );
    for command in [
        &["checkpoint"][..],
        &["key"],
        &["entry", "--index", "0"],
        &["entry", "--index", "339"],
        &["inclusion", "--index", "7"],
        &["inclusion", "--index", "258", "--size", "300"],
        &["consistency", "--from", "1"],
        &["consistency", "--from", "256", "--to", "300"],
    ] {
        assert_eq!(on_pg(command, b""), on_disk(command, b""), "{command:?}");
    }
    // Tile counts differ between the backends; entries and root do not.
    let (pg_verify, disk_verify) = (on_pg(&["verify"], b""), on_disk(&["verify"], b""));
    let ends = |s: &str| s.rsplit_once(" root ").map(|(_, r)| r.to_owned());
    assert!(pg_verify.starts_with("ok: 340 entries, "), "{pg_verify}");
    assert!(
        disk_verify.starts_with("ok: 340 entries, "),
        "{disk_verify}"
    );
    assert_eq!(ends(&pg_verify), ends(&disk_verify));

    // Out of range is the same refusal on both.
    let past = |dir: &str, store: Option<&str>| {
        let mut args = vec!["log", "entry", "--index", "340", "--data-dir", dir];
        if let Some(s) = store {
            args.extend(["--store", s]);
        }
        run(&args, b"").expect_error(1)
    };
    assert_eq!(
        past(&replica_arg, Some(&store)),
        past(&disk_arg, None),
        "the same message"
    );
}

#[test]
fn append_on_postgres_goes_on_beside_a_running_gateway() {
    let pg = xgate_tests::require_postgres!();
    let db = pg.database();
    let store = with_password(db.url());
    let fed = Federation::start_with(&[], &[("XGATE_STORE", &store)]);
    let before = traffic(&fed, 5, 3);
    let size = before.last().expect("receipts").log_index + 1;
    let data = fed.data().display().to_string();
    let out = run(
        &["log", "append", "--data-dir", &data, "--store", &store],
        b"operator note 1\noperator note 2\n",
    )
    .expect_ok();
    let appended: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(appended["appended"], 2);
    assert_eq!(appended["tree_size"], size + 2, "{out}");
    // The gateway goes on after them.
    let after = traffic(&fed, 1, 0);
    assert_eq!(after[0].log_index, size + 2);
    let mut client = fed.client("state");
    runtime().block_on(async {
        let entry = get(&mut client, &format!("/v1/log/entries/{}", size + 1)).await;
        let cli = run(
            &[
                "log",
                "entry",
                "--index",
                &(size + 1).to_string(),
                "--data-dir",
                &data,
                "--store",
                &store,
            ],
            b"",
        )
        .expect_ok();
        same_as_api(&cli, &entry, "an entry the CLI appended");
    });
    let verified = run(
        &["log", "verify", "--data-dir", &data, "--store", &store],
        b"",
    )
    .expect_ok();
    assert!(
        verified.starts_with(&format!("ok: {} entries, ", size + 3)),
        "{verified}"
    );
}

#[test]
fn reading_creates_nothing_and_a_database_that_fails_is_one_line_without_the_password() {
    let pg = xgate_tests::require_postgres!();
    let root = tempfile::tempdir().expect("tempdir");
    let keyed = root.path().join("keyed");
    let keyed_arg = keyed.display().to_string();
    run(
        &["log", "append", "--data-dir", &keyed_arg],
        b"one\ntwo\nthree\n",
    )
    .expect_ok();
    let key = run(&["log", "key", "--data-dir", &keyed_arg], b"").expect_ok();

    // An empty database holds no log: refused, and left empty.
    let empty = pg.database();
    let empty_store = with_password(empty.url());
    for command in [
        &["checkpoint"][..],
        &["verify"],
        &["entry", "--index", "0"],
        &["inclusion", "--index", "0"],
        &["consistency", "--from", "1"],
    ] {
        let mut args = vec!["log"];
        args.extend_from_slice(command);
        args.extend(["--data-dir", &keyed_arg, "--store", &empty_store]);
        let message = error_line(&run(&args, b""), 1);
        assert!(message.contains("holds no xgate log"), "{message}");
        assert!(message.contains(&redacted(&empty_store)), "{message}");
    }
    let message = error_line(
        &run(
            &[
                "audit",
                "replay",
                "--data-dir",
                &keyed_arg,
                "--store",
                &empty_store,
            ],
            b"",
        ),
        1,
    );
    assert!(message.contains("holds no xgate log"), "{message}");
    let tables = empty
        .psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        .expect("psql");
    assert_eq!(tables.trim(), "0", "reading created tables");

    // A directory without a key, or none at all: refused, nothing created.
    let holding = pg.database();
    let holding_store = with_password(holding.url());
    let replica = root.path().join("replica");
    std::fs::create_dir(&replica).expect("mkdir");
    copy_private(
        &keyed.join("checkpoint.key"),
        &replica.join("checkpoint.key"),
    );
    run(
        &[
            "log",
            "append",
            "--data-dir",
            &replica.display().to_string(),
            "--store",
            &holding_store,
        ],
        b"one\ntwo\nthree\n",
    )
    .expect_ok();
    let keyless = root.path().join("keyless");
    std::fs::create_dir(&keyless).expect("mkdir");
    let missing = root.path().join("missing");
    for (dir, reason) in [
        (&keyless, "no checkpoint.key"),
        (&missing, "no such directory"),
    ] {
        let dir_arg = dir.display().to_string();
        let message = error_line(
            &run(
                &[
                    "log",
                    "checkpoint",
                    "--data-dir",
                    &dir_arg,
                    "--store",
                    &holding_store,
                ],
                b"",
            ),
            1,
        );
        assert!(message.contains(reason), "{message}");
        let message = error_line(
            &run(
                &[
                    "log",
                    "key",
                    "--data-dir",
                    &dir_arg,
                    "--store",
                    &holding_store,
                ],
                b"",
            ),
            1,
        );
        assert!(message.contains(reason), "{message}");
    }
    assert_eq!(std::fs::read_dir(&keyless).expect("ls").count(), 0);
    assert!(!missing.exists());

    // The key of a replica's directory comes from its key file alone:
    // without a store, with one, and with one that is unreachable.
    let replica_arg = replica.display().to_string();
    let unreachable = format!("postgres://xgate:{PASSWORD}@127.0.0.1:1/xgate");
    for store in [
        None,
        Some(holding_store.as_str()),
        Some(unreachable.as_str()),
    ] {
        let mut args = vec!["log", "key", "--data-dir", replica_arg.as_str()];
        if let Some(s) = store {
            args.extend(["--store", s]);
        }
        assert_eq!(run(&args, b"").expect_ok(), key, "{store:?}");
    }

    // A server that is not there, and a store that is not one.
    let message = error_line(
        &run(
            &[
                "log",
                "checkpoint",
                "--data-dir",
                &replica_arg,
                "--store",
                &unreachable,
            ],
            b"",
        ),
        1,
    );
    assert!(
        message.contains("postgres://xgate:***@127.0.0.1:1/xgate"),
        "{message}"
    );
    let bad = format!("mysql://xgate:{PASSWORD}@127.0.0.1/xgate");
    let message = error_line(
        &run(
            &["log", "verify", "--data-dir", &replica_arg, "--store", &bad],
            b"",
        ),
        2,
    );
    assert!(message.contains("--store"), "{message}");
    let message = error_line(
        &run_with_store_var(&["log", "verify", "--data-dir", &replica_arg], &bad),
        1,
    );
    assert!(message.contains("XGATE_STORE"), "{message}");

    // A database that stops: one line, and the key still answers.
    let private = xgate_tests::require_postgres!(TestPostgres::private());
    let stopping = private.database();
    let stopping_store = with_password(stopping.url());
    let other = root.path().join("other");
    let other_arg = other.display().to_string();
    run(
        &[
            "log",
            "append",
            "--data-dir",
            &other_arg,
            "--store",
            &stopping_store,
        ],
        b"a\nb\n",
    )
    .expect_ok();
    let other_key = run(&["log", "key", "--data-dir", &other_arg], b"").expect_ok();
    private.stop().expect("stop the server");
    for command in [&["checkpoint"][..], &["entry", "--index", "0"], &["verify"]] {
        let mut args = vec!["log"];
        args.extend_from_slice(command);
        args.extend(["--data-dir", &other_arg, "--store", &stopping_store]);
        let message = error_line(&run(&args, b""), 1);
        assert!(message.contains(&redacted(&stopping_store)), "{message}");
    }
    assert_eq!(
        run(
            &[
                "log",
                "key",
                "--data-dir",
                &other_arg,
                "--store",
                &stopping_store
            ],
            b""
        )
        .expect_ok(),
        other_key
    );
}

/// `url` as messages show it.
fn redacted(url: &str) -> String {
    url.parse::<xgate_server::store_setting::Store>()
        .expect("a store")
        .redacted()
}

/// Copies a private file (the log's key), keeping it private.
fn copy_private(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(from, to).expect("copy");
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Runs `xgate db migrate` on `store`, with `env` beside it.
fn db_migrate(store: &str, env: &[(&str, &Path)]) -> Run {
    run_with_env(&["db", "migrate"], store, env)
}

#[test]
fn db_migrate_applies_the_schema_once_over_a_connection_encrypted_and_verified() {
    let pg = xgate_tests::require_postgres!();
    let Some(ca) = pg.tls_ca() else {
        eprintln!("TLS is tested on the harness's own cluster, not XGATE_TEST_POSTGRES's");
        return;
    };
    pg.psql(&format!(
        "DO $$ BEGIN CREATE ROLE {TLS_ONLY_ROLE} LOGIN SUPERUSER; \
         EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    ))
    .expect("the TLS-only role");
    let db = pg.database();
    // The server refuses this role without TLS (pg_hba: hostnossl reject).
    let url = with_password(
        &db.url()
            .replacen("://xgate@", &format!("://{TLS_ONLY_ROLE}@"), 1),
    );
    // The certificate names `localhost` only.
    let tls = format!(
        "{}?sslmode=require",
        url.replacen("@127.0.0.1:", "@localhost:", 1)
    );
    assert_ne!(tls, format!("{url}?sslmode=require"), "{url}");
    let empty = tempfile::tempdir().expect("tempdir");
    let no_file = empty.path().join("no-ca.pem");
    std::fs::write(&no_file, b"").expect("an empty trust store");
    // Trusting no one (not even the system's store): the server's
    // certificate is refused, nothing is migrated.
    let untrusted = db_migrate(
        &tls,
        &[("SSL_CERT_FILE", &no_file), ("SSL_CERT_DIR", empty.path())],
    );
    let message = error_line(&untrusted, 1);
    assert!(message.contains("certificate verify failed"), "{message}");
    // Trusting the CA but connecting by another name than the certificate's.
    let other_name = format!("{url}?sslmode=require");
    let message = error_line(&db_migrate(&other_name, &[("SSL_CERT_FILE", &ca)]), 1);
    assert!(message.contains("IP address mismatch"), "{message}");
    // `disable`, and `prefer` (the default, taken as `disable`): no TLS, so
    // the server refuses the role.
    for plain in [format!("{url}?sslmode=disable"), url.clone()] {
        let message = error_line(&db_migrate(&plain, &[("SSL_CERT_FILE", &ca)]), 1);
        assert!(message.contains("no encryption"), "{message}");
    }
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'xgate%'")
            .expect("tables")
            .trim(),
        "0",
        "nothing was migrated over a refused connection"
    );
    // Trusting the cluster's CA: the schema, then nothing more to apply.
    let first: Value =
        serde_json::from_str(&db_migrate(&tls, &[("SSL_CERT_FILE", &ca)]).expect_ok())
            .expect("one line of JSON");
    let version = first["version"].as_u64().expect("version");
    assert!(version >= 1, "{first}");
    let applied = first["applied"].as_array().expect("applied");
    assert_eq!(
        applied.len() as u64,
        version,
        "every migration, once: {first}"
    );
    let again: Value =
        serde_json::from_str(&db_migrate(&tls, &[("SSL_CERT_FILE", &ca)]).expect_ok())
            .expect("one line of JSON");
    assert_eq!(again, json!({ "version": version, "applied": [] }));
    // The embedded store has no schema.
    let message = error_line(&run(&["db", "migrate", "--store", "embedded"], b""), 1);
    assert!(message.contains("needs a postgres:// store"), "{message}");
}
