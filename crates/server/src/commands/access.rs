//! Login and security: USER PASS REIN HOST AUTH PBSZ PROT.

use wharf_ftp::command::{AuthMechanism, ProtectionLevel};
use wharf_ftp::{Reply, VirtualPath};

use crate::accounts::{AuthError, Credentials, User};
use crate::defender::Offence;
use crate::state::{
    Connection, DataChannel, LoggedIn, Login, Navigation, Outcome, TransferSettings,
};
use crate::Shared;

pub async fn user(
    shared: &Shared,
    conn: &Connection,
    login: &mut Login,
    nav: &mut Navigation,
    name: String,
) -> Outcome {
    if login.account.is_some() {
        return Reply::new(530, "Already logged in; send REIN to change user.").into();
    }
    if shared.config.policy.require_tls_login && !conn.control.is_tls() {
        return Reply::new(
            530,
            "Non-anonymous sessions must use encryption: send AUTH TLS before USER.",
        )
        .into();
    }
    // A trusted client certificate mapped to a certificate-only user logs it
    // in here (RFC 4217's 232); anything else asks for the password as usual,
    // so the reply never tells which names exist or how they log in.
    if let Some(identity) = conn.control.client_identity() {
        let ip = conn.client_ip();
        let credentials = Credentials {
            password: None,
            certificate: Some(&identity),
        };
        if let Ok(user) = shared.accounts.authenticate(&name, credentials, ip).await {
            return logged_in(
                shared,
                conn,
                login,
                nav,
                user,
                232,
                "authorized by its certificate",
            )
            .await;
        }
    }
    let reply = Reply::new(331, format!("Password required for {name}."));
    login.pending_user = Some(name);
    reply.into()
}

pub async fn pass(
    shared: &Shared,
    conn: &Connection,
    login: &mut Login,
    nav: &mut Navigation,
    password: String,
) -> Outcome {
    let Some(name) = login.pending_user.take() else {
        return Reply::new(503, "Send USER first.").into();
    };
    let ip = conn.client_ip();
    let identity = conn.control.client_identity();
    let credentials = Credentials {
        password: Some(&password),
        certificate: identity.as_ref(),
    };
    match shared.accounts.authenticate(&name, credentials, ip).await {
        Ok(user) => logged_in(shared, conn, login, nav, user, 230, "logged in").await,
        Err(e) => {
            match &e {
                AuthError::BadCredentials => {
                    tracing::info!(target: "audit", event = "login", user = %name, %ip,
                        outcome = "failed", "FAIL LOGIN: login incorrect")
                }
                other => tracing::info!(target: "audit", event = "login", user = %name, %ip,
                    outcome = "refused", "FAIL LOGIN: {other}"),
            }
            shared.metrics.login(false);
            let banned = shared.offence(ip, Offence::LoginFailed);
            // Slows down guessing on this connection; other sessions carry on.
            tokio::time::sleep(shared.config.limits.login_failure_delay).await;
            if banned {
                return Outcome::Close(Reply::new(
                    421,
                    "Too many failed logins from your address; try again later.",
                ));
            }
            Reply::new(530, "Login incorrect.").into()
        }
    }
}

/// The end of a successful authentication: a session slot, the home, the
/// audit line, and the reply `code`.
async fn logged_in(
    shared: &Shared,
    conn: &Connection,
    login: &mut Login,
    nav: &mut Navigation,
    user: User,
    code: u16,
    how: &str,
) -> Outcome {
    let ip = conn.client_ip();
    let Some(slot) = shared.guard.user_session(&user.name, user.max_sessions) else {
        tracing::info!(user = %user.name, "FAIL LOGIN: too many sessions for this user");
        return Reply::new(530, "Too many sessions for this user; try again later.").into();
    };
    let fs = match shared.storage.open_home(&user, &conn.opener()).await {
        Ok(fs) => fs,
        Err(e) => {
            tracing::error!(user = %user.name, home = %user.home.display(),
                "cannot open the user's home directory: {e}");
            return Reply::new(530, "Login failed: home directory unavailable.").into();
        }
    };
    shared.defender.forgive(ip);
    tracing::Span::current().record("user", user.name.as_str());
    tracing::info!(target: "audit", event = "login", user = %user.name, %ip, outcome = "ok",
        method = user.login.as_str(), "OK LOGIN");
    shared.metrics.login(true);
    let reply = Reply::new(code, format!("User {} {how}.", user.name));
    shared.logged_in.logged_in(&conn.binding, &user.name);
    login.account = Some(LoggedIn::new(user, fs, slot));
    nav.cwd = VirtualPath::root();
    reply.into()
}

/// REIN forgets the login, the place in the tree, the data connection and
/// REST and TYPE; HOST, PROT and the OPTS settings stay.
pub fn rein(
    login: &mut Login,
    nav: &mut Navigation,
    settings: &mut TransferSettings,
    data: &mut DataChannel,
) -> Reply {
    // The TLS layer stays: RFC 4217 lets the server keep protection, and
    // dropping to plaintext mid-session is what CCC is refused for.
    login.account = None;
    login.pending_user = None;
    nav.cwd = VirtualPath::root();
    settings.rest = 0;
    nav.rename_from = None;
    data.setup = None;
    data.epsv_all = false;
    settings.transfer_type = wharf_ftp::command::TransferType::Image;
    Reply::new(220, "Session reinitialised; log in again.")
}

pub fn host(login: &mut Login, name: String) -> Reply {
    if login.account.is_some() || login.pending_user.is_some() {
        return Reply::new(503, "HOST must come before USER.");
    }
    login.host = Some(name);
    Reply::new(220, "Host accepted.")
}

pub fn auth(
    conn: &Connection,
    settings: &mut TransferSettings,
    mechanism: AuthMechanism,
) -> Outcome {
    if conn.control.is_tls() {
        return Reply::new(503, "The control connection is already protected.").into();
    }
    if mechanism == AuthMechanism::Ssl {
        // Legacy AUTH SSL clients expect protected data without PROT.
        settings.pbsz_done = true;
        settings.prot = ProtectionLevel::Private;
    }
    Outcome::Upgrade(Reply::new(
        234,
        "AUTH accepted; proceed with TLS negotiation.",
    ))
}

pub fn pbsz(conn: &Connection, settings: &mut TransferSettings, _size: u64) -> Reply {
    if !conn.control.is_tls() {
        return Reply::new(
            503,
            "PBSZ needs a protected control connection: send AUTH TLS first.",
        );
    }
    settings.pbsz_done = true;
    Reply::new(200, "PBSZ=0")
}

pub fn prot(conn: &Connection, settings: &mut TransferSettings, level: ProtectionLevel) -> Reply {
    if !conn.control.is_tls() {
        return Reply::new(
            503,
            "PROT needs a protected control connection: send AUTH TLS first.",
        );
    }
    if !settings.pbsz_done {
        return Reply::new(503, "Send PBSZ 0 before PROT.");
    }
    match level {
        ProtectionLevel::Private => {
            settings.prot = level;
            Reply::new(200, "Protection level set to Private.")
        }
        ProtectionLevel::Clear => {
            settings.prot = level;
            Reply::new(200, "Protection level set to Clear.")
        }
        ProtectionLevel::Safe | ProtectionLevel::Confidential => {
            Reply::new(536, "Only PROT C and PROT P are supported.")
        }
    }
}
