//! The content digest an upload's `file.uploaded` event carries, computed
//! as the bytes arrive on either storage, or not at all when the cluster
//! says `wharf events digest none`.

use sha2::{Digest, Sha256};
use wharf_store::events::EventDigest;

pub(crate) struct ContentDigest(Option<Sha256>);

impl ContentDigest {
    pub(crate) fn new(kind: EventDigest) -> Self {
        Self((kind == EventDigest::Sha256).then(Sha256::new))
    }

    /// Whether bytes need feeding at all: a resumption reads the part it
    /// keeps only for the digest.
    pub(crate) fn wanted(&self) -> bool {
        self.0.is_some()
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        if let Some(digest) = &mut self.0 {
            digest.update(bytes);
        }
    }

    /// Lower-case hex of the bytes so far; empty when none is computed.
    pub(crate) fn hex(&self) -> String {
        self.0
            .as_ref()
            .map(|d| hex::encode(d.clone().finalize()))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_the_digest_of_every_byte_fed_and_none_is_empty() {
        let mut digest = ContentDigest::new(EventDigest::Sha256);
        digest.update(b"ab");
        digest.update(b"c");
        assert_eq!(
            digest.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut none = ContentDigest::new(EventDigest::None);
        none.update(b"abc");
        assert!(!none.wanted());
        assert_eq!(none.hex(), "");
    }
}
