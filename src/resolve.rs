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
pub(crate) async fn resolve_all(seeds: &[String]) -> Result<Vec<SocketAddr>, Error> {
    let mut out = Vec::new();
    for p in seeds {
        if let Ok(addr) = p.parse::<SocketAddr>() {
            out.push(addr);
            continue;
        }
        let found = tokio::net::lookup_host(p.as_str()).await.map_err(|e| {
            Error::Config(format!(
                "seed address {p:?} is not host:port or does not resolve: {e}"
            ))
        })?;
        let before = out.len();
        out.extend(found);
        if out.len() == before {
            return Err(Error::Config(format!(
                "seed address {p:?} resolves to nothing"
            )));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
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
