//! A directory authority's commands (offline): `sign` builds a zone from exported entries (or
//! the last issue) and signs it, `verify` checks zone files as a node would.

use super::*;

/// The zone `args` describe, not yet signed.
fn build_zone(args: &SignArgs, now: u64) -> Result<Zone> {
    let name = args.zone.as_str();
    if name != ROOT_ZONE && name.parse::<OrganCode>().is_err() {
        bail!("--zone {name:?} is neither `root` nor an organ code");
    }
    let mut entries: BTreeMap<String, ZoneEntry> = BTreeMap::new();
    let mut delegations: BTreeMap<String, Delegation> = BTreeMap::new();
    if let Some(base) = &args.base {
        let (old, _) = read_zone(base)?;
        if old.zone != name {
            bail!("--base {} is zone {}, not {name}", base.display(), old.zone);
        }
        if args.version <= old.version {
            bail!(
                "--version {} is not greater than the base's {} (nodes take only newer zones)",
                args.version,
                old.version
            );
        }
        entries.extend(old.entries.into_iter().map(|e| (e.organ_code.clone(), e)));
        delegations.extend(old.delegations.into_iter().map(|d| (d.zone.clone(), d)));
    }
    for path in &args.entries {
        let entry = Entry::from_json(&files::read_file(path)?)
            .with_context(|| format!("{} is not a valid directory entry", path.display()))?;
        // A delegated zone's agencies sit under its authority unless they say otherwise.
        let parent = (name != ROOT_ZONE && entry.organ_code != name).then_some(name);
        if entry.max_classification.is_none() && args.max_classification.is_none() {
            bail!(
                "{} ({}) says no max_classification: give --max-classification LEVEL",
                entry.organ_code,
                path.display()
            );
        }
        let zone_entry = ZoneEntry::from_entry(&entry, parent, args.max_classification.as_deref())
            .with_context(|| format!("the entry in {}", path.display()))?;
        entries.insert(zone_entry.organ_code.clone(), zone_entry);
    }
    let mut scopes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for text in &args.scope {
        let (code, pattern) = split_pair("scope", text)?;
        scopes.entry(code).or_default().push(pattern.to_owned());
    }
    for text in &args.delegate {
        let (code, cert_path) = split_pair("delegate", text)?;
        let cert = files::load_cert(Path::new(cert_path))?;
        let scope = scopes
            .remove(code)
            .unwrap_or_else(|| vec![default_scope(code)]);
        let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
        let delegation = Delegation::new(code, &scope, &cert)
            .with_context(|| format!("the delegation of {code}"))?;
        delegations.insert(code.to_owned(), delegation);
    }
    // --scope alone re-scopes a delegation the base has.
    for (code, scope) in scopes {
        match delegations.get_mut(code) {
            Some(delegation) => delegation.scope = scope,
            None => bail!(
                "--scope {code}=...: {code} is not delegated (give --delegate {code}=CERT.pem)"
            ),
        }
    }
    for code in &args.remove {
        let entry = entries.remove(code.as_str());
        let delegation = delegations.remove(code.as_str());
        if entry.is_none() && delegation.is_none() {
            bail!("--remove {code}: the zone has no entry or delegation of {code}");
        }
    }
    if name != ROOT_ZONE && !delegations.is_empty() {
        bail!("only the root zone delegates (--delegate is for --zone root)");
    }
    Ok(Zone {
        zone: name.to_owned(),
        version: args.version,
        issued: now,
        next_update: now.saturating_add(u64::from(args.days) * 86_400),
        entries: entries.into_values().collect(),
        delegations: delegations.into_values().collect(),
    })
}

/// `vdx directory sign`.
pub(super) fn sign(args: &SignArgs) -> Result<ExitCode> {
    if args.days == 0 {
        bail!("--days must be at least 1");
    }
    let cert = files::load_cert(&args.authority.join(AUTHORITY_CERT))?;
    let zone = build_zone(args, now())?;
    let key = files::load_key(&args.authority.join(AUTHORITY_KEY))?;
    let der = zone
        .sign(&cert, &key)
        .with_context(|| format!("cannot sign zone {}", zone.zone))?;
    write_file(&args.out, &der, Mode::Public)?;
    stdout::write(&format!(
        "signed zone {} version {}: {} entries, {} delegations, {} bytes -> {}\n  sha256:      \
         {}\n  signer:      {}\n  next update: {}\n",
        zone.zone,
        zone.version,
        zone.entries.len(),
        zone.delegations.len(),
        der.len(),
        args.out.display(),
        sha256_hex(&der),
        vdx_pki::subject_string(&cert),
        rfc3339(zone.next_update)
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `vdx directory verify`.
pub(super) fn verify(args: &VerifyArgs) -> Result<ExitCode> {
    let root = files::load_cert(&args.trust)?;
    let trust = if args.ca.is_empty() {
        if !args.crl.is_empty() {
            bail!("--crl needs --ca (the CAs whose revocations it lists)");
        }
        None
    } else {
        let mut anchors = Vec::new();
        for path in &args.ca {
            anchors.extend(files::load_certs(path)?);
        }
        let mut crls = Vec::new();
        for path in &args.crl {
            crls.extend(
                vdx_pki::parse_crls(&files::read_file(path)?)
                    .with_context(|| format!("in {}", path.display()))?,
            );
        }
        Some(TrustStore::new(anchors, Vec::new(), crls)?)
    };
    let mut inputs = Vec::with_capacity(args.files.len());
    for path in &args.files {
        inputs.push((path.display().to_string(), files::read_file(path)?));
    }
    let mut out = String::new();
    let mut failed = false;
    for (label, result) in verify_zone_files(&root, &inputs, trust.as_ref(), now()) {
        match result {
            Ok(zone) => writeln!(
                out,
                "OK {} version {} signer {} next update {} ({label})",
                zone.name(),
                zone.version(),
                zone.signer_subject(),
                rfc3339(zone.next_update())
            )?,
            Err(e) => {
                failed = true;
                writeln!(out, "FAILED {label}: {}: {}", e.code(), refusal_reason(&e))?;
            }
        }
    }
    stdout::write(&out)?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A refusal's reason without the code (printed beside it), naming the zone when it was read.
fn refusal_reason(e: &vdx_pki::Error) -> String {
    match e {
        vdx_pki::Error::Zone { zone, reason, .. } => format!("zone {zone}: {reason}"),
        other => other.to_string(),
    }
}
