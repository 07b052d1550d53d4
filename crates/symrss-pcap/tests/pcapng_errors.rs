//! pcapng damage is reported as a sentence (block type, what is wrong,
//! byte offset), never as raw bytes; every block's trailing length is
//! checked; legal extremes (`if_tsresol` 0x7f) are not damage.

use std::io::Cursor;

use symrss_pcap::{CaptureReader, ReadError};

/// A little-endian block: type, length, body padded to 32 bits, length
/// again (or `trailer` instead, to damage it).
fn block(block_type: u32, body: &[u8], trailer: Option<u32>) -> Vec<u8> {
    let pad = (4 - body.len() % 4) % 4;
    let len = (12 + body.len() + pad) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(&block_type.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out.extend(std::iter::repeat_n(0u8, pad));
    out.extend_from_slice(&trailer.unwrap_or(len).to_le_bytes());
    out
}

fn shb(trailer: Option<u32>) -> Vec<u8> {
    let mut body = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&(-1i64).to_le_bytes());
    block(0x0a0d_0d0a, &body, trailer)
}

fn idb(tsresol: u8) -> Vec<u8> {
    let mut body = 1u16.to_le_bytes().to_vec(); // Ethernet
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&65535u32.to_le_bytes());
    body.extend_from_slice(&9u16.to_le_bytes()); // if_tsresol
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&[tsresol, 0, 0, 0]);
    body.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
    block(1, &body, None)
}

fn epb(ts: u64, data: &[u8], caplen: u32) -> Vec<u8> {
    let mut body = 0u32.to_le_bytes().to_vec();
    body.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
    body.extend_from_slice(&(ts as u32).to_le_bytes());
    body.extend_from_slice(&caplen.to_le_bytes());
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(data);
    block(6, &body, None)
}

fn read(bytes: Vec<u8>) -> (Vec<i128>, Option<ReadError>) {
    let mut r = CaptureReader::from_reader("t.pcapng".into(), Box::new(Cursor::new(bytes)));
    let mut ts = Vec::new();
    loop {
        match r.next_packet() {
            Ok(Some(p)) => ts.push(p.ts_ns),
            Ok(None) => return (ts, None),
            Err(e) => return (ts, Some(e)),
        }
    }
}

fn damage(bytes: Vec<u8>) -> (u64, String) {
    match read(bytes).1 {
        Some(ReadError::Damaged { offset, reason, .. }) => {
            assert!(reason.len() < 300, "a sentence, not a dump: {reason}");
            assert!(
                !reason.contains("NomError") && !reason.contains("Verify"),
                "{reason}"
            );
            (offset, reason)
        }
        other => panic!("expected damage, got {other:?}"),
    }
}

#[test]
fn extreme_but_legal_timestamp_resolutions_read() {
    let frame = [7u8; 60];
    for (tsresol, want) in [
        (9u8, 123_456i128),
        (6, 123_456_000),
        (0x7f, 0),
        (0x80 | 127, 0),
    ] {
        let bytes = [shb(None), idb(tsresol), epb(123_456, &frame, 60)].concat();
        let (ts, err) = read(bytes);
        assert!(err.is_none(), "if_tsresol 0x{tsresol:02x}: {err:?}");
        assert_eq!(ts, [want], "if_tsresol 0x{tsresol:02x}");
    }
}

#[test]
fn every_block_type_has_its_trailing_length_checked() {
    let frame = [7u8; 60];
    let (offset, reason) = damage([shb(Some(99)), idb(9), epb(1, &frame, 60)].concat());
    assert_eq!(offset, 0);
    assert!(
        reason.contains("section header block") && reason.contains("must match"),
        "{reason}"
    );
    let mut spb_body = 60u32.to_le_bytes().to_vec();
    spb_body.extend_from_slice(&frame);
    let good = [shb(None), idb(9)].concat();
    let (offset, reason) = damage([good.clone(), block(3, &spb_body, Some(4))].concat());
    assert_eq!(offset, good.len() as u64);
    assert!(reason.contains("simple packet block"), "{reason}");
    let mut bad_epb = epb(1, &frame, 60);
    let n = bad_epb.len();
    bad_epb[n - 4..].copy_from_slice(&8u32.to_le_bytes());
    let (_, reason) = damage([good, bad_epb].concat());
    assert!(reason.contains("enhanced packet block"), "{reason}");
}

#[test]
fn a_malformed_block_is_described_not_dumped() {
    let frame = [0xabu8; 4000];
    // The captured length claims more bytes than the block holds.
    let bytes = [shb(None), idb(9), epb(1, &frame, 9000)].concat();
    let (offset, reason) = damage(bytes);
    assert!(offset > 0);
    assert!(reason.contains("enhanced packet block"), "{reason}");
}
