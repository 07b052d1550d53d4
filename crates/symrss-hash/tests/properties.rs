//! Property tests: every fast path equals the bit-serial reference; symmetric
//! keys and schemes are direction-invariant; `key check` counterexamples are
//! real; `key gen` keys are symmetric.

use proptest::prelude::*;
use symrss_hash::analysis::check_key;
use symrss_hash::keygen::generate_symmetric;
use symrss_hash::reference::toeplitz_bitwise;
use symrss_hash::{Fields, Layout, Path, RssKey, Scheme, Toeplitz, Transform, Tuple};

fn any_tuple() -> impl Strategy<Value = Tuple> {
    let ports = proptest::option::of(any::<(u16, u16)>());
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>(), ports.clone()).prop_map(|(s, d, p)| Tuple::v4(
            s.into(),
            d.into(),
            p
        )),
        (any::<[u8; 16]>(), any::<[u8; 16]>(), ports).prop_map(|(s, d, p)| Tuple::v6(
            s.into(),
            d.into(),
            p
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn table_and_gfni_equal_reference(key in proptest::collection::vec(any::<u8>(), 1..80),
                                      input in proptest::collection::vec(any::<u8>(), 0..90)) {
        let key = RssKey::from_bytes(&key).unwrap();
        let expected = toeplitz_bitwise(&key, &input);
        for path in [Path::Table, Path::Gfni] {
            if let Some(h) = Toeplitz::with_path(key.clone(), path) {
                prop_assert_eq!(h.hash(&input), expected, "{:?}", path);
            }
        }
        prop_assert_eq!(Toeplitz::new(key).hash(&input), expected);
    }

    #[test]
    fn fold_equals_reference_for_period16_keys(pattern in any::<u16>(), len in 2usize..80,
                                               input in proptest::collection::vec(any::<u8>(), 0..90)) {
        let key = RssKey::repeating(pattern, len);
        let h = Toeplitz::with_path(key.clone(), Path::Fold).unwrap();
        prop_assert_eq!(h.hash(&input), toeplitz_bitwise(&key, &input));
    }

    #[test]
    fn tuple_kernels_equal_reference(key in proptest::collection::vec(any::<u8>(), 16..60),
                                     pattern in any::<u16>(), t in any_tuple(),
                                     l4 in any::<bool>(), x in 0usize..4) {
        let fields = if l4 { Fields::L4 } else { Fields::Ip };
        let xfrm = [Transform::None, Transform::Xor, Transform::OrXor, Transform::Sort][x];
        for key in [RssKey::from_bytes(&key).unwrap(), RssKey::repeating(pattern, 40), RssKey::repeating(pattern, 52)] {
            let expected = toeplitz_bitwise(&key, t.input(fields, xfrm).as_bytes());
            for path in [Path::Bitwise, Path::Table, Path::Gfni, Path::Fold] {
                if let Some(h) = Toeplitz::with_path(key.clone(), path) {
                    prop_assert_eq!(h.hash_tuple(&t, fields, xfrm), expected, "{:?} {:?}", path, key);
                }
            }
        }
    }

    #[test]
    fn gfni_batch_equals_single(key in proptest::collection::vec(any::<u8>(), 40..53),
                                inputs in proptest::collection::vec(any::<[u8; 12]>(), 0..40)) {
        let h = Toeplitz::new(RssKey::from_bytes(&key).unwrap());
        let mut out = vec![0; inputs.len()];
        h.hash_many(&inputs, &mut out);
        for (i, o) in inputs.iter().zip(&out) {
            prop_assert_eq!(*o, toeplitz_bitwise(h.key(), i));
        }
    }

    #[test]
    fn scheme_batches_equal_reference(key in proptest::collection::vec(any::<u8>(), 40..53),
                                      tuples in proptest::collection::vec(any_tuple(), 0..40),
                                      seed in any::<u64>()) {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let mut schemes: Vec<Scheme> = ["ms", "sym", "sym-ip", "xor", "or-xor", "sort", "keyed"]
            .iter()
            .map(|n| Scheme::parse(n, seed).unwrap())
            .collect();
        for xfrm in ["none", "xor", "or-xor", "sort"] {
            for fields in ["ip", "l4"] {
                let spec = format!("toeplitz:key={hex},fields={fields},xfrm={xfrm}");
                schemes.push(Scheme::parse(&spec, seed).unwrap());
            }
        }
        for s in &schemes {
            let mut out = vec![0; tuples.len()];
            s.hash_batch(&tuples, &mut out);
            for (t, o) in tuples.iter().zip(&out) {
                let expected = match s.key() {
                    // Toeplitz schemes: the bit-serial definition on the
                    // scheme's own input bytes.
                    Some(k) => toeplitz_bitwise(k, &s.input_bytes(t)),
                    None => s.hash(t),
                };
                prop_assert_eq!(*o, expected, "{}", s.name());
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn symmetric_keys_and_schemes_ignore_direction(t in any_tuple(), pattern in any::<u16>(), seed in any::<u64>()) {
        for len in [40, 52] {
            let h = Toeplitz::new(RssKey::repeating(pattern, len));
            for fields in [Fields::Ip, Fields::L4] {
                prop_assert_eq!(h.hash_tuple(&t, fields, Transform::None),
                                h.hash_tuple(&t.reversed(), fields, Transform::None));
            }
        }
        for name in ["sym", "sym-ip", "xor", "or-xor", "sort", "keyed"] {
            let s = Scheme::parse(name, seed).unwrap();
            prop_assert_eq!(s.hash(&t), s.hash(&t.reversed()), "{}", name);
        }
        let g = generate_symmetric(40, seed % 1000);
        let h = Toeplitz::new(g.key);
        prop_assert_eq!(h.hash_tuple(&t, Fields::L4, Transform::None),
                        h.hash_tuple(&t.reversed(), Fields::L4, Transform::None));
    }

    #[test]
    fn counterexamples_really_differ(key in proptest::collection::vec(any::<u8>(), 40..53)) {
        let key = RssKey::from_bytes(&key).unwrap();
        let check = check_key(&key);
        let h = Toeplitz::new(key);
        for l in &check.layouts {
            let fields = if l.layout.has_ports() { Fields::L4 } else { Fields::Ip };
            match l.counterexample {
                Some(ce) => {
                    prop_assert!(!l.symmetric);
                    prop_assert_eq!(ce.tuple.layout(fields), l.layout);
                    let fwd = h.hash_tuple(&ce.tuple, fields, Transform::None);
                    let rev = h.hash_tuple(&ce.tuple.reversed(), fields, Transform::None);
                    prop_assert_eq!(fwd, ce.hash);
                    prop_assert_eq!(rev, ce.reverse_hash);
                    prop_assert_ne!(fwd, rev);
                }
                None => prop_assert!(l.symmetric),
            }
        }
    }

    #[test]
    fn generated_keys_are_symmetric(seed in any::<u64>(), len in prop_oneof![Just(40usize), Just(52usize)]) {
        let g = generate_symmetric(len, seed);
        prop_assert_eq!(g.key.len(), len);
        prop_assert!(g.check.symmetric_all());
        for layout in Layout::ALL {
            prop_assert!(symrss_hash::analysis::is_symmetric(&g.key, layout));
        }
        prop_assert_eq!(g.check.layout(Layout::Tcp4).rank, 32);
    }
}

proptest! {
    #[test]
    fn flow_id_is_direction_independent_and_distinguishes(a in any::<[u8; 16]>(), b in any::<[u8; 16]>(), p in any::<(u16, u16)>(), q in any::<(u16, u16)>()) {
        let t = Tuple::v6(a.into(), b.into(), Some(p));
        prop_assert_eq!(t.flow_id(), t.reversed().flow_id());
        let u = Tuple::v6(a.into(), b.into(), Some(q));
        let same_flow = u == t || u == t.reversed() || u.reversed() == t;
        prop_assert_eq!(t.flow_id() == u.flow_id(), same_flow || u.canonical() == t.canonical());
        let v4 = Tuple::v4([a[0], a[1], a[2], a[3]].into(), [b[0], b[1], b[2], b[3]].into(), None);
        prop_assert_ne!(v4.flow_id(), v4.with_ports(Some((0, 0))).flow_id());
    }
}

proptest! {
    #[test]
    fn flow_digest_is_direction_independent(a in any::<[u8; 16]>(), b in any::<[u8; 16]>(), p in any::<(u16, u16)>(), q in any::<(u16, u16)>()) {
        let t = Tuple::v6(a.into(), b.into(), Some(p));
        prop_assert_eq!(t.flow_digest(), t.reversed().flow_digest());
        let u = Tuple::v6(a.into(), b.into(), Some(q));
        if u.flow_id() != t.flow_id() {
            prop_assert_ne!(t.flow_digest(), u.flow_digest());
        }
        let v4 = Tuple::v4([a[0], a[1], a[2], a[3]].into(), [b[0], b[1], b[2], b[3]].into(), None);
        prop_assert_eq!(v4.flow_digest(), v4.reversed().flow_digest());
        prop_assert_ne!(v4.flow_digest(), v4.with_ports(Some((0, 0))).flow_digest());
    }
}
