//! The effective configuration written back as a config file: what
//! `wharf config check` and `wharf serve --check-config` print. Every value
//! is spelled out, defaults included, so the operator sees what the node
//! would run with; secrets (join token, password hashes) are redacted.

use std::net::SocketAddr;

use anyhow::{Context, Result};

use wharf_node::JoinToken;

use crate::settings::{
    FileAccess, FileConfig, FileDefender, FileLimits, FilePolicy, FileUser, Settings,
};

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

pub fn render(settings: &Settings) -> Result<String> {
    let body = toml::to_string(&as_file(settings))
        .context("cannot write the effective configuration as TOML")?;
    Ok(format!(
        "# Effective configuration of wharf {} (defaults filled in, secrets redacted)\n{body}",
        env!("CARGO_PKG_VERSION")
    ))
}

fn address(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "off".to_owned(), |a| a.to_string())
}

fn as_file(settings: &Settings) -> FileConfig {
    let s = &settings.node;
    let e = &s.engine;
    let l = &e.limits;
    let d = &e.defender;
    let (join_token, join_token_file) = match s.join.as_ref().map(|j| &j.token) {
        Some(JoinToken::Given(_)) => (Some(REDACTED.to_owned()), None),
        Some(JoinToken::File(path)) => (None, Some(path.clone())),
        None => (None, None),
    };
    FileConfig {
        data_dir: Some(s.data_dir.clone()),
        listen: Some(address(e.listen)),
        implicit_listen: Some(address(e.implicit_listen)),
        http_listen: Some(address(s.http_listen.map(|(a, _)| a))),
        acme_listen: Some(address(s.acme_listen)),
        pasv_ports: Some(e.passive_ports.to_string()),
        pasv_address: e.passive_address.map(|a| a.to_string()),
        proxy_from: e.trusted_proxies.networks().to_vec(),
        cert: s.cert.as_ref().map(|(c, _)| c.clone()),
        key: s.cert.as_ref().map(|(_, k)| k.clone()),
        log_format: Some(settings.log_format),
        xferlog: e.xferlog.clone(),
        audit_log: Some(s.audit_log.clone()),
        secrets_key_file: s.secrets_key_file.clone(),
        shutdown_grace: Some(e.shutdown_grace.as_secs()),
        cluster_listen: Some(s.cluster_listen.to_string()),
        cluster_advertise: s.cluster_advertise.clone(),
        cluster_source: s.cluster_source,
        join: s.join.as_ref().map(|j| j.member.clone()),
        join_token,
        join_token_file,
        raft_snapshot_logs: Some(s.raft_snapshot_logs),
        raft_snapshot_min_log_mib: Some(s.raft_snapshot_min_log_mib),
        raft_snapshot_piece_kib: Some(s.raft_snapshot_piece_kib),
        store_wal_mib: Some(s.store_limits.wal_bytes >> 20),
        store_write_buffer_mib: Some((s.store_limits.write_buffer_bytes >> 20) as u64),
        store_block_cache_mib: Some((s.store_limits.block_cache_bytes >> 20) as u64),
        server_names: s.cert_policy.server_names.clone(),
        cert_lifetime: Some(s.cert_policy.lifetime.as_secs()),
        storage: s.storage,
        replication: s.replication,
        repair_after: Some(s.repair_after.as_secs()),
        chunk_grace: Some(s.chunk_grace.as_secs()),
        policy: FilePolicy {
            require_tls_login: Some(e.policy.require_tls_login),
            require_prot_p: Some(e.policy.require_prot_p),
            require_ssl_reuse: None,
            data_tls: Some(e.policy.data_tls.as_str().to_owned()),
            data_tls_any_from: Some(
                e.policy
                    .data_tls_any_from
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ),
            allow_active: Some(e.policy.allow_active),
            client_certs: Some(s.client_certs.explicit.as_str().to_owned()),
            implicit_client_certs: Some(s.client_certs.implicit.as_str().to_owned()),
        },
        limits: FileLimits {
            max_connections: Some(l.max_connections),
            max_per_ip: Some(l.max_per_ip),
            idle_timeout: Some(l.idle_timeout.as_secs()),
            data_timeout: Some(l.data_timeout.as_secs()),
            login_timeout: Some(l.login_timeout.as_secs()),
            login_failure_delay_ms: Some(l.login_failure_delay.as_millis() as u64),
        },
        access: FileAccess {
            allow: e.sources.allow.clone(),
            deny: e.sources.deny.clone(),
        },
        defender: FileDefender {
            threshold: Some(d.threshold),
            observation_seconds: Some(d.observation.as_secs()),
            ban_seconds: Some(d.ban_duration.as_secs()),
            login_failure: Some(d.login_failure),
            protocol_abuse: Some(d.protocol_abuse),
            flood: Some(d.flood),
            allow: d.allow.clone(),
        },
        users: s
            .accounts
            .iter()
            .map(|a| {
                let u = &a.user;
                FileUser {
                    name: u.name.clone(),
                    password_hash: REDACTED.to_owned(),
                    home: u.home.clone(),
                    permissions: u.permissions.names(),
                    allow: u.allow.clone(),
                    deny: u.deny.clone(),
                    commands: u.commands.clone(),
                    login: Some(u.login.as_str().to_owned()),
                    certificates: u.certificates.iter().map(|m| m.to_string()).collect(),
                    max_sessions: u.max_sessions,
                    upload_rate: u.upload_rate,
                    download_rate: u.download_rate,
                    quota_bytes: u.quota.bytes,
                    quota_files: u.quota.files,
                    data_tls: u.data_tls.map(|r| r.as_str().to_owned()),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::Args;

    use super::*;
    use crate::cli::ServeArgs;
    use crate::settings::FileConfig;

    /// The flags whose key differs from their name, or that have none.
    fn key_of(flag: &str) -> Option<String> {
        let key = match flag {
            "config" | "check_config" => return None,
            // Excludes join_token; shown by `a_token_file_is_shown_as_its_path`.
            "join_token_file" => return None,
            "users" => "user",
            "allow_plain_login" => "policy.require_tls_login",
            "allow_plain_data" => "policy.require_prot_p",
            "no_require_ssl_reuse" => "policy.data_tls",
            "data_tls" | "data_tls_any_from" => return Some(format!("policy.{flag}")),
            "no_active" => "policy.allow_active",
            "allow_from" => "access.allow",
            "client_certs" | "implicit_client_certs" => return Some(format!("policy.{flag}")),
            "deny_from" => "access.deny",
            "idle_timeout" | "data_timeout" | "max_connections" | "max_per_ip" => {
                return Some(format!("limits.{flag}"))
            }
            other => other,
        };
        Some(key.to_owned())
    }

    fn every_value_given() -> ServeArgs {
        ServeArgs {
            pasv_address: Some("192.0.2.7".into()),
            cert: Some("/etc/wharf/chain.pem".into()),
            key: Some("/etc/wharf/key.pem".into()),
            cluster_advertise: Some("node1.example:7000".into()),
            cluster_source: Some("10.0.0.1".parse().unwrap()),
            join: Some("node0.example:7000".into()),
            join_token: Some("wharf1.very-secret-join.ABCD".into()),
            storage: Some(crate::cli::StorageMode::Cluster),
            replication: Some(2),
            users: vec!["quick:very-secret-password".into()],
            proxy_from: vec!["10.0.0.5/32".parse().unwrap()],
            secrets_key_file: Some("/etc/wharf/secrets.key".into()),
            ..ServeArgs::default()
        }
    }

    #[test]
    fn every_serve_flag_has_a_key_and_secrets_are_redacted() {
        let text = render(&Settings::from_args(&every_value_given()).unwrap()).unwrap();
        assert!(!text.contains("very-secret"), "{text}");
        assert_eq!(text.matches(REDACTED).count(), 2, "token and hash: {text}");

        let table: toml::Table = text.parse().unwrap();
        let mut keys = BTreeSet::new();
        for (key, value) in &table {
            keys.insert(key.clone());
            if let toml::Value::Table(inner) = value {
                keys.extend(inner.keys().map(|k| format!("{key}.{k}")));
            }
        }
        let command = ServeArgs::augment_args(clap::Command::new("serve"));
        let missing: Vec<String> = command
            .get_arguments()
            .filter_map(|a| key_of(a.get_id().as_str()))
            .filter(|key| !keys.contains(key))
            .collect();
        assert!(
            missing.is_empty(),
            "flags without a key: {missing:?}\n{text}"
        );
        // What is printed reads back as a config file.
        toml::from_str::<FileConfig>(&text).unwrap();
    }

    #[test]
    fn a_token_file_is_shown_as_its_path() {
        let args = ServeArgs {
            join: Some("node0.example:7000".into()),
            join_token_file: Some("/run/secrets/join".into()),
            ..ServeArgs::default()
        };
        let text = render(&Settings::from_args(&args).unwrap()).unwrap();
        assert!(
            text.contains("join_token_file = \"/run/secrets/join\""),
            "{text}"
        );
        assert!(!text.contains(REDACTED), "{text}");
    }

    #[test]
    fn join_without_a_token_is_refused() {
        let args = ServeArgs {
            join: Some("node0.example:7000".into()),
            ..ServeArgs::default()
        };
        let error = Settings::from_args(&args).err().unwrap().to_string();
        assert!(error.contains("--join-token"), "{error}");
    }
}
