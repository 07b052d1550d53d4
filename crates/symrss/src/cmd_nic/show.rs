//! `symrss nic show`: a device's driver, channels and RSS state, and the
//! verdict on whether its hashing is symmetric, for people or as JSON.

use std::process::ExitCode;

use serde_json::json;
use symrss_engine::nic::{self, colon_hex, fields_letters, xfrm_name};

use crate::Failure;
use crate::output::{Table, print_json};

use super::{
    ShowArgs, dash, describe_indir, hfunc_name, print_verdict_details, read_device, verdict_json,
};

pub(super) fn show(a: &ShowArgs) -> Result<ExitCode, Failure> {
    let d = read_device(&a.interface)?;
    let v = nic::verdict(&d.state);
    if a.json {
        let info = d.info.as_ref().ok();
        let ch = d.channels.as_ref().ok();
        print_json(&json!({
            "interface": a.interface,
            "driver": info.map(|i| i.driver.clone()),
            "driver_version": info.map(|i| i.version.clone()),
            "firmware": info.map(|i| i.firmware.clone()),
            "bus": info.map(|i| i.bus.clone()),
            "channels": ch.map(|c| json!({
                "max_rx": c.max_rx, "max_tx": c.max_tx, "max_other": c.max_other, "max_combined": c.max_combined,
                "rx": c.rx_count, "tx": c.tx_count, "other": c.other_count, "combined": c.combined_count,
            })),
            "rx_queues": d.state.rx_queues,
            "rss": match &d.state.rss {
                Ok(t) => json!({
                    "supported": true,
                    "key_hex": colon_hex(&t.key),
                    "key_length": t.key.len(),
                    "indir": t.indir,
                    "hfunc": hfunc_name(t.hfunc),
                    "input_xfrm": xfrm_name(t.input_xfrm),
                }),
                Err(e) => json!({"supported": false, "error": e}),
            },
            "flow_hash": d.state.fields.iter().map(|(ft, f)| json!({
                "flow_type": ft.name(),
                "fields": f.map(fields_letters),
            })).collect::<Vec<_>>(),
            "verdict": verdict_json(&v),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&["", ""]);
    match &d.info {
        Ok(i) => t.row(vec![
            "driver".into(),
            format!(
                "{} {} (firmware {}, bus {})",
                i.driver,
                i.version,
                dash(&i.firmware),
                dash(&i.bus)
            ),
        ]),
        Err(e) => t.row(vec!["driver".into(), format!("unknown ({})", e.reason())]),
    }
    match &d.channels {
        Ok(c) => t.row(vec![
            "channels".into(),
            format!(
                "combined {} of {}, rx {} of {}, tx {} of {}",
                c.combined_count, c.max_combined, c.rx_count, c.max_rx, c.tx_count, c.max_tx
            ),
        ]),
        Err(e) => t.row(vec!["channels".into(), e.reason()]),
    }
    if let Some(n) = d.state.rx_queues {
        t.row(vec!["rx queues".into(), n.to_string()]);
    }
    rss_rows(&mut t, &d.state);
    println!("{}: {}", a.interface, v.summary);
    print!(
        "{}",
        t.render()
            .lines()
            .skip(2)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    print_verdict_details(&v);
    Ok(ExitCode::SUCCESS)
}

/// The RSS rows of the table: key, hash function and transform,
/// indirection table, per-flow-type hash fields — saying plainly what the
/// device does not expose (a one-queue virtio_net reports a 0-byte key
/// and no table).
fn rss_rows(t: &mut Table, state: &nic::RssState) {
    match &state.rss {
        Ok(r) => {
            t.row(vec![
                "rss key".into(),
                if r.key.is_empty() {
                    "not exposed: the driver reports no key (it cannot be read or set here)".into()
                } else {
                    format!("{} ({} bytes)", colon_hex(&r.key), r.key.len())
                },
            ]);
            let hash = format!(
                "{}, input transform {}",
                hfunc_name(r.hfunc),
                xfrm_name(r.input_xfrm)
            );
            t.row(vec![
                "hash".into(),
                if r.key.is_empty() && r.indir.is_empty() {
                    format!("{hash} as the driver reports it; with no key or table exposed, nothing can be checked or changed")
                } else {
                    hash
                },
            ]);
            t.row(vec![
                "indirection".into(),
                if r.indir.is_empty() {
                    "not exposed: the driver reports no table (queues are chosen by the driver or host)".into()
                } else {
                    describe_indir(&r.indir)
                },
            ]);
        }
        Err(e) => t.row(vec!["rss".into(), format!("not available: {e}")]),
    }
    let fields: Vec<String> = state
        .fields
        .iter()
        .map(|(ft, f)| {
            let letters = f.map(fields_letters).filter(|l| !l.is_empty());
            format!(
                "{} {}",
                ft.name(),
                letters.unwrap_or_else(|| "not reported".into())
            )
        })
        .collect();
    t.row(vec!["flow hash".into(), fields.join("  ")]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_that_exposes_nothing_is_described_plainly() {
        let state = nic::RssState {
            driver: "virtio_net".into(),
            rx_queues: Some(1),
            rss: Ok(nic::RssTable {
                key: Vec::new(),
                indir: Vec::new(),
                hfunc: 1,
                input_xfrm: 0,
            }),
            fields: nic::FlowType::ALL.iter().map(|&ft| (ft, None)).collect(),
        };
        let mut t = Table::new(&["", ""]);
        rss_rows(&mut t, &state);
        let text = t.render();
        assert!(text.contains("rss key      not exposed"), "{text}");
        assert!(text.contains("nothing can be checked or changed"), "{text}");
        assert!(text.contains("indirection  not exposed"), "{text}");
        assert!(text.contains("tcp4 not reported"), "{text}");
        assert!(
            !text.contains("(0 bytes)") && !text.contains("()"),
            "{text}"
        );
    }
}
