//! Counters over time for monitoring (Prometheus / OpenMetrics text): `vdx status` is a snapshot
//! that says what is wrong now, these say how much went through and how often something failed
//! since the start, so that a trend is seen before it becomes a warning. Served at
//! `GET /v1/metrics` on the local socket and, when `[api] metrics_listen` is set, at `GET /metrics`
//! over TCP for a scraper. Nothing here names a document or its content: counts, sizes and
//! states only.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Metric, Registry, Unit};

use vdx_protocol::wire::RejectCode;
use vdx_protocol::OrganCode;

use crate::host::status::Status;

/// The media type of the answer.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labelled = Family<[(&'static str, &'static str); 1], Counter>;
/// Counters of one agency: labelled by its organ code, then by what they count.
type PerTenant = Family<[(&'static str, String); 2], Counter>;

/// How long a rendered answer is served again: a scraper hammering the TCP port costs one status
/// report per interval, not one per request.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// The refusal codes of docs/directory-zones.md, rule 10 (shown at 0 before any refusal).
const ZONE_REFUSALS: [&str; 10] = [
    "unsigned",
    "malformed",
    "bad_signature",
    "unknown_signer",
    "not_directory",
    "revoked",
    "expired",
    "untrusted",
    "out_of_scope",
    "older_version",
];

/// What the daemon counts while it runs; the gauges are read from the status report at each scrape.
pub(crate) struct Metrics {
    registry: Registry,
    submitted: Family<[(&'static str, String); 1], Counter>,
    handovers: Labelled,
    handover_bytes: Family<[(&'static str, String); 1], Counter>,
    handover_objects: Family<[(&'static str, String); 1], Counter>,
    handover_seconds: Histogram,
    expired: Counter,
    arrivals: Labelled,
    offers_refused: Labelled,
    zones_taken: Counter,
    zones_refused: Labelled,
    arrivals_processed: PerTenant,
    handshakes_failed: Counter,
    handshakes_retried: Counter,
    handshakes_refused: Counter,
    handshakes_ignored: Counter,
    /// The last answer and when it was made (see `FRESH_FOR`); held while one is made, so that
    /// concurrent scrapes wait for it instead of each making their own.
    last: Mutex<Option<(Instant, String)>>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("vdx");
        let r = &mut registry;
        Self {
            submitted: registered(
                r,
                "submitted_copies",
                "Copies accepted from clerks and office systems (one per recipient), by sending tenant",
                None,
                Family::default(),
            ),
            handovers: registered(
                r,
                "handovers",
                "Outgoing transfers by outcome: stored (custody moved), refused by the peer, failed",
                None,
                labelled("outcome", ["stored", "refused", "failed"]),
            ),
            handover_bytes: registered(
                r,
                "handover",
                "Sealed bytes handed over, by next hop (a peer node, or a tenant of this host): what each link carried",
                Some(Unit::Bytes),
                Family::default(),
            ),
            handover_objects: registered(
                r,
                "handover_objects",
                "Objects handed over, by next hop: a fan-out object counts once for all the copies it carries",
                None,
                Family::default(),
            ),
            // 2 ms to about 6 min: a small dispatch on a LAN up to a large one on a slow link.
            handover_seconds: registered(
                r,
                "handover_duration",
                "Time from OFFER to a checked STORED, for transfers that were stored",
                Some(Unit::Seconds),
                Histogram::new(exponential_buckets(0.002, 3.0, 12)),
            ),
            expired: registered(
                r,
                "expired_copies",
                "Copies that expired before delivery and were marked failed",
                None,
                Counter::default(),
            ),
            arrivals: registered(
                r,
                "arrivals",
                "Incoming transfer streams by outcome: stored (custody taken) or failed (connection lost, malformed frames, or refused once under way); refused offers are counted in offers_refused",
                None,
                labelled("outcome", ["stored", "failed"]),
            ),
            offers_refused: registered(
                r,
                "offers_refused",
                "Incoming offers refused, by the REJECT code sent",
                None,
                labelled("code", RejectCode::KNOWN.map(RejectCode::name)),
            ),
            zones_taken: registered(
                r,
                "zones_taken",
                "Signed directory zones taken up (published here or received from peers)",
                None,
                Counter::default(),
            ),
            zones_refused: registered(
                r,
                "zones_refused",
                "Directory zones refused, by the refusal code of docs/directory-zones.md",
                None,
                labelled("code", ZONE_REFUSALS),
            ),
            arrivals_processed: registered(
                r,
                "arrivals_processed",
                "Stored arrivals taken up: registered dispatches, refused ones, applied replies, relayed onwards, or an error (retried)",
                None,
                PerTenant::default(),
            ),
            handshakes_failed: registered(
                r,
                "handshakes_failed",
                "Incoming QUIC handshakes that did not complete: certificates refused (none, unknown CA, revoked, not in the directory), timeouts, aborts",
                None,
                Counter::default(),
            ),
            handshakes_retried: registered(
                r,
                "handshakes_retried",
                "Incoming connection attempts answered with a QUIC Retry (many handshakes in progress, or a per-address limit reached, and the address not yet validated)",
                None,
                Counter::default(),
            ),
            handshakes_refused: registered(
                r,
                "handshakes_refused",
                "Incoming connection attempts refused: the address holds max_connections_per_ip connections",
                None,
                Counter::default(),
            ),
            handshakes_ignored: registered(
                r,
                "handshakes_ignored",
                "Incoming connection attempts dropped without an answer: max_handshakes in progress, or max_handshakes_per_ip from that address",
                None,
                Counter::default(),
            ),
            last: Mutex::new(None),
            registry,
        }
    }

    pub(crate) fn submitted(&self, tenant: &OrganCode, copies: usize) {
        self.submitted
            .get_or_create(&[("tenant", tenant.to_string())])
            .inc_by(copies as u64);
    }

    /// Makes `tenant`'s counters appear at zero, so that a rate is defined from the first
    /// scrape (at start, and when a tenant is added).
    pub(crate) fn tenant(&self, tenant: &OrganCode) {
        let _ = self
            .submitted
            .get_or_create(&[("tenant", tenant.to_string())]);
        for outcome in [
            "registered",
            "refused",
            "kept_aside",
            "reply",
            "relayed",
            "error",
        ] {
            let _ = self
                .arrivals_processed
                .get_or_create(&[("tenant", tenant.to_string()), ("outcome", outcome.into())]);
        }
    }

    /// An outgoing transfer ended; `stored` carries the next hop that took custody, the size
    /// whose custody moved, and how long it took.
    pub(crate) fn handover(
        &self,
        outcome: &'static str,
        stored: Option<(&OrganCode, u64, Duration)>,
    ) {
        self.handovers.get_or_create(&[("outcome", outcome)]).inc();
        if let Some((peer, bytes, took)) = stored {
            let peer = [("peer", peer.to_string())];
            self.handover_bytes.get_or_create(&peer).inc_by(bytes);
            self.handover_objects.get_or_create(&peer).inc();
            self.handover_seconds.observe(took.as_secs_f64());
        }
    }

    pub(crate) fn expired(&self) {
        self.expired.inc();
    }

    pub(crate) fn arrival(&self, outcome: &'static str) {
        self.arrivals.get_or_create(&[("outcome", outcome)]).inc();
    }

    pub(crate) fn offer_refused(&self, code: &'static str) {
        self.offers_refused.get_or_create(&[("code", code)]).inc();
    }

    pub(crate) fn zone_taken(&self) {
        self.zones_taken.inc();
    }

    pub(crate) fn zone_refused(&self, code: &'static str) {
        self.zones_refused.get_or_create(&[("code", code)]).inc();
    }

    pub(crate) fn processed(&self, tenant: &OrganCode, outcome: &'static str) {
        self.arrivals_processed
            .get_or_create(&[("tenant", tenant.to_string()), ("outcome", outcome.into())])
            .inc();
    }

    pub(crate) fn handshake_failed(&self) {
        self.handshakes_failed.inc();
    }

    /// An incoming connection attempt was turned away by `admission` (an accepted one is not
    /// counted here).
    pub(crate) fn handshake_turned_away(&self, decision: crate::net::admission::Decision) {
        use crate::net::admission::Decision;
        let counter = match decision {
            Decision::Accept => return,
            Decision::Retry => &self.handshakes_retried,
            Decision::Refuse => &self.handshakes_refused,
            Decision::Ignore => &self.handshakes_ignored,
        };
        counter.inc();
    }

    /// The exposition, made with `status` (the node's report, asked for only when the last
    /// answer is older than `FRESH_FOR`).
    pub(crate) fn answer<E>(
        &self,
        status: impl FnOnce() -> Result<Vec<Status>, E>,
    ) -> Result<String, RenderError<E>> {
        // A panic while making an answer leaves at worst a stale one, which the age check covers.
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((made, text)) = last.as_ref() {
            if made.elapsed() < FRESH_FOR {
                return Ok(text.clone());
            }
        }
        let text = self
            .render(&status().map_err(RenderError::Status)?)
            .map_err(|_| RenderError::Encoding)?;
        *last = Some((Instant::now(), text.clone()));
        Ok(text)
    }

    /// The counters, then `status` as gauges (built afresh, so that a peer or a next hop that is
    /// gone is gone from the answer too).
    fn render(&self, tenants: &[Status]) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)?;
        encode_registry(&mut out, &gauges(tenants))?;
        encode_eof(&mut out)?;
        Ok(out)
    }
}

/// `metric`, registered in `registry` (a handle to the same values: counters are shared).
fn registered<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric: M,
) -> M {
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, metric.clone()),
        None => registry.register(name, help, metric.clone()),
    }
    metric
}

/// A family with every known `label` value at zero, so that a rate is defined from the first
/// scrape.
fn labelled(label: &'static str, values: impl IntoIterator<Item = &'static str>) -> Labelled {
    let family = Labelled::default();
    for value in values {
        let _ = family.get_or_create(&[(label, value)]);
    }
    family
}

type Tenanted = Family<[(&'static str, String); 1], Gauge>;
/// A gauge of each tenant: name, help, the family, and its value in a tenant's report.
type TenantGauge = (&'static str, &'static str, Tenanted, fn(&Status) -> i64);

/// The host's gauges from the first report (the host's own agency's: peers, trust, disk are
/// the host's), and each tenant's from its own, labelled with its organ code.
fn gauges(tenants: &[Status]) -> Registry {
    let mut registry = Registry::with_prefix("vdx");
    let Some(status) = tenants.first() else {
        return registry;
    };
    registry.register(
        "node",
        "This node: its organ code and version",
        Info::new([
            ("organ_code", status.organ_code.clone()),
            ("version", status.version.to_owned()),
        ]),
    );
    let queued = Family::<[(&'static str, String); 2], Gauge>::default();
    let per_tenant: [TenantGauge; 5] = [
        (
            "inbox_to_open",
            "Arrivals not yet opened by the inbox, by tenant",
            Tenanted::default(),
            |s| count(s.inbox.to_open),
        ),
        (
            "inbox_kept_aside",
            "Arrivals kept aside unopened after their last opening attempt, by tenant",
            Tenanted::default(),
            |s| count(s.inbox.kept_aside),
        ),
        (
            "ledger_entries",
            "Entries in the ledger, by tenant",
            Tenanted::default(),
            |s| count(s.ledger.entries),
        ),
        (
            "ledger_durable_entries",
            "Ledger entries on disk (the largest size a checkpoint may sign), by tenant",
            Tenanted::default(),
            |s| count(s.ledger.durable),
        ),
        (
            "warnings",
            "Warnings in the status report (GET /v1/status says which), by tenant",
            Tenanted::default(),
            |s| count(s.warnings.len()),
        ),
    ];
    for tenant in tenants {
        for (hop, n) in &tenant.outbox.by_peer {
            queued
                .get_or_create(&[
                    ("tenant", tenant.organ_code.clone()),
                    ("next_hop", hop.clone()),
                ])
                .set(count(*n));
        }
        for (_, _, family, value) in &per_tenant {
            family
                .get_or_create(&[("tenant", tenant.organ_code.clone())])
                .set(value(tenant));
        }
    }
    registry.register(
        "outbox_queued",
        "Copies waiting to be handed over, by tenant and next hop",
        queued,
    );
    for (name, help, family, _) in per_tenant {
        registry.register(name, help, family);
    }
    let peers = Family::<[(&'static str, &'static str); 1], Gauge>::default();
    for state in ["connected", "connecting", "disconnected", "unreachable"] {
        peers.get_or_create(&[("state", state)]).set(0);
    }
    for peer in &status.peers {
        peers.get_or_create(&[("state", peer.state)]).inc();
    }
    registry.register("peers", "Peers contacted since the start, by state", peers);
    registry.register(
        "agencies",
        "Agencies in the directory in force",
        gauge(count(status.trust.agencies)),
    );
    registry.register(
        "tenants",
        "Agencies hosted by this node",
        gauge(count(tenants.len())),
    );
    let mut with_unit = vec![(
        "start_time",
        "When this vdxd started, Unix time",
        Unit::Seconds,
        status.started.unix_timestamp(),
    )];
    if let Some(next) = status.trust.crl_next_update {
        with_unit.push((
            "crl_next_update_timestamp",
            "The soonest nextUpdate of the CRLs in force, Unix time: past it, that CRL vouches for nobody",
            Unit::Seconds,
            next.unix_timestamp(),
        ));
    }
    if let Some(disk) = &status.disk {
        with_unit.push((
            "disk_free",
            "Free space on the data disk",
            Unit::Bytes,
            count(disk.free_bytes),
        ));
        with_unit.push((
            "disk_total",
            "Size of the data disk",
            Unit::Bytes,
            count(disk.total_bytes),
        ));
    }
    for (name, help, unit, value) in with_unit {
        registry.register_with_unit(name, help, unit, gauge(value));
    }
    registry
}

/// Why no exposition could be made.
#[derive(Debug)]
pub(crate) enum RenderError<E> {
    /// The status report failed.
    Status(E),
    /// Encoding failed (it writes to a `String`, so it does not).
    Encoding,
}

fn gauge(value: i64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(value);
    gauge
}

/// A count as a gauge's value (saturating: no count comes near 2⁶³).
fn count(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::status::tests::peer;

    /// The value of the sample `name{labels}` in `text`.
    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counters_and_the_status_render_as_openmetrics() {
        let metrics = Metrics::new();
        let g22: OrganCode = "000.00.00.G22".parse().unwrap();
        metrics.submitted(&g22, 2);
        metrics.processed(&g22, "registered");
        metrics.handover("stored", Some((&g22, 10_240, Duration::from_millis(12))));
        metrics.handover("stored", Some((&g22, 10_240, Duration::from_millis(3))));
        metrics.handover("failed", None);
        metrics.offer_refused(vdx_protocol::wire::RejectCode::UnknownSender.name());
        let status = Status::sample(vec![
            peer("000.00.00.H41", "unreachable"),
            peer("000.00.00.H26", "connected"),
        ]);
        let text = metrics.render(&[status]).unwrap();
        let again = metrics
            .answer(|| Ok::<_, ()>(vec![Status::sample(vec![])]))
            .unwrap();
        assert_eq!(
            metrics.answer::<()>(|| panic!("made again")).unwrap(),
            again,
            "a second scrape within FRESH_FOR is answered from the first"
        );

        assert_eq!(
            sample(
                &text,
                "vdx_submitted_copies_total{tenant=\"000.00.00.G22\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                "vdx_arrivals_processed_total{tenant=\"000.00.00.G22\",outcome=\"registered\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "vdx_handovers_total{outcome=\"stored\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "vdx_handovers_total{outcome=\"failed\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "vdx_handover_bytes_total{peer=\"000.00.00.G22\"}"),
            Some(20_480.0)
        );
        assert_eq!(
            sample(&text, "vdx_handover_objects_total{peer=\"000.00.00.G22\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "vdx_handover_duration_seconds_bucket{le=\"0.006\"}"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "vdx_offers_refused_total{code=\"unknown_sender\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "vdx_outbox_queued{tenant=\"000.00.00.G22\",next_hop=\"000.00.00.H41\"}"
            ),
            Some(3.0)
        );
        assert_eq!(sample(&text, "vdx_peers{state=\"unreachable\"}"), Some(1.0));
        assert_eq!(sample(&text, "vdx_peers{state=\"connecting\"}"), Some(0.0));
        assert_eq!(
            sample(&text, "vdx_disk_free_bytes"),
            Some((100u64 << 30) as f64)
        );
        assert_eq!(sample(&text, "vdx_start_time_seconds"), Some(0.0));
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(!text.contains("vdx_crl_next_update"), "no CRL, no gauge");
        assert_eq!(
            sample(&text, "vdx_offers_refused_total{code=\"disk_full\"}"),
            Some(0.0),
            "every code from zero"
        );
        assert!(text.contains("vdx_node_info{organ_code=\"000.00.00.G22\",version=\"0\"} 1"));
    }
}
