//! The break-the-glass rules over real TLS, envelope by envelope: each
//! refusal has its status and code and changes nothing (neither the log
//! nor the case, as an auditor sees it).

mod federation;

use http::StatusCode;
use serde_json::{Value, json};
use xgate_server::medical::jwe;
use xgate_server::policy::DEFAULT_POLICY;
use xgate_server::registry::Registry;

use federation::assets::{AGENCIES, Desk, desks};
use federation::{Federation, error_code, get_json, id, log_size, runtime};

const REQUEST: &str = "medical.request";
const APPROVE: &str = "medical.approve";
const RESPONSE: &str = "medical.response";
const REVIEW: &str = "review.decision";

/// The default policy, plus routine treatment from state to hhs.
fn treat_policy() -> String {
    format!(
        "{DEFAULT_POLICY}\n[[rule]]\nname = \"routine treatment\"\nkinds = [\"medical.request\"]\n\
         from = [\"state\"]\nto = [\"hhs\"]\neffect = \"allow\"\npurposes = [\"TREAT\"]\n\
         attributes = {{ role = [\"medical-officer\"] }}\n"
    )
}

fn start(env: &[(&str, &str)], policy: Option<&str>) -> (Federation, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = env.to_vec();
    let file = dir.path().join("policy.toml");
    let file_arg = file.display().to_string();
    if let Some(p) = policy {
        std::fs::write(&file, p).expect("policy");
        env.push(("XGATE_POLICY", &file_arg));
    }
    let fed = Federation::start_audited(&AGENCIES, &["gao"], &env);
    (fed, dir)
}

fn request_body(purpose: &str, role: &str) -> Value {
    json!({"subject": "hhs-mrn-000123", "purpose": purpose, "incident": "INC-1",
        "responder": {"name": "Dr. Casey Example", "role": role},
        "sections": ["allergies", "medications"]})
}

/// A request body whose reply key is `requester`'s registered key.
fn request_for(fed: &Federation, requester: &str, purpose: &str, role: &str) -> Value {
    let registry = Registry::load(&fed.pki().join("registry.toml")).expect("registry");
    let mut body = request_body(purpose, role);
    body["reply_key"] = registry
        .get(&id(requester))
        .and_then(|a| a.encryption_key.get("kid"))
        .cloned()
        .expect("kid");
    body
}

/// A response body: a small bundle encrypted to `requester`'s key.
fn response_for(fed: &Federation, requester: &str, jti: &str) -> Value {
    let registry = Registry::load(&fed.pki().join("registry.toml")).expect("registry");
    let key = &registry.get(&id(requester)).expect("agency").encryption_key;
    let payload = jwe::encrypt(br#"{"resourceType":"Bundle"}"#, key).expect("encrypt");
    json!({"request": jti, "payload": payload})
}

/// The log's size and the case as the auditor sees it.
async fn snapshot(gao: &mut Desk, requester: &str, jti: &str) -> (u64, Value) {
    let size = log_size(&mut gao.client).await;
    let path = format!("/v1/medical/requests/{jti}?requester={requester}");
    let reply = gao
        .client
        .request(http::Method::GET, &path, None, Vec::new())
        .await
        .expect("get");
    let case = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    (size, case)
}

/// Submits an envelope that must be refused with `status` and `code`, and
/// checks that nothing changed.
#[allow(clippy::too_many_arguments)]
async fn refused(
    desk: &mut Desk,
    gao: &mut Desk,
    case: (&str, &str),
    aud: &str,
    kind: &str,
    body: Value,
    status: StatusCode,
    code: &str,
) {
    let before = snapshot(gao, case.0, case.1).await;
    let (jws, _) = desk.sign(aud, kind, body);
    let reply = desk.post(&jws).await;
    let what = format!(
        "{kind} by {} to {aud}: {}",
        desk.me(),
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.status, status, "{what}");
    assert_eq!(error_code(&reply), code, "{what}");
    assert_eq!(
        snapshot(gao, case.0, case.1).await,
        before,
        "{what} left a trace"
    );
}

#[test]
fn responses_need_a_live_grant_from_the_agency_asked() {
    let (fed, _dir) = start(&[], Some(&treat_policy()));
    let mut desks_of_test = desks(&fed);
    let [state, treasury, _gsa, hhs, gao] = &mut desks_of_test;
    runtime().block_on(async {
        // TREAT is allowed by this policy but grants nothing: the holder
        // must approve it first.
        let (_, treat) = state
            .accepted(
                "hhs",
                REQUEST,
                request_for(&fed, "state", "TREAT", "medical-officer"),
            )
            .await;
        let case = ("state", treat.as_str());
        let view = get_json(
            &mut hhs.client,
            &format!("/v1/medical/requests/{treat}"),
            StatusCode::OK,
        )
        .await;
        assert_eq!(view["status"], "awaiting-approval");
        assert_eq!(view["break_glass"], false);
        let answer = response_for(&fed, "state", &treat);
        refused(
            hhs,
            gao,
            case,
            "state",
            RESPONSE,
            answer.clone(),
            StatusCode::FORBIDDEN,
            "no_grant",
        )
        .await;
        // Nothing to review: it did not break the glass.
        refused(
            hhs,
            gao,
            case,
            "hhs",
            REVIEW,
            json!({"request": treat, "outcome": "appropriate", "note": "n"}),
            StatusCode::CONFLICT,
            "not_reviewable",
        )
        .await;
        // An approval goes to the requester, and only the holder can give it.
        refused(
            treasury,
            gao,
            case,
            "state",
            APPROVE,
            json!({"request": treat}),
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        refused(
            hhs,
            gao,
            case,
            "gsa",
            APPROVE,
            json!({"request": treat}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_audience",
        )
        .await;
        hhs.accepted("state", APPROVE, json!({"request": treat, "uses": 2}))
            .await;
        refused(
            hhs,
            gao,
            case,
            "state",
            APPROVE,
            json!({"request": treat}),
            StatusCode::CONFLICT,
            "grant_exists",
        )
        .await;
        // A response by an agency other than the one asked.
        refused(
            treasury,
            gao,
            case,
            "state",
            RESPONSE,
            response_for(&fed, "state", &treat),
            StatusCode::FORBIDDEN,
            "no_grant",
        )
        .await;
        // Two uses, then used up.
        hhs.accepted("state", RESPONSE, answer.clone()).await;
        hhs.accepted("state", RESPONSE, response_for(&fed, "state", &treat))
            .await;
        refused(
            hhs,
            gao,
            case,
            "state",
            RESPONSE,
            answer,
            StatusCode::CONFLICT,
            "grant_used",
        )
        .await;

        // ETREAT breaks the glass: single use.
        let (_, urgent) = state
            .accepted(
                "hhs",
                REQUEST,
                request_for(&fed, "state", "ETREAT", "medical-officer"),
            )
            .await;
        let case = ("state", urgent.as_str());
        // A payload for someone else's key is refused before it is kept.
        let mut wrong = response_for(&fed, "treasury", &urgent);
        wrong["request"] = json!(urgent);
        refused(
            hhs,
            gao,
            case,
            "state",
            RESPONSE,
            wrong,
            StatusCode::BAD_REQUEST,
            "malformed",
        )
        .await;
        hhs.accepted("state", RESPONSE, response_for(&fed, "state", &urgent))
            .await;
        refused(
            hhs,
            gao,
            case,
            "state",
            RESPONSE,
            response_for(&fed, "state", &urgent),
            StatusCode::CONFLICT,
            "grant_used",
        )
        .await;
        // Reviews: by the holder, to itself, once.
        let note =
            json!({"request": urgent, "outcome": "inappropriate", "note": "not an emergency"});
        refused(
            hhs,
            gao,
            case,
            "state",
            REVIEW,
            note.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_audience",
        )
        .await;
        refused(
            treasury,
            gao,
            case,
            "treasury",
            REVIEW,
            note.clone(),
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        hhs.accepted("hhs", REVIEW, note.clone()).await;
        refused(
            hhs,
            gao,
            case,
            "hhs",
            REVIEW,
            note,
            StatusCode::CONFLICT,
            "already_reviewed",
        )
        .await;
        // A request jti is unique per holder, whoever sends it.
        let mut again = request_for(&fed, "treasury", "ETREAT", "medical-officer");
        again["subject"] = json!("other");
        let before = snapshot(gao, "state", &urgent).await;
        let jws = sign_with_jti(treasury, "hhs", REQUEST, again, &urgent);
        let reply = treasury.post(&jws).await;
        assert_eq!(
            (reply.status, error_code(&reply)),
            (StatusCode::CONFLICT, "request_exists".into())
        );
        assert_eq!(snapshot(gao, "state", &urgent).await, before);
    });
    drop(desks_of_test);
    federation::replays_clean(fed);
}

/// Signs with a chosen `jti`.
fn sign_with_jti(desk: &Desk, aud: &str, kind: &str, body: Value, jti: &str) -> String {
    sign_for(desk, aud, kind, body, jti, 60)
}

/// Signs with a chosen `jti`, valid for `lifetime` seconds from now.
fn sign_for(desk: &Desk, aud: &str, kind: &str, body: Value, jti: &str, lifetime: i64) -> String {
    let Value::Object(map) = body else {
        panic!("a body is an object")
    };
    desk.signer
        .sign(&id(aud), kind, map, lifetime, Some(jti.to_owned()))
        .expect("sign")
}

/// Issue 17, item 5: once a request's replay window is over, its requester
/// sends the same `jti` to another holder. Before, that overwrote the case
/// (requester, jti): hhs's review queue then pointed at gsa's case, and the
/// replay agreed. Now it is `409 request_exists` and changes nothing.
#[test]
fn a_request_jti_names_one_case_for_good_even_past_its_replay_window() {
    // No clock skew, a short lifetime and request timeout: the first
    // request's id leaves the replay store a few seconds after it is sent
    // (at `exp` + skew, plus the request timeout if the purge keeps that
    // too), at the purge each start of the gateway runs.
    const LIFETIME: i64 = 5;
    let env = [
        ("XGATE_CLOCK_SKEW_SECS", "0"),
        ("XGATE_REQUEST_TIMEOUT_SECS", "5"),
    ];
    let (fed, _dir) = start(&env, None);
    let jti = "reused-request-1";
    let body = request_for(&fed, "state", "ETREAT", "medical-officer");
    let sent = federation::assets::now();
    let (first, queue) = runtime().block_on(async {
        let [mut state, _, _, mut hhs, mut gao] = desks(&fed);
        let jws = sign_for(&state, "hhs", REQUEST, body.clone(), jti, LIFETIME);
        let reply = state.post(&jws).await;
        let text = String::from_utf8_lossy(&reply.body);
        assert_eq!(reply.status, StatusCode::CREATED, "{text}");
        let queue = get_json(&mut hhs.client, "/v1/reviews", StatusCode::OK).await;
        assert_eq!(queue["reviews"][0]["request"], jti);
        assert_eq!(queue["reviews"][0]["holder"], "hhs");
        (snapshot(&mut gao, "state", jti).await, queue)
    });
    assert_eq!(first.1["holder"], "hhs");

    // Past the replay window, with its id purged (a start purges at once).
    let clear = sent + LIFETIME + 5 + 2;
    while federation::assets::now() <= clear {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let federation::Federation { root, gateway } = fed;
    gateway.stop();
    let mut fed = federation::Federation {
        gateway: federation::start_gateway(root.path(), &[], &env),
        root,
    };
    // The purge runs beside the first requests: a `replayed` means it has
    // not yet, and the next start purges again.
    let mut attempt = 0;
    let reply = loop {
        attempt += 1;
        let reply = runtime().block_on(async {
            let [mut state, ..] = desks(&fed);
            let jws = sign_for(&state, "gsa", REQUEST, body.clone(), jti, 60);
            state.post(&jws).await
        });
        if reply.error_code().as_deref() != Some("replayed") || attempt == 5 {
            break reply;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        let federation::Federation { root, gateway } = fed;
        gateway.stop();
        fed = federation::Federation {
            gateway: federation::start_gateway(root.path(), &[], &env),
            root,
        };
    };
    assert_eq!(
        (reply.status, reply.error_code().as_deref()),
        (StatusCode::CONFLICT, Some("request_exists")),
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    error_code(&reply); // and the body has the contract's shape
    runtime().block_on(async {
        let [mut state, _, mut gsa, mut hhs, mut gao] = desks(&fed);
        // Nothing changed: the log, the case, hhs's queue; gsa was asked nothing.
        assert_eq!(snapshot(&mut gao, "state", jti).await, first);
        let now = get_json(&mut hhs.client, "/v1/reviews", StatusCode::OK).await;
        assert_eq!(now["reviews"], queue["reviews"]);
        let path = format!("/v1/medical/requests/{jti}");
        get_json(&mut gsa.client, &path, StatusCode::NOT_FOUND).await;
        let mine = get_json(&mut state.client, &path, StatusCode::OK).await;
        assert_eq!(mine["holder"], "hhs");
        // A new jti to gsa is a new case.
        state
            .accepted(
                "gsa",
                REQUEST,
                request_for(&fed, "state", "ETREAT", "medical-officer"),
            )
            .await;
    });
    federation::replays_clean(fed);
}

#[test]
fn the_policy_decides_who_may_request() {
    let (fed, _dir) = start(&[], None);
    let [mut state, _treasury, _gsa, _hhs, mut gao] = desks(&fed);
    runtime().block_on(async {
        let none = ("state", "none");
        // A role the default policy does not let break the glass.
        let body = request_for(&fed, "state", "ETREAT", "consular-officer");
        refused(
            &mut state,
            &mut gao,
            none,
            "hhs",
            REQUEST,
            body,
            StatusCode::FORBIDDEN,
            "policy_denied",
        )
        .await;
        // TREAT has no allow rule by default.
        let body = request_for(&fed, "state", "TREAT", "medical-officer");
        refused(
            &mut state,
            &mut gao,
            none,
            "hhs",
            REQUEST,
            body,
            StatusCode::FORBIDDEN,
            "policy_denied",
        )
        .await;
        // To oneself, and with bad bodies.
        let body = request_for(&fed, "state", "ETREAT", "medical-officer");
        refused(
            &mut state,
            &mut gao,
            none,
            "state",
            REQUEST,
            body.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_audience",
        )
        .await;
        for (field, value) in [
            ("purpose", json!("EMERGENCY")),
            ("sections", json!([])),
            ("sections", json!(["allergies", "allergies"])),
            (
                "reply_key",
                json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
            ),
            ("subject", json!("")),
        ] {
            let mut bad = body.clone();
            bad[field] = value;
            refused(
                &mut state,
                &mut gao,
                none,
                "hhs",
                REQUEST,
                bad,
                StatusCode::BAD_REQUEST,
                "malformed",
            )
            .await;
        }
        // Only the two agencies and auditors see a request.
        let (_, jti) = state.accepted("hhs", REQUEST, body).await;
        let mut treasury = desks(&fed).into_iter().nth(1).expect("treasury");
        get_json(
            &mut treasury.client,
            &format!("/v1/medical/requests/{jti}"),
            StatusCode::NOT_FOUND,
        )
        .await;
        get_json(
            &mut treasury.client,
            &format!("/v1/medical/requests/{jti}?requester=state"),
            StatusCode::NOT_FOUND,
        )
        .await;
        get_json(
            &mut gao.client,
            &format!("/v1/medical/requests/{jti}?requester=state"),
            StatusCode::OK,
        )
        .await;
        get_json(
            &mut state.client,
            &format!("/v1/medical/requests/{jti}"),
            StatusCode::OK,
        )
        .await;
    });
}

#[test]
fn a_response_after_the_grant_expired_is_refused() {
    // Every grant capped at two seconds.
    let (fed, _dir) = start(&[("XGATE_MAX_GRANT_SECS", "2")], None);
    let [mut state, _treasury, _gsa, mut hhs, mut gao] = desks(&fed);
    runtime().block_on(async {
        let (_, jti) = state
            .accepted(
                "hhs",
                REQUEST,
                request_for(&fed, "state", "ETREAT", "medical-officer"),
            )
            .await;
        let view = get_json(
            &mut hhs.client,
            &format!("/v1/medical/requests/{jti}"),
            StatusCode::OK,
        )
        .await;
        let granted = view["grant"]["time"].as_i64().expect("time");
        assert_eq!(view["grant"]["expires"].as_i64(), Some(granted + 2));
        tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
        let view = get_json(
            &mut hhs.client,
            &format!("/v1/medical/requests/{jti}"),
            StatusCode::OK,
        )
        .await;
        assert_eq!(view["status"], "expired");
        let case = ("state", jti.as_str());
        let body = response_for(&fed, "state", &jti);
        refused(
            &mut hhs,
            &mut gao,
            case,
            "state",
            RESPONSE,
            body,
            StatusCode::FORBIDDEN,
            "grant_expired",
        )
        .await;
        // The expired grant still awaits its review.
        let queue = get_json(&mut hhs.client, "/v1/reviews", StatusCode::OK).await;
        assert_eq!(queue["reviews"][0]["request"], jti.as_str());
    });
}
