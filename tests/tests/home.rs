//! Setting up two node homes by hand, as the README's walk-through does: init from a dev CA, export
//! each node's directory entry, import it into the other.

use vdx_tests::{words, Session};

#[test]
fn two_nodes_exchange_directory_entries() {
    let s = Session::new();
    s.vdx(&words("pki init-ca --out ca --name Root")).ok();
    s.vdx(&words(
        "--home a init --org 000.00.00.G22 --name VPCP --listen 127.0.0.1:4501 --ca ca",
    ))
    .ok();
    s.vdx(&words(
        "--home b init --org 000.00.00.H41 --name Tinh --listen 127.0.0.1:4502 --ca ca",
    ))
    .ok();
    for file in [
        "a/config.toml",
        "a/keys/sign.key",
        "a/keys/tls.pem",
        "a/keys/ca.pem",
        "a/directory.json",
        "a/data",
    ] {
        assert!(s.exists(file), "{file} missing");
    }
    let a = s.vdx(&words("--home a directory export")).ok().stdout;
    let b = s.vdx(&words("--home b directory export")).ok().stdout;
    std::fs::write(s.path("a.json"), &a).unwrap();
    std::fs::write(s.path("b.json"), &b).unwrap();
    assert!(s
        .vdx(&words("--home b directory import a.json"))
        .ok()
        .stdout
        .contains("added 000.00.00.G22"));
    s.vdx(&words("--home a directory import b.json")).ok();
    assert!(s
        .vdx(&words("--home a directory import b.json"))
        .ok()
        .stdout
        .contains("updated"));
    let list = s.vdx(&words("--home a directory list")).ok().stdout;
    assert!(
        list.contains("000.00.00.G22")
            && list.contains("000.00.00.H41 ")
            && list.contains("127.0.0.1:4502"),
        "{list}"
    );

    // An entry claiming another organ code with these certificates is refused, and changes nothing.
    let before = s.read("a/directory.json");
    std::fs::write(
        s.path("forged.json"),
        b.replace("000.00.00.H41", "000.00.00.H26"),
    )
    .unwrap();
    let forged = s.vdx(&words("--home a directory import forged.json"));
    assert_eq!(forged.status, 1, "{}", forged.stdout);
    assert_eq!(s.read("a/directory.json"), before);

    let again = s.vdx(&words(
        "--home a init --org 000.00.00.G22 --name X --listen 127.0.0.1:1 --ca ca",
    ));
    assert_eq!(again.status, 1);
    assert!(
        again.stderr.contains("already holds a node"),
        "{}",
        again.stderr
    );
    let no_home = s.vdx(&words("directory list"));
    assert_eq!(no_home.status, 1);
    assert!(no_home.stderr.contains("--home"), "{}", no_home.stderr);
}

#[test]
fn without_a_dev_ca_init_writes_requests_for_a_real_ca() {
    let s = Session::new();
    s.vdx(&words(
        "--home n init --org 000.00.00.H26 --name Ha-Tinh --listen 127.0.0.1:4503",
    ))
    .ok();
    for role in ["sign", "enc", "tls"] {
        let csr = format!("n/keys/{role}.csr");
        let checked = s
            .openssl(&["req", "-in", &csr, "-noout", "-verify", "-subject"])
            .ok();
        assert!(
            checked.stdout.contains("000.00.00.H26") || checked.stderr.contains("000.00.00.H26")
        );
        assert!(s.exists(&format!("n/keys/{role}.key")));
    }
}
