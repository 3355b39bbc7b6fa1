//! What a data connection's TLS session must prove (DESIGN.md §2 step 5).
//!
//! The purpose of session reuse is that nobody but the logged-in client can
//! take over a data connection. A passive data connection is already refused
//! from any address but the control connection's; on top of that the data
//! connection must resume a TLS session this cluster issued:
//!
//! * `reuse` — a session of this very control connection (vsftpd's
//!   `require_ssl_reuse`, FileZilla Server): the strictest rule;
//! * `same-user` (the default) — a session issued to the same user from the
//!   same client address: one client's parallel control connections (rclone,
//!   FileZilla's simultaneous transfers) resume each other's sessions;
//! * `any` — no resumption needed, for clients that cannot resume at all
//!   (Commons Net without its workaround, .NET on Linux); an explicit
//!   relaxation per user or per network, logged once per session.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use wharf_tls::{SessionBinding, SessionClaim};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DataTlsRule {
    Reuse,
    #[default]
    SameUser,
    Any,
}

impl DataTlsRule {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "reuse" => Ok(Self::Reuse),
            "same-user" => Ok(Self::SameUser),
            "any" => Ok(Self::Any),
            other => Err(format!(
                "unknown data-connection TLS rule {other:?} (expected reuse, same-user or any)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reuse => "reuse",
            Self::SameUser => "same-user",
            Self::Any => "any",
        }
    }
}

/// The rule for one session: the networks relaxed to `any` first, then the
/// user's own rule, then the server's.
pub fn rule_for(
    server: DataTlsRule,
    user: Option<DataTlsRule>,
    relaxed: &[IpNet],
    client: IpAddr,
) -> DataTlsRule {
    if relaxed.iter().any(|net| net.contains(&client)) {
        DataTlsRule::Any
    } else {
        user.unwrap_or(server)
    }
}

/// Why a data connection was let in.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// It resumed a session of its own control connection.
    OwnSession,
    /// It resumed a session of another control connection of the same user
    /// from the same address.
    SiblingSession,
    /// It proved nothing, and the rule does not ask it to.
    Relaxed,
}

/// Decides whether a data connection that resumed `claim` (or nothing) may
/// serve the session `own`, logged in as `user`, under `rule`.
pub fn admit(
    rule: DataTlsRule,
    own: &SessionBinding,
    user: &str,
    claim: Option<&SessionClaim>,
    sessions: &LoggedInSessions,
) -> Option<Admission> {
    if claim.is_some_and(|c| c.is_of(own)) {
        return Some(Admission::OwnSession);
    }
    let sibling = claim.is_some_and(|c| {
        c.client == own.client()
            && (c.user.as_deref() == Some(user)
                || sessions.user_of(&c.binding()).as_deref() == Some(user))
    });
    match rule {
        DataTlsRule::Reuse => None,
        DataTlsRule::SameUser | DataTlsRule::Any if sibling => Some(Admission::SiblingSession),
        DataTlsRule::SameUser => None,
        DataTlsRule::Any => Some(Admission::Relaxed),
    }
}

/// How long a control connection's sessions still prove its user after it
/// closed: a parallel client keeps resuming tickets of connections it has
/// already closed.
const REMEMBERED_AFTER_CLOSE: Duration = Duration::from_secs(600);
/// The most bindings a node remembers; the oldest closed ones go first.
const MAX_REMEMBERED: usize = 100_000;
/// How long a data connection that resumed the session of a sibling still
/// logging in waits for that login (parallel clients open their control
/// connections together and share one session cache).
pub const SIBLING_LOGIN_WAIT: Duration = Duration::from_secs(3);

/// The control connections of this node, by binding: which user each one
/// logged in as. A data connection on this node that resumes a sibling's
/// control session (whose tickets were issued before login and so name no
/// user) is judged by this.
#[derive(Default)]
pub struct LoggedInSessions {
    entries: Mutex<HashMap<SessionBinding, Entry>>,
}

struct Entry {
    /// `None` until the connection logs in.
    user: Option<String>,
    closed: Option<Instant>,
}

/// What this node knows of the control connection behind a binding.
#[derive(Debug, PartialEq, Eq)]
pub enum Sibling {
    LoggedIn(String),
    /// Connected, not logged in (yet).
    Pending,
    Unknown,
}

/// Keeps a control connection known while it is open; forgets it (or starts
/// its grace period) when dropped.
pub struct Registration<'a> {
    sessions: &'a LoggedInSessions,
    binding: SessionBinding,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.sessions.closed(&self.binding);
    }
}

impl LoggedInSessions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a new control connection; it is known until the returned
    /// registration is dropped.
    pub fn connected(&self, binding: &SessionBinding) -> Registration<'_> {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_REMEMBERED {
                forget_closed(&mut entries, Instant::now());
            }
            // With every remembered session open, the newest is not
            // remembered: its siblings fall back to their own sessions.
            if entries.len() < MAX_REMEMBERED {
                entries.insert(
                    binding.clone(),
                    Entry {
                        user: None,
                        closed: None,
                    },
                );
            }
        }
        Registration {
            sessions: self,
            binding: binding.clone(),
        }
    }

    /// Records that the session `binding` logged in as `user`.
    pub fn logged_in(&self, binding: &SessionBinding, user: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            if let Some(entry) = entries.get_mut(binding) {
                entry.user = Some(user.to_owned());
            }
        }
    }

    fn closed(&self, binding: &SessionBinding) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let now = Instant::now();
        match entries.get_mut(binding) {
            // Never logged in: its sessions prove nothing about a user.
            Some(entry) if entry.user.is_none() => {
                entries.remove(binding);
            }
            Some(entry) => entry.closed = Some(now),
            None => {}
        }
        forget_closed(&mut entries, now);
    }

    pub fn sibling(&self, binding: &SessionBinding) -> Sibling {
        let Ok(entries) = self.entries.lock() else {
            return Sibling::Unknown;
        };
        match entries.get(binding) {
            Some(Entry {
                user: Some(user),
                closed,
            }) if closed.is_none_or(|at| at.elapsed() < REMEMBERED_AFTER_CLOSE) => {
                Sibling::LoggedIn(user.clone())
            }
            Some(Entry {
                user: None,
                closed: None,
            }) => Sibling::Pending,
            _ => Sibling::Unknown,
        }
    }

    fn user_of(&self, binding: &SessionBinding) -> Option<String> {
        match self.sibling(binding) {
            Sibling::LoggedIn(user) => Some(user),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn forget_closed(entries: &mut HashMap<SessionBinding, Entry>, now: Instant) {
    entries.retain(|_, e| {
        e.closed
            .is_none_or(|at| now.duration_since(at) < REMEMBERED_AFTER_CLOSE)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn log_in<'a>(
        sessions: &'a LoggedInSessions,
        binding: &SessionBinding,
        user: &str,
    ) -> Registration<'a> {
        let registration = sessions.connected(binding);
        sessions.logged_in(binding, user);
        registration
    }

    /// The claim a session's tickets carry (a data connection's name the user).
    fn claim_of(binding: &SessionBinding, user: Option<&str>) -> SessionClaim {
        binding.claim(user)
    }

    #[test]
    fn strict_rule_takes_only_the_own_session() {
        let sessions = LoggedInSessions::new();
        let own = SessionBinding::new(ip("192.0.2.1"));
        let sibling = SessionBinding::new(ip("192.0.2.1"));
        let _open = [
            log_in(&sessions, &own, "alice"),
            log_in(&sessions, &sibling, "alice"),
        ];
        let rule = DataTlsRule::Reuse;
        assert_eq!(
            admit(rule, &own, "alice", Some(&claim_of(&own, None)), &sessions),
            Some(Admission::OwnSession)
        );
        assert_eq!(
            admit(
                rule,
                &own,
                "alice",
                Some(&claim_of(&sibling, None)),
                &sessions
            ),
            None
        );
    }

    #[test]
    fn same_user_rule_takes_a_sibling_of_the_same_user_and_address_only() {
        let sessions = LoggedInSessions::new();
        let own = SessionBinding::new(ip("192.0.2.1"));
        let sibling = SessionBinding::new(ip("192.0.2.1"));
        let other_user = SessionBinding::new(ip("192.0.2.1"));
        let elsewhere = SessionBinding::new(ip("192.0.2.2"));
        let anonymous = SessionBinding::new(ip("192.0.2.1"));
        let _open = [
            log_in(&sessions, &own, "alice"),
            log_in(&sessions, &sibling, "alice"),
            log_in(&sessions, &other_user, "bob"),
            log_in(&sessions, &elsewhere, "alice"),
        ];
        let _anonymous = sessions.connected(&anonymous);
        assert_eq!(sessions.sibling(&anonymous), Sibling::Pending);
        let rule = DataTlsRule::SameUser;
        let judge = |c: &SessionClaim| admit(rule, &own, "alice", Some(c), &sessions);
        assert_eq!(
            judge(&claim_of(&sibling, None)),
            Some(Admission::SiblingSession)
        );
        // A data connection's ticket names its user: no registry needed (another node).
        let remote = SessionBinding::new(ip("192.0.2.1"));
        assert_eq!(
            judge(&claim_of(&remote, Some("alice"))),
            Some(Admission::SiblingSession)
        );
        assert_eq!(judge(&claim_of(&remote, Some("bob"))), None);
        assert_eq!(judge(&claim_of(&other_user, None)), None);
        assert_eq!(judge(&claim_of(&elsewhere, None)), None);
        assert_eq!(judge(&claim_of(&elsewhere, Some("alice"))), None);
        // Never logged in: proves nothing about a user.
        assert_eq!(judge(&claim_of(&anonymous, None)), None);
        assert_eq!(admit(rule, &own, "alice", None, &sessions), None);
    }

    #[test]
    fn any_rule_admits_without_resumption() {
        let sessions = LoggedInSessions::new();
        let own = SessionBinding::new(ip("192.0.2.1"));
        assert_eq!(
            admit(DataTlsRule::Any, &own, "alice", None, &sessions),
            Some(Admission::Relaxed)
        );
    }

    #[test]
    fn closed_sessions_are_remembered_for_a_while() {
        let sessions = LoggedInSessions::new();
        let closed = SessionBinding::new(ip("192.0.2.1"));
        drop(log_in(&sessions, &closed, "alice"));
        assert_eq!(sessions.user_of(&closed).as_deref(), Some("alice"));
        sessions
            .entries
            .lock()
            .unwrap()
            .get_mut(&closed)
            .unwrap()
            .closed = Some(Instant::now() - REMEMBERED_AFTER_CLOSE);
        assert_eq!(sessions.user_of(&closed), None);
        // The next session to close sweeps the stale entry away; one that
        // never logged in is forgotten at once.
        drop(log_in(
            &sessions,
            &SessionBinding::new(ip("192.0.2.1")),
            "alice",
        ));
        drop(sessions.connected(&SessionBinding::new(ip("192.0.2.1"))));
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn relaxed_networks_win_over_the_user_rule() {
        let relaxed = ["10.0.0.0/8".parse().unwrap()];
        let strict = Some(DataTlsRule::Reuse);
        assert_eq!(
            rule_for(DataTlsRule::SameUser, strict, &relaxed, ip("10.1.2.3")),
            DataTlsRule::Any
        );
        assert_eq!(
            rule_for(DataTlsRule::SameUser, strict, &relaxed, ip("192.0.2.1")),
            DataTlsRule::Reuse
        );
        assert_eq!(
            rule_for(DataTlsRule::SameUser, None, &relaxed, ip("192.0.2.1")),
            DataTlsRule::SameUser
        );
    }
}
