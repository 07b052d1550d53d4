//! Writer → reader round trips, rotation, and damage at every byte offset.

use std::io::Cursor;

use proptest::prelude::*;
use symrss_pcap::{CaptureReader, PcapWriter, ReadError, RotatingWriter, Rotation, TsResolution};

fn write(packets: &[(i128, Vec<u8>)], res: TsResolution, snaplen: u32) -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new(), 1, snaplen, res).unwrap();
    for (ts, data) in packets {
        w.write_packet(*ts, data.len() as u32, data).unwrap();
    }
    w.finish().unwrap()
}

/// (timestamp, original length, data) per packet.
type Records = Vec<(i128, u32, Vec<u8>)>;

fn read_all(bytes: Vec<u8>) -> (Records, Option<ReadError>) {
    let mut r = CaptureReader::from_reader("mem".into(), Box::new(Cursor::new(bytes)));
    let mut out = Vec::new();
    loop {
        match r.next_packet() {
            Ok(Some(p)) => out.push((p.ts_ns, p.orig_len, p.data.to_vec())),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

fn packets() -> impl Strategy<Value = Vec<(i128, Vec<u8>)>> {
    proptest::collection::vec(
        (
            0i128..4_000_000_000_000_000_000,
            proptest::collection::vec(any::<u8>(), 0..300),
        ),
        0..20,
    )
}

proptest! {
    #[test]
    fn nanosecond_files_round_trip(pkts in packets()) {
        let (back, err) = read_all(write(&pkts, TsResolution::Nano, 65535));
        prop_assert!(err.is_none());
        prop_assert_eq!(back.len(), pkts.len());
        for ((ts, data), (rts, orig, rdata)) in pkts.iter().zip(&back) {
            prop_assert_eq!(*ts, *rts);
            prop_assert_eq!(*orig as usize, data.len());
            prop_assert_eq!(data, rdata);
        }
    }

    #[test]
    fn microsecond_files_truncate_time_and_snaplen_cuts(pkts in packets(), snap in 1u32..400) {
        let (back, err) = read_all(write(&pkts, TsResolution::Micro, snap));
        prop_assert!(err.is_none());
        for ((ts, data), (rts, orig, rdata)) in pkts.iter().zip(&back) {
            prop_assert_eq!(*rts, ts / 1000 * 1000);
            prop_assert_eq!(*orig as usize, data.len());
            prop_assert_eq!(&data[..data.len().min(snap as usize)], &rdata[..]);
        }
    }

    #[test]
    fn a_cut_file_keeps_every_packet_before_the_cut(pkts in packets(), cut in any::<prop::sample::Index>()) {
        let bytes = write(&pkts, TsResolution::Nano, 65535);
        let at = cut.index(bytes.len() + 1);
        // Record boundaries: a cut exactly at one is a clean end.
        let mut bounds = vec![24usize];
        for (_, d) in &pkts {
            let last = *bounds.last().unwrap();
            bounds.push(last + 16 + d.len());
        }
        let (back, err) = read_all(bytes[..at].to_vec());
        let complete = bounds.iter().filter(|&&b| b <= at).count().saturating_sub(1);
        prop_assert_eq!(back.len(), complete);
        if at == 0 || (at >= 24 && bounds.contains(&at)) {
            prop_assert_eq!(err.is_some(), at == 0, "clean end expected at a boundary");
        } else {
            match err {
                Some(ReadError::Damaged { offset, packets, .. }) => {
                    prop_assert_eq!(packets as usize, complete);
                    let expect = if at < 24 { 0 } else { bounds[complete] as u64 };
                    prop_assert_eq!(offset, expect);
                }
                other => prop_assert!(false, "expected damage error, got {:?}", other),
            }
        }
    }
}

#[test]
fn garbage_is_rejected_with_the_magic() {
    let (_, err) = read_all(b"this is not a capture file at all".to_vec());
    let msg = err.unwrap().to_string();
    assert!(msg.contains("mem") && msg.contains("magic"), "{msg}");
}

#[test]
fn rotation_by_packets_with_a_ring() {
    let dir = std::env::temp_dir().join(format!("symrss-rot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rot = Rotation {
        max_bytes: None,
        max_packets: Some(3),
        ring: Some(2),
        ..Rotation::default()
    };
    let mut w = RotatingWriter::create(&dir, "q0", 1, 65535, TsResolution::Micro, rot).unwrap();
    for i in 0..10u8 {
        w.write_packet(i128::from(i) * 1_000_000, 4, &[i; 4])
            .unwrap();
    }
    let files: Vec<_> = w.files().map(|p| p.to_path_buf()).collect();
    w.finish().unwrap();
    // 10 packets, 3 per file: q0, q0.1, q0.2, q0.3; the ring keeps the newest 2.
    assert_eq!(files.len(), 2);
    assert!(
        files[0].ends_with("q0.2.pcap") && files[1].ends_with("q0.3.pcap"),
        "{files:?}"
    );
    assert!(!dir.join("q0.pcap").exists());
    let (a, _) = read_all(std::fs::read(&files[0]).unwrap());
    let (b, _) = read_all(std::fs::read(&files[1]).unwrap());
    assert_eq!(a.len(), 3);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].2, vec![9u8; 4]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rotation_by_bytes_never_exceeds_the_limit_unless_one_record_does() {
    let dir = std::env::temp_dir().join(format!("symrss-rotb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rot = Rotation {
        max_bytes: Some(24 + 2 * (16 + 100)),
        max_packets: None,
        ring: None,
        ..Rotation::default()
    };
    let mut w = RotatingWriter::create(&dir, "q1", 1, 65535, TsResolution::Nano, rot).unwrap();
    for i in 0..7u8 {
        w.write_packet(0, 100, &[i; 100]).unwrap();
    }
    let files: Vec<_> = w.files().map(|p| p.to_path_buf()).collect();
    w.finish().unwrap();
    assert_eq!(files.len(), 4);
    let mut total = 0;
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= 24 + 2 * 116, "{} is {len} bytes", f.display());
        total += read_all(std::fs::read(f).unwrap()).0.len();
    }
    assert_eq!(total, 7);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rotation_by_packet_time() {
    let dir = std::env::temp_dir().join(format!("symrss-rott-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rot = Rotation {
        max_seconds: Some(10),
        ..Rotation::default()
    };
    let mut w = RotatingWriter::create(&dir, "q2", 1, 65535, TsResolution::Nano, rot).unwrap();
    // Seconds 0, 5, 9.999 share a file; 10 starts the next (its first
    // packet is the new reference); 19 stays; 20.5 rotates again.
    let secs = [0.0, 5.0, 9.999, 10.0, 19.0, 20.5];
    for (i, s) in secs.iter().enumerate() {
        w.write_packet((s * 1e9) as i128, 1, &[i as u8]).unwrap();
    }
    let files: Vec<_> = w.files().map(|p| p.to_path_buf()).collect();
    w.finish().unwrap();
    let counts: Vec<usize> = files
        .iter()
        .map(|f| read_all(std::fs::read(f).unwrap()).0.len())
        .collect();
    assert_eq!(counts, [3, 2, 1]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An output that takes `room` bytes, then fails like a full disk.
struct FullAfter {
    data: Vec<u8>,
    room: usize,
}

impl std::io::Write for FullAfter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.room - self.data.len());
        if n == 0 {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        self.data.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl symrss_pcap::Truncate for FullAfter {
    fn truncate_to(&mut self, len: u64) -> std::io::Result<()> {
        self.data.truncate(len as usize);
        self.room = self.data.len();
        Ok(())
    }
}

proptest! {
    /// Whatever the room, a full output ends on a record boundary, holds
    /// exactly the records accepted and not reported unwritten, and those
    /// are the first ones in order.
    #[test]
    fn a_full_output_keeps_whole_records_and_counts_the_rest(
        room in 24usize..40_000,
        sizes in proptest::collection::vec(0usize..3000, 1..60),
        ng in any::<bool>(),
    ) {
        let out = FullAfter { data: Vec::new(), room: room + 48 };
        let mut w = if ng {
            PcapWriter::new_pcapng(out, 1, 65535).unwrap()
        } else {
            PcapWriter::new(out, 1, 65535, TsResolution::Nano).unwrap()
        };
        let mut accepted = 0u64;
        let mut unwritten = 0u64;
        for (i, &len) in sizes.iter().enumerate() {
            let data = vec![i as u8; len];
            if w.write_packet(i as i128, len as u32, &data).is_ok() {
                accepted += 1;
            } else {
                unwritten += w.take_unwritten().packets;
                break;
            }
        }
        let flushed = w.flush();
        if flushed.is_err() {
            unwritten += w.take_unwritten().packets;
        }
        prop_assert_eq!(w.packets(), accepted - unwritten);
        let file = w.finish().map(|o| o.data);
        let bytes = match file {
            Ok(b) => b,
            Err(_) => return Ok(()),
        };
        let (records, err) = read_all(bytes);
        prop_assert!(err.is_none(), "{:?}", err);
        prop_assert_eq!(records.len() as u64, accepted - unwritten);
        for (i, r) in records.iter().enumerate() {
            prop_assert_eq!(r.2.len(), sizes[i]);
        }
    }
}

#[test]
fn pcapng_output_keeps_times_classic_pcap_cannot_hold() {
    // 1900, 1969.999…, 1970, 2106 + 1 s, 2262.
    let times: [i128; 5] = [
        -2_208_988_800_000_000_001,
        -1,
        0,
        (i128::from(u32::MAX) + 1) * 1_000_000_000 + 7,
        9_200_000_000_000_000_000,
    ];
    let mut w = PcapWriter::new_pcapng(Vec::new(), 113, 65535).unwrap();
    for (i, &t) in times.iter().enumerate() {
        w.write_packet(t, 100, &[i as u8; 61]).unwrap();
    }
    let (got, err) = read_all(w.finish().unwrap());
    assert!(err.is_none(), "{err:?}");
    let ts: Vec<i128> = got.iter().map(|r| r.0).collect();
    assert_eq!(ts, times);
    assert!(got.iter().all(|r| r.1 == 100 && r.2.len() == 61));
    assert!(!symrss_pcap::timestamp_fits(times[0]) && symrss_pcap::timestamp_fits(times[2]));
}
