//! Running external clients with a hard time limit, so no test can hang.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default limit for one external command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

/// What a command did, and whether the harness had to kill it.
pub struct RunOutcome {
    pub output: Output,
    pub killed: bool,
}

/// Runs `cmd` with the default limit; panics if it had to be killed.
pub fn run(cmd: &mut Command) -> Output {
    let outcome = run_with_timeout(cmd, DEFAULT_TIMEOUT);
    assert!(
        !outcome.killed,
        "{cmd:?} did not finish within {DEFAULT_TIMEOUT:?}\n{}",
        describe(&outcome.output)
    );
    outcome.output
}

/// Runs `cmd` with stdin closed, killing it (and its process group) after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> RunOutcome {
    run_inner(cmd, None, timeout)
}

/// Runs `cmd` for at most `duration`, then kills it on purpose (to cut a transfer).
pub fn run_for(cmd: &mut Command, duration: Duration) -> RunOutcome {
    run_inner(cmd, None, duration)
}

/// Runs `cmd` with `input` on its stdin; panics if it had to be killed after `timeout`.
pub fn run_with_input(cmd: &mut Command, input: &[u8], timeout: Duration) -> Output {
    let outcome = run_inner(cmd, Some(input.to_vec()), timeout);
    assert!(
        !outcome.killed,
        "{cmd:?} did not finish within {timeout:?}\n{}",
        describe(&outcome.output)
    );
    outcome.output
}

fn run_inner(cmd: &mut Command, input: Option<Vec<u8>>, timeout: Duration) -> RunOutcome {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    // Its own process group, so a timeout also kills anything it started.
    .process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let writer = input.map(|bytes| {
        let mut stdin = child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            // The command may exit before reading everything; that is its business.
            let _ = stdin.write_all(&bytes);
        })
    });
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let (status, killed) = wait_or_kill(&mut child, timeout);
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    RunOutcome {
        output: Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        },
        killed,
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// Waits for `child`, killing its whole process group once `timeout` has passed.
pub fn wait_or_kill(child: &mut Child, timeout: Duration) -> (ExitStatus, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (status, false),
            Ok(None) if Instant::now() >= deadline => {
                kill_group(child);
                let status = child.wait().expect("wait for the killed command");
                return (status, true);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("wait for child: {e}"),
        }
    }
}

/// Kills the process group `child` leads (it was spawned with `process_group(0)`).
pub fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
}

/// Exit status plus the tails of stdout and stderr, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\n----- stdout -----\n{}\n----- stderr -----\n{}\n------------------",
        output.status,
        tail_bytes(&output.stdout, 12_000),
        tail_bytes(&output.stderr, 12_000)
    )
}

fn tail_bytes(bytes: &[u8], limit: usize) -> String {
    let start = bytes.len().saturating_sub(limit);
    let text = String::from_utf8_lossy(&bytes[start..]);
    if start > 0 {
        format!("[… {start} earlier bytes …]{text}")
    } else {
        text.into_owned()
    }
}

/// Panics unless `tool` is on PATH. The suite must not silently skip a client; CI
/// installs them (`apt-get install -y lftp curl python3 openssl`).
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is required by the end-to-end tests but is not on PATH; \
         install it (e.g. `apt-get install -y {tool}`) — .ci/run does this"
    );
}

/// Asserts the command exited successfully, showing its output otherwise.
pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed\n{}",
        describe(output)
    );
}
