//! Memory advice for large tables: transparent huge pages.
//!
//! The engine's flow table is read at random, one cache line per packet;
//! with 4 KiB pages a table of 64 MiB (1 M flows) spans 16,384 pages, far
//! more than the TLB holds, so nearly every lookup also walks the page
//! tables (in a VM, a two-level walk). Backed by 2 MiB pages the same
//! table is 32 TLB entries. Where THP is `madvise` (the default of many
//! distributions), memory gets huge pages only when asked for with
//! `madvise(MADV_HUGEPAGE)` (madvise(2), the kernel's
//! `admin-guide/mm/transhuge`); where it is `always` the call changes
//! nothing, where it is `never` it fails harmlessly.

/// Asks the kernel to back `words` with transparent huge pages. Call it
/// before the memory is first written (a fresh zeroed allocation), so the
/// first faults already take huge pages. Only the whole pages inside the
/// slice are advised; returns whether the advice was taken (false: THP
/// off, or the slice too small to hold a page).
pub fn advise_huge_pages(words: &mut [u64]) -> bool {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = words.as_mut_ptr() as usize;
        let end = start + size_of_val(words);
        let first = start.div_ceil(PAGE) * PAGE;
        let last = end / PAGE * PAGE;
        if last <= first {
            return false;
        }
        // SAFETY: [first, last) is page-aligned and lies inside `words`,
        // memory this process owns and holds exclusively (&mut) for the
        // call. MADV_HUGEPAGE only changes how the kernel backs the range,
        // never its contents, and takes no pointer it writes through.
        let rc = unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_HUGEPAGE,
            )
        };
        rc == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = words;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_page_advice_covers_only_whole_pages_and_keeps_contents() {
        let mut small = vec![7u64; 16];
        assert!(!advise_huge_pages(&mut small), "128 bytes hold no page");
        assert_eq!(small, vec![7u64; 16]);
        let mut big = vec![0u64; 1 << 20];
        big[12345] = 9;
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        let advised = advise_huge_pages(&mut big);
        if thp.contains("[madvise]") || thp.contains("[always]") {
            assert!(advised, "THP is on ({thp:?}): the advice must be taken");
        }
        assert_eq!(big[12345], 9);
        assert_eq!(big.iter().sum::<u64>(), 9);
    }
}
