//! Names of the HASH command's algorithms (draft-bryan-ftpext-hash-02).
//!
//! Only the names live here; computing digests needs crates this protocol
//! crate deliberately does not depend on, so the server does it.

use std::fmt;

/// A digest algorithm a client may select with `OPTS HASH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    Sha256,
    Sha1,
    Md5,
    Crc32,
}

impl HashAlgorithm {
    /// Every algorithm, in the order advertised by FEAT (strongest first).
    pub const ALL: [HashAlgorithm; 4] = [
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha1,
        HashAlgorithm::Md5,
        HashAlgorithm::Crc32,
    ];

    /// The name used on the wire, e.g. `SHA-256`.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "SHA-256",
            HashAlgorithm::Sha1 => "SHA-1",
            HashAlgorithm::Md5 => "MD5",
            HashAlgorithm::Crc32 => "CRC32",
        }
    }

    /// Parses a wire name case-insensitively; `None` for unknown names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.name().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The FEAT line, with `*` marking the currently selected algorithm:
/// `HASH SHA-256*;SHA-1;MD5;CRC32`.
pub fn feat_line(selected: HashAlgorithm) -> String {
    let names: Vec<String> = HashAlgorithm::ALL
        .iter()
        .map(|alg| {
            let mark = if *alg == selected { "*" } else { "" };
            format!("{}{mark}", alg.name())
        })
        .collect();
    format!("HASH {}", names.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_parse() {
        for alg in HashAlgorithm::ALL {
            assert_eq!(HashAlgorithm::parse(alg.name()), Some(alg));
        }
    }

    #[test]
    fn parse_is_case_insensitive() {
        assert_eq!(HashAlgorithm::parse("sha-256"), Some(HashAlgorithm::Sha256));
        assert_eq!(HashAlgorithm::parse("Md5"), Some(HashAlgorithm::Md5));
        assert_eq!(HashAlgorithm::parse("crc32"), Some(HashAlgorithm::Crc32));
    }

    #[test]
    fn unknown_names_are_rejected() {
        assert_eq!(HashAlgorithm::parse("SHA256"), None);
        assert_eq!(HashAlgorithm::parse("SHA-512"), None);
        assert_eq!(HashAlgorithm::parse(""), None);
    }

    #[test]
    fn feat_line_marks_the_selected_algorithm() {
        assert_eq!(
            feat_line(HashAlgorithm::Sha256),
            "HASH SHA-256*;SHA-1;MD5;CRC32"
        );
        assert_eq!(
            feat_line(HashAlgorithm::Md5),
            "HASH SHA-256;SHA-1;MD5*;CRC32"
        );
    }
}
