//! Passwords that passed their argon2id check recently, so a client that logs
//! in again and again (a sync job every minute, a load-balanced pool opening
//! sessions) does not pay tens of milliseconds of CPU and 19 MiB of memory
//! each time — SFTPGo's `password_caching` does the same for bcrypt and
//! argon2.
//!
//! Only a keyed digest is kept: SHA-256 over a random per-process secret,
//! the account's PHC string and the password. Nothing is written anywhere;
//! a changed password (a new PHC string) never matches an old entry; failed
//! logins are never remembered, so guessing still costs a full argon2 check.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Entries kept before the set starts over (each is 32 bytes).
const CAPACITY: usize = 16_384;

pub struct VerifiedPasswords {
    secret: [u8; 32],
    tags: Mutex<HashSet<[u8; 32]>>,
}

impl VerifiedPasswords {
    fn new() -> Self {
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        Self {
            secret,
            tags: Mutex::new(HashSet::new()),
        }
    }

    /// The one set of this process.
    pub fn global() -> &'static Self {
        static SET: OnceLock<VerifiedPasswords> = OnceLock::new();
        SET.get_or_init(Self::new)
    }

    fn tag(&self, phc: &str, password: &str) -> [u8; 32] {
        let mut digest = Sha256::new();
        digest.update(self.secret);
        digest.update((phc.len() as u64).to_le_bytes());
        digest.update(phc.as_bytes());
        digest.update(password.as_bytes());
        digest.finalize().into()
    }

    /// Whether `password` passed the check against `phc` before.
    pub fn knows(&self, phc: &str, password: &str) -> bool {
        let tag = self.tag(phc, password);
        self.tags.lock().is_ok_and(|tags| tags.contains(&tag))
    }

    /// Notes that `password` passed the check against `phc`.
    pub fn remember(&self, phc: &str, password: &str) {
        let tag = self.tag(phc, password);
        if let Ok(mut tags) = self.tags.lock() {
            if tags.len() >= CAPACITY {
                tags.clear();
            }
            tags.insert(tag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::hash_password;

    #[test]
    fn only_the_same_password_against_the_same_hash_is_known() {
        let set = VerifiedPasswords::new();
        let phc = hash_password("s3cret").unwrap();
        assert!(!set.knows(&phc, "s3cret"));
        set.remember(&phc, "s3cret");
        assert!(set.knows(&phc, "s3cret"));
        assert!(!set.knows(&phc, "s3cret "));
        // The password changed (same text, new salt): a new PHC string.
        let changed = hash_password("s3cret").unwrap();
        assert!(!set.knows(&changed, "s3cret"));
        // Another process (another secret) knows nothing of it.
        assert!(!VerifiedPasswords::new().knows(&phc, "s3cret"));
    }

    #[test]
    fn a_full_set_starts_over() {
        let set = VerifiedPasswords::new();
        for i in 0..CAPACITY {
            set.remember("phc", &i.to_string());
        }
        assert!(set.knows("phc", "0"));
        set.remember("phc", "one more");
        assert!(set.knows("phc", "one more"));
        assert!(!set.knows("phc", "0"));
    }
}
