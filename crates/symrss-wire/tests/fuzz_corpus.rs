//! Replays the dissector fuzz corpus (`fuzz/corpus/dissect`: generated
//! seeds plus whatever the fuzzer found worth keeping) through the fuzz
//! target's body, so every input that ever mattered is checked by
//! `cargo test`.

#[test]
fn dissect_corpus_replays_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/dissect");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/dissect is committed") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        symrss_wire::fuzz::check_frame(&data);
        n += 1;
    }
    assert!(n >= 19, "expected the generated seeds, found {n}");
}

#[test]
fn generated_seeds_dissect_without_error() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/dissect");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let lt =
            symrss_wire::fuzz::LINKTYPES[usize::from(data[0]) % symrss_wire::fuzz::LINKTYPES.len()];
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.len() > 30 {
            continue; // fuzzer-found inputs are named by hash; only seeds must be clean
        }
        let k = symrss_wire::dissect(lt, &data[1..], &symrss_wire::Options::default());
        assert_eq!(k.error, None, "{name}");
        assert_eq!(k.is_ip(), name != "arp.bin", "{name}");
    }
}
