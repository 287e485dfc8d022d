//! Per-agency request rate limits: one token bucket per agency, refilled
//! at the rate its policy sets ([`crate::policy`], the `[rate]` table),
//! holding at most its burst. Every request of an authenticated agency
//! takes one token; with none left it is refused with 429 `rate_limited`
//! and a `Retry-After` of the seconds until the next token.
//!
//! The buckets live in memory, one per agency that has sent a request
//! (registered agencies only, so their number is bounded by the registry),
//! and survive policy reloads: a new rate applies from the next request.
//! A restart refills them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::registry::AgencyId;

/// A rate limit: a sustained rate and a burst.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Requests per second, sustained (may be below 1).
    pub per_second: f64,
    /// Requests that may be sent at once after a quiet spell.
    pub burst: u32,
}

impl Rate {
    /// The limit when the policy sets none: far above what one gateway
    /// serves (docs/performance.md), so only a runaway client meets it.
    pub const DEFAULT: Rate = Rate {
        per_second: 20_000.0,
        burst: 40_000,
    };
}

impl Default for Rate {
    fn default() -> Rate {
        Rate::DEFAULT
    }
}

/// The buckets of every agency that has sent a request.
#[derive(Debug, Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<AgencyId, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Limiter {
    /// Takes one token from `agency`'s bucket, refilled at `rate` until
    /// `now`; if none is left, how long until one is.
    ///
    /// # Errors
    /// The time until the next token, when the bucket is empty.
    pub fn take(&self, agency: &AgencyId, rate: Rate, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(rate.burst.max(1));
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(agency.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate.per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / rate.per_second;
        Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
    }
}

/// A request refused by its agency's rate limit (429 `rate_limited`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimited {
    /// The limit in force.
    pub rate: Rate,
    /// Seconds until the next request would be admitted (`Retry-After`).
    pub retry_after: u64,
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate_per_agency() {
        let limiter = Limiter::default();
        let (state, gsa): (AgencyId, AgencyId) =
            ("state".parse().expect("id"), "gsa".parse().expect("id"));
        let rate = Rate {
            per_second: 2.0,
            burst: 3,
        };
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.take(&state, rate, t0).expect("within the burst");
        }
        let wait = limiter.take(&state, rate, t0).expect_err("empty");
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_secs(wait), 1);
        limiter
            .take(&gsa, rate, t0)
            .expect("another agency's bucket");
        // Half a second refills one token, and no more than the burst.
        limiter
            .take(&state, rate, t0 + Duration::from_millis(500))
            .expect("refilled");
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            limiter
                .take(&state, rate, later)
                .expect("refilled to the burst");
        }
        assert!(limiter.take(&state, rate, later).is_err());
        // A slow rate asks for a long wait.
        let slow = Rate {
            per_second: 0.1,
            burst: 1,
        };
        limiter.take(&gsa, slow, later).expect("first");
        let wait = limiter.take(&gsa, slow, later).expect_err("empty");
        assert_eq!(retry_after_secs(wait), 10);
    }
}
