//! Linear algebra over GF(2) for key analysis: the Toeplitz hash is a linear
//! map from input bits to 32 output bits whose column `i` is the key window
//! `W_i`, so "how many distinct hash values can a layout produce" is the
//! rank of those columns (theory.md §2–3).

/// Rank of a set of vectors over GF(2) (each a `u64` bit vector).
pub fn rank(vectors: impl IntoIterator<Item = u64>) -> u32 {
    let mut basis = [0u64; 64]; // basis[b] has leading bit b
    let mut r = 0;
    for mut v in vectors {
        while v != 0 {
            let lead = 63 - v.leading_zeros() as usize;
            if basis[lead] == 0 {
                basis[lead] = v;
                r += 1;
                break;
            }
            v ^= basis[lead];
        }
    }
    r
}

/// All vectors of the span of `vectors` (at most `2^max_rank` of them), or
/// `None` if the rank is larger than `max_rank`.
pub fn span(vectors: impl IntoIterator<Item = u64>, max_rank: u32) -> Option<alloc::vec::Vec<u64>> {
    let mut basis = alloc::vec::Vec::new();
    let mut reduced = [0u64; 64];
    for mut v in vectors {
        while v != 0 {
            let lead = 63 - v.leading_zeros() as usize;
            if reduced[lead] == 0 {
                reduced[lead] = v;
                basis.push(v);
                break;
            }
            v ^= reduced[lead];
        }
        if basis.len() as u32 > max_rank {
            return None;
        }
    }
    let mut out = alloc::vec![0u64];
    for b in basis {
        let n = out.len();
        for i in 0..n {
            out.push(out[i] ^ b);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_and_span() {
        assert_eq!(rank([0b011, 0b110, 0b101]), 2);
        assert_eq!(rank([1, 2, 4, 8]), 4);
        assert_eq!(rank([0, 0]), 0);
        let s = span([0b011, 0b110, 0b101], 8).unwrap();
        assert_eq!(s.len(), 4);
        assert!(s.contains(&0) && s.contains(&0b101));
        assert!(span([1, 2, 4], 2).is_none());
    }
}
