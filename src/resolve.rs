//! Turning the addresses a user gave into socket addresses.

use std::net::SocketAddr;

use peerlock_core::Error;

/// One address per listed peer (a name takes its first record).
pub(crate) async fn resolve_peers(peers: &[String]) -> Result<Vec<SocketAddr>, Error> {
    let mut out = Vec::with_capacity(peers.len());
    for p in peers {
        if let Ok(addr) = p.parse::<SocketAddr>() {
            out.push(addr);
            continue;
        }
        let mut found = tokio::net::lookup_host(p.as_str()).await.map_err(|e| {
            Error::Config(format!(
                "peer address {p:?} is not host:port or does not resolve: {e}"
            ))
        })?;
        let addr = found
            .next()
            .ok_or_else(|| Error::Config(format!("peer address {p:?} resolves to nothing")))?;
        out.push(addr);
    }
    Ok(out)
}

/// Every address of every seed: a DNS name stands for all its records (a
/// Kubernetes headless service lists one per pod).
///
/// A well-formed name that does not resolve *yet* is skipped with a
/// warning rather than refused: on a first deploy the headless service
/// lists a pod only once it has an address, and a start that failed on it
/// made every pod crash-loop (issue 9, a newcomer's finding 12). The start
/// resolves the names again while it looks for the cluster, and fails at
/// its `startup_timeout` naming the seeds if none ever answers. A seed
/// that is not `host:port` is a configuration error at once.
pub(crate) async fn resolve_all(seeds: &[String]) -> Result<Vec<SocketAddr>, Error> {
    let mut out = Vec::new();
    for p in seeds {
        if let Ok(addr) = p.parse::<SocketAddr>() {
            out.push(addr);
            continue;
        }
        check_host_port(p)?;
        let found = tokio::time::timeout(RESOLVE_BOUND, tokio::net::lookup_host(p.as_str())).await;
        match found {
            Ok(Ok(found)) => {
                let before = out.len();
                out.extend(found);
                if out.len() == before {
                    tracing::warn!(seed = %p, "seed name resolves to nothing yet; resolving it again while starting");
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(seed = %p, error = %e, "seed name does not resolve yet; resolving it again while starting")
            }
            Err(_) => {
                tracing::warn!(seed = %p, "seed name resolution timed out; resolving it again while starting")
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `host:port` with a non-empty host and a port number: what a resolver
/// could ever answer for.
fn check_host_port(p: &str) -> Result<(), Error> {
    let ok = p
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "seed address {p:?} is not host:port (a DNS name or an IP address, and a port number)"
        )))
    }
}

/// What the seeds resolve to now; errors and names that resolve to nothing
/// are skipped (a name that resolved at the start may be briefly empty).
pub(crate) type Reresolve = std::sync::Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<SocketAddr>> + Send>>
        + Send
        + Sync,
>;

/// How long one re-resolution of the seeds may take.
const RESOLVE_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// A [`Reresolve`] of `seeds` through the system resolver; `None` when
/// every seed is a literal address (nothing can change).
pub(crate) fn reresolve(seeds: &[String]) -> Option<Reresolve> {
    let names: Vec<String> = seeds
        .iter()
        .filter(|s| s.parse::<SocketAddr>().is_err())
        .cloned()
        .collect();
    if names.is_empty() {
        return None;
    }
    Some(std::sync::Arc::new(move || {
        let names = names.clone();
        Box::pin(async move {
            let mut out = Vec::new();
            for name in &names {
                let found =
                    tokio::time::timeout(RESOLVE_BOUND, tokio::net::lookup_host(name.as_str()));
                match found.await {
                    Ok(Ok(addrs)) => out.extend(addrs),
                    Ok(Err(e)) => {
                        tracing::debug!(seed = %name, error = %e, "seed does not resolve now")
                    }
                    Err(_) => tracing::debug!(seed = %name, "seed resolution timed out"),
                }
            }
            out
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_seed_name_that_does_not_resolve_yet_is_skipped_and_a_malformed_one_refused() {
        // `.invalid` never resolves (RFC 6761): the start goes on with the
        // literal seed and resolves the name again later.
        let seeds = vec![
            "127.0.0.1:7100".to_owned(),
            "peerlock.not-yet.invalid:7100".to_owned(),
        ];
        let got = resolve_all(&seeds)
            .await
            .expect("a name not resolving yet is no error");
        assert_eq!(got, vec!["127.0.0.1:7100".parse::<SocketAddr>().unwrap()]);
        assert!(reresolve(&seeds).is_some(), "the name is resolved again");
        for bad in [
            "peerlock.svc",
            "peerlock.svc:port",
            ":7100",
            "peerlock.svc:70000",
        ] {
            let r = resolve_all(&[bad.to_owned()]).await;
            assert!(
                matches!(r, Err(Error::Config(ref m)) if m.contains("not host:port")),
                "{bad}: {r:?}"
            );
        }
    }
}
