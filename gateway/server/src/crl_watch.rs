//! The background look at the CRL file: reload it when it changes (or on
//! SIGHUP), count and log a refusal, and raise or clear the staleness
//! alarm. What a CRL must be is `crl`'s; applying it to
//! handshakes is [`crate::tls`]'s.

use crate::crl::now;
use crate::metrics::Metrics;
use crate::tls::{Reload, Tls};

/// One look at the CRL, as the background task makes every `crl_poll_secs`
/// (`forced` on SIGHUP: the file is re-read even if it did not change):
/// reloads it if it changed, logs and counts a refusal, and raises or
/// clears the staleness alarm.
pub fn check(tls: &Tls, metrics: &Metrics, forced: bool) {
    match tls.reload(forced) {
        Ok(Reload::Unchanged) => {}
        Ok(Reload::Loaded) => {
            let crl = tls.crl();
            tracing::info!(
                crl_number = %crl.number(),
                next_update = crl.next_update(),
                revoked = crl.len(),
                "CRL reloaded"
            );
            metrics.crl_file_refused(false);
        }
        Ok(Reload::Restored) => metrics.crl_file_refused(false),
        Err(e) => {
            tracing::error!(
                error = %e,
                crl_number = %tls.crl().number(),
                "CRL refused; the CRL in force stays in force"
            );
            metrics.crl_reload_failed();
        }
    }
    publish(tls, metrics);
}

/// Sets the CRL gauges from the CRL in force and logs the staleness alarm
/// when it is raised or cleared (at start too).
pub fn publish(tls: &Tls, metrics: &Metrics) {
    let crl = tls.crl();
    metrics.crl_in_force(crl.number(), crl.next_update());
    let stale = crl.is_stale_at(now());
    if tls.set_stale(stale) {
        if stale && tls.strict() {
            tracing::error!(
                next_update = crl.next_update(),
                "the CRL is past its nextUpdate; with crl_strict every request is refused until a fresh CRL is installed"
            );
        } else if stale {
            tracing::error!(
                next_update = crl.next_update(),
                "the CRL is past its nextUpdate; install a fresh CRL (revocations made since may be missing)"
            );
        } else {
            tracing::info!(next_update = crl.next_update(), "the CRL is current");
        }
    }
    metrics.crl_stale(stale);
}
