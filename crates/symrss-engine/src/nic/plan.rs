//! Plans that make a device's RSS symmetric: a symmetric key and an equal
//! table, the kernel's symmetric-xor transform, or software steering
//! when the hardware offers neither.

use symrss_hash::RssKey;

use super::fields::{
    FlowType, XFRM_SYM_OR_XOR, XFRM_SYM_XOR, colon_hex, fields_letters, rxh, xfrm_name,
};
use super::profile::{DriverProfile, KeyControl};

/// How a plan makes RSS symmetric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Pick: key if the driver can set it, else xor if it has the
    /// transform, else software.
    Auto,
    /// A period-16 (`0x6d5a`) key, no transform.
    Key,
    /// The driver's symmetric input transform with a random key.
    Xor,
    /// Leave the NIC and steer in software.
    Software,
}

impl Mode {
    /// Parses `auto`, `key`, `xor`, `software`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "key" => Some(Self::Key),
            "xor" => Some(Self::Xor),
            "software" => Some(Self::Software),
            _ => None,
        }
    }

    /// The name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Key => "key",
            Self::Xor => "xor",
            Self::Software => "software",
        }
    }
}

/// One change a plan makes (what `nic apply` does through the ioctls).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `ethtool -L IF combined N`.
    Channels(u32),
    /// `ethtool -X IF hkey K equal N hfunc toeplitz [xfrm X]`.
    Rss {
        /// Key.
        key: Vec<u8>,
        /// Indirection table.
        indir: Vec<u32>,
        /// Input transform (`XFRM_*`; 0 = none).
        xfrm: u8,
    },
    /// `ethtool -N IF rx-flow-hash FLOW FIELDS`.
    Fields(FlowType, u64),
}

/// A plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Interface name used in the commands.
    pub interface: String,
    /// The mode chosen.
    pub mode: Mode,
    /// Queues.
    pub queues: u32,
    /// Changes, in order (empty for software mode).
    pub steps: Vec<Step>,
    /// Why this mode, and what to watch.
    pub explanation: Vec<String>,
    /// The software alternative (always offered; the plan in software mode).
    pub software: String,
    /// The driver has an input transform, so commands name it even when
    /// they clear it (`xfrm none`: newer ethtool leaves it unchanged
    /// otherwise).
    pub driver_has_xfrm: bool,
}

/// What a plan is for.
#[derive(Clone, Debug)]
pub struct PlanRequest<'a> {
    /// Interface name.
    pub interface: &'a str,
    /// Driver profile.
    pub profile: &'a DriverProfile,
    /// Key length and RETA size read from the device, overriding the
    /// profile's.
    pub device_sizes: Option<(usize, usize)>,
    /// Queues wanted.
    pub queues: u32,
    /// The device's current combined channels, if known: no channel step
    /// when equal, and the table is set before shrinking the channels (the
    /// kernel refuses fewer channels than a configured table uses,
    /// `ethtool_set_channels`).
    pub current_queues: Option<u32>,
    /// Mode wanted.
    pub mode: Mode,
    /// UDP hash fields (`rxh::SD` keeps fragments with their flow).
    pub udp_fields: u64,
    /// Random key for xor mode (at least the key length).
    pub random_key: &'a [u8],
}

/// Why a plan cannot be made: what the device lacks for the mode asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// No queues asked for.
    NoQueues,
    /// The device exposes no configurable key or table.
    NoConfigurableRss {
        /// Driver.
        driver: &'static str,
        /// Key bytes it reports.
        key_len: usize,
        /// Table entries it reports.
        reta_size: usize,
    },
    /// `xor` mode on a driver without a symmetric input transform.
    NoTransform {
        /// Driver.
        driver: &'static str,
    },
    /// The random key given for `xor` mode is shorter than the device's.
    RandomKeyTooShort {
        /// Bytes needed.
        need: usize,
    },
    /// The indirection table could not be filled.
    Table(symrss_hash::reta::RetaError),
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoQueues => f.write_str("--queues must be at least 1"),
            Self::NoConfigurableRss {
                driver,
                key_len,
                reta_size,
            } => write!(
                f,
                "{driver}: this device exposes no configurable RSS (key {key_len} bytes, \
                 indirection table {reta_size} entries); use `--mode software` (or the default \
                 `auto`)"
            ),
            Self::NoTransform { driver } => write!(
                f,
                "{driver} has no symmetric input transform; use `--mode key` or `--mode software`"
            ),
            Self::RandomKeyTooShort { need } => write!(f, "a {need}-byte random key is needed"),
            Self::Table(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PlanError {}

/// Plans symmetric RSS for a device.
pub fn plan(req: &PlanRequest<'_>) -> Result<Plan, PlanError> {
    let p = req.profile;
    let (key_len, reta_size) = req.device_sizes.unwrap_or((p.key_len, p.reta_size));
    let mut explanation = Vec::new();
    let software = format!(
        "symrss capture -i {} --app ids:{}:keyed",
        req.interface,
        req.queues.max(1)
    );
    let can_key = !matches!(p.set_key, KeyControl::No(_));
    let mode = match req.mode {
        Mode::Auto if can_key => Mode::Key,
        Mode::Auto if p.xfrm.0 != 0 => Mode::Xor,
        Mode::Auto => Mode::Software,
        m => m,
    };
    if let KeyControl::No(why) = p.set_key
        && req.mode != Mode::Software
    {
        explanation.push(format!("{} cannot set its RSS key: {why}", p.driver));
        if mode == Mode::Key || p.xfrm.0 == 0 {
            return Ok(software_plan(req, explanation, software));
        }
    }
    if mode == Mode::Software {
        return Ok(software_plan(req, explanation, software));
    }
    if req.queues == 0 {
        return Err(PlanError::NoQueues);
    }
    let mut queues = req.queues;
    if let Some(max) = p.max_rss_queues
        && queues > max
    {
        explanation.push(format!(
            "{} spreads RSS over at most {max} queues; planning {max}",
            p.driver
        ));
        queues = max;
    }
    if reta_size == 0 || key_len == 0 {
        let why = format!(
            "{}: this device exposes no configurable RSS (key {key_len} bytes, indirection table \
             {reta_size} entries)",
            p.driver
        );
        if req.mode == Mode::Auto {
            explanation.push(format!("{why}; planning software steering instead"));
            return Ok(software_plan(req, explanation, software));
        }
        return Err(PlanError::NoConfigurableRss {
            driver: p.driver,
            key_len,
            reta_size,
        });
    }
    if let KeyControl::Depends(cond) = p.set_key {
        explanation.push(format!(
            "{} can set its key only with {cond}; `symrss nic apply` checks and says so",
            p.driver
        ));
    }
    let (key, xfrm) = match mode {
        Mode::Key => {
            explanation.push(
                "key mode: the 0x6d5a key repeated is symmetric for IPv4/IPv6 with and without ports (KAIST, PF_RING); its hash has only 2^16 values, plenty for a RETA"
                    .into(),
            );
            if p.xfrm.0 != 0 {
                explanation.push("`xfrm none` clears the symmetric input transform (ethtool ≥ 6.8; older ethtool clears it by leaving the option out): the period-16 key with symmetric-xor would hash everything to 0".into());
            }
            (
                RssKey::repeating(symrss_hash::key::SYM_PATTERN, key_len)
                    .as_bytes()
                    .to_vec(),
                0,
            )
        }
        _ => {
            if p.xfrm.0 == 0 {
                return Err(PlanError::NoTransform { driver: p.driver });
            }
            if req.random_key.len() < key_len {
                return Err(PlanError::RandomKeyTooShort { need: key_len });
            }
            let key = req.random_key[..key_len].to_vec();
            let xfrm = if p.xfrm.0 & XFRM_SYM_XOR != 0 {
                XFRM_SYM_XOR
            } else {
                XFRM_SYM_OR_XOR
            };
            explanation.push(format!(
                "xor mode: {} with a random key (Linux ≥ {}; ethtool ≥ 6.8 prints it in `ethtool -x`)",
                xfrm_name(xfrm),
                p.xfrm.1
            ));
            (key, xfrm)
        }
    };
    let indir = symrss_hash::Reta::equal(reta_size, queues, 0)
        .map_err(PlanError::Table)?
        .entries()
        .to_vec();
    let rss = Step::Rss { key, indir, xfrm };
    let mut steps = match req.current_queues {
        Some(c) if c == queues => vec![rss],
        Some(c) if c > queues => vec![rss, Step::Channels(queues)],
        _ => vec![Step::Channels(queues), rss],
    };
    for ft in FlowType::ALL {
        let f = if ft.is_udp() {
            req.udp_fields
        } else {
            rxh::SDFN
        };
        steps.push(Step::Fields(ft, f));
    }
    if req.udp_fields == rxh::SD {
        explanation.push("UDP hashed by addresses (`sd`): fragments of a UDP flow stay on its queue; `--udp-fields sdfn` balances better but splits fragmented UDP flows".into());
    } else {
        explanation.push("UDP hashed with ports: fragmented UDP flows are split (the NIC hashes fragments by addresses); symrss capture can repair that in software".into());
    }
    if !p.note.is_empty() {
        explanation.push(format!("{}: {}", p.driver, p.note));
    }
    Ok(Plan {
        interface: req.interface.to_string(),
        mode,
        queues,
        steps,
        explanation,
        software,
        driver_has_xfrm: p.xfrm.0 != 0,
    })
}

fn software_plan(req: &PlanRequest<'_>, mut explanation: Vec<String>, software: String) -> Plan {
    explanation.push(format!(
        "software mode: leave {}'s RSS as it is and let symrss steer every flow, both directions, to one of {} queues per application (symmetric keyed hash, fragments and ICMP errors follow their flow)",
        req.interface,
        req.queues.max(1)
    ));
    if req.profile.vf {
        explanation.push("on a VF, the host can program a symmetric key on the PF instead (`symrss nic plan --driver <pf-driver>` shows the commands)".into());
    }
    Plan {
        interface: req.interface.to_string(),
        mode: Mode::Software,
        queues: req.queues.max(1),
        steps: Vec::new(),
        explanation,
        software,
        driver_has_xfrm: req.profile.xfrm.0 != 0,
    }
}

impl Plan {
    /// The `ethtool` commands that carry out the plan.
    pub fn commands(&self) -> Vec<String> {
        let i = &self.interface;
        self.steps
            .iter()
            .map(|s| match s {
                Step::Channels(n) => format!("ethtool -L {i} combined {n}"),
                Step::Rss { key, indir, xfrm } => {
                    let queues = indir.iter().max().map_or(1, |m| m + 1);
                    let x = if *xfrm != 0 || self.driver_has_xfrm {
                        format!(" xfrm {}", xfrm_name(*xfrm))
                    } else {
                        String::new()
                    };
                    format!(
                        "ethtool -X {i} hkey {} equal {queues} hfunc toeplitz{x}",
                        colon_hex(key)
                    )
                }
                Step::Fields(ft, f) => {
                    format!(
                        "ethtool -N {i} rx-flow-hash {} {}",
                        ft.name(),
                        fields_letters(*f)
                    )
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nic::*;
    use symrss_hash::analysis::check_key;

    fn request<'a>(p: &'a DriverProfile, mode: Mode, key: &'a [u8]) -> PlanRequest<'a> {
        PlanRequest {
            interface: "eth0",
            profile: p,
            device_sizes: None,
            queues: 4,
            current_queues: None,
            mode,
            udp_fields: rxh::SD,
            random_key: key,
        }
    }

    #[test]
    fn key_plans_program_a_symmetric_key_and_equal_table() {
        for p in &DRIVER_PROFILES {
            let plan = plan(&request(p, Mode::Key, &[])).unwrap();
            if let KeyControl::No(_) = p.set_key {
                assert_eq!(plan.mode, Mode::Software, "{}", p.driver);
                assert!(plan.steps.is_empty());
                assert!(plan.software.contains("symrss capture -i eth0"));
                continue;
            }
            assert_eq!(plan.mode, Mode::Key, "{}", p.driver);
            let Step::Rss { key, indir, xfrm } = &plan.steps[1] else {
                panic!()
            };
            assert_eq!(key.len(), p.key_len);
            let k = RssKey::from_bytes(key).unwrap();
            assert!(check_key(&k).symmetric_all(), "{}", p.driver);
            assert_eq!(*xfrm, 0);
            assert_eq!(indir.len(), p.reta_size);
            assert_eq!(indir.iter().max(), Some(&3));
            let cmds = plan.commands();
            assert_eq!(cmds[0], "ethtool -L eth0 combined 4");
            assert!(
                cmds[1].starts_with("ethtool -X eth0 hkey 6d:5a:6d:5a:"),
                "{}",
                cmds[1]
            );
            let tail = if p.xfrm.0 != 0 {
                " equal 4 hfunc toeplitz xfrm none"
            } else {
                " equal 4 hfunc toeplitz"
            };
            assert!(cmds[1].ends_with(tail), "{}", cmds[1]);
            assert!(cmds.contains(&"ethtool -N eth0 rx-flow-hash tcp4 sdfn".to_string()));
            assert!(cmds.contains(&"ethtool -N eth0 rx-flow-hash udp6 sd".to_string()));
            // What the plan programs, judged by the verdict, is symmetric.
            let state = RssState {
                driver: p.driver.into(),
                rx_queues: Some(4),
                rss: Ok(RssTable {
                    key: key.clone(),
                    indir: indir.clone(),
                    hfunc: HFUNC_TOEPLITZ,
                    input_xfrm: 0,
                }),
                fields: plan
                    .steps
                    .iter()
                    .filter_map(|s| match s {
                        Step::Fields(ft, f) => Some((*ft, Some(*f))),
                        _ => None,
                    })
                    .collect(),
            };
            assert_eq!(verdict(&state).symmetric, Some(true), "{}", p.driver);
        }
    }

    #[test]
    fn auto_mode_falls_back_to_xor_then_software() {
        let key: Vec<u8> = (0..52u8)
            .map(|i| i.wrapping_mul(73).wrapping_add(5))
            .collect();
        let vf = profile("ixgbevf").unwrap();
        let p = plan(&request(vf, Mode::Auto, &key)).unwrap();
        assert_eq!(p.mode, Mode::Software);
        assert!(
            p.explanation
                .iter()
                .any(|e| e.contains("cannot set its RSS key"))
        );
        // A device that exposes no table (virtio_net without RSS: key 0
        // bytes, no table): auto falls back and says why; asking for key
        // mode there is an error naming the limit.
        let bare = PlanRequest {
            device_sizes: Some((0, 0)),
            ..request(profile("virtio_net").unwrap(), Mode::Auto, &key)
        };
        let p = plan(&bare).unwrap();
        assert_eq!(p.mode, Mode::Software);
        assert!(
            p.explanation
                .iter()
                .any(|e| e.contains("exposes no configurable RSS")),
            "{:?}",
            p.explanation
        );
        let e = plan(&PlanRequest {
            mode: Mode::Key,
            ..bare
        })
        .unwrap_err();
        assert!(
            matches!(
                e,
                PlanError::NoConfigurableRss {
                    driver: "virtio_net",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("exposes no configurable RSS"), "{e}");
        let vmx = plan(&request(profile("vmxnet3").unwrap(), Mode::Xor, &key)).unwrap();
        assert_eq!(vmx.mode, Mode::Software);
        let ice = plan(&request(profile("ice").unwrap(), Mode::Xor, &key)).unwrap();
        assert_eq!(ice.mode, Mode::Xor);
        assert!(
            ice.commands()[1].ends_with("xfrm symmetric-xor"),
            "{}",
            ice.commands()[1]
        );
        let mlx = plan(&request(profile("mlx5_core").unwrap(), Mode::Xor, &key)).unwrap();
        assert!(mlx.commands()[1].ends_with("xfrm symmetric-or-xor"));
        assert!(plan(&request(profile("i40e").unwrap(), Mode::Xor, &key)).is_err());
        let shrink = plan(&PlanRequest {
            current_queues: Some(8),
            ..request(profile("ixgbe").unwrap(), Mode::Key, &key)
        })
        .unwrap();
        assert!(matches!(
            shrink.steps[..2],
            [Step::Rss { .. }, Step::Channels(4)]
        ));
        let same = plan(&PlanRequest {
            current_queues: Some(4),
            ..request(profile("ixgbe").unwrap(), Mode::Key, &key)
        })
        .unwrap();
        assert!(!same.steps.iter().any(|s| matches!(s, Step::Channels(_))));
        let ix = plan(&PlanRequest {
            queues: 32,
            ..request(profile("ixgbe").unwrap(), Mode::Key, &key)
        })
        .unwrap();
        assert_eq!(ix.queues, 16);
    }
}
