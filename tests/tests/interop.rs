//! vdx and the OpenSSL CLI open each other's documents, with vdx's PKI and with one made by OpenSSL.

use vdx_tests::{words, Session};

/// `openssl cms -decrypt | openssl cms -verify` with default options; returns the content.
fn openssl_open(s: &Session, sealed: &str, cert: &str, key: &str, ca: &str) -> Vec<u8> {
    s.openssl(&[
        "cms",
        "-decrypt",
        "-inform",
        "DER",
        "-in",
        sealed,
        "-recip",
        cert,
        "-inkey",
        key,
        "-out",
        "signed.der",
    ])
    .ok();
    s.openssl(&[
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        "signed.der",
        "-CAfile",
        ca,
        "-out",
        "opened.bin",
    ])
    .ok();
    s.read("opened.bin")
}

#[test]
fn vdx_seal_opens_with_openssl_for_ec_rsa_and_several_recipients() {
    let s = Session::new();
    s.vdx_pki();
    let doc = s.document("doc.bin", 3 * 1024 * 1024 + 17);
    s.vdx(&words("seal --cert g22/sign.pem --key g22/sign.key --to h40/enc.pem --to h41/agency.pem --to h26/enc.pem -o multi.p7m doc.bin"))
    .ok();
    for (cert, key) in [
        ("h40/enc.pem", "h40/enc.key"),
        ("h41/agency.pem", "h41/agency.key"),
        ("h26/enc.pem", "h26/enc.key"),
    ] {
        assert_eq!(
            openssl_open(&s, "multi.p7m", cert, key, "ca/ca.pem"),
            doc,
            "recipient {cert}"
        );
    }
    // PKCS#1 v1.5 key transport, and an RSA signer (the combined government profile).
    s.vdx(&words("seal --cert h41/agency.pem --key h41/agency.key --to h26/enc.pem --rsa-padding pkcs1 -o pkcs1.p7m doc.bin"))
    .ok();
    assert_eq!(
        openssl_open(&s, "pkcs1.p7m", "h26/enc.pem", "h26/enc.key", "ca/ca.pem"),
        doc
    );
    // Two signers (the agency and a second key, as Decree 30/2020 wants); OpenSSL checks both.
    s.vdx(&words("seal --cert g22/sign.pem --key g22/sign.key --cert h40/sign.pem --key h40/sign.key --to h40/enc.pem -o two.p7m doc.bin"))
    .ok();
    assert_eq!(
        openssl_open(&s, "two.p7m", "h40/enc.pem", "h40/enc.key", "ca/ca.pem"),
        doc
    );
    let verdict = s
        .vdx(&[
            "open",
            "--json",
            "--cert",
            "h40/enc.pem",
            "--key",
            "h40/enc.key",
            "--trust",
            "ca/ca.pem",
            "-o",
            "two.out",
            "two.p7m",
        ])
        .ok()
        .json();
    assert_eq!(s.read("two.out"), doc);
    assert_eq!(verdict["content_bytes"], doc.len() as u64);
    let signers = verdict["signers"].as_array().expect("signers");
    let mut codes: Vec<&str> = signers
        .iter()
        .map(|v| v["organ_code"].as_str().unwrap_or("-"))
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, ["000.00.00.G22", "000.00.00.H40"], "{verdict}");
    for signer in signers {
        let serial = signer["serial"].as_str().expect("serial");
        assert!(
            !serial.is_empty() && serial.chars().all(|c| c.is_ascii_hexdigit()),
            "{serial}"
        );
        let time = signer["signing_time"].as_str().expect("signing_time");
        assert!(
            time.len() >= 20 && time.as_bytes()[4] == b'-' && time.as_bytes()[10] == b'T',
            "not RFC 3339: {time}"
        );
        assert!(!signer["issuer"].as_str().unwrap_or("").is_empty());
        assert!(!signer["subject"].as_str().unwrap_or("").is_empty());
    }
}

#[test]
fn an_empty_document_travels_both_ways() {
    let s = Session::new();
    s.openssl_pki();
    s.document("empty.bin", 0);
    s.vdx(&words("seal --cert ossl/signer.pem --key ossl/signer.key --to ossl/ec-recip.pem -o vdx.p7m empty.bin"))
    .ok();
    assert!(openssl_open(
        &s,
        "vdx.p7m",
        "ossl/ec-recip.pem",
        "ossl/ec-recip.key",
        "ossl/ca.pem"
    )
    .is_empty());
    s.sh(
        "openssl cms -sign -nodetach -binary -signer ossl/signer.pem -inkey ossl/signer.key \
           -in empty.bin -outform DER \
         | openssl cms -encrypt -binary -aes-256-gcm -outform DER -out ossl.p7m ossl/ec-recip.pem",
    )
    .ok();
    let verdict = s
        .vdx(&[
            "open",
            "--json",
            "--cert",
            "ossl/ec-recip.pem",
            "--key",
            "ossl/ec-recip.key",
            "--trust",
            "ossl/ca.pem",
            "-o",
            "empty.out",
            "ossl.p7m",
        ])
        .ok()
        .json();
    assert_eq!(verdict["content_bytes"], 0);
    assert!(s.exists("empty.out") && s.read("empty.out").is_empty());
}

#[test]
fn openssl_documents_open_with_vdx_in_every_form() {
    let s = Session::new();
    s.vdx_pki();
    let doc = s.document("doc.bin", 1024 * 1024 + 3);
    s.openssl(&words("cms -sign -nodetach -binary -md sha256 -signer g22/sign.pem -inkey g22/sign.key -in doc.bin -outform DER -out signed.der"))
    .ok();
    s.openssl(&words("cms -sign -nodetach -binary -stream -signer g22/sign.pem -inkey g22/sign.key -in doc.bin -outform DER -out signed-stream.der"))
    .ok();
    let mut cases = 0;
    for (recipient, key) in [
        ("h40/enc.pem", "h40/enc.key"),
        ("h41/agency.pem", "h41/agency.key"),
        ("h26/enc.pem", "h26/enc.key"),
    ] {
        for cipher in ["-aes-256-gcm", "-aes-256-cbc", "-aes-128-gcm"] {
            for (form_index, (input, stream, form, ext)) in [
                ("signed.der", false, "DER", "der"),
                ("signed-stream.der", true, "DER", "der"),
                ("signed.der", true, "PEM", "pem"),
                ("signed.der", false, "SMIME", "smime"),
                ("signed-stream.der", true, "SMIME", "smime"),
            ]
            .into_iter()
            .enumerate()
            {
                let out = format!("sealed-{cases}.{ext}");
                let mut args = vec![
                    "cms", "-encrypt", "-binary", cipher, "-in", input, "-outform", form, "-out",
                    &out,
                ];
                if stream {
                    args.push("-stream");
                }
                // RSA: OpenSSL's default PKCS#1 v1.5 and RSA-OAEP, each form with both paddings
                // across the two RSA recipients.
                let oaep = match recipient {
                    "h41/agency.pem" => form_index % 2 == 0,
                    "h26/enc.pem" => form_index % 2 == 1,
                    _ => false,
                };
                if oaep {
                    args.extend(["-recip", recipient, "-keyopt", "rsa_padding_mode:oaep"]);
                } else {
                    args.push(recipient);
                }
                s.openssl(&args).ok();
                let opened = format!("opened-{cases}");
                let verdict = s
                    .vdx(&[
                        "open",
                        "--json",
                        "--cert",
                        recipient,
                        "--key",
                        key,
                        "--trust",
                        "ca/ca.pem",
                        "-o",
                        &opened,
                        &out,
                    ])
                    .ok()
                    .json();
                assert_eq!(verdict["ok"], true, "{args:?}");
                assert_eq!(verdict["signers"].as_array().map(Vec::len), Some(1));
                assert_eq!(verdict["signers"][0]["organ_code"], "000.00.00.G22");
                assert_eq!(verdict["content_bytes"], doc.len() as u64, "{args:?}");
                let expected_envelope = match cipher {
                    "-aes-256-gcm" => "authEnvelopedData/aes-256-gcm",
                    "-aes-128-gcm" => "authEnvelopedData/aes-128-gcm",
                    _ => "envelopedData/aes-256-cbc",
                };
                assert_eq!(verdict["envelope"], expected_envelope, "{args:?}");
                assert_eq!(s.read(&opened), doc, "{args:?}");
                std::fs::remove_file(s.path(&out)).unwrap();
                std::fs::remove_file(s.path(&opened)).unwrap();
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 45);
}

#[test]
fn a_pki_made_by_the_openssl_cli_works_both_ways() {
    let s = Session::new();
    s.openssl_pki();
    let doc = s.document("doc.bin", 200_000);
    // vdx seals with OpenSSL-made certificates; OpenSSL opens.
    s.vdx(&words("seal --cert ossl/signer.pem --key ossl/signer.key --to ossl/ec-recip.pem --to ossl/rsa-recip.pem -o vdx.p7m doc.bin"))
    .ok();
    for (cert, key) in [
        ("ossl/ec-recip.pem", "ossl/ec-recip.key"),
        ("ossl/rsa-recip.pem", "ossl/rsa-recip.key"),
    ] {
        assert_eq!(openssl_open(&s, "vdx.p7m", cert, key, "ossl/ca.pem"), doc);
        // ... and vdx opens it too, with the OpenSSL CRL.
        s.vdx(&[
            "open",
            "--cert",
            cert,
            "--key",
            key,
            "--trust",
            "ossl/ca.pem",
            "--crl",
            "ossl/ca.crl",
            "-o",
            "v.out",
            "vdx.p7m",
        ])
        .ok();
        assert_eq!(s.read("v.out"), doc);
    }
    // OpenSSL seals (sign -stream | encrypt -stream); vdx opens.
    s.sh(
        "openssl cms -sign -stream -nodetach -binary -signer ossl/signer.pem -inkey ossl/signer.key \
           -in doc.bin -outform DER \
         | openssl cms -encrypt -stream -binary -aes-256-gcm -outform DER -out ossl.p7m ossl/ec-recip.pem",
    )
    .ok();
    let verdict = s
        .vdx(&[
            "open",
            "--json",
            "--cert",
            "ossl/ec-recip.pem",
            "--key",
            "ossl/ec-recip.key",
            "--trust",
            "ossl/ca.pem",
            "--crl",
            "ossl/ca.crl",
            "-o",
            "o.out",
            "ossl.p7m",
        ])
        .ok()
        .json();
    assert_eq!(verdict["ok"], true);
    assert_eq!(verdict["envelope"], "authEnvelopedData/aes-256-gcm");
    assert_eq!(s.read("o.out"), doc);
}

#[test]
fn standard_input_and_output_work_in_a_pipe() {
    let s = Session::new();
    s.vdx_pki();
    let doc = s.document("doc.bin", 500_000);
    s.sh(
        "cat doc.bin | $VDX seal --cert g22/sign.pem --key g22/sign.key --to h40/enc.pem -o - - \
         | $VDX open --cert h40/enc.pem --key h40/enc.key --trust ca/ca.pem -o - - > piped.out",
    )
    .ok();
    assert_eq!(s.read("piped.out"), doc);
    // vdx seals into a pipe; the OpenSSL CLI opens from it.
    s.sh(
        "$VDX seal --cert g22/sign.pem --key g22/sign.key --to h40/enc.pem -o - - < doc.bin \
         | openssl cms -decrypt -inform DER -recip h40/enc.pem -inkey h40/enc.key \
         | openssl cms -verify -inform DER -CAfile ca/ca.pem -out openssl.out",
    )
    .ok();
    assert_eq!(s.read("openssl.out"), doc);
    // A reader that stops early (`| head`) ends vdx quietly, with success.
    s.document("big.bin", 8 << 20);
    let cut_short = s.sh(
        "$VDX seal --cert g22/sign.pem --key g22/sign.key --to h40/enc.pem -o - - < big.bin \
         | head -c 100 > head.out",
    );
    assert_eq!(cut_short.status, 0, "{}", cut_short.stderr);
    assert_eq!(cut_short.stderr, "");
    // A damaged document read from a pipe: refused, and not one byte of content on stdout.
    let refused = s.sh(
        "$VDX seal --cert g22/sign.pem --key g22/sign.key --to h40/enc.pem -o - - < doc.bin > whole.p7m
         head -c 400000 whole.p7m > cut.p7m
         status=0
         cat cut.p7m | $VDX open --cert h40/enc.pem --key h40/enc.key --trust ca/ca.pem -o - - \
           > refused.out || status=$?
         test $status -eq 1",
    );
    assert_eq!(refused.status, 0, "{}", refused.stderr);
    assert!(refused.stderr.contains("truncated"), "{}", refused.stderr);
    assert!(s.read("refused.out").is_empty());
}

#[test]
fn encrypted_keys_need_their_passphrase() {
    let s = Session::new();
    let pass = [("VDX_KEY_PASSPHRASE", "correct horse")];
    s.vdx_env(&["pki", "init-ca", "--out", "ca", "--name", "Root"], &pass)
        .ok();
    s.vdx_env(
        &[
            "pki",
            "issue",
            "--ca",
            "ca",
            "--org",
            "000.00.00.G22",
            "--name",
            "A",
            "--out",
            "a",
        ],
        &pass,
    )
    .ok();
    assert!(String::from_utf8_lossy(&s.read("a/sign.key")).contains("ENCRYPTED PRIVATE KEY"));
    s.document("doc.bin", 1000);
    let seal = [
        "seal",
        "--cert",
        "a/sign.pem",
        "--key",
        "a/sign.key",
        "--to",
        "a/enc.pem",
        "-o",
        "d.p7m",
        "doc.bin",
    ];
    let locked = s.vdx(&seal);
    assert_eq!(locked.status, 1);
    assert!(locked.stderr.contains("passphrase"), "{}", locked.stderr);
    s.vdx_env(&seal, &pass).ok();
    let open = [
        "open",
        "--json",
        "--cert",
        "a/enc.pem",
        "--key",
        "a/enc.key",
        "--trust",
        "ca/ca.pem",
        "-o",
        "d",
        "d.p7m",
    ];
    assert_eq!(s.vdx(&open).refusal(), "key_locked");
    s.vdx_env(&open, &pass).ok();
}
