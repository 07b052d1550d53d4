//! Replays the reader fuzz corpora (`fuzz/corpus/read_pcap`,
//! `fuzz/corpus/read_pcapng`) through the fuzz targets' bodies.

fn replay(sub: &str, check: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(sub);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus is committed") {
        check(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    n
}

#[test]
fn reader_corpora_replay_cleanly() {
    assert!(replay("read_pcap", symrss_pcap::fuzz::check_pcap) >= 4);
    assert!(replay("read_pcapng", symrss_pcap::fuzz::check_pcapng) >= 1);
}

#[test]
fn pcapng_seed_reads_every_packet() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus/read_pcapng/epb_spb.pcapng");
    let mut r = symrss_pcap::CaptureReader::open(&path).unwrap();
    let mut n = 0;
    while let Some(p) = r.next_packet().unwrap() {
        assert_eq!(p.linktype, 1);
        n += 1;
    }
    assert_eq!(n, 7, "6 EPBs and 1 SPB");
}
