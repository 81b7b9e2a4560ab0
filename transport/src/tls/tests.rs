//! `TlsConfig`'s tests: loading errors, derived secrets, CA bundles, and
//! member names.

use super::*;
use crate::ClusterCa;

fn tls_message(r: Result<TlsConfig, Error>) -> String {
    match r {
        Err(Error::Tls(m)) => m,
        other => panic!("expected Error::Tls, got {other:?}"),
    }
}

#[test]
fn errors_name_the_file_and_the_problem() {
    let ca = ClusterCa::generate("t").unwrap();
    let other = ClusterCa::generate("other").unwrap();
    let (cert, key) = ca.issue_node_pem("node-a", &["127.0.0.1"]).unwrap();
    let (_, wrong_key) = ca.issue_node_pem("node-b", &["127.0.0.1"]).unwrap();
    let (foreign, foreign_key) = other.issue_node_pem("node-a", &["127.0.0.1"]).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca_pem = write("ca.pem", &ca.ca_pem());
    let node_pem = write("node.pem", &cert);
    let node_key = write("node.key", &key);
    let empty = write("empty.pem", "");
    let bad_key = write("bad.key", &wrong_key);
    let foreign_pem = write("foreign.pem", &foreign);
    let foreign_key = write("foreign.key", &foreign_key);

    let ok = TlsConfig::from_pem_files(&ca_pem, &node_pem, &node_key).unwrap();
    assert_eq!(ok.node_name(), "node-a");
    assert!(!format!("{ok:?}").contains("PRIVATE"));

    let m = tls_message(TlsConfig::from_pem_files(&ca_pem, &empty, &node_key));
    assert!(
        m.contains("no certificate in") && m.contains("empty.pem"),
        "{m}"
    );
    let m = tls_message(TlsConfig::from_pem_files(&ca_pem, &node_pem, &empty));
    assert!(
        m.contains("no private key in") && m.contains("empty.pem"),
        "{m}"
    );
    let m = tls_message(TlsConfig::from_pem_files(&empty, &node_pem, &node_key));
    assert!(
        m.contains("no certificate in") && m.contains("empty.pem"),
        "{m}"
    );
    let m = tls_message(TlsConfig::from_pem_files(&ca_pem, &node_pem, &bad_key));
    assert!(m.contains("does not match") && m.contains("bad.key"), "{m}");
    let m = tls_message(TlsConfig::from_pem_files(
        &ca_pem,
        &foreign_pem,
        &foreign_key,
    ));
    assert!(
        m.contains("not valid for the CA") && m.contains("foreign.pem"),
        "{m}"
    );
    match TlsConfig::from_pem_files(dir.path().join("missing.pem"), &node_pem, &node_key) {
        Err(Error::Io(e)) => assert!(e.to_string().contains("missing.pem"), "{e}"),
        other => panic!("expected Error::Io, got {other:?}"),
    }
}

#[test]
fn derived_secrets_follow_the_key_and_the_label() {
    let ca = ClusterCa::generate("t").unwrap();
    let (cert, key) = ca.issue_node_pem("node-a", &["127.0.0.1"]).unwrap();
    let a = TlsConfig::from_pem(&ca.ca_pem(), &cert, &key).unwrap();
    // A restarted process loads the same files: same secret.
    let again = TlsConfig::from_pem(&ca.ca_pem(), &cert, &key).unwrap();
    let s: [u8; 32] = a.derive_secret(b"one");
    assert_eq!(s, again.derive_secret(b"one"));
    assert_ne!(s, a.derive_secret(b"two"));
    assert_ne!(s, [0; 32]);
    // Same name, new key (re-issued): another secret.
    let reissued = ca.issue_node("node-a", &["127.0.0.1"]).unwrap();
    assert_ne!(s, reissued.derive_secret(b"one"));
    let short: [u8; 8] = a.derive_secret(b"one");
    assert_eq!(short[..], s[..8]);
}

/// FNV-1a written out again, over the DER of the PEM `ClusterCa` gives:
/// the value data directories recorded before bundles existed.
fn fnv_of_pem(pem: &str) -> u64 {
    let der = parse_certs(pem, "test").unwrap().remove(0);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in der.as_ref() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[test]
fn a_bundle_trusts_every_ca_and_is_fingerprinted_by_its_first() {
    let (ca1, ca2, ca3) = (
        ClusterCa::generate("one").unwrap(),
        ClusterCa::generate("two").unwrap(),
        ClusterCa::generate("three").unwrap(),
    );
    let single = ca1.issue_node("node-a", &[]).unwrap();
    assert_eq!(single.ca_fingerprint(), fnv_of_pem(&ca1.ca_pem()));
    assert_eq!(single.ca_fingerprints(), vec![single.ca_fingerprint()]);

    let bundle = format!("{}{}", ca1.ca_pem(), ca2.ca_pem());
    for ca in [&ca1, &ca2] {
        let (cert, key) = ca.issue_node_pem("node-b", &[]).unwrap();
        let tls = TlsConfig::from_pem(&bundle, &cert, &key).unwrap();
        assert_eq!(tls.ca_fingerprint(), single.ca_fingerprint());
        assert_eq!(
            tls.ca_fingerprints(),
            vec![fnv_of_pem(&ca1.ca_pem()), fnv_of_pem(&ca2.ca_pem())]
        );
    }
    let (cert, key) = ca3.issue_node_pem("node-c", &[]).unwrap();
    let m = tls_message(TlsConfig::from_pem(&bundle, &cert, &key));
    assert!(m.contains("not valid for the CA"), "{m}");
    // A bundle with one broken block is refused, not half-used.
    let broken = format!(
        "{}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ca1.ca_pem()
    );
    let (cert, key) = ca1.issue_node_pem("node-d", &[]).unwrap();
    assert!(matches!(
        TlsConfig::from_pem(&broken, &cert, &key),
        Err(Error::Tls(_))
    ));
}

#[test]
fn a_member_name_replaces_the_common_name_as_the_nodes_name() {
    let ca = ClusterCa::generate("t").unwrap();
    let shared = ca.issue_node("app", &[]).unwrap();
    assert_eq!((shared.node_name(), shared.common_name()), ("app", "app"));
    assert!(!shared.name_is_claimed());
    let pod = shared.clone().with_member_name("pod-7").unwrap();
    assert_eq!((pod.node_name(), pod.common_name()), ("pod-7", "app"));
    assert!(pod.name_is_claimed());
    assert!(format!("{pod:?}").contains("pod-7"));
    // Naming a node by its own common name claims nothing.
    assert!(!shared
        .clone()
        .with_member_name("app")
        .unwrap()
        .name_is_claimed());
    for bad in [String::new(), "n".repeat(257)] {
        match shared.clone().with_member_name(&bad) {
            Err(Error::Config(m)) => assert!(m.contains("1 to 256 bytes"), "{m}"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }
}
