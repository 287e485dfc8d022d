//! Per-agency request rate limits from the policy, over real TLS: an agency
//! past its burst gets 429 `rate_limited` with `Retry-After`, another
//! agency is not affected, and after the wait the agency is served again.

mod federation;

use std::time::Duration;

use http::{Method, StatusCode};
use xgate::client::{Client, Reply};
use xgate_server::policy::DEFAULT_POLICY;

use federation::{Federation, error_code, runtime};

async fn get(client: &mut Client, path: &str) -> Reply {
    client
        .request(Method::GET, path, None, Vec::new())
        .await
        .expect("a response")
}

#[test]
fn an_agency_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.toml");
    // One request every two seconds, three at once, for state only.
    let text = format!(
        "{DEFAULT_POLICY}\n[rate.agencies]\nstate = {{ requests_per_second = 0.5, burst = 3 }}\n"
    );
    std::fs::write(&policy, text).expect("policy");
    let policy_arg = policy.display().to_string();
    let fed = Federation::start_with(&[], &[("XGATE_POLICY", &policy_arg)]);
    let (mut state, mut treasury) = (fed.client("state"), fed.client("treasury"));
    runtime().block_on(async {
        for _ in 0..3 {
            assert_eq!(get(&mut state, "/v1/inbox").await.status, StatusCode::OK);
        }
        // At most one token can have come back meanwhile (2 s each).
        let mut limited = None;
        for _ in 0..3 {
            let reply = get(&mut state, "/v1/inbox").await;
            if reply.status == StatusCode::TOO_MANY_REQUESTS {
                limited = Some(reply);
                break;
            }
            assert_eq!(reply.status, StatusCode::OK);
        }
        let limited = limited.expect("state is refused past its burst");
        assert_eq!(error_code(&limited), "rate_limited");
        let message = String::from_utf8_lossy(&limited.body).into_owned();
        assert!(message.contains("0.5 requests per second"), "{message}");
        let retry_after: u64 = limited
            .headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("a Retry-After in seconds");
        assert!((1..=2).contains(&retry_after), "{retry_after}");
        // Any route counts: envelopes too.
        let submitted = state
            .submit("not even a JWS".to_owned())
            .await
            .expect("a response");
        assert_eq!(submitted.status, StatusCode::TOO_MANY_REQUESTS);

        // Another agency has its own bucket, at the default rate.
        for _ in 0..10 {
            assert_eq!(get(&mut treasury, "/v1/inbox").await.status, StatusCode::OK);
        }
        let metrics = get(&mut treasury, "/metrics").await;
        let metrics = String::from_utf8_lossy(&metrics.body).into_owned();
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("xgate_rejections_total{code=\"rate_limited\"} ")),
            "{metrics}"
        );

        // After the wait, state is served again.
        tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(200)).await;
        assert_eq!(get(&mut state, "/v1/inbox").await.status, StatusCode::OK);
    });
}
