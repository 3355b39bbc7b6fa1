//! The deployment files that no test here can run for real are checked as far
//! as this machine allows: the systemd unit by systemd's own verifier and
//! its security assessment, the Kubernetes manifests by running the pods'
//! start-up script against the Services they ship with.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::support::*;
use serde_json::Value;

fn deploy(path: &str) -> std::path::PathBuf {
    tests_dir().join("..").join("deploy").join(path)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `systemd-analyze security --offline` exposure of a unit file, as the
/// exit status against a threshold (10 = exposure 1.0).
fn exposure_at_most(unit: &Path, threshold: u32) -> bool {
    run(Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(format!("--threshold={threshold}"))
        .arg(unit))
    .status
    .success()
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    if !have("systemd-analyze") {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The unit as shipped, pointing at the binary under test.
    let shipped = std::fs::read_to_string(deploy("systemd/wharf.service")).unwrap();
    let unit = dir.path().join("wharf.service");
    std::fs::write(
        &unit,
        shipped.replace("/usr/local/bin/wharf", env!("CARGO_BIN_EXE_wharf")),
    )
    .unwrap();
    let verified = run(Command::new("systemd-analyze").arg("verify").arg(&unit));
    assert_success(&verified, "systemd-analyze verify");
    assert!(
        verified.stderr.is_empty(),
        "the verifier has remarks:\n{}",
        describe(&verified)
    );
    assert!(
        exposure_at_most(&unit, 20),
        "exposure above 2.0:\n{}",
        describe(&run(Command::new("systemd-analyze")
            .args(["security", "--offline=true"])
            .arg(&unit)))
    );
    // The same check tells an unhardened unit apart.
    let plain = dir.path().join("plain").join("wharf.service");
    std::fs::create_dir_all(plain.parent().unwrap()).unwrap();
    std::fs::write(
        &plain,
        format!(
            "[Service]\nExecStart={} serve\n",
            env!("CARGO_BIN_EXE_wharf")
        ),
    )
    .unwrap();
    assert!(!exposure_at_most(&plain, 20));
}

/// The documents of a YAML file as JSON values (PyYAML does the parsing).
fn yaml_documents(path: &Path) -> Vec<Value> {
    let out = run(Command::new("python3")
        .arg("-c")
        .arg("import json, sys, yaml\nprint(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))")
        .arg(path));
    assert_success(&out, "parsing YAML with PyYAML");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the manifests"))
}

/// Runs the StatefulSet's start-up script as pod `hostname` would, with a
/// `wharf` on PATH that prints the environment it was started with.
fn pod_environment(script: &str, hostname: &str, public: &Path) -> Vec<(String, String)> {
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("wharf");
    std::fs::write(&fake, "#!/bin/sh\necho \"args=$*\"\nenv | grep '^WHARF_'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = script.replace("/etc/wharf-public", &public.display().to_string());
    let out = run(Command::new("/bin/sh")
        .args(["-c", &script])
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))
        .env("HOSTNAME", hostname)
        .env("POD_NAMESPACE", "ftp"));
    assert_success(&out, &format!("the start-up script as {hostname}"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn kubernetes_pods_serve_the_passive_ranges_their_services_forward() {
    let manifests = deploy("k8s/wharf.yaml");
    let docs = yaml_documents(&manifests);
    let set = named(&docs, "StatefulSet", "wharf");
    let replicas = set["spec"]["replicas"].as_u64().unwrap();
    let container = &set["spec"]["template"]["spec"]["containers"][0];
    let script = container["command"][2].as_str().expect("sh -c SCRIPT");
    let public = named(&docs, "ConfigMap", "wharf-public");
    let public_dir = tempfile::tempdir().unwrap();
    for (pod, address) in public["data"].as_object().unwrap() {
        std::fs::write(public_dir.path().join(pod), address.as_str().unwrap()).unwrap();
    }

    let mut ranges = Vec::new();
    for ordinal in 0..replicas {
        let pod = format!("wharf-{ordinal}");
        let env = pod_environment(script, &pod, public_dir.path());
        let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        assert_eq!(get("args").as_deref(), Some("serve"), "{env:?}");
        assert_eq!(
            get("WHARF_PASV_ADDRESS").as_deref(),
            public["data"][&pod].as_str(),
            "{pod} advertises its own passive Service's address"
        );
        assert_eq!(
            get("WHARF_CLUSTER_ADVERTISE"),
            Some(format!("{pod}.wharf-cluster.ftp.svc.cluster.local:7000"))
        );
        let joins = get("WHARF_JOIN");
        if ordinal == 0 {
            assert_eq!(joins, None, "wharf-0 starts the cluster");
        } else {
            assert_eq!(
                joins.as_deref(),
                Some("wharf-0.wharf-cluster.ftp.svc.cluster.local:7000")
            );
            assert_eq!(
                get("WHARF_JOIN_TOKEN_FILE").as_deref(),
                Some("/etc/wharf-join/join_token")
            );
        }
        let range = get("WHARF_PASV_PORTS").expect("a passive range");
        let (low, high) = range.split_once('-').unwrap();
        let pod_ports: BTreeSet<u64> = (low.parse().unwrap()..=high.parse().unwrap()).collect();

        let service = named(&docs, "Service", &format!("{pod}-passive"));
        assert_eq!(
            service["spec"]["selector"]["statefulset.kubernetes.io/pod-name"],
            pod.as_str()
        );
        let forwarded: BTreeSet<u64> = service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                assert_eq!(
                    p["port"], p["targetPort"],
                    "passive ports keep their number"
                );
                p["port"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(
            forwarded, pod_ports,
            "{pod}'s Service forwards exactly its range"
        );
        ranges.push(pod_ports);
    }
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            assert!(a.is_disjoint(b), "pods share passive ports");
        }
    }

    // The join token file the script points at is where the secret is mounted.
    let mounts = container["volumeMounts"].as_array().unwrap();
    let join_mount = mounts.iter().find(|m| m["name"] == "join").unwrap();
    assert_eq!(join_mount["mountPath"], "/etc/wharf-join");
    let headless = named(&docs, "Service", "wharf-cluster");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(set["spec"]["serviceName"], "wharf-cluster");
    for probe in ["readinessProbe", "livenessProbe"] {
        let path = container[probe]["httpGet"]["path"].as_str().unwrap();
        assert!(["/readyz", "/healthz"].contains(&path), "{probe} {path}");
    }
}
