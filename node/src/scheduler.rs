//! The outbox scheduler's core: which queued dispatch goes next, to which peer, and when to retry,
//! as a state machine with no I/O, no clock and no randomness of its own (the quinn-proto shape).
//!
//! - A peer is connected first, on its own: dispatches wait for the connection, not inside it, so
//!   when a peer that was down comes back its dispatches leave in priority order.
//! - Transfers start in priority order (hỏa tốc first): one to a peer does not start while a more
//!   urgent one to the same peer is in flight, and at most `max_concurrent_per_peer` run.
//! - A peer that cannot be reached is backed off as a whole; a dispatch whose transfer failed is
//!   backed off alone. Both double per failure from 500 ms up to five minutes, with up to 25 %
//!   jitter.
//! - Expired dispatches fail with a reason the clerk sees.
//! - A pass looks at the 512 most urgent queued dispatches only, so its cost does not grow with
//!   the backlog (a backlog of more than that to unreachable peers delays the rest until they
//!   expire or the peers return).
//!
//! The driver (`outbox`) owns the connections, the store and the clock; it feeds what happened
//! into [`Scheduler`] and carries out the [`Action`]s it returns. Being deterministic, the core is
//! tested here on a virtual clock with several nodes and a simulated network.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use vdx_protocol::OrganCode;

/// First retry delay; doubled per failure up to [`MAX_BACKOFF`].
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest a peer or a dispatch is left alone after failures (before jitter).
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Queued dispatches one pass looks at, most urgent first (the rest wait for later passes).
pub(crate) const PASS_LIMIT: usize = 512;
/// The reason an expired dispatch fails with, as the clerk sees it.
pub(crate) const EXPIRED: &str = "expired before delivery";

/// One queued dispatch as the scheduler needs it: the driver works out the next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Queued<K> {
    /// Which dispatch (the driver's key: a message id, later with its tenant).
    pub(crate) key: K,
    /// The next hop it is handed to.
    pub(crate) peer: OrganCode,
    /// Độ khẩn 0-4, higher first.
    pub(crate) urgency: u8,
    /// Unix seconds after which delivery is pointless (`None`: never).
    pub(crate) expires: Option<u64>,
}

/// How a transfer the scheduler started ended, as the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The next hop took custody: nothing more is sent for it.
    Sent,
    /// It failed; with `retry` the dispatch is backed off alone, without it the driver gave it up
    /// (e.g. its stored object is damaged) and the scheduler forgets it.
    Failed {
        /// Why, for the log.
        reason: String,
        /// Whether trying again may help.
        retry: bool,
    },
    /// The next hop refused it for good (the driver marked it failed): forgotten.
    Refused {
        /// Why, for the log.
        reason: String,
    },
    /// The connection under it broke: the peer, not the dispatch, is backed off.
    ConnectionBroke {
        /// Why, shown on the status page.
        reason: String,
    },
    /// It was no longer queued when the driver came to start it (finished meanwhile): forgotten.
    NotQueued,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action<K> {
    /// Open a connection to `peer`; report [`Scheduler::handle_connected`] or
    /// [`Scheduler::handle_connect_failed`].
    Connect {
        /// Whom to connect to.
        peer: OrganCode,
    },
    /// Hand dispatch `key` to `peer` on its connection; report
    /// [`Scheduler::handle_transfer_finished`].
    Send {
        /// Which dispatch.
        key: K,
        /// The next hop, connected.
        peer: OrganCode,
    },
    /// Mark dispatch `key` failed with `reason`: it can no longer be delivered in time.
    Expire {
        /// Which dispatch.
        key: K,
        /// Why, for the clerk.
        reason: &'static str,
    },
}

/// What the operator is shown of one peer (`GET /v1/status`).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct PeerReport {
    pub(crate) organ_code: OrganCode,
    /// `connected`, `connecting`, `disconnected` (reconnected when next needed) or `unreachable`.
    pub(crate) state: &'static str,
    /// Transfers running to it now.
    pub(crate) in_flight: usize,
    /// Connection failures in a row (unreachable only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) failures: Option<u32>,
    /// Seconds until the next attempt (unreachable only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) retry_in_secs: Option<u64>,
    /// Why the last attempt failed (unreachable only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_error: Option<String>,
}

/// What is known of one peer.
#[derive(Debug)]
enum Peer {
    /// A connection attempt is running, after `failures` failed ones in a row.
    Connecting { failures: u32 },
    /// Connected; transfers may start.
    Up,
    /// The connection closed: reconnected when next needed.
    Disconnected,
    /// Unreachable: not before `until`; `failures` in a row so far, the last one for `reason`.
    Down {
        until: Instant,
        failures: u32,
        reason: String,
    },
}

/// A dispatch backed off alone: not before `until`, after `failures` failed transfers.
#[derive(Debug)]
struct Retry {
    until: Instant,
    failures: u32,
}

/// SplitMix64 (Steele, Lea, Flood 2014): jitter needs spread, not secrecy, and a seeded
/// generator makes the scheduler's timing reproducible in tests.
#[derive(Debug)]
struct Jitter(u64);

impl Jitter {
    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The delay after `failures` failures in a row: 500 ms doubled per failure up to five minutes,
/// plus `jitter` (in [0, 1)) times a quarter of that, so peers that failed together do not all
/// come back in the same instant.
pub(crate) fn backoff(failures: u32, jitter: f64) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1u32 << failures.min(16))
        .min(MAX_BACKOFF);
    base + base.mul_f64(jitter.clamp(0.0, 1.0) / 4.0)
}

/// The outbox scheduler for dispatches keyed by `K`, with no I/O: a driver feeds it events and
/// the time, and carries out the actions it returns.
///
/// A driver calls it in this order, as quinn-proto's `Connection` is driven:
/// 1. `handle_*` for everything that happened since the last round, in any order:
///    [`handle_queue`](Self::handle_queue) with the current head of the outbox (at least once per
///    round: the scheduler only knows what it was last shown),
///    [`handle_connected`](Self::handle_connected) / [`handle_connect_failed`](Self::handle_connect_failed)
///    for a [`Action::Connect`], [`handle_connection_lost`](Self::handle_connection_lost) when a
///    connection closes, [`handle_transfer_finished`](Self::handle_transfer_finished) for a
///    [`Action::Send`], and [`handle_reload`](Self::handle_reload) after the trust settings changed.
/// 2. [`poll_action`](Self::poll_action) with the current time until it returns `None`, carrying
///    out each action (an [`Action::Expire`] before the next `handle_queue`).
/// 3. [`poll_timeout`](Self::poll_timeout): wait until then, or until an event comes, whichever
///    is first, and start again at 1.
///
/// `now` must not go backwards between calls.
#[derive(Debug)]
pub(crate) struct Scheduler<K> {
    max_concurrent_per_peer: u32,
    jitter: Jitter,
    peers: BTreeMap<OrganCode, Peer>,
    /// The queue head last shown, most urgent first, at most [`PASS_LIMIT`] long.
    queue: Vec<Queued<K>>,
    /// Unix seconds when the queue was last shown, and the instant that was.
    wall: (u64, Option<Instant>),
    /// Dispatches backed off alone.
    retry: HashMap<K, Retry>,
    /// Transfers running: dispatch → peer and urgency.
    in_flight: HashMap<K, (OrganCode, u8)>,
    /// Actions worked out by the last pass, not yet taken.
    actions: VecDeque<Action<K>>,
    /// When the last pass would decide something else, even if nothing happens.
    timeout: Option<Instant>,
}

/// What to do with one queued dispatch in a pass.
enum Step {
    /// This dispatch waits (in flight, or backed off alone).
    Wait,
    /// Nothing more goes to its peer this pass (connecting, down, or busy): a pass skips the
    /// peer's later, less urgent dispatches without looking at them.
    PeerBusy,
    Connect,
    Send,
}

impl<K: Clone + Eq + Hash + Ord + Debug> Scheduler<K> {
    /// A scheduler running at most `max_concurrent_per_peer` transfers per peer (at least one),
    /// whose jitter comes from `seed` (the same seed, the same timing).
    pub(crate) fn new(max_concurrent_per_peer: u32, seed: u64) -> Self {
        Self {
            max_concurrent_per_peer: max_concurrent_per_peer.max(1),
            jitter: Jitter(seed),
            peers: BTreeMap::new(),
            queue: Vec::new(),
            wall: (0, None),
            retry: HashMap::new(),
            in_flight: HashMap::new(),
            actions: VecDeque::new(),
            timeout: None,
        }
    }

    /// The outbox's head as it is at `now` (unix seconds `unix_secs`): what the next pass works
    /// through. Sorted here, most urgent first and otherwise in the order given (the order of
    /// submission), and cut to the [`PASS_LIMIT`] most urgent.
    pub(crate) fn handle_queue(
        &mut self,
        now: Instant,
        unix_secs: u64,
        queued: impl IntoIterator<Item = Queued<K>>,
    ) {
        let mut queue: Vec<Queued<K>> = queued.into_iter().collect();
        queue.sort_by(|a, b| b.urgency.cmp(&a.urgency));
        queue.truncate(PASS_LIMIT);
        self.queue = queue;
        self.wall = (unix_secs, Some(now));
    }

    /// The connection a [`Action::Connect`] asked for is up: transfers to `peer` may start.
    pub(crate) fn handle_connected(&mut self, peer: &OrganCode) {
        self.peers.insert(peer.clone(), Peer::Up);
    }

    /// The connection to `peer` could not be made (`reason`): the peer is backed off as a whole.
    /// Returns how long, for the log.
    pub(crate) fn handle_connect_failed(
        &mut self,
        now: Instant,
        peer: &OrganCode,
        reason: &str,
    ) -> Duration {
        self.peer_failed(now, peer, reason)
    }

    /// The connection to `peer` closed: it is reconnected when a dispatch next needs it.
    /// Transfers running on it are reported by [`handle_transfer_finished`](Self::handle_transfer_finished).
    pub(crate) fn handle_connection_lost(&mut self, peer: &OrganCode) {
        if let Some(state @ Peer::Up) = self.peers.get_mut(peer) {
            *state = Peer::Disconnected;
        }
    }

    /// The transfer of `key` that a [`Action::Send`] started ended with `outcome` at `now`.
    /// Returns the delay before the next try when one was set (the dispatch's or its peer's).
    pub(crate) fn handle_transfer_finished(
        &mut self,
        now: Instant,
        key: &K,
        outcome: &Outcome,
    ) -> Option<Duration> {
        let peer = self.in_flight.remove(key).map(|(peer, _)| peer);
        match outcome {
            Outcome::Sent | Outcome::Refused { .. } | Outcome::NotQueued => {
                self.retry.remove(key);
                self.queue.retain(|q| q.key != *key);
                None
            }
            Outcome::Failed { retry: false, .. } => {
                self.retry.remove(key);
                self.queue.retain(|q| q.key != *key);
                None
            }
            Outcome::Failed { retry: true, .. } => {
                let failures = self.retry.get(key).map_or(0, |r| r.failures);
                let delay = backoff(failures, self.jitter.next_f64());
                self.retry.insert(
                    key.clone(),
                    Retry {
                        until: now + delay,
                        failures: failures + 1,
                    },
                );
                Some(delay)
            }
            Outcome::ConnectionBroke { reason } => {
                let peer = peer?;
                Some(self.peer_failed(now, &peer, reason))
            }
        }
    }

    /// The trust settings were reloaded: peers backed off are tried again at once (a refusal may
    /// have been what the reload mended). Connections the new settings refuse are closed by the
    /// driver, which reports them with [`handle_connection_lost`](Self::handle_connection_lost).
    pub(crate) fn handle_reload(&mut self) {
        self.peers
            .retain(|_, state| !matches!(state, Peer::Down { .. }));
    }

    /// The next thing to do at `now`, or `None` when nothing is to be done until an event comes
    /// or [`poll_timeout`](Self::poll_timeout) passes.
    pub(crate) fn poll_action(&mut self, now: Instant) -> Option<Action<K>> {
        if self.actions.is_empty() {
            self.pass(now);
        }
        self.actions.pop_front()
    }

    /// When the driver must call [`poll_action`](Self::poll_action) again even if nothing
    /// happens (a backoff ends, a dispatch expires); `None`: only an event changes anything.
    /// Valid after `poll_action` returned `None`.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timeout
    }

    /// Every peer the scheduler has dealt with, by organ code, as at `now`.
    pub(crate) fn report(&self, now: Instant) -> Vec<PeerReport> {
        self.peers
            .iter()
            .map(|(code, peer)| {
                let in_flight = self.in_flight.values().filter(|(p, _)| p == code).count();
                let mut report = PeerReport {
                    organ_code: code.clone(),
                    state: "connected",
                    in_flight,
                    failures: None,
                    retry_in_secs: None,
                    last_error: None,
                };
                match peer {
                    Peer::Up => {}
                    Peer::Disconnected => report.state = "disconnected",
                    Peer::Connecting { .. } => report.state = "connecting",
                    Peer::Down {
                        until,
                        failures,
                        reason,
                    } => {
                        report.state = "unreachable";
                        report.failures = Some(*failures);
                        report.retry_in_secs = Some(until.saturating_duration_since(now).as_secs());
                        report.last_error = Some(reason.clone());
                    }
                }
                report
            })
            .collect()
    }

    /// Works out the actions due at `now` and the next timeout, over the queue in priority order.
    fn pass(&mut self, now: Instant) {
        let mut timeout: Option<Instant> = None;
        let mut soonest = |at: Instant| {
            if at > now {
                timeout = Some(timeout.map_or(at, |t| t.min(at)));
            }
        };
        let (unix_then, then) = self.wall;
        let elapsed = then.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let unix_now = unix_then.saturating_add(elapsed.as_secs());
        // Peers that take nothing more this pass: the queue is in priority order, so their
        // later dispatches can only wait too.
        let mut busy: HashSet<OrganCode> = HashSet::new();
        let mut expired = HashSet::new();
        for entry in &self.queue {
            if let Some(expires) = entry.expires {
                if expires < unix_now {
                    // One in flight finishes (or fails) first; the store keeps a delivered one.
                    if !self.in_flight.contains_key(&entry.key) {
                        expired.insert(entry.key.clone());
                        self.actions.push_back(Action::Expire {
                            key: entry.key.clone(),
                            reason: EXPIRED,
                        });
                    }
                    continue;
                }
                // It expires once the clock reads `expires + 1`.
                if let Some(then) = then {
                    let wait = (expires + 1).saturating_sub(unix_then);
                    soonest(then + Duration::from_secs(wait));
                }
            }
            if busy.contains(&entry.peer) {
                continue;
            }
            match self.step(entry, now, &mut soonest) {
                Step::Wait => {}
                Step::PeerBusy => {
                    busy.insert(entry.peer.clone());
                }
                Step::Connect => {
                    let failures = match self.peers.get(&entry.peer) {
                        Some(Peer::Down { failures, .. }) => *failures,
                        _ => 0,
                    };
                    self.peers
                        .insert(entry.peer.clone(), Peer::Connecting { failures });
                    busy.insert(entry.peer.clone());
                    self.actions.push_back(Action::Connect {
                        peer: entry.peer.clone(),
                    });
                }
                Step::Send => {
                    self.in_flight
                        .insert(entry.key.clone(), (entry.peer.clone(), entry.urgency));
                    self.actions.push_back(Action::Send {
                        key: entry.key.clone(),
                        peer: entry.peer.clone(),
                    });
                }
            }
        }
        if !expired.is_empty() {
            self.queue.retain(|q| !expired.contains(&q.key));
            self.retry.retain(|k, _| !expired.contains(k));
        }
        self.timeout = timeout;
    }

    fn step(&self, entry: &Queued<K>, now: Instant, soonest: &mut impl FnMut(Instant)) -> Step {
        match self.peers.get(&entry.peer) {
            None | Some(Peer::Disconnected) => return Step::Connect,
            Some(Peer::Down { until, .. }) if *until <= now => return Step::Connect,
            Some(Peer::Down { until, .. }) => {
                soonest(*until);
                return Step::PeerBusy;
            }
            Some(Peer::Connecting { .. }) => return Step::PeerBusy,
            Some(Peer::Up) => {}
        }
        if self.in_flight.contains_key(&entry.key) {
            return Step::Wait;
        }
        if let Some(retry) = self.retry.get(&entry.key).filter(|r| r.until > now) {
            soonest(retry.until);
            return Step::Wait;
        }
        let (count, more_urgent) = self
            .in_flight
            .values()
            .filter(|(p, _)| *p == entry.peer)
            .fold((0u32, false), |(n, m), (_, u)| {
                (n + 1, m || *u > entry.urgency)
            });
        if count < self.max_concurrent_per_peer && !more_urgent {
            Step::Send
        } else {
            Step::PeerBusy
        }
    }

    /// Backs `peer` off as a whole after a failure for `reason`; returns for how long.
    fn peer_failed(&mut self, now: Instant, peer: &OrganCode, reason: &str) -> Duration {
        let failures = match self.peers.get(peer) {
            Some(Peer::Down { failures, .. } | Peer::Connecting { failures }) => *failures,
            _ => 0,
        };
        let delay = backoff(failures, self.jitter.next_f64());
        self.peers.insert(
            peer.clone(),
            Peer::Down {
                until: now + delay,
                failures: failures + 1,
                reason: reason.to_owned(),
            },
        );
        delay
    }
}
