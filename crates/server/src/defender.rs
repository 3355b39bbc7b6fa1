//! The defender: scores misbehaviour per source address and bans an address
//! whose score reaches the threshold within the observation window (SFTPGo's
//! defender, fail2ban). Failed logins, protocol abuse and connection floods
//! each carry a weight; addresses on the defender's allow list are never
//! scored. This node's bans are kept here until the cluster's ban list has
//! recorded them (see `bans`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// What an address did wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offence {
    LoginFailed,
    /// A connection closed for undecodable or over-long lines, a failed TLS
    /// handshake, a PORT/EPRT naming another host or a privileged port.
    ProtocolAbuse,
    /// A connection refused because the address already holds its share.
    Flood,
}

impl Offence {
    pub fn describe(self) -> &'static str {
        match self {
            Offence::LoginFailed => "failed logins",
            Offence::ProtocolAbuse => "protocol abuse",
            Offence::Flood => "connection flood",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefenderConfig {
    /// Score at which an address is banned; 0 turns the defender off.
    pub threshold: u32,
    /// How long offences count: a score older than this starts again at 0.
    pub observation: Duration,
    pub ban_duration: Duration,
    pub login_failure: u32,
    pub protocol_abuse: u32,
    pub flood: u32,
    /// Never scored nor banned (monitoring, partner gateways, the balancer).
    pub allow: Vec<IpNet>,
    /// Addresses tracked at most; beyond, expired scores are dropped first and
    /// then new addresses go unscored until room frees up.
    pub max_tracked: usize,
}

impl Default for DefenderConfig {
    fn default() -> Self {
        Self {
            threshold: 15,
            observation: Duration::from_secs(900),
            ban_duration: Duration::from_secs(900),
            login_failure: 3,
            protocol_abuse: 1,
            flood: 3,
            allow: Vec::new(),
            max_tracked: 100_000,
        }
    }
}

impl DefenderConfig {
    fn weight(&self, offence: Offence) -> u32 {
        match offence {
            Offence::LoginFailed => self.login_failure,
            Offence::ProtocolAbuse => self.protocol_abuse,
            Offence::Flood => self.flood,
        }
    }

    pub fn exempt(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// Whether a failed TLS handshake counts as protocol abuse: the client sent
/// bytes that are not TLS or broke the protocol. A peer that closed without a
/// word (a TCP health check), timed out, or refused our certificate with an
/// alert (a client not yet trusting it) is not scored.
pub fn handshake_abuse(error: &std::io::Error) -> bool {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(_)) => false,
        Some(_) => true,
        None => false,
    }
}

/// What recording an offence led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not scored: the defender is off, the address exempt or untracked.
    Ignored,
    Scored(u32),
    /// This offence brought the score to the threshold: banned for this long.
    Banned(Duration),
}

struct Score {
    points: u32,
    since: Instant,
}

#[derive(Default)]
struct State {
    scores: HashMap<IpAddr, Score>,
    bans: HashMap<IpAddr, Instant>,
}

pub struct Defender {
    config: DefenderConfig,
    state: Mutex<State>,
}

impl Defender {
    pub fn new(config: DefenderConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State::default()),
        }
    }

    pub fn config(&self) -> &DefenderConfig {
        &self.config
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing held under this lock can be left half-changed by a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record(&self, ip: IpAddr, offence: Offence) -> Verdict {
        let weight = self.config.weight(offence);
        if self.config.threshold == 0 || weight == 0 || self.config.exempt(ip) {
            return Verdict::Ignored;
        }
        let now = Instant::now();
        let mut s = self.state();
        if !s.scores.contains_key(&ip) && s.scores.len() >= self.config.max_tracked {
            let observation = self.config.observation;
            s.scores
                .retain(|_, score| now.duration_since(score.since) <= observation);
            if s.scores.len() >= self.config.max_tracked {
                return Verdict::Ignored;
            }
        }
        let score = s.scores.entry(ip).or_insert(Score {
            points: 0,
            since: now,
        });
        if now.duration_since(score.since) > self.config.observation {
            *score = Score {
                points: 0,
                since: now,
            };
        }
        score.points = score.points.saturating_add(weight);
        if score.points < self.config.threshold {
            return Verdict::Scored(score.points);
        }
        s.scores.remove(&ip);
        s.bans.insert(ip, now + self.config.ban_duration);
        Verdict::Banned(self.config.ban_duration)
    }

    /// Time left on this node's own ban of `ip`.
    pub fn banned(&self, ip: IpAddr) -> Option<Duration> {
        let mut s = self.state();
        let until = *s.bans.get(&ip)?;
        let now = Instant::now();
        if until > now {
            return Some(until - now);
        }
        s.bans.remove(&ip);
        None
    }

    /// Forgets this node's own ban of `ip` (the cluster's ban list holds it).
    pub fn lift_ban(&self, ip: IpAddr) {
        self.state().bans.remove(&ip);
    }

    /// A successful login clears the address's failed-login score.
    pub fn forgive(&self, ip: IpAddr) {
        self.state().scores.remove(&ip);
    }

    /// Addresses currently scored (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.state().scores.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defender(config: DefenderConfig) -> Defender {
        Defender::new(config)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn offences_add_up_to_a_ban_at_the_threshold() {
        let d = defender(DefenderConfig {
            threshold: 7,
            ..DefenderConfig::default()
        });
        let a = ip("10.0.0.1");
        assert_eq!(d.record(a, Offence::LoginFailed), Verdict::Scored(3));
        assert_eq!(d.record(a, Offence::ProtocolAbuse), Verdict::Scored(4));
        assert_eq!(d.banned(a), None);
        assert!(matches!(d.record(a, Offence::Flood), Verdict::Banned(_)));
        assert!(d.banned(a).is_some());
        assert_eq!(
            d.banned(ip("10.0.0.2")),
            None,
            "only the offender is banned"
        );
        d.lift_ban(a);
        assert_eq!(d.banned(a), None);
    }

    #[test]
    fn a_successful_login_forgives_earlier_failures() {
        let d = defender(DefenderConfig::default());
        let a = ip("10.0.0.1");
        for _ in 0..4 {
            d.record(a, Offence::LoginFailed);
        }
        d.forgive(a);
        assert_eq!(d.record(a, Offence::LoginFailed), Verdict::Scored(3));
    }

    #[test]
    fn scores_older_than_the_observation_window_start_again() {
        let d = defender(DefenderConfig {
            threshold: 6,
            observation: Duration::from_millis(30),
            ..DefenderConfig::default()
        });
        let a = ip("10.0.0.1");
        assert_eq!(d.record(a, Offence::LoginFailed), Verdict::Scored(3));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(d.record(a, Offence::LoginFailed), Verdict::Scored(3));
    }

    #[test]
    fn allow_listed_addresses_and_a_disabled_defender_score_nothing() {
        let d = defender(DefenderConfig {
            threshold: 1,
            allow: vec!["192.0.2.0/24".parse().unwrap()],
            ..DefenderConfig::default()
        });
        assert_eq!(d.record(ip("192.0.2.9"), Offence::Flood), Verdict::Ignored);
        assert_eq!(d.banned(ip("192.0.2.9")), None);
        let off = defender(DefenderConfig {
            threshold: 0,
            ..DefenderConfig::default()
        });
        assert_eq!(off.record(ip("10.0.0.1"), Offence::Flood), Verdict::Ignored);
    }

    #[test]
    fn the_table_is_bounded_and_expired_scores_make_room() {
        let d = defender(DefenderConfig {
            max_tracked: 2,
            observation: Duration::from_millis(30),
            ..DefenderConfig::default()
        });
        d.record(ip("10.0.0.1"), Offence::ProtocolAbuse);
        d.record(ip("10.0.0.2"), Offence::ProtocolAbuse);
        assert_eq!(
            d.record(ip("10.0.0.3"), Offence::ProtocolAbuse),
            Verdict::Ignored
        );
        assert_eq!(d.tracked(), 2);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            d.record(ip("10.0.0.3"), Offence::ProtocolAbuse),
            Verdict::Scored(1)
        );
        assert_eq!(d.tracked(), 1);
    }

    #[test]
    fn only_handshakes_broken_by_the_client_count_as_abuse() {
        use std::io::{Error, ErrorKind};
        let tls = |e: rustls::Error| Error::new(ErrorKind::InvalidData, e);
        assert!(handshake_abuse(&tls(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
        ))));
        assert!(!handshake_abuse(&tls(rustls::Error::AlertReceived(
            rustls::AlertDescription::BadCertificate
        ))));
        assert!(!handshake_abuse(&Error::new(
            ErrorKind::UnexpectedEof,
            "eof"
        )));
        assert!(!handshake_abuse(&Error::new(ErrorKind::TimedOut, "slow")));
    }
}
