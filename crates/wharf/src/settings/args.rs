//! `wharf serve`'s command line: the settings (`schema`) and what exists
//! only as flags.

use std::path::PathBuf;

use clap::Args;
use wharf_server::data_tls::DataTlsRule;

use super::schema::{Policy, ServeSettings};

/// `wharf serve`: every setting (`ServeSettings`, one field per flag,
/// variable and config key) and what exists only on the command line.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "WHARF_CONFIG")]
    pub config: Option<PathBuf>,
    /// Quick-start account NAME:PASSWORD (repeatable); home is DATA_DIR/home/NAME.
    #[arg(long = "user", env = "WHARF_USER")]
    pub users: Vec<String>,
    #[command(flatten)]
    pub relax: Relaxations,
    /// Print the effective configuration and exit (as `wharf config check`).
    #[arg(long)]
    pub check_config: bool,
    #[command(flatten)]
    pub settings: ServeSettings,
}

/// The command line's spelling of `[policy]` keys that relax a default.
#[derive(Args, Debug, Default)]
pub struct Relaxations {
    /// Relax: allow USER/PASS before AUTH TLS (passwords cross the network in clear).
    #[arg(long, env = "WHARF_ALLOW_PLAIN_LOGIN")]
    pub allow_plain_login: bool,
    /// Relax: allow unencrypted data connections (PROT C).
    #[arg(long, env = "WHARF_ALLOW_PLAIN_DATA")]
    pub allow_plain_data: bool,
    /// Relax: accept data connections that do not resume a TLS session
    /// (the same as --data-tls any).
    #[arg(long, env = "WHARF_NO_REQUIRE_SSL_REUSE")]
    pub no_require_ssl_reuse: bool,
    /// Refuse active mode (PORT/EPRT).
    #[arg(long, env = "WHARF_NO_ACTIVE")]
    pub no_active: bool,
}

impl Relaxations {
    /// Writes the flags given into the keys they stand for.
    pub fn apply(&self, policy: &mut Policy) {
        if self.allow_plain_login {
            policy.require_tls_login = Some(false);
        }
        if self.allow_plain_data {
            policy.require_prot_p = Some(false);
        }
        if self.no_require_ssl_reuse {
            policy.data_tls = Some(DataTlsRule::Any.as_str().to_owned());
        }
        if self.no_active {
            policy.allow_active = Some(false);
        }
    }
}
