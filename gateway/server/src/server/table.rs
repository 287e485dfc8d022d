//! The table of open connections: the listener's slots, what each
//! connection is doing, and which one gives its slot up when a new
//! connection needs it.
//!
//! # Why a full table evicts rather than making new connections wait
//!
//! Timeouts alone cannot keep the promise that a well-behaved client is
//! served within `header_timeout` while idle or slow clients hold every
//! slot:
//!
//! - an idle keep-alive connection may legitimately live `idle_timeout`
//!   (60 s by default), far longer than `header_timeout`; a client that
//!   fills the table with them would keep everyone else out that long;
//! - connections that wait for a slot wait in the kernel's accept queue in
//!   arrival order, so a client that queued many connections ahead of a
//!   good one delays it by one header timeout per table-full of them.
//!
//! So the listener always accepts, and when every slot is taken the new
//! connection gets the slot of a connection that is *free*: one with no
//! request in flight (still in its TLS handshake, waiting for its first
//! request, or idle between requests), as nginx does with its "reusable"
//! connections. Such a connection loses nothing but a socket it was not
//! using. A connection serving a request is never evicted; while every slot
//! is busy serving, a new connection waits, and that is load, not a slow
//! client (a request's body must arrive within `header_timeout`, see
//! [`super::connection`], so a slow body keeps a slot no longer than that).
//!
//! Free connections go in classes, so that a flood of new connections
//! displaces itself rather than the connections of known agencies:
//!
//! 1. identified, but not as a registered agency (or refused past its
//!    agency's cap): the one free the longest first;
//! 2. still in the TLS handshake: one at random, so that however many
//!    connections a flood opens before or after a good client's, it cannot
//!    pick that client's handshake; each new connection displaces it only
//!    with probability one in the number of handshakes;
//! 3. identified as a registered agency: the one free the longest first.
//!
//! Each class is kept in its own index (a vector for the random pick,
//! ordered sets by free-since time), updated when a connection changes
//! state, so choosing a victim costs O(log n), not a scan of the table.
//!
//! Two caps keep one kind of client from crowding out the rest:
//!
//! - connections still in their TLS handshake (`max_handshakes`): past it,
//!   a new connection evicts a handshake at random, so a flood of slow or
//!   silent handshakes displaces itself, not the established connections;
//! - connections per agency (`max_connections_per_agency`), checked once
//!   the certificate names the agency (see [`Conn::identified`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::futures::Notified;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::registry::AgencyId;

/// How long a new connection waits for an evicted connection's slot before
/// evicting another: the first may have taken a request just before it was
/// told to go, and then finishes that request first.
const EVICTION_WAIT: Duration = Duration::from_millis(100);

/// Why the table told a connection to close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Eviction {
    /// Every slot was taken and a new connection needed one.
    Full,
    /// Too many connections were in their TLS handshake.
    Handshakes,
    /// The server is shutting down.
    Shutdown,
}

impl Eviction {
    /// The reason as `xgate_connections_closed_total` labels it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Eviction::Full => "evicted",
            Eviction::Handshakes => "handshake_limit",
            Eviction::Shutdown => "shutdown",
        }
    }
}

/// The caps a [`Table`] enforces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caps {
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections in their TLS handshake at once.
    pub max_handshakes: usize,
    /// Most connections of one agency at once.
    pub max_per_agency: usize,
}

/// The connections of one listener.
pub(crate) struct Table {
    caps: Caps,
    slots: Arc<Semaphore>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    entries: HashMap<u64, Entry>,
    /// Entries in their handshake and not yet told to close.
    handshaking: usize,
    /// Open connections counted against each agency's cap; `None` holds
    /// certificates that name no registered agency.
    per_agency: HashMap<Option<AgencyId>, usize>,
    /// The connections that may be told to close, by class.
    evictable: Evictable,
}

/// The free connections not yet told to close, in the classes they are
/// evicted in (see the module documentation).
#[derive(Default)]
struct Evictable {
    /// Identified, but not as a registered agency, by free-since time.
    unproven: BTreeSet<(Instant, u64)>,
    /// In their TLS handshake, in no order (picked at random).
    handshakes: Vec<u64>,
    /// Identified as a registered agency, by free-since time.
    agencies: BTreeSet<(Instant, u64)>,
}

/// Where an entry is filed in [`Evictable`], with the key it is filed under.
#[derive(Clone, Copy, Debug)]
enum Filed {
    Unproven(Instant),
    Handshake(usize),
    Agency(Instant),
}

struct Entry {
    handshaking: bool,
    /// The agency this connection is counted against, once identified.
    agency: Option<Option<AgencyId>>,
    in_flight: usize,
    requests: u64,
    free_since: Instant,
    eviction: Option<Eviction>,
    /// Set when a request's body timed out: the connection closes once
    /// nothing is in flight.
    close_when_free: bool,
    filed: Option<Filed>,
    wake: Arc<Notify>,
}

impl Entry {
    fn counts_as_handshake(&self) -> bool {
        self.handshaking && self.eviction.is_none()
    }
}

/// What a connection is doing, as its task needs it to pick its deadline.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Activity {
    /// Requests whose response is not done yet.
    pub in_flight: usize,
    /// Requests received so far.
    pub requests: u64,
    /// When it last had nothing in flight: when it opened, or when its
    /// last response ended.
    pub free_since: Instant,
    /// Whether, and why, the table told it to close.
    pub eviction: Option<Eviction>,
    /// Whether it is to close once nothing is in flight (see
    /// [`Requests::close_when_free`]).
    pub close_when_free: bool,
}

impl Table {
    /// An empty table with `caps` (each at least 1).
    pub(crate) fn new(caps: Caps) -> Arc<Table> {
        let caps = Caps {
            // A semaphore counts at most u32::MAX at once.
            max_connections: caps.max_connections.clamp(1, u32::MAX as usize),
            max_handshakes: caps.max_handshakes.max(1),
            max_per_agency: caps.max_per_agency.max(1),
        };
        Arc::new(Table {
            slots: Arc::new(Semaphore::new(caps.max_connections)),
            caps,
            inner: Mutex::default(),
        })
    }

    /// A slot for a connection just accepted: a free one, or else the slot
    /// of the connection free the longest, which is told to close. Waits
    /// only while every connection has a request in flight.
    pub(crate) async fn slot(&self) -> OwnedSemaphorePermit {
        loop {
            if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
                return permit;
            }
            Self::evict(&mut self.lock(), Eviction::Full);
            let wait = Arc::clone(&self.slots).acquire_owned();
            // The semaphore is never closed, so only the timeout fails.
            if let Ok(Ok(permit)) = tokio::time::timeout(EVICTION_WAIT, wait).await {
                return permit;
            }
        }
    }

    /// Registers a connection that holds `permit` and starts its TLS
    /// handshake. Past `max_handshakes`, a handshake picked at random is
    /// told to close.
    pub(crate) fn open(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Conn {
        let wake = Arc::new(Notify::new());
        let mut inner = self.lock();
        if inner.handshaking >= self.caps.max_handshakes {
            Self::evict(&mut inner, Eviction::Handshakes);
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.handshaking += 1;
        inner.entries.insert(
            id,
            Entry {
                handshaking: true,
                agency: None,
                in_flight: 0,
                requests: 0,
                free_since: Instant::now(),
                eviction: None,
                close_when_free: false,
                filed: None,
                wake: Arc::clone(&wake),
            },
        );
        inner.refile(id);
        drop(inner);
        Conn {
            id,
            table: Arc::clone(self),
            wake,
            _permit: permit,
        }
    }

    /// Tells every connection to close: at once if in its handshake,
    /// gracefully otherwise (requests in flight finish).
    pub(crate) fn shutdown(&self) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        for entry in inner.entries.values_mut() {
            if entry.counts_as_handshake() {
                inner.handshaking -= 1;
            }
            entry.eviction = Some(Eviction::Shutdown);
            entry.filed = None;
            entry.wake.notify_one();
        }
        inner.evictable = Evictable::default();
    }

    /// Waits until every connection has closed.
    pub(crate) async fn closed(&self) {
        let all = u32::try_from(self.caps.max_connections).unwrap_or(u32::MAX);
        // The semaphore is never closed; the permits go back when dropped.
        let _ = self.slots.acquire_many(all).await;
    }

    /// Tells the next free connection of the first non-empty class to
    /// close (for [`Eviction::Handshakes`], of the handshakes only); false
    /// if none is free.
    fn evict(inner: &mut Inner, why: Eviction) -> bool {
        let ev = &inner.evictable;
        let victim = match why {
            Eviction::Handshakes => ev.random_handshake(),
            Eviction::Full | Eviction::Shutdown => ev
                .unproven
                .first()
                .map(|&(_, id)| id)
                .or_else(|| ev.random_handshake())
                .or_else(|| ev.agencies.first().map(|&(_, id)| id)),
        };
        let Some(id) = victim else {
            return false;
        };
        inner.unfile(id);
        let Some(entry) = inner.entries.get_mut(&id) else {
            return false;
        };
        if entry.counts_as_handshake() {
            inner.handshaking -= 1;
        }
        entry.eviction = Some(why);
        entry.wake.notify_one();
        true
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// Files entry `id` in the class its state puts it in, or nowhere if it
    /// is busy or already told to close.
    fn refile(&mut self, id: u64) {
        self.unfile(id);
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        if e.eviction.is_some() || e.in_flight > 0 {
            return;
        }
        let ev = &mut self.evictable;
        e.filed = Some(if e.handshaking {
            ev.handshakes.push(id);
            Filed::Handshake(ev.handshakes.len() - 1)
        } else if matches!(e.agency, Some(Some(_))) {
            ev.agencies.insert((e.free_since, id));
            Filed::Agency(e.free_since)
        } else {
            ev.unproven.insert((e.free_since, id));
            Filed::Unproven(e.free_since)
        });
    }

    /// Takes entry `id` out of whichever class it is filed in.
    fn unfile(&mut self, id: u64) {
        let Some(filed) = self.entries.get_mut(&id).and_then(|e| e.filed.take()) else {
            return;
        };
        let ev = &mut self.evictable;
        match filed {
            Filed::Unproven(t) => {
                ev.unproven.remove(&(t, id));
            }
            Filed::Agency(t) => {
                ev.agencies.remove(&(t, id));
            }
            Filed::Handshake(i) => {
                if i < ev.handshakes.len() {
                    ev.handshakes.swap_remove(i);
                }
                // The last handshake moved into the hole.
                if let Some(&moved) = ev.handshakes.get(i)
                    && let Some(m) = self.entries.get_mut(&moved)
                {
                    m.filed = Some(Filed::Handshake(i));
                }
            }
        }
    }
}

impl Evictable {
    /// A connection in its handshake, picked at random.
    fn random_handshake(&self) -> Option<u64> {
        let n = self.handshakes.len() as u64;
        if n == 0 {
            return None;
        }
        // Without the OS's randomness (it does not fail on the platforms
        // served), fall back to the first: still a handshake, not an
        // established connection.
        let r = getrandom::u64().unwrap_or(0);
        self.handshakes.get((r % n) as usize).copied()
    }
}

/// One connection's place in the table; dropping it frees the slot.
pub(crate) struct Conn {
    id: u64,
    table: Arc<Table>,
    wake: Arc<Notify>,
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    /// What the connection is doing now.
    pub(crate) fn activity(&self) -> Activity {
        let inner = self.table.lock();
        match inner.entries.get(&self.id) {
            Some(e) => Activity {
                in_flight: e.in_flight,
                requests: e.requests,
                free_since: e.free_since,
                eviction: e.eviction,
                close_when_free: e.close_when_free,
            },
            // Removed only by our own drop; answer something safe anyway.
            None => Activity {
                in_flight: 0,
                requests: 0,
                free_since: Instant::now(),
                eviction: Some(Eviction::Shutdown),
                close_when_free: false,
            },
        }
    }

    /// Completes when the activity may have changed: a request started or
    /// ended, or the table told the connection to close.
    pub(crate) fn changed(&self) -> Notified<'_> {
        self.wake.notified()
    }

    /// Waits until the table tells this connection to close, and says why.
    pub(crate) async fn evicted(&self) -> Eviction {
        loop {
            if let Some(why) = self.activity().eviction {
                return why;
            }
            self.changed().await;
        }
    }

    /// The handshake is done and the certificate names `agency` (`None`:
    /// no registered agency). `Err` with the number of connections that
    /// agency already has open if it is at its cap; the connection is then
    /// not counted against it, and is meant to be refused.
    pub(crate) fn identified(&self, agency: Option<AgencyId>) -> Result<(), usize> {
        let mut guard = self.table.lock();
        let inner = &mut *guard;
        let Some(entry) = inner.entries.get_mut(&self.id) else {
            return Ok(());
        };
        if entry.counts_as_handshake() {
            inner.handshaking -= 1;
        }
        entry.handshaking = false;
        let open = inner.per_agency.entry(agency.clone()).or_insert(0);
        let counted = if *open >= self.table.caps.max_per_agency {
            Err(*open)
        } else {
            *open += 1;
            entry.agency = Some(agency);
            Ok(())
        };
        // Out of the handshakes, into its class: a refused connection
        // (not counted against any agency) is among the first to go.
        inner.refile(self.id);
        counted
    }

    /// A handle the connection's HTTP service counts requests with.
    pub(crate) fn requests(&self) -> Requests {
        Requests {
            id: self.id,
            table: Arc::clone(&self.table),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut guard = self.table.lock();
        let inner = &mut *guard;
        inner.unfile(self.id);
        let Some(entry) = inner.entries.remove(&self.id) else {
            return;
        };
        if entry.counts_as_handshake() {
            inner.handshaking -= 1;
        }
        if let Some(agency) = entry.agency
            && let Some(open) = inner.per_agency.get_mut(&agency)
        {
            *open -= 1;
            if *open == 0 {
                inner.per_agency.remove(&agency);
            }
        }
    }
}

/// Counts the requests of one connection.
#[derive(Clone)]
pub(crate) struct Requests {
    id: u64,
    table: Arc<Table>,
}

impl Requests {
    /// A request arrived; it stays in flight until the guard is dropped.
    pub(crate) fn start(&self) -> InFlight {
        self.update(|e| {
            e.in_flight += 1;
            e.requests += 1;
        });
        InFlight(self.clone())
    }

    /// The connection is to close once nothing is in flight: a request's
    /// body did not arrive in time, and the rest of it may still be coming.
    pub(crate) fn close_when_free(&self) {
        self.update(|e| e.close_when_free = true);
    }

    fn update(&self, change: impl FnOnce(&mut Entry)) {
        let mut inner = self.table.lock();
        if let Some(entry) = inner.entries.get_mut(&self.id) {
            change(entry);
            entry.wake.notify_one();
            inner.refile(self.id);
        }
    }
}

/// One request in flight; dropping it (when its response body is done or
/// abandoned) ends it.
pub(crate) struct InFlight(Requests);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|e| {
            e.in_flight = e.in_flight.saturating_sub(1);
            if e.in_flight == 0 {
                e.free_since = Instant::now();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max_connections: usize, max_handshakes: usize, max_per_agency: usize) -> Arc<Table> {
        Table::new(Caps {
            max_connections,
            max_handshakes,
            max_per_agency,
        })
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    }

    fn agency(name: &str) -> Option<AgencyId> {
        Some(name.parse().expect("agency id"))
    }

    #[test]
    fn a_full_table_evicts_the_connection_free_the_longest_never_a_busy_one() {
        runtime().block_on(async {
            let t = table(3, 10, 10);
            let busy = t.open(t.slot().await);
            busy.identified(agency("state")).expect("identified");
            let _request = busy.requests().start();
            tokio::time::sleep(Duration::from_millis(5)).await;
            let older = t.open(t.slot().await);
            older.identified(agency("treasury")).expect("identified");
            tokio::time::sleep(Duration::from_millis(5)).await;
            let newer = t.open(t.slot().await);
            newer.identified(agency("treasury")).expect("identified");
            // The table is full: the next slot evicts `older`, the free one
            // that has waited longest, not the busy one opened before it.
            let next = tokio::spawn({
                let t = Arc::clone(&t);
                async move { t.slot().await }
            });
            assert_eq!(older.evicted().await, Eviction::Full);
            assert_eq!(newer.activity().eviction, None);
            assert_eq!(busy.activity().eviction, None);
            drop(older);
            let _slot = next.await.expect("slot");
        });
    }

    #[test]
    fn past_the_handshake_cap_a_handshake_is_told_to_close_and_never_an_established_connection() {
        runtime().block_on(async {
            let t = table(10, 2, 10);
            let first = t.open(t.slot().await);
            let second = t.open(t.slot().await);
            second.identified(agency("state")).expect("identified");
            let third = t.open(t.slot().await);
            // `second` finished its handshake, so only two are in progress.
            assert_eq!(first.activity().eviction, None);
            let fourth = t.open(t.slot().await);
            let told: Vec<_> = [&first, &third, &fourth]
                .iter()
                .map(|c| c.activity().eviction)
                .collect();
            assert_eq!(
                told.iter()
                    .filter(|e| **e == Some(Eviction::Handshakes))
                    .count(),
                1,
                "{told:?}"
            );
            assert_eq!(
                fourth.activity().eviction,
                None,
                "the new one is not yet filed"
            );
            assert_eq!(second.activity().eviction, None);
        });
    }

    #[test]
    fn a_full_table_evicts_unproven_then_handshakes_then_agencies() {
        runtime().block_on(async {
            let t = table(4, 10, 1);
            let good = t.open(t.slot().await);
            good.identified(agency("state")).expect("identified");
            tokio::time::sleep(Duration::from_millis(5)).await;
            let shaking = t.open(t.slot().await);
            let unknown = t.open(t.slot().await);
            unknown.identified(None).expect("identified");
            let refused = t.open(t.slot().await);
            assert_eq!(refused.identified(agency("state")), Err(1));
            // Newest, but refused past its agency's cap: first to go, then
            // the other one that names no registered agency.
            for expected in [&refused, &unknown, &shaking] {
                let next = tokio::spawn({
                    let t = Arc::clone(&t);
                    async move { t.slot().await }
                });
                assert_eq!(expected.evicted().await, Eviction::Full);
                assert_eq!(good.activity().eviction, None);
                next.abort();
            }
            let next = tokio::spawn({
                let t = Arc::clone(&t);
                async move { t.slot().await }
            });
            assert_eq!(good.evicted().await, Eviction::Full);
            next.abort();
        });
    }

    #[test]
    fn the_handshake_a_flood_evicts_is_random_so_an_early_one_usually_survives() {
        runtime().block_on(async {
            // One handshake among 64 before a flood of 16 more: evicting the
            // oldest would always take it; a random pick takes it with
            // probability about 1 - (63/64)^16, a quarter.
            let mut survived = 0;
            for _ in 0..40 {
                let t = table(1000, 64, 10);
                let good = t.open(t.slot().await);
                let mut flood: Vec<_> = Vec::new();
                for _ in 0..63 + 16 {
                    flood.push(t.open(t.slot().await));
                }
                if good.activity().eviction.is_none() {
                    survived += 1;
                }
            }
            assert!(
                survived >= 15,
                "the first handshake survived {survived} floods of 40"
            );
        });
    }

    #[test]
    fn an_agency_at_its_cap_is_refused_until_one_of_its_connections_closes() {
        runtime().block_on(async {
            let t = table(10, 10, 2);
            let a = t.open(t.slot().await);
            let b = t.open(t.slot().await);
            let c = t.open(t.slot().await);
            let other = t.open(t.slot().await);
            assert_eq!(a.identified(agency("state")), Ok(()));
            assert_eq!(b.identified(agency("state")), Ok(()));
            assert_eq!(c.identified(agency("state")), Err(2));
            assert_eq!(other.identified(agency("treasury")), Ok(()));
            drop(a);
            drop(c);
            let d = t.open(t.slot().await);
            assert_eq!(d.identified(agency("state")), Ok(()));
        });
    }

    #[test]
    fn requests_keep_a_connection_busy_until_their_guards_drop() {
        runtime().block_on(async {
            let t = table(2, 2, 2);
            let conn = t.open(t.slot().await);
            let requests = conn.requests();
            let first = requests.start();
            let second = requests.start();
            assert_eq!(conn.activity().in_flight, 2);
            drop(first);
            assert_eq!(conn.activity().in_flight, 1);
            let before = Instant::now();
            drop(second);
            let a = conn.activity();
            assert_eq!((a.in_flight, a.requests), (0, 2));
            assert!(a.free_since >= before);
        });
    }
}
