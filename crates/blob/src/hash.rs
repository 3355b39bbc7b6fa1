//! The name of a chunk: the BLAKE3 hash of its bytes, written as 64 hex digits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkHash([u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashError {
    #[error("a chunk hash is 64 hex digits")]
    Malformed,
}

impl ChunkHash {
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, HashError> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| HashError::Malformed)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `bytes` are the chunk this hash names.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        Self::of(bytes) == *self
    }
}

impl fmt::Display for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkHash({})", &hex::encode(self.0)[..12])
    }
}

impl FromStr for ChunkHash {
    type Err = HashError;

    fn from_str(s: &str) -> Result<Self, HashError> {
        let bytes = hex::decode(s).map_err(|_| HashError::Malformed)?;
        Self::from_bytes(&bytes)
    }
}

impl Serialize for ChunkHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ChunkHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_bad_text_is_refused() {
        let h = ChunkHash::of(b"chunk");
        assert_eq!(h.to_string().len(), 64);
        assert_eq!(h.to_string().parse::<ChunkHash>().unwrap(), h);
        assert!(h.matches(b"chunk"));
        assert!(!h.matches(b"chunk!"));
        assert_eq!("abc".parse::<ChunkHash>(), Err(HashError::Malformed));
        assert_eq!(
            "zz".repeat(32).parse::<ChunkHash>(),
            Err(HashError::Malformed)
        );
        assert_eq!(ChunkHash::from_bytes(&[0; 31]), Err(HashError::Malformed));
    }
}
