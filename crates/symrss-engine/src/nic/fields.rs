//! The ethtool vocabulary: `RXH_*` hash-field bits and their letters (as
//! `ethtool -N ... rx-flow-hash` spells them), flow types, hash functions
//! and input transforms (`include/uapi/linux/ethtool.h`).

/// `RXH_*` hash-field bits of `ethtool_rxnfc.data`.
pub mod rxh {
    /// Destination MAC (`m`).
    pub const L2DA: u64 = 1 << 1;
    /// VLAN tag (`v`).
    pub const VLAN: u64 = 1 << 2;
    /// L3 protocol (`t`).
    pub const L3_PROTO: u64 = 1 << 3;
    /// IP source address (`s`).
    pub const IP_SRC: u64 = 1 << 4;
    /// IP destination address (`d`).
    pub const IP_DST: u64 = 1 << 5;
    /// L4 bytes 0–1, the source port (`f`).
    pub const L4_B_0_1: u64 = 1 << 6;
    /// L4 bytes 2–3, the destination port (`n`).
    pub const L4_B_2_3: u64 = 1 << 7;
    /// Discard the flow type (`r`).
    pub const DISCARD: u64 = 1 << 31;
    /// Addresses only (`sd`).
    pub const SD: u64 = IP_SRC | IP_DST;
    /// Addresses and ports (`sdfn`).
    pub const SDFN: u64 = SD | L4_B_0_1 | L4_B_2_3;
}

/// `ETH_RSS_HASH_TOP`: the Toeplitz hash function bit.
pub const HFUNC_TOEPLITZ: u8 = 1;
/// `RXH_XFRM_SYM_XOR`.
pub const XFRM_SYM_XOR: u8 = 1;
/// `RXH_XFRM_SYM_OR_XOR`.
pub const XFRM_SYM_OR_XOR: u8 = 2;

const LETTERS: [(u64, char); 8] = [
    (rxh::L2DA, 'm'),
    (rxh::VLAN, 'v'),
    (rxh::L3_PROTO, 't'),
    (rxh::IP_SRC, 's'),
    (rxh::IP_DST, 'd'),
    (rxh::L4_B_0_1, 'f'),
    (rxh::L4_B_2_3, 'n'),
    (rxh::DISCARD, 'r'),
];

/// Hash fields in ethtool's letters (`sdfn`, `sd`, ...), as
/// `ethtool -N IF rx-flow-hash FLOW LETTERS` takes them.
pub fn fields_letters(fields: u64) -> String {
    LETTERS
        .iter()
        .filter(|(bit, _)| fields & bit != 0)
        .map(|&(_, c)| c)
        .collect()
}

/// Parses ethtool's letters.
pub fn parse_fields_letters(s: &str) -> Option<u64> {
    s.chars().try_fold(0u64, |acc, c| {
        LETTERS
            .iter()
            .find(|&&(_, l)| l == c)
            .map(|&(bit, _)| acc | bit)
    })
}

/// The flow types RSS configuration covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowType {
    /// `TCP_V4_FLOW`.
    Tcp4,
    /// `UDP_V4_FLOW`.
    Udp4,
    /// `TCP_V6_FLOW`.
    Tcp6,
    /// `UDP_V6_FLOW`.
    Udp6,
}

impl FlowType {
    /// All four, in ethtool's order.
    pub const ALL: [Self; 4] = [Self::Tcp4, Self::Udp4, Self::Tcp6, Self::Udp6];

    /// The kernel's flow-type number.
    pub fn code(self) -> u32 {
        match self {
            Self::Tcp4 => 0x01,
            Self::Udp4 => 0x02,
            Self::Tcp6 => 0x05,
            Self::Udp6 => 0x06,
        }
    }

    /// ethtool's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp4 => "tcp4",
            Self::Udp4 => "udp4",
            Self::Tcp6 => "tcp6",
            Self::Udp6 => "udp6",
        }
    }

    /// IPv6?
    pub fn is_v6(self) -> bool {
        matches!(self, Self::Tcp6 | Self::Udp6)
    }

    /// UDP?
    pub fn is_udp(self) -> bool {
        matches!(self, Self::Udp4 | Self::Udp6)
    }

    /// The flow type of an IP protocol number and family, if RSS has one.
    pub fn of(proto: u8, v6: bool) -> Option<Self> {
        match (proto, v6) {
            (6, false) => Some(Self::Tcp4),
            (17, false) => Some(Self::Udp4),
            (6, true) => Some(Self::Tcp6),
            (17, true) => Some(Self::Udp6),
            _ => None,
        }
    }
}

/// ethtool's name of an input transform.
pub fn xfrm_name(xfrm: u8) -> &'static str {
    match xfrm {
        0 => "none",
        XFRM_SYM_XOR => "symmetric-xor",
        XFRM_SYM_OR_XOR => "symmetric-or-xor",
        _ => "unknown",
    }
}

/// `aa:bb:...` as ethtool prints and takes keys.
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_letters_round_trip() {
        assert_eq!(fields_letters(rxh::SDFN), "sdfn");
        assert_eq!(parse_fields_letters("sd"), Some(rxh::SD));
        assert_eq!(parse_fields_letters("sx"), None);
        for bits in 0u64..256 {
            let data = (bits << 1) & 0xfe;
            assert_eq!(parse_fields_letters(&fields_letters(data)), Some(data));
        }
    }
}
