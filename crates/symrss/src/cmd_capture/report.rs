//! What a running capture reports: the live stats line, the JSON stats
//! file (`--stats-json`), the Prometheus text endpoint (`--prometheus`)
//! and the final summary in tcpdump's style followed by the per-queue
//! table.

use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use symrss_engine::balancer::AppStats;

use super::config::CaptureConfig;
use super::{Interface, WorkerRow};
use crate::Failure;
use crate::output::{FlowTableJson, Table, hot_flows_json};
use crate::rebalance_args::RebalanceJson;

pub(super) fn stats_line(started: Instant, interfaces: &[Interface], apps: &[AppStats]) -> String {
    let ifs: Vec<String> = interfaces
        .iter()
        .map(|i| {
            format!(
                "{} captured {} kernel-drops {}",
                i.name, i.captured, i.drops
            )
        })
        .collect();
    let apps: Vec<String> = apps
        .iter()
        .map(|a| {
            let per: Vec<String> = a.queues.iter().map(|q| q.delivered.to_string()).collect();
            format!(
                "{} delivered {} [{}] dropped {}",
                a.name,
                a.delivered(),
                per.join(" "),
                a.dropped()
            )
        })
        .collect();
    format!(
        "symrss: {:.0}s | {} | {}",
        started.elapsed().as_secs_f64(),
        ifs.join(", "),
        apps.join(" | ")
    )
}

fn stats_json(
    started: Instant,
    interfaces: &[Interface],
    workers: &[WorkerRow],
    apps: &[AppStats],
    captured: u64,
) -> serde_json::Value {
    let elapsed = started.elapsed().as_secs_f64();
    json!({
        "elapsed_s": elapsed,
        "captured": captured,
        "workers": workers.iter().enumerate().map(|(w, r)| json!({
            "worker": w,
            "received": r.received,
            "kernel_drops": r.drops,
            "cpu_s": r.cpu_ns as f64 / 1e9,
            "busy": if elapsed > 0.0 { r.cpu_ns as f64 / 1e9 / elapsed } else { 0.0 },
        })).collect::<Vec<_>>(),
        "interfaces": interfaces.iter().map(|i| json!({
            "name": i.name,
            "captured": i.captured,
            "received_by_filter": i.received,
            "kernel_drops": i.drops,
            "unread": i.unread(),
            "over_limit": i.over_limit,
        })).collect::<Vec<_>>(),
        "flow_table": apps.first().map(|a| FlowTableJson::from(&a.flow_table)),
        "resident_peak_bytes": symrss_sys::resident_peak_bytes(),
        "apps": apps.iter().map(|a| json!({
            "name": a.name,
            "received": a.received,
            "delivered": a.delivered(),
            "dropped": a.dropped(),
            "non_ip": a.non_ip,
            "affinity_violations": a.affinity_violations,
            "packets_untracked": a.packets_untracked,
            "rebalance": a.rebalance.as_ref().map(RebalanceJson::from),
            "queues": a.queues.iter().enumerate().map(|(k, q)| json!({
                "delivered": q.delivered,
                "bytes": q.bytes,
                "flows": q.flows,
                "hot_flows": hot_flows_json(a.hot_flows.get(k).map_or(&[][..], Vec::as_slice), q.delivered),
                "dropped": {
                    "queue_full": q.dropped_queue_full,
                    "sink_error": q.dropped_sink_error,
                    "no_reader": q.dropped_no_reader,
                },
            })).collect::<Vec<_>>(),
            "error": a.sink_error,
            "queue_errors": a.queue_errors,
            "dissect_errors": {
                "count": a.dissect_errors.count,
                "first": a.dissect_errors.first.as_ref().map(|(i, e)| json!({
                    "packet": i,
                    "error": e,
                })),
            },
        })).collect::<Vec<_>>(),
    })
}

/// One metric family's HELP and TYPE lines.
fn family(s: &mut String, name: &str, kind: &str, help: &str) {
    s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
}

/// The Prometheus text exposition (version 0.0.4) of a snapshot: every
/// family with HELP and TYPE, `_total` counters, base units, labels
/// `worker`, `interface`, `app`, `queue`, `reason`.
fn prometheus_text(interfaces: &[Interface], workers: &[WorkerRow], apps: &[AppStats]) -> String {
    let mut s = String::new();
    type Row<'a, T> = (&'a str, &'a str, &'a str, fn(&T) -> String);
    let worker_families: [Row<'_, WorkerRow>; 3] = [
        (
            "symrss_worker_received_total",
            "counter",
            "Packets a capture worker read from its sockets.",
            |r| r.received.to_string(),
        ),
        (
            "symrss_worker_kernel_drops_total",
            "counter",
            "Packets the kernel dropped before a worker read them (its rings were full).",
            |r| r.drops.to_string(),
        ),
        (
            "symrss_worker_cpu_seconds_total",
            "counter",
            "CPU time of a capture worker thread.",
            |r| (r.cpu_ns as f64 / 1e9).to_string(),
        ),
    ];
    for (name, kind, help, value) in worker_families {
        family(&mut s, name, kind, help);
        for (w, r) in workers.iter().enumerate() {
            s.push_str(&format!("{name}{{worker=\"{w}\"}} {}\n", value(r)));
        }
    }
    let interface_families: [Row<'_, Interface>; 2] = [
        (
            "symrss_interface_captured_total",
            "counter",
            "Packets captured on an interface.",
            |i| i.captured.to_string(),
        ),
        (
            "symrss_interface_kernel_drops_total",
            "counter",
            "Packets the kernel dropped on an interface before capture.",
            |i| i.drops.to_string(),
        ),
    ];
    for (name, kind, help, value) in interface_families {
        family(&mut s, name, kind, help);
        for i in interfaces {
            s.push_str(&format!(
                "{name}{{interface=\"{}\"}} {}\n",
                i.name,
                value(i)
            ));
        }
    }
    if let Some(t) = apps.first().map(|a| &a.flow_table) {
        for (name, help, v) in [
            (
                "symrss_flow_table_flows",
                "Flows in the flow table now.",
                t.flows,
            ),
            (
                "symrss_flow_table_capacity",
                "Flows the flow table may hold (--max-flows).",
                t.capacity,
            ),
            (
                "symrss_flow_table_bytes",
                "Memory of the flow table.",
                t.bytes,
            ),
        ] {
            family(&mut s, name, "gauge", help);
            s.push_str(&format!("{name} {v}\n"));
        }
    }
    family(
        &mut s,
        "symrss_app_packets_untracked_total",
        "counter",
        "Packets steered while the flow table was full (not counted in flows).",
    );
    for a in apps {
        s.push_str(&format!(
            "symrss_app_packets_untracked_total{{app=\"{}\"}} {}\n",
            a.name, a.packets_untracked
        ));
    }
    let rebalancing: Vec<_> = apps
        .iter()
        .filter_map(|a| a.rebalance.as_ref().map(|r| (a, r)))
        .collect();
    if !rebalancing.is_empty() {
        type Of = fn(&symrss_engine::rebalance::RebalanceStats) -> u64;
        let counters: [(&str, &str, Of); 3] = [
            (
                "symrss_app_rebalance_moves_total",
                "RETA buckets a rebalancing app moved.",
                |r| r.moves,
            ),
            (
                "symrss_app_rebalance_pinned_flows_total",
                "Live flows a rebalancing app kept on their queue after their bucket moved.",
                |r| r.pinned_flows,
            ),
            (
                "symrss_app_rebalance_untracked_packets_total",
                "Packets of a rebalancing app's flows the flow table had no room for (steered by bucket).",
                |r| r.untracked_packets,
            ),
        ];
        for (name, help, value) in counters {
            family(&mut s, name, "counter", help);
            for (a, r) in &rebalancing {
                s.push_str(&format!("{name}{{app=\"{}\"}} {}\n", a.name, value(r)));
            }
        }
        family(
            &mut s,
            "symrss_app_imbalance_ratio",
            "gauge",
            "Busiest queue over mean queue, summed over the closed report windows: as placed, as \
             the static table would have placed it, and the lower bound no flow-preserving \
             placement beats.",
        );
        for (a, r) in &rebalancing {
            for (table, v) in [
                ("rebalanced", r.imbalance()),
                ("static", r.static_imbalance()),
                ("lower_bound", r.bound()),
            ] {
                s.push_str(&format!(
                    "symrss_app_imbalance_ratio{{app=\"{}\",table=\"{table}\"}} {v}\n",
                    a.name
                ));
            }
        }
    }
    family(
        &mut s,
        "symrss_queue_delivered_total",
        "counter",
        "Packets an application queue's output took.",
    );
    for a in apps {
        for (q, st) in a.queues.iter().enumerate() {
            s.push_str(&format!(
                "symrss_queue_delivered_total{{app=\"{}\",queue=\"{q}\"}} {}\n",
                a.name, st.delivered
            ));
        }
    }
    family(
        &mut s,
        "symrss_queue_dropped_total",
        "counter",
        "Packets an application queue dropped, by reason.",
    );
    for a in apps {
        for (q, st) in a.queues.iter().enumerate() {
            for (reason, n) in [
                ("queue_full", st.dropped_queue_full),
                ("sink_error", st.dropped_sink_error),
                ("no_reader", st.dropped_no_reader),
            ] {
                s.push_str(&format!(
                    "symrss_queue_dropped_total{{app=\"{}\",queue=\"{q}\",reason=\"{reason}\"}} {n}\n",
                    a.name
                ));
            }
        }
    }
    s
}

/// What a stats report shows.
#[derive(Debug, Clone, Copy)]
pub(super) struct View<'a> {
    pub(super) interfaces: &'a [Interface],
    pub(super) workers: &'a [WorkerRow],
    pub(super) apps: &'a [AppStats],
    pub(super) captured: u64,
}

/// Where a stats snapshot goes: the Prometheus text, the control socket's
/// document and (when `write_file`) the `--stats-json` file.
pub(super) struct Outlets<'a> {
    pub(super) stats_file: &'a mut Option<File>,
    pub(super) metrics: &'a Mutex<String>,
    pub(super) state: &'a Mutex<String>,
}

pub(super) fn publish(
    out: Outlets<'_>,
    c: &CaptureConfig,
    started: Instant,
    view: View<'_>,
    write_file: bool,
) -> Result<(), Failure> {
    let View {
        interfaces,
        workers,
        apps,
        captured,
    } = view;
    if c.prometheus.is_some() {
        *out.metrics.lock().unwrap_or_else(|p| p.into_inner()) =
            prometheus_text(interfaces, workers, apps);
    }
    let text =
        serde_json::to_string_pretty(&stats_json(started, interfaces, workers, apps, captured))
            .map_err(|e| Failure::Runtime(e.to_string()))?;
    if let (true, Some(f), Some(path)) = (write_file, out.stats_file, &c.stats_json) {
        use std::io::Seek;
        // Rewritten in place through the handle opened before dropping
        // privileges (so `--user` needs no write access to its directory).
        f.set_len(0)
            .and_then(|()| f.rewind())
            .and_then(|()| f.write_all(format!("{text}\n").as_bytes()))
            .map_err(|e| Failure::Runtime(format!("{}: {e}", path.display())))?;
    }
    *out.state.lock().unwrap_or_else(|p| p.into_inner()) = text;
    Ok(())
}

/// Serves the latest metrics text (refreshed every second from the
/// start) to each connection (loopback only).
pub(super) fn serve_prometheus(addr: &str, metrics: Arc<Mutex<String>>) -> Result<(), Failure> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| Failure::Runtime(format!("prometheus {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    if !local.ip().is_loopback() {
        return Err(Failure::Usage(format!(
            "--prometheus must be a loopback address, not {local}"
        )));
    }
    std::thread::Builder::new()
        .name("prometheus".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let body = metrics.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let mut s = stream;
                // Read the request first: closing with unread bytes would
                // reset the connection before the client reads the answer.
                // A slow client holds up the next scrape by a second at
                // most (scrapes are answered one after another).
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
                let mut req = [0u8; 2048];
                let mut seen = 0;
                while seen < req.len() {
                    match io::Read::read(&mut s, &mut req[seen..]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen += n,
                    }
                    if req[..seen].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let _ = write!(
                    s,
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
        })
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    Ok(())
}

pub(super) fn print_summary(interfaces: &[Interface], apps: &[AppStats], captured: u64) {
    let received: u64 = interfaces.iter().map(|i| i.received).sum();
    let drops: u64 = interfaces.iter().map(|i| i.drops).sum();
    eprintln!("{captured} packets captured");
    eprintln!("{received} packets received by filter");
    eprintln!("{drops} packets dropped by kernel");
    let unread: u64 = interfaces.iter().map(Interface::unread).sum();
    if unread > 0 {
        eprintln!("{unread} packets left unread in the ring when the capture ended (dropped)");
    }
    let over: u64 = interfaces.iter().map(|i| i.over_limit).sum();
    if over > 0 {
        eprintln!("{over} packets past the --count limit, not captured");
    }
    let mut t = Table::new(&crate::output::QUEUE_COLUMNS);
    for a in apps {
        for (q, s) in a.queues.iter().enumerate() {
            t.row(vec![
                a.name.clone(),
                q.to_string(),
                s.delivered.to_string(),
                s.bytes.to_string(),
                s.flows.to_string(),
                s.dropped_queue_full.to_string(),
                s.dropped_no_reader.to_string(),
                s.dropped_sink_error.to_string(),
            ]);
        }
    }
    eprint!("{}", t.render());
    for a in apps {
        eprintln!(
            "{}: received {} = delivered {} + dropped {}; flows seen on a second queue: {}",
            a.name,
            a.received,
            a.delivered(),
            a.dropped(),
            a.affinity_violations
        );
        if let Some(r) = &a.rebalance {
            eprintln!("{}", crate::rebalance_args::summary_line(&a.name, r));
        }
    }
    if let Some(a) = apps.iter().find(|a| a.packets_untracked > 0) {
        eprintln!(
            "the flow table was full ({} flows, --max-flows): {} packet(s) of {} were steered as \
             usual but not counted in the flows nor checked for affinity",
            a.flow_table.capacity, a.packets_untracked, a.name
        );
    }
    if let Some(a) = apps.first()
        && let Some((i, e)) = &a.dissect_errors.first
    {
        eprintln!(
            "{} frame(s) could not be fully dissected (steered by the layers before the error); \
             the first: captured packet {i}: {e}",
            a.dissect_errors.count
        );
    }
}

#[cfg(test)]
mod tests {
    use symrss_engine::balancer::QueueStats;

    use super::*;

    fn sample() -> String {
        let interfaces = [Interface {
            name: "eth1".into(),
            captured: 10,
            ..Interface::default()
        }];
        let workers = [WorkerRow::default()];
        let apps = [
            AppStats {
                name: "ids".into(),
                queues: vec![QueueStats::default(); 2],
                ..AppStats::default()
            },
            AppStats {
                name: "zeek".into(),
                queues: vec![QueueStats::default(); 2],
                rebalance: Some(symrss_engine::rebalance::RebalanceStats {
                    moves: 7,
                    sum_max: 30,
                    sum_static_max: 40,
                    sum_mean: 25.0,
                    sum_bound: 26.0,
                    ..Default::default()
                }),
                ..AppStats::default()
            },
        ];
        prometheus_text(&interfaces, &workers, &apps)
    }

    /// Every family has HELP and TYPE before its samples, counters end in
    /// `_total`, and every sample line is `name{labels} value`.
    #[test]
    fn the_exposition_follows_the_prometheus_conventions() {
        let text = sample();
        let mut typed = std::collections::HashMap::new();
        let mut helped = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                helped.insert(rest.split(' ').next().unwrap().to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut p = rest.split(' ');
                let (name, kind) = (p.next().unwrap(), p.next().unwrap());
                assert!(helped.contains(name), "TYPE before HELP: {name}");
                assert_eq!(
                    kind == "counter",
                    name.ends_with("_total"),
                    "{name} is a {kind}"
                );
                typed.insert(name.to_string(), kind.to_string());
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(typed.contains_key(name), "a sample before its TYPE: {line}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        assert!(text.contains(
            "symrss_queue_dropped_total{app=\"ids\",queue=\"1\",reason=\"queue_full\"} 0"
        ));
        assert!(text.contains("symrss_interface_captured_total{interface=\"eth1\"} 10"));
        // Only the app that rebalances has rebalancing metrics.
        assert!(text.contains("symrss_app_rebalance_moves_total{app=\"zeek\"} 7"));
        assert!(text.contains("symrss_app_imbalance_ratio{app=\"zeek\",table=\"static\"} 1.6"));
        assert!(!text.contains("symrss_app_rebalance_moves_total{app=\"ids\"}"));
    }

    /// The Grafana dashboard in contrib/grafana asks only for metrics the
    /// exposition has.
    #[test]
    fn the_dashboard_uses_only_exported_metrics() {
        let dash: serde_json::Value =
            serde_json::from_str(include_str!("../../../../contrib/grafana/symrss.json")).unwrap();
        let exported = sample();
        let mut asked = 0;
        for panel in dash["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                let mut rest = expr;
                while let Some(at) = rest.find("symrss_") {
                    let name: String = rest[at..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    assert!(
                        exported.contains(&format!("# TYPE {name} ")),
                        "panel `{}` asks for {name}, which is not exported",
                        panel["title"]
                    );
                    asked += 1;
                    rest = &rest[at + name.len()..];
                }
            }
        }
        assert!(asked >= 8, "{asked}");
    }
}
