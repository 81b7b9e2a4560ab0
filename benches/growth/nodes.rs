//! Curve `nodes`: scaffold, filled in on its helper's branch before merge.

pub fn run(_cfg: &crate::Cfg) {
    println!("curve nodes: (scaffold)");
}
