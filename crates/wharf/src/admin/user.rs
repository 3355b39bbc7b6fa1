//! `wharf user add|modify|passwd|remove|list`: accounts in the replicated
//! store (any node accepts changes).

use anyhow::{Context, Result};
use wharf_server::accounts::{hash_password, LoginMethod, Permissions};
use wharf_server::data_tls::DataTlsRule;

use crate::admin::{connect, expect_done};
use crate::cli::UserCommand;
use crate::read_password;

/// A quota as `wharf user list` shows it.
/// `\tKEY=a,b` for a non-empty list, nothing otherwise.
fn listed(key: &str, values: &[String]) -> String {
    if values.is_empty() {
        String::new()
    } else {
        format!("\t{key}={}", values.join(","))
    }
}

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
            if let Some(rule) = &data_tls {
                DataTlsRule::parse(rule).map_err(anyhow::Error::msg)?;
            }
            for (flag, net) in allow
                .iter()
                .map(|n| ("--allow", n))
                .chain(deny.iter().map(|n| ("--deny", n)))
            {
                net.parse::<ipnet::IpNet>()
                    .with_context(|| format!("{flag} {net:?} is not a CIDR network"))?;
            }
            let commands =
                wharf_server::accounts::command_list(&commands).map_err(anyhow::Error::msg)?;
            let login = LoginMethod::parse(&login).map_err(anyhow::Error::msg)?;
            for rule in &cert_match {
                wharf_tls::CertMatch::parse(rule).map_err(anyhow::Error::msg)?;
            }
            // A certificate-only account has no usable password: a random one,
            // never shown, fills the hash.
            let password = if login == LoginMethod::Certificate && !password_stdin {
                format!("{:032x}", rand::random::<u128>())
            } else {
                read_password(password_stdin)?
            };
            let hash = hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            let permissions = if read_only {
                vec!["list".to_owned(), "read".to_owned()]
            } else {
                Permissions::all().names()
            };
            let user = wharf_store::records::UserRecord {
                home: home.unwrap_or_else(|| format!("home/{name}")),
                name: name.clone(),
                password_hash: hash,
                permissions,
                allow,
                deny,
                commands,
                login: login.as_str().to_owned(),
                certificates: cert_match,
                max_sessions: 0,
                upload_rate: 0,
                download_rate: 0,
                enabled: true,
                quota_bytes,
                quota_files,
                data_tls: data_tls.unwrap_or_default(),
            };
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
                    listed("deny", &u.deny)
                        + &listed("commands", &u.commands)
                        + &listed(
                            "login",
                            &[u.login]
                                .into_iter()
                                .filter(|l| !l.is_empty() && l != "password")
                                .collect::<Vec<_>>()
                        )
                        + &listed("cert_match", &u.certificates)
                        + &listed(
                            "data_tls",
                            &[u.data_tls]
                                .into_iter()
                                .filter(|r| !r.is_empty())
                                .collect::<Vec<_>>()
                        ),
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
