//! The rebalancing options `split`, `analyze` and `capture` share, and
//! how a rebalancing app's result reads in their JSON
//! (`symrss_engine::rebalance`).

use clap::Args;
use serde::Serialize;
use symrss_engine::Policy;
use symrss_engine::rebalance::{RebalanceConfig, RebalanceStats, WindowLoad};

/// Tuning of `--rebalance` (the defaults are what BENCHMARKS.md measured).
#[derive(Debug, Args, Clone)]
pub struct RebalanceArgs {
    /// Milliseconds of packet time between two rebalancing decisions.
    #[arg(long, default_value_t = RebalanceConfig::default().tick_ns / 1_000_000, value_parser = clap::value_parser!(u64).range(1..=60_000),
          help_heading = "Rebalancing")]
    pub rebalance_tick_ms: u64,
    /// Milliseconds of packet time over which each queue's load is measured.
    #[arg(long, default_value_t = RebalanceConfig::default().horizon_ns / 1_000_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000),
          help_heading = "Rebalancing")]
    pub rebalance_horizon_ms: u64,
    /// Buckets move only while the queues carry at least this many packets
    /// per second each on average (0: at any load).
    #[arg(long, default_value_t = RebalanceConfig::default().min_rate, help_heading = "Rebalancing")]
    pub rebalance_min_rate: u32,
    /// Milliseconds of packet time per window of the imbalance report.
    #[arg(long, default_value_t = RebalanceConfig::default().window_ns / 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000),
          help_heading = "Rebalancing")]
    pub rebalance_window_ms: u64,
}

impl RebalanceArgs {
    /// The engine's settings; a flow idle `idle_ns` of packet time (the
    /// flow table's `--flow-idle-s`) starts anew.
    pub fn config(&self, idle_ns: u64) -> RebalanceConfig {
        config_ms(
            self.rebalance_tick_ms,
            self.rebalance_horizon_ms,
            self.rebalance_min_rate,
            self.rebalance_window_ms,
            idle_ns,
        )
    }
}

/// The engine's settings from the front ends' units (milliseconds of
/// packet time, at least 1; packets per second), the others the engine's
/// defaults: what `--rebalance-*` and a capture's `[rebalance]` give.
pub fn config_ms(
    tick_ms: u64,
    horizon_ms: u64,
    min_rate: u32,
    window_ms: u64,
    idle_ns: u64,
) -> RebalanceConfig {
    RebalanceConfig {
        tick_ns: tick_ms.max(1) * 1_000_000,
        horizon_ns: horizon_ms.max(1) * 1_000_000,
        min_rate,
        window_ns: window_ms.max(1) * 1_000_000,
        idle_ns,
        ..RebalanceConfig::default()
    }
}

/// `policy` rebalanced by `cfg`, or why not: a NIC profile models hardware,
/// which cannot keep a live flow on its queue when its RETA entry moves
/// (`symrss nic` plans those tables).
pub fn rebalance(policy: Policy, cfg: RebalanceConfig) -> Result<Policy, String> {
    if policy.is_nic() {
        return Err(format!(
            "`{}` models a NIC, whose RETA cannot keep live flows where they are: rebalancing is \
             for software schemes (sym, keyed, ...)",
            policy.name()
        ));
    }
    Ok(policy.with_rebalance(cfg))
}

/// Splits a trailing `:rebalance` off an app's scheme (`NAME:Q:SCHEME:rebalance`,
/// or `NAME:Q:rebalance` for the default scheme).
pub fn split_flag(scheme: &str) -> (String, bool) {
    match scheme.strip_suffix("rebalance") {
        Some("") => ("sym".into(), true),
        Some(rest) if rest.ends_with(':') => (rest.trim_end_matches(':').to_string(), true),
        _ => (scheme.to_string(), false),
    }
}

/// What rebalancing did for one app, in `split`'s summary, `analyze`'s
/// JSON and `capture`'s stats.
#[derive(Serialize, Debug)]
pub struct RebalanceJson {
    /// Buckets of the app's table.
    pub buckets: u32,
    /// Buckets moved.
    pub moves: u64,
    /// Moves not made: the bucket held a flow the flow table had no
    /// room for.
    pub moves_refused: u64,
    /// Flows that stayed on their queue after their bucket moved.
    pub pinned_flows: u64,
    pub pinned_packets: u64,
    /// Packets of flows the flow table had no room for (steered by bucket).
    pub untracked_packets: u64,
    /// Report windows (with packets) and their length.
    pub windows: u64,
    pub window_ms: f64,
    /// Σ busiest queue / Σ mean queue over the windows, as placed.
    pub imbalance: f64,
    /// The same had the table stayed as built.
    pub static_imbalance: f64,
    /// Σ max(mean, largest flow) / Σ mean: what no placement that keeps
    /// flows whole can beat.
    pub lower_bound: f64,
    /// Windows whose busiest queue carried more than the static table's.
    pub windows_worse_than_static: u64,
    /// The settings (`analyze`/`split` with the same ones reproduce the
    /// placement).
    pub tick_ms: f64,
    pub horizon_ms: f64,
    pub min_rate: u32,
    pub max_share: f64,
    pub flow_idle_s: f64,
}

impl From<&RebalanceStats> for RebalanceJson {
    fn from(r: &RebalanceStats) -> Self {
        Self {
            buckets: r.buckets,
            moves: r.moves,
            moves_refused: r.moves_refused,
            pinned_flows: r.pinned_flows,
            pinned_packets: r.pinned_packets,
            untracked_packets: r.untracked_packets,
            windows: r.windows,
            window_ms: r.config.window_ns as f64 / 1e6,
            imbalance: r.imbalance(),
            static_imbalance: r.static_imbalance(),
            lower_bound: r.bound(),
            windows_worse_than_static: r.windows_worse_than_static,
            tick_ms: r.config.tick_ns as f64 / 1e6,
            horizon_ms: r.config.horizon_ns as f64 / 1e6,
            min_rate: r.config.min_rate,
            max_share: r.config.max_share,
            flow_idle_s: r.config.idle_ns as f64 / 1e9,
        }
    }
}

/// One report window in `analyze --json --rebalance`.
#[derive(Serialize, Debug)]
pub struct WindowJson {
    pub start_ns: i128,
    pub queues: Vec<u64>,
    pub static_queues: Vec<u64>,
    pub largest_flow: u64,
}

impl From<&WindowLoad> for WindowJson {
    fn from(w: &WindowLoad) -> Self {
        Self {
            start_ns: w.start_ns,
            queues: w.queues.clone(),
            static_queues: w.static_queues.clone(),
            largest_flow: w.largest_flow,
        }
    }
}

/// One line for people: moves, pins, and the imbalance against static and
/// the bound.
pub fn summary_line(name: &str, r: &RebalanceStats) -> String {
    format!(
        "{name}: rebalanced with {} bucket moves, {} live flows kept on their queue; imbalance \
         {:.3} (static table {:.3}, no flow-preserving placement below {:.3}) over {} windows of \
         {} ms{}",
        r.moves,
        r.pinned_flows,
        r.imbalance(),
        r.static_imbalance(),
        r.bound(),
        r.windows,
        r.config.window_ns / 1_000_000,
        if r.moves_refused > 0 || r.untracked_packets > 0 {
            format!(
                "; flow table full: {} packets steered by bucket, {} moves refused \
                 (--max-flows)",
                r.untracked_packets, r.moves_refused
            )
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rebalance_flag_is_split_off_an_apps_scheme() {
        assert_eq!(split_flag("keyed:rebalance"), ("keyed".into(), true));
        assert_eq!(split_flag("rebalance"), ("sym".into(), true));
        assert_eq!(
            split_flag("toeplitz:key=6d5a,fields=l4:rebalance"),
            ("toeplitz:key=6d5a,fields=l4".into(), true)
        );
        assert_eq!(split_flag("keyed"), ("keyed".into(), false));
        assert_eq!(split_flag("xrebalance"), ("xrebalance".into(), false));
    }

    #[test]
    fn nic_profiles_are_not_rebalanced() {
        let p = Policy::parse("nic:ixgbe", symrss_engine::HashLayer::Outer, 0).unwrap();
        assert!(rebalance(p, RebalanceConfig::default()).is_err());
        let p = Policy::parse("sym", symrss_engine::HashLayer::Outer, 0).unwrap();
        assert!(
            rebalance(p, RebalanceConfig::default())
                .unwrap()
                .rebalance
                .is_some()
        );
    }
}
