//! `count`: takes every packet and writes nothing (the in-process
//! consumer; what the balancer alone costs).

use symrss_engine::balancer::{PacketMeta, Sink, SinkError};

/// Counts only.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountSink;

impl Sink for CountSink {
    fn write(&mut self, _: &PacketMeta, _: &[u8]) -> Result<(), SinkError> {
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
