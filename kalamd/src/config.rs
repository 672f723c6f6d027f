//! Configuration: embedded defaults, then a YAML file, then `KALAMD_*` environment overrides.
//! Unknown keys and bad values are refused with the key's name and the reason.
#![deny(
    clippy::arithmetic_side_effects,
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_norway::{Mapping, Value};

use kalamdb_core::limits;

use crate::error::DaemonError;

/// The largest request body kalamd accepts: 1 GiB.
const MAX_BODY_BYTES: u64 = 1 << 30;
/// Shutdown waits at most a day.
const MAX_SHUTDOWN_SECONDS: u64 = 86_400;
/// One object-storage request may take at most an hour.
const MAX_REQUEST_SECONDS: u64 = 3_600;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: String,
    pub auth: Auth,
    pub logging: Logging,
    pub shutdown: Shutdown,
    pub limits: Limits,
    pub flush: Flush,
    pub eviction: Eviction,
    pub retention: Retention,
    pub storage: Storage,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub token: String,
    pub user_id: String,
    pub role: Role,
}

/// A token's role: the engine's own.
pub use kalamdb_core::Role;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logging {
    /// A tracing filter: `error`, `warn`, `info`, `debug`, `trace`, or directives like
    /// `info,kalamd=debug`.
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shutdown {
    /// After SIGTERM, how long /ready reports 503 (and new SQL requests are refused) before
    /// the listener closes, so load balancers stop routing here first.
    pub drain_delay_seconds: u64,
    /// The whole shutdown, drain delay included, must finish within this.
    pub grace_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Flush {
    /// How often tables' flush policies are checked.
    pub check_interval_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Eviction {
    /// How often stream tables are evicted by TTL and MAX_BUFFER.
    pub interval_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub completed_jobs_days: u64,
    pub failed_jobs_days: u64,
    pub check_interval_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// fsync the WAL before a write is acknowledged: an acknowledged write survives power loss,
    /// not only a process crash. On by default; `false` trades that for write throughput.
    pub sync_writes: bool,
    /// Object-storage credential profiles, by name: what a storage location's
    /// `credentials_ref` names. Secrets live here, never in the catalog.
    pub credentials: BTreeMap<String, Profile>,
}

/// An object-storage credentials profile: the engine's own.
pub use kalamdb_core::cold::object::Profile;

impl Default for Storage {
    fn default() -> Self {
        Storage {
            sync_writes: true,
            credentials: BTreeMap::new(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            listen: "127.0.0.1:8080".into(),
            auth: Auth::default(),
            logging: Logging::default(),
            shutdown: Shutdown::default(),
            limits: Limits::default(),
            flush: Flush::default(),
            eviction: Eviction::default(),
            retention: Retention::default(),
            storage: Storage::default(),
        }
    }
}
impl Default for Logging {
    fn default() -> Self {
        Logging {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}
impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            drain_delay_seconds: 1,
            grace_seconds: 30,
        }
    }
}
impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 10 * 1024 * 1024,
            request_timeout_seconds: 30,
        }
    }
}
impl Default for Flush {
    fn default() -> Self {
        Flush {
            check_interval_seconds: 5,
        }
    }
}
impl Default for Eviction {
    fn default() -> Self {
        Eviction {
            interval_seconds: 10,
        }
    }
}
impl Default for Retention {
    fn default() -> Self {
        Retention {
            completed_jobs_days: 30,
            failed_jobs_days: 90,
            check_interval_seconds: 3600,
        }
    }
}

/// What a key holds.
#[derive(Clone, Copy)]
enum Kind {
    /// A whole number within `[min, max]` (in `unit`s, for messages); `get` reads it back
    /// from a loaded configuration for the range check.
    Count {
        min: u64,
        max: u64,
        unit: &'static str,
        get: fn(&Config) -> u64,
    },
    Flag,
    Text,
    OneOf(&'static [&'static str]),
    /// `auth.tokens`: a list of `{token, user_id, role}`.
    Tokens,
    /// `storage.credentials`: a mapping of profile names to profiles.
    Profiles,
}

/// One configuration key.
struct Key {
    path: &'static str,
    kind: Kind,
}

const fn key(path: &'static str, kind: Kind) -> Key {
    Key { path, kind }
}

const fn count(
    path: &'static str,
    min: u64,
    max: u64,
    unit: &'static str,
    get: fn(&Config) -> u64,
) -> Key {
    Key {
        path,
        kind: Kind::Count {
            min,
            max,
            unit,
            get,
        },
    }
}

/// Every key, the one list: which keys a file may hold and of what type, the range of each
/// number, which `KALAMD_*` variables exist (every key has one: `KALAMD_` + the path in upper
/// case, joined by `_`), and what `specs/config.md` and `kalamd.example.yaml` must document
/// (a test holds them to it).
const KEYS: &[Key] = &[
    key("data_dir", Kind::Text),
    key("listen", Kind::Text),
    key("auth.tokens", Kind::Tokens),
    key("logging.level", Kind::Text),
    key("logging.format", Kind::OneOf(&["text", "json"])),
    count(
        "shutdown.drain_delay_seconds",
        0,
        MAX_SHUTDOWN_SECONDS,
        " seconds",
        |c| c.shutdown.drain_delay_seconds,
    ),
    count(
        "shutdown.grace_seconds",
        1,
        MAX_SHUTDOWN_SECONDS,
        " seconds",
        |c| c.shutdown.grace_seconds,
    ),
    count(
        "limits.max_body_bytes",
        1024,
        MAX_BODY_BYTES,
        " bytes",
        |c| u64::try_from(c.limits.max_body_bytes).unwrap_or(u64::MAX),
    ),
    count(
        "limits.request_timeout_seconds",
        1,
        limits::MAX_SECONDS,
        " seconds",
        |c| c.limits.request_timeout_seconds,
    ),
    count(
        "flush.check_interval_seconds",
        1,
        limits::MAX_SECONDS,
        " seconds",
        |c| c.flush.check_interval_seconds,
    ),
    count(
        "eviction.interval_seconds",
        1,
        limits::MAX_SECONDS,
        " seconds",
        |c| c.eviction.interval_seconds,
    ),
    count(
        "retention.completed_jobs_days",
        0,
        limits::MAX_DAYS,
        " days",
        |c| c.retention.completed_jobs_days,
    ),
    count(
        "retention.failed_jobs_days",
        0,
        limits::MAX_DAYS,
        " days",
        |c| c.retention.failed_jobs_days,
    ),
    count(
        "retention.check_interval_seconds",
        1,
        limits::MAX_SECONDS,
        " seconds",
        |c| c.retention.check_interval_seconds,
    ),
    key("storage.sync_writes", Kind::Flag),
    key("storage.credentials", Kind::Profiles),
];

/// The path of every key, in the table's order.
pub fn key_paths() -> impl Iterator<Item = &'static str> {
    KEYS.iter().map(|k| k.path)
}

pub fn env_name(key: &str) -> String {
    format!("KALAMD_{}", key.replace('.', "_").to_uppercase())
}

impl Config {
    /// Defaults, then the file (if any), then the environment.
    pub fn load(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, DaemonError> {
        let mut root = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    DaemonError::Config(format!("cannot read {}: {e}", path.display()))
                })?;
                match serde_norway::from_str::<Value>(&text) {
                    Ok(Value::Mapping(m)) => m,
                    Ok(Value::Null) => Mapping::new(),
                    Ok(_) => {
                        return Err(DaemonError::Config(format!(
                            "{}: the top level must be a mapping of keys",
                            path.display()
                        )));
                    }
                    Err(e) => return Err(DaemonError::Config(format!("{}: {e}", path.display()))),
                }
            }
            None => Mapping::new(),
        };
        apply_env(&mut root, env)?;
        check_types(&root).map_err(|e| {
            let origin = file
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "environment".into());
            DaemonError::Config(format!("{origin}: {e}"))
        })?;
        // What the checks above let through is named by its key path, too.
        let config: Config =
            serde_path_to_error::deserialize(Value::Mapping(root)).map_err(|e| {
                let origin = file
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "environment".into());
                DaemonError::Config(format!("{origin}: {}: {}", e.path(), e.inner()))
            })?;
        config.validate()?;
        Ok(config)
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, DaemonError> {
        self.listen.parse().map_err(|_| {
            DaemonError::Config(format!(
                "listen: '{}' is not an address like 127.0.0.1:8080",
                self.listen
            ))
        })
    }

    fn validate(&self) -> Result<(), DaemonError> {
        let bad = |key: &str, why: String| Err(DaemonError::Config(format!("{key}: {why}")));
        self.listen_addr()?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.logging.level) {
            return bad(
                "logging.level",
                format!(
                    "'{}' is not a log level or filter ({e})",
                    self.logging.level
                ),
            );
        }
        // Every duration and count, with its range: a value past it would overflow the time
        // arithmetic that uses it (and no operator means a retention of 10^17 days).
        for k in KEYS {
            if let Kind::Count {
                min,
                max,
                unit,
                get,
            } = k.kind
            {
                let v = get(self);
                if v < min || v > max {
                    return bad(
                        k.path,
                        format!("{v} is out of range; use {min} to {max}{unit}"),
                    );
                }
            }
        }
        if self.shutdown.drain_delay_seconds >= self.shutdown.grace_seconds {
            return bad(
                "shutdown.drain_delay_seconds",
                "must be shorter than shutdown.grace_seconds".into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, t) in self.auth.tokens.iter().enumerate() {
            if t.token.len() < 16 {
                return bad(
                    &format!("auth.tokens[{i}].token"),
                    "must be at least 16 characters".into(),
                );
            }
            if !seen.insert(&t.token) {
                return bad(&format!("auth.tokens[{i}].token"), "is listed twice".into());
            }
            if let Err(e) = kalamdb_core::catalog::names::validate_user_id(&t.user_id) {
                return bad(&format!("auth.tokens[{i}].user_id"), e.to_string());
            }
        }
        for (name, p) in &self.storage.credentials {
            let at = |field: &str| format!("storage.credentials.{name}.{field}");
            if p.access_key_id.is_empty() {
                return bad(&at("access_key_id"), "must not be empty".into());
            }
            if p.secret_access_key.is_empty() {
                return bad(&at("secret_access_key"), "must not be empty".into());
            }
            if !(1..=MAX_REQUEST_SECONDS).contains(&p.timeout_seconds) {
                return bad(
                    &at("timeout_seconds"),
                    format!(
                        "{} is out of range; use 1 to {MAX_REQUEST_SECONDS} seconds",
                        p.timeout_seconds
                    ),
                );
            }
            if let Some(endpoint) = &p.endpoint {
                let http = endpoint.starts_with("http://");
                if !http && !endpoint.starts_with("https://") {
                    return bad(
                        &at("endpoint"),
                        format!("'{endpoint}' is not an http:// or https:// URL"),
                    );
                }
                if http && !p.allow_http {
                    return bad(
                        &at("endpoint"),
                        format!("'{endpoint}' is plain http; set allow_http: true to allow it"),
                    );
                }
            }
        }
        Ok(())
    }
}

fn lookup<'a>(root: &'a Mapping, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = root.get(parts.next()?)?;
    for p in parts {
        v = v.as_mapping()?.get(p)?;
    }
    Some(v)
}

fn check_kind(key: &str, v: &Value, kind: Kind) -> Result<(), String> {
    let ok = match kind {
        Kind::Count { .. } => v.as_u64().is_some(),
        Kind::Flag => v.as_bool().is_some(),
        Kind::Text => v.as_str().is_some() || v.is_number(),
        Kind::OneOf(allowed) => v.as_str().is_some_and(|s| allowed.contains(&s)),
        Kind::Tokens => v.is_sequence(),
        Kind::Profiles => v.is_mapping() || v.is_null(),
    };
    if ok {
        return Ok(());
    }
    let want = match kind {
        Kind::Count { .. } => "a whole number >= 0".to_string(),
        Kind::Flag => "true or false".to_string(),
        Kind::Text => "text".to_string(),
        Kind::OneOf(allowed) => format!("one of {}", allowed.join(", ")),
        Kind::Tokens => "a list of {token, user_id, role}".to_string(),
        Kind::Profiles => {
            "a mapping of profile names to {access_key_id, secret_access_key, ...}".to_string()
        }
    };
    let shown = serde_norway::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Err(format!("{key}: expected {want}, found {shown}"))
}

/// Refuses keys that are not documented, naming the full path and the keys allowed there.
fn check_known(map: &Mapping, prefix: &str) -> Result<(), String> {
    let known: Vec<&str> = key_paths().collect();
    for key in map.keys() {
        let name = key
            .as_str()
            .ok_or_else(|| format!("{prefix}: keys must be text"))?;
        let path = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        };
        let is_leaf = known.contains(&path.as_str());
        let is_section = known.iter().any(|k| k.starts_with(&format!("{path}.")));
        if !is_leaf && !is_section {
            let here: std::collections::BTreeSet<&str> = known
                .iter()
                .filter_map(|k| {
                    if prefix.is_empty() {
                        Some(*k)
                    } else {
                        k.strip_prefix(&format!("{prefix}."))
                    }
                })
                .map(|k| k.split('.').next().unwrap_or(k))
                .collect();
            return Err(format!(
                "{path}: unknown key; the keys here are {}",
                here.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        if is_section {
            match map.get(key).and_then(Value::as_mapping) {
                Some(inner) => check_known(inner, &path)?,
                None if map.get(key).is_some_and(Value::is_null) => {}
                None => return Err(format!("{path}: expected a section of keys")),
            }
        }
    }
    Ok(())
}

/// Checks every documented leaf's type, so that an error names its key.
fn check_types(root: &Mapping) -> Result<(), String> {
    check_known(root, "")?;
    for k in KEYS.iter().filter(|k| !matches!(k.kind, Kind::Tokens)) {
        if let Some(v) = lookup(root, k.path) {
            check_kind(k.path, v, k.kind)?;
        }
    }
    if let Some(tokens) = lookup(root, "auth.tokens") {
        let list = tokens
            .as_sequence()
            .ok_or("auth.tokens: expected a list of {token, user_id, role}")?;
        for (i, t) in list.iter().enumerate() {
            let Some(m) = t.as_mapping() else {
                return Err(format!(
                    "auth.tokens[{i}]: expected {{token, user_id, role}}"
                ));
            };
            for field in ["token", "user_id", "role"] {
                let v = m
                    .get(field)
                    .ok_or_else(|| format!("auth.tokens[{i}].{field}: missing"))?;
                let kind = if field == "role" {
                    Kind::OneOf(&["admin", "user"])
                } else {
                    Kind::Text
                };
                check_kind(&format!("auth.tokens[{i}].{field}"), v, kind)?;
            }
        }
    }
    Ok(())
}

/// Applies `KALAMD_*` variables. Values are read as YAML scalars (`30`, `true`, `text`);
/// `KALAMD_AUTH_TOKENS` is `token:user_id:role` entries separated by commas.
fn apply_env(root: &mut Mapping, env: &BTreeMap<String, String>) -> Result<(), DaemonError> {
    for (name, raw) in env.iter().filter(|(k, _)| k.starts_with("KALAMD_")) {
        let Some(key) = key_paths().find(|k| env_name(k) == *name) else {
            return Err(DaemonError::Config(format!(
                "{name}: unknown environment override; the variables are {}",
                key_paths().map(env_name).collect::<Vec<_>>().join(", ")
            )));
        };
        let value = if key == "auth.tokens" {
            Value::Sequence(parse_token_list(name, raw)?)
        } else {
            serde_norway::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.clone()))
        };
        let mut parts = key.split('.').peekable();
        let mut map = &mut *root;
        while let Some(part) = parts.next() {
            let k = Value::String(part.to_string());
            if parts.peek().is_none() {
                map.insert(k, value.clone());
                break;
            }
            let entry = map
                .entry(k)
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if !entry.is_mapping() {
                *entry = Value::Mapping(Mapping::new());
            }
            map = entry
                .as_mapping_mut()
                .ok_or_else(|| DaemonError::Config(format!("{name}: cannot apply")))?;
        }
    }
    Ok(())
}

fn parse_token_list(name: &str, raw: &str) -> Result<Vec<Value>, DaemonError> {
    raw.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|entry| {
            let parts: Vec<&str> = entry.trim().split(':').collect();
            let [token, user, role] = parts.as_slice() else {
                return Err(DaemonError::Config(format!(
                    "{name}: '{entry}' is not token:user_id:role"
                )));
            };
            let mut m = Mapping::new();
            m.insert("token".into(), Value::String(token.to_string()));
            m.insert("user_id".into(), Value::String(user.to_string()));
            m.insert("role".into(), Value::String(role.to_string()));
            Ok(Value::Mapping(m))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str, env: &[(&str, &str)]) -> Result<Config, DaemonError> {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("k.yaml");
        std::fs::write(&file, yaml).expect("write");
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(Some(&file), &env)
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let c = Config::load(None, &BTreeMap::new()).expect("defaults");
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(
            (
                c.retention.completed_jobs_days,
                c.retention.failed_jobs_days
            ),
            (30, 90)
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = load("listen: 127.0.0.1:1\nlogging:\n  colour: red\n", &[])
            .expect_err("unknown")
            .to_string();
        assert!(e.contains("colour"), "{e}");
        let e = load("shutdown:\n  grace_seconds: -3\n", &[])
            .expect_err("negative")
            .to_string();
        assert!(e.contains("grace_seconds"), "{e}");
        let e = load("listen: nowhere\n", &[])
            .expect_err("listen")
            .to_string();
        assert!(e.contains("listen"), "{e}");
        let e = load("logging:\n  format: xml\n", &[])
            .expect_err("format")
            .to_string();
        assert!(e.contains("format") || e.contains("xml"), "{e}");
    }

    /// `specs/config.md`'s table and `kalamd.example.yaml` document exactly the keys of
    /// [`KEYS`], and the example holds each at its default.
    #[test]
    fn the_spec_and_the_example_document_exactly_the_keys_and_defaults() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let spec = std::fs::read_to_string(root.join("../specs/config.md")).expect("spec");
        let documented: std::collections::BTreeSet<&str> = spec
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let keys: std::collections::BTreeSet<&str> = key_paths().collect();
        assert_eq!(documented, keys, "specs/config.md's table of keys");
        let example = root.join("kalamd.example.yaml");
        let text = std::fs::read_to_string(&example).expect("example");
        let Ok(Value::Mapping(mapping)) = serde_norway::from_str::<Value>(&text) else {
            panic!("the example is not a mapping");
        };
        for k in key_paths() {
            assert!(lookup(&mapping, k).is_some(), "{k} is not in the example");
        }
        let loaded = Config::load(Some(&example), &BTreeMap::new()).expect("the example loads");
        assert_eq!(loaded, Config::default(), "the example shows the defaults");
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load(
            "listen: 127.0.0.1:1\nlogging:\n  level: info\n",
            &[
                ("KALAMD_LISTEN", "127.0.0.1:2"),
                ("KALAMD_SHUTDOWN_GRACE_SECONDS", "7"),
                (
                    "KALAMD_AUTH_TOKENS",
                    "aaaaaaaaaaaaaaaa:root:admin,bbbbbbbbbbbbbbbb:alice:user",
                ),
            ],
        )
        .expect("load");
        assert_eq!(c.listen, "127.0.0.1:2");
        assert_eq!(c.shutdown.grace_seconds, 7);
        assert_eq!(c.auth.tokens.len(), 2);
        assert_eq!(c.auth.tokens[1].role, Role::User);
        let e = load("", &[("KALAMD_NOPE", "1")])
            .expect_err("unknown env")
            .to_string();
        assert!(e.contains("KALAMD_NOPE"), "{e}");
    }

    #[allow(clippy::arithmetic_side_effects)]
    mod properties {
        use proptest::prelude::*;

        use super::load;

        const VALID: &str = "data_dir: /var/lib/kalamdb\nlisten: 127.0.0.1:8080\nlogging:\n  level: info\n  format: json\nshutdown:\n  drain_delay_seconds: 1\n  grace_seconds: 30\nlimits:\n  max_body_bytes: 10485760\n  request_timeout_seconds: 30\nflush:\n  check_interval_seconds: 5\neviction:\n  interval_seconds: 10\nretention:\n  completed_jobs_days: 30\n  failed_jobs_days: 90\n  check_interval_seconds: 3600\nstorage:\n  sync_writes: true\nauth:\n  tokens:\n    - {token: aaaaaaaaaaaaaaaa, user_id: root, role: admin}\n";

        const SPLICES: &[&str] = &[
            "18446744073709551615",
            "18446744073709551616",
            "-1",
            "1e308",
            ".nan",
            "~",
            "[",
            "{",
            ":",
            "- ",
            "\t",
            "'",
            "\"",
            "&a",
            "*a",
            "!!binary",
            "\n  x: 1",
            "3155760001",
            "36526",
        ];

        fn mutated() -> impl Strategy<Value = String> {
            (
                any::<prop::sample::Index>(),
                0usize..8,
                prop::sample::select(SPLICES),
                any::<bool>(),
            )
                .prop_map(|(at, len, splice, cut)| {
                    let chars: Vec<char> = VALID.chars().collect();
                    let at = at.index(chars.len() + 1);
                    let end = (at + len).min(chars.len());
                    let mut out: String = chars[..at].iter().collect();
                    if !cut {
                        out.push_str(splice);
                    }
                    out.extend(&chars[end..]);
                    out
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            /// Any file: loaded, or refused with one line naming the problem; never a panic,
            /// and never a value past its bound.
            #[test]
            fn mutated_files_load_or_are_refused_in_one_line(yaml in mutated()) {
                match load(&yaml, &[]) {
                    Ok(c) => {
                        prop_assert!(c.retention.completed_jobs_days <= kalamdb_core::limits::MAX_DAYS);
                        prop_assert!(c.retention.failed_jobs_days <= kalamdb_core::limits::MAX_DAYS);
                        prop_assert!(c.eviction.interval_seconds <= kalamdb_core::limits::MAX_SECONDS);
                        prop_assert!(c.shutdown.drain_delay_seconds < c.shutdown.grace_seconds);
                    }
                    Err(e) => {
                        let text = e.to_string();
                        prop_assert!(!text.trim().is_empty());
                        prop_assert!(!text.contains('\n'), "one line: {text}");
                    }
                }
            }

            #[test]
            fn random_text_never_panics(yaml in "\\PC{0,120}") {
                if let Err(e) = load(&yaml, &[]) {
                    prop_assert!(!e.to_string().contains('\n'), "one line: {e}");
                }
            }
        }
    }
}
