//! Process-wide settings of the C allocator (glibc's malloc).

/// Blocks of at least this size get their own mapping, returned to the system when freed.
pub const LARGE_BLOCK_BYTES: usize = 1 << 20;

/// Free memory a thread's heap keeps at its top before giving it back.
pub const KEPT_FREE_TOP_BYTES: usize = 8 << 20;

/// Makes glibc give large freed blocks back to the system at once, for a process that has not
/// started its threads yet (the binary's `main` calls it first thing).
///
/// glibc maps a large block on its own, but after such a block is freed it raises that
/// threshold to the block's size (up to 32 MiB), so every later block of that size comes from
/// a thread's heap and stays there when freed. Here that block is Argon2id's 19 MiB per login
/// or PIN check, on whichever blocking thread ran it: after 32 logins the server held about
/// 100 MB more than it used (bench, alternating runs of the 10k storm: RSS afterwards 101–234
/// MB on SQLite and 104–160 MB on PostgreSQL, against 63 and 48 MB with the threshold fixed),
/// and every new thread that hashed could keep another 19 MiB. A fixed
/// threshold costs a `mmap`/`munmap` per large block, which here are rare.
///
/// Fixing it also fixes the threshold above which a heap gives its free top back, at 128 KiB
/// unless set: so small, short-lived allocations were given back and faulted in again, and
/// check-in throughput on SQLite dropped by a few percent (bench, alternating runs:
/// 13,739–15,228/s against 14,266–14,928/s). At 8 MiB it is back to 14,893–15,882/s, and RSS
/// after the same runs 58 MB against 96–190 MB.
///
/// Returns whether the allocator accepted it; without it the server uses more memory, not
/// less safely.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_large_blocks_to_the_system() -> bool {
    // SAFETY: mallopt only changes the allocator's parameters; glibc documents it as safe to
    // call at any time (it takes the arena locks itself).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, KEPT_FREE_TOP_BYTES as libc::c_int) == 1
    }
}

/// Other allocators than glibc's decide for themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_large_blocks_to_the_system() -> bool {
    true
}
