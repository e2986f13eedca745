//! The binary's allocator setting, in a process of its own: glibc's thresholds are process-wide
//! and other tests would move them.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_freed_large_block_goes_back_to_the_system_every_time() {
    const BLOCK: usize = 16 << 20;
    assert!(doorstep::allocator::return_large_blocks_to_the_system());
    // glibc alone would map the first block on its own and, once it is freed, take the next
    // ones from the heap and keep them there: so look at several in a row.
    for round in 0..3 {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let mapped_before = unsafe { libc::mallinfo2() }.hblkhd;
        let block = std::hint::black_box(vec![1u8; BLOCK]);
        let mapped_during = unsafe { libc::mallinfo2() }.hblkhd;
        assert!(
            mapped_during >= mapped_before + BLOCK,
            "round {round}: the block was not given its own mapping \
             ({mapped_before} then {mapped_during} bytes mapped)"
        );
        drop(block);
        let mapped_after = unsafe { libc::mallinfo2() }.hblkhd;
        assert!(
            mapped_after < mapped_during,
            "round {round}: the mapping stayed after the block was freed"
        );
    }
}
