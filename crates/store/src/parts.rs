//! Multipart uploads into object storage, as the namespace tracks them: the
//! `parts` table (one row per durable part, keyed by multipart id and index)
//! and the rules deciding which upload may add parts to, or complete, a
//! multipart upload — its own writer, or a resumption adopting it at its
//! durable offset, on any node. A writer whose multipart upload another
//! upload has taken over is refused (`Superseded`), so at most one upload
//! ever completes it.

use crate::command::{CommandResult, PartsWrite};
use crate::records::UploadRecord;

/// `parts` key of part `index` of multipart upload `id`.
pub fn part_key(id: &str, index: u64) -> Vec<u8> {
    let mut key = part_prefix(id);
    key.extend_from_slice(&(index as u32).to_be_bytes());
    key
}

/// The prefix of every `parts` key of multipart upload `id`.
pub fn part_prefix(id: &str) -> Vec<u8> {
    let mut key = id.as_bytes().to_vec();
    key.push(0);
    key
}

/// How a write naming a multipart upload relates to the file's pending
/// upload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The write's parts follow `from` kept ones, which hold `kept` bytes;
    /// `adopted` is the upload it takes the multipart upload over from.
    Continue { kept: u64, adopted: Option<String> },
    /// Refused, changing nothing.
    Refused(CommandResult),
}

/// Whether upload `upload` may write `m` to a file whose pending upload is
/// `pending` (`None`: no upload in flight, or one without a record). The
/// last write (`done`) completes the multipart upload, so it must be the
/// one holding it.
pub(crate) fn claim(
    m: &PartsWrite,
    upload: &str,
    done: bool,
    pending: Option<&UploadRecord>,
) -> Claim {
    let state = pending.and_then(|p| p.multipart.as_ref().map(|s| (p, s)));
    if done {
        return match state {
            Some((p, s)) if p.id == upload && s.id == m.id => Claim::Continue {
                kept: 0,
                adopted: None,
            },
            _ => Claim::Refused(CommandResult::Superseded),
        };
    }
    if let Some(old) = &m.adopt {
        return match state {
            Some((p, s)) if p.id == *old && s.id == m.id && s.parts == m.from => Claim::Continue {
                kept: p.durable,
                adopted: Some(old.clone()),
            },
            _ => Claim::Refused(CommandResult::Superseded),
        };
    }
    match state {
        // Its own upload: parts follow the last checkpoint, or restart from
        // 0 after a lost answer (rows are keyed by index: rewriting is safe).
        Some((p, s)) if p.id == upload && s.id == m.id => match m.from {
            0 => Claim::Continue {
                kept: 0,
                adopted: None,
            },
            from if from == s.parts => Claim::Continue {
                kept: p.durable,
                adopted: None,
            },
            _ => Claim::Refused(CommandResult::Resend),
        },
        // Another upload holds this multipart upload now (a resumption
        // adopted it): this writer is fenced off.
        Some((_, s)) if s.id == m.id => Claim::Refused(CommandResult::Superseded),
        // A new multipart upload: it starts from nothing, and as any write it
        // replaces whatever upload was in flight (the last writer wins).
        _ if m.from == 0 => Claim::Continue {
            kept: 0,
            adopted: None,
        },
        // Its record is gone (replaced by another upload, or forgotten).
        _ => Claim::Refused(CommandResult::Superseded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::MultipartState;

    fn pending(upload: &str, id: &str, parts: u64) -> UploadRecord {
        UploadRecord {
            id: upload.into(),
            path: "/a".into(),
            inode: 5,
            node: 1,
            durable: parts * 8,
            heartbeat: 0,
            multipart: Some(MultipartState {
                key: "a".into(),
                id: id.into(),
                parts,
                sha256: String::new(),
            }),
        }
    }

    fn parts(id: &str, from: u64, adopt: Option<&str>) -> PartsWrite {
        PartsWrite {
            key: "a".into(),
            id: id.into(),
            from,
            adopt: adopt.map(str::to_owned),
            ..PartsWrite::default()
        }
    }

    #[test]
    fn an_upload_continues_its_own_parts_and_resends_after_a_lost_answer() {
        let record = pending("u1", "m1", 3);
        let go = |kept| Claim::Continue {
            kept,
            adopted: None,
        };
        assert_eq!(
            claim(&parts("m1", 3, None), "u1", false, Some(&record)),
            go(24)
        );
        assert_eq!(
            claim(&parts("m1", 0, None), "u1", false, Some(&record)),
            go(0)
        );
        assert_eq!(
            claim(&parts("m1", 2, None), "u1", false, Some(&record)),
            Claim::Refused(CommandResult::Resend)
        );
        // The first checkpoint of a new multipart upload.
        assert_eq!(
            claim(&parts("m9", 0, None), "u9", false, Some(&record)),
            go(0)
        );
        assert_eq!(claim(&parts("m9", 0, None), "u9", false, None), go(0));
    }

    #[test]
    fn only_the_upload_holding_the_multipart_upload_completes_it() {
        let record = pending("u1", "m1", 3);
        let go = Claim::Continue {
            kept: 0,
            adopted: None,
        };
        assert_eq!(claim(&parts("m1", 3, None), "u1", true, Some(&record)), go);
        for (id, upload) in [("m1", "u2"), ("m2", "u1")] {
            assert_eq!(
                claim(&parts(id, 0, None), upload, true, Some(&record)),
                Claim::Refused(CommandResult::Superseded)
            );
        }
        assert_eq!(
            claim(&parts("m1", 0, None), "u1", true, None),
            Claim::Refused(CommandResult::Superseded)
        );
    }

    #[test]
    fn a_resumption_adopts_only_the_durable_end_and_fences_the_old_writer() {
        let record = pending("u1", "m1", 3);
        assert_eq!(
            claim(&parts("m1", 3, Some("u1")), "u2", false, Some(&record)),
            Claim::Continue {
                kept: 24,
                adopted: Some("u1".into()),
            }
        );
        for refused in [
            parts("m1", 2, Some("u1")),
            parts("m2", 3, Some("u1")),
            parts("m1", 3, Some("u0")),
        ] {
            assert_eq!(
                claim(&refused, "u2", false, Some(&record)),
                Claim::Refused(CommandResult::Superseded)
            );
        }
        assert_eq!(
            claim(&parts("m1", 3, Some("u1")), "u2", false, None),
            Claim::Refused(CommandResult::Superseded)
        );
        // Once u2 holds m1, u1's checkpoints (or a restart from 0) are refused.
        let adopted = pending("u2", "m1", 3);
        for from in [0, 3, 4] {
            assert_eq!(
                claim(&parts("m1", from, None), "u1", false, Some(&adopted)),
                Claim::Refused(CommandResult::Superseded)
            );
        }
        // A writer whose record is gone cannot go on either.
        assert_eq!(
            claim(&parts("m1", 3, None), "u1", false, None),
            Claim::Refused(CommandResult::Superseded)
        );
    }
}
