//! Applying a parsed command to a session, one module per area of the
//! protocol. Each function checks its own preconditions and answers with the
//! reply an FTP client expects.

mod access;
mod datachannel;
mod files;
mod info;
mod navigate;
mod transfer;

use std::sync::Arc;

use wharf_ftp::{Command, Reply, VirtualPath};

use crate::accounts::Permissions;
use crate::fs::FileSystem;
use crate::replies;
use crate::state::{LoggedIn, Navigation, Outcome, SessionState};
use crate::Shared;

/// Applies `command`, lending each command function only the groups of the
/// session's state it reads or changes.
pub async fn apply(shared: &Shared, s: &mut SessionState, command: Command) -> Outcome {
    match &s.login.account {
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
    dispatch(shared, s, command)
        .await
        .unwrap_or_else(Outcome::from)
}

/// The commands themselves. `login?` is the logged-in user: the check above
/// already refused every command that needs one when nobody is logged in.
async fn dispatch(
    shared: &Shared,
    s: &mut SessionState,
    command: Command,
) -> Result<Outcome, Reply> {
    use Command::*;
    let login = s.login.account.as_ref().ok_or_else(replies::not_logged_in);
    let settings = &mut s.settings;
    let nav = &mut s.nav;
    let data = &mut s.data;
    Ok(match command {
        User(name) => access::user(shared, &s.conn, &mut s.login, nav, name).await,
        Pass(password) => access::pass(shared, &s.conn, &mut s.login, nav, password).await,
        Acct(_) => Reply::new(
            502,
            "ACCT not implemented: accounts need only USER and PASS.",
        )
        .into(),
        Rein => access::rein(&mut s.login, nav, settings, data).into(),
        Host(name) => access::host(&mut s.login, name).into(),
        Auth(mechanism) => access::auth(&s.conn, settings, mechanism),
        Pbsz(size) => access::pbsz(&s.conn, settings, size).into(),
        Prot(level) => access::prot(&s.conn, settings, level).into(),
        Ccc => Reply::new(534, "CCC refused: the control connection stays encrypted.").into(),
        Quit => Outcome::Close(Reply::new(221, "Goodbye.")),

        Cwd(path) => navigate::cwd(login?, nav, &path).await.into(),
        Cdup => navigate::cwd(login?, nav, "..").await.into(),
        Pwd => navigate::pwd(nav).into(),

        Port(addr) | Eprt(addr) => datachannel::active(shared, &s.conn, data, addr).into(),
        Pasv => {
            let tls = settings.private().then(|| s.data_tls_context(shared));
            datachannel::pasv(shared, &s.conn, tls, &mut s.data)
                .await
                .into()
        }
        Epsv(arg) => {
            let tls = settings.private().then(|| s.data_tls_context(shared));
            datachannel::epsv(shared, &s.conn, tls, &mut s.data, arg)
                .await
                .into()
        }
        Type(t) => datachannel::transfer_type(settings, t).into(),
        Stru(c) => datachannel::stru(c).into(),
        Mode(c) => datachannel::mode(c).into(),

        Rest(offset) => transfer::rest(settings, offset).into(),
        Allo => Reply::new(202, "No storage allocation necessary.").into(),
        Retr(path) => transfer::retr(shared, login?, nav, settings, data, &path).await,
        Stor(path) => transfer::stor(shared, login?, nav, settings, data, &path, false).await,
        Appe(path) => transfer::stor(shared, login?, nav, settings, data, &path, true).await,
        Stou(hint) => transfer::stou(shared, login?, nav, settings, data, hint.as_deref()).await,
        List(path) => {
            let kind = transfer::ListingKind::List;
            transfer::listing(shared, login?, nav, settings, data, path.as_deref(), kind).await
        }
        Nlst(path) => {
            let kind = transfer::ListingKind::Nlst;
            transfer::listing(shared, login?, nav, settings, data, path.as_deref(), kind).await
        }
        Mlsd(path) => {
            let kind = transfer::ListingKind::Mlsd;
            transfer::listing(shared, login?, nav, settings, data, path.as_deref(), kind).await
        }
        Abor => Reply::new(226, "No transfer to abort.").into(),

        Dele(path) => files::dele(login?, nav, &path).await.into(),
        Rmd(path) => files::rmd(login?, nav, &path).await.into(),
        Mkd(path) => files::mkd(login?, nav, &path).await.into(),
        Rnfr(path) => files::rnfr(login?, nav, &path).await.into(),
        Rnto(path) => files::rnto(login?, nav, &path).await.into(),
        Size(path) => files::size(login?, nav, &path).await.into(),
        Mdtm(path) => files::mdtm(login?, nav, &path).await.into(),
        Mfmt { time, path } => files::mfmt(login?, nav, time, &path).await.into(),
        Mlst(path) => files::mlst(login?, nav, &settings.facts, path.as_deref())
            .await
            .into(),
        Hash(path) => files::hash(login?, nav, settings.hash, &path).await.into(),

        Stat(None) => info::status(&s.conn, &s.login, settings).into(),
        Stat(Some(path)) => info::stat_path(login?, nav, &path).await.into(),
        Syst => Reply::new(215, "UNIX Type: L8").into(),
        Help(topic) => info::help(topic.as_deref()).into(),
        Noop => Reply::new(200, "NOOP ok.").into(),
        Feat => info::feat(settings).into(),
        Opts(opts) => info::opts(settings, opts).into(),
    })
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

/// The user's file tree if they hold the permission `which` selects.
fn permitted(
    login: &LoggedIn,
    which: fn(&Permissions) -> bool,
) -> Result<&Arc<dyn FileSystem>, Reply> {
    if which(&login.user.permissions) {
        Ok(&login.fs)
    } else {
        Err(replies::permission_denied())
    }
}

/// Resolves a client path against the working directory.
fn resolve(nav: &Navigation, arg: &str) -> Result<VirtualPath, Reply> {
    nav.cwd.resolve(arg).map_err(|e| replies::path_error(&e))
}
