//! The per-(app, queue) outputs of a capture, opened from the
//! `symrss-sinks` library by kind; this module only checks the app's
//! output directory and names errors by app.

use symrss_engine::balancer::Sink;
use symrss_pcap::Rotation;
use symrss_sinks::AppOutputs;

use super::config::{AppSection, CaptureConfig};
use super::{LINKTYPE_ETHERNET, SNAPLEN};
use crate::Failure;

pub(super) fn make_sinks(
    c: &CaptureConfig,
    app: &AppSection,
    rotation: Rotation,
) -> Result<Vec<Box<dyn Sink>>, Failure> {
    let dir = c.output_dir.join(&app.name);
    let fail = |e: std::io::Error| Failure::Runtime(format!("app {}: {e}", app.name));
    if app.sink.writes_files() {
        crate::outdir::real_dir(&dir)
            .map_err(|e| Failure::Runtime(format!("app {}: {e}", app.name)))?;
    }
    // Every frame the capture interfaces deliver must fit an interface
    // sink's MTU.
    let mtu = c
        .interfaces
        .iter()
        .filter_map(|i| symrss_sys::netif::mtu(i).ok())
        .max()
        .unwrap_or(1500)
        .max(1500);
    let out = AppOutputs {
        app: &app.name,
        dir: &dir,
        rotation,
        linktype: LINKTYPE_ETHERNET,
        snaplen: SNAPLEN,
        mtu,
    };
    (0..app.queues as usize)
        .map(|q| symrss_sinks::open(app.sink, &out, q).map_err(fail))
        .collect()
}
