//! Support for the asset end-to-end tests (`assets_custody`,
//! `assets_reconcile`, `assets_rules`): a federation with an auditor, one
//! [`Desk`] per agency that signs and submits custody envelopes and reads
//! what the gateway serves, and builders for the bodies of those envelopes.
//! The federation, its clients and the SSE reader live in the parent module.

#![allow(dead_code)] // each test file uses a different subset

use std::time::{SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use serde_json::{Map, Value, json};
use xgate::client::{Client, EnvelopeSigner, Reply, random_jti};

use super::{Federation, error_code, get_json, id, log_size};

/// The agencies of the asset tests' federation (its auditor, `gao`, is not one).
pub const AGENCIES: [&str; 4] = ["state", "treasury", "gsa", "hhs"];

/// A federation of [`AGENCIES`] and the auditor `gao`, its gateway run
/// with the environment variables `env`.
pub fn federation(env: &[(&str, &str)]) -> Federation {
    Federation::start_audited(&AGENCIES, &["gao"], env)
}

/// The kind of a registration.
pub const REGISTER: &str = "asset.register";
/// The kind of a transfer offer.
pub const OFFER: &str = "asset.transfer.offer";
/// The kind of an offer's acceptance.
pub const ACCEPT: &str = "asset.transfer.accept";
/// The kind of an offer's rejection.
pub const REJECT: &str = "asset.transfer.reject";
/// The kind of an inventory report.
pub const REPORT: &str = "inventory.report";

/// One agency's desk: its client and its signer.
pub struct Desk {
    /// Its mutual-TLS client.
    pub client: Client,
    /// Its envelope signer.
    pub signer: EnvelopeSigner,
}

/// The desks of state, treasury, gsa, hhs and the auditor gao.
pub fn desks(fed: &Federation) -> [Desk; 5] {
    ["state", "treasury", "gsa", "hhs", "gao"].map(|a| Desk {
        client: fed.client(a),
        signer: fed.signer(a),
    })
}

impl Desk {
    pub fn me(&self) -> String {
        self.signer.iss().to_string()
    }

    /// Signs `kind` to `aud` with a fresh `jti`: the JWS and the `jti`.
    pub fn sign(&self, aud: &str, kind: &str, body: Value) -> (String, String) {
        let jti = random_jti().expect("jti");
        let jws = self
            .signer
            .sign(&id(aud), kind, object(body), 60, Some(jti.clone()))
            .expect("sign");
        (jws, jti)
    }

    pub async fn post(&mut self, jws: &str) -> Reply {
        super::submit(&mut self.client, jws).await
    }

    /// Submits an envelope that must be accepted: the 201 body and `jti`.
    pub async fn accepted(&mut self, aud: &str, kind: &str, body: Value) -> (Value, String) {
        let (jws, jti) = self.sign(aud, kind, body);
        let reply = self.post(&jws).await;
        let text = String::from_utf8_lossy(&reply.body);
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{kind} by {}: {text}",
            self.me()
        );
        (serde_json::from_slice(&reply.body).expect("JSON"), jti)
    }

    /// Submits an envelope that must be refused with `code`, and checks
    /// that neither the log nor any of `watched` (as `auditor` sees them)
    /// changed. Returns the error message.
    pub async fn refused(
        &mut self,
        auditor: &mut Desk,
        aud: &str,
        kind: &str,
        body: Value,
        watched: &[&str],
        code: &str,
    ) -> String {
        let before = snapshot(auditor, watched).await;
        let (jws, _) = self.sign(aud, kind, body);
        let reply = self.post(&jws).await;
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        let status = match code {
            "malformed" => StatusCode::BAD_REQUEST,
            "not_holder" => StatusCode::FORBIDDEN,
            "not_found" => StatusCode::NOT_FOUND,
            "wrong_audience" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::CONFLICT,
        };
        let what = format!("{kind} by {} to {aud}: {text}", self.me());
        assert_eq!(reply.status, status, "{what}");
        assert_eq!(error_code(&reply), code, "{what}");
        assert_eq!(
            snapshot(auditor, watched).await,
            before,
            "{kind} {code} left a trace"
        );
        let body: Value = serde_json::from_str(&text).expect("JSON");
        body["error"]["message"]
            .as_str()
            .expect("message")
            .to_owned()
    }

    pub async fn register(&mut self, tag: &str, person: &str, location: &str) -> Value {
        let me = self.me();
        self.accepted(&me, REGISTER, register_body(tag, &me, person, location))
            .await
            .0
    }

    /// Offers `tag` to `person` of `to`: the 201 body and the offer's `jti`.
    pub async fn offer(&mut self, tag: &str, to: &str, person: &str) -> (Value, String) {
        self.accepted(to, OFFER, offer_body(tag, to, person)).await
    }

    pub async fn accept(
        &mut self,
        holder: &str,
        tag: &str,
        offer: &str,
        location: Option<&str>,
    ) -> Value {
        let mut body = json!({"tag": tag, "offer": offer});
        if let Some(l) = location {
            body["location"] = json!(l);
        }
        self.accepted(holder, ACCEPT, body).await.0
    }

    pub async fn reject(&mut self, holder: &str, tag: &str, offer: &str) -> Value {
        self.accepted(holder, REJECT, json!({"tag": tag, "offer": offer}))
            .await
            .0
    }

    /// Reports a count at `location`: the reconciliation id.
    pub async fn report(&mut self, location: &str, observed: Value) -> String {
        let me = self.me();
        let body = json!({"location": location, "reported_by": "counter-1", "observed": observed});
        let (receipt, _) = self.accepted(&me, REPORT, body).await;
        let id = receipt["reconciliation_id"]
            .as_str()
            .expect("reconciliation_id");
        assert_eq!(
            id,
            receipt["log_index"].to_string(),
            "the id is the log index"
        );
        let keys: Vec<&str> = receipt
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys.last(),
            Some(&"reconciliation_id"),
            "after the receipt's fields"
        );
        id.to_owned()
    }

    pub async fn reconciliation(&mut self, id: &str) -> Value {
        get_json(
            &mut self.client,
            &format!("/v1/reconciliations/{id}"),
            StatusCode::OK,
        )
        .await
    }

    pub async fn show(&mut self, tag: &str) -> Value {
        get_json(
            &mut self.client,
            &format!("/v1/assets/{tag}"),
            StatusCode::OK,
        )
        .await
    }

    /// `tag` answers 404 to this agency.
    pub async fn hidden(&mut self, tag: &str) {
        let body = get_json(
            &mut self.client,
            &format!("/v1/assets/{tag}"),
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(body["error"]["code"], "not_found");
    }

    /// One page of `GET /v1/assets?{query}`: its tags and `next`.
    pub async fn list(&mut self, query: &str) -> (Vec<String>, Option<String>) {
        let page = get_json(
            &mut self.client,
            &format!("/v1/assets?{query}"),
            StatusCode::OK,
        )
        .await;
        let tags = page["assets"]
            .as_array()
            .expect("assets")
            .iter()
            .map(|a| a["tag"].as_str().expect("tag").to_owned())
            .collect();
        (tags, page["next"].as_str().map(str::to_owned))
    }

    /// Every tag of `GET /v1/assets?{query}`, `limit` a page, following `next`.
    pub async fn list_paged(&mut self, query: &str, limit: usize) -> Vec<String> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut q = format!("{query}&limit={limit}");
            if let Some(a) = &after {
                q.push_str(&format!("&after={a}"));
            }
            let (tags, next) = self.list(q.trim_start_matches('&')).await;
            assert!(tags.len() <= limit);
            assert_eq!(
                next.is_some(),
                tags.len() == limit && next.as_ref() == tags.last(),
                "?{q}"
            );
            all.extend(tags);
            match next {
                Some(n) => after = Some(n),
                None => return all,
            }
        }
    }
}

/// What `auditor` sees of the log's size and of `tags`.
pub async fn snapshot(auditor: &mut Desk, tags: &[&str]) -> (u64, Vec<(StatusCode, Value)>) {
    let size = log_size(&mut auditor.client).await;
    let mut seen = Vec::new();
    for tag in tags {
        let path = format!("/v1/assets/{tag}");
        let reply = auditor
            .client
            .request(Method::GET, &path, None, Vec::new())
            .await
            .expect("reply");
        seen.push((
            reply.status,
            serde_json::from_slice(&reply.body).expect("JSON"),
        ));
    }
    (size, seen)
}

/// A registration body: `tag` held by `person` of `agency` at `location`.
pub fn register_body(tag: &str, agency: &str, person: &str, location: &str) -> Value {
    json!({"tag": tag, "serial": format!("SN-{tag}"), "category": "laptop",
        "description": "issued laptop", "holder": {"agency": agency, "person": person},
        "location": location})
}

/// An offer body: `tag` to `person` of `to`.
pub fn offer_body(tag: &str, to: &str, person: &str) -> Value {
    json!({"tag": tag, "to": {"agency": to, "person": person}, "reason": "reassignment"})
}

/// An accept or reject body: `tag` and the offer's `jti`.
pub fn answer(tag: &str, offer: &str) -> Value {
    json!({"tag": tag, "offer": offer})
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// The wall clock, in whole seconds since the Unix epoch.
pub fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    i64::try_from(secs).expect("seconds")
}
