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
use vdx_protocol::wire::{Frame, WireError};
use vdx_protocol::OrganCode;

use crate::host::{Host, Stop};
use crate::net::transfer::{write_frame, FrameReader, ReceivePolicy, TransferError};

/// The longest one exchange may take before it is given up (and tried at the next interval).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// What one exchange did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Exchanged {
    /// Zones received from the peer and taken up.
    pub(crate) taken: usize,
    /// Zones sent to the peer.
    pub(crate) sent: usize,
}

/// Answers a peer's ZONES (the first frame of its stream): the zones it lacks, our versions,
/// then takes the zones it sends back until it finishes its side.
pub(crate) async fn answer(
    send: &mut SendStream,
    reader: &mut FrameReader,
    policy: &impl ReceivePolicy,
    peer: &OrganCode,
    theirs: &[(String, u64)],
) -> Result<(), TransferError> {
    let (files, ours) = policy.zones_for(peer, theirs);
    for file in files {
        write_frame(send, &Frame::Zone { file }).await?;
    }
    write_frame(send, &Frame::Zones { versions: ours }).await?;
    loop {
        match reader.next().await {
            Ok(Frame::Zone { file }) => policy.zone_received(peer, &file),
            Ok(_) => return Err(WireError::Unexpected("only ZONE follows ZONES").into()),
            Err(TransferError::Closed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Asks `peer` on `conn`: sends our versions, takes up the zones it sends, then sends it those
/// it lacks.
pub(crate) async fn exchange(
    conn: &quinn::Connection,
    host: &Host,
    peer: &OrganCode,
) -> Result<Exchanged, TransferError> {
    let (mut send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| TransferError::Connection(e.to_string()))?;
    let mut reader = FrameReader::new(recv);
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
    host: &Host,
    peer: &OrganCode,
) -> Result<Exchanged, TransferError> {
    let (_, ours) = host.zone_answer(&[]);
    write_frame(send, &Frame::Zones { versions: ours }).await?;
    let mut done = Exchanged::default();
    let theirs = loop {
        match reader.next().await? {
            Frame::Zone { file } => done.taken += usize::from(take(host, peer, &file)),
            Frame::Zones { versions } => break versions,
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
/// the peers that asked in the last two intervals at once when a zone is taken up. Does nothing
/// on a node without `[zones]`.
pub(crate) async fn run(endpoint: quinn::Endpoint, host: Arc<Host>, mut stop: Stop) {
    let Some(config) = host.config.zones.clone() else {
        return;
    };
    let interval = Duration::from_secs(config.interval_secs.max(1));
    let mut conns: HashMap<OrganCode, quinn::Connection> = HashMap::new();
    let mut next = Instant::now();
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
            peers.extend(
                askers
                    .keys()
                    .filter(|p| !peers.contains(p))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        for peer in peers {
            let conn = match conns.get(&peer).filter(|c| c.close_reason().is_none()) {
                Some(conn) => conn.clone(),
                None => match crate::delivery::outbox::connect(&endpoint, &host, &peer).await {
                    Ok(conn) => {
                        conns.insert(peer.clone(), conn.clone());
                        conn
                    }
                    Err(reason) => {
                        tracing::warn!(%peer, %reason, "cannot reach a peer to exchange zones with");
                        continue;
                    }
                },
            };
            match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(&conn, &host, &peer)).await {
                Ok(Ok(done)) => {
                    if done.taken + done.sent > 0 {
                        tracing::info!(%peer, taken = done.taken, sent = done.sent, "zones exchanged");
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(%peer, error = %e, "zone exchange failed");
                    conns.remove(&peer);
                }
                Err(_) => {
                    tracing::warn!(%peer, "zone exchange timed out");
                    conns.remove(&peer);
                }
            }
        }
    }
}
