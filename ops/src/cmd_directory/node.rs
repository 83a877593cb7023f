//! A node's directory commands (`--home`): its own entry, the unsigned `directory.json` of a
//! pilot, and the zones its running daemon holds (signed mode).

use super::*;

/// `vdx directory export`: the entry of this node or of a tenant, from `directory.json` when a
/// pilot's lists it, else from its certificates (always so in signed mode, where the directory
/// file is not kept).
pub(super) fn export(home: &Path, tenant: Option<&OrganCode>) -> Result<ExitCode> {
    let config = Config::load(home)?;
    let code = tenant.unwrap_or(&config.organ_code);
    let listed = if config.zones.is_none() {
        let path = config::resolve(home, &config.directory);
        Directory::from_json(&files::read_file(&path)?)
            .with_context(|| format!("in {}", path.display()))?
            .get(code.as_str())
            .cloned()
    } else {
        None
    };
    let entry = match listed {
        Some(entry) => entry,
        None if *code == config.organ_code => own_entry(home, &config)?,
        None => match config::TenantConfig::load(home, code)? {
            Some(added) => hosted_entry(home, &config, &added)?,
            None => bail!("{code} is not a tenant of this node (vdx tenant list)"),
        },
    };
    stdout::write(&format!("{}\n", String::from_utf8_lossy(&entry.to_json()?)))?;
    Ok(ExitCode::SUCCESS)
}

/// `vdx directory import` (a pilot's unsigned directory only).
pub(super) fn import(home: &Path, file: &Path) -> Result<ExitCode> {
    let config = Config::load(home)?;
    if let Some(zones) = &config.zones {
        bail!(
            "this node takes its directory from signed zones (root authority {}): an entry is \
             added by its directory authority, who signs it into a zone (`vdx directory sign`) \
             that is then handed to a node with `vdx directory publish`",
            config::resolve(home, &zones.root_authority).display()
        );
    }
    let path = config::resolve(home, &config.directory);
    let mut directory = Directory::from_json(&files::read_file(&path)?)
        .with_context(|| format!("in {}", path.display()))?;
    let entry = Entry::from_json(&files::read_file(file)?)
        .with_context(|| format!("{} is not a valid directory entry", file.display()))?;
    let code = entry.organ_code.clone();
    let replaced = directory.upsert(entry)?;
    write_file(&path, &directory.to_json()?, Mode::Public)?;
    println!(
        "{} {code} in {}",
        if replaced { "updated" } else { "added" },
        path.display()
    );
    let client = Client::new(home)?;
    if client.is_running() {
        let reloaded = client.post("/v1/reload", &json!({}))?;
        println!("{}", describe_reload(&reloaded));
    } else {
        println!("vdxd is not running; it reads the directory when it starts");
    }
    Ok(ExitCode::SUCCESS)
}

/// `vdx directory list`: a pilot's `directory.json`; in signed mode, the zones in force.
pub(super) fn list(home: &Path) -> Result<ExitCode> {
    let config = Config::load(home)?;
    if config.zones.is_some() {
        println!("signed directory: the agencies are those of the zones in force");
        return status(home, false);
    }
    let path = config::resolve(home, &config.directory);
    let directory = Directory::from_json(&files::read_file(&path)?)
        .with_context(|| format!("in {}", path.display()))?;
    let mut out = String::new();
    for e in &directory.entries {
        writeln!(
            out,
            "{:16} {:24} {}",
            e.organ_code,
            e.endpoint.as_deref().unwrap_or("-"),
            e.name
        )?;
    }
    stdout::write(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `vdx directory publish`: `POST /v1/directory/zones` with the file's bytes.
pub(super) fn publish(home: &Path, file: &Path) -> Result<ExitCode> {
    let bytes = files::read_file(file)?;
    let answer = Client::new(home)?
        .post_stream("/v1/directory/zones", Box::new(std::io::Cursor::new(bytes)))
        .with_context(|| format!("the node refused {}", file.display()))?;
    let text = |key: &str| answer[key].to_string();
    stdout::write(&format!(
        "zone {} version {}: {}; {} agencies in the directory in force\n",
        answer["zone"].as_str().unwrap_or("?"),
        text("version"),
        if answer["changed"] == true {
            "taken up"
        } else {
            "unchanged (the node holds this version already)"
        },
        text("agencies")
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `vdx directory status`: `GET /v1/directory/zones`.
pub(super) fn status(home: &Path, json: bool) -> Result<ExitCode> {
    let answer = Client::new(home)?.get("/v1/directory/zones")?;
    let text = if json {
        format!("{}\n", serde_json::to_string_pretty(&answer)?)
    } else {
        render_status(&answer)?
    };
    stdout::write(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Seconds as the largest whole unit a person reads at a glance.
fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// The status answer as a table and the refused files.
fn render_status(s: &Value) -> Result<String> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let mut out = String::new();
    if s["mode"] != "signed" {
        writeln!(
            out,
            "unsigned directory (pilot): {} agencies in directory.json",
            text(&s["agencies"])
        )?;
        return Ok(out);
    }
    writeln!(
        out,
        "signed directory: root authority {}, source {}, every {}s; {} agencies in force",
        text(&s["root_authority"]),
        text(&s["source"]),
        text(&s["interval_secs"]),
        text(&s["agencies"])
    )?;
    writeln!(
        out,
        "{:16} {:>8} {:>6} {:22} {:8} {:9} {:16} signer",
        "zone", "version", "age", "next update", "stale", "in force", "from"
    )?;
    for z in s["zones"].as_array().map(Vec::as_slice).unwrap_or_default() {
        writeln!(
            out,
            "{:16} {:>8} {:>6} {:22} {:8} {:9} {:16} {}",
            text(&z["zone"]),
            text(&z["version"]),
            z["age_secs"].as_u64().map_or("-".to_owned(), age),
            z["next_update"].as_u64().map_or("-".to_owned(), rfc3339),
            if z["stale"] == true { "STALE" } else { "-" },
            if z["in_force"] == false { "no" } else { "yes" },
            text(&z["from"]),
            text(&z["signer"])
        )?;
    }
    if let Some(refused) = s["refused"].as_array().filter(|r| !r.is_empty()) {
        writeln!(out, "refused zone files:")?;
        for r in refused {
            writeln!(
                out,
                "  {}: {}: {}",
                text(&r["file"]),
                text(&r["code"]),
                text(&r["reason"])
            )?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table_marks_stale_zones_and_lists_refusals() {
        let answer = json!({
            "mode": "signed", "root_authority": "CN=Root", "source": "000.00.00.G22",
            "interval_secs": 300, "agencies": 12,
            "zones": [{"zone": "root", "version": 4, "signer": "CN=Root", "issued": 0,
                "next_update": 86400, "age_secs": 7200, "stale": true, "in_force": true,
                "agencies": 3, "from": "000.00.00.G22", "taken_at": 0, "sha256": "00"}],
            "refused": [{"file": "x.zone", "code": "bad_signature", "reason": "tampered"}]
        });
        let text = render_status(&answer).unwrap();
        assert!(text.contains("12 agencies in force"), "{text}");
        assert!(
            text.contains("STALE") && text.contains("1970-01-02T00:00:00Z"),
            "{text}"
        );
        assert!(text.contains("x.zone: bad_signature: tampered"), "{text}");
        let pilot = render_status(&json!({"mode": "pilot", "agencies": 2})).unwrap();
        assert!(pilot.contains("pilot") && pilot.contains('2'), "{pilot}");
        assert_eq!(age(90), "90s");
        assert_eq!(age(7_200), "2h");
    }
}
