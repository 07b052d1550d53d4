//! Every capture of the shared corpus is read with the packet count its
//! MANIFEST.tsv gives; damaged files fail with an error naming the file and
//! the byte offset, after delivering every packet before the damage.

use symrss_pcap::{CaptureReader, ReadError};

#[test]
fn every_corpus_capture_reads_with_the_manifest_count() {
    let Some(corpus) = symrss_testdata::corpus() else {
        return;
    };
    assert!(
        corpus.len() >= 64,
        "expected the 64-file corpus, found {}",
        corpus.len()
    );
    for entry in corpus {
        let mut r = CaptureReader::open(&entry.path).unwrap();
        let mut n = 0u64;
        let mut last_ts = i128::MIN;
        let result = loop {
            match r.next_packet() {
                Ok(Some(p)) => {
                    assert_eq!(p.index, n);
                    assert!(p.data.len() as u64 <= u64::from(p.orig_len).max(p.data.len() as u64));
                    last_ts = last_ts.max(p.ts_ns);
                    n += 1;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        assert_eq!(n, entry.packets, "{}: packet count", entry.name);
        match result {
            Ok(()) => assert!(
                !entry.damaged(),
                "{}: manifest says damaged, read cleanly",
                entry.name
            ),
            Err(e) => {
                assert!(entry.damaged(), "{}: unexpected error {e}", entry.name);
                let msg = e.to_string();
                assert!(msg.contains(&entry.name), "error names the file: {msg}");
                assert!(
                    matches!(e, ReadError::Damaged { offset, .. } if offset > 0),
                    "{msg}"
                );
            }
        }
    }
}
