//! Criterion benches for every hashing path (bitwise, table, GFNI, fold),
//! the batch API and the keyed scheme, over 4096 random IPv4/IPv6 tuples.
//! Run: `cargo bench -p symrss-hash --bench toeplitz`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use symrss_hash::kernel::{Kernel, KernelFn};
use symrss_hash::{Fields, Path, RssKey, Scheme, Toeplitz, Transform, Tuple};

const TUPLES: usize = 4096;

fn tuples(v6: bool) -> Vec<Tuple> {
    let mut s: u64 = if v6 { 6 } else { 4 };
    let mut next = move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..TUPLES)
        .map(|_| {
            let ports = Some((next() as u16, next() as u16));
            if v6 {
                let a = (u128::from(next()) << 64) | u128::from(next());
                let b = (u128::from(next()) << 64) | u128::from(next());
                Tuple::v6(a.into(), b.into(), ports)
            } else {
                Tuple::v4((next() as u32).into(), (next() as u32).into(), ports)
            }
        })
        .collect()
}

/// XOR of the hashes of all tuples, as one kernel loop.
struct XorAll<'a>(&'a [Tuple]);

impl KernelFn for XorAll<'_> {
    type Output = u32;
    #[inline(always)]
    fn call<K: Kernel>(self, k: &K) -> u32 {
        self.0
            .iter()
            .fold(0, |acc, t| acc ^ k.hash_tuple(t, Fields::L4))
    }
}

fn inputs<const N: usize>(ts: &[Tuple]) -> Vec<[u8; N]> {
    ts.iter()
        .map(|t| {
            let mut a = [0u8; N];
            a.copy_from_slice(t.input(Fields::L4, Transform::None).as_bytes());
            a
        })
        .collect()
}

fn bench_paths(c: &mut Criterion) {
    for (fam, v6) in [("ipv4", false), ("ipv6", true)] {
        let ts = tuples(v6);
        let mut g = c.benchmark_group(format!("toeplitz/{fam}"));
        g.throughput(Throughput::Elements(TUPLES as u64));
        for (kname, key) in [
            ("ms", RssKey::microsoft(40)),
            ("sym", RssKey::repeating(0x6d5a, 40)),
        ] {
            for path in [Path::Bitwise, Path::Table, Path::Gfni, Path::Fold] {
                let Some(h) = Toeplitz::with_path(key.clone(), path) else {
                    continue;
                };
                // Dispatch per call, as a casual caller would.
                g.bench_function(format!("{kname}/{}/dyn", path.name()), |b| {
                    b.iter(|| {
                        let mut acc = 0u32;
                        for t in black_box(&ts) {
                            acc ^= h.hash_tuple(t, Fields::L4, Transform::None);
                        }
                        acc
                    })
                });
                // Dispatch once, loop compiled for the kernel (the steering-loop shape).
                g.bench_function(format!("{kname}/{}/kernel", path.name()), |b| {
                    b.iter(|| h.with_kernel(XorAll(black_box(&ts))))
                });
            }
            let h = Toeplitz::new(key.clone());
            let mut out = vec![0u32; TUPLES];
            if v6 {
                let ins = inputs::<36>(&ts);
                g.bench_function(format!("{kname}/batch"), |b| {
                    b.iter(|| h.hash_many(black_box(&ins), &mut out))
                });
            } else {
                let ins = inputs::<12>(&ts);
                g.bench_function(format!("{kname}/batch"), |b| {
                    b.iter(|| h.hash_many(black_box(&ins), &mut out))
                });
            }
        }
        for scheme in ["keyed", "xor", "sort"] {
            let s = Scheme::parse(scheme, 1).expect("built-in");
            g.bench_function(format!("scheme/{scheme}"), |b| {
                b.iter(|| ts.iter().fold(0u32, |acc, t| acc ^ s.hash(black_box(t))))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench_paths);
criterion_main!(benches);
