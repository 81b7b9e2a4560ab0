//! Step counting for the cost tests.
//!
//! Cost tests must not time anything (timings flake on a shared machine),
//! so the places whose cost must not grow with the wrong thing count the
//! elements they visit here, and tests assert on the count. In non-test
//! builds `step` is empty and compiles away. The counter is per thread, so
//! tests running in parallel do not see each other's steps.

#[cfg(test)]
thread_local! {
    static STEPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts `n` elements visited.
#[inline(always)]
pub(crate) fn step(n: usize) {
    #[cfg(test)]
    STEPS.with(|s| s.set(s.get() + n as u64));
    #[cfg(not(test))]
    let _ = n;
}

/// The steps counted on this thread since the last call, and resets.
#[cfg(test)]
pub(crate) fn take() -> u64 {
    STEPS.with(|s| s.replace(0))
}
