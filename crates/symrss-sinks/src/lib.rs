//! The outputs of symrss: where a queue's packets go.
//!
//! Every sink implements the engine's [`Sink`] trait (see its contract in
//! `symrss_engine::balancer::delivery`: each packet is delivered or
//! refused with a [`SinkError`], packets lost after being taken are
//! reported through `take_unwritten`). The live sinks are chosen by a
//! [`SinkKind`] (the `capture` command line and TOML file name them) and
//! opened by [`open`]; `split` writes [`QueueFiles`].
//!
//! | kind | module | what a consumer sees |
//! |---|---|---|
//! | `pcap` | [`rotating`] | `DIR/APP/q<i>.pcap`, rotating on size, packet time, SIGHUP |
//! | `fifo` | [`fifo`] | `DIR/APP/q<i>.fifo` streaming pcap; no reader = counted drops |
//! | `veth` | [`veth`] | the far end `APP-q<i>` of a veth pair (any AF_PACKET reader) |
//! | `tap` | [`tap`] | a TAP interface `APP-q<i>` (any AF_PACKET reader; a `write(2)` per packet) |
//! | `count` | [`count`] | nothing: counted in process |
//!
//! Adding a sink is one module here and one [`SinkKind`] variant (the
//! compiler then points at the match in [`open`] and at [`SinkKind::name`]);
//! no steering or capture code changes.

pub mod count;
pub mod fifo;
pub mod files;
pub mod rotating;
pub mod tap;
pub mod veth;

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
pub use symrss_engine::balancer::{Sink, SinkError};
use symrss_pcap::Rotation;

pub use files::QueueFiles;

/// Where a live queue's packets go (see `capture --help`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// Rotating pcap files `DIR/NAME/q<i>.pcap`.
    #[default]
    Pcap,
    /// A FIFO streaming pcap, `DIR/NAME/q<i>.fifo`.
    Fifo,
    /// The far end `NAME-q<i>` of a veth pair fed through a TX ring.
    Veth,
    /// A TAP interface `NAME-q<i>`.
    Tap,
    /// Counted in process only.
    Count,
}

impl SinkKind {
    /// Every kind, in `--help` order.
    pub const ALL: [Self; 5] = [Self::Pcap, Self::Fifo, Self::Veth, Self::Tap, Self::Count];

    /// Its name on the command line and in the TOML file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcap => "pcap",
            Self::Fifo => "fifo",
            Self::Veth => "veth",
            Self::Tap => "tap",
            Self::Count => "count",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether its outputs are network interfaces `NAME-q<i>`.
    pub fn makes_interfaces(self) -> bool {
        matches!(self, Self::Veth | Self::Tap)
    }

    /// Whether its outputs live in the output directory.
    pub fn writes_files(self) -> bool {
        matches!(self, Self::Pcap | Self::Fifo)
    }
}

/// Where one application's live queues go.
#[derive(Debug, Clone, Copy)]
pub struct AppOutputs<'a> {
    /// The application's name (interfaces are `NAME-q<i>`).
    pub app: &'a str,
    /// Its directory (for file and FIFO sinks; must exist).
    pub dir: &'a Path,
    /// Rotation of pcap files.
    pub rotation: Rotation,
    /// LINKTYPE written to pcap headers.
    pub linktype: u32,
    /// Snap length written to pcap headers.
    pub snaplen: u32,
    /// MTU of the interfaces a `veth` sink makes (that of the largest
    /// capture interface: every frame captured fits).
    pub mtu: u32,
}

/// Opens the sink of `kind` for queue `queue` of `out`'s application.
pub fn open(kind: SinkKind, out: &AppOutputs<'_>, queue: usize) -> io::Result<Box<dyn Sink>> {
    Ok(match kind {
        SinkKind::Pcap => Box::new(rotating::RotatingPcap::create(out, queue)?),
        SinkKind::Fifo => Box::new(fifo::FifoSink::create(out, queue)?),
        SinkKind::Veth => Box::new(veth::VethSink::create(out, queue)?),
        SinkKind::Tap => Box::new(tap::TapSink::create(out, queue)?),
        SinkKind::Count => Box::new(count::CountSink),
    })
}
