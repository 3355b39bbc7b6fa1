//! Client certificates (mutual TLS) against a real `wharf` process, with curl
//! (`--cert/--key`) and lftp (`ssl:cert-file`): a partner CA trusted through
//! `wharf cert trust add`, users that log in by certificate alone (mapped by CN or
//! SAN) or by a pinned certificate and a password, an optional explicit listener and
//! a required implicit one. Certificates are made with the openssl command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::cluster::poll_until;
use crate::support::*;

/// A CA and client certificates it issued, in a scratch directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        require_tool("openssl");
        let pki = Pki {
            dir: tempfile::tempdir().expect("a directory for the test PKI"),
        };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Partner Test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let out = run(Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path()));
        assert_success(&out, &format!("openssl {}", args.join(" ")));
    }

    /// A client certificate `NAME.pem` / `NAME.key` with subject CN `cn` and, when
    /// given, a DNS subject alternative name; issued by `issuer` (`ca` or another
    /// self-made CA).
    fn client(&self, name: &str, cn: &str, san: Option<&str>, issuer: &str) {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={cn}"),
        ]);
        let ext = format!("{name}.ext");
        let mut extensions =
            String::from("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
        if let Some(san) = san {
            extensions.push_str(&format!("subjectAltName=DNS:{san}\n"));
        }
        std::fs::write(self.path(&ext), extensions).unwrap();
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{issuer}.pem"),
            "-CAkey",
            &format!("{issuer}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-extfile",
            &ext,
        ]);
    }

    /// A second CA, not trusted by the server.
    fn rogue_ca(&self) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "rogue.key",
            "-out",
            "rogue.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Rogue CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    /// SHA-256 fingerprint of `NAME.pem`, as `openssl x509 -fingerprint` prints it.
    fn fingerprint(&self, name: &str) -> String {
        let out = run(Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(self.path(&format!("{name}.pem"))));
        assert_success(&out, "openssl x509 -fingerprint");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.trim()
            .split_once('=')
            .map(|(_, fp)| fp.to_owned())
            .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
    }
}

/// A node asking for certificates on both listeners (required on the implicit one),
/// trusting the test CA, with three partner accounts.
fn mtls_node(pki: &Pki) -> Wharf {
    let wharf = Wharf::start(WharfOptions::default().args([
        "--client-certs",
        "optional",
        "--implicit-client-certs",
        "required",
    ]));
    let ca = pki.path("ca.pem").display().to_string();
    assert_success(
        &wharf.cli(
            &["cert", "trust", "add", "--name", "partners", "--cert", &ca],
            None,
        ),
        "wharf cert trust add",
    );
    pki.client("edi", "edi", None, "ca");
    pki.client("gateway", "some-host", Some("gw.partner.example"), "ca");
    pki.client("bank", "bank", None, "ca");
    for args in [
        vec!["user", "add", "edi", "--login", "certificate"],
        vec![
            "user",
            "add",
            "gateway",
            "--login",
            "certificate",
            "--cert-match",
            "san:gw.partner.example",
        ],
    ] {
        assert_success(&wharf.cli(&args, None), "wharf user add (certificate)");
    }
    let pin = format!("sha256:{}", pki.fingerprint("bank"));
    assert_success(
        &wharf.cli(
            &[
                "user",
                "add",
                "bank",
                "--password-stdin",
                "--login",
                "both",
                "--cert-match",
                &pin,
            ],
            Some("vault-Door-42\n"),
        ),
        "wharf user add (both)",
    );
    // The anchor reaches the listeners through the replicated table.
    poll_until(
        std::time::Duration::from_secs(10),
        "the trust anchor in use",
        || {
            wharf
                .stderr()
                .contains("trust anchors for client certificates")
                .then_some(())
        },
    );
    wharf
}

fn with_cert(mut cmd: Command, pki: &Pki, name: &str) -> Command {
    cmd.arg("--cert")
        .arg(pki.path(&format!("{name}.pem")))
        .arg("--key")
        .arg(pki.path(&format!("{name}.key")));
    cmd
}

/// Uploads `local` as `name` and lists the home, as `user` with `password`, through
/// `url_of(name)`; returns curl's output.
fn curl_round(
    wharf: &Wharf,
    pki: &Pki,
    (cert, user, password): (Option<&str>, &str, &str),
    url: &str,
    local: &Path,
) -> std::process::Output {
    let base = wharf.curl_as(user, password);
    let mut cmd = match cert {
        Some(cert) => with_cert(base, pki, cert),
        None => base,
    };
    cmd.arg("-T").arg(local).arg(url);
    run(&mut cmd)
}

#[test]
fn certificate_users_log_in_with_their_certificate_and_nothing_else() {
    let pki = Pki::new();
    let wharf = mtls_node(&pki);
    let local = wharf.client_dir().join("invoice.edi");
    write_random_file(&local, 128 * 1024);

    // By CN, no password at all.
    let out = curl_round(
        &wharf,
        &pki,
        (Some("edi"), "edi", ""),
        &wharf.explicit_url("invoice.edi"),
        &local,
    );
    assert_success(&out, "edi with its certificate");
    assert_same_file(&local, &wharf.home("edi").join("invoice.edi"));
    // By SAN.
    let out = curl_round(
        &wharf,
        &pki,
        (Some("gateway"), "gateway", ""),
        &wharf.explicit_url("gw.bin"),
        &local,
    );
    assert_success(&out, "gateway with its certificate (SAN)");
    assert_same_file(&local, &wharf.home("gateway").join("gw.bin"));

    // Without a certificate, or with another user's, there is no way in.
    let out = curl_round(
        &wharf,
        &pki,
        (None, "edi", "anything"),
        &wharf.explicit_url("x.bin"),
        &local,
    );
    assert!(
        !out.status.success(),
        "edi without a certificate: {}",
        describe(&out)
    );
    let out = curl_round(
        &wharf,
        &pki,
        (Some("gateway"), "edi", ""),
        &wharf.explicit_url("x.bin"),
        &local,
    );
    assert!(
        !out.status.success(),
        "edi with gateway's certificate: {}",
        describe(&out)
    );
    assert!(!wharf.home("edi").join("x.bin").exists());
    assert!(
        wharf
            .stderr()
            .contains("needs a trusted client certificate"),
        "the refusal says why in the log\n{}",
        wharf.logs()
    );
}

#[test]
fn both_needs_the_pinned_certificate_and_the_password() {
    let pki = Pki::new();
    let wharf = mtls_node(&pki);
    let local = wharf.client_dir().join("ledger.csv");
    write_random_file(&local, 64 * 1024);
    let url = wharf.explicit_url("ledger.csv");
    let ok = curl_round(
        &wharf,
        &pki,
        (Some("bank"), "bank", "vault-Door-42"),
        &url,
        &local,
    );
    assert_success(&ok, "bank with certificate and password");
    assert_same_file(&local, &wharf.home("bank").join("ledger.csv"));
    for (cert, password, what) in [
        (Some("bank"), "wrong", "wrong password"),
        (None, "vault-Door-42", "no certificate"),
        (
            Some("edi"),
            "vault-Door-42",
            "a trusted but unpinned certificate",
        ),
    ] {
        let out = curl_round(
            &wharf,
            &pki,
            (cert, "bank", password),
            &wharf.explicit_url("no.csv"),
            &local,
        );
        assert!(!out.status.success(), "{what}: {}", describe(&out));
    }
    // Password users are untouched by the optional listener.
    let out = curl_round(
        &wharf,
        &pki,
        (None, &wharf.user, &wharf.password),
        &wharf.explicit_url("p.bin"),
        &local,
    );
    assert_success(&out, "a password user without a certificate");
}

#[test]
fn the_required_listener_refuses_handshakes_without_a_trusted_certificate() {
    let pki = Pki::new();
    let wharf = mtls_node(&pki);
    pki.rogue_ca();
    pki.client("impostor", "edi", None, "rogue");
    let local = wharf.client_dir().join("r.bin");
    write_random_file(&local, 16 * 1024);

    let ok = curl_round(
        &wharf,
        &pki,
        (Some("edi"), "edi", ""),
        &wharf.implicit_url("implicit.bin"),
        &local,
    );
    assert_success(&ok, "implicit listener with a trusted certificate");
    let none = curl_round(
        &wharf,
        &pki,
        (None, &wharf.user, &wharf.password),
        &wharf.implicit_url("n.bin"),
        &local,
    );
    assert!(
        !none.status.success(),
        "implicit without a certificate: {}",
        describe(&none)
    );
    // A certificate from an untrusted CA fails the handshake on either listener, even
    // with the right CN.
    for url in [wharf.implicit_url("r.bin"), wharf.explicit_url("r.bin")] {
        let out = curl_round(&wharf, &pki, (Some("impostor"), "edi", ""), &url, &local);
        assert!(
            !out.status.success(),
            "{url} with a rogue certificate: {}",
            describe(&out)
        );
    }
    assert!(!wharf.home("edi").join("r.bin").exists());

    // Removing the anchor locks the certificate users out.
    assert_success(
        &wharf.cli(&["cert", "trust", "remove", "partners"], None),
        "wharf cert trust remove",
    );
    poll_until(
        std::time::Duration::from_secs(10),
        "the anchor to be dropped",
        || {
            let out = curl_round(
                &wharf,
                &pki,
                (Some("edi"), "edi", ""),
                &wharf.implicit_url("late.bin"),
                &local,
            );
            (!out.status.success()).then_some(())
        },
    );
}

#[test]
fn lftp_logs_in_with_a_client_certificate() {
    let pki = Pki::new();
    let wharf = mtls_node(&pki);
    let local = wharf.client_dir().join("lftp.bin");
    write_random_file(&local, 256 * 1024);
    require_tool("lftp");
    // lftp's usual FTPS settings, logging in as the certificate user without a
    // password (the server answers USER with 232).
    let script = format!(
        "set ftp:ssl-force true\nset ftp:ssl-protect-data true\nset ftp:ssl-protect-list true\n\
         set ssl:verify-certificate no\nset ssl:check-hostname no\nset cmd:fail-exit yes\n\
         set net:max-retries 2\nset net:timeout 30\n\
         set ssl:cert-file {}\nset ssl:key-file {}\n\
         open -u edi, ftp://127.0.0.1:{}\nput {} -o lftp.bin\nls\n",
        pki.path("edi.pem").display(),
        pki.path("edi.key").display(),
        wharf.explicit_port,
        local.display()
    );
    let script_path = wharf.client_dir().join("mtls.lftp");
    std::fs::write(&script_path, script).unwrap();
    let out = run(Command::new("lftp").arg("-f").arg(&script_path));
    assert_success(&out, "lftp with ssl:cert-file");
    assert_same_file(&local, &wharf.home("edi").join("lftp.bin"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("lftp.bin"),
        "{}",
        describe(&out)
    );
}
