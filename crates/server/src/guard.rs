//! Connection admission: global and per-IP connection caps, per-user session
//! caps, and the drain switch that turns new connections away before
//! maintenance. Scores and bans are the defender's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Limits;

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    TooManyConnections,
    TooManyFromAddress,
    Banned {
        remaining: Duration,
    },
    /// The global allow/deny lists refuse the address.
    NotAllowed,
    /// The operator is draining this node (`wharf cluster drain`).
    Draining,
}

#[derive(Default)]
struct State {
    connections: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_user: HashMap<String, usize>,
}

pub struct Guard {
    limits: Limits,
    state: Mutex<State>,
    draining: AtomicBool,
}

/// Held while a connection is open; releases its slot on drop.
pub struct ConnectionSlot {
    guard: Arc<Guard>,
    ip: IpAddr,
}

/// Held while a user is logged in; releases the session count on drop.
pub struct UserSlot {
    guard: Arc<Guard>,
    user: String,
}

impl Guard {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            state: Mutex::new(State::default()),
            draining: AtomicBool::new(false),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave it inconsistent in a way
        // that matters more than refusing every connection would.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        if self.draining() {
            return Err(Refusal::Draining);
        }
        let mut s = self.state();
        if s.connections >= self.limits.max_connections {
            return Err(Refusal::TooManyConnections);
        }
        let n = s.per_ip.entry(ip).or_insert(0);
        if *n >= self.limits.max_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        *n += 1;
        s.connections += 1;
        Ok(ConnectionSlot {
            guard: self.clone(),
            ip,
        })
    }

    pub fn set_draining(&self, on: bool) {
        self.draining.store(on, Ordering::Relaxed);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Control connections open now.
    pub fn connections(&self) -> usize {
        self.state().connections
    }

    /// Takes a session slot for `user`, refusing past `max` (0 = unlimited).
    pub fn user_session(self: &Arc<Self>, user: &str, max: usize) -> Option<UserSlot> {
        let mut s = self.state();
        let n = s.per_user.entry(user.to_owned()).or_insert(0);
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            guard: self.clone(),
            user: user.to_owned(),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut s = self.guard.state();
        s.connections = s.connections.saturating_sub(1);
        if let Some(n) = s.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.per_ip.remove(&self.ip);
            }
        }
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut s = self.guard.state();
        if let Some(n) = s.per_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                s.per_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_connections: 3,
            max_per_ip: 2,
            ..Limits::default()
        }
    }

    #[test]
    fn per_ip_and_global_caps_are_enforced_and_released() {
        let g = Guard::new(limits());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = g.admit(a).unwrap();
        let _s2 = g.admit(a).unwrap();
        assert_eq!(g.admit(a).err(), Some(Refusal::TooManyFromAddress));
        let _s3 = g.admit(b).unwrap();
        assert_eq!(g.admit(b).err(), Some(Refusal::TooManyConnections));
        drop(s1);
        assert!(g.admit(b).is_ok());
    }

    #[test]
    fn draining_refuses_new_connections_and_keeps_open_ones() {
        let g = Guard::new(limits());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let open = g.admit(a).unwrap();
        g.set_draining(true);
        assert_eq!(g.admit(a).err(), Some(Refusal::Draining));
        assert_eq!(g.connections(), 1);
        drop(open);
        assert_eq!(g.connections(), 0);
        g.set_draining(false);
        assert!(g.admit(a).is_ok());
    }

    #[test]
    fn user_session_cap() {
        let g = Guard::new(limits());
        let s = g.user_session("u", 1).unwrap();
        assert!(g.user_session("u", 1).is_none());
        drop(s);
        assert!(g.user_session("u", 1).is_some());
    }
}
