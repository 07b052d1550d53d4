//! `tap`: a queue injected into a TAP interface `APP-q<i>`, which any
//! AF_PACKET reader (tcpdump, Suricata, Zeek) opens as if it were a NIC
//! queue. One `write(2)` per packet.

use std::io;

use symrss_engine::balancer::{PacketMeta, Sink, SinkError};
use symrss_sys::tap::Tap;

use crate::AppOutputs;

/// A queue's TAP interface.
#[derive(Debug)]
pub struct TapSink(Tap);

impl TapSink {
    /// Creates `APP-q<queue>`.
    pub fn create(out: &AppOutputs<'_>, queue: usize) -> io::Result<Self> {
        Ok(Self(Tap::create(&format!("{}-q{queue}", out.app))?))
    }
}

impl Sink for TapSink {
    fn write(&mut self, _: &PacketMeta, data: &[u8]) -> Result<(), SinkError> {
        Ok(self.0.send(data)?)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
