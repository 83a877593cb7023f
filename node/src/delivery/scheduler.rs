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
//! - A peer whose last [`UNREACHABLE_AFTER`] connection attempts failed counts as unreachable:
//!   the driver routes around it where the directory names another relay
//!   (`routing::next_hop_avoiding`), and tells the scheduler so; a peer routed around is still
//!   tried each time its backoff ends (at most five minutes apart), with nothing queued for it,
//!   and once a connection to it is made it counts as reachable again and the route comes back.
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
/// Connection attempts to a peer that fail in a row before it counts as unreachable and is
/// bypassed where the directory allows ([`Scheduler::unreachable`]). Three: one lost connection
/// and a failed reconnection are a restart or a blip; the third failure, after the 0.5 s and 1 s
/// backoffs (and each attempt's handshake timeout), is a relay that is down.
pub(crate) const UNREACHABLE_AFTER: u32 = 3;
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
    /// The wall clock (since the Unix epoch) when the queue was last shown, and that instant.
    wall: (Duration, Option<Instant>),
    /// Dispatches backed off alone.
    retry: HashMap<K, Retry>,
    /// Transfers running: dispatch → peer and urgency.
    in_flight: HashMap<K, (OrganCode, u8)>,
    /// Peers the driver routed around, not connected since: tried when their backoff ends, with
    /// nothing queued for them.
    bypassed: HashSet<OrganCode>,
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
            wall: (Duration::ZERO, None),
            retry: HashMap::new(),
            in_flight: HashMap::new(),
            bypassed: HashSet::new(),
            actions: VecDeque::new(),
            timeout: None,
        }
    }

    /// The peers that count as unreachable: the last [`UNREACHABLE_AFTER`] or more connection
    /// attempts to each failed (a connection made starts the count again). The driver routes
    /// around them where the directory names another relay, and reports those it did with
    /// [`handle_bypassed`](Self::handle_bypassed).
    pub(crate) fn unreachable(&self) -> HashSet<OrganCode> {
        self.peers
            .iter()
            .filter(|(_, state)| match state {
                Peer::Down { failures, .. } | Peer::Connecting { failures } => {
                    *failures >= UNREACHABLE_AFTER
                }
                Peer::Up | Peer::Disconnected => false,
            })
            .map(|(peer, _)| peer.clone())
            .collect()
    }

    /// The driver routed around `peers` (unreachable peers some queued dispatch would have gone
    /// to): each is then tried on its own whenever its backoff ends, queued dispatches or not,
    /// until a connection to it is made, so that the route comes back to it once it answers.
    pub(crate) fn handle_bypassed(&mut self, peers: HashSet<OrganCode>) {
        self.bypassed.extend(peers);
    }

    /// The outbox's head as it is at `now`, when the wall clock reads `unix` (since the Unix
    /// epoch, for expiry times): what the next pass works through. Sorted here, most urgent first and otherwise in the order given (the order of
    /// submission), and cut to the [`PASS_LIMIT`] most urgent.
    pub(crate) fn handle_queue(
        &mut self,
        now: Instant,
        unix: Duration,
        queued: impl IntoIterator<Item = Queued<K>>,
    ) {
        let mut queue: Vec<Queued<K>> = queued.into_iter().collect();
        queue.sort_by_key(|q| std::cmp::Reverse(q.urgency));
        queue.truncate(PASS_LIMIT);
        self.queue = queue;
        self.wall = (unix, Some(now));
    }

    /// The connection a [`Action::Connect`] asked for is up: transfers to `peer` may start.
    pub(crate) fn handle_connected(&mut self, peer: &OrganCode) {
        self.bypassed.remove(peer);
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
        self.bypassed.clear();
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
        let unix_now = (unix_then + elapsed).as_secs();
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
                    let at = Duration::from_secs(expires.saturating_add(1));
                    soonest(then + at.saturating_sub(unix_then));
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
        // Peers routed around: tried again on their own when their backoff ends.
        for peer in &self.bypassed {
            match self.peers.get(peer) {
                Some(Peer::Down {
                    until, failures, ..
                }) if *until <= now => {
                    let failures = *failures;
                    self.peers
                        .insert(peer.clone(), Peer::Connecting { failures });
                    self.actions
                        .push_back(Action::Connect { peer: peer.clone() });
                }
                Some(Peer::Down { until, .. }) => soonest(*until),
                _ => {}
            }
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

#[cfg(test)]
mod tests {
    //! Several nodes' schedulers in memory on a virtual clock: links up or down, a connection
    //! taking [`CONNECT`] and a transfer [`TRANSFER`], dispatches landing in the receiver's inbox.

    use super::*;

    /// Unix seconds at the start of a simulation.
    const UNIX: u64 = 1_800_000_000;
    const CONNECT: Duration = Duration::from_millis(20);
    const TRANSFER: Duration = Duration::from_millis(100);
    const MS: Duration = Duration::from_millis(1);

    fn code(node: usize) -> OrganCode {
        format!("000.00.00.N{node:02}").parse().unwrap()
    }

    fn index(peer: &OrganCode) -> usize {
        peer.as_str()[11..].parse().unwrap()
    }

    struct SimNode {
        scheduler: Scheduler<u32>,
        /// The node's outbox, in order of submission.
        queue: Vec<Queued<u32>>,
        /// What arrived, in order.
        inbox: Vec<u32>,
        /// What expired: key, reason, when.
        expired: Vec<(u32, &'static str, Duration)>,
        /// Further relays the directory names after a peer, in order (the driver's
        /// `routing::next_hop_avoiding`, reduced to a table).
        alternates: HashMap<usize, Vec<usize>>,
    }

    /// A transfer started.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Start {
        at: Duration,
        from: usize,
        to: usize,
        key: u32,
    }

    enum Due {
        Connect { from: usize, to: usize },
        Transfer { from: usize, to: usize, key: u32 },
    }

    struct Sim {
        base: Instant,
        t: Duration,
        nodes: Vec<SimNode>,
        /// Links down, as (lower, higher) node pairs.
        down: HashSet<(usize, usize)>,
        due: Vec<(Duration, Due)>,
        /// Dispatches whose transfer fails this many more times.
        flaky: HashMap<u32, u32>,
        starts: Vec<Start>,
        /// Transfers ended: when, which, how ("sent", "failed", "broke").
        ends: Vec<(Duration, u32, &'static str)>,
        /// Connection attempts: when, from, to.
        connects: Vec<(Duration, usize, usize)>,
        /// Connection failures reported: when, from, to.
        connect_failures: Vec<(Duration, usize, usize)>,
        in_flight: HashMap<(usize, usize), usize>,
        max_in_flight: HashMap<(usize, usize), usize>,
        /// Every dispatch taken, by whom, in order.
        received: Vec<(usize, u32)>,
    }

    impl Sim {
        fn new(nodes: usize, limit: u32, seed: u64) -> Self {
            Self {
                base: Instant::now(),
                t: Duration::ZERO,
                nodes: (0..nodes)
                    .map(|i| SimNode {
                        scheduler: Scheduler::new(limit, seed + i as u64),
                        queue: Vec::new(),
                        inbox: Vec::new(),
                        expired: Vec::new(),
                        alternates: HashMap::new(),
                    })
                    .collect(),
                down: HashSet::new(),
                due: Vec::new(),
                flaky: HashMap::new(),
                starts: Vec::new(),
                ends: Vec::new(),
                connects: Vec::new(),
                connect_failures: Vec::new(),
                in_flight: HashMap::new(),
                max_in_flight: HashMap::new(),
                received: Vec::new(),
            }
        }

        fn now(&self) -> Instant {
            self.base + self.t
        }

        fn queue(&mut self, from: usize, to: usize, key: u32, urgency: u8, expires: Option<u64>) {
            self.nodes[from].queue.push(Queued {
                key,
                peer: code(to),
                urgency,
                expires,
            });
        }

        fn is_down(&self, a: usize, b: usize) -> bool {
            self.down.contains(&(a.min(b), a.max(b)))
        }

        /// Takes the link between `a` and `b` up or down; down closes its connections.
        fn link(&mut self, a: usize, b: usize, up: bool) {
            if up {
                self.down.remove(&(a.min(b), a.max(b)));
            } else {
                self.down.insert((a.min(b), a.max(b)));
                self.nodes[a].scheduler.handle_connection_lost(&code(b));
                self.nodes[b].scheduler.handle_connection_lost(&code(a));
            }
        }

        /// Every node's driver round: the queue shown, the actions carried out.
        fn round(&mut self) {
            let (now, t) = (self.now(), self.t);
            let unix = Duration::from_secs(UNIX) + t;
            for from in 0..self.nodes.len() {
                // As the driver routes: past unreachable peers to the next one named, if any.
                let node = &mut self.nodes[from];
                let unreachable = node.scheduler.unreachable();
                let mut bypassed = HashSet::new();
                let mut queued = node.queue.clone();
                for q in &mut queued {
                    let Some(further) = node.alternates.get(&index(&q.peer)) else {
                        continue;
                    };
                    let chosen = std::iter::once(q.peer.clone())
                        .chain(further.iter().map(|n| code(*n)))
                        .find(|p| !unreachable.contains(p))
                        .unwrap_or_else(|| q.peer.clone());
                    if chosen != q.peer {
                        bypassed.insert(std::mem::replace(&mut q.peer, chosen));
                    }
                }
                node.scheduler.handle_bypassed(bypassed);
                self.nodes[from].scheduler.handle_queue(now, unix, queued);
                while let Some(action) = self.nodes[from].scheduler.poll_action(now) {
                    match action {
                        Action::Connect { peer } => {
                            let to = index(&peer);
                            self.connects.push((t, from, to));
                            self.due.push((t + CONNECT, Due::Connect { from, to }));
                        }
                        Action::Send { key, peer } => {
                            let to = index(&peer);
                            self.starts.push(Start {
                                at: t,
                                from,
                                to,
                                key,
                            });
                            let n = self.in_flight.entry((from, to)).or_default();
                            *n += 1;
                            let max = self.max_in_flight.entry((from, to)).or_default();
                            *max = (*max).max(*n);
                            self.due
                                .push((t + TRANSFER, Due::Transfer { from, to, key }));
                        }
                        Action::Expire { key, reason } => {
                            self.nodes[from].queue.retain(|q| q.key != key);
                            self.nodes[from].expired.push((key, reason, t));
                        }
                    }
                }
            }
        }

        /// Runs to `end` on the virtual clock, jumping from event to event and timeout to timeout.
        fn run_until(&mut self, end: Duration) {
            for _ in 0..100_000 {
                self.round();
                let next_due = self.due.iter().map(|(at, _)| *at).min();
                let next_timeout = self
                    .nodes
                    .iter()
                    .filter_map(|n| n.scheduler.poll_timeout())
                    .map(|at| at.duration_since(self.base))
                    .min();
                match [next_due, next_timeout].into_iter().flatten().min() {
                    Some(next) if next <= end => {
                        assert!(next >= self.t, "time went back");
                        self.t = next;
                        self.deliver();
                    }
                    _ => {
                        self.t = end;
                        self.round();
                        return;
                    }
                }
            }
            panic!("the simulation does not settle");
        }

        /// What is due by now, earliest first, ties in the order they were set.
        fn deliver(&mut self) {
            loop {
                let Some(pos) = (0..self.due.len())
                    .filter(|&i| self.due[i].0 <= self.t)
                    .min_by_key(|&i| (self.due[i].0, i))
                else {
                    return;
                };
                let (now, t) = (self.now(), self.t);
                match self.due.remove(pos).1 {
                    Due::Connect { from, to } => {
                        let scheduler = &mut self.nodes[from].scheduler;
                        if self.down.contains(&(from.min(to), from.max(to))) {
                            scheduler.handle_connect_failed(now, &code(to), "link down");
                            self.connect_failures.push((t, from, to));
                        } else {
                            scheduler.handle_connected(&code(to));
                        }
                    }
                    Due::Transfer { from, to, key } => {
                        *self.in_flight.entry((from, to)).or_default() -= 1;
                        let down = self.is_down(from, to);
                        let flaky = self.flaky.get_mut(&key).filter(|n| **n > 0);
                        let (outcome, how) = if down {
                            let reason = "link down".to_owned();
                            (Outcome::ConnectionBroke { reason }, "broke")
                        } else if let Some(left) = flaky {
                            *left -= 1;
                            let reason = "disk busy".to_owned();
                            (
                                Outcome::Failed {
                                    reason,
                                    retry: true,
                                },
                                "failed",
                            )
                        } else {
                            self.nodes[to].inbox.push(key);
                            self.nodes[from].queue.retain(|q| q.key != key);
                            self.received.push((to, key));
                            (Outcome::Sent, "sent")
                        };
                        self.ends.push((t, key, how));
                        self.nodes[from]
                            .scheduler
                            .handle_transfer_finished(now, &key, &outcome);
                    }
                }
            }
        }

        fn starts_of(&self, key: u32) -> Vec<Duration> {
            self.starts
                .iter()
                .filter(|s| s.key == key)
                .map(|s| s.at)
                .collect()
        }

        fn ends_of(&self, key: u32) -> Vec<(Duration, &'static str)> {
            self.ends
                .iter()
                .filter(|e| e.1 == key)
                .map(|e| (e.0, e.2))
                .collect()
        }

        fn report(&self, node: usize, peer: usize) -> PeerReport {
            self.nodes[node]
                .scheduler
                .report(self.now())
                .into_iter()
                .find(|r| r.organ_code == code(peer))
                .unwrap()
        }
    }

    /// `delay` is the backoff after `failures` earlier failures: base in [500 ms · 2^n, 5 min],
    /// plus at most a quarter.
    fn within_backoff(delay: Duration, failures: u32) {
        let base = (FIRST_BACKOFF * 2u32.pow(failures)).min(MAX_BACKOFF);
        assert!(
            delay >= base && delay <= base.mul_f64(1.25),
            "{delay:?} after {failures} failures, base {base:?}"
        );
    }

    #[test]
    fn a_flash_dispatch_queued_after_ten_normal_ones_leaves_next() {
        let mut sim = Sim::new(2, 1, 7);
        for key in 1..=10 {
            sim.queue(0, 1, key, 0, None);
        }
        // Connected at 20 ms, key 1 in flight until 120 ms: the hỏa tốc comes meanwhile.
        sim.run_until(50 * MS);
        assert_eq!(sim.starts_of(1), [20 * MS]);
        sim.queue(0, 1, 11, 3, None);
        sim.run_until(Duration::from_secs(5));
        assert_eq!(sim.nodes[1].inbox, [1, 11, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(sim.starts_of(11), [120 * MS]);
        // One at a time, back to back, each exactly once.
        let at: Vec<Duration> = sim.starts.iter().map(|s| s.at).collect();
        let want: Vec<Duration> = (0..11).map(|n| 20 * MS + TRANSFER * n).collect();
        assert_eq!(at, want);
        assert_eq!(sim.max_in_flight[&(0, 1)], 1);
        assert!(sim.nodes[0].queue.is_empty());
        assert_eq!(sim.connects.len(), 1);
    }

    #[test]
    fn per_peer_limit_and_nothing_starts_beside_a_more_urgent_transfer() {
        // Node 0 sends a thượng khẩn and six thường to node 1, three thường to node 2; at most
        // three at a time per peer.
        let mut sim = Sim::new(3, 3, 11);
        sim.queue(0, 1, 1, 2, None);
        for key in 2..=7 {
            sim.queue(0, 1, key, 0, None);
        }
        for key in 8..=10 {
            sim.queue(0, 2, key, 0, None);
        }
        sim.run_until(Duration::from_secs(5));
        // The thượng khẩn alone first; the thường to the same peer wait for it to finish.
        assert_eq!(sim.starts_of(1), [20 * MS]);
        assert_eq!(sim.ends_of(1), [(120 * MS, "sent")]);
        for key in 2..=4 {
            assert_eq!(sim.starts_of(key), [120 * MS], "key {key}");
        }
        for key in 5..=7 {
            assert_eq!(sim.starts_of(key), [220 * MS], "key {key}");
        }
        // Another peer is not held up by it.
        for key in 8..=10 {
            assert_eq!(sim.starts_of(key), [20 * MS], "key {key}");
        }
        assert_eq!(sim.max_in_flight[&(0, 1)], 3);
        assert_eq!(sim.max_in_flight[&(0, 2)], 3);
        assert_eq!(sim.nodes[1].inbox, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(sim.nodes[2].inbox, [8, 9, 10]);
        assert_eq!(sim.starts.len(), 10);
    }

    #[test]
    fn backoff_doubles_from_500_ms_to_5_min_with_at_most_a_quarter_of_jitter() {
        assert_eq!(backoff(0, 0.0), FIRST_BACKOFF);
        assert_eq!(backoff(0, 1.0), FIRST_BACKOFF.mul_f64(1.25));
        assert_eq!(backoff(3, 0.5), Duration::from_millis(4000 + 500));
        assert_eq!(backoff(9, 0.0), Duration::from_secs(256));
        assert_eq!(backoff(10, 0.0), MAX_BACKOFF);
        assert_eq!(backoff(40, 1.0), MAX_BACKOFF.mul_f64(1.25));
        // The generator's draws stay in [0, 1) and spread.
        let mut jitter = Jitter(3);
        let draws: Vec<f64> = (0..1000).map(|_| jitter.next_f64()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        assert!(draws.iter().any(|d| *d < 0.1) && draws.iter().any(|d| *d > 0.9));
    }

    #[test]
    fn an_unreachable_peer_is_retried_after_doubling_delays_within_the_jitter_bounds() {
        let run = |seed| {
            let mut sim = Sim::new(2, 1, seed);
            sim.link(0, 1, false);
            sim.queue(0, 1, 1, 0, None);
            sim.run_until(Duration::from_secs(200));
            sim
        };
        let sim = run(5);
        let attempts: Vec<Duration> = sim.connects.iter().map(|c| c.0).collect();
        // 0.5 + 1 + 2 + ... + 64 s (+ jitter) fit in 200 s after the first; 128 more do not.
        assert_eq!(attempts.len(), 9, "{attempts:?}");
        assert_eq!(sim.connect_failures.len(), 9);
        let mut ratios = Vec::new();
        for (n, failed) in sim.connect_failures.iter().take(8).enumerate() {
            assert_eq!(failed.0, attempts[n] + CONNECT);
            let delay = attempts[n + 1] - failed.0;
            within_backoff(delay, n as u32);
            ratios.push(delay.as_secs_f64() / (FIRST_BACKOFF * 2u32.pow(n as u32)).as_secs_f64());
        }
        // Jittered, not all alike.
        assert!(
            ratios.iter().any(|r| (r - ratios[0]).abs() > 0.01),
            "{ratios:?}"
        );
        assert!(sim.starts.is_empty());
        let report = sim.report(0, 1);
        assert_eq!(report.state, "unreachable");
        assert_eq!(report.failures, Some(9));
        assert_eq!(report.last_error.as_deref(), Some("link down"));
        // The next attempt, 128 s (+ up to 32 s) after the ninth failure.
        let until = sim.nodes[0].scheduler.poll_timeout().unwrap();
        within_backoff(
            until.duration_since(sim.base) - sim.connect_failures[8].0,
            8,
        );
        assert_eq!(
            report.retry_in_secs,
            Some(until.duration_since(sim.now()).as_secs())
        );
        // The same seed, the same timing; another seed, other delays.
        assert_eq!(run(5).connects, sim.connects);
        assert_ne!(run(6).connects, sim.connects);
    }

    #[test]
    fn an_expired_dispatch_fails_with_its_reason_and_is_never_sent() {
        let mut sim = Sim::new(2, 1, 3);
        sim.link(0, 1, false);
        sim.queue(0, 1, 1, 3, Some(UNIX + 3));
        sim.queue(0, 1, 2, 0, Some(UNIX + 60));
        sim.queue(0, 1, 3, 0, None);
        sim.run_until(Duration::from_secs(10));
        // Expired once the clock reads expires + 1: at 4 s exactly, woken by the timeout.
        assert_eq!(
            sim.nodes[0].expired,
            [(1, "expired before delivery", Duration::from_secs(4))]
        );
        sim.link(0, 1, true);
        sim.run_until(Duration::from_secs(30));
        assert_eq!(sim.nodes[1].inbox, [2, 3]);
        assert!(sim.starts_of(1).is_empty());
        assert_eq!(sim.nodes[0].expired.len(), 1);
    }

    #[test]
    fn an_in_flight_dispatch_is_not_expired_under_its_transfer() {
        let (now, unix) = (Instant::now(), Duration::from_secs(UNIX));
        let mut scheduler = Scheduler::new(1, 1);
        let head = || {
            [Queued {
                key: 1u32,
                peer: code(1),
                urgency: 0,
                expires: Some(UNIX),
            }]
        };
        scheduler.handle_queue(now, unix, head());
        assert_eq!(
            scheduler.poll_action(now),
            Some(Action::Connect { peer: code(1) })
        );
        scheduler.handle_connected(&code(1));
        scheduler.handle_queue(now, unix, head());
        let send = Action::Send {
            key: 1,
            peer: code(1),
        };
        assert_eq!(scheduler.poll_action(now), Some(send));
        assert_eq!(scheduler.poll_action(now), None);
        assert_eq!(scheduler.poll_timeout(), Some(now + Duration::from_secs(1)));
        // Past its expiry while in flight: left alone.
        let later = now + Duration::from_secs(2);
        let unix = unix + Duration::from_secs(2);
        scheduler.handle_queue(later, unix, head());
        assert_eq!(scheduler.poll_action(later), None);
        assert_eq!(scheduler.report(later)[0].in_flight, 1);
        // Failed: now it expires.
        let failed = Outcome::Failed {
            reason: "reset".into(),
            retry: true,
        };
        assert!(scheduler
            .handle_transfer_finished(later, &1, &failed)
            .is_some());
        scheduler.handle_queue(later, unix, head());
        assert_eq!(
            scheduler.poll_action(later),
            Some(Action::Expire {
                key: 1,
                reason: EXPIRED
            })
        );
        assert_eq!(scheduler.poll_action(later), None);
        assert_eq!(scheduler.poll_timeout(), None);
    }

    #[test]
    fn a_peer_that_comes_back_gets_its_backlog_in_priority_order_exactly_once() {
        // Node 0 queues for node 1 (down for 30 s) and node 2; node 2 also queues for node 1.
        let mut sim = Sim::new(3, 2, 21);
        sim.link(0, 1, false);
        sim.link(2, 1, false);
        for (key, urgency) in [(1, 0), (2, 1), (3, 4), (4, 2), (5, 0), (6, 3), (7, 1)] {
            sim.queue(0, 1, key, urgency, None);
        }
        sim.queue(0, 2, 20, 0, None);
        sim.queue(0, 2, 21, 2, None);
        sim.queue(2, 1, 30, 0, None);
        sim.queue(2, 1, 31, 3, None);
        sim.run_until(Duration::from_secs(30));
        // Node 2 was reachable all along, the more urgent first.
        assert_eq!(sim.nodes[2].inbox, [21, 20]);
        assert!(sim.nodes[1].inbox.is_empty());
        assert_eq!(sim.report(0, 1).state, "unreachable");
        assert_eq!(sim.report(0, 2).state, "connected");

        sim.link(0, 1, true);
        sim.link(2, 1, true);
        sim.run_until(Duration::from_secs(200));
        let from_0: Vec<u32> = sim.nodes[1]
            .inbox
            .iter()
            .copied()
            .filter(|k| *k < 10)
            .collect();
        // hỏa tốc hẹn giờ, hỏa tốc, thượng khẩn, khẩn (in order of submission), thường.
        assert_eq!(from_0, [3, 6, 4, 2, 7, 1, 5]);
        let from_2: Vec<u32> = sim.nodes[1]
            .inbox
            .iter()
            .copied()
            .filter(|k| *k >= 30)
            .collect();
        assert_eq!(from_2, [31, 30]);
        assert_eq!(sim.nodes[1].inbox.len(), 9, "each exactly once");
        assert!(sim
            .starts
            .iter()
            .all(|s| s.to != 1 || s.at >= Duration::from_secs(30)));
        assert!(sim.ends.iter().all(|e| e.2 == "sent"));
        assert!(sim.nodes.iter().all(|n| n.queue.is_empty()));
        let back = sim.report(0, 1);
        assert_eq!(
            (back.state, back.in_flight, back.failures),
            ("connected", 0, None)
        );
        // The two khẩn left together (same urgency, two allowed); nothing else overlapped.
        assert_eq!(sim.starts_of(2), sim.starts_of(7));
        assert_eq!(sim.max_in_flight[&(0, 1)], 2);
    }

    #[test]
    fn a_failed_transfer_backs_off_that_dispatch_alone() {
        let mut sim = Sim::new(2, 2, 9);
        for key in 1..=4 {
            sim.queue(0, 1, key, 0, None);
        }
        sim.flaky.insert(1, 2);
        sim.run_until(Duration::from_secs(10));
        assert_eq!(sim.nodes[1].inbox, [2, 3, 4, 1]);
        // Key 2, then 3 and 4, went on while key 1 waited.
        assert_eq!(sim.starts_of(2), [20 * MS]);
        assert_eq!(sim.starts_of(3), [120 * MS]);
        assert_eq!(sim.starts_of(4), [120 * MS]);
        let (starts, ends) = (sim.starts_of(1), sim.ends_of(1));
        assert_eq!(starts.len(), 3);
        assert_eq!(
            ends.iter().map(|e| e.1).collect::<Vec<_>>(),
            ["failed", "failed", "sent"]
        );
        within_backoff(starts[1] - ends[0].0, 0);
        within_backoff(starts[2] - ends[1].0, 1);
        // The peer stayed connected throughout.
        assert_eq!(sim.connects.len(), 1);
        let report = sim.report(0, 1);
        assert_eq!((report.state, report.failures), ("connected", None));
    }

    #[test]
    fn a_broken_connection_backs_off_the_peer_not_the_dispatch() {
        let mut sim = Sim::new(2, 1, 4);
        sim.queue(0, 1, 1, 0, None);
        sim.run_until(50 * MS);
        // Cut without notice: the transfer finds out.
        sim.down.insert((0, 1));
        sim.run_until(150 * MS);
        assert_eq!(sim.ends_of(1), [(120 * MS, "broke")]);
        let report = sim.report(0, 1);
        assert_eq!(report.state, "unreachable");
        assert_eq!(report.failures, Some(1));
        // Retried after the peer's backoff, connect first.
        sim.link(0, 1, true);
        sim.run_until(Duration::from_secs(5));
        assert_eq!(sim.connects.len(), 2);
        within_backoff(sim.connects[1].0 - 120 * MS, 0);
        assert_eq!(sim.starts_of(1), [20 * MS, sim.connects[1].0 + CONNECT]);
        assert_eq!(sim.nodes[1].inbox, [1]);
    }

    #[test]
    fn a_reload_retries_a_backed_off_peer_at_once() {
        let mut sim = Sim::new(2, 1, 8);
        sim.link(0, 1, false);
        sim.queue(0, 1, 1, 2, None);
        sim.run_until(Duration::from_secs(40));
        let tried = sim.connects.len();
        assert!(
            sim.nodes[0].scheduler.poll_timeout().unwrap() > sim.now() + Duration::from_secs(5)
        );
        sim.link(0, 1, true);
        sim.nodes[0].scheduler.handle_reload();
        sim.run_until(Duration::from_secs(41));
        assert_eq!(sim.connects.len(), tried + 1);
        assert_eq!(sim.connects[tried].0, Duration::from_secs(40));
        assert_eq!(sim.starts_of(1), [Duration::from_secs(40) + CONNECT]);
        assert_eq!(sim.nodes[1].inbox, [1]);
    }

    #[test]
    fn a_relay_down_three_times_in_a_row_is_bypassed_and_comes_back_when_it_answers() {
        // Node 0 hands its dispatches to relay 1, else to relay 2.
        let mut sim = Sim::new(3, 2, 13);
        sim.nodes[0].alternates.insert(1, vec![2]);
        sim.queue(0, 1, 1, 0, None);
        sim.run_until(50 * MS);
        // Relay 1 dies under the first transfer: one failure; reconnections fail after it.
        sim.down.insert((0, 1));
        let unreachable = |sim: &Sim| sim.nodes[0].scheduler.unreachable();
        sim.run_until(130 * MS);
        assert_eq!(sim.ends_of(1), [(120 * MS, "broke")]);
        assert!(unreachable(&sim).is_empty(), "one failure is no outage");
        for key in 2..=4 {
            sim.queue(0, 1, key, key as u8 % 3, None);
        }
        sim.run_until(Duration::from_secs(60));
        // The third failure in a row (the second connection refused) turns the route.
        let bypassed_at = sim.connect_failures[1].0;
        assert_eq!(unreachable(&sim), HashSet::from([code(1)]));
        assert!(sim.nodes[1].inbox.is_empty());
        let mut taken = sim.nodes[2].inbox.clone();
        taken.sort_unstable();
        assert_eq!(taken, [1, 2, 3, 4], "each through relay 2, once");
        assert!(sim
            .starts
            .iter()
            .filter(|s| s.to == 2)
            .all(|s| s.at >= bypassed_at + CONNECT));
        // Relay 1 is still tried on its own after each backoff, doubling, nothing queued for it.
        let failed: Vec<Duration> = sim
            .connect_failures
            .iter()
            .filter(|c| c.2 == 1)
            .map(|c| c.0)
            .collect();
        assert!(failed.len() >= 5, "{failed:?}");
        for (n, pair) in failed.windows(2).enumerate() {
            within_backoff(pair[1] - CONNECT - pair[0], n as u32 + 1);
        }
        // A new dispatch while it is down goes round it at once.
        sim.queue(0, 1, 5, 3, None);
        let queued_at = sim.t;
        sim.run_until(queued_at + 10 * MS);
        assert_eq!(sim.starts_of(5), [queued_at]);
        // Relay 1 answers again: its next try connects and the route comes back to it.
        sim.link(0, 1, true);
        sim.run_until(queued_at + Duration::from_secs(60));
        assert!(unreachable(&sim).is_empty());
        assert_eq!(sim.report(0, 1).state, "connected");
        let back = sim.t;
        sim.queue(0, 1, 6, 0, None);
        sim.run_until(back + Duration::from_secs(1));
        assert_eq!(sim.nodes[1].inbox, [6]);
        assert_eq!(sim.starts_of(6), [back]);
        let mut all: Vec<u32> = sim.received.iter().map(|r| r.1).collect();
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3, 4, 5, 6], "each exactly once");
    }

    #[test]
    fn unreachable_counts_failures_in_a_row_and_a_connection_resets_it() {
        let now = Instant::now();
        let mut scheduler: Scheduler<u32> = Scheduler::new(1, 1);
        let peer = code(1);
        for n in 1..=UNREACHABLE_AFTER {
            scheduler.handle_connect_failed(now, &peer, "timed out");
            assert_eq!(
                scheduler.unreachable().contains(&peer),
                n >= UNREACHABLE_AFTER
            );
        }
        // Being tried again, it stays unreachable until the attempt succeeds.
        scheduler.handle_bypassed([peer.clone()].into());
        let later = now + MAX_BACKOFF * 2;
        assert_eq!(
            scheduler.poll_action(later),
            Some(Action::Connect { peer: peer.clone() })
        );
        assert!(scheduler.unreachable().contains(&peer));
        scheduler.handle_connected(&peer);
        assert!(scheduler.unreachable().is_empty());
        // Not tried again once it answered: nothing is queued for it.
        scheduler.handle_connection_lost(&peer);
        assert_eq!(scheduler.poll_action(later), None);
        // A reload forgets the failures, and whom it routed around.
        for _ in 0..UNREACHABLE_AFTER {
            scheduler.handle_connect_failed(later, &peer, "timed out");
        }
        scheduler.handle_bypassed([peer.clone()].into());
        scheduler.handle_reload();
        assert!(scheduler.unreachable().is_empty());
        assert_eq!(scheduler.poll_action(later + MAX_BACKOFF * 2), None);
    }

    #[test]
    fn a_pass_looks_at_the_512_most_urgent_only() {
        let now = Instant::now();
        let mut scheduler = Scheduler::new(1, 1);
        // 512 hỏa tốc to a peer that is down, then one thường to another, already expired.
        let head = |n: u32| {
            (0..n)
                .map(|key| Queued {
                    key,
                    peer: code(1),
                    urgency: 3,
                    expires: None,
                })
                .chain(std::iter::once(Queued {
                    key: 9999,
                    peer: code(2),
                    urgency: 0,
                    expires: Some(UNIX - 1),
                }))
        };
        let unix = Duration::from_secs(UNIX);
        scheduler.handle_queue(now, unix, head(512));
        assert_eq!(
            std::iter::from_fn(|| scheduler.poll_action(now)).collect::<Vec<_>>(),
            [Action::Connect { peer: code(1) }]
        );
        scheduler.handle_queue(now, unix, head(511));
        assert_eq!(
            std::iter::from_fn(|| scheduler.poll_action(now)).collect::<Vec<_>>(),
            [Action::Expire {
                key: 9999,
                reason: EXPIRED
            }]
        );
    }
}
