//! What the workload knows each of its files may hold. Contents are never
//! kept: a file is a list of pieces, each regenerated from its seed, so the
//! checker can rebuild any expected content byte for byte.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// `len` bytes from a generator seeded with `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Piece {
    pub seed: u64,
    pub len: u64,
}

impl Piece {
    fn write_to(&self, out: &mut Vec<u8>) {
        let mut state = self.seed;
        let mut left = self.len as usize;
        while left > 0 {
            // splitmix64
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let bytes = z.to_le_bytes();
            let take = left.min(8);
            out.extend_from_slice(&bytes[..take]);
            left -= take;
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Content(pub Vec<Piece>);

impl Content {
    pub fn of(piece: Piece) -> Content {
        Content(vec![piece])
    }

    pub fn len(&self) -> u64 {
        self.0.iter().map(|p| p.len).sum()
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() as usize);
        for piece in &self.0 {
            piece.write_to(&mut out);
        }
        out
    }

    pub fn then(&self, more: &Content) -> Content {
        Content(self.0.iter().chain(&more.0).copied().collect())
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One state a file may be in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Expect {
    Absent,
    Exact(Content),
    /// `base` followed by some prefix of `extra` (an upload cut short keeps
    /// what it received).
    PrefixOf {
        base: Content,
        extra: Content,
    },
}

impl Expect {
    pub fn admits(&self, actual: Option<&[u8]>) -> bool {
        match (self, actual) {
            (Expect::Absent, None) => true,
            (Expect::Exact(c), Some(bytes)) => c.len() == bytes.len() as u64 && c.bytes() == bytes,
            (Expect::PrefixOf { base, extra }, Some(bytes)) => {
                let whole = base.then(extra).bytes();
                bytes.len() >= base.len() as usize
                    && bytes.len() <= whole.len()
                    && whole[..bytes.len()] == *bytes
            }
            _ => false,
        }
    }
}

/// Every state a file may be in after the operations the workload did on
/// it; one element when the last operation was acknowledged.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Possible(pub Vec<Expect>);

impl Possible {
    pub fn known(e: Expect) -> Possible {
        Possible(vec![e])
    }

    /// The content, when exactly one is possible.
    pub fn exact(&self) -> Option<&Content> {
        match self.0.as_slice() {
            [Expect::Exact(c)] => Some(c),
            _ => None,
        }
    }

    pub fn is_absent(&self) -> bool {
        self.0 == [Expect::Absent]
    }

    /// An operation whose outcome is unknown: the old states or `e`.
    pub fn or(&mut self, e: Expect) {
        if !self.0.contains(&e) {
            self.0.push(e);
        }
    }

    pub fn admits(&self, actual: Option<&[u8]>) -> bool {
        self.0.iter().any(|e| e.admits(actual))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_regenerate_the_same_bytes_and_prefixes_are_recognised() {
        let a = Content::of(Piece { seed: 1, len: 13 });
        let b = Content::of(Piece { seed: 2, len: 21 });
        assert_eq!(a.bytes(), a.bytes());
        assert_ne!(a.bytes(), Content::of(Piece { seed: 3, len: 13 }).bytes());
        let whole = a.then(&b).bytes();
        assert_eq!(whole.len(), 34);
        let cut = Expect::PrefixOf {
            base: a.clone(),
            extra: b.clone(),
        };
        assert!(cut.admits(Some(&whole[..13])));
        assert!(cut.admits(Some(&whole[..20])));
        assert!(cut.admits(Some(&whole)));
        assert!(!cut.admits(Some(&whole[..12])), "shorter than the base");
        let mut wrong = whole[..20].to_vec();
        wrong[15] ^= 1;
        assert!(!cut.admits(Some(&wrong)));
        assert!(!cut.admits(None));
        assert!(Expect::Absent.admits(None));
        assert!(Expect::Exact(a.clone()).admits(Some(&a.bytes())));
        assert!(!Expect::Exact(a).admits(Some(&whole)));
    }
}
