//! The outbox scheduler: which queued dispatch goes next, to which peer, and when to retry.
//!
//! - A peer is connected first, on its own: dispatches wait for the connection, not inside it, so
//!   when a peer that was down comes back its dispatches leave in priority order.
//! - Transfers start in priority order (hỏa tốc first): one to a peer does not start while a more
//!   urgent one to the same peer is in flight, and at most `limits.max_concurrent_per_peer` run.
//! - A peer that cannot be reached is backed off as a whole; a dispatch whose transfer failed is
//!   backed off alone. Both double per failure up to five minutes, with up to 25 % jitter.
//! - Expired dispatches fail with a reason the clerk sees.
//! - A pass looks at the 512 most urgent queued dispatches only, so its cost does not grow with
//!   the backlog (a backlog of more than that to unreachable peers delays the rest until they
//!   expire or the peers return).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vdx_protocol::OrganCode;

use crate::daemon::{Node, Stop};
use crate::metrics::Metrics;
use crate::receipts::verify_receipt;
use crate::store::{DispatchState, MessageId, Queued, Record};
use crate::transfer::{send_dispatch, SendOutcome, TransferError};

/// How often the outbox is looked at when nothing wakes it.
const TICK: Duration = Duration::from_millis(500);
/// First retry delay; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Queued dispatches one pass looks at, most urgent first (the rest wait for later passes).
const PASS_LIMIT: usize = 512;

/// What is known of one peer.
enum Peer {
    /// A connection attempt is running.
    Connecting,
    /// Connected; transfers use this connection.
    Up(quinn::Connection),
    /// Unreachable: not before `until`; `failures` in a row so far, the last one for `reason`.
    Down {
        until: Instant,
        failures: u32,
        reason: String,
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

/// The scheduler's state, shared with its connection and transfer tasks and with the status
/// report.
#[derive(Default)]
pub(crate) struct Schedule {
    peers: HashMap<OrganCode, Peer>,
    /// Per dispatch: not before (after a failed transfer).
    next_try: HashMap<MessageId, Instant>,
    /// Transfers running: dispatch → peer and urgency.
    in_flight: HashMap<MessageId, (OrganCode, u8)>,
}

/// What to do with one queued dispatch this round.
enum Step {
    /// This dispatch waits (in flight, or backed off alone).
    Wait,
    /// Nothing more goes to its peer this round (connecting, down, or busy): a pass skips the
    /// peer's later, less urgent dispatches without looking at them.
    PeerBusy,
    Connect,
    Send(quinn::Connection),
}

impl Schedule {
    fn step(&mut self, record: &Queued, peer: &OrganCode, limit: u32, now: Instant) -> Step {
        match self.peers.get(peer) {
            None => return Step::Connect,
            Some(Peer::Down { until, .. }) if *until <= now => return Step::Connect,
            Some(Peer::Up(conn)) if conn.close_reason().is_some() => return Step::Connect,
            Some(Peer::Connecting | Peer::Down { .. }) => return Step::PeerBusy,
            Some(Peer::Up(_)) => {}
        }
        if self.in_flight.contains_key(&record.id)
            || self.next_try.get(&record.id).is_some_and(|t| *t > now)
        {
            return Step::Wait;
        }
        let (count, more_urgent) = self
            .in_flight
            .values()
            .filter(|(p, _)| p == peer)
            .fold((0u32, false), |(n, m), (_, u)| {
                (n + 1, m || *u > record.urgency)
            });
        match self.peers.get(peer) {
            Some(Peer::Up(conn)) if count < limit.max(1) && !more_urgent => {
                Step::Send(conn.clone())
            }
            _ => Step::PeerBusy,
        }
    }

    /// Closes the connections of peers the settings in force now refuse; after a reload
    /// (`reloaded`), peers backed off are also tried again at once (a refusal may have been what
    /// the reload mended).
    fn recheck(&mut self, node: &Node, reloaded: bool) {
        self.peers.retain(|peer, state| match state {
            Peer::Up(conn) => !crate::trusted::drop_if_untrusted(node, conn, peer.as_str()),
            Peer::Connecting => true,
            Peer::Down { .. } => !reloaded,
        });
    }

    fn peer_failed(&mut self, peer: &OrganCode, reason: &str) -> Duration {
        let failures = match self.peers.get(peer) {
            Some(Peer::Down { failures, .. }) => *failures,
            _ => 0,
        };
        let delay = backoff(failures);
        self.peers.insert(
            peer.clone(),
            Peer::Down {
                until: Instant::now() + delay,
                failures: failures + 1,
                reason: reason.to_owned(),
            },
        );
        delay
    }

    /// Every peer the scheduler has dealt with since the start, by organ code.
    pub(crate) fn report(&self) -> Vec<PeerReport> {
        let now = Instant::now();
        let mut peers: Vec<PeerReport> = self
            .peers
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
                    Peer::Up(conn) if conn.close_reason().is_none() => {}
                    Peer::Up(_) => report.state = "disconnected",
                    Peer::Connecting => report.state = "connecting",
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
            .collect();
        peers.sort_by(|a, b| a.organ_code.as_str().cmp(b.organ_code.as_str()));
        peers
    }
}

/// Runs the outbox until `stop`; running transfers are let finish (or fail) before returning.
pub(crate) async fn run(endpoint: quinn::Endpoint, node: Arc<Node>, mut stop: Stop) {
    let schedule = node.schedule.clone();
    let mut tasks = tokio::task::JoinSet::new();
    let mut reloaded = node.reloaded.subscribe();
    let mut rechecked = Instant::now();
    while !stop.is_set() {
        let reload = reloaded.has_changed().unwrap_or(false);
        if reload || rechecked.elapsed() >= crate::trusted::RECHECK_EVERY {
            reloaded.mark_unchanged();
            rechecked = Instant::now();
            if let Ok(mut s) = schedule.lock() {
                s.recheck(&node, reload);
            }
        }
        // After a restore nothing is sent until it is acknowledged (`store::restore`).
        let queued = if node.own.halted() {
            Vec::new()
        } else {
            node.own.store.outbox_head(PASS_LIMIT).unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the outbox");
                Vec::new()
            })
        };
        let (now, now_secs) = (Instant::now(), node.now_secs());
        // Peers that take nothing more this pass: the queue is in priority order, so their
        // later dispatches can only wait too.
        let mut busy = HashSet::new();
        // Recipient → next hop, worked out once per pass: most of a backlog goes to few peers.
        let mut hops: HashMap<OrganCode, OrganCode> = HashMap::new();
        for record in queued {
            if record.expires != 0 && record.expires < now_secs {
                let Ok(s) = schedule.lock() else { return };
                if !s.in_flight.contains_key(&record.id) {
                    match node
                        .own
                        .store
                        .mark_failed(record.id, "expired before delivery".into())
                    {
                        Ok(Some(_)) => {
                            node.metrics.expired();
                            tracing::warn!(id = %record.id, to = %record.to, "dispatch expired");
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::error!(id = %record.id, error = %e, "expiry not recorded")
                        }
                    }
                }
                continue;
            }
            if !hops.contains_key(&record.to) {
                hops.insert(record.to.clone(), node.next_hop(&record.to));
            }
            let Some(peer) = hops.get(&record.to).filter(|peer| !busy.contains(*peer)) else {
                continue;
            };
            let peer = peer.clone();
            let Ok(mut s) = schedule.lock() else { return };
            match s.step(
                &record,
                &peer,
                node.config.limits.max_concurrent_per_peer,
                now,
            ) {
                Step::Wait => {}
                Step::PeerBusy => {
                    busy.insert(peer);
                }
                Step::Connect => {
                    s.peers.insert(peer.clone(), Peer::Connecting);
                    let (endpoint, node, schedule) =
                        (endpoint.clone(), node.clone(), schedule.clone());
                    tasks.spawn(async move {
                        let settings = *node.reloaded.borrow();
                        let mut connected = connect(&endpoint, &node, &peer).await;
                        // Settings reloaded during the handshake: the peer must pass the new ones.
                        if let Ok(conn) = &connected {
                            let reloaded = *node.reloaded.borrow() != settings;
                            if reloaded && crate::trusted::drop_if_untrusted(&node, conn, peer.as_str()) {
                                connected = Err("refused by the reloaded trust settings".into());
                            }
                        }
                        let Ok(mut s) = schedule.lock() else { return };
                        match connected {
                            Ok(conn) => {
                                tracing::info!(%peer, "connected");
                                s.peers.insert(peer, Peer::Up(conn));
                            }
                            Err(reason) => {
                                let delay = s.peer_failed(&peer, &reason);
                                tracing::warn!(%peer, %reason, retry_in = ?delay, "peer unreachable");
                            }
                        }
                        node.wake_outbox.notify_one();
                    });
                }
                Step::Send(conn) => {
                    // The list is a snapshot: a transfer that finished since it was read must not
                    // start again.
                    let Some(record) = node
                        .own
                        .store
                        .get(record.id)
                        .ok()
                        .flatten()
                        .filter(|r| r.state == DispatchState::Queued)
                    else {
                        continue;
                    };
                    s.in_flight
                        .insert(record.id, (peer.clone(), record.urgency));
                    let (node, schedule) = (node.clone(), schedule.clone());
                    tasks.spawn(async move {
                        let began = Instant::now();
                        let result = transfer(&conn, &node, &peer, &record).await;
                        let took = began.elapsed();
                        let Ok(mut s) = schedule.lock() else { return };
                        s.in_flight.remove(&record.id);
                        finished(&mut s, &node.metrics, &record, &peer, result, took);
                        node.wake_outbox.notify_one();
                    });
                }
            }
        }
        while let Some(joined) = tasks.try_join_next() {
            if let Err(e) = joined {
                tracing::error!(error = %e, "outbox task failed");
            }
        }
        tokio::select! {
            _ = stop.wait() => break,
            _ = node.wake_outbox.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Takes up a transfer's outcome that `took` so long: the next try, if any, and the counts.
fn finished(
    s: &mut Schedule,
    metrics: &Metrics,
    record: &Record,
    peer: &OrganCode,
    result: Result<SendOutcome, TransferError>,
    took: Duration,
) {
    match result {
        Ok(SendOutcome::Stored { resumed_from, .. }) => {
            metrics.handover("stored", Some((record.size, took)));
            s.next_try.remove(&record.id);
            tracing::info!(id = %record.id, to = %record.to, %peer, resumed_from, "handed over");
        }
        Ok(SendOutcome::Rejected { code, reason }) => {
            metrics.handover("refused", None);
            s.next_try.remove(&record.id);
            if !code.is_permanent() {
                s.next_try
                    .insert(record.id, Instant::now() + backoff(record.attempts));
            }
            tracing::warn!(id = %record.id, %peer, ?code, %reason, "refused by the peer");
        }
        Err(TransferError::Damaged { problem, .. }) => {
            // Already marked failed by the transfer: nothing is tried again.
            metrics.handover("failed", None);
            s.next_try.remove(&record.id);
            tracing::error!(id = %record.id, to = %record.to, %problem, "not delivered: the stored object is damaged");
        }
        Err(TransferError::Connection(reason)) => {
            metrics.handover("failed", None);
            // The connection broke (or the peer closed it after the handshake): reconnect later.
            let delay = s.peer_failed(peer, &reason);
            tracing::warn!(id = %record.id, %peer, %reason, retry_in = ?delay, "connection lost");
        }
        Err(e) => {
            metrics.handover("failed", None);
            let delay = backoff(record.attempts);
            s.next_try.insert(record.id, Instant::now() + delay);
            tracing::warn!(id = %record.id, %peer, error = %e, retry_in = ?delay, "send failed");
        }
    }
}

/// A connection to `peer` at its directory endpoint (mutual TLS checks who answers).
pub(crate) async fn connect(
    endpoint: &quinn::Endpoint,
    node: &Node,
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
    crate::witness::exchange_checkpoints(node, &conn, peer.as_str()).await;
    // TLS 1.3 lets a client finish its side before the server refuses its certificate: the
    // exchange is where that refusal shows.
    match conn.close_reason() {
        Some(reason) => Err(reason.to_string()),
        None => Ok(conn),
    }
}

async fn transfer(
    conn: &quinn::Connection,
    node: &Node,
    peer: &OrganCode,
    record: &Record,
) -> Result<SendOutcome, TransferError> {
    let trust = node.trusted().trust.clone();
    let hop = peer.clone();
    let check = move |r: &Record, receipt: &[u8]| {
        let verified = verify_receipt(receipt, r, &hop, &trust).map_err(|e| e.to_string())?;
        if let Err(e) = crate::witness::keep(&node.own.store, &verified.receipt, &verified.signer) {
            tracing::error!(peer = %hop, error = %e, "peer checkpoint");
        }
        Ok(verified.receipt.by)
    };
    send_dispatch(conn, &node.own.store, record.id, &check).await
}

fn backoff(failures: u32) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1u32 << failures.min(16))
        .min(MAX_BACKOFF);
    let mut jitter = [0u8; 1];
    let _ = openssl::rand::rand_bytes(&mut jitter);
    base + base.mul_f64(f64::from(jitter[0]) / 255.0 / 4.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let first = backoff(0);
        assert!(first >= FIRST_BACKOFF && first <= FIRST_BACKOFF.mul_f64(1.25));
        let third = backoff(2);
        assert!(third >= FIRST_BACKOFF * 4 && third <= (FIRST_BACKOFF * 4).mul_f64(1.25));
        assert!(backoff(40) <= MAX_BACKOFF.mul_f64(1.25));
    }
}
