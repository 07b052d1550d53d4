//! The analyzer predicts the balancer: on every capture of the shared
//! corpus, `analyze --json`'s per-queue packet counts equal the packets
//! `split` writes to each queue, for the same schemes, queue count, layer
//! and seed (issue 13's "one steering core" test; it holds already).

use std::process::Command;

use serde_json::Value;
use symrss_testdata::TempDir;

const SCHEMES: [&str; 5] = ["sym", "keyed", "ms", "xor", "nic:ixgbe"];

fn json(args: &[&str]) -> (bool, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_symrss"))
        .args(args)
        .output()
        .expect("run symrss");
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), v)
}

#[test]
fn analyze_predicts_what_split_writes_on_every_corpus_capture() {
    let Some(corpus) = symrss_testdata::corpus() else {
        return;
    };
    let tmp = TempDir::new("predict");
    let mut compared = 0;
    for entry in corpus.iter().filter(|e| e.packets > 0) {
        let file = entry.path.to_str().unwrap();
        for layer in ["outer", "innermost"] {
            let mut analyze = vec!["analyze", file, "--queues", "5", "--layer", layer, "--json"];
            for s in SCHEMES {
                analyze.extend(["--scheme", s]);
            }
            let (_, a) = json(&analyze);
            let out = tmp.path().join(format!("{}-{layer}", entry.name));
            let apps: Vec<String> = SCHEMES
                .iter()
                .enumerate()
                .map(|(i, s)| format!("a{i}:5:{s}"))
                .collect();
            let mut split = vec![
                "split",
                file,
                "-o",
                out.to_str().unwrap(),
                "--layer",
                layer,
                "--json",
            ];
            for app in &apps {
                split.extend(["--app", app.as_str()]);
            }
            let (_, s) = json(&split);
            for (i, scheme) in SCHEMES.iter().enumerate() {
                let predicted: Vec<u64> = a["schemes"][i]["queues"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|q| q["packets"].as_u64().unwrap())
                    .collect();
                let written: Vec<u64> = s["apps"][i]["queues"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|q| q["packets"].as_u64().unwrap())
                    .collect();
                assert_eq!(
                    predicted, written,
                    "{} ({layer} layer, {scheme}): analyze vs split per queue",
                    entry.name
                );
            }
            compared += 1;
        }
    }
    assert!(compared > 40, "only {compared} captures compared");
}
