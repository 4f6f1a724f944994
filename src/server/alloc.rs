//! The allocator setting a server process starts with: glibc's malloc gives the
//! freed top of a thread's heap back to the system at once, so a core that answers
//! large messages one after another faults every page of each in afresh (a 1 MiB
//! echo: 88–484 page faults a call; a 4 MiB one some 1,900, at 2.6× the raw
//! io_uring echo's CPU a call; `perf/RESULTS.md`). Keeping a pad at the top of each
//! heap lets the next large buffer reuse those pages.

/// Sets glibc's `M_TOP_PAD` to `bytes` (process-wide), unless the environment
/// already sets it (`MALLOC_TOP_PAD_`, or `glibc.malloc.top_pad` in
/// `GLIBC_TUNABLES`). Nothing on other C libraries.
pub(super) fn keep_top_pad(bytes: usize) {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if std::env::var_os("MALLOC_TOP_PAD_").is_some() || tunables.contains("top_pad") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets a malloc parameter; any value is valid for
        // M_TOP_PAD.
        if unsafe { libc::mallopt(libc::M_TOP_PAD, value) } != 1 {
            tracing::debug!(bytes, "mallopt(M_TOP_PAD) refused");
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = bytes;
}
