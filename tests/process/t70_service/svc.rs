//! The `examples/service` processes of t70 and the HTTP calls made to them.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::process::{Child, Command};

use super::TTL;
use crate::procs::Spec;

/// The built `examples/service` binary, built once per run (the same
/// nested build as `examples/node`'s, without the variables cargo set for
/// this test, so it does not recompile ring's build script).
fn service_bin() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    crate::procs::example_bin("service", &BUILT)
}

/// One running `examples/service` process and its HTTP base URL.
pub(super) struct Svc {
    pub(super) child: Child,
    pub(super) base: String,
}

impl Svc {
    pub(super) fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }
}

pub(super) fn spawn(spec: &Spec, i: usize, url: &str) -> Svc {
    let d = spec.dir.path();
    let peers = (0..3).map(|j| spec.addr(j)).collect::<Vec<_>>().join(",");
    let http = format!("127.0.0.1:{}", crate::procs::free_tcp_port());
    let child = Command::new(service_bin())
        .args([
            "--http",
            &http,
            "--listen",
            &spec.addr(i),
            "--peers",
            &peers,
        ])
        .arg("--ca")
        .arg(d.join("ca.pem"))
        .arg("--cert")
        .arg(d.join(format!("proc-{i}.pem")))
        .arg("--key")
        .arg(d.join(format!("proc-{i}.key")))
        .arg("--data-dir")
        .arg(spec.data_dir(i))
        .args(["--ttl-ms", &TTL.as_millis().to_string()])
        .args(["--database", url, "--test-hooks", "--lock-wait-ms", "10000"])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn examples/service");
    Svc {
        child,
        base: format!("http://{http}"),
    }
}

/// Waits (bounded) until `GET /healthz` answers 200.
pub(super) async fn healthy(http: &reqwest::Client, svc: &Svc) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let r = http.get(format!("{}/healthz", svc.base)).send().await;
        if matches!(&r, Ok(r) if r.status() == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "{} never healthy", svc.base);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    match http.post(format!("{base}{path}")).json(&body).send().await {
        Ok(r) => {
            let code = r.status().as_u16();
            (code, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!({"error": e.to_string()})),
    }
}
