//! NIC RSS knowledge: driver profiles, a verdict on a device's RSS state
//! (is it symmetric, and why not), and plans that make it symmetric.
//!
//! Pure logic: the ethtool requests themselves are in `symrss-sys`; the
//! command line in `symrss nic`. Hash fields use the kernel's `RXH_*` bits
//! and flow types its `*_FLOW` numbers (`include/uapi/linux/ethtool.h`).
//!
//! Facts per driver come from `notes/theory.md` §5.5–5.7 and the sources
//! named in [`DRIVER_PROFILES`]; where a capability depends on firmware,
//! instance type or kernel version the profile says so, and `nic show` /
//! `nic verify` check the real device.

use symrss_hash::analysis::check_key;
use symrss_hash::{Layout, RssKey};

/// `RXH_*` hash-field bits of `ethtool_rxnfc.data`.
pub mod rxh {
    /// Destination MAC (`m`).
    pub const L2DA: u64 = 1 << 1;
    /// VLAN tag (`v`).
    pub const VLAN: u64 = 1 << 2;
    /// L3 protocol (`t`).
    pub const L3_PROTO: u64 = 1 << 3;
    /// IP source address (`s`).
    pub const IP_SRC: u64 = 1 << 4;
    /// IP destination address (`d`).
    pub const IP_DST: u64 = 1 << 5;
    /// L4 bytes 0–1, the source port (`f`).
    pub const L4_B_0_1: u64 = 1 << 6;
    /// L4 bytes 2–3, the destination port (`n`).
    pub const L4_B_2_3: u64 = 1 << 7;
    /// Discard the flow type (`r`).
    pub const DISCARD: u64 = 1 << 31;
    /// Addresses only (`sd`).
    pub const SD: u64 = IP_SRC | IP_DST;
    /// Addresses and ports (`sdfn`).
    pub const SDFN: u64 = SD | L4_B_0_1 | L4_B_2_3;
}

/// `ETH_RSS_HASH_TOP`: the Toeplitz hash function bit.
pub const HFUNC_TOEPLITZ: u8 = 1;
/// `RXH_XFRM_SYM_XOR`.
pub const XFRM_SYM_XOR: u8 = 1;
/// `RXH_XFRM_SYM_OR_XOR`.
pub const XFRM_SYM_OR_XOR: u8 = 2;

const LETTERS: [(u64, char); 8] = [
    (rxh::L2DA, 'm'),
    (rxh::VLAN, 'v'),
    (rxh::L3_PROTO, 't'),
    (rxh::IP_SRC, 's'),
    (rxh::IP_DST, 'd'),
    (rxh::L4_B_0_1, 'f'),
    (rxh::L4_B_2_3, 'n'),
    (rxh::DISCARD, 'r'),
];

/// Hash fields in ethtool's letters (`sdfn`, `sd`, ...), as
/// `ethtool -N IF rx-flow-hash FLOW LETTERS` takes them.
pub fn fields_letters(fields: u64) -> String {
    LETTERS
        .iter()
        .filter(|(bit, _)| fields & bit != 0)
        .map(|&(_, c)| c)
        .collect()
}

/// Parses ethtool's letters.
pub fn parse_fields_letters(s: &str) -> Option<u64> {
    s.chars().try_fold(0u64, |acc, c| {
        LETTERS
            .iter()
            .find(|&&(_, l)| l == c)
            .map(|&(bit, _)| acc | bit)
    })
}

/// The flow types RSS configuration covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowType {
    /// `TCP_V4_FLOW`.
    Tcp4,
    /// `UDP_V4_FLOW`.
    Udp4,
    /// `TCP_V6_FLOW`.
    Tcp6,
    /// `UDP_V6_FLOW`.
    Udp6,
}

impl FlowType {
    /// All four, in ethtool's order.
    pub const ALL: [Self; 4] = [Self::Tcp4, Self::Udp4, Self::Tcp6, Self::Udp6];

    /// The kernel's flow-type number.
    pub fn code(self) -> u32 {
        match self {
            Self::Tcp4 => 0x01,
            Self::Udp4 => 0x02,
            Self::Tcp6 => 0x05,
            Self::Udp6 => 0x06,
        }
    }

    /// ethtool's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp4 => "tcp4",
            Self::Udp4 => "udp4",
            Self::Tcp6 => "tcp6",
            Self::Udp6 => "udp6",
        }
    }

    /// IPv6?
    pub fn is_v6(self) -> bool {
        matches!(self, Self::Tcp6 | Self::Udp6)
    }

    /// UDP?
    pub fn is_udp(self) -> bool {
        matches!(self, Self::Udp4 | Self::Udp6)
    }

    /// The flow type of an IP protocol number and family, if RSS has one.
    pub fn of(proto: u8, v6: bool) -> Option<Self> {
        match (proto, v6) {
            (6, false) => Some(Self::Tcp4),
            (17, false) => Some(Self::Udp4),
            (6, true) => Some(Self::Tcp6),
            (17, true) => Some(Self::Udp6),
            _ => None,
        }
    }
}

/// Can the driver (on this function) set its own RSS key?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyControl {
    /// Yes, with `ethtool -X hkey`.
    Yes,
    /// No; the reason.
    No(&'static str),
    /// Depends on device, firmware or host; the condition.
    Depends(&'static str),
}

/// What one driver's RSS can do (defaults of a PF unless it is a VF driver).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverProfile {
    /// Driver name as `ethtool -i` prints it.
    pub driver: &'static str,
    /// Devices.
    pub devices: &'static str,
    /// RSS key bytes.
    pub key_len: usize,
    /// Indirection table entries (0: not configurable).
    pub reta_size: usize,
    /// Most RSS queues, if the hardware caps them below the channel count.
    pub max_rss_queues: Option<u32>,
    /// A virtual function's driver.
    pub vf: bool,
    /// Whether the key can be set.
    pub set_key: KeyControl,
    /// `input_xfrm` the driver offers (`XFRM_*` bits; 0 none) and since
    /// which kernel.
    pub xfrm: (u8, &'static str),
    /// Default hash fields of UDP (TCP is `sdfn` everywhere).
    pub udp_default: u64,
    /// SCTP hashed with ports by default.
    pub sctp_ports: bool,
    /// Where the facts come from.
    pub source: &'static str,
    /// Anything a user must know.
    pub note: &'static str,
}

/// Known drivers. Sources: theory.md §5.5–5.7 and the files named per
/// entry (Linux `drivers/net/ethernet/...`, DPDK `drivers/net/...`).
pub const DRIVER_PROFILES: [DriverProfile; 12] = [
    DriverProfile {
        driver: "ixgbe",
        devices: "Intel 82599, X540, X550, E610",
        key_len: 40,
        reta_size: 128,
        max_rss_queues: Some(16),
        vf: false,
        set_key: KeyControl::Yes,
        xfrm: (0, ""),
        udp_default: rxh::SD,
        sctp_ports: false,
        source: "linux ixgbe.h IXGBE_MAX_RSS_INDICES, ixgbe_ethtool.c; DPDK ixgbe_ethdev.c ixgbe_reta_size_get (X550: 512 entries)",
        note: "ixgbe_ethtool.c warns that UDP 4-tuple hashing may reorder fragmented UDP",
    },
    DriverProfile {
        driver: "ixgbevf",
        devices: "Intel 82599/X540/X550 virtual function",
        key_len: 40,
        reta_size: 64,
        max_rss_queues: Some(4),
        vf: true,
        set_key: KeyControl::No(
            "82599/X540 VFs share the PF's key and RETA (DPDK intel_vf.rst: reta_size 0); X550 VFs can only read theirs",
        ),
        xfrm: (0, ""),
        udp_default: rxh::SD,
        sctp_ports: false,
        source: "DPDK doc/guides/nics/intel_vf.rst; linux ixgbevf_ethtool.c (get_rxfh only)",
        note: "program the symmetric key on the PF (host), or steer in software",
    },
    DriverProfile {
        driver: "igb",
        devices: "Intel 82575/82576/I350/I210",
        key_len: 40,
        reta_size: 128,
        max_rss_queues: Some(8),
        vf: false,
        set_key: KeyControl::Yes,
        xfrm: (0, ""),
        udp_default: rxh::SD,
        sctp_ports: false,
        source: "linux igb_ethtool.c; DPDK e1000/igb_ethdev.c",
        note: "",
    },
    DriverProfile {
        driver: "igc",
        devices: "Intel I225/I226",
        key_len: 40,
        reta_size: 128,
        max_rss_queues: Some(4),
        vf: false,
        set_key: KeyControl::Yes,
        xfrm: (0, ""),
        udp_default: rxh::SD,
        sctp_ports: false,
        source: "linux igc_ethtool.c; DPDK igc_ethdev.c",
        note: "",
    },
    DriverProfile {
        driver: "i40e",
        devices: "Intel X710/XL710/XXV710 (700 series)",
        key_len: 52,
        reta_size: 512,
        max_rss_queues: None,
        vf: false,
        set_key: KeyControl::Yes,
        xfrm: (0, ""),
        udp_default: rxh::SDFN,
        sctp_ports: true,
        source: "DPDK i40e_ethdev.c; linux i40e_ethtool.c",
        note: "no symmetric-xor in the Linux driver (DPDK offers symmetric Toeplitz through rte_flow)",
    },
    DriverProfile {
        driver: "iavf",
        devices: "Intel adaptive virtual function (on i40e or ice PFs)",
        key_len: 52,
        reta_size: 64,
        max_rss_queues: Some(16),
        vf: true,
        set_key: KeyControl::Depends("allowed by the PF driver (i40e, ice)"),
        xfrm: (XFRM_SYM_XOR, "6.8, and only on an ice PF (ADV RSS offload)"),
        udp_default: rxh::SDFN,
        sctp_ports: true,
        source: "linux iavf_ethtool.c; theory.md §5.1/§5.6",
        note: "symmetric-xor is not available on an i40e PF",
    },
    DriverProfile {
        driver: "ice",
        devices: "Intel E810 (800 series)",
        key_len: 52,
        reta_size: 512,
        max_rss_queues: None,
        vf: false,
        set_key: KeyControl::Yes,
        xfrm: (XFRM_SYM_XOR, "6.8"),
        udp_default: rxh::SDFN,
        sctp_ports: true,
        source: "linux ice_ethtool.c; DPDK ice/base/ice_adminq_cmd.h (RETA 128/512/2048)",
        note: "a 2026 patch series reports ice_set_rxfh() ignoring input_xfrm on some kernels: run `symrss nic verify`",
    },
    DriverProfile {
        driver: "mlx5_core",
        devices: "NVIDIA ConnectX-4 and later (PF and VF)",
        key_len: 40,
        reta_size: 256,
        max_rss_queues: None,
        vf: false,
        set_key: KeyControl::Yes,
        xfrm: (
            XFRM_SYM_OR_XOR,
            "6.15 (exposes the hardware's symmetric mode)",
        ),
        udp_default: rxh::SDFN,
        sctp_ports: false,
        source: "linux mlx5/core/en/rqt.h, en_ethtool.c; theory.md §5.1",
        note: "RETA grows with the channel count",
    },
    DriverProfile {
        driver: "virtio_net",
        devices: "virtio-net (KVM/QEMU, many clouds)",
        key_len: 40,
        reta_size: 128,
        max_rss_queues: None,
        vf: false,
        set_key: KeyControl::Depends(
            "the device offering VIRTIO_NET_F_RSS (QEMU `rss=on`); most cloud vNICs do not",
        ),
        xfrm: (0, ""),
        udp_default: rxh::SD,
        sctp_ports: false,
        source: "linux virtio_net.c virtnet_set_rxfh; virtio spec 5.1.6.5.7",
        note: "",
    },
    DriverProfile {
        driver: "ena",
        devices: "AWS Elastic Network Adapter",
        key_len: 40,
        reta_size: 128,
        max_rss_queues: None,
        vf: false,
        set_key: KeyControl::Depends("the instance's ENA device generation"),
        xfrm: (0, ""),
        udp_default: rxh::SDFN,
        sctp_ports: false,
        source: "linux amazon/ena/ena_ethtool.c ena_set_rxfh",
        note: "",
    },
    DriverProfile {
        driver: "vmxnet3",
        devices: "VMware vmxnet3",
        key_len: 40,
        reta_size: 128,
        max_rss_queues: None,
        vf: false,
        set_key: KeyControl::No(
            "vmxnet3_set_rss() refuses key changes; the hypervisor owns the key",
        ),
        xfrm: (0, ""),
        udp_default: rxh::SD,
        sctp_ports: false,
        source: "linux vmxnet3_ethtool.c",
        note: "",
    },
    DriverProfile {
        driver: "bnxt_en",
        devices: "Broadcom NetXtreme-C/E",
        key_len: 40,
        reta_size: 128,
        max_rss_queues: None,
        vf: false,
        set_key: KeyControl::Yes,
        xfrm: (0, ""),
        udp_default: rxh::SDFN,
        sctp_ports: false,
        source: "linux bnxt_ethtool.c bnxt_set_rxfh; DPDK bnxt (rejects symmetric Toeplitz)",
        note: "RETA size depends on the chip and RSS contexts",
    },
];

/// The profile of a driver.
pub fn profile(driver: &str) -> Option<&'static DriverProfile> {
    DRIVER_PROFILES.iter().find(|p| p.driver == driver)
}

/// What `nic show` read from a device.
#[derive(Clone, Debug)]
pub struct RssState {
    /// Driver name.
    pub driver: String,
    /// Receive queues (combined + RX-only channels), if known.
    pub rx_queues: Option<u32>,
    /// RSS key, table, hash function and transform; `Err` with why not.
    pub rss: Result<RssTable, String>,
    /// Hash fields per flow type (`None`: unreadable).
    pub fields: Vec<(FlowType, Option<u64>)>,
}

/// Key, table, function and transform of a device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RssTable {
    /// Key bytes.
    pub key: Vec<u8>,
    /// Indirection table.
    pub indir: Vec<u32>,
    /// Hash function bits (0: not reported).
    pub hfunc: u8,
    /// Input transform bits.
    pub input_xfrm: u8,
}

/// The verdict for one flow type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowVerdict {
    /// Flow type.
    pub flow_type: FlowType,
    /// Hash fields in ethtool letters (as read, or the assumed default).
    pub fields: String,
    /// Symmetric (`None`: cannot tell).
    pub symmetric: Option<bool>,
    /// Why, in order of importance.
    pub reasons: Vec<String>,
}

/// The verdict on a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Every flow type symmetric (`None`: cannot tell).
    pub symmetric: Option<bool>,
    /// One line.
    pub summary: String,
    /// Per flow type (empty when RSS could not be read).
    pub flow_types: Vec<FlowVerdict>,
    /// Device-wide remarks (key entropy, RETA coverage).
    pub notes: Vec<String>,
}

fn endpoints(t: &symrss_hash::Tuple) -> String {
    let ep = |ip: std::net::IpAddr, port: Option<u16>| match (ip, port) {
        (std::net::IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
        (a, Some(p)) => format!("{a}:{p}"),
        (a, None) => a.to_string(),
    };
    let (sp, dp) = t.ports().map_or((None, None), |(s, d)| (Some(s), Some(d)));
    format!("{} → {}", ep(t.src_ip(), sp), ep(t.dst_ip(), dp))
}

/// Judges a device's RSS state with the exact Toeplitz analysis.
pub fn verdict(state: &RssState) -> Verdict {
    let table = match &state.rss {
        Ok(t) => t,
        Err(why) => {
            return Verdict {
                symmetric: None,
                summary: format!(
                    "RSS not supported by {} ({why}): the device has no key or indirection table to program; steer in software (`symrss capture`)",
                    if state.driver.is_empty() {
                        "this device"
                    } else {
                        &state.driver
                    }
                ),
                flow_types: Vec::new(),
                notes: Vec::new(),
            };
        }
    };
    let mut notes = Vec::new();
    let key = RssKey::from_bytes(&table.key).ok();
    let check = key.as_ref().map(check_key);
    let period = key.as_ref().and_then(|k| k.period16_pattern());
    if let Some(p) = period {
        notes.push(format!(
            "period-16 key (0x{p:04x} repeated): symmetric without a transform, but the hash takes only 2^16 values and colliding flows are easy to construct"
        ));
    }
    if !table.indir.is_empty() {
        let mut used: Vec<u32> = table.indir.clone();
        used.sort_unstable();
        used.dedup();
        if let Some(n) = state.rx_queues
            && (used.len() as u32) < n
        {
            notes.push(format!(
                "the indirection table uses {} of {n} receive queues",
                used.len()
            ));
        }
    }
    let flow_types = state
        .fields
        .iter()
        .map(|&(ft, fields)| {
            let mut reasons = Vec::new();
            let fields = fields.unwrap_or_else(|| {
                let assumed = if ft.is_udp() {
                    profile(&state.driver).map_or(rxh::SDFN, |p| p.udp_default)
                } else {
                    rxh::SDFN
                };
                reasons.push(format!(
                    "hash fields unreadable; assuming the driver default `{}`",
                    fields_letters(assumed)
                ));
                assumed
            });
            let symmetric = judge_flow_type(
                ft,
                fields,
                table,
                key.as_ref(),
                check.as_ref(),
                &mut reasons,
            );
            FlowVerdict {
                flow_type: ft,
                fields: fields_letters(fields),
                symmetric,
                reasons,
            }
        })
        .collect::<Vec<_>>();
    let symmetric = if flow_types.iter().any(|f| f.symmetric == Some(false)) {
        Some(false)
    } else if flow_types.iter().all(|f| f.symmetric == Some(true)) && !flow_types.is_empty() {
        Some(true)
    } else {
        None
    };
    let summary = match symmetric {
        Some(true) => "symmetric: both directions of every TCP/UDP flow hash alike".to_string(),
        Some(false) => {
            let broken: Vec<&str> = flow_types
                .iter()
                .filter(|f| f.symmetric == Some(false))
                .map(|f| f.flow_type.name())
                .collect();
            format!(
                "NOT symmetric for {}: the two directions of a flow can reach different queues (`symrss nic plan` shows the fix)",
                broken.join(", ")
            )
        }
        None => "cannot tell from the configuration: run `symrss nic verify` on live traffic"
            .to_string(),
    };
    Verdict {
        symmetric,
        summary,
        flow_types,
        notes,
    }
}

fn judge_flow_type(
    ft: FlowType,
    fields: u64,
    table: &RssTable,
    key: Option<&RssKey>,
    check: Option<&symrss_hash::analysis::KeyCheck>,
    reasons: &mut Vec<String>,
) -> Option<bool> {
    if fields & rxh::DISCARD != 0 {
        reasons.push("this flow type is discarded by the NIC (`r`)".into());
        return Some(true);
    }
    if table.hfunc != 0 && table.hfunc & HFUNC_TOEPLITZ == 0 {
        reasons.push(format!(
            "hash function bits 0x{:x} are not Toeplitz: symrss cannot predict them",
            table.hfunc
        ));
        return None;
    }
    if fields & rxh::L2DA != 0 {
        reasons
            .push("destination MAC (`m`) is hashed: it differs between the two directions".into());
        return Some(false);
    }
    let pairs = [
        (rxh::IP_SRC, rxh::IP_DST, "addresses (`s`/`d`)"),
        (rxh::L4_B_0_1, rxh::L4_B_2_3, "ports (`f`/`n`)"),
    ];
    for (a, b, what) in pairs {
        if (fields & a == 0) != (fields & b == 0) {
            reasons.push(format!(
                "only one of the {what} is hashed: a direction-dependent field"
            ));
            return Some(false);
        }
    }
    let ports = fields & rxh::L4_B_0_1 != 0;
    let layout = match (ft.is_v6(), ports) {
        (false, true) => Layout::Tcp4,
        (false, false) => Layout::Ip4,
        (true, true) => Layout::Tcp6,
        (true, false) => Layout::Ip6,
    };
    let symmetric = if table.input_xfrm & (XFRM_SYM_XOR | XFRM_SYM_OR_XOR) != 0 {
        let name = if table.input_xfrm & XFRM_SYM_XOR != 0 {
            "symmetric-xor"
        } else {
            "symmetric-or-xor"
        };
        reasons.push(format!("{name} input transform: symmetric for any key"));
        if key.and_then(|k| k.period16_pattern()).is_some() {
            if table.input_xfrm & XFRM_SYM_XOR != 0 {
                reasons.push(
                    "period-16 key with symmetric-xor: every packet hashes to 0, so all traffic lands on one queue — use a random key with xor, or the period-16 key without it".into(),
                );
            } else {
                reasons.push("period-16 key with symmetric-or-xor: only S AND D (and sp AND dp) reach the hash — use a random key".into());
            }
        }
        true
    } else {
        let Some(check) = check else {
            reasons.push("the key could not be read".into());
            return None;
        };
        let l = check.layout(layout);
        if !l.key_covers {
            reasons.push(format!(
                "the {}-byte key is too short for {}",
                table.key.len(),
                layout.name()
            ));
            return None;
        }
        if !l.symmetric {
            let ce = l.counterexample.as_ref().map_or(String::new(), |c| {
                format!(
                    " (e.g. {} hashes 0x{:08x}, its reverse 0x{:08x})",
                    endpoints(&c.tuple),
                    c.hash,
                    c.reverse_hash
                )
            });
            reasons.push(format!(
                "the key is not symmetric for {}{ce}",
                layout.name()
            ));
            return Some(false);
        }
        reasons.push(format!("the key is symmetric for {}", layout.name()));
        true
    };
    if ports {
        reasons.push(
            "ports are hashed: NICs hash IP fragments by addresses only, so a fragmented flow's fragments can reach another queue than its other packets (hash `sd`, or let symrss track fragments in software)".into(),
        );
    } else {
        reasons.push("addresses only: every flow between two hosts shares one queue (fragments stay with their flow)".into());
    }
    Some(symmetric)
}

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

/// Why a plan cannot be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError(pub String);

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
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
        return Err(PlanError("--queues must be at least 1".into()));
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
    if reta_size == 0 {
        return Err(PlanError(format!(
            "{}: the indirection table is not configurable here; use `--mode software`",
            p.driver
        )));
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
                return Err(PlanError(format!(
                    "{} has no symmetric input transform; use `--mode key` or `--mode software`",
                    p.driver
                )));
            }
            if req.random_key.len() < key_len {
                return Err(PlanError(format!("a {key_len}-byte random key is needed")));
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
        .map_err(|e| PlanError(e.to_string()))?
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

/// ethtool's name of an input transform.
pub fn xfrm_name(xfrm: u8) -> &'static str {
    match xfrm {
        0 => "none",
        XFRM_SYM_XOR => "symmetric-xor",
        XFRM_SYM_OR_XOR => "symmetric-or-xor",
        _ => "unknown",
    }
}

/// `aa:bb:...` as ethtool prints and takes keys.
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
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
    fn field_letters_round_trip() {
        assert_eq!(fields_letters(rxh::SDFN), "sdfn");
        assert_eq!(parse_fields_letters("sd"), Some(rxh::SD));
        assert_eq!(parse_fields_letters("sx"), None);
        for bits in 0u64..256 {
            let data = (bits << 1) & 0xfe;
            assert_eq!(parse_fields_letters(&fields_letters(data)), Some(data));
        }
    }

    #[test]
    fn every_profile_matches_the_documented_facts() {
        // theory.md §5.5: key lengths and PF RETA sizes.
        let facts = [
            ("ixgbe", 40, 128),
            ("igb", 40, 128),
            ("igc", 40, 128),
            ("i40e", 52, 512),
            ("ice", 52, 512),
            ("mlx5_core", 40, 256),
            ("iavf", 52, 64),
        ];
        for (d, k, r) in facts {
            let p = profile(d).unwrap();
            assert_eq!((p.key_len, p.reta_size), (k, r), "{d}");
        }
        assert_eq!(profile("ixgbe").unwrap().max_rss_queues, Some(16));
        // §5.6: 82599/X540 VFs cannot set a key; §5.1: xor on ice/iavf,
        // or-xor on mlx5, none on i40e.
        assert!(matches!(
            profile("ixgbevf").unwrap().set_key,
            KeyControl::No(_)
        ));
        assert_eq!(profile("ice").unwrap().xfrm.0, XFRM_SYM_XOR);
        assert_eq!(profile("iavf").unwrap().xfrm.0, XFRM_SYM_XOR);
        assert_eq!(profile("mlx5_core").unwrap().xfrm.0, XFRM_SYM_OR_XOR);
        assert_eq!(profile("i40e").unwrap().xfrm.0, 0);
        // §5.7: the igb/igc/ixgbe family keeps UDP at 2-tuple.
        for d in ["ixgbe", "igb", "igc"] {
            assert_eq!(profile(d).unwrap().udp_default, rxh::SD, "{d}");
        }
        let names: Vec<&str> = DRIVER_PROFILES.iter().map(|p| p.driver).collect();
        for d in [
            "ixgbe",
            "ixgbevf",
            "i40e",
            "iavf",
            "ice",
            "mlx5_core",
            "virtio_net",
            "ena",
            "vmxnet3",
            "bnxt_en",
            "igb",
            "igc",
        ] {
            assert!(names.contains(&d), "{d}");
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

    #[test]
    fn verdicts_explain_what_breaks_symmetry() {
        let fields = |f: u64| {
            FlowType::ALL
                .iter()
                .map(|&ft| (ft, Some(f)))
                .collect::<Vec<_>>()
        };
        let state = |key: Vec<u8>, xfrm: u8, f: u64| RssState {
            driver: "ice".into(),
            rx_queues: Some(4),
            rss: Ok(RssTable {
                key,
                indir: (0..512).map(|i| i % 4).collect(),
                hfunc: HFUNC_TOEPLITZ,
                input_xfrm: xfrm,
            }),
            fields: fields(f),
        };
        let ms = RssKey::microsoft(52).as_bytes().to_vec();
        let sym = RssKey::repeating(0x6d5a, 52).as_bytes().to_vec();
        let v = verdict(&state(ms.clone(), 0, rxh::SDFN));
        assert_eq!(v.symmetric, Some(false));
        assert!(
            v.flow_types[0].reasons[0].contains("not symmetric for tcp4"),
            "{:?}",
            v.flow_types[0]
        );
        assert!(v.summary.contains("NOT symmetric"));
        let v = verdict(&state(ms, XFRM_SYM_XOR, rxh::SDFN));
        assert_eq!(v.symmetric, Some(true));
        let v = verdict(&state(sym.clone(), XFRM_SYM_XOR, rxh::SDFN));
        assert!(
            v.flow_types[0]
                .reasons
                .iter()
                .any(|r| r.contains("hashes to 0"))
        );
        let v = verdict(&state(sym.clone(), 0, rxh::SD));
        assert_eq!(v.symmetric, Some(true));
        assert!(v.notes.iter().any(|n| n.contains("period-16")));
        assert!(
            v.flow_types[1]
                .reasons
                .iter()
                .any(|r| r.contains("addresses only"))
        );
        let v = verdict(&state(sym.clone(), 0, rxh::SD | rxh::L4_B_0_1));
        assert_eq!(v.symmetric, Some(false));
        let v = verdict(&state(sym, 0, rxh::SDFN | rxh::L2DA));
        assert_eq!(v.symmetric, Some(false));
        let none = verdict(&RssState {
            driver: "veth".into(),
            rx_queues: Some(1),
            rss: Err("ETHTOOL_GRSSH: not supported".into()),
            fields: Vec::new(),
        });
        assert_eq!(none.symmetric, None);
        assert!(none.summary.contains("RSS not supported by veth"));
    }
}
