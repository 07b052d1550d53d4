//! RSS secret keys: parsing, the well-known keys, and the period-16 test.
//!
//! A key is a byte string read as one big-endian bit string `k[0..8*len)`
//! (`k[0]` is the MSB of byte 0), as in the Microsoft RSS specification
//! ("RSS Hashing Functions", learn.microsoft.com). Input bit `i` of the hash
//! selects the 32-bit *window* `k[i..i+32)`; bits past the end of the key
//! read as zero, which is what the specification's "shift K left" does.

use alloc::vec::Vec;
use core::fmt;

/// The Microsoft default 40-byte key (also the Intel 82599 datasheet key and
/// the verification key of "Verifying the RSS Hash Calculation").
pub const MS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The 16-bit pattern of the KAIST symmetric key (`0x6d5a` repeated).
pub const SYM_PATTERN: u16 = 0x6d5a;

/// Longest key accepted (bytes). Enough for any NIC and for inputs up to 252 bytes.
pub const MAX_KEY_LEN: usize = 256;

/// Why a key string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyParseError {
    /// Not `ms`, `sym`, or hex bytes.
    NotHex { position: usize },
    /// An odd number of hex digits (a byte is two digits).
    OddDigits,
    /// A separator that is not between two whole bytes (`6d::5a`, a
    /// trailing `:`).
    BadSeparator { position: usize },
    /// Empty or longer than [`MAX_KEY_LEN`].
    BadLength { len: usize },
    /// `--key-len` asks for a length the named key cannot be stretched to.
    LengthMismatch { have: usize, want: usize },
}

impl fmt::Display for KeyParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotHex { position } => write!(
                f,
                "key is not `ms`, `sym` or hex bytes (bad character at position {position}); \
                 write e.g. `6d:5a:56:da:...` or `6d5a56da...`"
            ),
            Self::OddDigits => write!(f, "key has an odd number of hex digits"),
            Self::BadSeparator { position } => write!(
                f,
                "key has a separator at position {position} that is not between two whole bytes \
                 (write `6d:5a:56:da`, not `6d::5a` or `6d:5a:`)"
            ),
            Self::BadLength { len } => {
                write!(f, "key length {len} bytes is outside 1..={MAX_KEY_LEN}")
            }
            Self::LengthMismatch { have, want } => write!(
                f,
                "a hex key of {have} bytes cannot be given --key-len {want}; \
                 only the named keys `ms` and `sym` are padded or repeated"
            ),
        }
    }
}

impl core::error::Error for KeyParseError {}

/// An RSS secret key of 1..=[`MAX_KEY_LEN`] bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RssKey {
    bytes: Vec<u8>,
}

impl RssKey {
    /// A key from raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyParseError> {
        if bytes.is_empty() || bytes.len() > MAX_KEY_LEN {
            return Err(KeyParseError::BadLength { len: bytes.len() });
        }
        Ok(Self {
            bytes: bytes.to_vec(),
        })
    }

    /// The Microsoft default key, zero-padded to `len` bytes (`len >= 40`) or
    /// truncated (`len < 40`). Zero padding keeps every hash of inputs up to
    /// 36 bytes unchanged, which is why "MS key + 12 zero bytes" is the usual
    /// 52-byte form (theory.md §1.1).
    pub fn microsoft(len: usize) -> Self {
        let mut bytes = MS_KEY.to_vec();
        bytes.resize(len.clamp(1, MAX_KEY_LEN), 0);
        Self { bytes }
    }

    /// A 16-bit pattern repeated to `len` bytes (`0x6d5a` gives the KAIST key).
    pub fn repeating(pattern: u16, len: usize) -> Self {
        let len = len.clamp(1, MAX_KEY_LEN);
        let pair = pattern.to_be_bytes();
        Self {
            bytes: (0..len).map(|i| pair[i % 2]).collect(),
        }
    }

    /// Parses `ms`, `sym`, or hex bytes with or without `:`/`-`/space separators
    /// (`ethtool -x` prints `6d:5a:...`). `len` stretches a named key: `ms` is
    /// zero-padded, `sym` repeated. A hex key must already have that length.
    pub fn parse(text: &str, len: Option<usize>) -> Result<Self, KeyParseError> {
        let text = text.trim();
        let named = match text.to_ascii_lowercase().as_str() {
            "ms" | "microsoft" => Some(Self::microsoft(len.unwrap_or(40))),
            "sym" | "symmetric" | "6d5a" => Some(Self::repeating(SYM_PATTERN, len.unwrap_or(40))),
            _ => None,
        };
        if let Some(key) = named {
            if let Some(want) = len
                && (want == 0 || want > MAX_KEY_LEN)
            {
                return Err(KeyParseError::BadLength { len: want });
            }
            return Ok(key);
        }
        let hex = text.strip_prefix("0x").unwrap_or(text);
        let mut digits = Vec::with_capacity(hex.len());
        // Separators (`6d:5a`, `6d 5a`) come between whole bytes, one at a
        // time: `6d::5a`, a leading or trailing one, or `6:d5a` is a typo,
        // not a key.
        let mut group = 0usize;
        let mut separated = false;
        for (position, c) in hex.char_indices() {
            match c {
                ':' | '-' | ' ' | '_' => {
                    if group == 0 || !group.is_multiple_of(2) {
                        return Err(KeyParseError::BadSeparator { position });
                    }
                    group = 0;
                    separated = true;
                }
                _ => match c.to_digit(16) {
                    Some(d) => {
                        digits.push(d as u8);
                        group += 1;
                    }
                    None => return Err(KeyParseError::NotHex { position }),
                },
            }
        }
        if separated && group == 0 {
            return Err(KeyParseError::BadSeparator {
                position: hex.len() - 1,
            });
        }
        if !digits.len().is_multiple_of(2) || (separated && !group.is_multiple_of(2)) {
            return Err(KeyParseError::OddDigits);
        }
        let bytes: Vec<u8> = digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect();
        let key = Self::from_bytes(&bytes)?;
        match len {
            Some(want) if want != key.len() => Err(KeyParseError::LengthMismatch {
                have: key.len(),
                want,
            }),
            _ => Ok(key),
        }
    }

    /// Key bytes, byte 0 first.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Length in bytes.
    #[allow(clippy::len_without_is_empty)] // a key is never empty
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Length in bits.
    pub fn bit_len(&self) -> usize {
        self.bytes.len() * 8
    }

    /// Longest hash input (bytes) whose windows all lie inside the key: `len - 4`.
    pub fn max_input_len(&self) -> usize {
        self.bytes.len().saturating_sub(4)
    }

    /// Key bit `i` (0 = MSB of byte 0); zero past the end.
    pub fn bit(&self, i: usize) -> bool {
        self.bytes
            .get(i / 8)
            .is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
    }

    /// Flips key bit `i` (no-op past the end).
    pub fn flip_bit(&mut self, i: usize) {
        if let Some(b) = self.bytes.get_mut(i / 8) {
            *b ^= 0x80 >> (i % 8);
        }
    }

    /// The 32-bit window `W_i = k[i..i+32)`, `k[i]` as its MSB, zero-filled past the end.
    pub fn window(&self, i: usize) -> u32 {
        let byte = i / 8;
        let shift = i % 8;
        let mut acc: u64 = 0;
        for k in 0..5 {
            acc = (acc << 8) | u64::from(self.bytes.get(byte + k).copied().unwrap_or(0));
        }
        ((acc << shift) >> 8) as u32
    }

    /// The 8-bit window `k[i..i+8)`, `k[i]` as its MSB.
    pub fn window8(&self, i: usize) -> u8 {
        (self.window(i) >> 24) as u8
    }

    /// `Some(pattern)` if the key is one 16-bit pattern repeated (period 16)
    /// over its whole length; an odd trailing byte must continue the pattern.
    pub fn period16_pattern(&self) -> Option<u16> {
        let b = &self.bytes;
        if b.len() < 2 {
            return None;
        }
        let periodic = b.iter().enumerate().all(|(i, &x)| x == b[i % 2]);
        periodic.then(|| u16::from_be_bytes([b[0], b[1]]))
    }

    /// Lower-case hex without separators.
    pub fn to_hex(&self) -> alloc::string::String {
        use core::fmt::Write;
        let mut s = alloc::string::String::with_capacity(self.bytes.len() * 2);
        for b in &self.bytes {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Colon-separated hex as `ethtool -X ... hkey` takes it.
    pub fn to_ethtool(&self) -> alloc::string::String {
        use core::fmt::Write;
        let mut s = alloc::string::String::with_capacity(self.bytes.len() * 3);
        for (i, b) in self.bytes.iter().enumerate() {
            if i > 0 {
                s.push(':');
            }
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

impl fmt::Debug for RssKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RssKey({})", self.to_hex())
    }
}

impl fmt::Display for RssKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_ethtool())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_named_and_hex_keys() {
        assert_eq!(RssKey::parse("ms", None).unwrap().as_bytes(), &MS_KEY);
        let ms52 = RssKey::parse("ms", Some(52)).unwrap();
        assert_eq!(&ms52.as_bytes()[..40], &MS_KEY);
        assert!(ms52.as_bytes()[40..].iter().all(|&b| b == 0));
        let sym = RssKey::parse("sym", Some(52)).unwrap();
        assert_eq!(sym.len(), 52);
        assert_eq!(sym.period16_pattern(), Some(0x6d5a));
        let colon = RssKey::parse("6d:5a:56:DA", None).unwrap();
        assert_eq!(colon.as_bytes(), &[0x6d, 0x5a, 0x56, 0xda]);
        assert_eq!(colon.to_ethtool(), "6d:5a:56:da");
        assert_eq!(RssKey::parse("0x6d5a56da", None).unwrap(), colon);
        assert!(matches!(
            RssKey::parse("6d5z", None),
            Err(KeyParseError::NotHex { position: 3 })
        ));
        assert_eq!(RssKey::parse("6d5", None), Err(KeyParseError::OddDigits));
        assert!(matches!(
            RssKey::parse("6d5a56da", Some(40)),
            Err(KeyParseError::LengthMismatch { .. })
        ));
        assert!(RssKey::parse("", None).is_err());
        for typo in ["6d::5a", "6d:5a:", ":6d5a", "6:d5a", "6d5:a"] {
            assert!(RssKey::parse(typo, None).is_err(), "{typo}");
        }
        assert_eq!(RssKey::parse("6d 5a-56_da", None).unwrap(), colon);
    }

    #[test]
    fn windows_follow_the_bit_string() {
        let key = RssKey::microsoft(40);
        assert_eq!(key.window(0), 0x6d5a56da);
        assert_eq!(key.window(8), 0x5a56da25);
        assert_eq!(key.window(4), 0xd5a56da2);
        // Past the end: zero-filled.
        assert_eq!(key.window(39 * 8), 0xfa00_0000);
        assert_eq!(key.window(40 * 8), 0);
        assert!(key.bit(1) && !key.bit(0));
        assert_eq!(RssKey::microsoft(40).period16_pattern(), None);
    }
}
