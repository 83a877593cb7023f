//! Counters over time for monitoring (Prometheus / OpenMetrics text): `vdx status` is a snapshot
//! that says what is wrong now, these say how much went through and how often something failed
//! since the start, so that a trend is seen before it becomes a warning. Served at
//! `GET /v1/metrics` on the local socket and, when `[api] metrics_listen` is set, at `GET /metrics`
//! over TCP for a scraper. Nothing here names a document or its content: counts, sizes and
//! states only.

use std::time::Duration;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::status::Status;

/// The media type of the answer.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labelled = Family<[(&'static str, &'static str); 1], Counter>;

/// What the daemon counts while it runs; the gauges are read from the status report at each scrape.
pub(crate) struct Metrics {
    registry: Registry,
    submitted: Counter,
    handovers: Labelled,
    handover_bytes: Counter,
    handover_seconds: Histogram,
    expired: Counter,
    arrivals: Labelled,
    offers_refused: Labelled,
    arrivals_processed: Labelled,
    connections_refused: Counter,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("vdx");
        let submitted = Counter::default();
        registry.register(
            "submitted_copies",
            "Copies accepted from clerks and office systems (one per recipient)",
            submitted.clone(),
        );
        let handovers = Labelled::default();
        registry.register(
            "handovers",
            "Outgoing transfers by outcome: stored (custody moved), refused by the peer, failed",
            handovers.clone(),
        );
        let handover_bytes = Counter::default();
        registry.register_with_unit(
            "handover",
            "Sealed bytes handed over to next hops",
            Unit::Bytes,
            handover_bytes.clone(),
        );
        // 1 ms to about 33 s: a small dispatch on a LAN up to a large one on a slow link.
        let handover_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register_with_unit(
            "handover_duration",
            "Time from OFFER to a checked STORED, for transfers that were stored",
            Unit::Seconds,
            handover_seconds.clone(),
        );
        let expired = Counter::default();
        registry.register(
            "expired_copies",
            "Copies that expired before delivery and were marked failed",
            expired.clone(),
        );
        let arrivals = Labelled::default();
        registry.register(
            "arrivals",
            "Incoming transfers by outcome: stored (custody taken) or failed (cut, malformed, or refused once under way); refused offers are counted in offers_refused",
            arrivals.clone(),
        );
        let offers_refused = Labelled::default();
        registry.register(
            "offers_refused",
            "Incoming offers refused, by the REJECT code sent",
            offers_refused.clone(),
        );
        let arrivals_processed = Labelled::default();
        registry.register(
            "arrivals_processed",
            "Stored arrivals opened by the inbox: registered dispatches, refused ones, applied replies",
            arrivals_processed.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Incoming QUIC connections whose handshake failed (no, unknown or revoked certificate)",
            connections_refused.clone(),
        );
        // Every known outcome from zero, so that a rate is defined from the first scrape.
        for (family, outcomes) in [
            (&handovers, &["stored", "refused", "failed"][..]),
            (&arrivals, &["stored", "failed"]),
            (&arrivals_processed, &["registered", "refused", "reply"]),
        ] {
            for outcome in outcomes {
                family.get_or_create(&[("outcome", outcome)]).inc_by(0);
            }
        }
        Self {
            registry,
            submitted,
            handovers,
            handover_bytes,
            handover_seconds,
            expired,
            arrivals,
            offers_refused,
            arrivals_processed,
            connections_refused,
        }
    }

    pub(crate) fn submitted(&self, copies: usize) {
        self.submitted.inc_by(copies as u64);
    }

    /// An outgoing transfer ended; `stored` carries its size and duration.
    pub(crate) fn handover(&self, outcome: &'static str, stored: Option<(u64, Duration)>) {
        self.handovers.get_or_create(&[("outcome", outcome)]).inc();
        if let Some((bytes, took)) = stored {
            self.handover_bytes.inc_by(bytes);
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

    pub(crate) fn processed(&self, outcome: &'static str) {
        self.arrivals_processed
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }

    pub(crate) fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// The exposition: the counters, then `status` as gauges (built afresh, so that a peer or a
    /// next hop that is gone is gone from the answer too).
    pub(crate) fn render(&self, status: &Status) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)?;
        encode_registry(&mut out, &gauges(status))?;
        encode_eof(&mut out)?;
        Ok(out)
    }
}

fn gauges(status: &Status) -> Registry {
    let mut registry = Registry::with_prefix("vdx");
    let node = Family::<[(&'static str, String); 2], Gauge>::default();
    node.get_or_create(&[
        ("organ_code", status.organ_code.clone()),
        ("version", status.version.to_owned()),
    ])
    .set(1);
    registry.register("node", "This node: its organ code and version", node);
    let queued = Family::<[(&'static str, String); 1], Gauge>::default();
    for (hop, n) in &status.outbox.by_peer {
        queued
            .get_or_create(&[("next_hop", hop.clone())])
            .set(count(*n));
    }
    registry.register(
        "outbox_queued",
        "Copies waiting to be handed over, by next hop",
        queued,
    );
    let peers = Family::<[(&'static str, &'static str); 1], Gauge>::default();
    for state in ["connected", "connecting", "disconnected", "unreachable"] {
        peers.get_or_create(&[("state", state)]).set(0);
    }
    for peer in &status.peers {
        peers.get_or_create(&[("state", peer.state)]).inc();
    }
    registry.register("peers", "Peers contacted since the start, by state", peers);
    let plain = [
        (
            "inbox_to_open",
            "Arrivals not yet opened by the inbox",
            count(status.inbox.to_open),
        ),
        (
            "ledger_entries",
            "Entries in the ledger",
            count(status.ledger.entries),
        ),
        (
            "ledger_durable_entries",
            "Ledger entries on disk (the largest size a checkpoint may sign)",
            count(status.ledger.durable),
        ),
        (
            "agencies",
            "Agencies in the directory in force",
            count(status.trust.agencies),
        ),
        (
            "warnings",
            "Warnings in the status report (GET /v1/status says which)",
            count(status.warnings.len()),
        ),
    ];
    for (name, help, value) in plain {
        registry.register(name, help, gauge(value));
    }
    let mut with_unit = vec![(
        "start_time",
        "When this vdxd started, Unix time",
        Unit::Seconds,
        status.started.unix_timestamp(),
    )];
    if let Some(next) = status.trust.crl_next_update {
        with_unit.push((
            "crl_next_update",
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
    use crate::status::tests::peer;

    /// The value of the sample `name{labels}` in `text`.
    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counters_and_the_status_render_as_openmetrics() {
        let metrics = Metrics::new();
        metrics.submitted(2);
        metrics.handover("stored", Some((10_240, Duration::from_millis(12))));
        metrics.handover("stored", Some((10_240, Duration::from_millis(3))));
        metrics.handover("failed", None);
        metrics.offer_refused(vdx_protocol::wire::RejectCode::UnknownSender.name());
        let status = Status::sample(vec![
            peer("000.00.00.H41", "unreachable"),
            peer("000.00.00.H26", "connected"),
        ]);
        let text = metrics.render(&status).unwrap();

        assert_eq!(sample(&text, "vdx_submitted_copies_total"), Some(2.0));
        assert_eq!(
            sample(&text, "vdx_handovers_total{outcome=\"stored\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "vdx_handovers_total{outcome=\"failed\"}"),
            Some(1.0)
        );
        assert_eq!(sample(&text, "vdx_handover_bytes_total"), Some(20_480.0));
        assert_eq!(
            sample(&text, "vdx_handover_duration_seconds_bucket{le=\"0.004\"}"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "vdx_offers_refused_total{code=\"unknown_sender\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "vdx_outbox_queued{next_hop=\"000.00.00.H41\"}"),
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
    }
}
