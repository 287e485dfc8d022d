//! A stream of records from agencies of one gateway to an agency of
//! another: one thread per sender, each submitting its next envelope as
//! soon as the previous one's receipt is back (so each sender's envelopes
//! are logged in the order it numbers them), until told to stop or until
//! its gateway stops answering (killed). Every envelope sent is kept, with
//! its receipt if one came back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Map, Value, json};
use xgate::client::{Client, EnvelopeSigner, Protocol};
use xgate_server::receipt::Receipt;

use super::{envelope_id, id, runtime};

/// How long each envelope is valid, in seconds.
const LIFETIME: i64 = 300;

/// One envelope a sender submitted.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The sender.
    pub sender: String,
    /// Its place in the sender's sequence (0, 1, ...), across rounds.
    pub n: u64,
    /// The envelope id.
    pub id: String,
    /// The sender's gateway's receipt, if it acknowledged the envelope
    /// (without one the envelope may or may not have been logged).
    pub receipt: Option<Receipt>,
}

/// Senders streaming records until [`Stream::finish`].
pub struct Stream {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Sent>>>,
}

impl Stream {
    /// Starts each of `senders` (agency, first number) submitting records
    /// to `to` at the gateway `url`, with the keys in `pki`, pausing
    /// `pause` after each receipt.
    pub fn start(
        pki: &Path,
        url: &str,
        senders: &[(&str, u64)],
        to: &str,
        pause: Duration,
    ) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = senders
            .iter()
            .map(|(sender, first)| {
                let job = Job {
                    pki: pki.to_path_buf(),
                    url: url.to_owned(),
                    sender: (*sender).to_owned(),
                    to: to.to_owned(),
                    first: *first,
                    pause,
                    stop: Arc::clone(&stop),
                };
                std::thread::spawn(move || job.run())
            })
            .collect();
        Stream { stop, threads }
    }

    /// Stops every sender and returns all they sent, each sender's in
    /// order.
    pub fn finish(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::SeqCst);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().expect("a sender thread panicked"))
            .collect()
    }
}

/// One sender's loop.
struct Job {
    pki: PathBuf,
    url: String,
    sender: String,
    to: String,
    first: u64,
    pause: Duration,
    stop: Arc<AtomicBool>,
}

impl Job {
    fn run(self) -> Vec<Sent> {
        let rt = runtime();
        let sender = id(&self.sender);
        let mut client =
            Client::for_agency(&self.pki, &sender, &self.url, Protocol::Auto).expect("client");
        let signer = EnvelopeSigner::for_agency(&self.pki, &sender).expect("signer");
        let to = id(&self.to);
        let mut sent = Vec::new();
        let mut n = self.first;
        while !self.stop.load(Ordering::SeqCst) {
            let jws = signer
                .sign(&to, "record.send", body(&self.sender, n), LIFETIME, None)
                .expect("sign");
            let id = envelope_id(&jws);
            let reply = rt.block_on(client.submit(jws));
            let mut this = Sent {
                sender: self.sender.clone(),
                n,
                id,
                receipt: None,
            };
            match reply {
                Ok(reply) if reply.status == StatusCode::CREATED => {
                    this.receipt = Some(serde_json::from_slice(&reply.body).expect("a receipt"));
                    sent.push(this);
                }
                Ok(reply) => panic!(
                    "{} #{n}: {} {}",
                    self.sender,
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                ),
                Err(_) => {
                    // Its gateway went away: the envelope may or may not
                    // have been logged.
                    sent.push(this);
                    break;
                }
            }
            n += 1;
            std::thread::sleep(self.pause);
        }
        sent
    }
}

/// A record's body naming its sender and number.
pub fn body(sender: &str, n: u64) -> Map<String, Value> {
    match json!({ "record": format!("{sender} #{n}"), "n": n }) {
        Value::Object(m) => m,
        _ => unreachable!("an object"),
    }
}
