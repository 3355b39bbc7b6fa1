//! Cluster storage with real processes and real clients: a file uploaded through one
//! node downloads byte-identically through the others, namespace changes through one
//! node are seen by the next command on another, an upload cut off by a killed node
//! resumes on a survivor from the durable offset `SIZE` reports, concurrent writers
//! never tear a file, the leader restores the replication factor after a node is
//! removed or silent, new replicas avoid a member that stopped answering, and a chunk
//! damaged on disk is never served.

use std::process::Stdio;
use std::time::Duration;

use crate::support::cluster::poll_until;
use crate::support::process::wait_or_kill;
use crate::support::*;

const MIB: u64 = 1024 * 1024;
const CHUNK: u64 = 4 * MIB;

fn cluster(size: usize, extra: &[&str]) -> Cluster {
    Cluster::start_with(
        size,
        WharfOptions::default()
            .cluster_storage()
            .args(extra.iter().copied()),
    )
}

fn upload(node: &Wharf, local: &std::path::Path, name: &str) {
    let out = run(node
        .curl()
        .arg("-T")
        .arg(local)
        .arg(node.explicit_url(name)));
    assert_success(&out, &format!("upload {name} to node {}", node.node_id()));
}

pub(crate) fn download_sha(node: &Wharf, name: &str) -> String {
    let back = node.client_dir().join(format!(
        "{}.{}.back",
        name.replace('/', "_"),
        rand::random::<u32>()
    ));
    let out = run(node
        .curl()
        .arg("-o")
        .arg(&back)
        .arg(node.explicit_url(name)));
    assert_success(
        &out,
        &format!("download {name} from node {}", node.node_id()),
    );
    let sha = sha256_file(&back);
    let _ = std::fs::remove_file(back);
    sha
}

/// `SIZE name` on `node`, through a fresh session.
pub(crate) fn size_on(node: &Wharf, name: &str) -> Option<u64> {
    let out = run(&mut node.batch("reuse", &[format!("size {name}")]));
    tagged(&out, "SIZE")
        .first()
        .and_then(|fields| fields.first()?.parse().ok())
}

#[test]
fn file_uploaded_through_node_1_downloads_identically_through_nodes_2_and_3() {
    let cluster = cluster(3, &[]);
    let local = cluster.node(1).client_dir().join("big.bin");
    write_random_file(&local, 200 * MIB + 12345);
    let sent = sha256_file(&local);
    upload(cluster.node(1), &local, "big.bin");
    for n in [2, 3] {
        assert_eq!(download_sha(cluster.node(n), "big.bin"), sent, "node {n}");
    }
    let status = cluster.node(2).cluster_status();
    assert_eq!(status.storage.replication, 3);
    assert_eq!(status.storage.chunks, 51, "200 MiB + 12345 in 4 MiB chunks");
    assert_eq!(status.storage.under_replicated, 0, "{status:?}");
    // Nothing of it lives in a home directory on disk: the bytes are chunks.
    assert!(!cluster
        .node(1)
        .home(&cluster.node(1).user)
        .join("big.bin")
        .exists());
}

#[test]
fn rename_delete_and_mkdir_through_one_node_are_seen_by_the_next_command_on_another() {
    let cluster = cluster(3, &[]);
    let local = cluster.node(1).client_dir().join("f.bin");
    write_random_file(&local, MIB + 1);
    let steps = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let out = run(&mut cluster.node(1).batch(
        "reuse",
        &steps(&[
            "mkdir docs",
            "mkdir docs/deep",
            &format!("put {} docs/deep/f.bin", local.display()),
        ]),
    ));
    assert_success(&out, "mkdir and put through node 1");
    let out = run(&mut cluster.node(2).batch(
        "reuse",
        &steps(&["nlst docs/deep", "rename docs/deep docs/moved", "nlst docs"]),
    ));
    assert_success(&out, "list and rename through node 2");
    let names: Vec<Vec<String>> = tagged(&out, "NLST");
    assert_eq!(names[0][0], "f.bin");
    assert_eq!(names[1][0], "moved");
    let out = run(&mut cluster.node(3).batch(
        "reuse",
        &steps(&[
            "size docs/moved/f.bin",
            "delete docs/moved/f.bin",
            "rmdir docs/moved",
        ]),
    ));
    assert_success(&out, "size, delete and rmdir through node 3");
    assert_eq!(tagged(&out, "SIZE")[0][0], (MIB + 1).to_string());
    let out = run(&mut cluster.node(1).batch("reuse", &steps(&["nlst docs"])));
    assert_success(&out, "list through node 1");
    assert!(tagged(&out, "NLST").is_empty(), "{}", describe(&out));
}

/// Starts a slow curl upload of `local` to `node`; the caller kills the node under it.
pub(crate) fn slow_upload(
    node: &Wharf,
    local: &std::path::Path,
    name: &str,
) -> std::process::Child {
    node.curl()
        .args(["--limit-rate", "8M"])
        .arg("-T")
        .arg(local)
        .arg(node.explicit_url(name))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start curl")
}

#[test]
fn upload_cut_off_by_a_killed_node_resumes_on_another_with_curl_and_lftp() {
    let mut cluster = cluster(3, &[]);
    let local = cluster.node(1).client_dir().join("resume.bin");
    write_random_file(&local, 200 * MIB + 777);
    let sent = sha256_file(&local);

    for (round, client) in ["curl", "lftp"].into_iter().enumerate() {
        let name = format!("resume-{client}.bin");
        let (victim, rescuer, witness) = if round == 0 { (1, 2, 3) } else { (2, 3, 1) };
        let mut curl = slow_upload(cluster.node(victim), &local, &name);
        // Wait until a few chunks are durable (SIZE through another node shows them).
        let durable = poll_until(Duration::from_secs(60), "a durable prefix", || {
            size_on(cluster.node(witness), &name).filter(|&s| s >= 3 * CHUNK)
        });
        cluster.node_mut(victim).kill9();
        let _ = wait_or_kill(&mut curl, Duration::from_secs(30));
        let gap = size_on(cluster.node(witness), &name).expect("SIZE during the gap");
        assert!(
            gap >= durable && gap.is_multiple_of(CHUNK),
            "durable offset {gap} (was {durable})"
        );
        assert!(gap < 200 * MIB, "the upload was cut off before its end");

        let out = match client {
            "curl" => run(cluster
                .node(rescuer)
                .curl()
                .args(["-C", "-", "-T"])
                .arg(&local)
                .arg(cluster.node(rescuer).explicit_url(&name))),
            _ => run(&mut cluster
                .node(rescuer)
                .lftp(&[&format!("put -c {} -o {name}", local.display())])),
        };
        assert_success(&out, &format!("{client} resumes on node {rescuer}"));
        assert_eq!(download_sha(cluster.node(witness), &name), sent, "{client}");
        cluster.node_mut(victim).restart();
        assert_eq!(
            download_sha(cluster.node(victim), &name),
            sent,
            "{client}, restarted node"
        );
    }
}

#[test]
fn concurrent_writers_to_one_path_leave_one_writers_complete_content() {
    let cluster = cluster(3, &[]);
    let mut files = Vec::new();
    for n in 1..=3 {
        let local = cluster.node(1).client_dir().join(format!("writer{n}.bin"));
        write_random_file(&local, 9 * MIB + n as u64);
        files.push((sha256_file(&local), local));
    }
    let writers: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, (_, local))| {
            let node = cluster.node(i + 1);
            node.curl()
                .args(["--limit-rate", "6M", "-T"])
                .arg(local)
                .arg(node.explicit_url("shared.bin"))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start curl")
        })
        .collect();
    for mut w in writers {
        let (status, killed) = wait_or_kill(&mut w, Duration::from_secs(120));
        assert!(status.success() && !killed, "a writer failed");
    }
    let shas: Vec<String> = (1..=3)
        .map(|n| download_sha(cluster.node(n), "shared.bin"))
        .collect();
    assert!(
        shas.iter().all(|s| s == &shas[0]),
        "nodes disagree: {shas:?}"
    );
    assert!(
        files.iter().any(|(sha, _)| sha == &shas[0]),
        "the file is nobody's complete upload"
    );
}

#[test]
fn a_removed_node_s_replicas_are_restored_by_the_leader() {
    let mut cluster = cluster(3, &["--replication", "2"]);
    let local = cluster.node(1).client_dir().join("r.bin");
    write_random_file(&local, 30 * MIB);
    let sent = sha256_file(&local);
    upload(cluster.node(1), &local, "r.bin");
    let before = cluster.node(1).cluster_status();
    assert_eq!((before.storage.chunks, before.storage.replication), (8, 2));
    assert_eq!(before.storage.under_replicated, 0);

    let leaving = if before.leader == Some(cluster.node(3).node_id()) {
        2
    } else {
        3
    };
    let leaving_id = cluster.node(leaving).node_id();
    cluster.node_mut(leaving).kill9();
    let out = cluster
        .node(1)
        .cli(&["cluster", "remove", &leaving_id.to_string()], None);
    assert_success(&out, "wharf cluster remove");
    let stayed = 5 - leaving; // the other of nodes 2 and 3
    poll_until(
        Duration::from_secs(60),
        "every chunk back to 2 replicas",
        || {
            let status = cluster.node(stayed).cluster_status();
            (status.members.len() == 2 && status.storage.under_replicated == 0).then_some(())
        },
    );
    // Both survivors now hold every chunk: each serves the file alone.
    cluster.node_mut(stayed).kill9();
    assert_eq!(download_sha(cluster.node(1), "r.bin"), sent);
}

#[test]
fn quota_refuses_the_upload_that_would_pass_it_with_552_and_frees_on_delete() {
    let cluster = cluster(1, &[]);
    let node = cluster.node(1);
    let quota = (10 * MIB).to_string();
    let out = node.cli(
        &[
            "user",
            "add",
            "carol",
            "--password-stdin",
            "--quota-bytes",
            &quota,
        ],
        Some("carol-Secret-1\n"),
    );
    assert_success(&out, "wharf user add --quota-bytes");
    let local = node.client_dir().join("six.bin");
    write_random_file(&local, 6 * MIB);
    let put = |name: &str| {
        run(node
            .curl_as("carol", "carol-Secret-1")
            .arg("-T")
            .arg(&local)
            .arg(node.explicit_url(name)))
    };
    assert_success(&put("one.bin"), "first upload within the quota");
    let refused = put("two.bin");
    // curl turns a 552 reply into exit code 70, "Exceeded storage allocation".
    assert_eq!(
        refused.status.code(),
        Some(70),
        "the upload past the quota gets 552\n{}",
        describe(&refused)
    );
    let list = node.cli(&["user", "list"], None);
    let carol = String::from_utf8_lossy(&list.stdout)
        .lines()
        .find(|l| l.starts_with("carol\t"))
        .map(str::to_owned)
        .expect("carol in the user list");
    // The refused 6 MiB upload never reached a checkpoint (they come every four
    // chunks), so nothing of it stays: only the first file counts.
    assert!(
        carol.contains(&format!("used={}B/{quota}\tfiles=1/unlimited", 6 * MIB)),
        "only the first file counts: {carol}"
    );
    let delete = run(node
        .curl_as("carol", "carol-Secret-1")
        .args(["-Q", "DELE one.bin"])
        .arg(node.explicit_url("")));
    assert_success(&delete, "DELE frees the quota");
    assert_success(&put("two.bin"), "upload after the delete");
}

/// A tmpfs mounted over a directory for the length of a test (lazily unmounted
/// when dropped).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// `None` when this machine does not let the test mount (not root, or a
    /// container without CAP_SYS_ADMIN).
    fn mount(at: &std::path::Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).ok()?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "mount tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(SmallDisk(at.to_owned()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn full_chunk_disk_fails_uploads_with_452_and_keeps_the_node_and_committed_files() {
    let mut cluster = cluster(1, &[]);
    cluster.node_mut(1).kill9();
    let chunks = cluster.node(1).root().join("data").join("chunks");
    let Some(_disk) = SmallDisk::mount(&chunks, "24m") else {
        eprintln!("SKIPPED: cannot mount a small tmpfs for the chunk store here (needs root with CAP_SYS_ADMIN)");
        return;
    };
    cluster.node_mut(1).restart();
    let node = cluster.node(1);
    let small = node.client_dir().join("small.bin");
    write_random_file(&small, 9 * MIB);
    upload(node, &small, "kept.bin");
    let big = node.client_dir().join("big.bin");
    write_random_file(&big, 40 * MIB);
    let refused = run(node.python("store_reply.py").arg(&big).arg("big.bin"));
    let replies = tagged(&refused, "REPLY");
    assert!(
        replies.len() == 1 && replies[0][0].starts_with("452 "),
        "an upload that fills the disk gets 452\n{}",
        describe(&refused)
    );
    cluster.node_mut(1).assert_alive();
    assert_eq!(
        download_sha(cluster.node(1), "kept.bin"),
        sha256_file(&small)
    );
}

#[test]
fn replicas_of_a_node_silent_past_repair_after_are_recreated_on_the_others() {
    let mut cluster = cluster(3, &["--replication", "2", "--repair-after", "3"]);
    let local = cluster.node(1).client_dir().join("d.bin");
    write_random_file(&local, 30 * MIB);
    let sent = sha256_file(&local);
    upload(cluster.node(1), &local, "d.bin");
    let leader = cluster.node(1).cluster_status().leader.expect("a leader");
    let leader_at = cluster.position_of(leader);
    let followers: Vec<usize> = (1..=3).filter(|&n| n != leader_at).collect();
    let (down, kept) = (followers[0], followers[1]);

    let short_of_copies = |cluster: &Cluster| {
        let status = cluster.node(leader_at).cluster_status();
        status.storage.under_replicated
    };
    // The follower dies but stays a member: its copies stop counting at once ...
    cluster.node_mut(down).kill9();
    let what = "its chunks reported short of copies";
    poll_until(Duration::from_secs(15), what, || {
        (short_of_copies(&cluster) > 0).then_some(())
    });
    // ... and once it has been silent for --repair-after, the leader copies them again.
    let what = "every chunk back to 2 live copies";
    poll_until(Duration::from_secs(60), what, || {
        (short_of_copies(&cluster) == 0).then_some(())
    });
    // The other follower now holds every chunk itself: alone, it serves the file.
    cluster.node_mut(leader_at).kill9();
    assert_eq!(download_sha(cluster.node(kept), "d.bin"), sent);
}

/// A follower that is stopped (SIGSTOP: its connections stay open but nothing
/// answers) is passed over for new replicas once one transfer to it has timed out:
/// the upload completes with every chunk on two answering nodes, and the uploading
/// node waited on the stopped one only for the chunks already on their way to it.
#[test]
fn replicas_go_to_answering_members_while_one_is_stopped() {
    let cluster = cluster(3, &["--replication", "2"]);
    let StoppedRun {
        via,
        stopped,
        other,
        sent,
        gave_up,
    } = upload_with_a_follower_stopped(&cluster, "s.bin");
    let status = cluster.node(via).cluster_status();
    assert_eq!(status.storage.chunks, 16, "{status:?}");
    assert_eq!(
        status.storage.under_replicated, 0,
        "every chunk has 2 copies on answering nodes: {status:?}"
    );
    assert!(
        gave_up <= 3,
        "after the first timeout the stopped node is not tried again (3 chunks travel \
         at once), yet {gave_up} replicas waited for it"
    );
    assert_eq!(download_sha(cluster.node(other), "s.bin"), sent);
    signal(cluster.node(stopped), "CONT");
}

/// With as many copies wanted as there are members, no other node can take
/// the stopped member's copy: the upload waits on it only for the chunks
/// already on their way (then it is passed over, and probed in the
/// background), the chunks are one copy short meanwhile, and once the member
/// answers again the leader's repair job gives them their third copy.
#[test]
fn a_stopped_member_holds_up_uploads_once_and_gets_its_copies_when_it_answers() {
    let cluster = cluster(3, &[]);
    let StoppedRun {
        stopped,
        other,
        sent,
        gave_up,
        ..
    } = upload_with_a_follower_stopped(&cluster, "t.bin");
    assert!(
        gave_up <= 3,
        "only the chunks in flight when it stopped waited for the stopped member, yet {gave_up} did"
    );
    assert!(
        chunk_files(cluster.node(stopped)) < 16,
        "a stopped process stored nothing"
    );
    assert_eq!(download_sha(cluster.node(other), "t.bin"), sent);

    signal(cluster.node(stopped), "CONT");
    poll_until(
        Duration::from_secs(60),
        "a copy of every chunk on the member that answers again",
        || (chunk_files(cluster.node(stopped)) >= 16).then_some(()),
    );
    assert_eq!(download_sha(cluster.node(stopped), "t.bin"), sent);
}

/// What `upload_with_a_follower_stopped` did: nodes by position, the
/// SHA-256 sent, and how many replicas the uploading node gave up on.
struct StoppedRun {
    via: usize,
    stopped: usize,
    other: usize,
    sent: String,
    gave_up: usize,
}

/// Stops a follower (SIGSTOP), then uploads 16 chunks as `name` through the
/// leader; the follower stays stopped.
fn upload_with_a_follower_stopped(cluster: &Cluster, name: &str) -> StoppedRun {
    let leader = cluster.node(1).cluster_status().leader.expect("a leader");
    let via = cluster.position_of(leader);
    let stopped = (1..=3).find(|&n| n != via).expect("a follower");
    let other = 6 - via - stopped;
    let local = cluster.node(via).client_dir().join(name);
    write_random_file(&local, 16 * CHUNK);
    let sent = sha256_file(&local);
    signal(cluster.node(stopped), "STOP");
    upload(cluster.node(via), &local, name);
    let gave_up = cluster
        .node(via)
        .logs()
        .matches("replica not stored")
        .count();
    StoppedRun {
        via,
        stopped,
        other,
        sent,
        gave_up,
    }
}

fn signal(node: &Wharf, name: &str) {
    let out = run(std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(node.pid().to_string()));
    assert_success(&out, &format!("kill -{name}"));
}

/// Chunk files on a node's disk (`DATA_DIR/chunks/<fan>/<BLAKE3 hex>`), partial
/// writes left out.
fn chunk_paths(node: &Wharf) -> Vec<std::path::PathBuf> {
    let Ok(fans) = std::fs::read_dir(node.data_dir.join("chunks")) else {
        return Vec::new();
    };
    fans.flatten()
        .filter_map(|fan| std::fs::read_dir(fan.path()).ok())
        .flat_map(|files| files.flatten())
        .filter(|f| {
            let name = f.file_name().to_string_lossy().into_owned();
            name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .map(|f| f.path())
        .collect()
}

fn chunk_files(node: &Wharf) -> usize {
    chunk_paths(node).len()
}

/// Waits until `node` holds `count` chunk files: a small last chunk comes
/// inside its log entry and becomes a file moments after the upload.
fn chunk_files_become(node: &Wharf, count: usize) {
    poll_until(
        Duration::from_secs(30),
        &format!("{count} chunk files on node {}", node.node_id()),
        || (chunk_files(node) == count).then_some(()),
    );
}

/// Random files of `sizes` bytes in `node`'s client directory, named
/// `small-<i>.bin`: each name with its SHA-256.
fn small_files(node: &Wharf, sizes: &[u64]) -> Vec<(String, String)> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, size)| {
            let name = format!("small-{i}.bin");
            let local = node.client_dir().join(&name);
            write_random_file(&local, *size);
            let sent = sha256_file(&local);
            (name, sent)
        })
        .collect()
}

/// Small files ride in their upload's log entry (`--inline-max`, 64 KiB by
/// default): each reads back on every node at once, and its bytes then
/// become a chunk file on exactly as many nodes as the replication factor.
/// A file one byte over the limit is placed on replicas as before.
#[test]
fn small_files_travel_in_their_log_entry_and_land_on_as_many_nodes_as_the_replication_factor() {
    let cluster = cluster(3, &["--replication", "2"]);
    let via = cluster.node(2);
    let sizes = [1, 1000, 4096, 65_536, 65_537];
    let files = small_files(via, &sizes);
    for (name, _) in &files {
        upload(via, &via.client_dir().join(name), name);
    }
    for n in 1..=3 {
        for (name, sent) in &files {
            assert_eq!(
                &download_sha(cluster.node(n), name),
                sent,
                "{name} on node {n}"
            );
        }
    }
    let wanted = 2 * sizes.len();
    poll_until(
        Duration::from_secs(30),
        "every chunk a file on two nodes",
        || {
            let total: usize = (1..=3).map(|n| chunk_files(cluster.node(n))).sum();
            (total == wanted).then_some(())
        },
    );
    // Rows of the member not listed are dropped, not stored late.
    std::thread::sleep(Duration::from_secs(1));
    let mut copies = std::collections::HashMap::new();
    for n in 1..=3 {
        for path in chunk_paths(cluster.node(n)) {
            *copies
                .entry(path.file_name().unwrap().to_owned())
                .or_insert(0) += 1;
        }
    }
    assert_eq!(copies.len(), sizes.len(), "{copies:?}");
    assert!(copies.values().all(|&c| c == 2), "{copies:?}");
    assert_eq!(cluster.node(1).cluster_status().storage.under_replicated, 0);
}

/// A small upload waits for no replica: with a follower stopped (SIGSTOP),
/// uploads through the leader are committed by the other two at once, and
/// nothing is sent to the stopped member; running again, it takes the
/// files' bytes from the log.
#[test]
fn a_small_upload_waits_for_no_replica_and_a_stopped_member_gets_its_bytes_from_the_log() {
    let cluster = cluster(3, &[]);
    let leader = cluster.node(1).cluster_status().leader.expect("a leader");
    let via = cluster.position_of(leader);
    let stopped = (1..=3).find(|&n| n != via).expect("a follower");
    let other = 6 - via - stopped;
    let files = small_files(cluster.node(via), &[10, 5000, 60_000]);
    signal(cluster.node(stopped), "STOP");
    for (name, _) in &files {
        let local = cluster.node(via).client_dir().join(name);
        upload(cluster.node(via), &local, name);
    }
    let logs = cluster.node(via).logs();
    assert!(
        !logs.contains("replica not stored") && !logs.contains("under-replicated"),
        "no chunk transfer was tried"
    );
    for (name, sent) in &files {
        assert_eq!(&download_sha(cluster.node(other), name), sent);
    }
    signal(cluster.node(stopped), "CONT");
    chunk_files_become(cluster.node(stopped), files.len());
    for (name, sent) in &files {
        assert_eq!(&download_sha(cluster.node(stopped), name), sent);
    }
}

/// `226` for a small file means its bytes are durable before they are a
/// chunk file: a node killed (SIGKILL) right after a batch of uploads serves
/// every file after its restart, and stores each as a chunk file.
#[test]
fn small_files_survive_a_kill_right_after_their_226() {
    let mut cluster = cluster(1, &[]);
    let node = cluster.node(1);
    let sizes: Vec<u64> = (0..12).map(|i| 100 + i * 4000).collect();
    let files = small_files(node, &sizes);
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    let out = run(node
        .curl()
        .current_dir(node.client_dir())
        .arg("-T")
        .arg(format!("{{{}}}", names.join(",")))
        .arg(node.explicit_url("")));
    assert_success(&out, "one curl uploading twelve small files");
    cluster.node_mut(1).kill9();
    cluster.node_mut(1).restart();
    let node = cluster.node(1);
    for (name, sent) in &files {
        assert_eq!(&download_sha(node, name), sent, "{name}");
    }
    chunk_files_become(node, files.len());
}

/// Flips one bit in the middle of every chunk file on `node`, in place: the
/// file keeps its inode, length and extended attributes, as with damage on
/// disk. Returns how many files it damaged.
fn damage_every_chunk(node: &Wharf) -> usize {
    use std::io::{Read, Seek, SeekFrom, Write};
    let paths = chunk_paths(node);
    for path in &paths {
        let mut file = std::fs::File::options()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let middle = file.metadata().unwrap().len() / 2;
        let mut byte = [0u8];
        file.seek(SeekFrom::Start(middle)).unwrap();
        file.read_exact(&mut byte).unwrap();
        file.seek(SeekFrom::Start(middle)).unwrap();
        file.write_all(&[byte[0] ^ 0x04]).unwrap();
    }
    paths.len()
}

/// Whether the chunk file at `path` holds the bytes its name says.
fn chunk_is_intact(path: &std::path::Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let bytes = std::fs::read(path).unwrap();
    wharf_blob::ChunkHash::of(&bytes).to_string() == name
}

/// Damage on one node's disk is never served: reading a chunk, the node
/// notices that its bytes no longer match (the checksum the chunk file
/// carries), removes it, takes the chunk from a replica for this download and
/// stores the good copy again.
#[test]
fn a_chunk_damaged_on_disk_is_served_from_a_replica_and_stored_again() {
    let cluster = cluster(3, &[]);
    let local = cluster.node(1).client_dir().join("d.bin");
    write_random_file(&local, 2 * CHUNK + 1000);
    let sent = sha256_file(&local);
    upload(cluster.node(1), &local, "d.bin");
    let node = cluster.node(3);
    // The 1,000-byte tail travelled in its log entry: a file once stored.
    chunk_files_become(node, 3);
    assert_eq!(damage_every_chunk(node), 3, "three chunks on node 3");
    assert!(chunk_paths(node).iter().all(|p| !chunk_is_intact(p)));
    assert_eq!(download_sha(node, "d.bin"), sent);
    let noticed = node.logs().matches("chunk on disk is damaged").count();
    assert_eq!(noticed, 3, "node 3 logs each damaged chunk once");
    let restored = chunk_paths(node);
    assert_eq!(restored.len(), 3, "node 3 holds its three replicas again");
    assert!(restored.iter().all(|p| chunk_is_intact(p)));
}

/// With no replica to turn to, a damaged chunk fails the download with an
/// error reply; the client never receives the wrong bytes as the file.
#[test]
fn a_chunk_damaged_on_the_only_node_fails_the_download() {
    let cluster = cluster(1, &[]);
    let node = cluster.node(1);
    let local = node.client_dir().join("only.bin");
    write_random_file(&local, CHUNK + 1000);
    upload(node, &local, "only.bin");
    chunk_files_become(node, 2);
    assert_eq!(damage_every_chunk(node), 2);
    let back = node.client_dir().join("only.back");
    let out = run(node
        .curl()
        .arg("-o")
        .arg(&back)
        .arg(node.explicit_url("only.bin")));
    assert!(!out.status.success(), "curl must fail: {}", describe(&out));
    let got = std::fs::read(&back).unwrap_or_default();
    assert!(
        (got.len() as u64) < CHUNK,
        "at most what came before the damaged chunk arrived ({} bytes)",
        got.len()
    );
    assert!(node.logs().contains("chunk on disk is damaged"));
}

/// Overwriting a file leaves its old chunks unreferenced: after `--chunk-grace`
/// every node has deleted them and keeps exactly the new file's chunks, which
/// still download.
#[test]
fn chunks_no_file_uses_are_deleted_on_every_node_after_the_grace_period() {
    let cluster = cluster(3, &["--chunk-grace", "3"]);
    let first = cluster.node(1).client_dir().join("first.bin");
    let second = cluster.node(1).client_dir().join("second.bin");
    write_random_file(&first, 3 * CHUNK);
    write_random_file(&second, 2 * CHUNK);
    upload(cluster.node(1), &first, "g.bin");
    for n in 1..=3 {
        assert_eq!(
            chunk_files(cluster.node(n)),
            3,
            "node {n} holds every chunk"
        );
    }
    upload(cluster.node(2), &second, "g.bin");
    poll_until(
        Duration::from_secs(60),
        "only the new file's 2 chunks left, on every node and in the chunks table",
        || {
            let files_gone = (1..=3).all(|n| chunk_files(cluster.node(n)) == 2);
            let status = cluster.node(3).cluster_status();
            (files_gone && status.storage.chunks == 2).then_some(status)
        },
    );
    let sent = sha256_file(&second);
    for n in 1..=3 {
        assert_eq!(download_sha(cluster.node(n), "g.bin"), sent);
    }
}

/// A counter or gauge without labels from `node`'s `/metrics`.
fn metric(node: &Wharf, name: &str) -> u64 {
    let out = run(std::process::Command::new("curl").args([
        "--silent",
        "--show-error",
        "--max-time",
        "10",
        &format!("http://127.0.0.1:{}/metrics", node.http_port),
    ]));
    assert_success(&out, "GET /metrics");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn raft_log_written_per_mib_uploaded_does_not_grow_with_the_file() {
    let cluster = cluster(1, &[]);
    let node = cluster.node(1);
    let mut per_mib = Vec::new();
    for mib in [32, 512] {
        let name = format!("log-{mib}.bin");
        let local = node.client_dir().join(&name);
        write_random_file(&local, mib * MIB);
        let before = metric(node, "wharf_raft_log_bytes_written_total");
        upload(node, &local, &name);
        let written = metric(node, "wharf_raft_log_bytes_written_total") - before;
        per_mib.push(written as f64 / mib as f64);
        let _ = std::fs::remove_file(local);
    }
    eprintln!("Raft log bytes per MiB uploaded: {per_mib:?} (32 MiB, 512 MiB)");
    // Were every checkpoint to carry the whole chunk list, the 512 MiB file
    // would cost about 16 times the small one's per MiB.
    assert!(
        per_mib[1] <= per_mib[0] * 1.3,
        "log bytes per MiB grow with the file: {per_mib:?}"
    );
}

#[test]
fn a_two_gib_upload_cut_off_by_a_killed_node_resumes_on_another_byte_identical() {
    const SIZE: u64 = 2048 * MIB + 12_345;
    let mut cluster = cluster(3, &[]);
    let local = cluster.node(1).client_dir().join("two-gib.bin");
    write_random_file(&local, SIZE);
    let sent = sha256_file(&local);
    let name = "two-gib.bin";

    let mut curl = cluster
        .node(1)
        .curl()
        .arg("-T")
        .arg(&local)
        .arg(cluster.node(1).explicit_url(name))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start curl");
    let durable = poll_until(Duration::from_secs(300), "1 GiB durable", || {
        size_on(cluster.node(3), name).filter(|&s| s >= 1024 * MIB)
    });
    cluster.node_mut(1).kill9();
    let _ = wait_or_kill(&mut curl, Duration::from_secs(30));
    let gap = size_on(cluster.node(3), name).expect("SIZE after the kill");
    assert!(gap >= durable && gap < SIZE, "durable offset {gap}");

    let out = run(cluster
        .node(2)
        .curl()
        .args(["-C", "-", "-T"])
        .arg(&local)
        .arg(cluster.node(2).explicit_url(name)));
    assert_success(&out, "curl resumes on node 2");
    assert_eq!(size_on(cluster.node(3), name), Some(SIZE));
    assert_eq!(download_sha(cluster.node(3), name), sent);
    let _ = std::fs::remove_file(local);
}

/// Byte `i` of the fixture's `pattern.bin` is `i % 256` (tests/fixtures/make-store-v1.sh).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 256) as u8).collect()
}

#[test]
fn a_data_directory_of_the_release_before_compact_records_is_read_and_migrated() {
    let archive = tests_dir().join("fixtures/store-v1.tar.gz");
    let options = WharfOptions::default()
        .cluster_storage()
        .no_users()
        .user("keeper", "keeper-Secret-1")
        .data_from_archive(archive);
    let mut node = Wharf::start(options);
    let log = node.stderr();
    assert!(
        log.contains("dropped the snapshot an earlier release kept inside the store"),
        "{log}"
    );
    assert!(
        log.contains("rewrote the namespace records of an earlier release"),
        "{log}"
    );

    // What the old release stored reads back byte for byte.
    let pattern_len = 8 * 1024 * 1024 + 100;
    let listing = run(&mut node.batch("reuse", &["nlst /inbox".to_owned()]));
    assert_success(&listing, "NLST /inbox");
    let mut names: Vec<String> = tagged(&listing, "NLST").into_iter().flatten().collect();
    names.sort();
    assert_eq!(names, ["pattern.bin", "small.txt"]);
    assert_eq!(
        size_on(&node, "/inbox/pattern.bin"),
        Some(pattern_len as u64)
    );
    assert_eq!(
        download_sha(&node, "inbox/pattern.bin"),
        sha256_bytes(&pattern(pattern_len))
    );
    assert_eq!(
        download_sha(&node, "inbox/small.txt"),
        sha256_bytes(b"hello, wharf\n")
    );

    // Appending moves the file's inline chunk list to the extents table.
    let more = node.client_dir().join("more.bin");
    std::fs::write(&more, vec![7u8; 1_000_000]).unwrap();
    let out = run(node
        .curl()
        .arg("--append")
        .arg("-T")
        .arg(&more)
        .arg(node.explicit_url("inbox/pattern.bin")));
    assert_success(&out, "APPE to the old file");
    let mut expected = pattern(pattern_len);
    expected.extend(vec![7u8; 1_000_000]);
    assert_eq!(
        download_sha(&node, "inbox/pattern.bin"),
        sha256_bytes(&expected)
    );

    // Migrated once: a restart finds nothing left to rewrite.
    let before = node.stderr().len();
    node.kill9();
    node.restart();
    let after = node.stderr()[before..].to_owned();
    assert!(
        !after.contains("rewrote the namespace records"),
        "migrated twice:\n{after}"
    );
    assert_eq!(
        download_sha(&node, "inbox/pattern.bin"),
        sha256_bytes(&expected)
    );
}

/// An upload whose data connection ends without TLS close_notify after another
/// upload of the same name has finished: its client may have been cut off and
/// have uploaded the file anew, so its end (however late it is recorded) must
/// not replace the newer file; it gets 451 and the newer file stays. The same
/// kind of upload with nothing in its way is accepted with 226, as vsftpd does
/// (`strict_ssl_read_eof=NO`). (Stop 33's compose run: an upload cut off while
/// a node was stopped was recorded after curl's retry had stored the file, and
/// the download after that got the cut-off head.)
pub(crate) fn an_upload_ended_without_close_notify_does_not_replace_a_newer_file(node: &Wharf) {
    let cut = node.client_dir().join("cut.bin");
    let whole = node.client_dir().join("whole.bin");
    write_random_file(&cut, 600_000);
    write_random_file(&whole, 1_000_000);
    for (name, existing) in [("late.bin", None), ("over.bin", Some(&cut))] {
        if let Some(first) = existing {
            upload(node, first, name);
        }
        let reply = unconfirmed_upload(node, &cut, name, 300_000, || upload(node, &whole, name));
        assert!(
            reply.starts_with("reply: 451"),
            "{name}: the unconfirmed end must be refused, got {reply:?}"
        );
        assert_eq!(
            download_sha(node, name),
            sha256_file(&whole),
            "{name}: the newer upload must stay the file"
        );
    }

    // Alone, such an upload is the file.
    let reply = unconfirmed_upload(node, &cut, "alone.bin", 600_000, || {});
    assert!(reply.starts_with("reply: 226"), "alone.bin: {reply:?}");
    assert_eq!(download_sha(node, "alone.bin"), sha256_file(&cut));
}

/// `unconfirmed_upload.py`: the first `bytes` of `local` as `STOR name`, then
/// `meanwhile`, then the data connection closed without close_notify; the
/// server's reply to the STOR, as the script prints it.
fn unconfirmed_upload(
    node: &Wharf,
    local: &std::path::Path,
    name: &str,
    bytes: u64,
    meanwhile: impl FnOnce(),
) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut client = node
        .python("unconfirmed_upload.py")
        .args(["--bytes", &bytes.to_string()])
        .arg(local)
        .arg(name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start unconfirmed_upload.py");
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let sent = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(sent.starts_with("sent "), "{name}: {sent:?}");
    meanwhile();
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let reply = lines.next().and_then(Result::ok).unwrap_or_default();
    let (status, killed) = wait_or_kill(&mut client, Duration::from_secs(60));
    assert!(status.success() && !killed, "{name}: the client failed");
    reply
}

#[test]
fn an_upload_ended_without_close_notify_does_not_replace_a_newer_file_on_cluster_storage() {
    let cluster = cluster(1, &[]);
    an_upload_ended_without_close_notify_does_not_replace_a_newer_file(cluster.node(1));
}
