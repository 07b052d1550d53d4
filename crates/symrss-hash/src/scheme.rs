//! Named steering schemes (DESIGN.md "Schemes"): what to hash and how.
//!
//! | name | meaning |
//! |---|---|
//! | `ms` | Toeplitz, Microsoft key, 4-tuple for TCP/UDP, 2-tuple otherwise (asymmetric) |
//! | `sym` | Toeplitz, `0x6d5a` key, same fields (KAIST / PF_RING) |
//! | `sym-ip` | Toeplitz, `0x6d5a` key, addresses only |
//! | `xor` | Linux `symmetric-xor` transform, random key |
//! | `or-xor` | Linux `symmetric-or-xor` transform, random key |
//! | `sort` | DPDK `SYMMETRIC_TOEPLITZ_SORT`, random key |
//! | `keyed` | canonical endpoints + SipHash-1-3, secret key |
//! | `toeplitz:key=K,fields=ip\|l4,xfrm=none\|xor\|or-xor\|sort` | explicit |
//!
//! "Random" keys are drawn from a seed (ChaCha20) so runs are reproducible.

use crate::KeyParseError;
use alloc::string::{String, ToString};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::input::{Fields, Transform, Tuple};
use crate::kernel::{Kernel, KernelFn};
use crate::key::RssKey;
use crate::keyed::KeyedHasher;
use crate::toeplitz::Toeplitz;

/// Names accepted by [`Scheme::parse`] besides `toeplitz:...`.
pub const SCHEME_NAMES: [&str; 7] = ["ms", "sym", "sym-ip", "xor", "or-xor", "sort", "keyed"];

// Built once per scheme; the hasher stays inline for the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Kind {
    Toeplitz {
        hasher: Toeplitz,
        fields: Fields,
        xfrm: Transform,
    },
    Keyed {
        hasher: KeyedHasher,
        fields: Fields,
    },
}

/// A steering scheme: tuple → 32-bit hash.
#[derive(Clone, Debug)]
pub struct Scheme {
    name: String,
    kind: Kind,
}

/// Why a scheme specification was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemeError {
    /// Not a scheme name nor `toeplitz:...`.
    Unknown {
        /// The specification given.
        spec: String,
    },
    /// A `toeplitz:` parameter that is not `key=value`.
    NotKeyValue {
        /// The specification.
        spec: String,
        /// The offending item.
        item: String,
    },
    /// A parameter given twice.
    Duplicate {
        /// The specification.
        spec: String,
        /// The parameter.
        param: String,
    },
    /// A parameter this scheme does not have.
    UnknownParam {
        /// The specification.
        spec: String,
        /// The parameter.
        param: String,
    },
    /// The key does not parse.
    BadKey {
        /// The specification.
        spec: String,
        /// Why.
        error: KeyParseError,
    },
    /// The key is shorter than an IPv6 4-tuple needs.
    KeyTooShort {
        /// The specification.
        spec: String,
        /// Its length.
        len: usize,
        /// The least accepted.
        min: usize,
    },
    /// `fields=` is neither `ip` nor `l4`.
    BadFields {
        /// The value given.
        value: String,
    },
    /// `xfrm=` is not a known transform.
    BadTransform {
        /// The value given.
        value: String,
    },
}

impl core::fmt::Display for SchemeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unknown { spec } => write!(
                f,
                "unknown scheme `{spec}`; use one of {} or toeplitz:key=K,fields=ip|l4,xfrm=none|xor|or-xor|sort",
                SCHEME_NAMES.join(", ")
            ),
            Self::NotKeyValue { spec, item } => {
                write!(f, "`{item}` in scheme `{spec}` is not key=value")
            }
            Self::Duplicate { spec, param } => {
                write!(f, "`{param}` is given twice in scheme `{spec}`")
            }
            Self::UnknownParam { spec, param } => {
                write!(f, "unknown parameter `{param}` in scheme `{spec}`")
            }
            Self::BadKey { spec, error } => write!(f, "scheme `{spec}`: {error}"),
            Self::KeyTooShort { spec, len, min } => write!(
                f,
                "scheme `{spec}`: a {len}-byte key is too short: Toeplitz needs the key 4 bytes \
                 longer than its input, and an IPv6 4-tuple is 36 bytes (use at least {min} \
                 bytes, as every RSS NIC does)"
            ),
            Self::BadFields { value } => write!(f, "fields must be ip or l4, not `{value}`"),
            Self::BadTransform { value } => {
                write!(f, "xfrm must be none, xor, or-xor or sort, not `{value}`")
            }
        }
    }
}

impl core::error::Error for SchemeError {}

fn random_key(len: usize, rng: &mut ChaCha20Rng) -> RssKey {
    let mut bytes = [0u8; 52];
    rng.fill_bytes(&mut bytes[..len]);
    RssKey::from_bytes(&bytes[..len]).expect("1..=52 bytes")
}

impl Scheme {
    /// A Toeplitz scheme.
    pub fn toeplitz(name: &str, key: RssKey, fields: Fields, xfrm: Transform) -> Self {
        Self {
            name: name.to_string(),
            kind: Kind::Toeplitz {
                hasher: Toeplitz::new(key),
                fields,
                xfrm,
            },
        }
    }

    /// The keyed symmetric scheme.
    pub fn keyed(name: &str, k0: u64, k1: u64, fields: Fields) -> Self {
        Self {
            name: name.to_string(),
            kind: Kind::Keyed {
                hasher: KeyedHasher::new(k0, k1),
                fields,
            },
        }
    }

    /// Parses a scheme name; `seed` determines the random keys of `xor`,
    /// `or-xor`, `sort` and `keyed`.
    pub fn parse(spec: &str, seed: u64) -> Result<Self, SchemeError> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let sym = || RssKey::repeating(crate::key::SYM_PATTERN, 40);
        Ok(match spec {
            "ms" => Self::toeplitz(spec, RssKey::microsoft(40), Fields::L4, Transform::None),
            "sym" => Self::toeplitz(spec, sym(), Fields::L4, Transform::None),
            "sym-ip" => Self::toeplitz(spec, sym(), Fields::Ip, Transform::None),
            "xor" => Self::toeplitz(spec, random_key(40, &mut rng), Fields::L4, Transform::Xor),
            "or-xor" => {
                Self::toeplitz(spec, random_key(40, &mut rng), Fields::L4, Transform::OrXor)
            }
            "sort" => Self::toeplitz(spec, random_key(40, &mut rng), Fields::L4, Transform::Sort),
            "keyed" => Self::keyed(spec, rng.next_u64(), rng.next_u64(), Fields::L4),
            _ => match spec.strip_prefix("toeplitz:") {
                Some(params) => Self::parse_explicit(spec, params)?,
                None => return Err(SchemeError::Unknown { spec: spec.into() }),
            },
        })
    }

    fn parse_explicit(spec: &str, params: &str) -> Result<Self, SchemeError> {
        /// Shortest key of an explicit scheme (IPv6 4-tuple + 4).
        const MIN_SCHEME_KEY_LEN: usize = 40;
        let mut key = None;
        let mut fields = Fields::L4;
        let mut xfrm = Transform::None;
        let mut seen: alloc::vec::Vec<&str> = alloc::vec::Vec::new();
        for kv in params.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| SchemeError::NotKeyValue {
                spec: spec.into(),
                item: kv.into(),
            })?;
            if seen.contains(&k) {
                return Err(SchemeError::Duplicate {
                    spec: spec.into(),
                    param: k.into(),
                });
            }
            seen.push(k);
            match k {
                "key" => {
                    let k = RssKey::parse(v, None).map_err(|error| SchemeError::BadKey {
                        spec: spec.into(),
                        error,
                    })?;
                    if k.len() < MIN_SCHEME_KEY_LEN {
                        return Err(SchemeError::KeyTooShort {
                            spec: spec.into(),
                            len: k.len(),
                            min: MIN_SCHEME_KEY_LEN,
                        });
                    }
                    key = Some(k);
                }
                "fields" => {
                    fields = match v {
                        "ip" => Fields::Ip,
                        "l4" => Fields::L4,
                        _ => {
                            return Err(SchemeError::BadFields { value: v.into() });
                        }
                    }
                }
                "xfrm" => {
                    xfrm = match v {
                        "none" => Transform::None,
                        "xor" => Transform::Xor,
                        "or-xor" => Transform::OrXor,
                        "sort" => Transform::Sort,
                        _ => {
                            return Err(SchemeError::BadTransform { value: v.into() });
                        }
                    }
                }
                _ => {
                    return Err(SchemeError::UnknownParam {
                        spec: spec.into(),
                        param: k.into(),
                    });
                }
            }
        }
        let key = key.unwrap_or_else(|| RssKey::microsoft(40));
        Ok(Self::toeplitz(spec, key, fields, xfrm))
    }

    /// The name it was built with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Toeplitz key, for Toeplitz schemes.
    pub fn key(&self) -> Option<&RssKey> {
        match &self.kind {
            Kind::Toeplitz { hasher, .. } => Some(hasher.key()),
            Kind::Keyed { .. } => None,
        }
    }

    /// Fields hashed.
    pub fn fields(&self) -> Fields {
        match &self.kind {
            Kind::Toeplitz { fields, .. } | Kind::Keyed { fields, .. } => *fields,
        }
    }

    /// The bytes that are hashed for `tuple` (after any transform or ordering).
    pub fn input_bytes(&self, tuple: &Tuple) -> alloc::vec::Vec<u8> {
        match &self.kind {
            Kind::Toeplitz { fields, xfrm, .. } => tuple.input(*fields, *xfrm).as_bytes().to_vec(),
            Kind::Keyed { fields, .. } => KeyedHasher::input(tuple, *fields).to_vec(),
        }
    }

    /// Hashes many tuples: `out[i] = self.hash(&tuples[i])`. The path is
    /// dispatched once and the loop runs monomorphised for it (inside the
    /// GFNI trampoline on that path, see [`crate::kernel`]) — what a
    /// balancer steering a batch of packets wants.
    pub fn hash_batch(&self, tuples: &[Tuple], out: &mut [u32]) {
        assert_eq!(tuples.len(), out.len(), "one output per tuple");
        match &self.kind {
            Kind::Toeplitz {
                hasher,
                fields,
                xfrm,
            } => hasher.with_kernel(BatchLoop {
                tuples,
                out,
                fields: *fields,
                xfrm: *xfrm,
            }),
            Kind::Keyed { hasher, fields } => {
                for (t, o) in tuples.iter().zip(out.iter_mut()) {
                    *o = hasher.hash(t, *fields);
                }
            }
        }
    }

    /// Whether `other` gives every tuple the same hash as this scheme
    /// (same kind, key, fields and transform; the name may differ).
    pub fn same_hash(&self, other: &Scheme) -> bool {
        match (&self.kind, &other.kind) {
            (
                Kind::Toeplitz {
                    hasher: a,
                    fields: fa,
                    xfrm: xa,
                },
                Kind::Toeplitz {
                    hasher: b,
                    fields: fb,
                    xfrm: xb,
                },
            ) => a.key() == b.key() && fa == fb && xa == xb,
            (
                Kind::Keyed {
                    hasher: a,
                    fields: fa,
                },
                Kind::Keyed {
                    hasher: b,
                    fields: fb,
                },
            ) => a == b && fa == fb,
            _ => false,
        }
    }

    /// Hash of `tuple`.
    #[inline]
    pub fn hash(&self, tuple: &Tuple) -> u32 {
        match &self.kind {
            Kind::Toeplitz {
                hasher,
                fields,
                xfrm,
            } => hasher.hash_tuple(tuple, *fields, *xfrm),
            Kind::Keyed { hasher, fields } => hasher.hash(tuple, *fields),
        }
    }
}

/// The loop of [`Scheme::hash_batch`] for one kernel.
struct BatchLoop<'a> {
    tuples: &'a [Tuple],
    out: &'a mut [u32],
    fields: Fields,
    xfrm: Transform,
}

impl KernelFn for BatchLoop<'_> {
    type Output = ();

    #[inline]
    fn call<K: Kernel>(self, kernel: &K) {
        let (fields, xfrm) = (self.fields, self.xfrm);
        for (t, o) in self.tuples.iter().zip(self.out.iter_mut()) {
            *o = kernel.hash_tuple(&t.transformed(xfrm), fields);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn symmetric_schemes_are_symmetric_and_ms_is_not() {
        let t = Tuple::v4(
            Ipv4Addr::new(10, 1, 2, 3),
            Ipv4Addr::new(10, 9, 8, 7),
            Some((40000, 443)),
        );
        for name in ["sym", "sym-ip", "xor", "or-xor", "sort", "keyed"] {
            let s = Scheme::parse(name, 1).unwrap();
            assert_eq!(s.hash(&t), s.hash(&t.reversed()), "{name}");
        }
        let ms = Scheme::parse("ms", 1).unwrap();
        assert_ne!(ms.hash(&t), ms.hash(&t.reversed()));
        assert!(Scheme::parse("bogus", 0).is_err());
        let explicit = Scheme::parse("toeplitz:key=sym,fields=ip,xfrm=none", 0).unwrap();
        assert_eq!(
            explicit.hash(&t),
            Scheme::parse("sym-ip", 0).unwrap().hash(&t)
        );
    }
}
