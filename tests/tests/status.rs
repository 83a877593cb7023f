//! `vdx status` on real daemons: what waits for whom, a peer that cannot be reached and why, a CRL
//! about to expire, and `--check` for monitoring; then the counters of `vdx metrics` and of the
//! scraper's TCP endpoint.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use serde_json::Value;
use vdx_node::config::Config;
use vdx_tests::daemon::{homes, wait_until, Daemon};
use vdx_tests::{words, Session};

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";
const LIMIT: Duration = Duration::from_secs(60);

fn status(s: &Session, home: &str) -> Value {
    s.vdx(&["--home", home, "status", "--json"]).ok().json()
}

/// The value of the sample `name` (with its labels) in OpenMetrics `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `GET path` over plain HTTP/1.1: the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

fn warnings(status: &Value) -> Vec<String> {
    status["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_operator_sees_what_waits_who_is_unreachable_and_what_to_renew() {
    let s = Session::new();
    homes(&s, &[("g22", G22), ("h41", H41)]);
    // h41 checks a CRL that expires in a day: time to renew it.
    s.vdx(&words("pki crl --ca ca --days 1 --out h41/keys/ca.crl"))
        .ok();
    let mut config = Config::load(&s.path("h41")).unwrap();
    config.trust.crls.push("keys/ca.crl".into());
    // No disk has an exbibyte free: h41 warns of its disk whatever machine runs the test.
    config.limits.disk_warning_mib = 1 << 40;
    s.write("h41/config.toml", config.to_toml().unwrap().as_bytes());
    // ... and g22 never does, so that its warnings are only those the test causes. A scraper
    // reads g22's counters over TCP.
    let mut config = Config::load(&s.path("g22")).unwrap();
    config.limits.disk_warning_mib = 0;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scrape = format!("127.0.0.1:{port}");
    config.api.metrics_listen = Some(scrape.parse().unwrap());
    s.write("g22/config.toml", config.to_toml().unwrap().as_bytes());

    // h41 is down: g22's dispatch waits, and g22 says why.
    let _g22 = Daemon::start(&s, "g22");
    s.write("cv.txt", "Công văn".as_bytes());
    s.send("g22", H41, "1", "cv.txt", &[]).ok();
    let mut now = Value::Null;
    wait_until(&s, LIMIT, "h41 reported unreachable", || {
        now = status(&s, "g22");
        now["peers"][0]["state"] == "unreachable"
    });
    assert_eq!(now["outbox"]["queued"], 1, "{now}");
    assert_eq!(now["outbox"]["by_peer"][H41], 1, "{now}");
    assert_eq!(now["peers"][0]["organ_code"], H41);
    assert!(now["peers"][0]["last_error"].as_str().unwrap().len() > 3);
    let said = warnings(&now);
    assert!(
        said.iter()
            .any(|w| w.starts_with("000.00.00.H41 is unreachable") && w.contains("1 waiting")),
        "{said:?}"
    );
    assert_eq!(now["trust"]["agencies"], 2);
    assert!(now["disk"]["total_bytes"].as_u64().unwrap() > 0);
    let text = s.vdx(&words("--home g22 status")).ok().stdout;
    assert!(
        text.contains("outbox: 1 queued (000.00.00.H41: 1)"),
        "{text}"
    );
    assert_eq!(s.vdx(&words("--home g22 status --check")).status, 1);

    // h41 comes up: the dispatch leaves, the warning goes; h41 itself warns of its CRL.
    let _h41 = Daemon::start(&s, "h41");
    wait_until(&s, LIMIT, "g22's outbox to empty", || {
        now = status(&s, "g22");
        now["outbox"]["queued"] == 0 && now["peers"][0]["state"] == "connected"
    });
    assert_eq!(warnings(&now), Vec::<String>::new());
    assert_eq!(s.vdx(&words("--home g22 status --check")).status, 0);
    let h41 = status(&s, "h41");
    assert_eq!(h41["trust"]["crls"], 1, "{h41}");
    assert!(h41["trust"]["crl_next_update"].is_string(), "{h41}");
    let said = warnings(&h41);
    assert!(
        said.iter()
            .any(|w| w.contains("expires in 23 h") && w.contains("put a fresh one in place")),
        "{said:?}"
    );
    assert!(
        said.iter().any(|w| w.contains("MiB free on the data disk")),
        "{said:?}"
    );

    // The counters: one copy submitted and handed over, registered at h41, whose reply (receipt
    // and notice) g22 applied; the gauges as the status said.
    wait_until(&s, LIMIT, "g22 to apply h41's reply", || {
        let (_, text) = http_get(&scrape, "/metrics");
        sample(
            &text,
            "vdx_arrivals_processed_total{tenant=\"000.00.00.G22\",outcome=\"reply\"}",
        ) == Some(1.0)
    });
    let (line, g22) = http_get(&scrape, "/metrics");
    assert!(line.ends_with("200 OK"), "{line}");
    assert_eq!(
        sample(&g22, "vdx_submitted_copies_total{tenant=\"000.00.00.G22\"}"),
        Some(1.0),
        "{g22}"
    );
    assert_eq!(
        sample(&g22, "vdx_handovers_total{outcome=\"stored\"}"),
        Some(1.0),
        "{g22}"
    );
    assert_eq!(
        sample(&g22, "vdx_handover_duration_seconds_count"),
        Some(1.0)
    );
    assert!(sample(&g22, "vdx_handover_bytes_total{peer=\"000.00.00.H41\"}").unwrap() > 0.0);
    assert_eq!(
        sample(&g22, "vdx_handover_objects_total{peer=\"000.00.00.H41\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&g22, "vdx_peers{state=\"connected\"}"), Some(1.0));
    assert_eq!(
        sample(&g22, "vdx_warnings{tenant=\"000.00.00.G22\"}"),
        Some(0.0)
    );
    assert!(g22.ends_with("# EOF\n"));
    let (line, _) = http_get(&scrape, "/v1/status");
    assert!(
        line.contains("404"),
        "the scraper's port serves metrics only: {line}"
    );

    let h41 = s.vdx(&words("--home h41 metrics")).ok().stdout;
    assert_eq!(
        sample(&h41, "vdx_arrivals_total{outcome=\"stored\"}"),
        Some(1.0),
        "{h41}"
    );
    assert_eq!(
        sample(
            &h41,
            "vdx_arrivals_processed_total{tenant=\"000.00.00.H41\",outcome=\"registered\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&h41, "vdx_handovers_total{outcome=\"stored\"}"),
        Some(1.0)
    );
    assert!(
        sample(&h41, "vdx_crl_next_update_timestamp_seconds").is_some(),
        "{h41}"
    );
    assert!(
        sample(&h41, "vdx_warnings{tenant=\"000.00.00.H41\"}").unwrap() >= 2.0,
        "CRL and disk: {h41}"
    );
}
