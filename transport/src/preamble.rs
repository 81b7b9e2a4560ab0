//! The name preamble: which member name each end of a connection claims.
//!
//! With one certificate per node the certificate's common name (CN) is the
//! node's name. A certificate shared by every instance (one Kubernetes
//! Secret for a whole Deployment) gives every node the same CN, and keyed
//! by it every peer would be one node. So on connections that negotiated
//! ALPN [`ALPN_V3`](crate::ALPN_V3), each side's first unidirectional
//! stream carries the member name it claims, sent before anything else
//! and read before the connection is used:
//!
//! ```text
//! | "PLN" | version u8 = 1 | length u16 big-endian | name (length bytes, UTF-8) | end of stream |
//! ```
//!
//! The name is 1 to [`MAX_MEMBER_NAME`] bytes of UTF-8, the rule for every
//! member name; anything else (another magic, another version, a length
//! over the limit or not matching the bytes, invalid UTF-8) refuses the
//! connection before a frame is read from it. A peer of an older version
//! (ALPN 1 or 2) sends no preamble, and is known by its CN as before.
//!
//! # Which name counts
//!
//! See [`resolve`]: the claim counts only when it is the CN, or when the
//! peer presents this node's own CN (the two share a certificate). A claim
//! from a peer with a certificate of its own that names another node is
//! refused: with per-node certificates, frames for a member come only from
//! a connection whose certificate names it, as before preambles existed.
//! A node that itself claims a name other than its CN refuses, in turn, a
//! peer with a certificate of its own ([`check_own`]), before exchanging
//! names: that peer would refuse the claim, and this way both sides say
//! why, and a start fails at once with the reason instead of at its
//! deadline. One cluster uses per-node certificates or one shared one.
//! With a shared certificate the names are *claims*: any holder of the
//! certificate can pose as any member. That is weaker, and documented so;
//! the planner's same-name fast replacement is off for such clusters
//! (`NodeConfig::names_authenticated`).

use peerlock_core::machine::{validate_member, MAX_MEMBER_NAME};
use peerlock_core::{NodeId, NodeName};
use quinn::Connection;

use crate::error::TransportError;

/// The preamble's magic bytes.
pub const PREAMBLE_MAGIC: [u8; 3] = *b"PLN";
/// The preamble format's version.
pub const PREAMBLE_VERSION: u8 = 1;
/// Magic, version and length.
const HEADER: usize = 6;
/// The longest preamble: the header and the longest member name.
pub const MAX_PREAMBLE: usize = HEADER + MAX_MEMBER_NAME;

/// Encodes the preamble claiming `name` (the caller passes a valid name;
/// one over the limit is cut to an invalid preamble the peer refuses).
pub fn encode(name: &str) -> Vec<u8> {
    let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(HEADER + name.len());
    out.extend_from_slice(&PREAMBLE_MAGIC);
    out.push(PREAMBLE_VERSION);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out
}

/// Decodes a whole preamble stream.
///
/// # Errors
///
/// [`TransportError::BadName`] saying what is wrong.
pub fn decode(bytes: &[u8]) -> Result<String, TransportError> {
    let bad = |why: String| Err(TransportError::BadName(why));
    let (Some(magic), Some(version), Some(len), Some(body)) = (
        bytes.get(..3),
        bytes.get(3),
        bytes.get(4..HEADER),
        bytes.get(HEADER..),
    ) else {
        return bad(format!("{} bytes, shorter than a header", bytes.len()));
    };
    if magic != PREAMBLE_MAGIC {
        return bad("not a name preamble (bad magic bytes)".into());
    }
    if *version != PREAMBLE_VERSION {
        return bad(format!("unsupported preamble version {version}"));
    }
    let len = usize::from(u16::from_be_bytes([
        len.first().copied().unwrap_or(0),
        len.get(1).copied().unwrap_or(0),
    ]));
    if len != body.len() {
        return bad(format!(
            "announces a name of {len} bytes but carries {}",
            body.len()
        ));
    }
    let Ok(name) = std::str::from_utf8(body) else {
        return bad("the name is not UTF-8".into());
    };
    let name = NodeName(name.to_owned());
    if validate_member(&name, None).is_err() {
        return bad(format!(
            "a member name is 1 to {MAX_MEMBER_NAME} bytes, this one has {len}"
        ));
    }
    Ok(name.0)
}

/// Whether `conn` negotiated preambles (ALPN 3, or 4 which keeps them).
pub(crate) fn negotiated(conn: &Connection) -> bool {
    crate::bulk::protocol(conn).is_some_and(|p| p == crate::ALPN_V3 || p == crate::ALPN_V4)
}

/// Sends this node's preamble and reads the peer's, on a connection that
/// negotiated them; `None` on an older peer's connection (it sends none).
/// The caller bounds the wait.
pub(crate) async fn exchange(
    conn: &Connection,
    own: &str,
) -> Result<Option<String>, TransportError> {
    if !negotiated(conn) {
        return Ok(None);
    }
    let mut out = conn.open_uni().await?;
    out.write_all(&encode(own)).await?;
    let _ = out.finish();
    let mut stream = conn.accept_uni().await?;
    // One more byte than any valid preamble, so an oversized one is
    // reported by `decode` rather than cut silently.
    let bytes = match stream.read_to_end(MAX_PREAMBLE + 1).await {
        Ok(bytes) => bytes,
        Err(quinn::ReadToEndError::TooLong) => {
            return Err(TransportError::BadName(format!(
                "longer than {MAX_PREAMBLE} bytes"
            )))
        }
        Err(quinn::ReadToEndError::Read(e)) => return Err(e.into()),
    };
    decode(&bytes).map(Some)
}

/// The name a connection counts as, from its certificate's common name
/// `cn`, the name the peer claimed (if it sent a preamble), and this
/// node's own common name `own_cn` and name `own`:
///
/// - no claim, or a claim equal to `cn`: `cn` (proven by the certificate);
/// - a claim from a peer presenting `own_cn`: the claim (the certificate is
///   shared, and so the claim is not proven);
/// - any other claim: refused.
///
/// And this node, if it claims a name other than `own_cn`, refuses a peer
/// with a certificate of its own: that peer would refuse the claim (or,
/// sending no preamble, know this node by its CN), so saying so here gives
/// this side the clear error too.
///
/// # Errors
///
/// [`TransportError::NameNotProven`] for a refused claim,
/// [`TransportError::MixedCertificates`] for this node's claim.
pub fn resolve(
    cn: String,
    claimed: Option<String>,
    (own, own_cn): (&str, &str),
) -> Result<(NodeId, String), TransportError> {
    check_own(own, own_cn, &cn)?;
    let name = match claimed {
        None => cn,
        Some(c) if c == cn => cn,
        Some(c) if cn == own_cn => c,
        Some(claimed) => return Err(TransportError::NameNotProven { claimed, cn }),
    };
    Ok((NodeId::from_name(&name), name))
}

/// This node's half of [`resolve`], known as soon as the peer's
/// certificate is: a name other than `own_cn` is refused by a peer whose
/// certificate (common name `cn`) is its own.
///
/// # Errors
///
/// [`TransportError::MixedCertificates`].
pub fn check_own(own: &str, own_cn: &str, cn: &str) -> Result<(), TransportError> {
    if own != own_cn && cn != own_cn {
        return Err(TransportError::MixedCertificates {
            own: own.to_owned(),
            peer_cn: cn.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preamble_round_trips_and_every_malformed_one_is_named() {
        for name in ["a", "pod-7", "zoné", &"n".repeat(MAX_MEMBER_NAME)] {
            assert_eq!(decode(&encode(name)).unwrap(), name);
        }
        let msg = |bytes: &[u8]| match decode(bytes) {
            Err(TransportError::BadName(m)) => m,
            other => panic!("expected BadName, got {other:?}"),
        };
        assert!(msg(b"PLN").contains("shorter"));
        assert!(msg(&encode("")).contains("1 to 256 bytes"));
        assert!(msg(&encode(&"n".repeat(MAX_MEMBER_NAME + 1))).contains("1 to 256"));
        let mut other = encode("a");
        other[0] = b'X';
        assert!(msg(&other).contains("magic"));
        other = encode("a");
        other[3] = 2;
        assert!(msg(&other).contains("version 2"));
        other = encode("ab");
        other.pop();
        assert!(msg(&other).contains("announces a name of 2 bytes but carries 1"));
        other = encode("ab");
        other[HEADER] = 0xff;
        assert!(msg(&other).contains("UTF-8"));
    }

    #[test]
    fn a_claim_counts_only_from_a_shared_certificate() {
        let id = |n: &str| (NodeId::from_name(n), n.to_owned());
        // Older peers and per-node certificates: the CN.
        assert_eq!(resolve("b".into(), None, ("a", "a")).unwrap(), id("b"));
        let b = resolve("b".into(), Some("b".into()), ("a", "a")).unwrap();
        assert_eq!(b, id("b"));
        // One certificate for all: the claim.
        let shared = resolve("app".into(), Some("pod-7".into()), ("pod-1", "app")).unwrap();
        assert_eq!(shared, id("pod-7"));
        // A node of a shared-certificate cluster named by the CN itself.
        let plain = resolve("app".into(), Some("pod-7".into()), ("app", "app")).unwrap();
        assert_eq!(plain, id("pod-7"));
        // A claimed name meets a certificate of its own: refused here too.
        match resolve("b".into(), Some("b".into()), ("pod-1", "app")) {
            Err(TransportError::MixedCertificates { own, peer_cn }) => {
                assert_eq!((own.as_str(), peer_cn.as_str()), ("pod-1", "b"));
            }
            other => panic!("expected MixedCertificates, got {other:?}"),
        }
        // A certificate of its own that names another node: refused.
        match resolve("mallory".into(), Some("b".into()), ("a", "a")) {
            Err(TransportError::NameNotProven { claimed, cn }) => {
                assert_eq!((claimed.as_str(), cn.as_str()), ("b", "mallory"));
            }
            other => panic!("expected NameNotProven, got {other:?}"),
        }
    }
}
