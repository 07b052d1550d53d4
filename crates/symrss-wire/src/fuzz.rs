//! The fuzz target's body, shared with the test that replays the fuzz
//! corpus (`fuzz/corpus/dissect`). Input: one byte choosing the link type,
//! then the frame.

use crate::{Options, dissect};

/// Link types the first input byte selects from (the last entry, an
/// unknown number, checks the error path).
pub const LINKTYPES: [u32; 12] = [1, 0, 9, 12, 14, 101, 108, 113, 228, 229, 276, 147];

/// Dissects `data` as the fuzz target does and checks the invariants that
/// hold for any input: errors point inside the frame, layer offsets are
/// ordered and inside the frame, at most one layer of each kept slot.
pub fn check_frame(data: &[u8]) {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let linktype = LINKTYPES[usize::from(sel) % LINKTYPES.len()];
    for opts in [
        Options::default(),
        Options {
            decapsulate: false,
            ..Options::default()
        },
    ] {
        let k = dissect(linktype, frame, &opts);
        if let Some(e) = k.error {
            assert!(
                e.offset as usize <= frame.len(),
                "error offset past the frame"
            );
        }
        let layers = [k.outer(), k.inner(), k.innermost()];
        let mut last = 0u32;
        for l in layers.into_iter().flatten() {
            assert!(
                (l.offset as usize) < frame.len(),
                "layer offset past the frame"
            );
            assert!(l.offset >= last, "layers out of order");
            assert!(
                l.l4_offset == 0 || l.l4_offset > l.offset,
                "transport before its IP header"
            );
            last = l.offset;
        }
        assert_eq!(k.is_ip(), k.ip_count > 0);
        if !opts.decapsulate {
            assert!(k.ip_count <= 1, "decapsulated although disabled");
        }
    }
}
