//! The two fields peerlock reads from a certificate itself: the subject's
//! common name (a peer's identity) and the validity period (expiry
//! warnings, a CA's end date).
//!
//! Read with `x509-cert` (RustCrypto), which decodes a certificate's
//! structure and leaves its extensions as opaque bytes. `x509-parser` did
//! this before and parsed every extension type and OID name it knows
//! too, although webpki has already checked the chain and these two
//! fields are all that is used: reading them here instead made the
//! measured application 0.13 MiB smaller (issue 12, item 9; the README's
//! "What peerlock adds to a binary"). `x509-parser` is still linked when
//! an application loads a saved CA with `ClusterCa::from_pem` (rcgen reads
//! the CA with it).
//!
//! `der` decodes dates from 1970 to 9999 only, as webpki does (its
//! `time.rs`): a certificate whose validity starts before 1970 is not read
//! here, and webpki has refused it in the handshake already.

use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Tag, Tagged};
use x509_cert::Certificate;

/// id-at-commonName (RFC 5280 §4.1.2.6, X.520).
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// The common name of a DER certificate: its first CN attribute as text
/// (UTF8String, PrintableString or IA5String); `None` when the certificate
/// does not parse, has no CN, or the CN is empty.
pub(crate) fn common_name(der: &[u8]) -> Option<String> {
    let cert = Certificate::from_der(der).ok()?;
    let value = &cert
        .tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == COMMON_NAME)?
        .value;
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
            let cn = std::str::from_utf8(value.value()).ok()?;
            (!cn.is_empty()).then(|| cn.to_owned())
        }
        _ => None,
    }
}

/// `(not_before, not_after)` of a DER certificate, in seconds since the
/// Unix epoch; `None` when it does not parse.
pub(crate) fn validity_unix(der: &[u8]) -> Option<(i64, i64)> {
    let cert = Certificate::from_der(der).ok()?;
    let v = &cert.tbs_certificate.validity;
    let secs = |t: &x509_cert::time::Time| i64::try_from(t.to_unix_duration().as_secs()).ok();
    Some((secs(&v.not_before)?, secs(&v.not_after)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};

    fn cert_with_cn(cn: Option<DnValue>) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "peerlock tests");
        if let Some(cn) = cn {
            dn.push(DnType::CommonName, cn);
        }
        params.distinguished_name = dn;
        params.not_before = rcgen::date_time_ymd(2001, 2, 3);
        params.not_after = rcgen::date_time_ymd(2033, 5, 18);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_common_name_is_read_in_each_string_type() {
        let utf8 = cert_with_cn(Some(DnValue::Utf8String("node-ä".into())));
        assert_eq!(common_name(&utf8).as_deref(), Some("node-ä"));
        let printable = DnValue::PrintableString("node-b".try_into().unwrap());
        assert_eq!(
            common_name(&cert_with_cn(Some(printable))).as_deref(),
            Some("node-b")
        );
        let ia5 = DnValue::Ia5String("node-c".try_into().unwrap());
        assert_eq!(
            common_name(&cert_with_cn(Some(ia5))).as_deref(),
            Some("node-c")
        );
    }

    #[test]
    fn no_empty_or_missing_common_name_is_an_identity() {
        assert_eq!(common_name(&cert_with_cn(None)), None);
        let empty = cert_with_cn(Some(DnValue::Utf8String(String::new())));
        assert_eq!(common_name(&empty), None);
        assert_eq!(common_name(b"junk"), None);
        let der = cert_with_cn(Some(DnValue::Utf8String("x".into())));
        assert_eq!(common_name(&der[..der.len() - 1]), None);
    }

    #[test]
    fn the_validity_is_read_in_unix_seconds() {
        let der = cert_with_cn(None);
        // 2001-02-03T00:00:00Z and 2033-05-18T00:00:00Z.
        assert_eq!(validity_unix(&der), Some((981_158_400, 1_999_987_200)));
        assert_eq!(validity_unix(b"junk"), None);
    }
}
