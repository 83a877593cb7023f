//! The outbox driver: moves work between the scheduler's core (`scheduler`), the store, QUIC and
//! tokio, and decides nothing itself.
//!
//! Each round it feeds the core what happened (connections made, failed or closed, transfers
//! finished, a trust reload) and the head of the outbox, carries out the actions the core returns
//! (connect, send, expire) as tasks whose results come back as events, and sleeps until the core's
//! timeout, an event, or a wake-up. The rules — priority order, per-peer concurrency, backoff,
//! expiry — are the core's, and are tested there on a virtual clock.
//!
//! The next hop of each queued object is worked out afresh each round, past the peers the core
//! counts as unreachable where the directory names another relay (`Host::route_avoiding`): an
//! object queued for a relay that went down moves on to the next relay, the same object under
//! the same transfer id, so a receiver that already took it (from a relay that comes back)
//! keeps one copy.
//!
//! The outbox is the host's: it serves every tenant's queued objects in one priority order. A
//! next hop that is a tenant of this host (`routing::Hop::Local`) is "connected" at once and
//! served by [`crate::net::transfer::hand_over_locally`], the same steps without the network.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use vdx_protocol::OrganCode;

pub(crate) use crate::delivery::scheduler::PeerReport;
use crate::delivery::scheduler::{Action, Outcome, Queued, Scheduler, PASS_LIMIT};
use crate::host::metrics::Metrics;
use crate::host::{Host, Stop};
use crate::net::transfer::{
    hand_over_locally, send_dispatch, ReceivePolicy as _, SendOutcome, TransferError,
};
use crate::routing::Hop;
use crate::store::{Direction, DispatchState, MessageId, Record};
use crate::tenant::receipts::verify_receipt;
use crate::tenant::Tenant;

/// A queued object: the tenant whose outbox holds it (shared, not copied, into each of a
/// round's hundreds of keys), and its transfer id.
pub(crate) type Key = (Arc<OrganCode>, MessageId);

/// The longest the driver sleeps without reading the outbox again: the store changes without
/// telling it in a few cases (a restore acknowledged), and the core knows only what it is shown.
const TICK: Duration = Duration::from_millis(500);

/// The scheduler's core, shared with the status report (`Host::schedule`).
pub(crate) struct Schedule {
    core: Scheduler<Key>,
}

impl Default for Schedule {
    /// An empty schedule until [`run`] installs one with the configured limits.
    fn default() -> Self {
        Self::new(1)
    }
}

impl Schedule {
    /// Seeded from OpenSSL's generator: nodes restarted together must not retry in step.
    fn new(max_concurrent_per_peer: u32) -> Self {
        let mut seed = [0u8; 8];
        let _ = openssl::rand::rand_bytes(&mut seed);
        Self {
            core: Scheduler::new(max_concurrent_per_peer, u64::from_le_bytes(seed)),
        }
    }

    /// The peers the scheduler counts as unreachable now (`Scheduler::unreachable`).
    pub(crate) fn unreachable(&self) -> HashSet<OrganCode> {
        self.core.unreachable()
    }

    /// Every peer the scheduler has dealt with since the start, by organ code.
    pub(crate) fn report(&self) -> Vec<PeerReport> {
        self.core.report(Instant::now())
    }
}

/// What the driver's tasks report back.
enum Event {
    /// A connection attempt ended.
    Connected {
        peer: OrganCode,
        result: Result<quinn::Connection, String>,
    },
    /// The connection with this `stable_id` closed.
    Lost { peer: OrganCode, id: usize },
    /// A transfer ended after `took`.
    Finished {
        peer: OrganCode,
        tenant: OrganCode,
        record: Box<Record>,
        result: Result<SendOutcome, TransferError>,
        took: Duration,
    },
}

/// What the driver holds between rounds: connections by peer and the tasks running.
struct Driver {
    node: Arc<Host>,
    endpoint: quinn::Endpoint,
    events: UnboundedSender<Event>,
    conns: HashMap<OrganCode, quinn::Connection>,
    /// Next hops that are tenants of this host, as of the last round.
    local: HashSet<OrganCode>,
    /// Connection attempts and transfers: let finish at a stop.
    tasks: JoinSet<()>,
    /// One per connection, waiting for it to close: dropped at a stop.
    watchers: JoinSet<()>,
}

/// Runs the outbox until `stop`; running transfers are let finish (or fail) before returning.
pub(crate) async fn run(endpoint: quinn::Endpoint, node: Arc<Host>, mut stop: Stop) {
    if let Ok(mut s) = node.schedule.lock() {
        *s = Schedule::new(node.config.limits.max_concurrent_per_peer);
    }
    let (events, mut incoming) = tokio::sync::mpsc::unbounded_channel();
    let mut driver = Driver {
        node: node.clone(),
        endpoint,
        events,
        conns: HashMap::new(),
        local: HashSet::new(),
        tasks: JoinSet::new(),
        watchers: JoinSet::new(),
    };
    let mut reloaded = node.reloaded.subscribe();
    let mut rechecked = Instant::now();
    while !stop.is_set() {
        while let Ok(event) = incoming.try_recv() {
            driver.handle(event);
        }
        let reload = reloaded.has_changed().unwrap_or(false);
        if reload || rechecked.elapsed() >= crate::host::trusted::RECHECK_EVERY {
            reloaded.mark_unchanged();
            rechecked = Instant::now();
            driver.recheck(reload);
        }
        let Some(timeout) = driver.round() else {
            return;
        };
        while let Some(joined) = driver.tasks.try_join_next() {
            if let Err(e) = joined {
                tracing::error!(error = %e, "outbox task failed");
            }
        }
        while driver.watchers.try_join_next().is_some() {}
        let wake = Instant::now() + TICK;
        let wake = timeout.map_or(wake, |t| t.min(wake));
        tokio::select! {
            _ = stop.wait() => break,
            _ = node.wake_outbox.notified() => {}
            Some(event) = incoming.recv() => driver.handle(event),
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    while driver.tasks.join_next().await.is_some() {}
}

impl Driver {
    /// Feeds one task's report to the core.
    fn handle(&mut self, event: Event) {
        let Ok(mut s) = self.node.schedule.lock() else {
            return;
        };
        let now = Instant::now();
        match event {
            Event::Connected {
                peer,
                result: Ok(conn),
            } => {
                tracing::info!(%peer, "connected");
                let (watched, events, id) = (conn.clone(), self.events.clone(), conn.stable_id());
                let lost = peer.clone();
                self.watchers.spawn(async move {
                    watched.closed().await;
                    let _ = events.send(Event::Lost { peer: lost, id });
                });
                self.conns.insert(peer.clone(), conn);
                s.core.handle_connected(&peer);
            }
            Event::Connected {
                peer,
                result: Err(reason),
            } => {
                self.conns.remove(&peer);
                let delay = s.core.handle_connect_failed(now, &peer, &reason);
                tracing::warn!(%peer, %reason, retry_in = ?delay, "peer unreachable");
            }
            Event::Lost { peer, id } => {
                if self.conns.get(&peer).is_some_and(|c| c.stable_id() == id) {
                    self.conns.remove(&peer);
                    s.core.handle_connection_lost(&peer);
                }
            }
            Event::Finished {
                peer,
                tenant,
                record,
                result,
                took,
            } => {
                let outcome = finished(&self.node.metrics, &tenant, &record, &peer, result, took);
                let key = (Arc::new(tenant), record.id);
                let delay = s.core.handle_transfer_finished(now, &key, &outcome);
                match (&outcome, delay) {
                    (Outcome::ConnectionBroke { reason }, delay) => {
                        // The connection broke (or the peer closed it after the handshake):
                        // reconnect later.
                        self.conns.remove(&peer);
                        tracing::warn!(tenant = %key.0, id = %record.id, %peer, %reason, retry_in = ?delay, "connection lost");
                    }
                    (
                        Outcome::Failed {
                            reason,
                            retry: true,
                        },
                        delay,
                    ) => {
                        tracing::warn!(tenant = %key.0, id = %record.id, %peer, error = %reason, retry_in = ?delay, "send failed");
                    }
                    _ => {}
                }
            }
        }
    }

    /// Closes the connections of peers the settings in force now refuse; after a reload
    /// (`reloaded`), peers backed off are also tried again at once.
    fn recheck(&mut self, reloaded: bool) {
        let Ok(mut s) = self.node.schedule.lock() else {
            return;
        };
        let node = &self.node;
        let refused: Vec<OrganCode> = self
            .conns
            .iter()
            .filter(|(peer, conn)| {
                crate::host::trusted::drop_if_untrusted(node, conn, peer.as_str())
            })
            .map(|(peer, _)| peer.clone())
            .collect();
        for peer in refused {
            self.conns.remove(&peer);
            s.core.handle_connection_lost(&peer);
        }
        if reloaded {
            s.core.handle_reload();
        }
    }

    /// Shows the core the outbox's head and carries out what it asks; returns the core's timeout
    /// (`None` inside: none), or `None` if the schedule's lock is poisoned.
    fn round(&mut self) -> Option<Option<Instant>> {
        let node = self.node.clone();
        // Every tenant's head, merged; a tenant whose store was restored sends nothing until it
        // is acknowledged (`store::restore`).
        let mut head = Vec::new();
        for tenant in node.tenants().values().filter(|t| !t.halted()) {
            match tenant.store.outbox_head(PASS_LIMIT) {
                Ok(queued) => {
                    let code = Arc::new(tenant.code.clone());
                    head.extend(queued.into_iter().map(|q| (code.clone(), q)));
                }
                Err(e) => {
                    tracing::error!(tenant = %tenant.code, error = %e, "cannot read the outbox")
                }
            }
        }
        // Recipient → next hop, worked out once per round: most of a backlog goes to few peers.
        // Past the peers the core counts as unreachable, where the directory names another
        // relay; the core is told whom it routed around, to try them on their own.
        let unreachable = node.unreachable();
        let mut bypassed = HashSet::new();
        let mut hops: HashMap<OrganCode, OrganCode> = HashMap::new();
        self.local.clear();
        let queued: Vec<Queued<Key>> = head
            .into_iter()
            .map(|(tenant, q)| Queued {
                key: (tenant, q.id),
                peer: match hops.get(&q.to) {
                    // A fan-out object goes to the node it names, which splits it.
                    _ if q.direct => q.to.clone(),
                    Some(peer) => peer.clone(),
                    None => {
                        let (hop, around) = node.route_avoiding(&q.to, &unreachable);
                        if let Some(around) = around {
                            tracing::debug!(to = %q.to, %around, ?hop, "relay bypassed");
                            bypassed.insert(around);
                        }
                        let peer = match hop {
                            Hop::Local(code) => {
                                self.local.insert(code.clone());
                                code
                            }
                            Hop::Peer(code) => code,
                        };
                        hops.insert(q.to.clone(), peer.clone());
                        peer
                    }
                },
                urgency: q.urgency,
                expires: (q.expires != 0).then_some(q.expires),
            })
            .collect();
        let now = Instant::now();
        let actions = {
            let mut s = node.schedule.lock().ok()?;
            let unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            s.core.handle_bypassed(bypassed);
            s.core.handle_queue(now, unix, queued);
            std::iter::from_fn(|| s.core.poll_action(now)).collect::<Vec<_>>()
        };
        for action in actions {
            match action {
                Action::Connect { peer } => self.connect(peer),
                Action::Send { key, peer } => self.send(key, peer),
                Action::Expire { key, reason } => expire(&node, &key, reason),
            }
        }
        let s = node.schedule.lock().ok()?;
        Some(s.core.poll_timeout())
    }

    fn connect(&mut self, peer: OrganCode) {
        if self.local.contains(&peer) {
            // A tenant of this host: nothing to connect.
            if let Ok(mut s) = self.node.schedule.lock() {
                s.core.handle_connected(&peer);
            }
            self.node.wake_outbox.notify_one();
            return;
        }
        let (endpoint, node, events) = (
            self.endpoint.clone(),
            self.node.clone(),
            self.events.clone(),
        );
        self.tasks.spawn(async move {
            let settings = *node.reloaded.borrow();
            let mut result = connect(&endpoint, &node, &peer).await;
            // Settings reloaded during the handshake: the peer must pass the new ones.
            if let Ok(conn) = &result {
                let reloaded = *node.reloaded.borrow() != settings;
                if reloaded && crate::host::trusted::drop_if_untrusted(&node, conn, peer.as_str()) {
                    result = Err("refused by the reloaded trust settings".into());
                }
            }
            let _ = events.send(Event::Connected { peer, result });
        });
    }

    fn send(&mut self, key: Key, peer: OrganCode) {
        let local = self.local.contains(&peer);
        let conn = self.conns.get(&peer).cloned();
        let tenant = self.node.tenant(&key.0);
        // The head is a snapshot: a transfer that finished since it was read must not start again.
        let record = tenant.as_ref().and_then(|t| {
            t.store
                .get(key.1)
                .ok()
                .flatten()
                .filter(|r| r.state == DispatchState::Queued)
        });
        // A relay never hands an object back to the node it came from (a loop of two, after a
        // directory reload turned its route back): failed here, with the reason, instead.
        if let (Some(r), Some(t)) = (&record, &tenant) {
            if r.direction == Direction::Relayed && r.came_from.as_ref() == Some(&peer) && !local {
                let reason = format!(
                    "its route goes back to {peer}, which handed it over: a loop in the directory's relays?"
                );
                tracing::error!(tenant = %t.code, id = %r.id, to = %r.to, %reason, "not relayed");
                if let Err(e) = t.store.mark_failed(r.id, reason) {
                    tracing::error!(tenant = %t.code, id = %r.id, error = %e, "cannot mark failed");
                }
                if let Ok(mut s) = self.node.schedule.lock() {
                    s.core
                        .handle_transfer_finished(Instant::now(), &key, &Outcome::NotQueued);
                }
                self.node.wake_outbox.notify_one();
                return;
            }
        }
        let (conn, record, tenant) = match (conn, record, tenant) {
            (conn, Some(record), Some(tenant)) if conn.is_some() || local => (conn, record, tenant),
            (conn, _, _) => {
                let outcome = if conn.is_none() && !local {
                    Outcome::ConnectionBroke {
                        reason: "not connected".into(),
                    }
                } else {
                    Outcome::NotQueued
                };
                if let Ok(mut s) = self.node.schedule.lock() {
                    s.core
                        .handle_transfer_finished(Instant::now(), &key, &outcome);
                }
                self.node.wake_outbox.notify_one();
                return;
            }
        };
        let (node, events) = (self.node.clone(), self.events.clone());
        self.tasks.spawn(async move {
            let began = Instant::now();
            let result = match conn {
                Some(conn) => transfer(&conn, &node, &tenant, &peer, &record).await,
                None => {
                    let (node, tenant, peer, id) =
                        (node.clone(), tenant.clone(), peer.clone(), record.id);
                    tokio::task::spawn_blocking(move || hand_over(&node, &tenant, &peer, id))
                        .await
                        .unwrap_or_else(|e| Err(TransferError::Connection(e.to_string())))
                }
            };
            let took = began.elapsed();
            if local && matches!(result, Ok(SendOutcome::Stored { .. })) {
                if let Some(receiver) = node.tenant(&peer) {
                    receiver.wake_inbox.notify_one();
                }
            }
            let _ = events.send(Event::Finished {
                peer,
                tenant: tenant.code.clone(),
                record: Box::new(record),
                result,
                took,
            });
        });
    }
}

/// Marks `key` failed for `reason` (it expired while queued).
fn expire(node: &Host, (tenant, id): &Key, reason: &str) {
    let Some(tenant) = node.tenant(tenant) else {
        return;
    };
    match tenant.store.mark_failed(*id, reason.into()) {
        Ok(Some(record)) => {
            node.metrics.expired();
            tracing::warn!(tenant = %tenant.code, %id, to = %record.to, "dispatch expired");
        }
        Ok(None) => {}
        Err(e) => tracing::error!(tenant = %tenant.code, %id, error = %e, "expiry not recorded"),
    }
}

/// Counts and logs a transfer's outcome that `took` so long, and says what it means for the
/// scheduler.
fn finished(
    metrics: &Metrics,
    tenant: &OrganCode,
    record: &Record,
    peer: &OrganCode,
    result: Result<SendOutcome, TransferError>,
    took: Duration,
) -> Outcome {
    match result {
        Ok(SendOutcome::Stored { resumed_from, .. }) => {
            metrics.handover("stored", Some((peer, record.size, took)));
            tracing::info!(%tenant, id = %record.id, to = %record.to, %peer, resumed_from, "handed over");
            Outcome::Sent
        }
        Ok(SendOutcome::Rejected { code, reason }) => {
            metrics.handover("refused", None);
            tracing::warn!(%tenant, id = %record.id, %peer, ?code, %reason, "refused by the peer");
            if code.is_permanent() {
                Outcome::Refused { reason }
            } else {
                Outcome::Failed {
                    reason,
                    retry: true,
                }
            }
        }
        Err(TransferError::Damaged { problem, .. }) => {
            // Already marked failed by the transfer: nothing is tried again.
            metrics.handover("failed", None);
            tracing::error!(%tenant, id = %record.id, to = %record.to, %problem, "not delivered: the stored object is damaged");
            Outcome::Failed {
                reason: problem.to_string(),
                retry: false,
            }
        }
        Err(TransferError::Connection(reason)) => {
            metrics.handover("failed", None);
            Outcome::ConnectionBroke { reason }
        }
        Err(e) => {
            metrics.handover("failed", None);
            Outcome::Failed {
                reason: e.to_string(),
                retry: true,
            }
        }
    }
}

/// A connection to `peer` at its directory endpoint (mutual TLS checks who answers).
pub(crate) async fn connect(
    endpoint: &quinn::Endpoint,
    node: &Host,
    peer: &OrganCode,
) -> Result<quinn::Connection, String> {
    let addr = node
        .endpoint_of(peer)
        .ok_or_else(|| format!("{peer} has no endpoint in the directory"))?
        .parse()
        .map_err(|e| format!("bad endpoint for {peer}: {e}"))?;
    let conn = endpoint
        .connect(addr, "peer.vdx.invalid")
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    crate::tenant::witness::exchange_checkpoints(node, &conn, peer.as_str()).await;
    // TLS 1.3 lets a client finish its side before the server refuses its certificate: the
    // exchange is where that refusal shows.
    match conn.close_reason() {
        Some(reason) => Err(reason.to_string()),
        None => Ok(conn),
    }
}

async fn transfer(
    conn: &quinn::Connection,
    node: &Host,
    tenant: &Tenant,
    peer: &OrganCode,
    record: &Record,
) -> Result<SendOutcome, TransferError> {
    let check = |r: &Record, receipt: &[u8]| check_hop_receipt(node, tenant, peer, r, receipt);
    send_dispatch(conn, &tenant.store, record.id, &check).await
}

/// Checks the hop receipt `peer` gave for `record`: signed by `peer`, or by the agency it
/// hosts that took custody (`routing::hop_signers`); keeps the checkpoint it carries.
fn check_hop_receipt(
    node: &Host,
    tenant: &Tenant,
    peer: &OrganCode,
    record: &Record,
    receipt: &[u8],
) -> Result<OrganCode, String> {
    let trusted = node.trusted();
    let mut first_error = None;
    for signer in crate::routing::hop_signers(&trusted.directory, peer, &record.from, &record.to) {
        match verify_receipt(receipt, record, &signer, &trusted.trust) {
            Ok(verified) => {
                if let Err(e) =
                    crate::tenant::witness::keep(&tenant.store, &verified.receipt, &verified.signer)
                {
                    tracing::error!(%peer, error = %e, "peer checkpoint");
                }
                return Ok(verified.receipt.by);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.map_or_else(|| "no signer".into(), |e| e.to_string()))
}

/// Hands `id` of `tenant` to `peer`, another tenant of this host, without the network: admitted
/// as any offer from this host would be, and its hop receipt checked as any other.
fn hand_over(
    node: &Host,
    tenant: &Tenant,
    peer: &OrganCode,
    id: MessageId,
) -> Result<SendOutcome, TransferError> {
    let check = |r: &Record, receipt: &[u8]| check_hop_receipt(node, tenant, peer, r, receipt);
    let host = &node.config.organ_code;
    hand_over_locally(
        &tenant.store,
        id,
        |offer| node.admit(offer, host),
        host,
        node.now_secs(),
        &check,
    )
}
