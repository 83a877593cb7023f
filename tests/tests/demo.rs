//! The README's main command works and cleans up after itself: `vdx demo` runs three real `vdxd`
//! and sends a dispatch across them; `vdx demo --offline` seals and opens without daemons.

#![allow(clippy::expect_used)] // Test helpers fail loudly by design.

use vdx_tests::{vdxd_bin, Session};

/// The directory the demo worked in (it names it first) is gone.
fn assert_cleaned_up(out: &str) {
    let workdir = out
        .lines()
        .find_map(|l| l.strip_prefix("vdx demo: working in "))
        .expect("the demo names its directory");
    assert!(
        !std::path::Path::new(workdir).exists(),
        "demo left {workdir} behind"
    );
}

#[test]
fn the_network_demo_delivers_to_both_provinces_and_cleans_up() {
    let s = Session::new();
    vdxd_bin(); // `vdx demo` starts the vdxd built beside it.
    let ran = s.vdx(&["demo"]).ok();
    let out = &ran.stdout;
    assert!(out.contains("vdx demo: PASSED"), "{out}");
    assert_eq!(
        out.matches("identical to what was sent").count(),
        2,
        "{out}"
    );
    assert_eq!(
        out.matches("signed delivery receipt verified").count(),
        2,
        "{out}"
    );
    assert!(out.contains("số đến 1/"), "{out}");
    assert!(
        out.contains("entries exported and verified")
            && out.contains("one consistent history each"),
        "the sender's ledger verifies and its peers are witnessed: {out}"
    );
    assert!(out.contains("all 3 vdxd stopped cleanly"), "{out}");
    assert_cleaned_up(out);
}

#[test]
fn the_national_demo_reaches_every_commune_on_a_signed_directory_and_cleans_up() {
    let s = Session::new();
    vdxd_bin();
    let ran = s.vdx(&["demo", "--network"]).ok();
    let out = &ran.stdout;
    assert!(out.contains("vdx demo: PASSED"), "{out}");
    assert!(out.contains("every node held all 5 zones"), "{out}");
    assert_eq!(
        out.matches(": registered via 000.00.00.G22 → ").count(),
        9,
        "{out}"
    );
    assert!(
        out.contains("all 9 delivery receipts back at the centre"),
        "{out}"
    );
    // Broadcast sealed once and fanned out (docs/broadcast.md): each province's link carried one
    // object for its 3 communes, within rule 7's bytes, as the centre's metrics counted them.
    assert_eq!(
        out.matches(": 1 object(s), ").count(),
        3,
        "one object per link: {out}"
    );
    assert_eq!(
        out.matches("within docs/broadcast.md rule 7: yes").count(),
        3,
        "{out}"
    );
    assert!(
        out.contains("replied to the centre through its host"),
        "{out}"
    );
    assert!(out.contains("all 5 vdxd stopped cleanly"), "{out}");
    assert_cleaned_up(out);
}

#[test]
fn the_offline_demo_passes_and_keeps_files_only_when_asked() {
    let s = Session::new();
    let ran = s.vdx(&["demo", "--offline"]).ok();
    assert!(ran.stdout.contains("vdx demo: PASSED"), "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("OpenSSL CLI independently decrypted and verified it"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("[integrity_failed]"), "{}", ran.stdout);
    assert!(ran.stdout.contains("[not_a_recipient]"), "{}", ran.stdout);

    s.vdx(&["demo", "--offline", "--keep", "kept"]).ok();
    assert!(s.exists("kept/ca.pem") && s.exists("kept/7816-VPCP-TTDT.p7m"));
    assert!(s.exists("kept/000.00.00.H40/received.txt"));
}
