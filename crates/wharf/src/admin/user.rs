//! `wharf user add|modify|passwd|remove|list`: accounts in the replicated
//! store (any node accepts changes).

use anyhow::Result;
use wharf_node::store_accounts::checked_record;
use wharf_server::accounts::hash_password;
use wharf_server::data_tls::DataTlsRule;
use wharf_store::records::UserRecord;

use crate::admin::{connect, expect_done};
use crate::cli::UserCommand;
use crate::read_password;

/// `\tKEY=VALUE` as `wharf user list` shows a rule, nothing when the rule
/// is empty or its default.
fn shown(key: &str, value: &str, default: &str) -> String {
    if value.is_empty() || value == default {
        String::new()
    } else {
        format!("\t{key}={value}")
    }
}

/// A quota as `wharf user list` shows it.
fn limit(quota: u64) -> String {
    if quota == 0 {
        "unlimited".to_owned()
    } else {
        quota.to_string()
    }
}

pub async fn run(command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Add {
            name,
            password_stdin,
            home,
            read_only,
            allow,
            deny,
            commands,
            login,
            cert_match,
            quota_bytes,
            quota_files,
            data_tls,
            target,
        } => {
            let mut user = checked_record(UserRecord {
                home: home.unwrap_or_else(|| format!("home/{name}")),
                name: name.clone(),
                permissions: if read_only {
                    &["list", "read"][..]
                } else {
                    &["all"]
                }
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
                allow,
                deny,
                commands,
                login,
                certificates: cert_match,
                enabled: true,
                quota_bytes,
                quota_files,
                data_tls: data_tls.unwrap_or_default(),
                ..UserRecord::default()
            })
            .map_err(anyhow::Error::msg)?;
            // A certificate-only account has no usable password: a random one,
            // never shown, fills the hash.
            let password = if user.login == "certificate" && !password_stdin {
                format!("{:032x}", rand::random::<u128>())
            } else {
                read_password(password_stdin)?
            };
            user.password_hash = hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            let admin = connect(&target).await?;
            expect_done(
                admin
                    .write(wharf_store::Command::PutUser {
                        user,
                        create_only: true,
                    })
                    .await?,
                &format!("user {name}"),
            )?;
            println!("added user {name}");
        }
        UserCommand::List { target } => {
            for u in connect(&target).await?.users().await? {
                println!(
                    "{}\thome={}\tpermissions={}\tallow={}\tused={}B/{}\tfiles={}/{}{}{}",
                    u.name,
                    u.home,
                    u.permissions.join(","),
                    if u.allow.is_empty() {
                        "any".to_owned()
                    } else {
                        u.allow.join(",")
                    },
                    u.used_bytes,
                    limit(u.quota_bytes),
                    u.used_files,
                    limit(u.quota_files),
                    shown("deny", &u.deny.join(","), "")
                        + &shown("commands", &u.commands.join(","), "")
                        + &shown("login", &u.login, "password")
                        + &shown("cert_match", &u.certificates.join(","), "")
                        + &shown("data_tls", &u.data_tls, ""),
                    if u.enabled { "" } else { "\tdisabled" }
                );
            }
        }
        UserCommand::Passwd {
            name,
            password_stdin,
            target,
        } => {
            let password = read_password(password_stdin)?;
            let password_hash = hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            let admin = connect(&target).await?;
            expect_done(
                admin
                    .write(wharf_store::Command::SetPassword {
                        name: name.clone(),
                        password_hash,
                    })
                    .await?,
                &format!("user {name}"),
            )?;
            println!("password of {name} changed");
        }
        UserCommand::Modify {
            name,
            data_tls,
            target,
        } => {
            let rule = match data_tls.as_str() {
                "default" => String::new(),
                rule => DataTlsRule::parse(rule)
                    .map_err(anyhow::Error::msg)?
                    .as_str()
                    .to_owned(),
            };
            let admin = connect(&target).await?;
            expect_done(
                admin
                    .write(wharf_store::Command::SetDataTls {
                        name: name.clone(),
                        rule,
                    })
                    .await?,
                &format!("user {name}"),
            )?;
            println!("user {name}: data connections must prove {data_tls}");
        }
        UserCommand::Remove { name, target } => {
            let admin = connect(&target).await?;
            expect_done(
                admin
                    .write(wharf_store::Command::RemoveUser { name: name.clone() })
                    .await?,
                &format!("user {name}"),
            )?;
            println!("removed user {name}");
        }
    }
    Ok(())
}
