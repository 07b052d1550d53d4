//! Bit-serial Toeplitz hash, written straight from the Microsoft definition
//! ("RSS Hashing Functions"): for every input bit, MSB of byte 0 first, XOR
//! the leftmost 32 bits of the key into the result when the bit is set, then
//! shift the key left by one bit.
//!
//! This is the oracle every fast path is tested against. It is slow on purpose:
//! one key bit per step, no tables.

use crate::key::RssKey;

/// Toeplitz hash of `input` under `key`, bit by bit. Key bits past the end
/// read as zero, so any input length is accepted.
pub fn toeplitz_bitwise(key: &RssKey, input: &[u8]) -> u32 {
    let kb = key.as_bytes();
    // The shift register: the leftmost 32 key bits, refilled one bit at a time.
    let mut window: u32 = 0;
    for i in 0..4 {
        window = (window << 8) | u32::from(kb.get(i).copied().unwrap_or(0));
    }
    let mut next_bit = 32usize;
    let mut result = 0u32;
    for &byte in input {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                result ^= window;
            }
            window = (window << 1) | u32::from(key.bit(next_bit));
            next_bit += 1;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsoft_first_vector() {
        // 66.9.149.187:2794 -> 161.142.100.80:1766 (MS "Verifying the RSS Hash Calculation").
        let input = [66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6];
        assert_eq!(
            toeplitz_bitwise(&RssKey::microsoft(40), &input),
            0x51cc_c178
        );
        assert_eq!(
            toeplitz_bitwise(&RssKey::microsoft(40), &input[..8]),
            0x323e_8fc2
        );
        assert_eq!(toeplitz_bitwise(&RssKey::microsoft(40), &[]), 0);
    }
}
