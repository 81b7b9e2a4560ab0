//! `ClusterCa`: issuing, reloading, bundles, validity.

use super::*;

#[test]
fn issue_reload_and_name() {
    let ca = ClusterCa::generate("t").unwrap();
    let tls = ca
        .issue_node("node-a", &["127.0.0.1", "node-a.internal"])
        .unwrap();
    assert_eq!(tls.node_name(), "node-a");
    let again = ClusterCa::from_pem(&ca.ca_pem(), &ca.key_pem()).unwrap();
    let (cert, key) = again.issue_node_pem("node-b", &["::1"]).unwrap();
    let tls = TlsConfig::from_pem(&ca.ca_pem(), &cert, &key).unwrap();
    assert_eq!(tls.node_name(), "node-b");
}

#[test]
fn bad_inputs_are_clear_errors() {
    let ca = ClusterCa::generate("t").unwrap();
    assert!(matches!(ca.issue_node("", &[]), Err(Error::Config(_))));
    assert!(matches!(ca.issue_node("a b", &[]), Err(Error::Config(_))));
    let (cert, _) = ca.issue_node_pem("n1", &["127.0.0.1"]).unwrap();
    let (_, other_key) = ca.issue_node_pem("n2", &["127.0.0.1"]).unwrap();
    assert!(matches!(
        TlsConfig::from_pem(&ca.ca_pem(), &cert, &other_key),
        Err(Error::Tls(_))
    ));
    assert!(matches!(
        TlsConfig::from_pem("junk", &cert, &other_key),
        Err(Error::Tls(_))
    ));
    assert!(matches!(
        TlsConfig::from_pem(&ca.ca_pem(), "", &other_key),
        Err(Error::Tls(_))
    ));
    assert!(ClusterCa::from_pem("junk", "junk").is_err());
    assert!(matches!(
        TlsConfig::from_pem_files("/nonexistent/ca.pem", "/x", "/y"),
        Err(Error::Io(_))
    ));
}

#[test]
fn a_bundle_of_several_cas_trusts_each_and_a_node_moves_between_them() {
    let (old, new, other) = (
        ClusterCa::generate("old").unwrap(),
        ClusterCa::generate("new").unwrap(),
        ClusterCa::generate("other").unwrap(),
    );
    let both = ClusterCa::bundle_pem(&[&old, &new]);
    assert_eq!(both.matches("BEGIN CERTIFICATE").count(), 2);
    // Step 1: the old certificate, both CAs trusted.
    let a = old.issue_node("node-a", &[]).unwrap();
    let a1 = a.with_ca_bundle(&both).unwrap();
    assert_eq!((a1.ca_count(), a1.node_name()), (2, "node-a"));
    assert_eq!(a1.ca_fingerprint(), a.ca_fingerprint());
    // Step 2: a certificate from the new CA, both trusted.
    let a2 = new.issue_node_trusting("node-a", &[], &both).unwrap();
    assert_eq!(a2.ca_fingerprints(), a1.ca_fingerprints());
    // Step 3: the old CA dropped; refused while the certificate is
    // still the old CA's.
    let a3 = a2.with_ca_bundle(&new.ca_pem()).unwrap();
    assert_eq!(a3.ca_count(), 1);
    assert!(matches!(
        a1.with_ca_bundle(&new.ca_pem()),
        Err(Error::Tls(_))
    ));
    assert!(matches!(
        other.issue_node_trusting("node-a", &[], &both),
        Err(Error::Tls(_))
    ));
    assert!(matches!(a1.with_ca_bundle("junk"), Err(Error::Tls(_))));
}

const DAY: Duration = Duration::from_secs(86_400);

/// `(not_before, not_after)` of a PEM certificate, seconds since the epoch.
fn validity(pem: &str) -> (i64, i64) {
    let der = crate::tls::parse_certs(pem, "test").unwrap().remove(0);
    crate::tls::x509::validity_unix(&der).unwrap()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// Asserts `got` is `want` within a minute (the test's own run time).
fn near(got: i64, want: i64, what: &str) {
    assert!(
        (got - want).abs() <= 60,
        "{what}: {got} is not about {want}"
    );
}

#[test]
fn node_certificates_last_a_year_the_ca_ten_and_both_start_an_hour_early() {
    let now = unix_now();
    let ca = ClusterCa::generate("t").unwrap();
    let (ca_from, ca_to) = validity(&ca.ca_pem());
    near(ca_from, now - 3600, "CA not_before");
    near(ca_to, now + 3650 * 86_400, "CA not_after");
    let ca_end = ca.not_after().unwrap().duration_since(UNIX_EPOCH).unwrap();
    assert_eq!(ca_end.as_secs() as i64, ca_to);

    assert_eq!(ca.node_validity(), NODE_CERT_VALIDITY);
    let (cert, _) = ca.issue_node_pem("node-a", &[]).unwrap();
    let (from, to) = validity(&cert);
    near(from, now - 3600, "node not_before");
    near(to, now + 365 * 86_400, "node not_after");

    let short = ca.clone().with_node_validity(10 * DAY);
    let tls = short.issue_node("node-b", &[]).unwrap();
    let left = tls.not_after().unwrap().duration_since(SystemTime::now());
    near(
        left.unwrap().as_secs() as i64,
        10 * 86_400,
        "chosen validity",
    );
}

#[test]
fn a_node_certificate_ends_no_later_than_its_ca() {
    let now = unix_now();
    let ca = ClusterCa::generate_valid_for("t", 30 * DAY).unwrap();
    let (cert, _) = ca.issue_node_pem("node-a", &[]).unwrap();
    near(validity(&cert).1, now + 30 * 86_400, "clamped to the CA");
}

#[test]
fn a_zero_or_endless_validity_is_a_config_error() {
    assert!(matches!(
        ClusterCa::generate_valid_for("t", Duration::ZERO),
        Err(Error::Config(_))
    ));
    let forever = Duration::from_secs(9000 * 365 * 86_400);
    assert!(matches!(
        ClusterCa::generate_valid_for("t", forever),
        Err(Error::Config(_))
    ));
    let ca = ClusterCa::generate("t").unwrap();
    for bad in [Duration::ZERO, forever, Duration::MAX] {
        let r = ca.clone().with_node_validity(bad).issue_node("n", &[]);
        assert!(matches!(r, Err(Error::Config(_))), "{bad:?}: {r:?}");
    }
}

/// A CA as `generate` made it before certificates had a validity of their
/// own (rcgen's default, 1975 to 4096).
fn old_style_ca(not_after: SystemTime) -> ClusterCa {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "peerlock CA old");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_after = not_after.into();
    let cert = params.self_signed(&key).unwrap();
    ClusterCa::from_pem(&cert.pem(), &key.serialize_pem()).unwrap()
}

#[test]
fn a_ca_saved_before_validities_loads_and_issues_year_long_certificates() {
    let until_4096 = old_style_ca(rcgen::date_time_ymd(4096, 1, 1).into());
    let again = ClusterCa::from_pem(&until_4096.ca_pem(), &until_4096.key_pem()).unwrap();
    // 4096-01-01T00:00:00Z.
    let year_4096 = UNIX_EPOCH + Duration::from_secs(67_090_118_400);
    assert_eq!(again.not_after(), Some(year_4096));
    let tls = again.issue_node("node-a", &[]).unwrap();
    let left = tls.not_after().unwrap().duration_since(SystemTime::now());
    near(
        left.unwrap().as_secs() as i64,
        365 * 86_400,
        "from an old CA",
    );
    // The certificate is one its peers accept: same CA, same checks.
    let (cert, key) = again.issue_node_pem("node-b", &[]).unwrap();
    assert_eq!(
        TlsConfig::from_pem(&until_4096.ca_pem(), &cert, &key)
            .unwrap()
            .ca_fingerprint(),
        tls.ca_fingerprint()
    );
}

#[test]
fn an_expired_ca_issues_nothing() {
    let expired = old_style_ca(SystemTime::now() - DAY);
    let r = expired.issue_node("node-a", &[]);
    assert!(matches!(r, Err(Error::Tls(_))), "{r:?}");
}
