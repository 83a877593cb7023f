//! Splitting a fan-out object received here (`docs/broadcast.md` rule 6): each member is admitted
//! and routed as if it had come alone, members behind one next hop travel on as one new fan-out,
//! and every part is taken into the store that takes custody of it exactly as an arrival from the
//! network is; the inbox then opens, relays or sends each part as it does any arrival. Which part
//! goes where is decided by [`plan`], which does no I/O; [`split`] moves the bytes.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};

use sha2::{Digest, Sha256};
use vdx_crypto::Recipients;
use vdx_protocol::fanout::{FanOutError, Member, Members, MIN_MEMBERS};
use vdx_protocol::ledger::{Actor, EntryKind};
use vdx_protocol::wire::{ObjectKind, Offer};
use vdx_protocol::OrganCode;

use crate::host::Host;
use crate::routing::{self, Admitted, Hop};
use crate::store::{Event, MessageId, ObjectReader, Record, Store, StoreError};
use crate::tenant::compose::fanout_id;

/// Why a fan-out object could not be split.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SplitError {
    /// The store failed; splitting is tried again.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The member list is malformed: it never splits.
    #[error(transparent)]
    Malformed(#[from] FanOutError),
    /// The envelope after it is not one a sender seals: it never splits.
    #[error("the sealed variant: {0}")]
    Envelope(#[from] vdx_crypto::Error),
}

impl SplitError {
    /// Whether splitting it again could succeed.
    pub(crate) fn is_permanent(&self) -> bool {
        !matches!(self, Self::Store(_))
    }
}

/// Where one part of a split goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// Member `.0`'s own copy (kind 0), taken by the tenant `.1`: its recipient, or the agency
    /// that relays it.
    Copy(usize, OrganCode),
    /// These members, behind the next hop `next`: a new fan-out, taken by the host.
    FanOut {
        /// The node they go to next.
        next: OrganCode,
        /// Their indexes in the member list.
        members: Vec<usize>,
    },
    /// Member `.0` is not ours to take: recorded as failed, for this reason.
    Refused(usize, String),
}

impl Part {
    /// The members it is about.
    fn members(&self) -> Vec<usize> {
        match self {
            Self::Copy(i, _) | Self::Refused(i, _) => vec![*i],
            Self::FanOut { members, .. } => members.clone(),
        }
    }
}

/// Splits a member list, given for each member who here takes custody of it and where it goes
/// next, or why it is refused: members behind the same peer, two or more, travel as one
/// fan-out; the others alone.
pub(crate) fn plan(decisions: &[Result<(OrganCode, Hop), String>]) -> Vec<Part> {
    let mut behind: BTreeMap<&OrganCode, Vec<usize>> = BTreeMap::new();
    for (i, decision) in decisions.iter().enumerate() {
        if let Ok((_, Hop::Peer(next))) = decision {
            behind.entry(next).or_default().push(i);
        }
    }
    let mut parts = Vec::new();
    for (i, decision) in decisions.iter().enumerate() {
        match decision {
            Err(reason) => parts.push(Part::Refused(i, reason.clone())),
            Ok((_, Hop::Peer(next))) if behind[next].len() >= MIN_MEMBERS => {
                if behind[next][0] == i {
                    parts.push(Part::FanOut {
                        next: next.clone(),
                        members: behind[next].clone(),
                    });
                }
            }
            Ok((custody, _)) => parts.push(Part::Copy(i, custody.clone())),
        }
    }
    parts
}

/// Splits the fan-out `record`, held by the host's own agency: takes every part into its store
/// (a part already held is not taken twice) and then marks the fan-out split. Returns how many
/// parts it made.
pub(crate) fn split(node: &Host, record: &Record) -> Result<usize, SplitError> {
    let trusted = node.trusted();
    let tenants = node.tenants();
    let here = node.here(&tenants);
    let directory = &trusted.directory;
    let store = &node.own.store;
    let mut object = store.object(record.id)?;
    let (members, head_len) = Members::read(&mut object)?;
    let recipients = Recipients::read(&mut object)?;
    let rest_at = head_len + recipients.len_read();
    let came_from = record
        .came_from
        .clone()
        .unwrap_or_else(|| here.host.clone());
    // Past the relays the outbox counts unreachable, as it routes everything else now.
    let unreachable = node.unreachable();
    let members = members.as_slice();
    let decisions: Vec<Result<(OrganCode, Hop), String>> = members
        .iter()
        .map(|m| {
            let admitted = routing::admit(directory, &here, &came_from, &record.from, &m.to)
                .map_err(|(_, reason)| reason)?;
            let (Admitted::Deliver(custody) | Admitted::Relay { by: custody }) = admitted;
            let hop = routing::next_hop_avoiding(directory, &here, &m.to, &unreachable);
            Ok((custody, hop))
        })
        .collect();
    // The RecipientInfos of each member: those of its `enc` certificate in the directory.
    let infos_of = |group: &[usize]| -> Result<Vec<usize>, String> {
        let mut kept = Vec::new();
        for &i in group {
            let to = &members[i].to;
            let cert = directory
                .certificates(to.as_str())
                .ok_or_else(|| format!("{to} is not in the directory"))?;
            let mine = recipients
                .select(&[cert.enc()])
                .map_err(|e| e.to_string())?;
            if mine.is_empty() {
                return Err(format!(
                    "the copy carries no RecipientInfo for {to}'s certificate in the directory"
                ));
            }
            kept.extend(mine);
        }
        kept.sort_unstable();
        kept.dedup();
        Ok(kept)
    };
    let now = node.now_secs();
    let parts = plan(&decisions);
    for part in &parts {
        let (offer, prefix, infos, custody) = match part {
            Part::Refused(i, reason) => {
                refused(store, record, &members[*i], reason)?;
                continue;
            }
            Part::Copy(i, custody) => {
                let m = &members[*i];
                let offer = part_offer(record, m.id, &m.to, ObjectKind::Dispatch);
                (offer, Vec::new(), infos_of(&[*i]), custody)
            }
            Part::FanOut {
                next,
                members: group,
            } => {
                let list = group.iter().map(|&i| members[i].clone()).collect();
                let prefix = Members::new(list)?.encode();
                let offer = part_offer(
                    record,
                    fanout_id(&record.id.0, next).0,
                    next,
                    ObjectKind::FanOut,
                );
                (offer, prefix, infos_of(group), here.host)
            }
        };
        let tenant = tenants.get(custody);
        let infos = match (infos, tenant) {
            (Ok(infos), Some(tenant)) => (infos, tenant),
            (Err(reason), _) => {
                for i in part.members() {
                    refused(store, record, &members[i], &reason)?;
                }
                continue;
            }
            (Ok(_), None) => {
                // Gone since the decision (a tenant removed meanwhile).
                for i in part.members() {
                    refused(
                        store,
                        record,
                        &members[i],
                        &format!("{custody} is no tenant here"),
                    )?;
                }
                continue;
            }
        };
        let (infos, tenant) = infos;
        let head = [prefix, recipients.head(&infos)].concat();
        take(
            &tenant.store,
            offer,
            &head,
            &mut object,
            rest_at,
            &came_from,
            now,
        )?;
        tenant.wake_inbox.notify_one();
    }
    store.split_done(record.id, parts.len())?;
    Ok(parts.len())
}

/// The offer a part is taken under: the fan-out's sender, urgency, expiry and hops; its size and
/// digest are filled in by [`take`].
fn part_offer(record: &Record, id: [u8; 16], to: &OrganCode, kind: ObjectKind) -> Offer {
    Offer {
        id,
        from: record.from.clone(),
        to: to.clone(),
        size: 0,
        sealed_sha256: [0; 32],
        urgency: record.urgency,
        expires: record.expires,
        kind,
        hops: record.hops,
    }
}

/// Records in the host's ledger that member `m` of `record` was not split off, and why.
fn refused(store: &Store, record: &Record, m: &Member, reason: &str) -> Result<(), StoreError> {
    tracing::error!(fanout = %record.id, from = %record.from, to = %m.to, %reason, "fan-out member not taken");
    let event = Event::new(EntryKind::Failed, Some(m.id), Actor::Node)
        .field("from", &record.from)
        .field("to", &m.to)
        .field("fanout", record.id)
        .field("reason", reason);
    store.record(&event).map(drop)
}

/// Takes the part `head` ‖ the fan-out's bytes from `rest_at` into `store` under `offer`, as an
/// arrival from `came_from`, unless it is held already.
fn take(
    store: &Store,
    mut offer: Offer,
    head: &[u8],
    object: &mut ObjectReader,
    rest_at: u64,
    came_from: &OrganCode,
    now: u64,
) -> Result<(), StoreError> {
    let read = StoreError::from_io("reading a fan-out object");
    let mut hasher = Sha256::new();
    hasher.update(head);
    object.seek(SeekFrom::Start(rest_at)).map_err(read)?;
    let rest =
        io::copy(object, &mut hasher).map_err(StoreError::from_io("reading a fan-out object"))?;
    offer.size = head.len() as u64 + rest;
    offer.sealed_sha256 = hasher.finalize().into();
    if store.get(MessageId(offer.id))?.is_some() {
        // Split before (a crash came after it): `complete_incoming` checks it is the same.
        let receiving = store.receive(&offer)?;
        store.complete_incoming(&offer, receiving, now, came_from)?;
        return Ok(());
    }
    let mut receiving = store.receive(&offer)?;
    let resume = receiving.resume_from();
    object
        .seek(SeekFrom::Start(rest_at))
        .map_err(StoreError::from_io("reading a fan-out object"))?;
    let mut bytes = head.chain(object);
    io::copy(&mut (&mut bytes).take(resume), &mut io::sink())
        .map_err(StoreError::from_io("reading a fan-out object"))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut offset = resume;
    loop {
        let n = bytes
            .read(&mut buf)
            .map_err(StoreError::from_io("reading a fan-out object"))?;
        if n == 0 {
            break;
        }
        store.append_incoming(&mut receiving, offset, &buf[..n])?;
        offset += n as u64;
    }
    store.complete_incoming(&offer, receiving, now, came_from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> OrganCode {
        s.parse().unwrap()
    }

    #[test]
    fn members_behind_one_peer_travel_together_and_the_rest_alone() {
        let (h41, h26, x1, x2) = (
            code("000.00.00.H41"),
            code("000.00.00.H26"),
            code("000.01.41.H41"),
            code("000.02.41.H41"),
        );
        let decisions = vec![
            Ok((h41.clone(), Hop::Peer(h26.clone()))),
            Ok((x1.clone(), Hop::Local(x1.clone()))),
            Err("not ours".to_owned()),
            Ok((h41.clone(), Hop::Peer(h26.clone()))),
            Ok((h41.clone(), Hop::Peer(code("000.00.00.G22")))),
            Ok((x2.clone(), Hop::Local(x2.clone()))),
            Ok((h41.clone(), Hop::Peer(h26.clone()))),
        ];
        assert_eq!(
            plan(&decisions),
            vec![
                Part::FanOut {
                    next: h26,
                    members: vec![0, 3, 6]
                },
                Part::Copy(1, x1),
                Part::Refused(2, "not ours".into()),
                Part::Copy(4, h41),
                Part::Copy(5, x2),
            ]
        );
        assert!(plan(&[]).is_empty());
    }
}
