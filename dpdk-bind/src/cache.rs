//! Memory hints for the rest of rvs: stable Rust has no safe prefetch or
//! `madvise`, and every other crate denies `unsafe`.

/// Asks the CPU to start loading the cache line holding `value` into all
/// cache levels, so that a later access does not stall. A hint only: it
/// never faults, changes nothing observable, and costs about one
/// instruction. Batched lookups use it to overlap the memory latency of
/// several packets.
#[inline(always)]
pub fn prefetch<T: ?Sized>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let address = (value as *const T).cast::<i8>();
        // SAFETY: prefetch is a hint that never faults and has no effect on
        // program state; the address even comes from a live reference.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(address) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Asks the kernel to back `memory` with transparent huge pages where it
/// can (`madvise(MADV_HUGEPAGE)`): large tables then cost a TLB entry per
/// 2 MiB instead of per 4 KiB. Best called before the memory is first
/// written (on a `Vec`'s spare capacity), since pages already faulted in
/// are only merged later, in the background. Returns whether the kernel
/// took the advice; it is refused where transparent huge pages are off,
/// and is void for memory smaller than a huge page. Changes nothing the
/// program can observe.
pub fn advise_huge_pages<T>(memory: &[T]) -> bool {
    const HUGE_PAGE: usize = 2 << 20;
    let start = memory.as_ptr() as usize;
    let end = start + std::mem::size_of_val(memory);
    // madvise wants a page-aligned start; only whole huge pages can be
    // huge anyway.
    let aligned = start.next_multiple_of(HUGE_PAGE);
    if aligned >= end {
        return false;
    }
    let len = (end - aligned) / HUGE_PAGE * HUGE_PAGE;
    if len == 0 {
        return false;
    }
    // SAFETY: the range lies within `memory`, which the caller's reference
    // keeps mapped; MADV_HUGEPAGE only changes how the kernel backs the
    // pages, never their contents or accessibility.
    unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) == 0 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetch_accepts_anything_referenced() {
        let values = vec![7u64; 1024];
        super::prefetch(&values[512]);
        super::prefetch(values.as_slice());
        assert_eq!(values[512], 7);
    }

    #[test]
    fn huge_page_advice_leaves_the_memory_as_it_was() {
        let mut values: Vec<u64> = Vec::with_capacity(1 << 20);
        // 8 MiB hold at least three whole huge pages; whether the kernel
        // takes the advice depends on its settings.
        let _ = super::advise_huge_pages(values.spare_capacity_mut());
        values.resize(1 << 20, 9);
        assert!(values.iter().all(|&v| v == 9));
        assert!(!super::advise_huge_pages(&values[..16]), "too small");
    }
}
