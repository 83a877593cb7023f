//! The README's main command works and cleans up after itself.

use vdx_tests::Session;

#[test]
fn demo_passes_and_keeps_files_only_when_asked() {
    let s = Session::new();
    let ran = s.vdx(&["demo"]).ok();
    assert!(ran.stdout.contains("vdx demo: PASSED"), "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("OpenSSL CLI independently decrypted and verified it"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("[integrity_failed]"), "{}", ran.stdout);
    assert!(ran.stdout.contains("[not_a_recipient]"), "{}", ran.stdout);
    let workdir = ran
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("vdx demo: working in "))
        .expect("the demo names its directory");
    assert!(
        !std::path::Path::new(workdir).exists(),
        "demo left {workdir} behind"
    );

    s.vdx(&["demo", "--keep", "kept"]).ok();
    assert!(s.exists("kept/ca.pem") && s.exists("kept/7816-VPCP-TTDT.p7m"));
    assert!(s.exists("kept/000.00.00.H40/received.txt"));
}
