//! When each acknowledged request of a run was sent and answered
//! (`--timings FILE`), so that a test can line the requests up against a
//! trace of the gateway's system calls: every acknowledgement must rest on
//! a barrier (`fsync`/`fdatasync`) that ran between the two instants.
//!
//! One JSON object per line, written as the answers arrive:
//!
//! ```json
//! {"request":"record.send","id":"<envelope id>","sent_us":1796429200132438,"received_us":1796429200140211}
//! {"request":"inbox.ack","acked":37,"sent_us":1796429200150002,"received_us":1796429200163870}
//! ```
//!
//! `sent_us` is read just before the request is handed to the connection,
//! `received_us` just after the whole response has been read: microseconds
//! since the Unix epoch on `CLOCK_REALTIME`, the clock `strace -ttt`
//! prints, so the window they bound contains everything the gateway did
//! for the request. Exchanges are listed by kind and envelope id (the
//! receipt's `id`); inbox acknowledgements (`POST /v1/inbox/ack`, with
//! `--drain`) by how many envelopes they removed, and only when they
//! removed at least one: an acknowledgement that removed nothing had
//! nothing to make durable.
//!
//! The receipts file (`--receipts`) is left exactly as the API returns
//! receipts, so that every line still verifies as one.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::BenchError;
use xgate_server::kind::Kind;

/// The `request` of an inbox acknowledgement's line.
pub const INBOX_ACK: &str = "inbox.ack";

/// The timings file of a run, shared by its connections and inbox readers.
#[derive(Debug)]
pub struct Timings {
    path: PathBuf,
    /// The open file, and the first error writing it: a failed line is not
    /// an exchange failure, so it is kept for [`Timings::finish`] to report.
    file: Mutex<(std::io::BufWriter<std::fs::File>, Option<std::io::Error>)>,
}

impl Timings {
    /// Creates (or truncates) the file at `path`.
    ///
    /// # Errors
    /// [`BenchError::Timings`] if it cannot be created.
    pub fn create(path: &Path) -> Result<Timings, BenchError> {
        let file = std::fs::File::create(path).map_err(|source| BenchError::Timings {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Timings {
            path: path.to_path_buf(),
            file: Mutex::new((std::io::BufWriter::new(file), None)),
        })
    }

    /// Records an exchange of `kind` acknowledged with the receipt of
    /// envelope `id`.
    pub fn exchange(&self, kind: Kind, id: &str, sent: SystemTime, received: SystemTime) {
        self.line(&serde_json::json!({
            "request": kind.as_str(),
            "id": id,
            "sent_us": micros(sent),
            "received_us": micros(received),
        }));
    }

    /// Records an inbox acknowledgement that removed `acked` envelopes.
    pub fn ack(&self, acked: u64, sent: SystemTime, received: SystemTime) {
        self.line(&serde_json::json!({
            "request": INBOX_ACK,
            "acked": acked,
            "sent_us": micros(sent),
            "received_us": micros(received),
        }));
    }

    fn line(&self, value: &serde_json::Value) {
        // A poisoned lock means a writer panicked mid-line; the run reports
        // the panic itself, so the line is dropped rather than interleaved.
        let Ok(mut guard) = self.file.lock() else {
            return;
        };
        let (file, failed) = &mut *guard;
        if failed.is_none()
            && let Err(e) = writeln!(file, "{value}")
        {
            *failed = Some(e);
        }
    }

    /// Flushes the file.
    ///
    /// # Errors
    /// [`BenchError::Timings`] with the first error writing or flushing it.
    pub fn finish(&self) -> Result<(), BenchError> {
        let mut guard = self
            .file
            .lock()
            .map_err(|_| BenchError::Panicked("connection task"))?;
        let (file, failed) = &mut *guard;
        let outcome = match failed.take() {
            Some(e) => Err(e),
            None => file.flush(),
        };
        outcome.map_err(|source| BenchError::Timings {
            path: self.path.display().to_string(),
            source,
        })
    }
}

/// Microseconds since the Unix epoch (0 for an instant before it).
pub fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lines_carry_the_request_and_both_instants_in_microseconds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("timings.jsonl");
        let timings = Timings::create(&path).expect("create");
        let sent = UNIX_EPOCH + Duration::from_micros(1_796_429_200_132_438);
        let received = sent + Duration::from_micros(7_773);
        timings.exchange(Kind::RecordSend, "ab12", sent, received);
        timings.ack(37, sent, received);
        timings.finish().expect("finish");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(
            lines,
            [
                serde_json::json!({"request": "record.send", "id": "ab12",
                    "sent_us": 1_796_429_200_132_438_u64, "received_us": 1_796_429_200_140_211_u64}),
                serde_json::json!({"request": "inbox.ack", "acked": 37,
                    "sent_us": 1_796_429_200_132_438_u64, "received_us": 1_796_429_200_140_211_u64}),
            ]
        );
    }

    #[test]
    fn an_instant_before_the_epoch_is_zero() {
        assert_eq!(micros(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(micros(UNIX_EPOCH + Duration::from_micros(5)), 5);
    }
}
