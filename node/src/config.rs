//! A node home's `config.toml`: who the node is, where it listens, where its keys, trust anchors,
//! directory and data live, and its limits. Relative paths are relative to the home directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vdx_protocol::OrganCode;

/// The file name inside a node home.
pub const FILE_NAME: &str = "config.toml";

/// A node's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The agency this node serves.
    pub organ_code: OrganCode,
    /// Its name.
    pub name: String,
    /// QUIC listen address.
    pub listen: SocketAddr,
    /// Organ code of the node that relays for this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<OrganCode>,
    /// Store directory (spool and metadata).
    pub data_dir: PathBuf,
    /// The file outside the store that a store restored from an older copy is compared with
    /// (`store::restore`); best on another disk than `data_dir`, or at least outside it.
    #[serde(default = "default_anchor")]
    pub anchor: PathBuf,
    /// The unsigned directory of agencies (JSON, `docs/directory.md`): for a pilot of a few nodes
    /// only. Not read when `zones` is set.
    pub directory: PathBuf,
    /// The signed directory (`docs/directory-zones.md`): when set, the node takes its directory
    /// only from zones that chain to this root authority, and nothing unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<Zones>,
    /// Certificates and keys.
    pub keys: Keys,
    /// Trust anchors and revocation lists.
    pub trust: Trust,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Who may use the local socket API, by Unix user id.
    #[serde(default)]
    pub api: Api,
    /// What the classification policy lets this node's agencies send through (`[policy]`).
    #[serde(default, skip_serializing_if = "Policy::is_default")]
    pub policy: Policy,
}

/// The sender's side of the classification policy (`node/src/classification.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The relays a `tuyet-mat` dispatch may cross; none: it goes only over a direct link (to
    /// the recipient's own node, or its host's).
    #[serde(default)]
    pub tuyet_mat_relays: Vec<OrganCode>,
}

impl Policy {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn default_anchor() -> PathBuf {
    PathBuf::from("anchor.json")
}

/// The local socket API's users (DESIGN §6): each uid gets the roles of the lists it is in. The
/// owner of the node home is always `admin`; nobody else gets anything not listed here. Also where
/// the metrics are offered over TCP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// Clerks (văn thư): send, read the inbox and outbox, fetch.
    #[serde(default)]
    pub clerks: Vec<u32>,
    /// Office systems: the same rights as clerks, recorded as systems.
    #[serde(default)]
    pub systems: Vec<u32>,
    /// Security officers: read metadata and the ledger; never documents.
    #[serde(default)]
    pub officers: Vec<u32>,
    /// Administrators: everything.
    #[serde(default)]
    pub admins: Vec<u32>,
    /// Where a Prometheus scraper may read `GET /metrics` over TCP; none when absent. Anyone who
    /// reaches it reads it (counts, states, next hops' organ codes, never a document): keep it on
    /// loopback or a monitoring network behind a firewall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
}

/// Where a node in signed mode learns its directory (`docs/directory-zones.md`, "Distribution").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zones {
    /// The national directory authority's certificate (PEM): the one certificate the root zone
    /// must be signed with; every other zone's signer is named by the root zone.
    pub root_authority: PathBuf,
    /// The peer it exchanges zones with at every interval (normally its parent); none for a node
    /// at the top, which others come to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<OrganCode>,
    /// Seconds between two exchanges with the source; a zone taken up is passed on at once.
    #[serde(default = "default_zone_interval")]
    pub interval_secs: u64,
}

fn default_zone_interval() -> u64 {
    300
}

/// The folder of a node home where the zones in force are kept, one `<name>.zone` file each.
pub const ZONES_DIR: &str = "zones";

/// Certificate and key files, by role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    /// Signs dispatches and receipts.
    pub sign_cert: PathBuf,
    /// Its key (PKCS#8, encrypted with `VDX_KEY_PASSPHRASE`).
    pub sign_key: PathBuf,
    /// Receives dispatches.
    pub enc_cert: PathBuf,
    /// Its key.
    pub enc_key: PathBuf,
    /// Identifies the node on QUIC.
    pub tls_cert: PathBuf,
    /// Its key.
    pub tls_key: PathBuf,
}

/// What the node trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trust {
    /// CA certificates (PEM bundles).
    pub anchors: Vec<PathBuf>,
    /// CRLs; with any, every issuer needs one.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
}

/// Hard limits, so that no peer or clerk can exhaust the node; a value left out keeps its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest sealed dispatch accepted, bytes.
    pub max_dispatch_bytes: u64,
    /// Transfers in flight to one peer.
    pub max_concurrent_per_peer: u32,
    /// Days after which an undelivered dispatch fails, unless it says otherwise.
    pub default_expiry_days: u32,
    /// Less free space than this on the data disk, MiB, is a warning in `vdx status` (0: never),
    /// so that the operator acts before a full disk refuses new dispatches.
    pub disk_warning_mib: u64,
    /// Local API connections served at once. Each holds a file descriptor, which arriving
    /// transfers need too; more clients wait, unaccepted, until one of these ends.
    pub api_connections: u32,
    /// Seconds a local API connection may take to send a request's header, counted from when it
    /// opens or its previous answer ends: an idle keep-alive connection or a half-sent header is
    /// closed after this long.
    pub api_header_timeout_secs: u64,
    /// Seconds a local API request body may stop arriving, or an answer stop being read, before
    /// the request is ended (an inactivity limit: an upload of any size that keeps moving is
    /// never cut).
    pub api_body_timeout_secs: u64,
    /// QUIC handshakes in progress at once, all sources together: what a handshake flood can
    /// make the node hold (some 20 KiB each).
    pub max_handshakes: u32,
    /// Handshakes in progress at once from one validated address; more are ignored.
    pub max_handshakes_per_ip: u32,
    /// Connections from one address (established, or validated and in handshake); more are
    /// refused. Peers keep one connection each, whatever the tenants behind them.
    pub max_connections_per_ip: u32,
    /// From this many handshakes in progress on, a connection attempt from an address not yet
    /// validated gets a QUIC Retry (one more round trip, no state kept); 0: always.
    pub retry_from_handshakes: u32,
    /// A handshake not finished after this many seconds is dropped.
    pub handshake_timeout_secs: u32,
    /// Offers that have crossed this many relays or more are refused, and a submission whose
    /// route by the directory would cross as many is refused at once: a loop in the directory's
    /// relays ends (`docs/routes.md`).
    pub max_hops: u8,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_dispatch_bytes: 4 << 30,
            max_concurrent_per_peer: 4,
            default_expiry_days: 7,
            disk_warning_mib: 1024,
            api_connections: 64,
            api_header_timeout_secs: 30,
            api_body_timeout_secs: 60,
            max_handshakes: 64,
            max_handshakes_per_ip: 8,
            max_connections_per_ip: 16,
            retry_from_handshakes: 16,
            handshake_timeout_secs: 10,
            max_hops: 8,
        }
    }
}

/// Why a configuration could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("{path}: {reason}")]
    Invalid {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Config {
    /// The standard layout of a home made by `vdx init`.
    pub fn new(organ_code: OrganCode, name: String, listen: SocketAddr) -> Self {
        Self {
            organ_code,
            name,
            listen,
            relay: None,
            data_dir: "data".into(),
            anchor: default_anchor(),
            directory: "directory.json".into(),
            zones: None,
            keys: Keys {
                sign_cert: "keys/sign.pem".into(),
                sign_key: "keys/sign.key".into(),
                enc_cert: "keys/enc.pem".into(),
                enc_key: "keys/enc.key".into(),
                tls_cert: "keys/tls.pem".into(),
                tls_key: "keys/tls.key".into(),
            },
            trust: Trust {
                anchors: vec!["keys/ca.pem".into()],
                crls: Vec::new(),
            },
            limits: Limits::default(),
            api: Api::default(),
            policy: Policy::default(),
        }
    }

    /// Reads `home/config.toml`.
    pub fn load(home: &Path) -> Result<Self, ConfigError> {
        let path = home.join(FILE_NAME);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path,
            reason: e.to_string(),
        })
    }

    /// The TOML text.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::Invalid {
            path: FILE_NAME.into(),
            reason: e.to_string(),
        })
    }
}

/// Where the tenants added after `vdx init` live in a node home: `tenants/<organ code>/`.
pub const TENANTS_DIR: &str = "tenants";
/// The file of one added tenant in its directory.
pub const TENANT_FILE: &str = "tenant.toml";

/// One agency hosted by the node besides the one `config.toml` names (which is the host's own
/// and its first tenant): `tenants/<organ code>/tenant.toml`, written by `vdx tenant add`.
/// Relative paths are relative to the home, like `config.toml`'s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The agency.
    pub organ_code: OrganCode,
    /// Its name.
    pub name: String,
    /// Its signing and encryption certificates and keys (no TLS: the host's identifies the node).
    pub keys: TenantKeys,
    /// Who may use the local API for this agency. Nobody is implied, not even the host's
    /// admins: they manage tenants but read no tenant's documents unless listed here.
    #[serde(default)]
    pub api: Users,
}

/// A tenant's certificate and key files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantKeys {
    /// Signs its dispatches, receipts and checkpoints.
    pub sign_cert: PathBuf,
    /// Its key (PKCS#8, encrypted with `VDX_KEY_PASSPHRASE`).
    pub sign_key: PathBuf,
    /// What its dispatches are encrypted to.
    pub enc_cert: PathBuf,
    /// Its key.
    pub enc_key: PathBuf,
}

/// A tenant's local API users by role, Unix uids (the roles of [`Api`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// Clerks (văn thư): send, read the inbox and outbox, fetch.
    #[serde(default)]
    pub clerks: Vec<u32>,
    /// Office systems: the same rights as clerks, recorded as systems.
    #[serde(default)]
    pub systems: Vec<u32>,
    /// Security officers: read metadata and the ledger; never documents.
    #[serde(default)]
    pub officers: Vec<u32>,
    /// The agency's administrators: everything in this agency.
    #[serde(default)]
    pub admins: Vec<u32>,
}

impl TenantConfig {
    /// The standard layout of a tenant made by `vdx tenant add`.
    pub fn new(organ_code: OrganCode, name: String) -> Self {
        let key = |file: &str| {
            Path::new(TENANTS_DIR)
                .join(organ_code.as_str())
                .join("keys")
                .join(file)
        };
        Self {
            keys: TenantKeys {
                sign_cert: key("sign.pem"),
                sign_key: key("sign.key"),
                enc_cert: key("enc.pem"),
                enc_key: key("enc.key"),
            },
            organ_code,
            name,
            api: Users::default(),
        }
    }

    /// The directory of tenant `code` in `home`.
    pub fn dir(home: &Path, code: &OrganCode) -> PathBuf {
        home.join(TENANTS_DIR).join(code.as_str())
    }

    /// Reads tenant `code`'s file in `home`; `None` when it has none (never added, or removed).
    pub fn load(home: &Path, code: &OrganCode) -> Result<Option<Self>, ConfigError> {
        let path = Self::dir(home, code).join(TENANT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ConfigError::Io { path, source }),
        };
        let tenant: Self = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if tenant.organ_code != *code {
            return Err(ConfigError::Invalid {
                path,
                reason: format!("names {}, not the directory's {code}", tenant.organ_code),
            });
        }
        Ok(Some(tenant))
    }

    /// Every tenant file in `home`, by organ code.
    pub fn all(home: &Path) -> Result<Vec<Self>, ConfigError> {
        let dir = home.join(TENANTS_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(ConfigError::Io { path: dir, source }),
        };
        let mut all = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ConfigError::Io {
                path: dir.clone(),
                source,
            })?;
            let name = entry.file_name();
            let Some(code) = name.to_str().and_then(|n| n.parse::<OrganCode>().ok()) else {
                continue;
            };
            all.extend(Self::load(home, &code)?);
        }
        all.sort_by(|a, b| a.organ_code.as_str().cmp(b.organ_code.as_str()));
        Ok(all)
    }

    /// Writes the file (through a temporary file renamed into place).
    pub fn save(&self, home: &Path) -> Result<(), ConfigError> {
        let dir = Self::dir(home, &self.organ_code);
        let path = dir.join(TENANT_FILE);
        let io = |source| ConfigError::Io {
            path: path.clone(),
            source,
        };
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::create_dir_all(&dir).map_err(io)?;
        // A tenant acknowledged as added is still there after a crash, whole.
        write_durably(&path, text.as_bytes()).map_err(io)
    }
}

/// Writes `path` whole or not at all, and durably: through a temporary file in the same
/// directory, synced before and after it is renamed into place.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let mut file = std::fs::File::create(&temp)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}

impl Api {
    /// The users of the host's own agency (its first tenant), by role.
    pub fn users(&self) -> Users {
        Users {
            clerks: self.clerks.clone(),
            systems: self.systems.clone(),
            officers: self.officers.clone(),
            admins: self.admins.clone(),
        }
    }
}

/// A path from the configuration, made absolute against the home directory.
pub fn resolve(home: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        home.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_left_out_keeps_its_default() {
        let limits: Limits = toml::from_str("max_concurrent_per_peer = 2").unwrap();
        assert_eq!(
            limits,
            Limits {
                max_concurrent_per_peer: 2,
                ..Limits::default()
            }
        );
        assert!(toml::from_str::<Limits>("disk_warning = 1").is_err());
        // A home written before the handshake limits existed loads with their defaults.
        let old = "max_dispatch_bytes = 1000\nmax_concurrent_per_peer = 4\n\
                   default_expiry_days = 7\ndisk_warning_mib = 1024\n";
        let limits: Limits = toml::from_str(old).unwrap();
        assert_eq!(limits.max_handshakes, Limits::default().max_handshakes);
        assert_eq!(limits.handshake_timeout_secs, 10);
    }

    #[test]
    fn tenant_files_round_trip_and_must_name_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let code: OrganCode = "000.01.41.H41".parse().unwrap();
        assert!(TenantConfig::load(dir.path(), &code).unwrap().is_none());
        let mut tenant = TenantConfig::new(code.clone(), "Xã A".into());
        tenant.api.clerks.push(1001);
        tenant.save(dir.path()).unwrap();
        assert_eq!(TenantConfig::all(dir.path()).unwrap(), vec![tenant.clone()]);
        let other: OrganCode = "000.02.41.H41".parse().unwrap();
        std::fs::create_dir_all(TenantConfig::dir(dir.path(), &other)).unwrap();
        std::fs::copy(
            TenantConfig::dir(dir.path(), &code).join(TENANT_FILE),
            TenantConfig::dir(dir.path(), &other).join(TENANT_FILE),
        )
        .unwrap();
        assert!(TenantConfig::load(dir.path(), &other).is_err());
    }

    #[test]
    fn a_new_config_round_trips_and_unknown_keys_are_refused() {
        let config = Config::new(
            "000.00.00.G22".parse().unwrap(),
            "Văn phòng Chính phủ".into(),
            "127.0.0.1:4433".parse().unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), config.to_toml().unwrap()).unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), config);
        let text = config.to_toml().unwrap().replace("listen", "listne");
        std::fs::write(dir.path().join(FILE_NAME), text).unwrap();
        assert!(matches!(
            Config::load(dir.path()),
            Err(ConfigError::Invalid { .. })
        ));
        assert_eq!(
            resolve(Path::new("/home/n"), Path::new("keys/a")),
            Path::new("/home/n/keys/a")
        );
        assert_eq!(
            resolve(Path::new("/home/n"), Path::new("/etc/a")),
            Path::new("/etc/a")
        );
    }
}
