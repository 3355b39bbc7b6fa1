//! The namespace commands as the state machine applies them: directories of
//! any depth, renames as one entry move, uploads with checkpoints, chunk
//! reference counts, and refusals that leave the tables untouched.

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

use std::collections::BTreeMap;

use crate::records::{ChunkHash, ChunkRecord, ChunkRef, ObjectRef, Quota, UsageRecord};
use crate::ChunkState;
use crate::{
    open, Command, CommandResult, FileWrite, Found, FsCommand, ObjectMove, OpenedStore, TypeConfig,
};

struct Fs {
    _dir: tempfile::TempDir,
    store: OpenedStore,
    index: u64,
}

impl Fs {
    async fn new() -> Fs {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await.unwrap();
        Fs {
            _dir: dir,
            store,
            index: 0,
        }
    }

    async fn run(&mut self, command: FsCommand) -> CommandResult {
        self.index += 1;
        let entry = Entry::<TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), self.index),
            payload: EntryPayload::Normal(Command::Fs(command)),
        };
        self.store.state_machine.apply(vec![entry]).await.unwrap()[0].clone()
    }

    async fn run_batch(&mut self, commands: Vec<FsCommand>) -> CommandResult {
        self.index += 1;
        let entry = Entry::<TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), self.index),
            payload: EntryPayload::Normal(Command::FsBatch(commands)),
        };
        self.store.state_machine.apply(vec![entry]).await.unwrap()[0].clone()
    }

    async fn mkdir(&mut self, path: &str) -> CommandResult {
        self.run(FsCommand::Mkdir {
            path: path.into(),
            parents: false,
            mtime: 10,
        })
        .await
    }

    async fn write(
        &mut self,
        upload: &str,
        path: &str,
        parts: &[&[u8]],
        done: bool,
    ) -> CommandResult {
        self.append(upload, path, 0, parts, done).await
    }

    /// A checkpoint of `upload` sending only the chunks after the first `from`.
    async fn append(
        &mut self,
        upload: &str,
        path: &str,
        from: u64,
        parts: &[&[u8]],
        done: bool,
    ) -> CommandResult {
        let chunks: Vec<ChunkRef> = parts.iter().map(|p| chunk(p)).collect();
        let placed = chunks.iter().map(|c| (c.hash, vec![1, 2])).collect();
        self.run(FsCommand::Write(FileWrite {
            upload: upload.into(),
            from,
            path: path.into(),
            chunks,
            mtime: 20,
            node: 1,
            placed,
            done,
            create_new: false,
            owner: "alice".into(),
            quota: Quota::default(),
            found: Found::Unchecked,
            object: None,
            multipart: None,
            inline: None,
        }))
        .await
    }

    fn content(&self, path: &str) -> Vec<ChunkRef> {
        let file = self
            .store
            .reader
            .lookup(path)
            .unwrap()
            .expect("file exists");
        self.store.reader.file_chunks(&file).unwrap()
    }

    fn names(&self, path: &str) -> Vec<String> {
        let dir = self
            .store
            .reader
            .lookup(path)
            .unwrap()
            .expect("directory exists");
        let mut names: Vec<String> = self
            .store
            .reader
            .children(dir.id)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.sort();
        names
    }

    fn refs(&self, bytes: &[u8]) -> Option<u64> {
        self.store
            .reader
            .chunk(&ChunkHash::of(bytes))
            .unwrap()
            .map(|c| c.refs)
    }
}

pub(crate) fn upload(upload: &str, path: &str, bytes: &[u8]) -> FsCommand {
    let chunk = chunk(bytes);
    FsCommand::Write(FileWrite {
        upload: upload.into(),
        from: 0,
        path: path.into(),
        placed: vec![(chunk.hash, vec![1])],
        chunks: vec![chunk],
        mtime: 30,
        node: 1,
        done: true,
        create_new: false,
        owner: "alice".into(),
        quota: Quota::default(),
        found: Found::Unchecked,
        object: None,
        multipart: None,
        inline: None,
    })
}

fn chunk(bytes: &[u8]) -> ChunkRef {
    ChunkRef {
        hash: ChunkHash::of(bytes),
        len: bytes.len() as u64,
    }
}

#[tokio::test]
async fn directories_nest_and_refuse_what_posix_refuses() {
    let mut fs = Fs::new().await;
    assert_eq!(fs.mkdir("/a").await, CommandResult::Done);
    assert_eq!(fs.mkdir("/a").await, CommandResult::AlreadyExists);
    assert_eq!(fs.mkdir("/x/y").await, CommandResult::NotFound);
    let deep = FsCommand::Mkdir {
        path: "/home/alice/in/box".into(),
        parents: true,
        mtime: 1,
    };
    assert_eq!(fs.run(deep.clone()).await, CommandResult::Done);
    assert_eq!(
        fs.run(deep).await,
        CommandResult::Done,
        "mkdir -p is idempotent"
    );
    assert_eq!(fs.names("/"), vec!["a", "home"]);
    assert_eq!(fs.names("/home/alice/in"), vec!["box"]);
    assert!(fs
        .store
        .reader
        .lookup("/home/alice/in/box")
        .unwrap()
        .unwrap()
        .is_dir());

    assert_eq!(
        fs.write("u1", "/a/f", &[b"x"], true).await,
        CommandResult::Done
    );
    assert_eq!(fs.mkdir("/a/f/g").await, CommandResult::NotADirectory);
    assert_eq!(
        fs.run(FsCommand::Rmdir { path: "/a".into() }).await,
        CommandResult::NotEmpty
    );
    assert_eq!(
        fs.run(FsCommand::Rmdir {
            path: "/a/f".into()
        })
        .await,
        CommandResult::NotADirectory
    );
    assert_eq!(
        fs.run(FsCommand::Remove { path: "/a".into() }).await,
        CommandResult::IsADirectory
    );
    assert_eq!(
        fs.run(FsCommand::Remove {
            path: "/a/f".into()
        })
        .await,
        CommandResult::Done
    );
    assert_eq!(
        fs.run(FsCommand::Rmdir { path: "/a".into() }).await,
        CommandResult::Done
    );
    assert_eq!(
        fs.run(FsCommand::Rmdir { path: "/".into() }).await,
        CommandResult::Invalid("the root stays".into())
    );
    assert!(matches!(
        fs.mkdir("/a/../b").await,
        CommandResult::Invalid(_)
    ));
    assert_eq!(fs.names("/"), vec!["home"]);
}

#[tokio::test]
async fn rename_moves_one_entry_replaces_files_and_never_nests_a_directory_in_itself() {
    let mut fs = Fs::new().await;
    fs.mkdir("/d").await;
    fs.mkdir("/d/sub").await;
    fs.write("u1", "/d/sub/f", &[b"one"], true).await;
    let id = fs.store.reader.lookup("/d").unwrap().unwrap().id;
    let rename = |from: &str, to: &str| FsCommand::Rename {
        from: from.into(),
        to: to.into(),
        objects: Vec::new(),
    };
    assert_eq!(fs.run(rename("/d", "/e")).await, CommandResult::Done);
    assert_eq!(
        fs.store.reader.lookup("/e").unwrap().unwrap().id,
        id,
        "same inode, moved"
    );
    assert!(fs.store.reader.lookup("/d").unwrap().is_none());
    assert!(
        fs.store.reader.lookup("/e/sub/f").unwrap().is_some(),
        "contents move along"
    );
    assert!(matches!(
        fs.run(rename("/e", "/e/sub/inner")).await,
        CommandResult::Invalid(_)
    ));
    assert_eq!(
        fs.run(rename("/missing", "/z")).await,
        CommandResult::NotFound
    );
    assert_eq!(
        fs.run(rename("/e/sub/f", "/nowhere/f")).await,
        CommandResult::NotFound
    );

    fs.write("u2", "/g", &[b"two"], true).await;
    assert_eq!(
        fs.run(rename("/g", "/e")).await,
        CommandResult::AlreadyExists
    );
    assert_eq!(fs.run(rename("/g", "/e/sub/f")).await, CommandResult::Done);
    let f = fs.store.reader.lookup("/e/sub/f").unwrap().unwrap();
    assert_eq!(
        fs.store.reader.file_chunks(&f).unwrap(),
        vec![chunk(b"two")]
    );
    assert_eq!(
        fs.refs(b"one"),
        Some(0),
        "the replaced file's chunk is unreferenced"
    );
    assert_eq!(fs.refs(b"two"), Some(1));
}

#[tokio::test]
async fn checkpoints_show_the_durable_prefix_and_the_end_commits_the_whole_file() {
    let mut fs = Fs::new().await;
    fs.write("old", "/f", &[b"old content"], true).await;
    assert_eq!(fs.refs(b"old content"), Some(1));

    // A new upload over it: the first checkpoint replaces the content with the
    // prefix received so far, so SIZE tells a resuming client where to go on.
    fs.write("new", "/f", &[b"aaaa"], false).await;
    let f = fs.store.reader.lookup("/f").unwrap().unwrap();
    assert_eq!((f.size, f.upload.as_deref()), (4, Some("new")));
    assert_eq!(fs.refs(b"old content"), Some(0));
    let uploads = fs.store.reader.uploads().unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!((uploads[0].durable, uploads[0].node), (4, 1));

    fs.write("new", "/f", &[b"aaaa", b"bb"], false).await;
    fs.write("new", "/f", &[b"aaaa", b"bb", b"c"], true).await;
    let f = fs.store.reader.lookup("/f").unwrap().unwrap();
    assert_eq!((f.size, f.upload), (7, None));
    assert!(fs.store.reader.uploads().unwrap().is_empty());
    assert_eq!(
        (fs.refs(b"aaaa"), fs.refs(b"bb"), fs.refs(b"c")),
        (Some(1), Some(1), Some(1))
    );
    let record = fs
        .store
        .reader
        .chunk(&ChunkHash::of(b"bb"))
        .unwrap()
        .unwrap();
    assert_eq!(record.replicas, vec![1, 2]);

    // Same chunk twice in one file counts twice; deleting releases both.
    fs.write("dup", "/twice", &[b"c", b"c"], true).await;
    assert_eq!(fs.refs(b"c"), Some(3));
    fs.run(FsCommand::Remove {
        path: "/twice".into(),
    })
    .await;
    assert_eq!(fs.refs(b"c"), Some(1));
    assert_eq!(
        fs.run(FsCommand::ForgetChunk {
            hash: ChunkHash::of(b"c")
        })
        .await,
        CommandResult::Invalid("the chunk is in use".into())
    );
    assert_eq!(
        fs.run(FsCommand::ForgetChunk {
            hash: ChunkHash::of(b"old content")
        })
        .await,
        CommandResult::Done
    );
    assert_eq!(fs.refs(b"old content"), None);
}

#[tokio::test]
async fn writes_into_missing_directories_or_over_directories_are_refused() {
    let mut fs = Fs::new().await;
    fs.mkdir("/d").await;
    assert_eq!(
        fs.write("u", "/nope/f", &[b"x"], true).await,
        CommandResult::NotFound
    );
    assert_eq!(
        fs.write("u", "/d", &[b"x"], true).await,
        CommandResult::IsADirectory
    );
    assert_eq!(fs.refs(b"x"), None, "a refused write counts no reference");
    let unique = |upload: &str| {
        FsCommand::Write(FileWrite {
            upload: upload.into(),
            from: 0,
            path: "/d/unique".into(),
            chunks: vec![],
            mtime: 1,
            node: 1,
            placed: vec![],
            done: false,
            create_new: true,
            owner: String::new(),
            quota: Quota::default(),
            found: Found::Unchecked,
            object: None,
            multipart: None,
            inline: None,
        })
    };
    assert_eq!(fs.run(unique("first")).await, CommandResult::Done);
    assert_eq!(
        fs.run(unique("first")).await,
        CommandResult::Done,
        "its own checkpoint"
    );
    assert_eq!(fs.run(unique("second")).await, CommandResult::AlreadyExists);
}

#[tokio::test]
async fn abandoned_uploads_are_forgotten_and_the_file_keeps_its_prefix() {
    let mut fs = Fs::new().await;
    fs.write("gone", "/f", &[b"part"], false).await;
    assert_eq!(
        fs.run(FsCommand::ForgetUpload {
            id: "gone".into(),
            time_ms: 0
        })
        .await,
        CommandResult::Done
    );
    let f = fs.store.reader.lookup("/f").unwrap().unwrap();
    assert_eq!((f.size, f.upload), (4, None));
    assert!(fs.store.reader.uploads().unwrap().is_empty());
    assert_eq!(
        fs.run(FsCommand::ForgetUpload {
            id: "gone".into(),
            time_ms: 0
        })
        .await,
        CommandResult::NotFound
    );
}

#[tokio::test]
async fn quotas_count_bytes_and_files_per_owner_and_refuse_without_changing_anything() {
    let mut fs = Fs::new().await;
    let write = |path: &str, parts: &[&[u8]], quota: Quota| {
        FsCommand::Write(FileWrite {
            upload: format!("u-{path}-{}", parts.len()),
            from: 0,
            path: path.into(),
            chunks: parts.iter().map(|p| chunk(p)).collect(),
            mtime: 1,
            node: 1,
            placed: vec![],
            done: true,
            create_new: false,
            owner: "bob".into(),
            quota,
            found: Found::Unchecked,
            object: None,
            multipart: None,
            inline: None,
        })
    };
    let limit = Quota {
        bytes: 10,
        files: 2,
    };
    assert_eq!(
        fs.run(write("/a", &[b"12345"], limit)).await,
        CommandResult::Done
    );
    assert_eq!(
        fs.run(write("/b", &[b"1234"], limit)).await,
        CommandResult::Done
    );
    let usage = fs.store.reader.usage("bob").unwrap();
    assert_eq!(usage, UsageRecord { bytes: 9, files: 2 });
    // A third file, or growing past 10 bytes, is refused and changes nothing.
    assert_eq!(
        fs.run(write("/c", &[b"1"], limit)).await,
        CommandResult::QuotaExceeded
    );
    assert_eq!(
        fs.run(write("/b", &[b"123456"], limit)).await,
        CommandResult::QuotaExceeded
    );
    assert!(fs.store.reader.lookup("/c").unwrap().is_none());
    assert_eq!(fs.store.reader.lookup("/b").unwrap().unwrap().size, 4);
    assert_eq!(fs.refs(b"123456"), None);
    assert_eq!(fs.store.reader.usage("bob").unwrap(), usage);
    // Overwriting within the limit and deleting are charged exactly.
    assert_eq!(
        fs.run(write("/b", &[b"12345"], limit)).await,
        CommandResult::Done
    );
    assert_eq!(
        fs.store.reader.usage("bob").unwrap(),
        UsageRecord {
            bytes: 10,
            files: 2
        }
    );
    fs.run(FsCommand::Remove { path: "/a".into() }).await;
    assert_eq!(
        fs.store.reader.usage("bob").unwrap(),
        UsageRecord { bytes: 5, files: 1 }
    );
    assert_eq!(
        fs.run(write("/c", &[b"1"], limit)).await,
        CommandResult::Done
    );
}

#[tokio::test]
async fn an_upload_overtaken_by_a_newer_one_cannot_overwrite_it() {
    let mut fs = Fs::new().await;
    let write = |upload: &str, found: Found, parts: &[&[u8]], done: bool| {
        FsCommand::Write(FileWrite {
            upload: upload.into(),
            from: 0,
            path: "/f".into(),
            chunks: parts.iter().map(|p| chunk(p)).collect(),
            mtime: 1,
            node: 1,
            placed: vec![],
            done,
            create_new: false,
            owner: "alice".into(),
            quota: Quota::default(),
            found,
            object: None,
            multipart: None,
            inline: None,
        })
    };
    let current = |fs: &Fs| {
        let inode = fs.store.reader.lookup("/f").unwrap();
        let dir = fs.store.reader.lookup("/").unwrap();
        (
            Found::of(inode.as_ref(), dir.as_ref()),
            inode.map(|i| i.size),
        )
    };
    // Both began with no file; the later one finished first. The earlier
    // one, abandoned and finished late, must not replace it.
    let (absent, _) = current(&fs);
    assert_eq!(
        fs.run(write("quick", absent, &[b"complete"], true)).await,
        CommandResult::Done
    );
    assert_eq!(
        fs.run(write("late", absent, &[b"part"], true)).await,
        CommandResult::Superseded
    );
    assert_eq!(current(&fs).1, Some(8));
    assert_eq!(
        fs.refs(b"part"),
        None,
        "a refused write counts no reference"
    );

    // An upload that found the file as it is replaces it, and its own later
    // checkpoints apply although the file has changed since it began.
    let (found, _) = current(&fs);
    assert_eq!(
        fs.run(write("next", found, &[b"a"], false)).await,
        CommandResult::Done
    );
    assert_eq!(
        fs.run(write("next", found, &[b"a", b"bc"], true)).await,
        CommandResult::Done
    );
    assert_eq!(current(&fs).1, Some(3));

    // Overtaken after its first checkpoint: later writes are refused too.
    let (found, _) = current(&fs);
    assert_eq!(
        fs.run(write("slow", found, &[b"s"], false)).await,
        CommandResult::Done
    );
    let (now, _) = current(&fs);
    assert_eq!(
        fs.run(write("fast", now, &[b"fast"], true)).await,
        CommandResult::Done
    );
    assert_eq!(
        fs.run(write("slow", found, &[b"s", b"t"], true)).await,
        CommandResult::Superseded
    );
    assert_eq!(current(&fs).1, Some(4));
    assert!(fs.store.reader.uploads().unwrap().is_empty());

    // Made and removed while an abandoned upload waited: the upload finds no
    // file again, but must not bring one back.
    assert_eq!(
        fs.run(FsCommand::Remove { path: "/f".into() }).await,
        CommandResult::Done
    );
    let (absent, _) = current(&fs);
    assert_eq!(
        fs.run(write("made", absent, &[b"m"], true)).await,
        CommandResult::Done
    );
    assert_eq!(
        fs.run(FsCommand::Remove { path: "/f".into() }).await,
        CommandResult::Done
    );
    assert_eq!(
        fs.run(write("waited", absent, &[b"w"], true)).await,
        CommandResult::Superseded
    );
    assert_eq!(current(&fs).1, None, "the removed file stays removed");
    // Files made beside it do not stop an abandoned upload from finishing.
    let (absent, _) = current(&fs);
    fs.mkdir("/other").await;
    assert_eq!(
        fs.run(write("cut", absent, &[b"kept"], true)).await,
        CommandResult::Done
    );
    assert_eq!(current(&fs).1, Some(4));
}

#[tokio::test]
async fn a_batch_applies_in_order_each_change_seeing_the_ones_before_it() {
    let mut fs = Fs::new().await;
    let mkdir = |path: &str| FsCommand::Mkdir {
        path: path.into(),
        parents: false,
        mtime: 1,
    };
    let result = fs
        .run_batch(vec![
            mkdir("/in"),
            upload("u1", "/in/a", b"same bytes"),
            upload("u2", "/in/b", b"same bytes"),
            mkdir("/in"),
            FsCommand::Remove {
                path: "/in/a".into(),
            },
            FsCommand::Remove {
                path: "/in/missing".into(),
            },
        ])
        .await;
    assert_eq!(
        result,
        CommandResult::Batch(vec![
            CommandResult::Done,
            CommandResult::Done,
            CommandResult::Done,
            CommandResult::AlreadyExists,
            CommandResult::Done,
            CommandResult::NotFound,
        ])
    );
    assert_eq!(fs.names("/in"), vec!["b"]);
    assert_eq!(
        fs.refs(b"same bytes"),
        Some(1),
        "two uploads of one chunk, one removed, all in one entry"
    );
    let usage = fs.store.reader.usage("alice").unwrap();
    assert_eq!((usage.bytes, usage.files), (10, 1));
}

#[tokio::test]
async fn checkpoints_append_only_their_new_chunks_and_the_file_reads_whole() {
    let mut fs = Fs::new().await;
    let parts: Vec<Vec<u8>> = (0..2_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    assert_eq!(
        fs.write("u1", "/big", &refs[..4], false).await,
        CommandResult::Done
    );
    for from in (4..2_000).step_by(4) {
        let done = from + 4 == 2_000;
        assert_eq!(
            fs.append("u1", "/big", from as u64, &refs[from..from + 4], done)
                .await,
            CommandResult::Done
        );
    }
    let expected: Vec<ChunkRef> = refs.iter().map(|p| chunk(p)).collect();
    assert_eq!(fs.content("/big"), expected);
    let file = fs.store.reader.lookup("/big").unwrap().unwrap();
    assert_eq!((file.size, file.extents, file.upload), (8_000, 2_000, None));
    assert!(
        file.chunks.is_empty(),
        "chunks are in the extents table, not the record"
    );
    assert_eq!(fs.refs(&parts[1_999]), Some(1));
    assert_eq!(fs.store.reader.usage("alice").unwrap().bytes, 8_000);

    // Overwritten by a shorter file: the old positions go, their chunks lose a reference.
    fs.write("u2", "/big", &[b"short"], true).await;
    assert_eq!(fs.content("/big"), vec![chunk(b"short")]);
    assert_eq!(fs.refs(&parts[1_999]), Some(0));
    assert_eq!(fs.store.reader.usage("alice").unwrap().bytes, 5);
    assert_eq!(
        fs.run(FsCommand::Remove {
            path: "/big".into()
        })
        .await,
        CommandResult::Done
    );
    assert_eq!(fs.refs(b"short"), Some(0));
}

#[tokio::test]
async fn a_checkpoint_that_does_not_continue_the_file_is_answered_resend_and_changes_nothing() {
    let mut fs = Fs::new().await;
    assert_eq!(
        fs.append("u1", "/f", 1, &[b"b"], false).await,
        CommandResult::Resend
    );
    assert!(fs.store.reader.lookup("/f").unwrap().is_none());

    fs.write("u1", "/f", &[b"a"], false).await;
    // Another upload to the same name takes the file over.
    fs.write("u2", "/f", &[b"x", b"y"], false).await;
    assert_eq!(
        fs.append("u1", "/f", 1, &[b"b"], false).await,
        CommandResult::Resend
    );
    assert_eq!(fs.content("/f"), vec![chunk(b"x"), chunk(b"y")]);
    // Its own file, but not where it thinks the file ends.
    assert_eq!(
        fs.append("u2", "/f", 1, &[b"z"], false).await,
        CommandResult::Resend
    );
    assert_eq!(
        fs.append("u2", "/f", 2, &[b"z"], true).await,
        CommandResult::Done
    );
    assert_eq!(
        fs.content("/f"),
        vec![chunk(b"x"), chunk(b"y"), chunk(b"z")]
    );
    assert_eq!(fs.refs(b"a"), Some(0));
}

#[tokio::test]
async fn a_file_written_by_an_earlier_release_keeps_its_inline_chunks_until_it_is_written() {
    let mut fs = Fs::new().await;
    fs.write("u1", "/old", &[b"p", b"q"], false).await;
    // The record as releases before `extents` wrote it: the list inline.
    let db = fs.store.state_machine.db();
    let mut legacy = fs.store.reader.lookup("/old").unwrap().unwrap();
    legacy.chunks = fs.content("/old");
    legacy.extents = 0;
    let mut batch = rocksdb::WriteBatch::default();
    for position in 0..2u64 {
        crate::table::delete(
            &db,
            &mut batch,
            "extents",
            &crate::namespace::extent_key(legacy.id, position),
        )
        .unwrap();
    }
    crate::table::put(&db, &mut batch, "inodes", &legacy.id.to_be_bytes(), &legacy).unwrap();
    db.write(batch).unwrap();
    assert_eq!(fs.content("/old"), vec![chunk(b"p"), chunk(b"q")]);

    // Its upload goes on: the kept chunks move to `extents` with the new one.
    assert_eq!(
        fs.append("u1", "/old", 2, &[b"r"], true).await,
        CommandResult::Done
    );
    let file = fs.store.reader.lookup("/old").unwrap().unwrap();
    assert!(file.chunks.is_empty());
    assert_eq!(file.extents, 3);
    assert_eq!(
        fs.content("/old"),
        vec![chunk(b"p"), chunk(b"q"), chunk(b"r")]
    );
    assert_eq!(file.size, 3);
    assert_eq!(fs.refs(b"p"), Some(1));
}

impl Fs {
    /// The census and the chunk states as the reader gives them, checked
    /// against a count made from the chunk records themselves.
    fn census_matches_the_records(&self) -> Vec<(ChunkState, u64)> {
        let db = self.store.state_machine.db();
        let records: Vec<ChunkRecord> = crate::compact::scan(&db, "chunks").unwrap();
        let mut expected: BTreeMap<ChunkState, Vec<ChunkHash>> = BTreeMap::new();
        for record in &records {
            expected
                .entry(ChunkState::of(record))
                .or_default()
                .push(record.hash);
        }
        let census = self.store.reader.chunk_census().unwrap();
        let counted: Vec<(ChunkState, u64)> = expected
            .iter()
            .map(|(state, hashes)| (state.clone(), hashes.len() as u64))
            .collect();
        assert_eq!(census, counted);
        for (state, hashes) in expected {
            // One record per page: the cursor walks the whole state.
            let mut walked = Vec::new();
            let mut after = None;
            loop {
                let page = self
                    .store
                    .reader
                    .chunks_in(&state, after.as_ref(), 1)
                    .unwrap();
                let Some(last) = page.last() else { break };
                after = Some(last.hash);
                walked.extend(page.iter().map(|c| c.hash));
            }
            let mut hashes = hashes;
            hashes.sort();
            assert_eq!(walked, hashes, "chunks in {state:?}");
        }
        census
    }
}

#[tokio::test]
async fn the_chunk_census_follows_every_change_and_is_rebuilt_from_the_records_alone() {
    let mut fs = Fs::new().await;
    fs.write("u1", "/a", &[b"one", b"shared"], true).await;
    fs.write("u2", "/b", &[b"shared", b"two"], true).await;
    assert_eq!(
        fs.census_matches_the_records(),
        vec![(ChunkState::Placed(vec![1, 2]), 3)]
    );

    let two = ChunkHash::of(b"two");
    let set = FsCommand::SetReplicas {
        hash: two,
        replicas: vec![3, 1, 2],
    };
    assert_eq!(fs.run(set).await, CommandResult::Done);
    fs.run(FsCommand::Remove { path: "/a".into() }).await;
    assert_eq!(
        fs.census_matches_the_records(),
        vec![
            (ChunkState::Unreferenced, 1),
            (ChunkState::Placed(vec![1, 2]), 1),
            (ChunkState::Placed(vec![1, 2, 3]), 1),
        ]
    );

    // The leader's upkeep forgets the unused chunk; a batch moves two chunks
    // in one entry and the counts add up.
    let one = ChunkHash::of(b"one");
    assert_eq!(
        fs.run(FsCommand::ForgetChunk { hash: one }).await,
        CommandResult::Done
    );
    fs.run_batch(vec![
        FsCommand::SetReplicas {
            hash: ChunkHash::of(b"shared"),
            replicas: vec![2],
        },
        FsCommand::SetReplicas {
            hash: two,
            replicas: vec![2],
        },
        FsCommand::Remove { path: "/b".into() },
    ])
    .await;
    let settled = fs.census_matches_the_records();
    assert_eq!(settled, vec![(ChunkState::Unreferenced, 2)]);

    // Lost or stale index tables (an install, an earlier release) are built
    // again from `chunks` when the store opens.
    let db = fs.store.state_machine.db();
    let mut batch = rocksdb::WriteBatch::default();
    crate::chunk_health::forget_index(&db, &mut batch).unwrap();
    db.write(batch).unwrap();
    crate::table::clear(&db, crate::chunk_health::CHUNK_CENSUS).unwrap();
    db.put_cf(
        crate::table::cf(&db, crate::chunk_health::CHUNK_STATES).unwrap(),
        [9u8; 40],
        [],
    )
    .unwrap();
    crate::chunk_health::ensure_indexed(&db).unwrap();
    assert_eq!(fs.census_matches_the_records(), settled);
}

fn announced(change: FsCommand, sha256: &str) -> FsCommand {
    FsCommand::Announced(Box::new(crate::Announced {
        change,
        origin: crate::events::Origin {
            user: "alice".into(),
            home: "/home/alice".into(),
            node: 2,
            session: "2-7".into(),
            client: "192.0.2.1".into(),
            time_ms: 1_000,
        },
        upload: Some(crate::events::UploadFacts {
            sha256: sha256.into(),
            replaced: false,
        }),
    }))
}

fn kinds(fs: &Fs) -> Vec<crate::events::EventKind> {
    let events = fs.store.reader.events_after(0, 100).unwrap();
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] + 1 == w[1]), "ids {ids:?}");
    events.into_iter().map(|e| e.kind).collect()
}

#[tokio::test]
async fn an_announced_change_records_its_event_once_and_only_when_it_succeeds() {
    use crate::events::EventKind;
    let mut fs = Fs::new().await;
    fs.run(FsCommand::Mkdir {
        path: "/home/alice".into(),
        parents: true,
        mtime: 1,
    })
    .await;
    let mkdir = FsCommand::Mkdir {
        path: "/home/alice/in".into(),
        parents: false,
        mtime: 2,
    };
    assert_eq!(
        fs.run(announced(mkdir.clone(), "")).await,
        CommandResult::Done
    );
    // Refused (it exists): no event.
    assert_eq!(
        fs.run(announced(mkdir, "")).await,
        CommandResult::AlreadyExists
    );
    let put = upload("u1", "/home/alice/in/a.csv", b"abc");
    assert_eq!(
        fs.run(announced(put.clone(), "d1")).await,
        CommandResult::Done
    );
    // The same completion committed again (a retried write): one event.
    assert_eq!(
        fs.run_batch(vec![announced(put, "d1")]).await,
        CommandResult::Batch(vec![CommandResult::Done])
    );
    let gone = FsCommand::Remove {
        path: "/home/alice/in/missing".into(),
    };
    assert_eq!(fs.run(announced(gone, "")).await, CommandResult::NotFound);
    let events = kinds(&fs);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], EventKind::DirCreated { path: "/in".into() });
    assert_eq!(
        events[1],
        EventKind::FileUploaded {
            path: "/in/a.csv".into(),
            size: 3,
            sha256: "d1".into(),
            mtime: 30,
            replaced: false,
            upload: "u1".into(),
        }
    );
    let first = &fs.store.reader.events_after(0, 1).unwrap()[0];
    assert_eq!(
        (first.user.as_str(), first.node, first.session.as_str()),
        ("alice", 2, "2-7")
    );
    assert_eq!((first.client.as_str(), first.time_ms), ("192.0.2.1", 1_000));
}

#[tokio::test]
async fn a_change_made_outside_the_namespace_records_only_its_event_once() {
    use crate::events::{EventKind, Origin};
    let mut fs = Fs::new().await;
    let uploaded = EventKind::FileUploaded {
        path: "/in/a.csv".into(),
        size: 3,
        sha256: "d1".into(),
        mtime: 30,
        replaced: true,
        upload: "local-1".into(),
    };
    let happened = |kind: EventKind| {
        FsCommand::Happened(Box::new(crate::Happened {
            origin: Origin {
                user: "alice".into(),
                node: 1,
                session: "1-4".into(),
                client: "192.0.2.9".into(),
                time_ms: 5_000,
                ..Origin::default()
            },
            kind,
        }))
    };
    assert_eq!(
        fs.run(happened(uploaded.clone())).await,
        CommandResult::Done
    );
    // The same upload's entry again (a retried write): still one event.
    assert_eq!(
        fs.run_batch(vec![happened(uploaded.clone())]).await,
        CommandResult::Batch(vec![CommandResult::Done])
    );
    let gone = EventKind::FileDeleted {
        path: "/in/a.csv".into(),
    };
    assert_eq!(fs.run(happened(gone.clone())).await, CommandResult::Done);
    assert_eq!(kinds(&fs), [uploaded, gone]);
    // Nothing entered the namespace.
    assert_eq!(fs.store.reader.lookup("/in").unwrap(), None);
    let first = &fs.store.reader.events_after(0, 1).unwrap()[0];
    assert_eq!(
        (first.user.as_str(), first.session.as_str(), first.time_ms),
        ("alice", "1-4", 5_000)
    );
}

#[tokio::test]
async fn an_abandoned_upload_is_announced_and_pruning_forgets_events() {
    use crate::events::EventKind;
    let mut fs = Fs::new().await;
    fs.run(FsCommand::Mkdir {
        path: "/d".into(),
        parents: true,
        mtime: 1,
    })
    .await;
    fs.write("gone", "/d/part", &[b"0123"], false).await;
    assert_eq!(
        fs.run(FsCommand::ForgetUpload {
            id: "gone".into(),
            time_ms: 5_000
        })
        .await,
        CommandResult::Done
    );
    let put = upload("u2", "/d/whole", b"xyz");
    fs.run(announced(put.clone(), "d2")).await;
    let events = kinds(&fs);
    assert_eq!(
        events[0],
        EventKind::UploadAbandoned {
            path: "/d/part".into(),
            durable_offset: 4
        }
    );
    assert_eq!(fs.store.reader.last_event_id().unwrap(), 2);

    // Pruned, the events go, the ids go on, and the upload's dedup entry
    // goes with its event (its completion would be announced anew).
    fs.store
        .state_machine
        .apply(vec![Entry::<TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 100),
            payload: EntryPayload::Normal(Command::PruneEvents {
                through: 2,
                dropped: 1,
            }),
        }])
        .await
        .unwrap();
    fs.index = 100;
    assert!(fs.store.reader.events_after(0, 10).unwrap().is_empty());
    assert_eq!(fs.store.reader.events_dropped().unwrap(), 1);
    fs.run(announced(put, "d2")).await;
    let after = fs.store.reader.events_after(0, 10).unwrap();
    assert_eq!(after.iter().map(|e| e.id).collect::<Vec<_>>(), vec![3]);
}

/// An upload to object storage: the whole file is `key`, of `size` bytes.
fn object_upload(upload: &str, path: &str, key: &str, size: u64, quota: Quota) -> FsCommand {
    FsCommand::Write(FileWrite {
        upload: upload.into(),
        from: 0,
        path: path.into(),
        chunks: Vec::new(),
        mtime: 40,
        node: 1,
        placed: Vec::new(),
        done: true,
        create_new: false,
        owner: "alice".into(),
        quota,
        found: Found::Unchecked,
        object: Some(object(key, size)),
        multipart: None,
        inline: None,
    })
}

fn object(key: &str, size: u64) -> ObjectRef {
    ObjectRef {
        key: key.into(),
        etag: format!("\"{key}-etag\""),
        size,
    }
}

#[tokio::test]
async fn a_file_on_object_storage_is_its_object_and_counts_against_the_quota() {
    let mut fs = Fs::new().await;
    fs.mkdir("/in").await;
    let quota = Quota {
        bytes: 100,
        files: 0,
    };
    let put = object_upload("u1", "/in/a", "p/in/a", 60, quota);
    assert_eq!(fs.run(put).await, CommandResult::Done);
    let file = fs.store.reader.lookup("/in/a").unwrap().unwrap();
    assert_eq!(file.size, 60);
    assert_eq!(file.object, Some(object("p/in/a", 60)));
    assert_eq!(file.generation, 1);
    assert!(fs.content("/in/a").is_empty(), "no chunks");
    assert_eq!(fs.store.reader.usage("alice").unwrap().bytes, 60);

    // An overwrite replaces the object and counts as a new generation.
    let again = object_upload("u2", "/in/a", "p/in/a", 90, quota);
    assert_eq!(fs.run(again).await, CommandResult::Done);
    let file = fs.store.reader.lookup("/in/a").unwrap().unwrap();
    assert_eq!((file.size, file.generation), (90, 2));
    assert_eq!(fs.store.reader.usage("alice").unwrap().bytes, 90);

    // A second file past the quota is refused and changes nothing.
    let over = object_upload("u3", "/in/b", "p/in/b", 20, quota);
    assert_eq!(fs.run(over).await, CommandResult::QuotaExceeded);
    assert!(fs.store.reader.lookup("/in/b").unwrap().is_none());

    // Content is an object or chunks, never both.
    let FsCommand::Write(mut mixed) = object_upload("u4", "/in/c", "p/in/c", 3, quota) else {
        unreachable!()
    };
    mixed.chunks = vec![chunk(b"abc")];
    assert!(matches!(
        fs.run(FsCommand::Write(mixed)).await,
        CommandResult::Invalid(_)
    ));

    // A file written with chunks over an object file leaves no object behind.
    fs.write("u5", "/in/a", &[b"chunked"], true).await;
    let file = fs.store.reader.lookup("/in/a").unwrap().unwrap();
    assert_eq!((file.size, file.object), (7, None));
}

#[tokio::test]
async fn a_rename_on_object_storage_switches_files_to_their_copies_or_changes_nothing() {
    let mut fs = Fs::new().await;
    fs.mkdir("/d").await;
    let quota = Quota::default();
    for (u, name) in [("u1", "a"), ("u2", "b")] {
        let put = object_upload(u, &format!("/d/{name}"), &format!("p/d/{name}"), 5, quota);
        assert_eq!(fs.run(put).await, CommandResult::Done);
    }
    let a = fs.store.reader.lookup("/d/a").unwrap().unwrap();
    let b = fs.store.reader.lookup("/d/b").unwrap().unwrap();
    let moves = |generation_of_b: u64| {
        vec![
            ObjectMove {
                inode: a.id,
                generation: a.generation,
                object: object("p/e/a", 5),
                from_key: "p/d/a".into(),
            },
            ObjectMove {
                inode: b.id,
                generation: generation_of_b,
                object: object("p/e/b", 5),
                from_key: "p/d/b".into(),
            },
        ]
    };
    let rename = |objects| FsCommand::Rename {
        from: "/d".into(),
        to: "/e".into(),
        objects,
    };
    // b changed after its copy was made: nothing moves.
    assert_eq!(
        fs.run(rename(moves(b.generation + 1))).await,
        CommandResult::Superseded
    );
    assert_eq!(fs.names("/"), ["d"]);
    let unchanged = fs.store.reader.lookup("/d/a").unwrap().unwrap();
    assert_eq!(unchanged.object, Some(object("p/d/a", 5)));

    assert_eq!(
        fs.run(rename(moves(b.generation))).await,
        CommandResult::Done
    );
    assert_eq!(fs.names("/e"), ["a", "b"]);
    for name in ["a", "b"] {
        let file = fs
            .store
            .reader
            .lookup(&format!("/e/{name}"))
            .unwrap()
            .unwrap();
        assert_eq!(file.object, Some(object(&format!("p/e/{name}"), 5)));
    }
    // A file stored in the directory while the others were copied is not
    // among the moves: the whole rename is refused.
    fs.mkdir("/e/sub").await;
    let late = object_upload("u3", "/e/sub/late", "p/e/sub/late", 5, quota);
    assert_eq!(fs.run(late).await, CommandResult::Done);
    let a = fs.store.reader.lookup("/e/a").unwrap().unwrap();
    let b = fs.store.reader.lookup("/e/b").unwrap().unwrap();
    let partial = FsCommand::Rename {
        from: "/e".into(),
        to: "/f".into(),
        objects: [(&a, "a"), (&b, "b")]
            .map(|(file, name)| ObjectMove {
                inode: file.id,
                generation: file.generation,
                object: object(&format!("p/f/{name}"), 5),
                from_key: format!("p/e/{name}"),
            })
            .to_vec(),
    };
    assert_eq!(fs.run(partial).await, CommandResult::Superseded);
    assert_eq!(fs.names("/"), ["e"]);
    // A copy made before that rename (from p/d/a) no longer matches the
    // file, though its generation does: refused.
    let stale = FsCommand::Rename {
        from: "/e/a".into(),
        to: "/e/z".into(),
        objects: vec![ObjectMove {
            inode: a.id,
            generation: a.generation,
            object: object("p/e/z", 5),
            from_key: "p/d/a".into(),
        }],
    };
    assert_eq!(fs.run(stale).await, CommandResult::Superseded);
    assert_eq!(fs.names("/e"), ["a", "b", "sub"]);
}

impl Fs {
    /// Every `object_trash` entry, as (key, multipart id).
    fn trash(&self) -> Vec<(String, String)> {
        let entries = self.store.reader.trash_page(None, usize::MAX).unwrap();
        entries.into_iter().map(|e| (e.key, e.abort)).collect()
    }
}

fn trashed(key: &str) -> (String, String) {
    (key.to_owned(), String::new())
}

#[tokio::test]
async fn objects_no_file_keeps_go_to_the_trash_until_forgotten_or_taken_again() {
    let mut fs = Fs::new().await;
    fs.mkdir("/d").await;
    let quota = Quota::default();
    for (u, name) in [("u1", "a"), ("u2", "b"), ("u3", "c")] {
        let put = object_upload(u, &format!("/d/{name}"), &format!("p/d/{name}"), 5, quota);
        assert_eq!(fs.run(put).await, CommandResult::Done);
    }
    assert!(fs.trash().is_empty(), "live objects are not trash");

    // A delete trashes the file's object, as the file was.
    let a = fs.store.reader.lookup("/d/a").unwrap().unwrap();
    let remove = FsCommand::Remove {
        path: "/d/a".into(),
    };
    assert_eq!(fs.run(remove).await, CommandResult::Done);
    assert_eq!(fs.trash(), [trashed("p/d/a")]);
    let as_deleted = fs.store.reader.trash_page(None, 10).unwrap().remove(0);
    assert_eq!(
        (as_deleted.inode, as_deleted.generation),
        (a.id, a.generation)
    );

    // A new file at the same path records the key again: out of the trash,
    // and a late ForgetTrash of the old entry changes nothing.
    let again = object_upload("u4", "/d/a", "p/d/a", 7, quota);
    assert_eq!(fs.run(again).await, CommandResult::Done);
    assert!(fs.trash().is_empty());
    let remove = FsCommand::Remove {
        path: "/d/a".into(),
    };
    assert_eq!(fs.run(remove).await, CommandResult::Done);
    let stale = FsCommand::ForgetTrash {
        entries: vec![as_deleted.clone()],
    };
    assert_eq!(fs.run(stale).await, CommandResult::Done);
    assert_eq!(
        fs.trash(),
        [trashed("p/d/a")],
        "a stale forget took the new entry"
    );
    let current = fs.store.reader.trash_page(None, 10).unwrap();
    let forget = FsCommand::ForgetTrash { entries: current };
    assert_eq!(fs.run(forget).await, CommandResult::Done);
    assert!(fs.trash().is_empty());

    // A rename trashes the old keys, not the new ones, and a file it
    // replaces keeps nothing in the trash: its key is the copy's.
    let b = fs.store.reader.lookup("/d/b").unwrap().unwrap();
    let rename = FsCommand::Rename {
        from: "/d/b".into(),
        to: "/d/c".into(),
        objects: vec![ObjectMove {
            inode: b.id,
            generation: b.generation,
            object: object("p/d/c", 5),
            from_key: String::new(),
        }],
    };
    assert_eq!(fs.run(rename).await, CommandResult::Done);
    assert_eq!(fs.trash(), [trashed("p/d/b")]);
    let c = fs.store.reader.lookup("/d/c").unwrap().unwrap();
    assert_eq!((c.id, c.object), (b.id, Some(object("p/d/c", 5))));
}

#[tokio::test]
async fn a_scan_does_not_bring_back_a_file_whose_object_waits_in_the_trash() {
    let mut fs = Fs::new().await;
    fs.mkdir("/d").await;
    let put = object_upload("u1", "/d/a", "p/d/a", 5, Quota::default());
    assert_eq!(fs.run(put).await, CommandResult::Done);
    let remove = FsCommand::Remove {
        path: "/d/a".into(),
    };
    assert_eq!(fs.run(remove).await, CommandResult::Done);
    let import = || {
        let FsCommand::Write(mut w) = object_upload("scan", "/d/a", "p/d/a", 5, Quota::default())
        else {
            unreachable!()
        };
        w.node = crate::IMPORTED;
        w.create_new = true;
        FsCommand::Write(w)
    };
    assert!(matches!(fs.run(import()).await, CommandResult::Invalid(_)));
    assert!(fs.store.reader.lookup("/d/a").unwrap().is_none());
    // An upload to the name is not an import: it takes the key again.
    let upload = object_upload("u2", "/d/a", "p/d/a", 6, Quota::default());
    assert_eq!(fs.run(upload).await, CommandResult::Done);
    // Once the object is gone from the trash, a scan may record it.
    let remove = FsCommand::Remove {
        path: "/d/a".into(),
    };
    assert_eq!(fs.run(remove).await, CommandResult::Done);
    let entries = fs.store.reader.trash_page(None, 10).unwrap();
    assert_eq!(
        fs.run(FsCommand::ForgetTrash { entries }).await,
        CommandResult::Done
    );
    assert_eq!(fs.run(import()).await, CommandResult::Done);
}

#[tokio::test]
async fn an_upload_replaced_or_deleted_in_flight_leaves_its_multipart_upload_to_abort() {
    let mut fs = Fs::new().await;
    fs.mkdir("/in").await;
    assert_eq!(
        fs.run(parts_write("u1", "m1", 0, &[5 << 20], None, None))
            .await,
        CommandResult::Done
    );
    assert!(fs.trash().is_empty());
    // Another upload to the same name takes the file over: m1 will never
    // complete.
    assert_eq!(
        fs.run(parts_write("u2", "m2", 0, &[5 << 20], None, None))
            .await,
        CommandResult::Done
    );
    assert_eq!(fs.trash(), [("p/in/big".to_owned(), "m1".to_owned())]);
    // Deleting the file leaves m2 to abort too.
    let remove = FsCommand::Remove {
        path: "/in/big".into(),
    };
    assert_eq!(fs.run(remove).await, CommandResult::Done);
    assert_eq!(
        fs.trash(),
        [
            ("p/in/big".to_owned(), "m1".to_owned()),
            ("p/in/big".to_owned(), "m2".to_owned())
        ]
    );
}

/// A multipart upload's checkpoint or last write: `parts` part lengths after
/// the first `from`, or (`object`) the completed file.
fn parts_write(
    upload: &str,
    id: &str,
    from: u64,
    parts: &[u64],
    adopt: Option<&str>,
    object: Option<ObjectRef>,
) -> FsCommand {
    FsCommand::Write(FileWrite {
        upload: upload.into(),
        from: 0,
        path: "/in/big".into(),
        chunks: Vec::new(),
        mtime: 50,
        node: 2,
        placed: Vec::new(),
        done: object.is_some(),
        create_new: false,
        owner: "alice".into(),
        quota: Quota::default(),
        found: Found::Unchecked,
        object,
        inline: None,
        multipart: Some(Box::new(crate::PartsWrite {
            key: "p/in/big".into(),
            id: id.into(),
            from,
            parts: parts
                .iter()
                .enumerate()
                .map(|(i, len)| crate::records::PartRecord {
                    etag: format!("\"{id}-{}\"", from + i as u64),
                    len: *len,
                })
                .collect(),
            sha256: format!("state-after-{}", from + parts.len() as u64),
            adopt: adopt.map(str::to_owned),
        })),
    })
}

#[tokio::test]
async fn a_multipart_upload_is_checkpointed_adopted_by_a_resumption_and_fences_its_first_writer() {
    let mut fs = Fs::new().await;
    fs.mkdir("/in").await;
    let old = object_upload("u0", "/in/big", "p/in/big", 3, Quota::default());
    assert_eq!(fs.run(old).await, CommandResult::Done);

    // u1 overwrites: two checkpoints of two parts each.
    assert_eq!(
        fs.run(parts_write("u1", "m1", 0, &[], None, None)).await,
        CommandResult::Done
    );
    assert_eq!(
        fs.run(parts_write("u1", "m1", 0, &[8, 8], None, None))
            .await,
        CommandResult::Done
    );
    assert_eq!(
        fs.run(parts_write("u1", "m1", 2, &[8, 8], None, None))
            .await,
        CommandResult::Done
    );
    // A checkpoint whose answer was lost: resent from 0, it changes nothing.
    assert_eq!(
        fs.run(parts_write("u1", "m1", 2, &[8], None, None)).await,
        CommandResult::Resend
    );
    let file = fs.store.reader.lookup("/in/big").unwrap().unwrap();
    assert_eq!(file.size, 32, "SIZE is the durable offset");
    assert_eq!(
        file.object,
        Some(object("p/in/big", 3)),
        "the old object serves until the new one is complete"
    );
    assert_eq!(fs.store.reader.usage("alice").unwrap().bytes, 32);
    let record = fs.store.reader.upload("u1").unwrap().unwrap();
    let state = record.multipart.clone().unwrap();
    assert_eq!((state.parts, state.sha256.as_str()), (4, "state-after-4"));
    let etags: Vec<String> = fs
        .store
        .reader
        .upload_parts(&state)
        .unwrap()
        .into_iter()
        .map(|p| p.etag)
        .collect();
    assert_eq!(etags, ["\"m1-0\"", "\"m1-1\"", "\"m1-2\"", "\"m1-3\""]);

    // Its node died; u2 resumes on another node at the durable offset.
    assert_eq!(
        fs.run(parts_write("u2", "m1", 3, &[], Some("u1"), None))
            .await,
        CommandResult::Superseded,
        "only at the durable end"
    );
    assert_eq!(
        fs.run(parts_write("u2", "m1", 4, &[], Some("u1"), None))
            .await,
        CommandResult::Done
    );
    assert!(fs.store.reader.upload("u1").unwrap().is_none());
    let adopted = fs.store.reader.upload("u2").unwrap().unwrap();
    assert_eq!(
        (adopted.durable, adopted.multipart.as_ref().unwrap().parts),
        (32, 4)
    );
    // u1 comes back to life: none of its writes land.
    for late in [
        parts_write("u1", "m1", 4, &[8], None, None),
        parts_write("u1", "m1", 0, &[8, 8, 8, 8, 8], None, None),
        parts_write("u1", "m1", 0, &[], None, Some(object("p/in/big", 40))),
    ] {
        assert_eq!(fs.run(late).await, CommandResult::Superseded);
    }
    assert_eq!(
        fs.run(parts_write("u2", "m1", 4, &[5], None, None)).await,
        CommandResult::Done
    );
    let state = fs
        .store
        .reader
        .upload("u2")
        .unwrap()
        .unwrap()
        .multipart
        .unwrap();
    assert_eq!(fs.store.reader.upload_parts(&state).unwrap().len(), 5);

    // Completed: the new object, no record, no part rows.
    let done = parts_write("u2", "m1", 5, &[], None, Some(object("p/in/big", 37)));
    assert_eq!(fs.run(done).await, CommandResult::Done);
    let file = fs.store.reader.lookup("/in/big").unwrap().unwrap();
    assert_eq!((file.size, file.upload, file.generation), (37, None, 7));
    assert_eq!(file.object, Some(object("p/in/big", 37)));
    assert!(fs.store.reader.uploads().unwrap().is_empty());
    assert!(fs.store.reader.upload_parts(&state).unwrap().is_empty());
    assert_eq!(fs.store.reader.usage("alice").unwrap().bytes, 37);
}

#[tokio::test]
async fn an_abandoned_multipart_upload_leaves_the_file_its_object_and_no_part_rows() {
    let mut fs = Fs::new().await;
    fs.mkdir("/in").await;
    let old = object_upload("u0", "/in/big", "p/in/big", 3, Quota::default());
    fs.run(old).await;
    fs.run(parts_write("u1", "m1", 0, &[8, 8], None, None))
        .await;
    let state = fs
        .store
        .reader
        .upload("u1")
        .unwrap()
        .unwrap()
        .multipart
        .unwrap();
    let forget = FsCommand::ForgetUpload {
        id: "u1".into(),
        time_ms: 1,
    };
    assert_eq!(fs.run(forget).await, CommandResult::Done);
    let file = fs.store.reader.lookup("/in/big").unwrap().unwrap();
    assert_eq!((file.size, file.upload), (3, None));
    assert_eq!(fs.store.reader.usage("alice").unwrap().bytes, 3);
    assert!(fs.store.reader.upload_parts(&state).unwrap().is_empty());

    // A new multipart upload replaced by another, and a file deleted while
    // one is in flight: their rows go with their records.
    fs.run(parts_write("u2", "m2", 0, &[8], None, None)).await;
    fs.run(parts_write("u3", "m3", 0, &[8, 8], None, None))
        .await;
    let m2 = crate::records::MultipartState {
        id: "m2".into(),
        parts: 1,
        ..Default::default()
    };
    assert!(fs.store.reader.upload_parts(&m2).unwrap().is_empty());
    let m3 = fs
        .store
        .reader
        .upload("u3")
        .unwrap()
        .unwrap()
        .multipart
        .unwrap();
    fs.run(FsCommand::Remove {
        path: "/in/big".into(),
    })
    .await;
    assert!(fs.store.reader.upload_parts(&m3).unwrap().is_empty());
    assert!(fs.store.reader.uploads().unwrap().is_empty());
    assert_eq!(fs.store.reader.usage("alice").unwrap().bytes, 0);
}

/// A small upload whose bytes ride in the write itself.
pub(crate) fn inline_upload(upload_id: &str, path: &str, bytes: &[u8], quota: Quota) -> FsCommand {
    let FsCommand::Write(mut write) = upload(upload_id, path, bytes) else {
        unreachable!()
    };
    write.quota = quota;
    write.inline = Some(Box::new(crate::InlineBytes(bytes.to_vec())));
    FsCommand::Write(write)
}

#[tokio::test]
async fn an_inline_write_keeps_its_bytes_with_the_file_until_they_are_stored() {
    let mut fs = Fs::new().await;
    fs.mkdir("/in").await;
    let bytes = b"a small file, carried in its log entry";
    let hash = ChunkHash::of(bytes);
    let write = inline_upload("u1", "/in/a", bytes, Quota::default());
    assert_eq!(fs.run(write).await, CommandResult::Done);
    assert_eq!(fs.content("/in/a"), vec![chunk(bytes)]);
    assert_eq!(fs.refs(bytes), Some(1));
    let reader = &fs.store.reader;
    assert_eq!(
        reader.inline_chunk(&hash).unwrap().as_deref(),
        Some(&bytes[..])
    );
    let rows = reader.inline_waiting(10, 1 << 20).unwrap();
    let found: Vec<_> = rows.iter().map(|r| (r.hash, r.bytes.clone())).collect();
    assert_eq!(found, vec![(hash, bytes.to_vec())]);
    // The same bytes written again by a later entry get a row of their own:
    // forgetting the row read first leaves the later one.
    let again = inline_upload("u2", "/in/b", bytes, Quota::default());
    assert_eq!(fs.run(again).await, CommandResult::Done);
    let reader = &fs.store.reader;
    reader.forget_inline(&[rows[0].key.clone()]).unwrap();
    let left = reader.inline_waiting(10, 1 << 20).unwrap();
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].key, rows[0].key);
    assert_eq!(
        reader.inline_chunk(&hash).unwrap().as_deref(),
        Some(&bytes[..])
    );
    // Once stored as a chunk file, the node forgets the row; the files stay.
    reader.forget_inline(&[left[0].key.clone()]).unwrap();
    assert_eq!(reader.inline_chunk(&hash).unwrap(), None);
    assert!(reader.inline_waiting(10, 1 << 20).unwrap().is_empty());
    assert_eq!(fs.content("/in/a"), vec![chunk(bytes)]);
    assert_eq!(fs.content("/in/b"), vec![chunk(bytes)]);
}

#[tokio::test]
async fn an_inline_write_that_is_refused_or_does_not_match_its_chunk_keeps_nothing() {
    let mut fs = Fs::new().await;
    fs.mkdir("/in").await;
    // Bytes that are not the write's last chunk.
    let FsCommand::Write(mut forged) = inline_upload("u1", "/in/a", b"real", Quota::default())
    else {
        unreachable!()
    };
    forged.inline = Some(Box::new(crate::InlineBytes(b"fake".to_vec())));
    let refused = fs.run(FsCommand::Write(forged)).await;
    assert!(matches!(refused, CommandResult::Invalid(_)), "{refused:?}");
    assert!(fs.store.reader.lookup("/in/a").unwrap().is_none());
    // Past the quota: refused, and no row either.
    let quota = Quota { bytes: 3, files: 0 };
    let over = inline_upload("u2", "/in/b", b"four", quota);
    assert_eq!(fs.run(over).await, CommandResult::QuotaExceeded);
    assert!(fs.store.reader.lookup("/in/b").unwrap().is_none());
    assert!(fs
        .store
        .reader
        .inline_waiting(10, 1 << 20)
        .unwrap()
        .is_empty());
}

#[test]
fn inline_bytes_travel_as_base64_and_come_back_whole() {
    let FsCommand::Write(write) = inline_upload("u1", "/a", &[0, 255, 7, 128], Quota::default())
    else {
        unreachable!()
    };
    let json = serde_json::to_string(&write).unwrap();
    assert!(json.contains(r#""inline":"AP8HgA==""#), "{json}");
    let back: FileWrite = serde_json::from_str(&json).unwrap();
    assert_eq!(back, write);
    // Writes without inline bytes are encoded as before.
    let FsCommand::Write(plain) = upload("u1", "/a", b"x") else {
        unreachable!()
    };
    assert!(!serde_json::to_string(&plain).unwrap().contains("inline"));
}
