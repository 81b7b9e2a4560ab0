//! Makes a cluster CA and one certificate per node, as PEM files.
//!
//! ```text
//! cargo run --example certs -- <out-dir> <node-name>...
//! ```
//!
//! Writes `ca.pem` and `ca.key`, and `<name>.pem` / `<name>.key` for each
//! node, with the SANs `127.0.0.1`, `::1`, `localhost` and the node's name.
//! If `<out-dir>` already holds `ca.pem` and `ca.key`, that CA is reused, so
//! nodes can be added to an existing cluster later. Keep `ca.key` off the
//! nodes: whoever holds it can mint cluster members.
//!
//! Node certificates are valid for a year, a new CA for ten
//! (`peerlock::certs::NODE_CERT_VALIDITY`, `CA_CERT_VALIDITY`); each node
//! warns 30 days before its certificate ends. Run the same command again
//! for a node's name to renew its certificate, then reload it.
//!
//! One certificate for every instance (one Kubernetes Secret for a
//! Deployment) is made the same way with a single name (`... ./certs app`);
//! each instance then gets its own member name with `--name` (example
//! `node`) or `NodeBuilder::name`. Weaker: any holder of that certificate
//! can pose as any member.

use std::error::Error;
use std::path::Path;
use std::process::ExitCode;

use peerlock::certs::ClusterCa;

const USAGE: &str = "usage: cargo run --example certs -- <out-dir> <node-name>...

Writes <out-dir>/ca.pem, ca.key and <node-name>.pem/.key for each node
(SANs: 127.0.0.1, ::1, localhost, <node-name>). An existing ca.pem/ca.key
in <out-dir> is reused. Node names are 1 to 64 characters of letters,
digits, '.', '_' or '-'.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((out, names)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if names.is_empty() || args.iter().any(|a| a.starts_with('-')) {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    match run(Path::new(out), names) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(out: &Path, names: &[String]) -> Result<(), Box<dyn Error>> {
    for (i, n) in names.iter().enumerate() {
        if names.iter().skip(i + 1).any(|m| m == n) {
            return Err(format!("node name {n:?} is given twice").into());
        }
    }
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let (ca_pem, ca_key) = (out.join("ca.pem"), out.join("ca.key"));
    let reuse = ca_pem.exists() && ca_key.exists();
    let ca = if reuse {
        println!("reusing the CA in {}", ca_pem.display());
        ClusterCa::from_pem(
            &std::fs::read_to_string(&ca_pem)?,
            &std::fs::read_to_string(&ca_key)?,
        )?
    } else {
        let cluster = out
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("peerlock");
        ClusterCa::generate(cluster)?
    };
    // Issue everything before writing anything, so a bad name leaves no
    // half-written directory behind.
    let mut issued = Vec::with_capacity(names.len());
    for name in names {
        let sans = ["127.0.0.1", "::1", "localhost", name.as_str()];
        issued.push((name, ca.issue_node_pem(name, &sans)?));
    }
    if !reuse {
        write(&ca_pem, &ca.ca_pem(), false)?;
        write(&ca_key, &ca.key_pem(), true)?;
    }
    for (name, (cert, key)) in issued {
        write(&out.join(format!("{name}.pem")), &cert, false)?;
        write(&out.join(format!("{name}.key")), &key, true)?;
    }
    Ok(())
}

/// Writes `text` to `path`; private keys are readable by the owner only.
fn write(path: &Path, text: &str, secret: bool) -> Result<(), Box<dyn Error>> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    println!("wrote {}", path.display());
    Ok(())
}
