//! Applying a parsed command to a session, one module per area of the
//! protocol. Each function checks its own preconditions and answers with the
//! reply an FTP client expects.

mod access;
mod datachannel;
mod files;
mod info;
mod navigate;
mod transfer;

use wharf_ftp::{Command, Reply, VirtualPath};

use crate::accounts::Permissions;
use crate::replies;
use crate::session::{LoggedIn, Outcome, Session};

pub async fn apply(s: &mut Session, command: Command) -> Outcome {
    use Command::*;
    match &s.login {
        None if !allowed_before_login(&command) => return replies::not_logged_in().into(),
        Some(l) if !l.user.commands.is_empty() && !always_allowed(&command) => {
            let verb = command.verb();
            if !l.user.commands.iter().any(|c| c == verb) {
                tracing::info!(verb, "command refused by the user's command list");
                return Reply::new(
                    550,
                    format!("Permission denied: {verb} is not allowed for this account."),
                )
                .into();
            }
        }
        _ => {}
    }
    match command {
        User(name) => access::user(s, name).await,
        Pass(password) => access::pass(s, password).await,
        Acct(_) => Reply::new(
            502,
            "ACCT not implemented: accounts need only USER and PASS.",
        )
        .into(),
        Rein => access::rein(s).into(),
        Host(name) => access::host(s, name).into(),
        Auth(mechanism) => access::auth(s, mechanism),
        Pbsz(size) => access::pbsz(s, size).into(),
        Prot(level) => access::prot(s, level).into(),
        Ccc => Reply::new(534, "CCC refused: the control connection stays encrypted.").into(),
        Quit => Outcome::Close(Reply::new(221, "Goodbye.")),

        Cwd(path) => navigate::cwd(s, &path).await.into(),
        Cdup => navigate::cwd(s, "..").await.into(),
        Pwd => navigate::pwd(s).into(),

        Port(addr) | Eprt(addr) => datachannel::active(s, addr).into(),
        Pasv => datachannel::pasv(s).await.into(),
        Epsv(arg) => datachannel::epsv(s, arg).await.into(),
        Type(t) => datachannel::transfer_type(s, t).into(),
        Stru(c) => datachannel::stru(c).into(),
        Mode(c) => datachannel::mode(c).into(),

        Rest(offset) => transfer::rest(s, offset).into(),
        Allo => Reply::new(202, "No storage allocation necessary.").into(),
        Retr(path) => transfer::retr(s, &path).await,
        Stor(path) => transfer::stor(s, &path, false).await,
        Appe(path) => transfer::stor(s, &path, true).await,
        Stou(hint) => transfer::stou(s, hint.as_deref()).await,
        List(path) => transfer::listing(s, path.as_deref(), transfer::ListingKind::List).await,
        Nlst(path) => transfer::listing(s, path.as_deref(), transfer::ListingKind::Nlst).await,
        Mlsd(path) => transfer::listing(s, path.as_deref(), transfer::ListingKind::Mlsd).await,
        Abor => Reply::new(226, "No transfer to abort.").into(),

        Dele(path) => files::dele(s, &path).await.into(),
        Rmd(path) => files::rmd(s, &path).await.into(),
        Mkd(path) => files::mkd(s, &path).await.into(),
        Rnfr(path) => files::rnfr(s, &path).await.into(),
        Rnto(path) => files::rnto(s, &path).await.into(),
        Size(path) => files::size(s, &path).await.into(),
        Mdtm(path) => files::mdtm(s, &path).await.into(),
        Mfmt { time, path } => files::mfmt(s, time, &path).await.into(),
        Mlst(path) => files::mlst(s, path.as_deref()).await.into(),
        Hash(path) => files::hash(s, &path).await.into(),

        Stat(None) => info::status(s).into(),
        Stat(Some(path)) => info::stat_path(s, &path).await.into(),
        Syst => Reply::new(215, "UNIX Type: L8").into(),
        Help(topic) => info::help(topic.as_deref()).into(),
        Noop => Reply::new(200, "NOOP ok.").into(),
        Feat => info::feat(s).into(),
        Opts(opts) => info::opts(s, opts).into(),
    }
}

fn allowed_before_login(c: &Command) -> bool {
    use Command::*;
    matches!(
        c,
        User(_)
            | Pass(_)
            | Acct(_)
            | Rein
            | Host(_)
            | Auth(_)
            | Pbsz(_)
            | Prot(_)
            | Ccc
            | Quit
            | Syst
            | Help(_)
            | Noop
            | Feat
            | Opts(_)
            | Stat(None)
    )
}

/// Commands a user with a command allow-list may always send: the login and
/// protection handshake, session settings and opening a data connection —
/// without them no partner restricted to `STOR` could upload anything.
pub fn always_allowed(c: &Command) -> bool {
    use Command::*;
    allowed_before_login(c)
        || matches!(
            c,
            Pwd | Type(_) | Stru(_) | Mode(_) | Pasv | Epsv(_) | Port(_) | Eprt(_) | Abor | Allo
        )
}

/// The logged-in user if they hold the permission `which` selects.
fn permitted(s: &Session, which: fn(&Permissions) -> bool) -> Result<&LoggedIn, Reply> {
    match &s.login {
        None => Err(replies::not_logged_in()),
        Some(l) if which(&l.user.permissions) => Ok(l),
        Some(_) => Err(replies::permission_denied()),
    }
}

/// Resolves a client path against the working directory.
fn resolve(s: &Session, arg: &str) -> Result<VirtualPath, Reply> {
    s.cwd.resolve(arg).map_err(|e| replies::path_error(&e))
}
