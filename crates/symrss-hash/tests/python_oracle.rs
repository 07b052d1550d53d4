//! Cross-check against the independent Python reference
//! (`shared/tools/toeplitz_ref.py`, bit-serial, standard library only) on
//! random keys and inputs of every length 0..=48 with 40- and 52-byte keys.

use std::process::Command;

use symrss_hash::{RssKey, Toeplitz};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn fast_paths_match_python_reference() {
    let Some(tools) = symrss_testdata::shared("tools/toeplitz_ref.py") else {
        return;
    };
    let tools = tools.parent().unwrap().to_path_buf();
    let mut s: u64 = 0x5eed;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut cases = Vec::new();
    for len in 0..=48usize {
        for key_len in [40usize, 52] {
            let key: Vec<u8> = (0..key_len).map(|_| next() as u8).collect();
            let input: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            cases.push((key, input));
        }
    }
    let script = "import sys\nsys.path.insert(0, sys.argv[1])\nfrom toeplitz_ref import toeplitz_hash\n\
                  for line in sys.stdin:\n    k, d = line.split()\n    \
                  print('%08x' % toeplitz_hash(bytes.fromhex(k), bytes.fromhex(d if d != '-' else '')))\n";
    let stdin: String = cases
        .iter()
        .map(|(k, d)| {
            format!(
                "{} {}\n",
                hex(k),
                if d.is_empty() { "-".into() } else { hex(d) }
            )
        })
        .collect();
    let spawned = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&tools)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let Some(mut child) =
        symrss_testdata::prerequisite(spawned.ok(), || "python3 not available".into())
    else {
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python reference failed");
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), cases.len());
    for ((k, d), want) in cases.iter().zip(lines) {
        let want = u32::from_str_radix(want, 16).unwrap();
        let h = Toeplitz::new(RssKey::from_bytes(k).unwrap());
        assert_eq!(h.hash(d), want, "key {} input {}", hex(k), hex(d));
    }
}
