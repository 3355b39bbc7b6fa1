//! The content digest an upload's `file.uploaded` event carries, computed
//! as the bytes arrive on either storage, or not at all when the cluster
//! says `wharf events digest none`.
//!
//! On object storage an upload resumed on another node cannot read back the
//! parts already sent (S3 keeps them unreadable until the upload completes),
//! so the digest's running state is checkpointed with each part: SHA-256's
//! eight words after a whole number of 64-byte blocks ([`midstate`]), and
//! the resumption starts from them ([`ContentDigest::resume`]).
//!
//! [`midstate`]: ContentDigest::midstate

use sha2::compress256;
use sha2::digest::generic_array::GenericArray;
use wharf_store::events::EventDigest;

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const BLOCK: usize = 64;

/// SHA-256 whose state can be saved between blocks and resumed.
#[derive(Clone)]
struct Sha256 {
    state: [u32; 8],
    /// Bytes fed so far.
    len: u64,
    /// The tail not yet a whole block.
    tail: Vec<u8>,
}

impl Sha256 {
    fn new() -> Self {
        Self {
            state: IV,
            len: 0,
            tail: Vec::with_capacity(BLOCK),
        }
    }

    fn compress(&mut self, block: &[u8]) {
        compress256(
            &mut self.state,
            std::slice::from_ref(GenericArray::from_slice(block)),
        );
    }

    fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if !self.tail.is_empty() {
            let take = (BLOCK - self.tail.len()).min(bytes.len());
            let (head, rest) = bytes.split_at(take);
            self.tail.extend_from_slice(head);
            bytes = rest;
            if self.tail.len() < BLOCK {
                return;
            }
            let tail = std::mem::take(&mut self.tail);
            self.compress(&tail);
            self.tail = tail;
            self.tail.clear();
        }
        let mut blocks = bytes.chunks_exact(BLOCK);
        for block in &mut blocks {
            self.compress(block);
        }
        self.tail.extend_from_slice(blocks.remainder());
    }

    fn finalize(&self) -> [u8; 32] {
        let mut last = self.clone();
        let bits = self.len.wrapping_mul(8);
        last.update(&[0x80]);
        while last.tail.len() != BLOCK - 8 {
            last.update(&[0]);
        }
        last.update(&bits.to_be_bytes());
        let mut out = [0u8; 32];
        for (word, bytes) in last.state.iter().zip(out.chunks_exact_mut(4)) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

pub(crate) struct ContentDigest(Option<Sha256>);

impl ContentDigest {
    pub(crate) fn new(kind: EventDigest) -> Self {
        Self((kind == EventDigest::Sha256).then(Sha256::new))
    }

    /// Goes on from a [`midstate`](Self::midstate) taken after `len` bytes;
    /// `None` when there is none to go on from (the digest was off, or the
    /// state is damaged): the event then carries no digest.
    pub(crate) fn resume(kind: EventDigest, midstate: &str, len: u64) -> Option<Self> {
        if kind != EventDigest::Sha256 {
            return Some(Self(None));
        }
        let bytes = hex::decode(midstate).ok()?;
        if bytes.len() != 32 || !len.is_multiple_of(BLOCK as u64) {
            return None;
        }
        let mut state = [0u32; 8];
        for (word, four) in state.iter_mut().zip(bytes.chunks_exact(4)) {
            *word = u32::from_be_bytes(four.try_into().ok()?);
        }
        Some(Self(Some(Sha256 {
            state,
            len,
            tail: Vec::with_capacity(BLOCK),
        })))
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

    /// The running state, hex; empty when no digest is computed or the bytes
    /// so far are not a whole number of blocks.
    pub(crate) fn midstate(&self) -> String {
        match &self.0 {
            Some(d) if d.tail.is_empty() => hex::encode(
                d.state
                    .iter()
                    .flat_map(|w| w.to_be_bytes())
                    .collect::<Vec<u8>>(),
            ),
            _ => String::new(),
        }
    }

    /// Lower-case hex of the bytes so far; empty when none is computed.
    pub(crate) fn hex(&self) -> String {
        self.0
            .as_ref()
            .map(|d| hex::encode(d.finalize()))
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

    #[test]
    fn a_digest_resumed_from_its_midstate_is_sha256_of_the_whole() {
        use sha2::Digest;
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 128, 1000, 10_000] {
            let whole = data.get(..len).unwrap();
            let expected = hex::encode(sha2::Sha256::digest(whole));
            // Fed in uneven pieces.
            let mut digest = ContentDigest::new(EventDigest::Sha256);
            for piece in whole.chunks(37) {
                digest.update(piece);
            }
            assert_eq!(digest.hex(), expected, "{len} bytes");
            // Cut at each block boundary, saved and resumed.
            for cut in (0..=len).step_by(BLOCK * 3) {
                let mut first = ContentDigest::new(EventDigest::Sha256);
                first.update(whole.get(..cut).unwrap());
                let saved = first.midstate();
                assert_eq!(saved.len(), 64);
                let mut resumed =
                    ContentDigest::resume(EventDigest::Sha256, &saved, cut as u64).unwrap();
                resumed.update(whole.get(cut..).unwrap());
                assert_eq!(resumed.hex(), expected, "{len} bytes cut at {cut}");
            }
        }
        let mut unaligned = ContentDigest::new(EventDigest::Sha256);
        unaligned.update(b"abc");
        assert_eq!(unaligned.midstate(), "");
        assert!(ContentDigest::resume(EventDigest::Sha256, "zz", 64).is_none());
        assert!(ContentDigest::resume(EventDigest::Sha256, &"0".repeat(64), 3).is_none());
        let off = ContentDigest::resume(EventDigest::None, "", 640).unwrap();
        assert!(!off.wanted());
    }
}
