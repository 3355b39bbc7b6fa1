//! Hostile and broken input: over-long lines, NUL bytes, invalid UTF-8, a TLS ClientHello
//! on the plain port, plain text on the implicit port, 200 concurrent garbage connections.
//! Every test runs a normal session (login, upload, download, SHA-256) alongside and
//! checks the server is still alive afterwards.

#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use rand::{Rng, RngCore};
use support::*;

const MIB: u64 = 1024 * 1024;

/// Runs `abuse` while a normal session transfers files, then checks both outcomes.
fn with_normal_session(wharf: &mut Wharf, abuse: impl FnOnce(&Wharf)) {
    let normal = NormalSession::start(wharf, 3, 2 * MIB);
    abuse(wharf);
    normal.finish();
    wharf.assert_alive();
}

fn is_5xx(reply: &Reply) -> bool {
    (500..600).contains(&reply.code)
}

/// One malformed line on a fresh connection gets a 5xx reply that is itself valid
/// UTF-8, and the session goes on (repeated abuse is tested separately).
fn one_bad_line_then_feat(wharf: &Wharf, garbage: &[u8]) {
    let mut control = wharf.control();
    control.send_raw(garbage).unwrap();
    let reply = control
        .reply()
        .unwrap_or_else(|e| panic!("no reply to {garbage:?}: {e}\n{}", control.transcript));
    assert!(is_5xx(&reply), "{garbage:?}: {reply}");
    assert!(
        std::str::from_utf8(&reply.raw).is_ok(),
        "reply is UTF-8: {reply}"
    );
    assert_eq!(control.cmd("FEAT").code, 211, "{}", control.transcript);
}

#[test]
fn over_long_command_line_gets_500_and_the_session_continues() {
    let mut wharf = Wharf::start_default();
    with_normal_session(&mut wharf, |wharf| {
        let mut control = wharf.control();
        control.send(&"A".repeat(5000));
        let reply = control.reply().expect("a reply to the over-long line");
        assert_eq!(reply.code, 500, "over-long line: {reply}");
        let reply = control.cmd("FEAT");
        assert_eq!(
            reply.code, 211,
            "one offence does not end the session: {reply}"
        );
    });
}

#[test]
fn repeated_over_long_lines_close_the_connection() {
    let mut wharf = Wharf::start_default();
    with_normal_session(&mut wharf, |wharf| {
        let mut control = wharf.control();
        let long = format!("{}\r\n", "B".repeat(8000));
        let mut five_hundreds = 0;
        let mut closed = false;
        for _ in 0..50 {
            if control.send_raw(long.as_bytes()).is_err() {
                closed = true;
                break;
            }
            match control.reply() {
                Ok(reply) if reply.code == 421 => break, // "closing connection"
                Ok(reply) => {
                    assert_eq!(reply.code, 500, "over-long line: {reply}");
                    five_hundreds += 1;
                }
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        if !closed {
            closed = control.read_until_closed(Duration::from_secs(10)).1;
        }
        assert!(five_hundreds >= 1, "the first over-long line gets 500");
        assert!(
            closed,
            "the connection must close after repeated abuse (got {five_hundreds} replies)\n{}",
            control.transcript
        );
    });
}

#[test]
fn endless_line_without_newline_is_cut_off() {
    let mut wharf = Wharf::start_default();
    with_normal_session(&mut wharf, |wharf| {
        let mut control = wharf.control();
        let chunk = vec![b'C'; 64 * 1024];
        let started = Instant::now();
        let mut sent = 0usize;
        // 64 MiB without a line end: the server must stop buffering long before that.
        while sent < 64 * 1024 * 1024 && started.elapsed() < Duration::from_secs(30) {
            if control.send_raw(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        let (received, closed) = control.read_until_closed(Duration::from_secs(10));
        let text = String::from_utf8_lossy(&received);
        assert!(
            closed || text.starts_with("500") || sent < 64 * 1024 * 1024,
            "the server kept reading an endless line ({sent} bytes, reply {text:?})"
        );
        if !received.is_empty() {
            assert!(
                text.starts_with("500"),
                "reply to an endless line: {text:?}"
            );
        }
    });
}

#[test]
fn nul_bytes_in_commands_are_rejected_and_the_session_continues() {
    let mut wharf = Wharf::start_default();
    with_normal_session(&mut wharf, |wharf| {
        for garbage in [
            &b"FE\0AT\r\n"[..],
            b"\0\0\0\0\r\n",
            b"USER\0alice\r\n",
            b"AUTH TLS\0\r\n",
        ] {
            one_bad_line_then_feat(wharf, garbage);
        }
    });
}

#[test]
fn invalid_utf8_commands_are_rejected_and_the_session_continues() {
    let mut wharf = Wharf::start_default();
    with_normal_session(&mut wharf, |wharf| {
        for garbage in [
            &b"\xff\xfe\xfd\r\n"[..],
            b"\xc3\x28\r\n",
            b"FEAT \xed\xa0\x80\r\n",
            b"\x80\x81\x82 \xc0\xaf\r\n",
            b"STOR caf\xe9.txt\r\n",
        ] {
            one_bad_line_then_feat(wharf, garbage);
        }
    });
}

#[test]
fn garbage_after_login_over_tls_is_rejected_and_the_session_continues() {
    let mut wharf = Wharf::start_default();
    with_normal_session(&mut wharf, |wharf| {
        let output = run(wharf.python("bad_input.py").arg("after_login"));
        assert_success(&output, "bad_input.py after_login");
    });
}

#[test]
fn tls_client_hello_on_the_explicit_port_does_not_harm_the_server() {
    let mut wharf = Wharf::start_default();
    with_normal_session(&mut wharf, |wharf| {
        for _ in 0..5 {
            let output = run(wharf.python("bad_input.py").arg("clienthello"));
            assert_success(&output, "bad_input.py clienthello");
        }
    });
}

#[test]
fn plain_text_on_the_implicit_port_is_dropped() {
    let mut wharf = Wharf::start_default();
    with_normal_session(&mut wharf, |wharf| {
        for garbage in [
            &b"USER alice\r\nPASS secret\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"\x16\x03\x01\x00\x05hello",
        ] {
            let mut control = Control::connect_silent(wharf.implicit_port);
            let _ = control.send_raw(garbage);
            let (received, closed) = control.read_until_closed(Duration::from_secs(15));
            assert!(
                closed,
                "the implicit port must drop a non-TLS client ({garbage:?})"
            );
            let text = String::from_utf8_lossy(&received);
            assert!(
                !text.contains("230") && !text.contains("331"),
                "no FTP dialogue without TLS: {text:?}"
            );
        }
    });
}

#[test]
fn two_hundred_concurrent_garbage_connections_leave_the_server_responsive() {
    // max-per-ip is raised: all connections come from 127.0.0.1, and the point is to see
    // garbage handled, not the per-IP limit (tested on its own below).
    let mut wharf = Wharf::start(WharfOptions::default().args(["--max-per-ip", "600"]));
    with_normal_session(&mut wharf, |wharf| {
        let port = wharf.explicit_port;
        let implicit = wharf.implicit_port;
        let workers: Vec<_> = (0..8)
            .map(|worker| {
                std::thread::spawn(move || {
                    let mut rng = rand::thread_rng();
                    let mut held = Vec::new();
                    for i in 0..25 {
                        let target = if (worker + i) % 4 == 0 {
                            implicit
                        } else {
                            port
                        };
                        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", target)) else {
                            continue;
                        };
                        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
                        match i % 5 {
                            // random binary
                            0 => {
                                let mut junk = vec![0u8; rng.gen_range(1..64 * 1024)];
                                rng.fill_bytes(&mut junk);
                                let _ = stream.write_all(&junk);
                            }
                            // random printable lines, some very long
                            1 => {
                                for _ in 0..20 {
                                    let len = rng.gen_range(0..6000);
                                    let line: String = (0..len)
                                        .map(|_| rng.gen_range(b' '..=b'~') as char)
                                        .collect();
                                    let _ = stream.write_all(format!("{line}\r\n").as_bytes());
                                }
                            }
                            // half-open: say nothing
                            2 => {}
                            // half-closed: shut down our write side at once
                            3 => {
                                let _ = stream.shutdown(Shutdown::Write);
                            }
                            // slow sender: a partial command, byte by byte
                            _ => {
                                for byte in b"NOO" {
                                    let _ = stream.write_all(&[*byte]);
                                    std::thread::sleep(Duration::from_millis(100));
                                }
                            }
                        }
                        held.push(stream);
                    }
                    // Keep them all open a while, then drain and drop.
                    std::thread::sleep(Duration::from_secs(4));
                    for mut stream in held {
                        let _ = stream.set_read_timeout(Some(Duration::from_millis(10)));
                        let mut buf = [0u8; 1024];
                        let _ = stream.read(&mut buf);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("garbage worker");
        }
    });
    // After the storm a fresh session still logs in and transfers.
    NormalSession::start(&wharf, 1, MIB).finish();
}

#[test]
fn connections_beyond_max_per_ip_are_refused_without_affecting_the_others() {
    let mut wharf = Wharf::start(WharfOptions::default().args(["--max-per-ip", "4"]));
    let mut held: Vec<Control> = (0..4).map(|_| wharf.control()).collect();
    let (mut extra, greeting) = Control::connect(wharf.explicit_port);
    assert_eq!(
        greeting.code, 421,
        "a fifth connection from the same IP: {greeting}"
    );
    let (_, closed) = extra.read_until_closed(Duration::from_secs(10));
    assert!(closed, "the refused connection is closed");
    for control in &mut held {
        assert_eq!(control.cmd("FEAT").code, 211, "held connections still work");
    }
    drop(held);
    std::thread::sleep(Duration::from_millis(500));
    wharf.assert_alive();
}
