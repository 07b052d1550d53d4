//! The fuzz targets' bodies, shared with the test that replays their
//! corpora (`fuzz/corpus/read_pcap`, `fuzz/corpus/read_pcapng`).

use std::io::Cursor;

use crate::{CaptureReader, ReadError};

/// Reads `data` as a capture to the end or the first error and checks the
/// invariants: packet indexes count up, each packet's bytes lie inside the
/// input, an error's offset lies inside the input and counts the packets
/// before it.
pub fn check_capture(data: &[u8]) {
    let mut r = CaptureReader::from_reader("fuzz".into(), Box::new(Cursor::new(data.to_vec())));
    let mut n = 0u64;
    loop {
        match r.next_packet() {
            Ok(Some(p)) => {
                assert_eq!(p.index, n);
                assert!(p.data.len() <= data.len());
                n += 1;
            }
            Ok(None) => return,
            Err(ReadError::Damaged {
                offset, packets, ..
            }) => {
                assert!(offset as usize <= data.len());
                assert_eq!(packets, n);
                return;
            }
            Err(ReadError::Io { .. }) => unreachable!("in-memory input"),
        }
    }
}

/// A minimal little-endian pcap header (Ethernet, µs): the `read_pcap`
/// target puts it before inputs that do not start with a pcap magic, so
/// the fuzzer spends its time on records.
pub const PCAP_HEADER: [u8; 24] = [
    0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
];

/// Runs [`check_capture`] on `data`, prefixed with [`PCAP_HEADER`] unless it
/// already starts with a pcap magic.
pub fn check_pcap(data: &[u8]) {
    let magic = data
        .get(..4)
        .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
    if matches!(
        magic,
        Some(0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1)
    ) {
        check_capture(data);
    } else {
        let mut v = PCAP_HEADER.to_vec();
        v.extend_from_slice(data);
        check_capture(&v);
    }
}

/// A minimal little-endian pcapng section header and Ethernet interface
/// description, put before inputs that do not start with a section header.
pub const PCAPNG_PREFIX: [u8; 48] = [
    // SHB: type, length 28, byte-order magic, version 1.0, section length -1, length 28.
    0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0,
    // IDB: type 1, length 20, linktype 1, reserved, snaplen 0, length 20.
    1, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0,
];

/// Runs [`check_capture`] on `data`, prefixed with [`PCAPNG_PREFIX`] unless
/// it already starts with a section header block.
pub fn check_pcapng(data: &[u8]) {
    if data.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        check_capture(data);
    } else {
        let mut v = PCAPNG_PREFIX.to_vec();
        v.extend_from_slice(data);
        check_capture(&v);
    }
}
