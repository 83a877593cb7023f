//! Every way a document can be wrong gets its own verdict, exit code 1, and no output file.

use vdx_tests::{words, Session};

/// `vdx open --json` as the EC recipient `h40` of `input`, writing into the directory `out_dir`
/// (created if needed); checks the refusal (exit 1, `ok: false`) and that `out_dir` is still empty
/// afterwards — no output file, not even an empty one, and no temporary file. Returns the code.
fn open_refused(s: &Session, input: &str, out_dir: &str, extra: &[&str]) -> String {
    open_refused_as(s, ("h40/enc.pem", "h40/enc.key"), input, out_dir, extra)
}

/// [`open_refused`] as the recipient whose certificate and key are `cert_key`.
fn open_refused_as(
    s: &Session,
    (cert, key): (&str, &str),
    input: &str,
    out_dir: &str,
    extra: &[&str],
) -> String {
    s.mkdir(out_dir);
    let out = format!("{out_dir}/content.bin");
    let mut args = vec![
        "open",
        "--json",
        "--cert",
        cert,
        "--key",
        key,
        "--trust",
        "ca/ca.pem",
        "-o",
        &out,
    ];
    args.extend_from_slice(extra);
    args.push(input);
    let ran = s.vdx(&args);
    let code = ran.refusal();
    let left = s.entries(out_dir);
    assert!(
        left.is_empty(),
        "{input}: refused with {code} but left {left:?} in {out_dir}/"
    );
    code
}

fn open_as_h40(s: &Session, input: &str, extra: &[&str]) -> String {
    open_refused(s, input, "out", extra)
}

fn sealed_session(len: usize) -> (Session, Vec<u8>) {
    let s = Session::new();
    s.vdx_pki();
    s.document("doc.bin", len);
    s.vdx(&words(
        "seal --cert g22/sign.pem --key g22/sign.key --to h40/enc.pem -o good.p7m doc.bin",
    ))
    .ok();
    let sealed = s.read("good.p7m");
    (s, sealed)
}

/// Runs `check(worker, item)` for every item on two threads (each `vdx open` is a process of its
/// own; two workers halve the wall time without crowding a small machine).
fn on_two_workers<T: Sync>(items: &[T], check: impl Fn(usize, &T) + Sync) {
    let check = &check;
    std::thread::scope(|scope| {
        for worker in 0..2 {
            scope.spawn(move || {
                for item in items.iter().skip(worker).step_by(2) {
                    check(worker, item);
                }
            });
        }
    });
}

/// Every code a damaged envelope may legitimately get; anything else (or success) is a bug.
const DAMAGE_CODES: [&str; 7] = [
    "integrity_failed",
    "corrupt",
    "truncated",
    "not_a_recipient",
    "key_decrypt_failed",
    "unsupported",
    "not_enveloped",
];

#[test]
fn every_flipped_byte_is_refused() {
    let (s, sealed) = sealed_session(1000);
    let len = sealed.len();
    // Every byte of the head (envelope header, recipient info with the ephemeral key and the
    // wrapped key, algorithm identifiers with the GCM nonce), every 5th byte of the ciphertext,
    // and every byte of the tail (last segment, tag, end-of-contents markers); several bit masks.
    let positions: Vec<usize> = (0..320.min(len))
        .chain((320..len).step_by(5))
        .chain(len.saturating_sub(64)..len)
        .collect();
    let codes = std::sync::Mutex::new(std::collections::BTreeSet::new());
    on_two_workers(&positions, |worker, &i| {
        let mut bad = sealed.clone();
        bad[i] ^= [0x01, 0x10, 0x80, 0xff][i % 4];
        let name = format!("bad-{worker}.p7m");
        s.write(&name, &bad);
        let code = open_refused(&s, &name, &format!("out-{worker}"), &[]);
        assert!(
            DAMAGE_CODES.contains(&code.as_str()),
            "byte {i} of {len} flipped: unexpected verdict {code}"
        );
        codes.lock().unwrap().insert(code);
    });
    let codes = codes.into_inner().unwrap();
    assert!(codes.contains("integrity_failed"), "{codes:?}");
}

#[test]
fn truncation_of_a_small_document_is_refused_at_every_point() {
    let (s, sealed) = sealed_session(1);
    let len = sealed.len();
    // Every prefix through the envelope's head and its tail; every 4th one through the
    // ciphertext between (all alike), to keep the test at a few seconds.
    let cuts: Vec<usize> = (0..512.min(len))
        .chain((512..len.saturating_sub(128)).step_by(4))
        .chain(len.saturating_sub(128).max(512)..len)
        .collect();
    on_two_workers(&cuts, |worker, &cut| {
        let name = format!("cut-{worker}.p7m");
        s.write(&name, &sealed[..cut]);
        let code = open_refused(&s, &name, &format!("out-{worker}"), &[]);
        let expected = if cut == 0 { "empty" } else { "truncated" };
        assert_eq!(code, expected, "cut at {cut} of {len}");
    });
}

#[test]
fn truncation_of_a_larger_document_is_refused() {
    let (s, sealed) = sealed_session(1024 * 1024 + 5);
    let len = sealed.len();
    let cuts: Vec<usize> = (1..len)
        .step_by(len / 40)
        .chain([1, 2, 100, len - 200, len - 20, len - 2, len - 1])
        .collect();
    on_two_workers(&cuts, |worker, &cut| {
        let name = format!("cut-{worker}.p7m");
        s.write(&name, &sealed[..cut]);
        let code = open_refused(&s, &name, &format!("out-{worker}"), &[]);
        assert_eq!(code, "truncated", "cut at {cut} of {len}");
    });
}

#[test]
fn wrong_recipient_and_wrong_key_are_told_apart() {
    let (s, _) = sealed_session(1000);
    // Another agency (RSA h26, EC g22) with its own certificate and key: not addressed to it.
    for (cert, key) in [
        ("h26/enc.pem", "h26/enc.key"),
        ("g22/enc.pem", "g22/enc.key"),
    ] {
        assert_eq!(
            open_refused_as(&s, (cert, key), "good.p7m", "out", &[]),
            "not_a_recipient",
            "{cert}"
        );
    }
    // The right certificate with somebody else's key (EC and RSA).
    for key in ["g22/enc.key", "h26/enc.key"] {
        assert_eq!(
            open_refused_as(&s, ("h40/enc.pem", key), "good.p7m", "out", &[]),
            "key_mismatch",
            "{key}"
        );
    }
}

#[test]
fn garbage_and_empty_input() {
    let (s, _) = sealed_session(10);
    std::fs::write(s.path("empty.p7m"), b"").unwrap();
    assert_eq!(open_as_h40(&s, "empty.p7m", &[]), "empty");
    std::fs::write(
        s.path("garbage.p7m"),
        b"this is not a sealed document at all\n",
    )
    .unwrap();
    assert_eq!(open_as_h40(&s, "garbage.p7m", &[]), "corrupt");
    std::fs::write(s.path("binary.p7m"), [0x30u8, 0x03, 0x02, 0x01, 0x00]).unwrap();
    assert_eq!(open_as_h40(&s, "binary.p7m", &[]), "corrupt");
    // A signed but unencrypted document is not a sealed dispatch.
    s.openssl(&words("cms -sign -nodetach -binary -signer g22/sign.pem -inkey g22/sign.key -in doc.bin -outform DER -out signed.der"))
    .ok();
    assert_eq!(open_as_h40(&s, "signed.der", &[]), "not_enveloped");
}

/// OpenSSL signs with a problem certificate and encrypts to vdx's `h40`; vdx must refuse.
fn openssl_sealed(s: &Session, signer: &str, name: &str) {
    s.sh(&format!(
        "openssl cms -sign -nodetach -binary -signer ossl/{signer}.pem -inkey ossl/{signer}.key -in doc.bin -outform DER \
         | openssl cms -encrypt -binary -aes-256-gcm -outform DER -out {name} h40/enc.pem"
    ))
    .ok();
}

#[test]
fn untrusted_revoked_expired_and_non_signing_signers_are_refused() {
    let (s, _) = sealed_session(5000);
    s.openssl_pki();
    let with_ossl_trust = ["--trust", "ossl/ca.pem", "--crl", "ossl/ca.crl"];

    openssl_sealed(&s, "signer", "fine.p7m");
    s.vdx(&words("open --cert h40/enc.pem --key h40/enc.key --trust ossl/ca.pem --crl ossl/ca.crl -o fine.out fine.p7m"))
    .ok();
    // Trusting only vdx's CA, the OpenSSL-issued signer is untrusted.
    assert_eq!(open_as_h40(&s, "fine.p7m", &[]), "untrusted");

    openssl_sealed(&s, "other", "other.p7m");
    assert_eq!(open_as_h40(&s, "other.p7m", &with_ossl_trust), "untrusted");

    openssl_sealed(&s, "revoked", "revoked.p7m");
    assert_eq!(open_as_h40(&s, "revoked.p7m", &with_ossl_trust), "revoked");

    openssl_sealed(&s, "expired", "expired.p7m");
    assert_eq!(open_as_h40(&s, "expired.p7m", &with_ossl_trust), "expired");

    openssl_sealed(&s, "notyet", "notyet.p7m");
    assert_eq!(
        open_as_h40(&s, "notyet.p7m", &with_ossl_trust),
        "not_yet_valid"
    );

    openssl_sealed(&s, "noku", "noku.p7m");
    assert_eq!(open_as_h40(&s, "noku.p7m", &with_ossl_trust), "key_usage");

    // vdx itself seals with the unrelated CA's signer; the recipient trusts only its own CA.
    s.vdx(&words(
        "seal --cert ossl/other.pem --key ossl/other.key --to h40/enc.pem -o other-vdx.p7m doc.bin",
    ))
    .ok();
    assert_eq!(open_as_h40(&s, "other-vdx.p7m", &[]), "untrusted");

    // With CRL checking on, a signer whose issuer published no CRL is refused (fail closed).
    s.vdx(&words("pki crl --ca ca --out vdx.crl")).ok();
    assert_eq!(
        open_as_h40(
            &s,
            "fine.p7m",
            &["--trust", "ossl/ca.pem", "--crl", "vdx.crl"]
        ),
        "crl_missing"
    );
}

#[test]
fn revoking_with_vdx_pki_takes_effect_on_the_next_crl() {
    let (s, _) = sealed_session(100);
    s.vdx(&words("pki crl --ca ca --out before.crl")).ok();
    s.vdx(&words("open --cert h40/enc.pem --key h40/enc.key --trust ca/ca.pem --crl before.crl -o ok.bin good.p7m"))
    .ok();
    s.vdx(&words(
        "pki revoke --ca ca --reason key-compromise g22/sign.pem",
    ))
    .ok();
    s.vdx(&words("pki crl --ca ca --out after.crl")).ok();
    assert_eq!(
        open_as_h40(&s, "good.p7m", &["--crl", "after.crl"]),
        "revoked"
    );
    let again = s.vdx(&words("pki revoke --ca ca g22/sign.pem"));
    assert_eq!(again.status, 1);
    assert!(again.stderr.contains("already revoked"), "{}", again.stderr);
}

#[test]
fn seal_refuses_what_it_cannot_do_properly() {
    let (s, _) = sealed_session(10);
    s.openssl_pki();
    let expired = s.vdx(&words(
        "seal --cert ossl/expired.pem --key ossl/expired.key --to h40/enc.pem -o x.p7m doc.bin",
    ));
    assert_eq!(expired.status, 1);
    assert!(expired.stderr.contains("expired"), "{}", expired.stderr);
    let mismatched = s.vdx(&words(
        "seal --cert g22/sign.pem --key h40/enc.key --to h40/enc.pem -o x.p7m doc.bin",
    ));
    assert_eq!(mismatched.status, 1);
    assert!(!s.exists("x.p7m"));
    let usage = s.vdx(&words("seal --cert g22/sign.pem -o x.p7m doc.bin"));
    assert_eq!(usage.status, 2, "missing arguments are a usage error");
}

/// OpenSSL signs `doc.bin` as `g22` with `sign_flags` (the signed form is `{name}.der`), then
/// encrypts `{name}.der` to `h40` as `{name}.p7m`.
fn openssl_signed_then_sealed(s: &Session, name: &str, sign_flags: &str) {
    s.sh(&format!(
        "openssl cms -sign -binary {sign_flags} -signer g22/sign.pem -inkey g22/sign.key -in doc.bin \
           -outform DER -out {name}.der"
    ))
    .ok();
    encrypt_to_h40(s, name);
}

fn encrypt_to_h40(s: &Session, name: &str) {
    s.sh(&format!(
        "openssl cms -encrypt -binary -aes-256-gcm -in {name}.der -outform DER -out {name}.p7m h40/enc.pem"
    ))
    .ok();
}

#[test]
fn content_whose_signature_does_not_hold_is_refused() {
    let (s, _) = sealed_session(3000);
    let doc = s.read("doc.bin");

    // Encrypted, but what is inside is plain data, not SignedData.
    s.openssl(&words(
        "cms -data_create -binary -in doc.bin -outform DER -out data.der",
    ))
    .ok();
    encrypt_to_h40(&s, "data");
    assert_eq!(open_as_h40(&s, "data.p7m", &[]), "unsigned");

    // A detached signature: the content is not inside.
    openssl_signed_then_sealed(&s, "detached", "");
    assert_eq!(open_as_h40(&s, "detached.p7m", &[]), "detached");

    // No certificates carried, and none given: the signer cannot be found.
    openssl_signed_then_sealed(&s, "nocerts", "-nodetach -nocerts");
    assert_eq!(
        open_as_h40(&s, "nocerts.p7m", &[]),
        "signer_certificate_missing"
    );

    // A good signature, then altered before encryption: last byte of the signature value ...
    openssl_signed_then_sealed(&s, "good", "-nodetach");
    let signed = s.read("good.der");
    let mut bad_sig = signed.clone();
    *bad_sig.last_mut().unwrap() ^= 0x01;
    s.write("badsig.der", &bad_sig);
    encrypt_to_h40(&s, "badsig");
    assert_eq!(open_as_h40(&s, "badsig.p7m", &[]), "bad_signature");

    // ... or one byte of the signed content.
    let at = signed
        .windows(64)
        .position(|w| w == &doc[..64])
        .expect("content inside the signed DER");
    let mut bad_content = signed;
    bad_content[at + 1000] ^= 0x01;
    s.write("badcontent.der", &bad_content);
    encrypt_to_h40(&s, "badcontent");
    assert_eq!(open_as_h40(&s, "badcontent.p7m", &[]), "bad_signature");

    // The unaltered one opens, so the refusals above are about the alterations.
    s.vdx(&words(
        "open --cert h40/enc.pem --key h40/enc.key --trust ca/ca.pem -o good.out good.p7m",
    ))
    .ok();
    assert_eq!(s.read("good.out"), doc);
}

#[test]
fn unusable_private_keys_are_named() {
    let (s, _) = sealed_session(100);
    // A certificate given where the key belongs (the usual mix-up).
    assert_eq!(
        open_refused_as(&s, ("h40/enc.pem", "h40/enc.pem"), "good.p7m", "out", &[]),
        "key_format"
    );
    // A PEM private key block that holds no key.
    s.write(
        "junk-pem.key",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    assert_eq!(
        open_refused_as(&s, ("h40/enc.pem", "junk-pem.key"), "good.p7m", "out", &[]),
        "key_format"
    );
    // A text file that is no key at all (neither PEM nor DER, so not an encrypted key either).
    s.write("notes.key", b"the key is on the USB token in the safe\n");
    assert_eq!(
        open_refused_as(&s, ("h40/enc.pem", "notes.key"), "good.p7m", "out", &[]),
        "key_format"
    );
}

#[test]
fn open_usage_errors_exit_2_and_write_nothing() {
    let (s, _) = sealed_session(100);
    s.mkdir("out");
    let no_trust = s.vdx(&words(
        "open --cert h40/enc.pem --key h40/enc.key -o out/x good.p7m",
    ));
    assert_eq!(no_trust.status, 2, "{}", no_trust.stderr);
    assert!(s.entries("out").is_empty());
}
