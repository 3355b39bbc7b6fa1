//! Accounts a node imports when it creates the cluster: `[[user]]` tables of
//! the config file and `--user NAME:PASSWORD` quick-start accounts, checked
//! as `wharf user add` checks them (`store_accounts::checked_record`).

use anyhow::{anyhow, bail, Result};
use wharf_node::store_accounts::{checked_record, unrestricted_record};
use wharf_server::accounts::hash_password;
use wharf_store::records::UserRecord;

use super::schema::FileUser;

pub fn file_account(u: &FileUser) -> Result<UserRecord> {
    if argon2::PasswordHash::new(&u.password_hash).is_err() {
        bail!(
            "user {:?}: password_hash is not a PHC string; create one with `wharf hash-password`",
            u.name
        );
    }
    checked_record(UserRecord {
        name: u.name.clone(),
        password_hash: u.password_hash.clone(),
        home: u.home.display().to_string(),
        permissions: u.permissions.clone(),
        allow: u.allow.iter().map(ToString::to_string).collect(),
        deny: u.deny.iter().map(ToString::to_string).collect(),
        commands: u.commands.clone(),
        login: u.login.clone().unwrap_or_default(),
        certificates: u.certificates.clone(),
        max_sessions: u.max_sessions as u64,
        upload_rate: u.upload_rate,
        download_rate: u.download_rate,
        enabled: true,
        quota_bytes: u.quota_bytes,
        quota_files: u.quota_files,
        data_tls: u.data_tls.clone().unwrap_or_default(),
    })
    .map_err(|e| anyhow!("user {:?}: {e}", u.name))
}

/// `--user NAME:PASSWORD`: every permission, home `home/NAME`.
pub fn quick_start_account(spec: &str) -> Result<UserRecord> {
    let Some((name, password)) = spec.split_once(':') else {
        bail!("--user {spec:?} must be NAME:PASSWORD");
    };
    if name.is_empty() || name.contains(['/', '\\', '\0']) || name == "." || name == ".." {
        bail!("--user {name:?}: not a usable user name");
    }
    let hash =
        hash_password(password).map_err(|e| anyhow!("cannot hash the password of {name}: {e}"))?;
    Ok(unrestricted_record(name, hash))
}
