//! Login and security: USER PASS REIN HOST AUTH PBSZ PROT.

use wharf_ftp::command::{AuthMechanism, ProtectionLevel};
use wharf_ftp::{Reply, VirtualPath};

use crate::accounts::AuthError;
use crate::defender::Offence;
use crate::session::{LoggedIn, Outcome, Session};

pub fn user(s: &mut Session, name: String) -> Reply {
    if s.login.is_some() {
        return Reply::new(530, "Already logged in; send REIN to change user.");
    }
    if s.shared.config.policy.require_tls_login && !s.control.is_tls() {
        return Reply::new(
            530,
            "Non-anonymous sessions must use encryption: send AUTH TLS before USER.",
        );
    }
    let reply = Reply::new(331, format!("Password required for {name}."));
    s.pending_user = Some(name);
    reply
}

pub async fn pass(s: &mut Session, password: String) -> Outcome {
    let Some(name) = s.pending_user.take() else {
        return Reply::new(503, "Send USER first.").into();
    };
    let ip = crate::session::data::canonical(s.peer.ip());
    let shared = s.shared.clone();
    match shared.accounts.authenticate(&name, &password, ip).await {
        Ok(user) => {
            let Some(slot) = shared.guard.user_session(&user.name, user.max_sessions) else {
                tracing::info!(user = %user.name, "FAIL LOGIN: too many sessions for this user");
                return Reply::new(530, "Too many sessions for this user; try again later.").into();
            };
            let fs = match shared.storage.open_home(&user).await {
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
                "OK LOGIN");
            shared.metrics.login(true);
            let reply = Reply::new(230, format!("User {} logged in.", user.name));
            s.login = Some(LoggedIn::new(user, fs, slot));
            s.cwd = VirtualPath::root();
            reply.into()
        }
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

pub fn rein(s: &mut Session) -> Reply {
    // The TLS layer stays: RFC 4217 lets the server keep protection, and
    // dropping to plaintext mid-session is what CCC is refused for.
    s.login = None;
    s.pending_user = None;
    s.cwd = VirtualPath::root();
    s.rest = 0;
    s.rename_from = None;
    s.data = None;
    s.epsv_all = false;
    s.transfer_type = wharf_ftp::command::TransferType::Image;
    Reply::new(220, "Session reinitialised; log in again.")
}

pub fn host(s: &mut Session, name: String) -> Reply {
    if s.login.is_some() || s.pending_user.is_some() {
        return Reply::new(503, "HOST must come before USER.");
    }
    s.host = Some(name);
    Reply::new(220, "Host accepted.")
}

pub fn auth(s: &mut Session, mechanism: AuthMechanism) -> Outcome {
    if s.control.is_tls() {
        return Reply::new(503, "The control connection is already protected.").into();
    }
    if mechanism == AuthMechanism::Ssl {
        // Legacy AUTH SSL clients expect protected data without PROT.
        s.pbsz_done = true;
        s.prot = ProtectionLevel::Private;
    }
    Outcome::Upgrade(Reply::new(
        234,
        "AUTH accepted; proceed with TLS negotiation.",
    ))
}

pub fn pbsz(s: &mut Session, _size: u64) -> Reply {
    if !s.control.is_tls() {
        return Reply::new(
            503,
            "PBSZ needs a protected control connection: send AUTH TLS first.",
        );
    }
    s.pbsz_done = true;
    Reply::new(200, "PBSZ=0")
}

pub fn prot(s: &mut Session, level: ProtectionLevel) -> Reply {
    if !s.control.is_tls() {
        return Reply::new(
            503,
            "PROT needs a protected control connection: send AUTH TLS first.",
        );
    }
    if !s.pbsz_done {
        return Reply::new(503, "Send PBSZ 0 before PROT.");
    }
    match level {
        ProtectionLevel::Private => {
            s.prot = level;
            Reply::new(200, "Protection level set to Private.")
        }
        ProtectionLevel::Clear => {
            s.prot = level;
            Reply::new(200, "Protection level set to Clear.")
        }
        ProtectionLevel::Safe | ProtectionLevel::Confidential => {
            Reply::new(536, "Only PROT C and PROT P are supported.")
        }
    }
}
