//! Just enough DER reading to take an X.509 certificate apart: its subject
//! name and public key. [`crate::ClusterCa::from_pem`] needs them to keep
//! issuing under a CA certificate it did not create in this process; rcgen
//! only parses certificates with its `x509-parser` feature, a much larger
//! dependency than these few lines. Everything returns `None` on bad input.

/// Parts of a certificate, each as its complete DER encoding (tag included).
pub(crate) struct CertificateParts<'a> {
    pub(crate) subject: &'a [u8],
    pub(crate) spki: &'a [u8],
}

/// One attribute of a distinguished name: OID arcs, string tag, string bytes.
pub(crate) struct NameAttribute<'a> {
    pub(crate) oid: Vec<u64>,
    pub(crate) tag: u8,
    pub(crate) value: &'a [u8],
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const VERSION: u8 = 0xA0;

pub(crate) fn certificate_parts(der: &[u8]) -> Option<CertificateParts<'_>> {
    let (certificate, _, _) = take(der, SEQUENCE)?;
    let (tbs, _, _) = take(certificate, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = tlv(rest)?.rest;
    }
    let (_, _, rest) = take(rest, INTEGER)?; // serial
    let (_, _, rest) = take(rest, SEQUENCE)?; // signature algorithm
    let (_, _, rest) = take(rest, SEQUENCE)?; // issuer
    let (_, _, rest) = take(rest, SEQUENCE)?; // validity
    let (_, subject, rest) = take(rest, SEQUENCE)?;
    let (_, spki, _) = take(rest, SEQUENCE)?;
    Some(CertificateParts { subject, spki })
}

/// The attributes of a Name in order, multi-valued RDNs flattened.
pub(crate) fn name_attributes(name: &[u8]) -> Option<Vec<NameAttribute<'_>>> {
    let (mut rdns, _, _) = take(name, SEQUENCE)?;
    let mut attributes = Vec::new();
    while !rdns.is_empty() {
        let (mut set, _, rest) = take(rdns, SET)?;
        rdns = rest;
        while !set.is_empty() {
            let (pair, _, rest) = take(set, SEQUENCE)?;
            set = rest;
            let (oid, _, value) = take(pair, OID)?;
            let value = tlv(value)?;
            attributes.push(NameAttribute {
                oid: oid_arcs(oid)?,
                tag: value.tag,
                value: value.contents,
            });
        }
    }
    Some(attributes)
}

/// One DER element and what follows it.
struct Element<'a> {
    tag: u8,
    contents: &'a [u8],
    whole: &'a [u8],
    rest: &'a [u8],
}

fn tlv(input: &[u8]) -> Option<Element<'_>> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags never occur in the parts we read
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(count)?;
        rest = after;
        bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b))
    };
    let header = input.len() - rest.len();
    let (contents, rest) = rest.split_at_checked(len)?;
    Some(Element {
        tag,
        contents,
        whole: input.get(..header.checked_add(len)?)?,
        rest,
    })
}

/// Reads an element that must carry `tag`: (contents, whole encoding, rest).
fn take(input: &[u8], tag: u8) -> Option<(&[u8], &[u8], &[u8])> {
    let element = tlv(input).filter(|e| e.tag == tag)?;
    Some((element.contents, element.whole, element.rest))
}

fn oid_arcs(bytes: &[u8]) -> Option<Vec<u64>> {
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    for &b in bytes {
        if value > u64::MAX >> 7 {
            return None;
        }
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let (first, second) = if value < 80 {
                    (value / 40, value % 40)
                } else {
                    (2, value - 80)
                };
                arcs.extend([first, second]);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    match bytes.last() {
        Some(last) if last & 0x80 == 0 => Some(arcs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_subject_and_key_of_a_certificate() {
        let generated = rcgen::generate_simple_self_signed(vec!["a.example.com".into()]).unwrap();
        let parts = certificate_parts(generated.cert.der()).unwrap();
        assert_eq!(parts.spki, generated.key_pair.public_key_der());
        let attributes = name_attributes(parts.subject).unwrap();
        assert_eq!(attributes.len(), 1);
        assert_eq!(attributes[0].oid, vec![2, 5, 4, 3]); // commonName
        assert_eq!(attributes[0].value, b"rcgen self signed cert");
    }

    #[test]
    fn garbage_and_truncation_are_rejected_without_panic() {
        let generated = rcgen::generate_simple_self_signed(vec!["a.example.com".into()]).unwrap();
        let der = generated.cert.der().to_vec();
        for len in 0..der.len() {
            assert!(certificate_parts(&der[..len]).is_none());
        }
        assert!(certificate_parts(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        assert!(name_attributes(&[0x30, 0x03, 0x31, 0x01, 0x30]).is_none());
        assert!(oid_arcs(&[0x2a, 0x86]).is_none());
    }
}
