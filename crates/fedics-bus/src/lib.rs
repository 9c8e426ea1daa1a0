//! # fedics-bus: the message bus the pipeline stages talk through
//!
//! Stages only see the [`Bus`] and [`Consumer`] traits, never a backend, so the same stage
//! code runs on the embedded in-process bus ([`embedded::EmbeddedBus`]) and on Kafka.
//!
//! Semantics every backend keeps (they are Kafka's):
//! * **Named topics** split into a fixed number of **partitions**.
//! * **Keyed messages**: the partition is a stable hash of the key, so all messages with one
//!   key are delivered in the order they were sent.
//! * **Consumer groups**: every group receives every message of the topics it subscribed to;
//!   inside a group each partition is owned by exactly one member at a time.
//! * **Acknowledgement after processing**: a consumer commits the offset up to which it has
//!   finished; records it polled but did not commit are delivered again (to it or to the
//!   member that takes the partition over) when it leaves the group.
//! * **Bounded capacity with back-pressure**: a partition retains at most `capacity`
//!   records not yet committed by every group; `send` waits for room instead of growing.

use std::future::Future;

pub use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

pub mod embedded;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    /// Decides the partition; messages with equal keys keep their order.
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    /// Free-form headers (Kafka headers); stages use them for tracing (e.g. origin time).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutRecord {
    pub fn new(key: impl Into<Vec<u8>>, payload: Vec<u8>) -> Self {
        Self {
            key: key.into(),
            payload,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A delivered message. Key, payload and headers are shared, not copied, between the
/// bus and every group that receives the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: u64,
    pub key: Bytes,
    pub payload: Bytes,
    pub headers: Arc<[(String, Vec<u8>)]>,
    /// Milliseconds since the Unix epoch when the bus accepted the record.
    pub timestamp_ms: i64,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Bus failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    #[error("bus is closed")]
    Closed,
    #[error("unknown topic `{0}`")]
    UnknownTopic(String),
    #[error("partition {partition} of topic `{topic}` is not assigned to this consumer")]
    NotAssigned { topic: String, partition: u32 },
    #[error("commit offset {offset} is beyond the end {end} of `{topic}`/{partition}")]
    OffsetOutOfRange {
        topic: String,
        partition: u32,
        offset: u64,
        end: u64,
    },
    #[error("backend error: {0}")]
    Backend(String),
}

/// A message bus. Cheap to clone; clones share the same bus.
pub trait Bus: Clone + Send + Sync + 'static {
    type Consumer: Consumer;

    /// Sends records to a topic. Waits while the target partition is full (back-pressure).
    /// Returns once every record is accepted (ordered per key).
    fn send(
        &self,
        topic: &str,
        records: Vec<OutRecord>,
    ) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Joins consumer group `group` on `topic` and returns a member of it.
    fn subscribe(&self, topic: &str, group: &str) -> Result<Self::Consumer, BusError>;

    /// Number of partitions of a topic.
    fn partitions(&self, topic: &str) -> Result<u32, BusError>;

    /// Records sent to `topic` that `group` has not committed yet (sum over partitions).
    /// Zero for a group that never subscribed.
    fn lag(&self, topic: &str, group: &str) -> impl Future<Output = Result<u64, BusError>> + Send;

    /// Closes the bus: further `send`s fail with [`BusError::Closed`]; consumers still read
    /// what is retained, then get [`BusError::Closed`].
    fn close(&self);
}

/// One member of a consumer group on one topic. Dropping it leaves the group.
pub trait Consumer: Send + 'static {
    /// Returns up to `max` records from the partitions assigned to this member, in offset
    /// order per partition. Returns an empty batch if nothing arrives within `timeout`.
    /// Returns `Err(BusError::Closed)` once the bus is closed and this member has nothing
    /// left to read.
    fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<Record>, BusError>> + Send;

    /// Marks everything in `partition` before `next_offset` as processed (Kafka's commit:
    /// `next_offset` is the offset of the next record to process).
    fn commit(&mut self, partition: u32, next_offset: u64) -> Result<(), BusError>;

    /// Commits every record of `batch` (the highest offset per partition, plus one).
    fn commit_batch(&mut self, batch: &[Record]) -> Result<(), BusError> {
        let mut last: Vec<(u32, u64)> = Vec::new();
        for r in batch {
            match last.iter_mut().find(|(p, _)| *p == r.partition) {
                Some((_, o)) => *o = (*o).max(r.offset + 1),
                None => last.push((r.partition, r.offset + 1)),
            }
        }
        for (p, o) in last {
            self.commit(p, o)?;
        }
        Ok(())
    }
}
