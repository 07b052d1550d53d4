//! A device's RSS state and the verdict on it: is its hashing symmetric
//! for each flow type, and if not, what breaks it.

use symrss_hash::analysis::check_key;
use symrss_hash::{Layout, RssKey};

use super::fields::{FlowType, HFUNC_TOEPLITZ, XFRM_SYM_OR_XOR, XFRM_SYM_XOR, fields_letters, rxh};
use super::profile::profile;

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

#[cfg(test)]
mod tests {
    use super::*;

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
