//! Directory zones over QUIC (`docs/wire-frames.md`, ZONES/ZONE): each side tells the other the
//! versions it has, and each gets the zones it lacks. A node exchanges with its configured source
//! every interval, and at once with its source and its recent askers when it takes up a new zone,
//! so a zone published anywhere spreads through the tree without anyone asking for it.
//! Every zone received is checked by [`Host::take_zone`]: a peer can hand over only what its
//! authority signed, newer than what is in force.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::SendStream;
use tokio::task::JoinSet;
use vdx_protocol::wire::{Frame, RejectCode, WireError, MAX_ZONES};
use vdx_protocol::OrganCode;

use crate::host::{Host, Stop};
use crate::net::transfer::{write_frame, FrameReader, ReceivePolicy, TransferError};

/// The longest one exchange may take, connecting included, before it is given up (and tried
/// at the next interval).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Zone exchanges a node answers at once; more are refused `busy` (the asker tries again at its
/// next interval). Each may hold one 4 MiB ZONE frame in memory.
pub(crate) const ANSWERED_AT_ONCE: usize = 4;

// A zone the authorities can sign travels in one frame.
const _: () = assert!(vdx_pki::MAX_ZONE_BYTES <= vdx_protocol::wire::MAX_ZONE);

/// What one exchange did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Exchanged {
    /// Zones received from the peer and taken up.
    pub(crate) taken: usize,
    /// Zones sent to the peer.
    pub(crate) sent: usize,
}

/// Answers a peer's ZONES (the first frame of its stream): the zones it lacks, our versions,
/// then takes the zones it sends back (at most one per zone, within [`EXCHANGE_TIMEOUT`]) until
/// it finishes its side.
pub(crate) async fn answer(
    send: &mut SendStream,
    reader: &mut FrameReader,
    policy: &impl ReceivePolicy,
    peer: &OrganCode,
    theirs: &[(String, u64)],
) -> Result<(), TransferError> {
    let _permit = match policy
        .zone_streams()
        .map(tokio::sync::Semaphore::try_acquire)
    {
        Some(Err(_)) => {
            let busy = Frame::Reject {
                code: RejectCode::Busy,
                reason: "answering other zone exchanges: try again soon".into(),
            };
            return write_frame(send, &busy).await;
        }
        Some(Ok(permit)) => Some(permit),
        None => None,
    };
    reader.allow_zones();
    let (files, ours) = policy.zones_for(peer, theirs);
    for file in files {
        write_frame(send, &Frame::Zone { file }).await?;
    }
    write_frame(send, &Frame::Zones { versions: ours }).await?;
    let taking = async {
        for _ in 0..=MAX_ZONES {
            match reader.next().await {
                Ok(Frame::Zone { file }) => policy.zone_received(peer, &file),
                Ok(_) => return Err(WireError::Unexpected("only ZONE follows ZONES").into()),
                Err(TransferError::Closed) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Err(WireError::Unexpected("more ZONE frames than zones").into())
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, taking)
        .await
        .map_err(|_| TransferError::Connection("the zone exchange timed out".into()))?
}

/// Asks `peer` on `conn`: sends our versions, takes up the zones it sends, then sends it those
/// it lacks.
pub(crate) async fn exchange(
    conn: &quinn::Connection,
    host: &Arc<Host>,
    peer: &OrganCode,
) -> Result<Exchanged, TransferError> {
    let (mut send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| TransferError::Connection(e.to_string()))?;
    let mut reader = FrameReader::new(recv);
    reader.allow_zones();
    let result = drive_exchange(&mut send, &mut reader, host, peer).await;
    match &result {
        Err(e) => crate::net::transfer::close_with(&mut send, &mut reader, e),
        Ok(_) => {
            let _ = send.finish();
            let _ = send.stopped().await;
        }
    }
    result
}

async fn drive_exchange(
    send: &mut SendStream,
    reader: &mut FrameReader,
    host: &Arc<Host>,
    peer: &OrganCode,
) -> Result<Exchanged, TransferError> {
    write_frame(
        send,
        &Frame::Zones {
            versions: host.zone_versions(),
        },
    )
    .await?;
    let mut done = Exchanged::default();
    let mut received = 0;
    let theirs = loop {
        match reader.next().await? {
            Frame::Zone { file } if received < MAX_ZONES => {
                received += 1;
                let (host, peer) = (host.clone(), peer.clone());
                // Checking and keeping a zone blocks (signature, certificates, fsync).
                let taken = tokio::task::spawn_blocking(move || take(&host, &peer, &file))
                    .await
                    .unwrap_or(false);
                done.taken += usize::from(taken);
            }
            Frame::Zones { versions } => break versions,
            Frame::Reject { reason, .. } => return Err(TransferError::Refused(reason)),
            _ => return Err(WireError::Unexpected("ZONES is answered by ZONE and ZONES").into()),
        }
    };
    let (files, _) = host.zone_answer(&theirs);
    done.sent = files.len();
    for file in files {
        write_frame(send, &Frame::Zone { file }).await?;
    }
    Ok(done)
}

/// Takes up a zone `peer` sent; true if it was new. A zone refused is logged, never fatal.
pub(crate) fn take(host: &Host, peer: &OrganCode, file: &[u8]) -> bool {
    match host.take_zone(file, &format!("peer {peer}")) {
        Ok(taken) => taken.changed,
        Err(e) => {
            tracing::warn!(%peer, code = e.code(), error = %e, "zone from a peer refused");
            false
        }
    }
}

/// Exchanges zones until `stop`: with the configured source every interval, and with it and
/// the peers that asked in the last two intervals at once when a zone is taken up; each peer in
/// its own task, so that one that does not answer delays no other. Connections are kept for the
/// peers of the last round only. Does nothing on a node without `[zones]`.
pub(crate) async fn run(endpoint: quinn::Endpoint, host: Arc<Host>, mut stop: Stop) {
    let Some(config) = host.config.zones.clone() else {
        return;
    };
    let interval = Duration::from_secs(config.interval_secs.max(1));
    let mut conns: HashMap<OrganCode, quinn::Connection> = HashMap::new();
    let mut next = Instant::now();
    // After a failed exchange (a source busy answering others, say, when many nodes pass on a
    // new zone at once) the next one comes soon, doubling up to the interval, not a whole
    // interval later.
    let mut retry = RETRY_FIRST;
    while !stop.is_set() {
        let changed = tokio::select! {
            _ = stop.wait() => return,
            _ = host.zones_changed.notified() => true,
            _ = tokio::time::sleep_until(next.into()) => false,
        };
        if !changed {
            next = Instant::now() + interval;
        }
        let mut peers: Vec<OrganCode> = config.source.iter().cloned().collect();
        if changed {
            let mut askers = host
                .zone_askers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            askers.retain(|_, at| at.elapsed() < 2 * interval);
            let more: Vec<OrganCode> = askers
                .keys()
                .filter(|p| !peers.contains(p))
                .cloned()
                .collect();
            peers.extend(more);
        }
        let mut round = JoinSet::new();
        // Connections of peers not in this round are dropped (closed when unused elsewhere).
        let mut previous = std::mem::take(&mut conns);
        for peer in peers {
            let open = previous
                .remove(&peer)
                .filter(|c| c.close_reason().is_none());
            let (host, endpoint) = (host.clone(), endpoint.clone());
            round.spawn(async move {
                let exchanged = tokio::time::timeout(EXCHANGE_TIMEOUT, async {
                    let conn = match open {
                        Some(conn) => conn,
                        None => crate::delivery::outbox::connect(&endpoint, &host, &peer)
                            .await
                            .map_err(TransferError::Connection)?,
                    };
                    let done = exchange(&conn, &host, &peer).await?;
                    Ok::<_, TransferError>((conn, done))
                })
                .await;
                (peer, exchanged)
            });
        }
        let results = tokio::select! {
            _ = stop.wait() => return,
            results = round.join_all() => results,
        };
        let mut failed = false;
        for (peer, exchanged) in results {
            match exchanged {
                Ok(Ok((conn, done))) => {
                    if done.taken + done.sent > 0 {
                        tracing::info!(%peer, taken = done.taken, sent = done.sent, "zones exchanged");
                    }
                    conns.insert(peer, conn);
                }
                Ok(Err(e)) => {
                    failed = true;
                    tracing::warn!(%peer, error = %e, "zone exchange failed");
                }
                Err(_) => {
                    failed = true;
                    tracing::warn!(%peer, "zone exchange timed out");
                }
            }
        }
        if failed {
            next = next.min(Instant::now() + jittered(retry));
            retry = (retry * 2).min(interval);
        } else {
            retry = RETRY_FIRST;
        }
    }
}

/// The first wait before exchanging again after a failure.
const RETRY_FIRST: Duration = Duration::from_millis(500);

/// `delay` plus up to as much again, at random: nodes refused at the same moment do not all come
/// back at the same moment.
fn jittered(delay: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = openssl::rand::rand_bytes(&mut byte);
    delay + delay.mul_f64(f64::from(byte[0]) / 255.0)
}
