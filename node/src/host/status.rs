//! What an operator checks first (`GET /v1/status`, `vdx status`): how much waits in the outbox and
//! for which peer, which peers cannot be reached and why, what waits to be opened, when the CRLs
//! must be renewed, how much disk is left — and, in plain words, what needs doing. Monitoring
//! reads the same JSON.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

use crate::delivery::outbox::PeerReport;
use crate::host::Host;
use crate::store::StoreError;
use crate::tenant::Tenant;

/// A CRL this close to its nextUpdate is reported: past it, everyone it covers is refused.
const CRL_WARNING: time::Duration = time::Duration::hours(24);

/// The node's state for its operator.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    pub(crate) organ_code: String,
    name: String,
    pub(crate) version: &'static str,
    /// When this `vdxd` started.
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) started: OffsetDateTime,
    pub(crate) outbox: Outbox,
    pub(crate) inbox: Inbox,
    pub(crate) peers: Vec<PeerReport>,
    pub(crate) trust: Trust,
    pub(crate) ledger: Ledger,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) disk: Option<Disk>,
    /// A restore of the store noticed and not yet acknowledged: nothing is numbered or sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) restored: Option<crate::store::Restored>,
    /// What needs the operator, one sentence each; empty when all is well.
    pub(crate) warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Outbox {
    /// Copies waiting to be handed over (dispatches, receipts, notices, relayed objects).
    queued: usize,
    /// The same, by next hop.
    pub(crate) by_peer: BTreeMap<String, usize>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Inbox {
    /// Objects received and not yet opened (or forwarded, on a relay).
    pub(crate) to_open: usize,
    /// Arrivals that their opening attempts did not settle: refused to their senders, kept here
    /// for the operator (their transfer ids in `kept_aside_ids`).
    pub(crate) kept_aside: usize,
    /// See `kept_aside`.
    pub(crate) kept_aside_ids: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Trust {
    pub(crate) agencies: usize,
    crls: usize,
    /// The soonest nextUpdate of the CRLs in force.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) crl_next_update: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Ledger {
    pub(crate) entries: u64,
    pub(crate) durable: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Disk {
    pub(crate) free_bytes: u64,
    pub(crate) total_bytes: u64,
    /// Less free than this is a warning (`[limits] disk_warning_mib`); 0 never warns.
    warning_below_bytes: u64,
}

impl Host {
    /// The status report of `tenant` now, with what the host shares (peers, trust, disk).
    pub(crate) fn status(&self, tenant: &Tenant) -> Result<Status, StoreError> {
        let queued = tenant.store.outbox()?;
        // By recipient first: the next hop is worked out once per recipient, not per copy.
        let mut by_recipient = HashMap::new();
        for copy in &queued {
            *by_recipient.entry(&copy.to).or_insert(0) += 1;
        }
        let mut by_peer = BTreeMap::new();
        for (to, n) in by_recipient {
            *by_peer.entry(self.next_hop(to).to_string()).or_insert(0) += n;
        }
        let peers = self.schedule.lock().map(|s| s.report()).unwrap_or_default();
        let trusted = self.trusted();
        let crl = trusted.trust.crl_next_update();
        let now = OffsetDateTime::now_utc();
        let disk = free_space(
            &crate::config::resolve(&self.home, &self.config.data_dir),
            self.config.limits.disk_warning_mib.saturating_mul(1 << 20),
        );
        let mut status = Status {
            organ_code: tenant.code.to_string(),
            name: tenant.name.clone(),
            version: env!("CARGO_PKG_VERSION"),
            started: self.started,
            outbox: Outbox {
                queued: queued.len(),
                by_peer,
            },
            inbox: {
                let kept_aside_ids: Vec<String> = tenant
                    .store
                    .kept_aside()?
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                Inbox {
                    to_open: tenant.store.arrivals_count(),
                    kept_aside: kept_aside_ids.len(),
                    kept_aside_ids,
                }
            },
            peers,
            trust: Trust {
                agencies: trusted.directory.len(),
                crls: trusted.trust.crl_count(),
                crl_next_update: crl.as_ref().map(|(next, _)| *next),
            },
            ledger: Ledger {
                entries: tenant.store.ledger_size()?,
                durable: tenant.store.durable_ledger_size(),
            },
            disk,
            restored: tenant.store.restored()?,
            warnings: Vec::new(),
        };
        status.warnings = warnings(&status, crl.as_ref(), now);
        if let Some(held) = &trusted.zones {
            status
                .warnings
                .extend(zone_warnings(held, now.unix_timestamp().max(0) as u64));
        }
        if let Some(restored) = &status.restored {
            status.warnings.insert(
                0,
                format!(
                    "{}: numbering and sending are stopped until an admin runs `vdx --home {} acknowledge-restore`",
                    restored.describe(),
                    self.home.display()
                ),
            );
        }
        Ok(status)
    }
}

/// Zones past their next update (still used: nothing newer is known) and zone files left out.
fn zone_warnings(held: &crate::host::zones::Held, now: u64) -> Vec<String> {
    let mut out: Vec<String> = held
        .set
        .zones()
        .into_iter()
        .filter(|zone| zone.is_stale(now))
        .map(|zone| {
            let next = OffsetDateTime::from_unix_timestamp(zone.next_update() as i64)
                .map_or_else(|_| zone.next_update().to_string(), rfc3339);
            format!(
                "directory zone {} (version {}) is past its next update ({next}): its authority \
                 should sign a fresh one; `vdx directory status` shows where zones come from",
                zone.name(),
                zone.version()
            )
        })
        .collect();
    out.extend(held.refused.iter().map(|r| {
        format!(
            "zone file {} is left out ({}): {}",
            r.file, r.code, r.reason
        )
    }));
    out
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What needs the operator in `status`, as of `now`; `crl` is the soonest nextUpdate of the CRLs
/// in force, with the CRL's issuer.
fn warnings(
    status: &Status,
    crl: Option<&(OffsetDateTime, String)>,
    now: OffsetDateTime,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((next, issuer)) = crl {
        let next = *next;
        if next < now {
            out.push(format!(
                "the CRL of {issuer} expired at {}: every certificate it covers is refused \
                 until a fresh one is in place (then `vdx reload`)",
                rfc3339(next)
            ));
        } else if next - now <= CRL_WARNING {
            let hours = (next - now).whole_hours();
            out.push(format!(
                "the CRL of {issuer} expires in {hours} h ({}): put a fresh one in place",
                rfc3339(next)
            ));
        }
    }
    for peer in &status.peers {
        let waiting = status
            .outbox
            .by_peer
            .get(peer.organ_code.as_str())
            .copied()
            .unwrap_or(0);
        if peer.state == "unreachable" && waiting > 0 {
            out.push(format!(
                "{} is unreachable ({}), {waiting} waiting for it: {}",
                peer.organ_code,
                match peer.failures {
                    Some(1) => "1 failure".to_owned(),
                    Some(n) => format!("{n} failures in a row"),
                    None => "no attempt yet".to_owned(),
                },
                peer.last_error.as_deref().unwrap_or("no reason recorded")
            ));
        }
    }
    if status.inbox.kept_aside > 0 {
        out.push(format!(
            "{} arrival(s) could not be opened after {} attempts and are kept aside, refused to \
             their senders: {} (`vdx show ID`; the sealed objects stay in the store)",
            status.inbox.kept_aside,
            crate::tenant::inbox::MAX_OPEN_ATTEMPTS,
            status.inbox.kept_aside_ids.join(", ")
        ));
    }
    if let Some(disk) = &status.disk {
        if disk.free_bytes < disk.warning_below_bytes {
            out.push(format!(
                "only {} MiB free on the data disk: new dispatches are refused when it is full",
                disk.free_bytes >> 20
            ));
        }
    }
    out
}

/// Free and total space of the file system holding `dir`; `None` if it cannot be read.
fn free_space(dir: &Path, warning_below_bytes: u64) -> Option<Disk> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(Disk {
        free_bytes: stat.f_bavail.saturating_mul(stat.f_frsize),
        total_bytes: stat.f_blocks.saturating_mul(stat.f_frsize),
        warning_below_bytes,
    })
}

#[cfg(test)]
impl Status {
    /// A report of node G22 with 3 copies queued for H41, for tests.
    pub(crate) fn sample(peers: Vec<PeerReport>) -> Self {
        Self {
            organ_code: "000.00.00.G22".into(),
            name: "G22".into(),
            version: "0",
            started: OffsetDateTime::UNIX_EPOCH,
            outbox: Outbox {
                queued: 3,
                by_peer: BTreeMap::from([("000.00.00.H41".to_owned(), 3)]),
            },
            inbox: Inbox {
                to_open: 0,
                kept_aside: 0,
                kept_aside_ids: Vec::new(),
            },
            peers,
            trust: Trust {
                agencies: 2,
                crls: 1,
                crl_next_update: None,
            },
            ledger: Ledger {
                entries: 10,
                durable: 10,
            },
            disk: Some(Disk {
                free_bytes: 100 << 30,
                total_bytes: 200 << 30,
                warning_below_bytes: 1 << 30,
            }),
            restored: None,
            warnings: Vec::new(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn peer(code: &str, state: &'static str) -> PeerReport {
        PeerReport {
            organ_code: code.parse().unwrap(),
            state,
            in_flight: 0,
            failures: (state == "unreachable").then_some(4),
            retry_in_secs: None,
            last_error: (state == "unreachable").then(|| "timed out".to_owned()),
        }
    }

    #[test]
    fn all_well_says_nothing() {
        let now = OffsetDateTime::now_utc();
        let s = Status::sample(vec![peer("000.00.00.H41", "connected")]);
        let crl = (now + time::Duration::days(6), "CN=Root".to_owned());
        assert_eq!(warnings(&s, Some(&crl), now), Vec::<String>::new());
    }

    #[test]
    fn a_crl_near_or_past_its_next_update_is_reported() {
        let now = OffsetDateTime::now_utc();
        let s = Status::sample(vec![]);
        let soon = (now + time::Duration::hours(5), "CN=Root".to_owned());
        let said = warnings(&s, Some(&soon), now);
        assert!(
            said[0].contains("the CRL of CN=Root expires in 5 h"),
            "{said:?}"
        );
        let past = (now - time::Duration::minutes(1), "CN=Root".to_owned());
        assert!(warnings(&s, Some(&past), now)[0].contains("CN=Root expired"));
    }

    #[test]
    fn an_unreachable_peer_is_reported_only_with_work_waiting_for_it() {
        let now = OffsetDateTime::now_utc();
        let waiting = Status::sample(vec![peer("000.00.00.H41", "unreachable")]);
        let said = warnings(&waiting, None, now);
        assert_eq!(
            said,
            vec!["000.00.00.H41 is unreachable (4 failures in a row), 3 waiting for it: timed out"]
        );
        let idle = Status::sample(vec![peer("000.00.00.H26", "unreachable")]);
        assert!(warnings(&idle, None, now).is_empty());
    }

    #[test]
    fn arrivals_kept_aside_are_named() {
        let now = OffsetDateTime::now_utc();
        let mut s = Status::sample(vec![]);
        s.inbox.kept_aside = 1;
        s.inbox.kept_aside_ids = vec!["6f1c2a90b41e4c3e9d2d0a7c5b8e11e2".into()];
        assert_eq!(
            warnings(&s, None, now),
            vec![
                "1 arrival(s) could not be opened after 3 attempts and are kept aside, refused to \
                 their senders: 6f1c2a90b41e4c3e9d2d0a7c5b8e11e2 (`vdx show ID`; the sealed \
                 objects stay in the store)"
            ]
        );
    }

    #[test]
    fn stale_zones_and_zone_files_left_out_are_warnings() {
        use crate::host::zones::tests::{at, set_until};
        let held = |next_update| crate::host::zones::Held {
            set: set_until(next_update),
            origins: Default::default(),
            refused: Vec::new(),
        };
        assert!(zone_warnings(&held(at() + 3600), at()).is_empty());
        let said = zone_warnings(&held(at() + 3600), at() + 3600);
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said[0].starts_with("directory zone root (version 3) is past its next update"));
        assert!(
            said[1].contains("zone 000.00.00.H41 (version 7)"),
            "{said:?}"
        );
        let mut left_out = held(at() + 3600);
        left_out.refused.push(crate::host::zones::Refused {
            file: "zones/000.00.00.H26.zone".into(),
            code: "revoked".into(),
            reason: "the signer is revoked".into(),
        });
        assert_eq!(
            zone_warnings(&left_out, at()),
            ["zone file zones/000.00.00.H26.zone is left out (revoked): the signer is revoked"]
        );
    }

    #[test]
    fn a_nearly_full_disk_is_reported() {
        let now = OffsetDateTime::now_utc();
        let mut s = Status::sample(vec![]);
        s.disk = Some(Disk {
            free_bytes: 512 << 20,
            total_bytes: 100 << 30,
            warning_below_bytes: 1 << 30,
        });
        assert!(warnings(&s, None, now)[0].contains("only 512 MiB free"));
        s.disk = s.disk.map(|d| Disk {
            warning_below_bytes: 0,
            ..d
        });
        assert!(
            warnings(&s, None, now).is_empty(),
            "0 turns the warning off"
        );
        assert!(free_space(Path::new("/"), 0).is_some_and(|d| d.total_bytes > 0));
    }
}
