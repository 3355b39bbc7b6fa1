//! The layers of `wharf serve`'s settings, lowest first: built-in defaults,
//! the config file, then flags and `WHARF_*` variables (clap reads both).
//! figment merges them key by key and names the layer in its errors.

use std::path::Path;

use anyhow::{Context, Result};
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use figment::Figment;
use wharf_server::{Limits, TlsPolicy};

use super::schema::{DefenderSettings, LimitSettings, LogFormat, Policy, ServeSettings};

/// MiB of Raft log written before a snapshot is worth building at all.
pub const DEFAULT_SNAPSHOT_MIN_LOG_MIB: u64 = 32;
/// KiB per piece of a snapshot sent to a follower (openraft's default).
pub const DEFAULT_SNAPSHOT_PIECE_KIB: u64 = 3 << 10;

/// The settings as given (file, then flags and environment on top), and
/// the same with every default filled in.
pub struct Layered {
    pub given: ServeSettings,
    pub effective: ServeSettings,
}

pub fn merge(file: Option<&Path>, flags: &ServeSettings) -> Result<Layered> {
    let mut given = Figment::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        given = given.merge(Toml::string(&text));
    }
    let given = given.merge(Serialized::defaults(given_lists_only(flags)?));
    let invalid = || match file {
        Some(path) => format!("invalid config file {}", path.display()),
        None => "invalid settings".to_owned(),
    };
    let effective = Figment::from(Serialized::defaults(defaults()))
        .merge(given.clone())
        .extract()
        .with_context(invalid)?;
    Ok(Layered {
        given: given.extract().with_context(invalid)?,
        effective,
    })
}

/// The command line's settings without its empty lists: a list flag not
/// given must leave the file's list in place.
fn given_lists_only(flags: &ServeSettings) -> Result<Value> {
    fn prune(value: Value) -> Option<Value> {
        match value {
            Value::Array(_, items) if items.is_empty() => None,
            Value::Dict(tag, dict) => Some(Value::Dict(
                tag,
                dict.into_iter()
                    .filter_map(|(k, v)| prune(v).map(|v| (k, v)))
                    .collect(),
            )),
            other => Some(other),
        }
    }
    let value = Value::serialize(flags).context("cannot read the command line's settings")?;
    Ok(prune(value).unwrap_or_else(|| Value::from(figment::value::Dict::new())))
}

/// What a node runs with when nothing says otherwise. Settings whose default
/// depends on another (the logs under the data directory) are filled in by
/// `super::node_config`.
fn defaults() -> ServeSettings {
    let policy = TlsPolicy::default();
    let limits = Limits::default();
    let defender = wharf_server::defender::DefenderConfig::default();
    let store = wharf_store::StoreLimits::default();
    ServeSettings {
        data_dir: Some("wharf-data".into()),
        listen: Some("127.0.0.1:2121".into()),
        implicit_listen: Some("127.0.0.1:2990".into()),
        http_listen: Some("127.0.0.1:9180".into()),
        acme_listen: Some("off".into()),
        pasv_ports: Some("50000-50999".into()),
        log_format: Some(LogFormat::Human),
        shutdown_grace: Some(30),
        cluster_listen: Some("127.0.0.1:7000".into()),
        raft_snapshot_logs: Some(0),
        raft_snapshot_min_log_mib: Some(DEFAULT_SNAPSHOT_MIN_LOG_MIB),
        raft_snapshot_piece_kib: Some(DEFAULT_SNAPSHOT_PIECE_KIB),
        store_wal_mib: Some(store.wal_bytes >> 20),
        store_write_buffer_mib: Some((store.write_buffer_bytes >> 20) as u64),
        store_block_cache_mib: Some((store.block_cache_bytes >> 20) as u64),
        server_names: vec!["localhost".into(), "127.0.0.1".into()],
        cert_lifetime: Some(90 * 24 * 3600),
        repair_after: Some(600),
        chunk_grace: Some(3600),
        upload_grace: Some(24 * 3600),
        policy: Policy {
            require_tls_login: Some(policy.require_tls_login),
            require_prot_p: Some(policy.require_prot_p),
            data_tls: Some(policy.data_tls.as_str().to_owned()),
            allow_active: Some(policy.allow_active),
            client_certs: Some("off".into()),
            implicit_client_certs: Some("off".into()),
            ..Policy::default()
        },
        limits: LimitSettings {
            max_connections: Some(limits.max_connections),
            max_per_ip: Some(limits.max_per_ip),
            idle_timeout: Some(limits.idle_timeout.as_secs()),
            data_timeout: Some(limits.data_timeout.as_secs()),
            login_timeout: Some(limits.login_timeout.as_secs()),
            login_failure_delay_ms: Some(limits.login_failure_delay.as_millis() as u64),
        },
        defender: DefenderSettings {
            threshold: Some(defender.threshold),
            observation_seconds: Some(defender.observation.as_secs()),
            ban_seconds: Some(defender.ban_duration.as_secs()),
            login_failure: Some(defender.login_failure),
            protocol_abuse: Some(defender.protocol_abuse),
            flood: Some(defender.flood),
            allow: defender.allow,
        },
        ..ServeSettings::default()
    }
}
