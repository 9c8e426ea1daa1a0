//! # The embedded in-process bus
//!
//! [`EmbeddedBus`] keeps every topic in memory and implements the [`Bus`] / [`Consumer`]
//! contract with Kafka's semantics, so the pipeline can run in one process (tests, the
//! single-node deployment) and move to Kafka without touching stage code.
//!
//! ## Model
//!
//! * **Topics** are created lazily, with the bus-wide [`EmbeddedConfig`], by the first
//!   [`Bus::send`], [`Bus::subscribe`] or [`Bus::partitions`] that names them;
//!   [`EmbeddedBus::create_topic`] defines one explicitly with other parameters (the first
//!   definition wins). [`Bus::lag`] never creates a topic.
//! * **Partitioning**: a record goes to partition `fnv1a64(key) % partitions` (see
//!   [`partition_for`]). The hash is FNV-1a 64 written inline, so it is the same in every
//!   run and every process; records with equal keys keep their order.
//! * **Log**: each partition is an append-only log whose offsets start at 0. Only the
//!   records that some group has not committed yet are kept in memory; everything committed
//!   by *every* group of the topic is released.
//! * **Consumer groups** are registered on a topic by the first [`Bus::subscribe`] naming
//!   them and are never forgotten (like Kafka's committed offsets), even when their last
//!   member leaves: a group without members keeps holding records back (and so keeps
//!   exerting back-pressure) until a member returns and commits.
//!   A **new group starts at the earliest retained offset** of each partition: it reads
//!   everything still retained for the other groups, but not what they already released.
//! * **No group, no retention**: records sent to a topic that has no group at all are
//!   dropped on arrival (they still take offsets and are counted in
//!   [`TopicStats::discarded`]). **Groups must subscribe before producers start.**
//! * **Assignment**: every partition is owned by exactly one member of each group. Members
//!   are ordered by join id (a bus-wide counter), and partition `p` goes to member
//!   `p % members`, i.e. round-robin over sorted partitions. The assignment is recomputed
//!   whenever a member joins or leaves (drops its [`EmbeddedConsumer`]).
//! * **Fetching**: a member keeps its own fetch position per owned partition. When it gains
//!   a partition (at join, or when one moves to it) it starts at the group's committed
//!   offset, so records that the previous owner polled but did not commit are delivered
//!   again (at-least-once). A partition it keeps across a rebalance keeps its position.
//! * **Commit** ([`Consumer::commit`]) is only accepted from the current owner of the
//!   partition ([`BusError::NotAssigned`] otherwise); an offset beyond the log end is
//!   [`BusError::OffsetOutOfRange`]; a commit below the group's committed offset is ignored
//!   (commits never move backwards).
//! * **Back-pressure**: a partition retains at most `capacity` records not committed by
//!   every group. [`Bus::send`] appends what fits and waits (without polling loops, on a
//!   [`Notify`]) for commits to make room for the rest.
//! * **Close** ([`Bus::close`]): later sends, and sends still waiting for room, fail with
//!   [`BusError::Closed`] (a batch may then be partly accepted); consumers still read what
//!   is retained for them and then get [`BusError::Closed`].
//!
//! ## Concurrency
//!
//! Each partition has its own [`std::sync::Mutex`], taken once per partition per `send`
//! pass and once per owned partition per `poll`, and never held across an `.await`. Group
//! membership lives under a per-topic mutex (always taken before partition locks).
//! Producers wait on a per-topic "room" [`Notify`], consumers on a per-topic "data" one.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::{Bus, BusError, Bytes, Consumer, OutRecord, Record};

#[cfg(test)]
mod tests;

/// Configuration of an [`EmbeddedBus`]: the parameters of lazily created topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// Partitions per topic (default 4; 0 is treated as 1).
    pub partitions: u32,
    /// Records retained per partition before `send` waits (default 8 192; 0 is treated as 1).
    /// Small enough that a burst is held back by the producer, not buffered as cold memory.
    pub capacity: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            partitions: 4,
            capacity: 8_192,
        }
    }
}

/// Counters of one topic, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStats {
    pub name: String,
    pub partitions: u32,
    /// Records accepted by `send` since the topic was created (including discarded ones).
    pub sent: u64,
    /// Records dropped because the topic had no consumer group when they arrived.
    pub discarded: u64,
    /// Records currently held in memory (not yet committed by every group).
    pub retained: u64,
}

/// FNV-1a 64-bit hash: fixed, so partitioning is stable across runs and processes.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET_BASIS, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The partition of `key` in a topic of `partitions` partitions: `fnv1a64(key) % partitions`
/// (a topic with 0 partitions is treated as having 1).
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    let n = u64::from(partitions.max(1));
    // The remainder is < n <= u32::MAX, so the conversion cannot fail.
    u32::try_from(fnv1a64(key) % n).unwrap_or(0)
}

/// Locks a mutex, recovering the data if another thread panicked while holding it (every
/// critical section leaves the state consistent between statements that can panic).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An in-process [`Bus`]. Cheap to clone; clones share the same topics.
#[derive(Clone)]
pub struct EmbeddedBus {
    inner: Arc<Inner>,
}

struct Inner {
    config: EmbeddedConfig,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    closed: AtomicBool,
    /// Join ids of members, bus-wide (their order decides assignments).
    next_member: AtomicU64,
}

impl Inner {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

struct Topic {
    name: Arc<str>,
    capacity: usize,
    partitions: Vec<Mutex<PartitionLog>>,
    groups: Mutex<HashMap<String, GroupState>>,
    /// Woken when records are appended, assignments change or the bus closes.
    data: Notify,
    /// Woken when records are released, or the bus closes.
    room: Notify,
    sent: AtomicU64,
    discarded: AtomicU64,
}

struct PartitionLog {
    /// Offset of `log[0]` (the lowest offset still retained).
    base: u64,
    log: VecDeque<Entry>,
    /// One cursor per group, indexed by the group's slot.
    cursors: Vec<Cursor>,
}

impl PartitionLog {
    fn end(&self) -> u64 {
        self.base + self.log.len() as u64
    }

    /// Drops the records committed by every group; true if any was dropped.
    fn release(&mut self) -> bool {
        let Some(min) = self.cursors.iter().map(|c| c.committed).min() else {
            return false;
        };
        let n = usize::try_from(min.saturating_sub(self.base))
            .unwrap_or(usize::MAX)
            .min(self.log.len());
        if n == 0 {
            return false;
        }
        self.log.drain(..n);
        self.base += n as u64;
        true
    }
}

#[derive(Clone)]
struct Entry {
    timestamp_ms: i64,
    record: Arc<Stored>,
}

/// A record as retained: shared buffers, so delivery to any number of groups copies nothing.
struct Stored {
    key: Bytes,
    payload: Bytes,
    headers: Arc<[(String, Vec<u8>)]>,
}

impl From<OutRecord> for Stored {
    fn from(r: OutRecord) -> Self {
        Self {
            key: Bytes::from(r.key),
            payload: Bytes::from(r.payload),
            headers: Arc::from(r.headers),
        }
    }
}

#[derive(Clone, Copy)]
struct Cursor {
    /// The group's committed offset (next record to process).
    committed: u64,
    /// Join id of the member owning this partition in the group.
    owner: Option<u64>,
    /// Generation of the group at which `owner` got the partition.
    epoch: u64,
}

struct GroupState {
    slot: usize,
    members: BTreeSet<u64>,
    generation: Arc<AtomicU64>,
}

impl Topic {
    fn new(name: &str, partitions: u32, capacity: usize) -> Self {
        let partitions = partitions.max(1);
        Self {
            name: Arc::from(name),
            capacity: capacity.max(1),
            partitions: (0..partitions)
                .map(|_| {
                    Mutex::new(PartitionLog {
                        base: 0,
                        log: VecDeque::new(),
                        cursors: Vec::new(),
                    })
                })
                .collect(),
            groups: Mutex::new(HashMap::new()),
            data: Notify::new(),
            room: Notify::new(),
            sent: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
        }
    }

    fn partition_count(&self) -> u32 {
        u32::try_from(self.partitions.len()).unwrap_or(u32::MAX)
    }

    /// Recomputes the owners of every partition for `group` (called with the groups lock
    /// held) and wakes consumers so they pick the new assignment up.
    fn rebalance(&self, group: &GroupState) {
        let generation = group.generation.load(Ordering::SeqCst) + 1;
        let members: Vec<u64> = group.members.iter().copied().collect();
        for (p, part) in self.partitions.iter().enumerate() {
            let owner = (!members.is_empty()).then(|| members[p % members.len()]);
            let mut part = lock(part);
            if let Some(cursor) = part.cursors.get_mut(group.slot)
                && cursor.owner != owner
            {
                cursor.owner = owner;
                cursor.epoch = generation;
            }
        }
        group.generation.store(generation, Ordering::SeqCst);
        self.data.notify_waiters();
    }

    fn assignment_of(&self, group: &GroupState, member: u64) -> Vec<u32> {
        let Some(index) = group.members.iter().position(|&m| m == member) else {
            return Vec::new();
        };
        let n = group.members.len();
        (0..self.partition_count())
            .filter(|&p| p as usize % n == index)
            .collect()
    }
}

impl Default for EmbeddedBus {
    fn default() -> Self {
        Self::new(EmbeddedConfig::default())
    }
}

impl EmbeddedBus {
    /// A bus whose topics are created on first use with `config`.
    pub fn new(config: EmbeddedConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                topics: RwLock::new(HashMap::new()),
                closed: AtomicBool::new(false),
                next_member: AtomicU64::new(0),
            }),
        }
    }

    /// The configuration of lazily created topics.
    pub fn config(&self) -> EmbeddedConfig {
        self.inner.config
    }

    /// Creates `name` with its own partition count and capacity (0 is treated as 1).
    /// Idempotent: if the topic already exists (explicitly or lazily) it is left unchanged.
    pub fn create_topic(&self, name: &str, partitions: u32, capacity: usize) {
        let mut topics = self.inner.topics.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = topics.get(name) {
            if existing.partition_count() != partitions.max(1)
                || existing.capacity != capacity.max(1)
            {
                tracing::warn!(
                    topic = name,
                    partitions,
                    capacity,
                    existing_partitions = existing.partition_count(),
                    existing_capacity = existing.capacity,
                    "topic already exists with other parameters; keeping them"
                );
            }
            return;
        }
        topics.insert(
            name.to_owned(),
            Arc::new(Topic::new(name, partitions, capacity)),
        );
    }

    /// A snapshot of the topic table (the lock is released before the caller works).
    fn all_topics(&self) -> Vec<Arc<Topic>> {
        self.inner
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Counters of every topic, sorted by name.
    pub fn stats(&self) -> Vec<TopicStats> {
        let topics = self.all_topics();
        let mut stats: Vec<TopicStats> = topics
            .iter()
            .map(|t| TopicStats {
                name: t.name.to_string(),
                partitions: t.partition_count(),
                sent: t.sent.load(Ordering::Relaxed),
                discarded: t.discarded.load(Ordering::Relaxed),
                retained: t.partitions.iter().map(|p| lock(p).log.len() as u64).sum(),
            })
            .collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    /// Whether [`Bus::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn existing_topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.inner
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The topic, created with the bus configuration if it does not exist yet.
    fn topic(&self, name: &str) -> Arc<Topic> {
        if let Some(t) = self.existing_topic(name) {
            return t;
        }
        let mut topics = self.inner.topics.write().unwrap_or_else(|e| e.into_inner());
        topics
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Topic::new(
                    name,
                    self.inner.config.partitions,
                    self.inner.config.capacity,
                ))
            })
            .clone()
    }
}

/// Records of one `send` call bound for one partition, not yet accepted.
struct Pending {
    partition: usize,
    records: Vec<Arc<Stored>>,
}

impl Bus for EmbeddedBus {
    type Consumer = EmbeddedConsumer;

    /// Appends the records to their partitions (one lock per partition per pass) and waits
    /// for room while a partition is full. Records of one call keep their order per key.
    /// If the bus closes while the call waits, it fails with [`BusError::Closed`] and the
    /// records appended before stay appended.
    async fn send(&self, topic: &str, records: Vec<OutRecord>) -> Result<(), BusError> {
        if self.inner.is_closed() {
            return Err(BusError::Closed);
        }
        if records.is_empty() {
            return Ok(());
        }
        let topic = self.topic(topic);
        let n_parts = topic.partition_count();
        let mut buckets: Vec<Vec<Arc<Stored>>> = vec![Vec::new(); topic.partitions.len()];
        for r in records {
            buckets[partition_for(&r.key, n_parts) as usize].push(Arc::new(Stored::from(r)));
        }
        let mut pending: Vec<Pending> = buckets
            .into_iter()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(partition, records)| Pending { partition, records })
            .collect();

        loop {
            let room = topic.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();

            let ts = now_ms();
            let mut appended = false;
            for p in &mut pending {
                let mut part = lock(&topic.partitions[p.partition]);
                // Checked under the partition lock: once a consumer has seen the bus closed,
                // no record can be appended behind its back.
                if self.inner.is_closed() {
                    return Err(BusError::Closed);
                }
                if part.cursors.is_empty() {
                    let n = p.records.len();
                    part.base += n as u64;
                    drop(part);
                    p.records.clear();
                    topic.sent.fetch_add(n as u64, Ordering::Relaxed);
                    topic.discarded.fetch_add(n as u64, Ordering::Relaxed);
                    continue;
                }
                let room_left = topic.capacity.saturating_sub(part.log.len());
                let n = room_left.min(p.records.len());
                if n == 0 {
                    continue;
                }
                part.log.extend(p.records.drain(..n).map(|record| Entry {
                    timestamp_ms: ts,
                    record,
                }));
                drop(part);
                topic.sent.fetch_add(n as u64, Ordering::Relaxed);
                appended = true;
            }
            if appended {
                topic.data.notify_waiters();
            }
            pending.retain(|p| !p.records.is_empty());
            if pending.is_empty() {
                return Ok(());
            }
            room.await;
        }
    }

    /// Joins `group` on `topic` (creating both if needed). A new group starts at the
    /// earliest retained offset of every partition. Allowed after [`Bus::close`] too: the
    /// member then reads what is retained and gets [`BusError::Closed`].
    fn subscribe(&self, topic: &str, group: &str) -> Result<EmbeddedConsumer, BusError> {
        let t = self.topic(topic);
        let member = self.inner.next_member.fetch_add(1, Ordering::SeqCst);
        let (slot, generation) = {
            let mut groups = lock(&t.groups);
            let next_slot = groups.len();
            let state = groups.entry(group.to_owned()).or_insert_with(|| {
                for part in &t.partitions {
                    let mut part = lock(part);
                    let base = part.base;
                    part.cursors.push(Cursor {
                        committed: base,
                        owner: None,
                        epoch: 0,
                    });
                }
                GroupState {
                    slot: next_slot,
                    members: BTreeSet::new(),
                    generation: Arc::new(AtomicU64::new(0)),
                }
            });
            state.members.insert(member);
            t.rebalance(state);
            (state.slot, Arc::clone(&state.generation))
        };
        Ok(EmbeddedConsumer {
            inner: Arc::clone(&self.inner),
            topic: t,
            group: group.to_owned(),
            slot,
            member,
            generation,
            seen_generation: None,
            owned: Vec::new(),
            rotate: 0,
        })
    }

    /// Partition count of `topic` (creating it with the bus configuration if needed).
    fn partitions(&self, topic: &str) -> Result<u32, BusError> {
        Ok(self.topic(topic).partition_count())
    }

    /// Sum over partitions of `end offset - committed offset of group`. `Ok(0)` for a group
    /// that never subscribed and for a topic that does not exist (it is not created).
    async fn lag(&self, topic: &str, group: &str) -> Result<u64, BusError> {
        let Some(t) = self.existing_topic(topic) else {
            return Ok(0);
        };
        let Some(slot) = lock(&t.groups).get(group).map(|g| g.slot) else {
            return Ok(0);
        };
        Ok(t.partitions
            .iter()
            .map(|p| {
                let p = lock(p);
                p.cursors
                    .get(slot)
                    .map_or(0, |c| p.end().saturating_sub(c.committed))
            })
            .sum())
    }

    /// Closes the bus and wakes every waiting producer and consumer. Idempotent.
    fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let topics = self.all_topics();
        for t in topics {
            t.room.notify_waiters();
            t.data.notify_waiters();
        }
    }
}

/// A partition the member believes it owns, with its fetch position.
#[derive(Debug, Clone, Copy)]
struct Owned {
    partition: u32,
    /// The ownership epoch the position belongs to; `None` until first fetched.
    epoch: Option<u64>,
    /// Next offset to fetch.
    position: u64,
}

/// One member of a consumer group on one topic of an [`EmbeddedBus`]. Dropping it leaves
/// the group, and its partitions move to the remaining members (who resume from the
/// group's committed offsets).
pub struct EmbeddedConsumer {
    inner: Arc<Inner>,
    topic: Arc<Topic>,
    group: String,
    slot: usize,
    member: u64,
    generation: Arc<AtomicU64>,
    seen_generation: Option<u64>,
    owned: Vec<Owned>,
    /// Index into `owned` of the partition served first by the next poll (fairness).
    rotate: usize,
}

impl std::fmt::Debug for EmbeddedConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedConsumer")
            .field("topic", &self.topic.name)
            .field("group", &self.group)
            .field("member", &self.member)
            .field("owned", &self.owned)
            .finish()
    }
}

/// A record picked under a partition lock, turned into a [`Record`] after unlocking.
struct Picked {
    partition: u32,
    offset: u64,
    entry: Entry,
}

impl EmbeddedConsumer {
    /// The topic this member reads.
    pub fn topic(&self) -> &str {
        &self.topic.name
    }

    /// The group this member belongs to.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The member's join id (its rank in assignments).
    pub fn member_id(&self) -> u64 {
        self.member
    }

    /// Partitions currently assigned to this member, sorted.
    pub fn assignment(&mut self) -> Vec<u32> {
        self.refresh_assignment();
        self.owned.iter().map(|o| o.partition).collect()
    }

    /// Re-reads the assignment if the group rebalanced since the last look. Positions of
    /// partitions kept are kept; validity is re-checked per partition by ownership epoch.
    fn refresh_assignment(&mut self) {
        let current = self.generation.load(Ordering::SeqCst);
        if self.seen_generation == Some(current) {
            return;
        }
        let (partitions, generation) = {
            let groups = lock(&self.topic.groups);
            match groups.get(&self.group) {
                Some(g) => (
                    self.topic.assignment_of(g, self.member),
                    g.generation.load(Ordering::SeqCst),
                ),
                None => (Vec::new(), current),
            }
        };
        let old = std::mem::take(&mut self.owned);
        self.owned = partitions
            .into_iter()
            .map(|partition| {
                old.iter()
                    .find(|o| o.partition == partition)
                    .copied()
                    .unwrap_or(Owned {
                        partition,
                        epoch: None,
                        position: 0,
                    })
            })
            .collect();
        self.seen_generation = Some(generation);
        if self.rotate >= self.owned.len() {
            self.rotate = 0;
        }
    }

    /// Takes up to `max` records from the owned partitions, starting at a rotating partition
    /// and sharing `max` evenly: one lock per partition, plus a second one for partitions
    /// that had more than their share when others had less.
    fn fetch(&mut self, max: usize) -> Vec<Record> {
        let k = self.owned.len();
        if k == 0 || max == 0 {
            return Vec::new();
        }
        let mut picked: Vec<Picked> = Vec::new();
        let mut remaining = max;
        let start = self.rotate % k;
        self.rotate = (start + 1) % k;
        let mut more: Vec<usize> = Vec::new();
        for i in 0..k {
            if remaining == 0 {
                break;
            }
            let quota = remaining.div_ceil(k - i);
            let index = (start + i) % k;
            let (taken, has_more) = self.fetch_partition(index, quota, &mut picked);
            remaining -= taken;
            if has_more {
                more.push(index);
            }
        }
        for index in more {
            if remaining == 0 {
                break;
            }
            let (taken, _) = self.fetch_partition(index, remaining, &mut picked);
            remaining -= taken;
        }
        picked
            .into_iter()
            .map(|p| Record {
                topic: Arc::clone(&self.topic.name),
                partition: p.partition,
                offset: p.offset,
                key: p.entry.record.key.clone(),
                payload: p.entry.record.payload.clone(),
                headers: p.entry.record.headers.clone(),
                timestamp_ms: p.entry.timestamp_ms,
            })
            .collect()
    }

    /// Takes up to `quota` records from `self.owned[index]` under one lock. Returns how many
    /// were taken and whether more were available.
    fn fetch_partition(
        &mut self,
        index: usize,
        quota: usize,
        picked: &mut Vec<Picked>,
    ) -> (usize, bool) {
        let owned = &mut self.owned[index];
        let Some(part) = self.topic.partitions.get(owned.partition as usize) else {
            return (0, false);
        };
        let part = lock(part);
        let Some(cursor) = part.cursors.get(self.slot) else {
            return (0, false);
        };
        if cursor.owner != Some(self.member) {
            // Moved away by a rebalance this member has not seen yet.
            return (0, false);
        }
        if owned.epoch != Some(cursor.epoch) {
            // Newly (re)gained: resume from the group's committed offset.
            owned.epoch = Some(cursor.epoch);
            owned.position = cursor.committed;
        }
        let from = owned.position.max(cursor.committed).max(part.base);
        let available = usize::try_from(part.end().saturating_sub(from)).unwrap_or(usize::MAX);
        let n = available.min(quota);
        // `from - base` <= log.len() because base <= from <= end.
        let skip = usize::try_from(from - part.base).unwrap_or(usize::MAX);
        picked.extend(
            part.log
                .range(skip..skip + n)
                .enumerate()
                .map(|(j, e)| Picked {
                    partition: owned.partition,
                    offset: from + j as u64,
                    entry: e.clone(),
                }),
        );
        drop(part);
        owned.position = from + n as u64;
        (n, available > n)
    }
}

impl Consumer for EmbeddedConsumer {
    /// Waits (on a [`Notify`], no polling loop) until records are available on an owned
    /// partition, the assignment changes, the bus closes or `timeout` elapses. Returns up to
    /// `max` records, shared fairly across owned partitions, in offset order per partition.
    /// `max == 0` returns an empty batch at once.
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Record>, BusError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = Instant::now().checked_add(timeout);
        let topic = Arc::clone(&self.topic);
        loop {
            let data = topic.data.notified();
            tokio::pin!(data);
            data.as_mut().enable();

            // Read before fetching: if the bus was closed by then, no record can arrive
            // after the fetch (sends check the flag under the partition lock).
            let closed = self.inner.is_closed();
            self.refresh_assignment();
            let records = self.fetch(max);
            if !records.is_empty() {
                return Ok(records);
            }
            if closed {
                return Err(BusError::Closed);
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, data).await.is_err() {
                        return Ok(Vec::new());
                    }
                }
                None => data.await,
            }
        }
    }

    /// Commits `next_offset` for `partition` if this member currently owns it.
    fn commit(&mut self, partition: u32, next_offset: u64) -> Result<(), BusError> {
        let not_assigned = || BusError::NotAssigned {
            topic: self.topic.name.to_string(),
            partition,
        };
        let Some(part) = self.topic.partitions.get(partition as usize) else {
            return Err(not_assigned());
        };
        let mut part = lock(part);
        let end = part.end();
        let Some(cursor) = part.cursors.get_mut(self.slot) else {
            return Err(not_assigned());
        };
        if cursor.owner != Some(self.member) {
            return Err(not_assigned());
        }
        if next_offset > end {
            return Err(BusError::OffsetOutOfRange {
                topic: self.topic.name.to_string(),
                partition,
                offset: next_offset,
                end,
            });
        }
        if next_offset <= cursor.committed {
            return Ok(());
        }
        cursor.committed = next_offset;
        let released = part.release();
        drop(part);
        if released {
            self.topic.room.notify_waiters();
        }
        Ok(())
    }
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        let mut groups = lock(&self.topic.groups);
        if let Some(state) = groups.get_mut(&self.group)
            && state.members.remove(&self.member)
        {
            self.topic.rebalance(state);
        }
    }
}
