use super::*;

const DAY: u64 = 24 * 3600;

fn acme(domains: &[&str]) -> AcmeCertRecord {
    let domains = domains.iter().map(|d| d.to_string()).collect();
    AcmeCertRecord::new("default", domains, "https://acme.test/dir")
}

fn cert(names: &[&str], not_before: u64, not_after: u64) -> CertRecord {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2030, 1, 1);
    CertRecord {
        name: "default".into(),
        chain_pem: params.self_signed(&key).unwrap().pem(),
        key_pem: key.serialize_pem(),
        not_before,
        not_after,
        source: CertSource::Acme,
        generation: 4,
    }
}

#[test]
fn a_missing_or_foreign_certificate_is_ordered() {
    let now = 1_000 * DAY;
    let a = acme(&["ftp.example.test"]);
    assert_eq!(due(&a, None, None, now), Some(Due::Missing));
    let mut internal = cert(&["ftp.example.test"], now, now + 90 * DAY);
    internal.source = CertSource::InternalCa;
    assert_eq!(due(&a, Some(&internal), None, now), Some(Due::Missing));
}

#[test]
fn renewal_comes_thirty_days_before_expiry_or_at_two_thirds_of_short_lives() {
    let a = acme(&["ftp.example.test"]);
    let start = 1_000 * DAY;
    let long = cert(&["ftp.example.test"], start, start + 90 * DAY);
    assert_eq!(due(&a, Some(&long), None, start + 59 * DAY), None);
    assert_eq!(
        due(&a, Some(&long), None, start + 60 * DAY),
        Some(Due::Expiring)
    );
    let short = cert(&["ftp.example.test"], start, start + 3 * DAY);
    assert_eq!(due(&a, Some(&short), None, start + DAY), None);
    assert_eq!(
        due(&a, Some(&short), None, start + 2 * DAY),
        Some(Due::Expiring)
    );
}

#[test]
fn a_rotation_request_names_the_generation_it_replaces() {
    let a = acme(&["ftp.example.test"]);
    let now = 1_000 * DAY;
    let c = cert(&["ftp.example.test"], now, now + 90 * DAY);
    assert_eq!(due(&a, Some(&c), Some(4), now), Some(Due::Requested));
    assert_eq!(due(&a, Some(&c), Some(3), now), None, "already served");
}

#[test]
fn other_domains_need_a_new_certificate_whatever_their_case_or_order() {
    let now = 1_000 * DAY;
    let c = cert(&["a.example.test", "b.example.test"], now, now + 90 * DAY);
    let same = acme(&["B.example.test", "a.example.test"]);
    assert_eq!(due(&same, Some(&c), None, now), None);
    let more = acme(&["a.example.test", "b.example.test", "c.example.test"]);
    assert_eq!(due(&more, Some(&c), None, now), Some(Due::DomainsChanged));
}

#[test]
fn failures_back_off_from_ten_seconds_to_an_hour() {
    assert_eq!(backoff(1), Duration::from_secs(10));
    assert_eq!(backoff(2), Duration::from_secs(20));
    assert_eq!(backoff(5), Duration::from_secs(160));
    assert_eq!(backoff(9), Duration::from_secs(2560));
    assert_eq!(backoff(40), Duration::from_secs(3600));
    assert_eq!(backoff(0), Duration::from_secs(10));
}
