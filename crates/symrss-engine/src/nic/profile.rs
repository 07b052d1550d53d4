//! What symrss knows per driver: key and table sizes, whether the key can
//! be set, which transforms and hash fields the hardware offers, with the
//! sources of each fact.

use super::fields::{XFRM_SYM_OR_XOR, XFRM_SYM_XOR, rxh};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
