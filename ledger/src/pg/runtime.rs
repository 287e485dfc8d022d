//! The bridge from the ledger's synchronous API to the async driver: a
//! small private tokio runtime that runs every query.
//!
//! The ledger is called from plain threads, from tokio `spawn_blocking`
//! threads and sometimes from inside async tasks of the caller's own
//! runtime. `Runtime::block_on` panics in the last case, so a call spawns
//! its future on this runtime and waits for the answer on a channel: the
//! caller's thread blocks, whatever it is, and nothing panics.

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

use crate::error::Error;
use crate::store::StoreError;

/// Worker threads of the private runtime: the queries only wait on the
/// network, so two keep up with a pool of connections.
const WORKERS: usize = 2;

/// The private runtime. Dropping it never blocks (it may be dropped on an
/// async task's thread): its tasks are cancelled in the background.
pub(super) struct Bridge {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Bridge {
    /// Starts the runtime's threads.
    pub(super) fn new() -> Result<Bridge, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("xgate-pg")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::Store(StoreError(format!(
                    "cannot start the database runtime: {e}"
                )))
            })?;
        Ok(Bridge {
            runtime: Some(runtime),
        })
    }

    /// Runs `future` on the runtime and waits for its result on this
    /// thread, at most `limit`: past it the future is dropped (a query in
    /// flight is abandoned with its connection) and the call fails.
    pub(super) fn run<T, F>(&self, limit: Duration, future: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let Some(runtime) = &self.runtime else {
            return Err(gone());
        };
        let (tx, rx) = mpsc::sync_channel(1);
        runtime.spawn(async move {
            let result = match tokio::time::timeout(limit, future).await {
                Ok(result) => result,
                Err(_) => Err(Error::Store(StoreError(format!(
                    "postgres: no answer within {} ms",
                    limit.as_millis()
                )))),
            };
            // The caller may have given up waiting (it never does before
            // the timeout above): nothing to tell then.
            let _ = tx.send(result);
        });
        rx.recv().unwrap_or_else(|_| Err(gone()))
    }
}

fn gone() -> Error {
    Error::Store(StoreError(
        "postgres: the database task ended without an answer".into(),
    ))
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_from_a_plain_thread_and_from_inside_another_runtime() {
        let bridge = Bridge::new().expect("bridge");
        let answer = bridge.run(Duration::from_secs(1), async { Ok(42) });
        assert_eq!(answer.ok(), Some(42));
        // Inside an async task of another runtime: blocks, never panics.
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("outer runtime");
        let answer =
            outer.block_on(async { bridge.run(Duration::from_secs(1), async { Ok("inside") }) });
        assert_eq!(answer.ok(), Some("inside"));
        // Dropped inside an async context: no panic either.
        outer.block_on(async move { drop(bridge) });
    }

    #[test]
    fn a_call_that_takes_too_long_fails_in_bounded_time() {
        let bridge = Bridge::new().expect("bridge");
        let started = std::time::Instant::now();
        let result: Result<(), Error> = bridge.run(Duration::from_millis(50), async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        });
        assert!(matches!(result, Err(Error::Store(_))));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
