//! Accounts a node imports when it creates the cluster: `[[user]]` tables of
//! the config file and `--user NAME:PASSWORD` quick-start accounts.

use std::path::PathBuf;

use anyhow::{bail, Result};
use wharf_server::accounts::{
    command_list, hash_password, Account, LoginMethod, Permissions, Quota, User,
};
use wharf_server::data_tls::DataTlsRule;
use wharf_tls::CertMatch;

use super::schema::FileUser;

pub fn file_account(u: &FileUser) -> Result<Account> {
    if argon2::PasswordHash::new(&u.password_hash).is_err() {
        bail!(
            "user {:?}: password_hash is not a PHC string; create one with `wharf hash-password`",
            u.name
        );
    }
    let invalid = |e: String| anyhow::anyhow!("user {:?}: {e}", u.name);
    Ok(Account {
        user: User {
            name: u.name.clone(),
            home: u.home.clone(),
            permissions: Permissions::from_names(&u.permissions).map_err(invalid)?,
            allow: u.allow.clone(),
            deny: u.deny.clone(),
            commands: command_list(&u.commands).map_err(invalid)?,
            login: LoginMethod::parse(u.login.as_deref().unwrap_or("password")).map_err(invalid)?,
            certificates: u
                .certificates
                .iter()
                .map(|rule| CertMatch::parse(rule))
                .collect::<Result<_, _>>()
                .map_err(|e| invalid(e.to_string()))?,
            max_sessions: u.max_sessions,
            upload_rate: u.upload_rate,
            download_rate: u.download_rate,
            quota: Quota {
                bytes: u.quota_bytes,
                files: u.quota_files,
            },
            data_tls: u
                .data_tls
                .as_deref()
                .map(DataTlsRule::parse)
                .transpose()
                .map_err(invalid)?,
        },
        password_hash: u.password_hash.clone(),
    })
}

/// `--user NAME:PASSWORD`: every permission, home `home/NAME`.
pub fn quick_start_account(spec: &str) -> Result<Account> {
    let Some((name, password)) = spec.split_once(':') else {
        bail!("--user {spec:?} must be NAME:PASSWORD");
    };
    if name.is_empty() || name.contains(['/', '\\', '\0']) || name == "." || name == ".." {
        bail!("--user {name:?}: not a usable user name");
    }
    Ok(Account {
        user: User::unrestricted(name, PathBuf::from("home").join(name)),
        password_hash: hash_password(password)
            .map_err(|e| anyhow::anyhow!("cannot hash the password of {name}: {e}"))?,
    })
}
