//! A cache hint for the rest of rvs: stable Rust has no safe prefetch, and
//! every other crate denies `unsafe`.

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

#[cfg(test)]
mod tests {
    #[test]
    fn prefetch_accepts_anything_referenced() {
        let values = vec![7u64; 1024];
        super::prefetch(&values[512]);
        super::prefetch(values.as_slice());
        assert_eq!(values[512], 7);
    }
}
