//! The effective configuration written back as a config file: what
//! `wharf config check` and `wharf serve --check-config` print. Every value
//! is spelled out, defaults included, so the operator sees what the node
//! would run with; secrets (join token, password hashes) are redacted.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::schema::{FileUser, ServeSettings};
use super::Settings;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

pub fn render(settings: &Settings) -> Result<String> {
    let body = toml::to_string(&redacted(settings))
        .context("cannot write the effective configuration as TOML")?;
    Ok(format!(
        "# Effective configuration of wharf {} (defaults filled in, secrets redacted)\n{body}",
        env!("CARGO_PKG_VERSION")
    ))
}

/// The effective settings with secrets replaced and the quick-start
/// accounts shown as the `[[user]]` tables they amount to.
fn redacted(settings: &Settings) -> ServeSettings {
    let mut shown = settings.effective.clone();
    if shown.join_token.is_some() {
        shown.join_token = Some(REDACTED.to_owned());
    }
    for user in &mut shown.users {
        user.password_hash = REDACTED.to_owned();
    }
    for spec in &settings.quick_users {
        let name = spec.split_once(':').map_or(spec.as_str(), |(name, _)| name);
        shown.users.push(FileUser {
            name: name.to_owned(),
            password_hash: REDACTED.to_owned(),
            home: PathBuf::from("home").join(name),
            permissions: vec!["all".to_owned()],
            ..FileUser::default()
        });
    }
    shown
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::Args;

    use super::*;
    use crate::settings::args::ServeArgs;

    /// The config key each flag sets (clap names an argument after its
    /// field), or none for what only the command line has.
    fn key_of(flag: &str) -> Option<String> {
        let key = match flag {
            "config" | "check_config" => return None,
            // Excludes join_token; shown by `a_token_file_is_shown_as_its_path`.
            "join_token_file" => return None,
            "users" => "user",
            "allow_plain_login" => "policy.require_tls_login",
            "allow_plain_data" => "policy.require_prot_p",
            "no_require_ssl_reuse" => "policy.data_tls",
            "no_active" => "policy.allow_active",
            "data_tls" | "data_tls_any_from" | "client_certs" | "implicit_client_certs" => {
                return Some(format!("policy.{flag}"))
            }
            "allow" | "deny" => return Some(format!("access.{flag}")),
            s3 if s3.starts_with("s3_") => return Some(format!("s3.{}", &s3[3..])),
            "idle_timeout"
            | "data_timeout"
            | "max_connections"
            | "max_per_ip"
            | "login_timeout"
            | "login_failure_delay_ms" => return Some(format!("limits.{flag}")),
            other => other,
        };
        Some(key.to_owned())
    }

    fn every_value_given() -> ServeArgs {
        ServeArgs {
            users: vec!["quick:very-secret-password".into()],
            settings: ServeSettings {
                pasv_address: Some("192.0.2.7".into()),
                cert: Some("/etc/wharf/chain.pem".into()),
                key: Some("/etc/wharf/key.pem".into()),
                cluster_advertise: Some("node1.example:7000".into()),
                cluster_source: Some("10.0.0.1".parse().unwrap()),
                join: Some("node0.example:7000".into()),
                join_token: Some("wharf1.very-secret-join.ABCD".into()),
                storage: Some(wharf_node::StorageMode::Cluster),
                replication: Some(2),
                inline_max: Some(32768),
                proxy_from: vec!["10.0.0.5/32".parse().unwrap()],
                secrets_key_file: Some("/etc/wharf/secrets.key".into()),
                s3: crate::settings::schema::S3Settings {
                    endpoint: Some("http://127.0.0.1:7480".into()),
                    bucket: Some("files".into()),
                    prefix: Some("wharf".into()),
                    region: Some("eu-west-1".into()),
                    path_style: Some(true),
                    credentials_file: Some("/etc/wharf/s3-credentials".into()),
                    ca_file: Some("/etc/wharf/s3-ca.pem".into()),
                    part_size_mib: Some(16),
                    copy_max_mib: Some(1024),
                },
                ..ServeSettings::default()
            },
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
        toml::from_str::<ServeSettings>(&text).unwrap();
    }

    #[test]
    fn a_token_file_is_shown_as_its_path() {
        let args = ServeArgs {
            settings: ServeSettings {
                join: Some("node0.example:7000".into()),
                join_token_file: Some("/run/secrets/join".into()),
                ..ServeSettings::default()
            },
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
            settings: ServeSettings {
                join: Some("node0.example:7000".into()),
                ..ServeSettings::default()
            },
            ..ServeArgs::default()
        };
        let error = Settings::from_args(&args).err().unwrap().to_string();
        assert!(error.contains("--join-token"), "{error}");
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wharf.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:2200\"\nimplicit_listen = \"off\"\n[limits]\nmax_per_ip = 5\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file),
            settings: ServeSettings {
                listen: Some("127.0.0.1:2300".into()),
                ..ServeSettings::default()
            },
            ..ServeArgs::default()
        };
        let settings = Settings::from_args(&args).unwrap();
        let engine = &settings.node.engine;
        assert_eq!(engine.listen, Some("127.0.0.1:2300".parse().unwrap()));
        assert_eq!(engine.implicit_listen, None);
        assert_eq!(engine.limits.max_per_ip, 5);
        assert_eq!(
            engine.limits.max_connections,
            wharf_server::Limits::default().max_connections
        );
        assert_eq!(
            settings.node.audit_log,
            std::path::Path::new("wharf-data/audit.log")
        );
    }

    #[test]
    fn an_unknown_key_is_refused_naming_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wharf.toml");
        std::fs::write(&file, "[limits]\nmax_per_host = 5\n").unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            ..ServeArgs::default()
        };
        let error = format!("{:#}", Settings::from_args(&args).err().unwrap());
        assert!(error.contains(&file.display().to_string()), "{error}");
        assert!(error.contains("max_per_host"), "{error}");
    }
}
