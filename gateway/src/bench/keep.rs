//! What a run keeps of its acknowledged exchanges, if asked: each receipt
//! (`--receipts`) and when each was sent and answered (`--timings`). Only
//! then is a receipt's body parsed; otherwise an exchange's answer is its
//! status alone.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::error::{BenchError, Failure};
use super::plan::Plan;
use super::timings::Timings;
use xgate_server::kind::Kind;

/// The receipts and timings files of a run (either may be absent),
/// shared by its connections.
#[derive(Debug, Default)]
pub struct Keep {
    /// Receipts written as they arrive, one per line.
    receipts: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    /// The timings file, shared with the inbox readers.
    timings: Option<Arc<Timings>>,
}

impl Keep {
    /// Creates the files `plan` asks for.
    ///
    /// # Errors
    /// [`BenchError::Receipts`] or [`BenchError::Timings`] if one cannot be
    /// created.
    pub fn create(plan: &Plan) -> Result<Keep, BenchError> {
        let receipts = match &plan.receipts {
            Some(path) => Some(Mutex::new(std::io::BufWriter::new(
                std::fs::File::create(path).map_err(|source| BenchError::Receipts {
                    path: path.display().to_string(),
                    source,
                })?,
            ))),
            None => None,
        };
        let timings = match &plan.timings {
            Some(path) => Some(Arc::new(Timings::create(path)?)),
            None => None,
        };
        Ok(Keep { receipts, timings })
    }

    /// Whether anything is kept, so receipts must be read.
    pub fn any(&self) -> bool {
        self.receipts.is_some() || self.timings.is_some()
    }

    /// Whether the instants of each exchange are wanted.
    pub fn times(&self) -> bool {
        self.timings.is_some()
    }

    /// The timings file, for the inbox readers.
    pub fn timings(&self) -> Option<Arc<Timings>> {
        self.timings.clone()
    }

    /// Keeps what the run keeps of an exchange of `kind` acknowledged with
    /// the receipt `body`, sent and answered at the instants given (`None`
    /// when timings are not kept). A body that is not JSON counts as an
    /// error of its own.
    ///
    /// # Errors
    /// [`Failure::ReceiptNotJson`] or [`Failure::ReceiptFile`].
    pub fn acknowledged(
        &self,
        kind: Kind,
        body: &[u8],
        times: Option<(SystemTime, SystemTime)>,
    ) -> Result<(), Failure> {
        if !self.any() {
            return Ok(());
        }
        let receipt: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| Failure::ReceiptNotJson)?;
        if let (Some(timings), Some((sent, received))) = (&self.timings, times) {
            let id = receipt["id"].as_str().unwrap_or_default();
            timings.exchange(kind, id, sent, received);
        }
        let Some(file) = &self.receipts else {
            return Ok(());
        };
        // Re-encoded so that each receipt is exactly one line.
        let mut file = file.lock().map_err(|_| Failure::ReceiptFile)?;
        writeln!(file, "{receipt}").map_err(|_| Failure::ReceiptFile)
    }

    /// Flushes both files; `plan` names them in errors.
    ///
    /// # Errors
    /// [`BenchError::Receipts`] or [`BenchError::Timings`].
    pub fn finish(self, plan: &Plan) -> Result<(), BenchError> {
        if let (Some(file), Some(path)) = (self.receipts, &plan.receipts) {
            let mut file = file
                .into_inner()
                .map_err(|_| BenchError::Panicked("connection task"))?;
            file.flush().map_err(|source| BenchError::Receipts {
                path: path.display().to_string(),
                source,
            })?;
        }
        if let Some(timings) = &self.timings {
            timings.finish()?;
        }
        Ok(())
    }
}
