//! `wharf storage scan`: objects written to the bucket by something other
//! than Wharf (an S3 tool, a data pipeline, a bucket migrated in) become
//! files of the namespace, so every node lists and serves them.
//!
//! The command line lists the bucket with its own credentials and commits
//! through any node, one log entry (`FsBatch`) per page of 500 objects: a
//! missing parent directory as `Mkdir`, a file as a done `Write` of its
//! object with `create_new`, so a name the namespace already has is left
//! alone (an object replaced under a known file is taken up by
//! the file's next read instead, see `cluster_fs::take_replaced`). The owner
//! is the user whose home holds the path (longest home first), charged with
//! no quota refusal: the bytes are already stored. Nothing is announced:
//! nothing was uploaded.

use std::collections::HashSet;
use std::future::Future;

use futures_util::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use wharf_store::records::{ObjectRef, Quota};
use wharf_store::{Command, CommandResult, FileWrite, Found, FsCommand, IMPORTED};

use super::Objects;
use crate::clock::unix_now;

/// Objects committed at once, in one log entry (an S3 listing page is up to
/// 1,000 keys).
const PAGE: usize = 500;

/// What a scan did, object by object.
#[derive(Debug, Default)]
pub struct Tally {
    pub listed: u64,
    pub imported: u64,
    /// Names the namespace already had (files or directories).
    pub known: u64,
    /// Folder markers (zero-byte `dir/` keys) recorded as directories (made,
    /// or there already).
    pub directories: u64,
    /// Objects left out, and why.
    pub skipped: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("listing the bucket failed: {0}")]
    Listing(String),
    #[error("committing {what} failed: {why}")]
    Commit { what: String, why: String },
}

/// The owners of paths: users and their homes as namespace paths.
pub struct Homes(Vec<(String, String)>);

impl Homes {
    /// From `(user, home)` pairs as accounts record them (`home/alice`,
    /// `/srv/ftp/bob/`): homes become absolute namespace paths.
    pub fn new(users: impl IntoIterator<Item = (String, String)>) -> Homes {
        let mut homes: Vec<(String, String)> = users
            .into_iter()
            .map(|(user, home)| {
                let parts: Vec<&str> = home
                    .split('/')
                    .filter(|p| !p.is_empty() && *p != ".")
                    .collect();
                (format!("/{}", parts.join("/")), user)
            })
            .collect();
        // Longest first: a home inside another one's belongs to its user.
        homes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Homes(homes)
    }

    /// The user whose home holds `path`; "" (nobody charged) for none.
    pub fn owner_of(&self, path: &str) -> &str {
        self.0
            .iter()
            .find(|(home, _)| {
                home == "/"
                    || path
                        .strip_prefix(home.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .map_or("", |(_, user)| user.as_str())
    }
}

impl Objects {
    /// The namespace path an object's key stands for: the key less the
    /// storage prefix; `None` for a key outside the prefix.
    pub fn path_of(&self, key: &str) -> Option<String> {
        match self.placement.prefix.as_str() {
            "" => Some(format!("/{key}")),
            prefix => key
                .strip_prefix(prefix)
                .filter(|rest| rest.starts_with('/'))
                .map(str::to_owned),
        }
    }

    /// Records every object under namespace path `under` ("/" for the whole
    /// bucket) that the namespace does not have, committing through `commit`.
    pub async fn scan<F, Fut>(
        &self,
        under: &str,
        homes: &Homes,
        commit: F,
    ) -> Result<Tally, ScanError>
    where
        F: Fn(Command) -> Fut,
        Fut: Future<Output = Result<CommandResult, String>>,
    {
        let prefix = match under.trim_matches('/') {
            "" if self.placement.prefix.is_empty() => None,
            "" => Some(super::recorded(&self.placement.prefix)),
            _ => Some(
                self.key(under)
                    .map_err(|e| ScanError::Listing(format!("{under}: {e}")))?,
            ),
        };
        let mut listing = self.store.list(prefix.as_ref()).chunks(PAGE);
        let mut tally = Tally::default();
        let mut made: HashSet<String> = HashSet::from(["/".to_owned()]);
        while let Some(page) = listing.next().await {
            // One log entry per page: new directories first, then the files.
            let mut changes = Vec::new();
            let mut meaning = Vec::new();
            for listed in page {
                let meta = listed.map_err(|e| ScanError::Listing(e.to_string()))?;
                tally.listed += 1;
                let key = meta.location.to_string();
                let Some(path) = self.path_of(&key) else {
                    tally
                        .skipped
                        .push((key, "outside the storage prefix".into()));
                    continue;
                };
                if path.starts_with("/.wharf-probe") {
                    continue;
                }
                // Listed without its slash, a `dir/` folder marker is not
                // there under the name it was listed as.
                let folder = meta.size == 0
                    && match self.store.head(&meta.location).await {
                        Ok(_) => false,
                        Err(object_store::Error::NotFound { .. }) => true,
                        Err(e) => return Err(ScanError::Listing(format!("checking {key}: {e}"))),
                    };
                if folder {
                    changes.push(mkdir(&path));
                    meaning.push(Change::Folder(path.clone()));
                    made.insert(path);
                    continue;
                }
                let parent = match path.rsplit_once('/') {
                    Some((dir, _)) if !dir.is_empty() => dir,
                    _ => "/",
                };
                if made.insert(parent.to_owned()) {
                    changes.push(mkdir(parent));
                    meaning.push(Change::Parent);
                }
                changes.push(FsCommand::Write(FileWrite {
                    upload: crate::cluster_fs::writer::new_upload_id(),
                    path: path.clone(),
                    chunks: Vec::new(),
                    from: 0,
                    mtime: u64::try_from(meta.last_modified.timestamp()).unwrap_or(0),
                    node: IMPORTED,
                    placed: Vec::new(),
                    done: true,
                    create_new: true,
                    owner: homes.owner_of(&path).to_owned(),
                    quota: Quota::default(),
                    found: Found::Unchecked,
                    object: Some(ObjectRef {
                        key,
                        etag: meta.e_tag.unwrap_or_default(),
                        size: meta.size,
                    }),
                    multipart: None,
                    inline: None,
                }));
                meaning.push(Change::File(path));
            }
            if changes.is_empty() {
                continue;
            }
            let results = match commit(Command::FsBatch(changes)).await {
                Ok(CommandResult::Batch(results)) if results.len() == meaning.len() => results,
                Ok(other) => {
                    return Err(ScanError::Commit {
                        what: "a page of objects".into(),
                        why: format!("answered {other:?}"),
                    })
                }
                Err(why) => {
                    return Err(ScanError::Commit {
                        what: "a page of objects".into(),
                        why,
                    })
                }
            };
            for (change, result) in meaning.into_iter().zip(results) {
                tally.count(change, result);
            }
        }
        Ok(tally)
    }
}

/// What one change of a page's batch stands for.
enum Change {
    /// A file's missing parent (its refusal shows in the file's result).
    Parent,
    Folder(String),
    File(String),
}

fn mkdir(path: &str) -> FsCommand {
    FsCommand::Mkdir {
        path: path.to_owned(),
        parents: true,
        mtime: unix_now(),
    }
}

impl Tally {
    fn count(&mut self, change: Change, result: CommandResult) {
        let why = match (change, result) {
            (Change::Parent, _) => return,
            (Change::Folder(_), CommandResult::Done) => {
                self.directories += 1;
                return;
            }
            (Change::File(_), CommandResult::Done) => {
                self.imported += 1;
                return;
            }
            (Change::File(_), CommandResult::AlreadyExists) => {
                self.known += 1;
                return;
            }
            (Change::Folder(path) | Change::File(path), result) => (path, result),
        };
        let reason = match why.1 {
            CommandResult::IsADirectory => "a directory has this name".to_owned(),
            CommandResult::AlreadyExists => "a file has this name".to_owned(),
            CommandResult::NotADirectory | CommandResult::NotFound => {
                "a file is in the way of its directory".to_owned()
            }
            CommandResult::Invalid(why) => why,
            other => format!("refused: {other:?}"),
        };
        self.skipped.push((why.0, reason));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_home_holding_a_path_owns_it() {
        let homes = Homes::new([
            ("alice".to_owned(), "home/alice".to_owned()),
            ("team".to_owned(), "/home/alice/shared/".to_owned()),
            ("bob".to_owned(), "./home/bob".to_owned()),
        ]);
        assert_eq!(homes.owner_of("/home/alice/a.csv"), "alice");
        assert_eq!(homes.owner_of("/home/alice/shared/x/y"), "team");
        assert_eq!(homes.owner_of("/home/bob/in/b"), "bob");
        // A name that only starts like a home is not in it.
        assert_eq!(homes.owner_of("/home/bobby/b"), "");
        assert_eq!(homes.owner_of("/elsewhere"), "");
        let everything = Homes::new([("root".to_owned(), "/".to_owned())]);
        assert_eq!(everything.owner_of("/any/thing"), "root");
    }
}
