//! Reading zone files without judging them (offline): `show` prints one, `diff` compares two
//! issues of a zone.

use super::*;

/// The signer subject of a delegation's certificate, or why it cannot be read.
pub(super) fn delegation_signer(delegation: &Delegation) -> String {
    STANDARD
        .decode(&delegation.certificate)
        .ok()
        .and_then(|der| X509::from_der(&der).ok())
        .map_or_else(
            || "(unreadable certificate)".to_owned(),
            |cert| vdx_pki::subject_string(&cert),
        )
}

/// The content with the signer's subject after it: what `show --json` prints.
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    zone: &'a Zone,
    signer: String,
}

/// `vdx directory show`.
pub(super) fn show(path: &Path, json: bool) -> Result<ExitCode> {
    let (zone, signer) = read_zone(path)?;
    let signer = vdx_pki::subject_string(&signer);
    if json {
        let text = serde_json::to_string_pretty(&Shown {
            zone: &zone,
            signer,
        })?;
        stdout::write(&format!("{text}\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    writeln!(out, "zone {} version {}", zone.zone, zone.version)?;
    writeln!(out, "  issued:      {}", rfc3339(zone.issued))?;
    writeln!(out, "  next update: {}", rfc3339(zone.next_update))?;
    writeln!(out, "  signer:      {signer}")?;
    writeln!(out, "entries ({}):", zone.entries.len())?;
    for e in &zone.entries {
        let reach = match (&e.host, e.endpoints.is_empty()) {
            (Some(host), _) => format!("host {host}"),
            (None, false) => e.endpoints.join(","),
            (None, true) => "-".to_owned(),
        };
        writeln!(
            out,
            "  {:16} {:24} relays {:16} parent {:16} max {:9} {}",
            e.organ_code,
            reach,
            if e.relays.is_empty() {
                "-".to_owned()
            } else {
                e.relays.join(",")
            },
            e.parent.as_deref().unwrap_or("-"),
            e.max_classification,
            e.name
        )?;
    }
    writeln!(out, "delegations ({}):", zone.delegations.len())?;
    for d in &zone.delegations {
        writeln!(
            out,
            "  {:16} scope {:12} signer {}",
            d.zone,
            d.scope.join(","),
            delegation_signer(d)
        )?;
    }
    stdout::write(&printable(&out))?;
    Ok(ExitCode::SUCCESS)
}

/// `text` with its control characters other than line ends escaped: names in a zone file that no
/// signature vouches for yet must not drive the terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// What changed between two zones.
#[derive(Serialize, Debug, PartialEq, Eq)]
struct ZoneDiff {
    zone: String,
    old_version: u64,
    new_version: u64,
    entries: Changes,
    delegations: Changes,
}

/// Added and removed codes, and the changed ones with the fields that differ.
#[derive(Serialize, Debug, Default, PartialEq, Eq)]
struct Changes {
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<Changed>,
}

/// One entry or delegation present on both sides that differs.
#[derive(Serialize, Debug, PartialEq, Eq)]
struct Changed {
    code: String,
    fields: Vec<&'static str>,
}

/// The fields in which two entries of the same organ code differ.
fn entry_fields(a: &ZoneEntry, b: &ZoneEntry) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let mut check = |differs: bool, name: &'static str| {
        if differs {
            fields.push(name);
        }
    };
    check(a.name != b.name, "name");
    check(a.parent != b.parent, "parent");
    check(a.host != b.host, "host");
    check(a.endpoints != b.endpoints, "endpoints");
    check(a.relays != b.relays, "relays");
    check(
        a.max_classification != b.max_classification,
        "max_classification",
    );
    check(
        a.certificates.sign != b.certificates.sign,
        "certificates.sign",
    );
    check(a.certificates.enc != b.certificates.enc, "certificates.enc");
    check(a.certificates.tls != b.certificates.tls, "certificates.tls");
    fields
}

/// The fields in which two delegations of the same zone differ.
fn delegation_fields(a: &Delegation, b: &Delegation) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if a.scope != b.scope {
        fields.push("scope");
    }
    if a.certificate != b.certificate {
        fields.push("certificate");
    }
    fields
}

/// Compares two lists keyed by `key`, field by field with `fields`.
fn changes<T>(
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> &str,
    fields: impl Fn(&T, &T) -> Vec<&'static str>,
) -> Changes {
    let old: BTreeMap<&str, &T> = old.iter().map(|x| (key(x), x)).collect();
    let new: BTreeMap<&str, &T> = new.iter().map(|x| (key(x), x)).collect();
    let mut out = Changes::default();
    for (code, a) in &old {
        match new.get(code) {
            None => out.removed.push((*code).to_owned()),
            Some(b) => {
                let differ = fields(a, b);
                if !differ.is_empty() {
                    out.changed.push(Changed {
                        code: (*code).to_owned(),
                        fields: differ,
                    });
                }
            }
        }
    }
    out.added = new
        .keys()
        .filter(|code| !old.contains_key(*code))
        .map(|code| (*code).to_owned())
        .collect();
    out
}

fn zone_diff(old: &Zone, new: &Zone) -> ZoneDiff {
    ZoneDiff {
        zone: new.zone.clone(),
        old_version: old.version,
        new_version: new.version,
        entries: changes(&old.entries, &new.entries, |e| &e.organ_code, entry_fields),
        delegations: changes(
            &old.delegations,
            &new.delegations,
            |d| &d.zone,
            delegation_fields,
        ),
    }
}

/// `vdx directory diff`.
pub(super) fn diff(old_path: &Path, new_path: &Path, json: bool) -> Result<ExitCode> {
    let (old, _) = read_zone(old_path)?;
    let (new, _) = read_zone(new_path)?;
    if old.zone != new.zone {
        bail!(
            "{} is zone {} and {} is zone {}: compare issues of one zone",
            old_path.display(),
            old.zone,
            new_path.display(),
            new.zone
        );
    }
    let d = zone_diff(&old, &new);
    if json {
        stdout::write(&format!("{}\n", serde_json::to_string_pretty(&d)?))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!(
        "zone {}: version {} -> {}\n",
        d.zone, d.old_version, d.new_version
    );
    for (what, c) in [("entry", &d.entries), ("delegation", &d.delegations)] {
        for code in &c.added {
            writeln!(out, "+ {what} {code}")?;
        }
        for code in &c.removed {
            writeln!(out, "- {what} {code}")?;
        }
        for changed in &c.changed {
            writeln!(
                out,
                "~ {what} {}: {}",
                changed.code,
                changed.fields.join(", ")
            )?;
        }
    }
    if d.entries == Changes::default() && d.delegations == Changes::default() {
        out.push_str("no entry or delegation changed\n");
    }
    stdout::write(&printable(&out))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vdx_pki::ZoneCertificates;

    fn entry(code: &str, name: &str) -> ZoneEntry {
        ZoneEntry {
            organ_code: code.to_owned(),
            name: name.to_owned(),
            parent: None,
            host: None,
            endpoints: vec!["10.0.0.1:4433".to_owned()],
            relays: Vec::new(),
            max_classification: "mat".to_owned(),
            certificates: ZoneCertificates {
                sign: "A".to_owned(),
                enc: "B".to_owned(),
                tls: Some("C".to_owned()),
            },
        }
    }

    fn zone(version: u64, entries: Vec<ZoneEntry>, delegations: Vec<Delegation>) -> Zone {
        Zone {
            zone: ROOT_ZONE.to_owned(),
            version,
            issued: 1,
            next_update: 2,
            entries,
            delegations,
        }
    }

    fn delegation(code: &str, scope: &str) -> Delegation {
        Delegation {
            zone: code.to_owned(),
            scope: vec![scope.to_owned()],
            certificate: "D".to_owned(),
        }
    }

    #[test]
    fn control_characters_are_escaped_before_printing() {
        assert_eq!(printable("Xã \u{1b}[2Jx\tA\n"), "Xã \\u{1b}[2Jx\\tA\n");
    }

    #[test]
    fn diff_names_added_removed_and_changed_fields() {
        let mut moved = entry("000.00.00.G22", "VPCP");
        let old = zone(
            3,
            vec![moved.clone(), entry("000.00.00.G09", "Bộ Tư pháp")],
            vec![delegation("000.00.00.H41", "*.H41")],
        );
        moved.endpoints = vec!["10.0.0.2:4433".to_owned()];
        moved.certificates.tls = None;
        let new = zone(
            4,
            vec![moved, entry("000.00.00.G10", "Bộ Tài chính")],
            vec![
                delegation("000.00.00.H41", "000.01.41.H41"),
                delegation("000.00.00.H26", "*.H26"),
            ],
        );
        let d = zone_diff(&old, &new);
        assert_eq!((d.old_version, d.new_version), (3, 4));
        assert_eq!(d.entries.added, ["000.00.00.G10"]);
        assert_eq!(d.entries.removed, ["000.00.00.G09"]);
        assert_eq!(
            d.entries.changed,
            [Changed {
                code: "000.00.00.G22".to_owned(),
                fields: vec!["endpoints", "certificates.tls"],
            }]
        );
        assert_eq!(d.delegations.added, ["000.00.00.H26"]);
        assert_eq!(d.delegations.changed[0].fields, ["scope"]);
        assert_eq!(zone_diff(&old, &old).entries, Changes::default());
    }
}
