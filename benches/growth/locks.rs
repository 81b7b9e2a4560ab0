//! Curve `locks`: scaffold, filled in on its helper's branch before merge.

pub fn run(_cfg: &crate::Cfg) {
    println!("curve locks: (scaffold)");
}
