//! Every vector in `shared/vectors/*.json` on every hashing path, plus the
//! 16 Microsoft verification vectors encoded here directly.

use std::net::IpAddr;

use serde_json::Value;
use symrss_hash::fold::fold16;
use symrss_hash::reference::toeplitz_bitwise;
use symrss_hash::{Fields, Path, RssKey, Toeplitz, Transform, Tuple};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn key_bytes(keys: &Value, name: &str) -> Vec<u8> {
    let k = &keys[name];
    let bytes = if let Some(h) = k["hex"].as_str() {
        hex(h)
    } else {
        let base = key_bytes(keys, k["repeat_of"].as_str().expect("hex or repeat_of"));
        base.repeat(k["times"].as_u64().unwrap() as usize)
    };
    assert_eq!(
        bytes.len() as u64,
        k["length"].as_u64().unwrap(),
        "key {name} length"
    );
    bytes
}

fn all_paths(key: &RssKey) -> Vec<Toeplitz> {
    [Path::Bitwise, Path::Table, Path::Gfni, Path::Fold]
        .into_iter()
        .filter_map(|p| Toeplitz::with_path(key.clone(), p))
        .chain([Toeplitz::new(key.clone())])
        .collect()
}

fn parse_hash(v: &Value) -> u32 {
    u32::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn shared_vector_files_pass_on_every_path() {
    let Some(dir) = symrss_testdata::shared("vectors") else {
        return;
    };
    let mut files = 0;
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        files += 1;
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let default_key = doc["default_key"].as_str().unwrap();
        for v in doc["vectors"].as_array().unwrap() {
            let id = v["id"].as_str().unwrap();
            let key_name = v["key"].as_str().unwrap_or(default_key);
            let key = RssKey::from_bytes(&key_bytes(&doc["keys"], key_name)).unwrap();
            let input = if let Some(h) = v["input_hex"].as_str() {
                hex(h)
            } else {
                let p = &v["input_pattern"];
                assert_eq!(p["kind"], "incrementing_bytes", "{id}");
                let start = p["start"].as_u64().unwrap();
                (0..p["length"].as_u64().unwrap())
                    .map(|i| ((start + i) % 256) as u8)
                    .collect()
            };
            // Tuple fields must give the same input through our builders.
            if let Some(src) = v["src_ip"].as_str() {
                let src: IpAddr = src.parse().unwrap();
                let dst: IpAddr = v["dst_ip"].as_str().unwrap().parse().unwrap();
                let ports = v["src_port"]
                    .as_u64()
                    .map(|s| (s as u16, v["dst_port"].as_u64().unwrap() as u16));
                let t = Tuple::new(src, dst, ports).unwrap();
                let built = t.input(Fields::L4, Transform::None);
                assert_eq!(built.as_bytes(), &input[..], "{id}: input builder");
                if let Some(rev) = v.get("expected_hash_reversed") {
                    let rev_input = t.reversed().input(Fields::L4, Transform::None);
                    for h in all_paths(&key) {
                        assert_eq!(
                            h.hash(rev_input.as_bytes()),
                            parse_hash(rev),
                            "{id} reversed {:?}",
                            h.path()
                        );
                    }
                }
            }
            if let Some(f) = v.get("fold16") {
                assert_eq!(u32::from(fold16(&input)), parse_hash(f), "{id}: fold16");
            }
            let expected = parse_hash(&v["expected_hash"]);
            for h in all_paths(&key) {
                assert_eq!(
                    h.hash(&input),
                    expected,
                    "{} {id} on {:?}",
                    path.display(),
                    h.path()
                );
            }
            checked += 1;
        }
    }
    assert_eq!(files, 5, "expected the five vector files");
    assert_eq!(checked, 340, "expected 340 vectors");
}

/// Microsoft "Verifying the RSS Hash Calculation", with the source listed
/// first (the page prints destination first): (src, dst, sport, dport,
/// IPv4/IPv6-only hash, with-TCP hash).
const MS_VECTORS: [(&str, &str, u16, u16, u32, u32); 8] = [
    (
        "66.9.149.187",
        "161.142.100.80",
        2794,
        1766,
        0x323e8fc2,
        0x51ccc178,
    ),
    (
        "199.92.111.2",
        "65.69.140.83",
        14230,
        4739,
        0xd718262a,
        0xc626b0ea,
    ),
    (
        "24.19.198.95",
        "12.22.207.184",
        12898,
        38024,
        0xd2d0a5de,
        0x5c2b394a,
    ),
    (
        "38.27.205.30",
        "209.142.163.6",
        48228,
        2217,
        0x82989176,
        0xafc7327f,
    ),
    (
        "153.39.163.191",
        "202.188.127.2",
        44251,
        1303,
        0x5d1809c5,
        0x10e828a2,
    ),
    (
        "3ffe:2501:200:1fff::7",
        "3ffe:2501:200:3::1",
        2794,
        1766,
        0x2cc18cd5,
        0x40207d3d,
    ),
    (
        "3ffe:501:8::260:97ff:fe40:efab",
        "ff02::1",
        14230,
        4739,
        0x0f0c461c,
        0xdde51bbf,
    ),
    (
        "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
        "fe80::200:f8ff:fe21:67cf",
        44251,
        38024,
        0x4b61e985,
        0x02d1feef,
    ),
];

#[test]
fn microsoft_verification_vectors_inline() {
    let key = RssKey::microsoft(40);
    for (src, dst, sp, dp, ip_hash, l4_hash) in MS_VECTORS {
        let t = Tuple::new(src.parse().unwrap(), dst.parse().unwrap(), Some((sp, dp))).unwrap();
        for h in all_paths(&key) {
            assert_eq!(
                h.hash_tuple(&t, Fields::Ip, Transform::None),
                ip_hash,
                "{src} ip {:?}",
                h.path()
            );
            assert_eq!(
                h.hash_tuple(&t, Fields::L4, Transform::None),
                l4_hash,
                "{src} l4 {:?}",
                h.path()
            );
        }
        let input = t.input(Fields::L4, Transform::None);
        assert_eq!(toeplitz_bitwise(&key, input.as_bytes()), l4_hash);
    }
}
