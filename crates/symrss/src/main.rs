//! `symrss`: symmetric, flow-affine load balancing of packet capture.
//!
//! Command-line contract: `shared/DESIGN.md` ("Command line"). `--json`
//! prints one JSON object on stdout; tables go to stdout, progress and logs
//! to stderr. Exit codes: 0 ok, 1 runtime failure, 2 usage error.

mod bench;
mod cmd_analyze;
mod cmd_capture;
mod cmd_docs;
mod cmd_hash;
mod cmd_key;
mod cmd_nic;
mod cmd_split;
mod cmd_stats;
mod cmd_top;
mod control;
mod demo;
mod input;
mod outdir;
mod output;
mod pinning;
mod rebalance_args;
mod svg;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Symmetric, flow-affine load balancing for packet capture: exact Toeplitz
/// hashing and key science; analysis of captures per balancing scheme; a
/// software balancer that gives each application every flow (both
/// directions) on one of its queues, offline (`split`) or live
/// (`capture`, AF_PACKET); and NIC RSS inspection, planning, programming
/// and live verification (`nic`).
///
/// Keys are written `ms` (Microsoft default 40-byte key), `sym` (0x6d5a
/// repeated, the KAIST symmetric key) or hex bytes with or without colons
/// (`6d:5a:56:da:...` as `ethtool -x` prints them).
#[derive(Debug, Parser)]
#[command(
    name = "symrss",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Hash one flow (both directions) and show the queue it lands on.
    Hash(cmd_hash::HashArgs),
    /// Key science: check a key's symmetry and entropy, or generate keys.
    #[command(subcommand)]
    Key(cmd_key::KeyCommand),
    /// What each balancing scheme would do with a capture: per-queue load,
    /// split flows and why.
    Analyze(cmd_analyze::AnalyzeArgs),
    /// Live capture: AF_PACKET rings on one or more interfaces, every flow
    /// (both directions) on one queue of each application, written to
    /// pcap files, FIFOs or veth/TAP interfaces that unmodified tools read.
    Capture(Box<cmd_capture::CaptureArgs>),
    /// NIC RSS: show a device's RSS and whether it is symmetric, plan and
    /// apply symmetric RSS, verify it on live traffic.
    #[command(subcommand)]
    Nic(cmd_nic::NicCommand),
    /// Split captures into per-application queues (pcap files), every flow
    /// on one queue of each application, nothing lost.
    Split(cmd_split::SplitArgs),
    /// A running capture's stats, from its control socket (tables, or
    /// `--json`: the `--stats-json` document).
    Stats(cmd_stats::StatsArgs),
    /// A live view of a running capture (per input, worker and queue:
    /// rates, drops, load), from its control socket.
    Top(cmd_top::TopArgs),
    /// Ask a running capture to rotate its files or to stop (what SIGHUP
    /// and SIGTERM do), through its control socket.
    Control(cmd_stats::ControlArgs),
    /// Quick built-in micro-benchmarks (`--json` for machines).
    Bench(bench::BenchArgs),
    /// Run the main job on a built-in traffic mix and explain what it shows.
    Demo(demo::DemoArgs),
    /// Print the manual page (or write one per command into a directory).
    Man(cmd_docs::ManArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions(cmd_docs::CompletionsArgs),
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub enum Failure {
    /// Bad command-line input (exit 2).
    Usage(String),
    /// Something failed while running (exit 1).
    Runtime(String),
}

impl Failure {
    fn exit(self) -> ExitCode {
        match self {
            Failure::Usage(m) => {
                eprintln!("symrss: error: {m}");
                ExitCode::from(2)
            }
            Failure::Runtime(m) => {
                eprintln!("symrss: {m}");
                ExitCode::from(1)
            }
        }
    }
}

fn main() -> ExitCode {
    symrss_sys::default_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hash(a) => cmd_hash::run(&a),
        Command::Key(k) => cmd_key::run(&k),
        Command::Analyze(a) => cmd_analyze::run(&a),
        Command::Split(s) => cmd_split::run(&s),
        Command::Nic(n) => cmd_nic::run(&n),
        Command::Capture(c) => cmd_capture::run(&c),
        Command::Stats(a) => cmd_stats::run(&a),
        Command::Control(a) => cmd_stats::control(&a),
        Command::Top(a) => cmd_top::run(&a),
        Command::Bench(b) => bench::run(&b),
        Command::Demo(d) => demo::run(&d),
        Command::Man(m) => cmd_docs::man(&m),
        Command::Completions(c) => cmd_docs::completions(&c),
    };
    match result {
        Ok(code) => code,
        Err(f) => f.exit(),
    }
}
