use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use super::*;

const WAIT: Duration = Duration::from_secs(5);
const SHORT: Duration = Duration::from_millis(100);

fn bus(partitions: u32, capacity: usize) -> EmbeddedBus {
    EmbeddedBus::new(EmbeddedConfig {
        partitions,
        capacity,
    })
}

fn rec(key: &str, payload: &str) -> OutRecord {
    OutRecord::new(key.as_bytes(), payload.as_bytes().to_vec())
}

/// Polls until `n` records arrived (or panics after `WAIT` without progress).
async fn take(c: &mut EmbeddedConsumer, n: usize, commit: bool) -> Vec<Record> {
    let mut out = Vec::new();
    while out.len() < n {
        let batch = c.poll(n - out.len(), WAIT).await.expect("poll");
        assert!(!batch.is_empty(), "timed out after {} of {n}", out.len());
        if commit {
            c.commit_batch(&batch).expect("commit");
        }
        out.extend(batch);
    }
    out
}

fn stats_of(bus: &EmbeddedBus, topic: &str) -> TopicStats {
    bus.stats()
        .into_iter()
        .find(|s| s.name == topic)
        .expect("topic in stats")
}

// 1. Order per key, same key same partition, stable hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_per_key_and_stable_partitioning() {
    // Known FNV-1a 64 vectors, and partitions derived from them.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    assert_eq!(partition_for(b"sensor-1", 4), 1);
    assert_eq!(partition_for(b"plc-7", 4), 2);
    assert_eq!(partition_for(b"sensor-1", 7), 6);
    assert_eq!(partition_for(b"plc-7", 16), 10);
    assert_eq!(partition_for(b"anything", 0), 0);

    let bus = bus(4, 1 << 16);
    let mut c = bus.subscribe("flows", "g").unwrap();
    const KEYS: usize = 64;
    const PER_KEY: usize = 50;
    // Interleave keys across several batches.
    for round in 0..PER_KEY / 5 {
        let mut batch = Vec::new();
        for seq in round * 5..round * 5 + 5 {
            for k in 0..KEYS {
                batch.push(rec(&format!("key-{k}"), &seq.to_string()));
            }
        }
        bus.send("flows", batch).await.unwrap();
    }
    bus.send("flows", vec![rec("sensor-1", "x")]).await.unwrap();

    let records = take(&mut c, KEYS * PER_KEY + 1, true).await;
    let mut seen: HashMap<Vec<u8>, (u32, Vec<usize>)> = HashMap::new();
    let mut used_partitions = BTreeSet::new();
    for r in &records {
        if r.key[..] == b"sensor-1"[..] {
            assert_eq!(r.partition, 1);
            continue;
        }
        assert_eq!(r.partition, partition_for(&r.key, 4));
        used_partitions.insert(r.partition);
        let seq: usize = std::str::from_utf8(&r.payload).unwrap().parse().unwrap();
        let entry = seen
            .entry(r.key.to_vec())
            .or_insert_with(|| (r.partition, Vec::new()));
        assert_eq!(entry.0, r.partition, "key moved partition");
        entry.1.push(seq);
    }
    assert_eq!(
        used_partitions.len(),
        4,
        "many keys should use every partition"
    );
    assert_eq!(seen.len(), KEYS);
    for (key, (_, seqs)) in seen {
        assert_eq!(
            seqs,
            (0..PER_KEY).collect::<Vec<_>>(),
            "order of {}",
            String::from_utf8_lossy(&key)
        );
    }
    // Offsets are dense and ordered within each partition.
    let mut per_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for r in &records {
        per_partition.entry(r.partition).or_default().push(r.offset);
    }
    for offsets in per_partition.values() {
        assert_eq!(offsets, &(0..offsets.len() as u64).collect::<Vec<_>>());
    }
}

// 2. Every group receives every record.
#[tokio::test]
async fn two_groups_each_receive_every_record() {
    let bus = bus(4, 1024);
    let mut a = bus.subscribe("t", "alpha").unwrap();
    let mut b = bus.subscribe("t", "beta").unwrap();
    let sent: Vec<OutRecord> = (0..100)
        .map(|i| rec(&format!("k{}", i % 13), &i.to_string()))
        .collect();
    bus.send("t", sent).await.unwrap();

    let expected: BTreeSet<String> = (0..100).map(|i| i.to_string()).collect();
    for c in [&mut a, &mut b] {
        let got = take(c, 100, true).await;
        let payloads: BTreeSet<String> = got
            .iter()
            .map(|r| String::from_utf8(r.payload.to_vec()).unwrap())
            .collect();
        assert_eq!(payloads, expected);
        assert!(
            c.poll(10, SHORT).await.unwrap().is_empty(),
            "no extra records"
        );
    }
    assert_eq!(bus.lag("t", "alpha").await.unwrap(), 0);
    assert_eq!(bus.lag("t", "beta").await.unwrap(), 0);
    assert_eq!(stats_of(&bus, "t").retained, 0);
}

// 3. Within a group each partition has one owner; everything delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_split_partitions_exactly_once() {
    let bus = bus(4, 64);
    let mut a = bus.subscribe("t", "g").unwrap();
    let mut b = bus.subscribe("t", "g").unwrap();
    assert!(a.member_id() < b.member_id());
    // Round-robin over members sorted by join id.
    assert_eq!(a.assignment(), vec![0, 2]);
    assert_eq!(b.assignment(), vec![1, 3]);

    async fn run(mut c: EmbeddedConsumer) -> (Vec<u32>, Vec<(u32, u64)>) {
        let owned = c.assignment();
        let mut got = Vec::new();
        loop {
            match c.poll(37, WAIT).await {
                Ok(batch) => {
                    c.commit_batch(&batch).unwrap();
                    got.extend(batch.iter().map(|r| (r.partition, r.offset)));
                }
                Err(BusError::Closed) => return (owned, got),
                Err(e) => panic!("{e}"),
            }
        }
    }
    let ha = tokio::spawn(run(a));
    let hb = tokio::spawn(run(b));

    const N: usize = 5000;
    let producer = bus.clone();
    let prod = tokio::spawn(async move {
        for chunk in 0..N / 100 {
            let batch = (chunk * 100..chunk * 100 + 100)
                .map(|i| rec(&format!("dev-{}", i % 97), &i.to_string()))
                .collect();
            producer.send("t", batch).await.unwrap();
        }
    });
    tokio::time::timeout(WAIT, prod).await.unwrap().unwrap();
    tokio::time::timeout(WAIT, async {
        while bus.lag("t", "g").await.unwrap() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("group caught up");
    bus.close();
    let (owned_a, got_a) = ha.await.unwrap();
    let (owned_b, got_b) = hb.await.unwrap();

    assert!(got_a.iter().all(|(p, _)| owned_a.contains(p)));
    assert!(got_b.iter().all(|(p, _)| owned_b.contains(p)));
    let mut all: Vec<(u32, u64)> = got_a.into_iter().chain(got_b).collect();
    let total = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(total, N, "every record exactly once");
    assert_eq!(all.len(), N, "no duplicates");
}

// 4. Uncommitted records are redelivered to the remaining member.
#[tokio::test]
async fn uncommitted_records_redelivered_when_member_leaves() {
    let bus = bus(4, 1024);
    let mut a = bus.subscribe("t", "g").unwrap();
    let mut b = bus.subscribe("t", "g").unwrap();
    let batch: Vec<OutRecord> = (0..80)
        .map(|i| rec(&format!("k{i}"), &i.to_string()))
        .collect();
    bus.send("t", batch).await.unwrap();

    let a_parts = a.assignment();
    let b_parts = b.assignment();
    let in_a: usize = (0..80)
        .filter(|i| a_parts.contains(&partition_for(format!("k{i}").as_bytes(), 4)))
        .count();
    assert!(in_a > 1);
    let got_a = take(&mut a, in_a, false).await;
    // `a` commits only the first record of its first partition.
    let first = got_a
        .iter()
        .filter(|r| r.partition == a_parts[0])
        .min_by_key(|r| r.offset)
        .unwrap()
        .clone();
    a.commit(first.partition, first.offset + 1).unwrap();
    let b_own = take(&mut b, 80 - in_a, true).await;
    assert!(b_own.iter().all(|r| b_parts.contains(&r.partition)));
    assert!(b.poll(10, SHORT).await.unwrap().is_empty());

    drop(a);
    assert_eq!(b.assignment(), vec![0, 1, 2, 3]);
    let redelivered = take(&mut b, in_a - 1, true).await;
    let mut expected: Vec<(u32, u64)> = got_a
        .iter()
        .filter(|r| !(r.partition == first.partition && r.offset == first.offset))
        .map(|r| (r.partition, r.offset))
        .collect();
    let mut got: Vec<(u32, u64)> = redelivered
        .iter()
        .map(|r| (r.partition, r.offset))
        .collect();
    expected.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, expected);
    assert!(b.poll(10, SHORT).await.unwrap().is_empty());
    assert_eq!(bus.lag("t", "g").await.unwrap(), 0);
}

// 5. Back-pressure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_waits_for_room_until_commit() {
    let bus = bus(1, 8);
    let mut c = bus.subscribe("t", "g").unwrap();
    for i in 0..8 {
        tokio::time::timeout(WAIT, bus.send("t", vec![rec("k", &i.to_string())]))
            .await
            .expect("room for 8")
            .unwrap();
    }
    assert!(
        tokio::time::timeout(SHORT, bus.send("t", vec![rec("k", "8")]))
            .await
            .is_err(),
        "9th send must wait"
    );
    // Polling alone does not make room.
    let got = take(&mut c, 8, false).await;
    let producer = bus.clone();
    let pending = tokio::spawn(async move { producer.send("t", vec![rec("k", "8")]).await });
    tokio::time::sleep(SHORT).await;
    assert!(!pending.is_finished(), "still waiting without commit");
    assert_eq!(stats_of(&bus, "t").retained, 8);

    c.commit(0, got[0].offset + 1).unwrap();
    tokio::time::timeout(WAIT, pending)
        .await
        .expect("send completes after commit")
        .unwrap()
        .unwrap();
    let ninth = take(&mut c, 1, true).await;
    assert_eq!(&ninth[0].payload[..], b"8");
    assert_eq!(ninth[0].offset, 8);
}

// 5b. A batch larger than the capacity goes through piecewise as the consumer commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_larger_than_capacity_flows_through() {
    let bus = bus(2, 4);
    let mut c = bus.subscribe("t", "g").unwrap();
    let producer = bus.clone();
    let send = tokio::spawn(async move {
        let batch = (0..100).map(|i| rec(&format!("k{}", i % 5), &i.to_string()));
        producer.send("t", batch.collect()).await
    });
    let got = take(&mut c, 100, true).await;
    tokio::time::timeout(WAIT, send)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 100);
    assert!(stats_of(&bus, "t").retained <= 8);
}

// 6. Close: pending sends fail, consumers drain then get Closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_fails_pending_sends_and_drains_consumers() {
    let bus = bus(1, 4);
    let mut c = bus.subscribe("t", "g").unwrap();
    let mut idle = bus.subscribe("other", "g").unwrap();
    bus.send("t", (0..4).map(|i| rec("k", &i.to_string())).collect())
        .await
        .unwrap();
    let producer = bus.clone();
    let pending = tokio::spawn(async move { producer.send("t", vec![rec("k", "late")]).await });
    let idle_poll = tokio::spawn(async move { idle.poll(10, Duration::from_secs(60)).await });
    tokio::time::sleep(SHORT).await;
    assert!(!pending.is_finished());
    assert!(!idle_poll.is_finished());

    bus.close();
    assert!(bus.is_closed());
    let res = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(res, Err(BusError::Closed));
    let res = tokio::time::timeout(WAIT, idle_poll)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res, Err(BusError::Closed), "waiting poll wakes on close");
    assert_eq!(
        bus.send("t", vec![rec("k", "after")]).await,
        Err(BusError::Closed)
    );

    let first = c.poll(3, WAIT).await.unwrap();
    let second = c.poll(3, WAIT).await.unwrap();
    assert_eq!(
        first.len() + second.len(),
        4,
        "retained records still delivered"
    );
    let offsets: Vec<u64> = first.iter().chain(&second).map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3]);
    assert_eq!(c.poll(3, WAIT).await, Err(BusError::Closed));
    assert_eq!(c.poll(3, WAIT).await, Err(BusError::Closed));
}

// 7. Lag and commit rules.
#[tokio::test]
async fn lag_and_commit_rules() {
    let bus = bus(2, 1024);
    let mut a = bus.subscribe("t", "g").unwrap();
    let mut b = bus.subscribe("t", "g").unwrap();
    assert_eq!(a.assignment(), vec![0]);
    assert_eq!(b.assignment(), vec![1]);
    // Keys for each partition.
    let k0 = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| partition_for(k.as_bytes(), 2) == 0)
        .unwrap();
    let k1 = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| partition_for(k.as_bytes(), 2) == 1)
        .unwrap();
    let mut batch: Vec<OutRecord> = (0..6).map(|i| rec(&k0, &i.to_string())).collect();
    batch.extend((0..4).map(|i| rec(&k1, &i.to_string())));
    bus.send("t", batch).await.unwrap();
    assert_eq!(bus.lag("t", "g").await.unwrap(), 10);

    let got = take(&mut a, 6, false).await;
    assert_eq!(
        bus.lag("t", "g").await.unwrap(),
        10,
        "polling is not committing"
    );
    a.commit(0, 4).unwrap();
    assert_eq!(bus.lag("t", "g").await.unwrap(), 6);
    a.commit(0, 2).unwrap();
    assert_eq!(
        bus.lag("t", "g").await.unwrap(),
        6,
        "commits never move back"
    );
    assert_eq!(stats_of(&bus, "t").retained, 6);

    assert_eq!(
        a.commit(1, 1),
        Err(BusError::NotAssigned {
            topic: "t".into(),
            partition: 1
        })
    );
    assert!(matches!(
        a.commit(9, 1),
        Err(BusError::NotAssigned { partition: 9, .. })
    ));
    assert_eq!(
        a.commit(0, 7),
        Err(BusError::OffsetOutOfRange {
            topic: "t".into(),
            partition: 0,
            offset: 7,
            end: 6
        })
    );
    a.commit_batch(&got).unwrap();
    b.commit(1, 4).unwrap();
    assert_eq!(bus.lag("t", "g").await.unwrap(), 0);
    assert_eq!(bus.lag("t", "nobody").await.unwrap(), 0);
    assert_eq!(bus.lag("never-created", "g").await.unwrap(), 0);
    assert!(
        bus.stats().iter().all(|s| s.name != "never-created"),
        "lag does not create topics"
    );
    // Committing ahead of the fetch position skips the committed records.
    bus.send("t", (0..3).map(|i| rec(&k1, &i.to_string())).collect())
        .await
        .unwrap();
    b.commit(1, 6).unwrap();
    let rest = take(&mut b, 1, true).await;
    assert_eq!(rest[0].offset, 6);
}

// 8. Without any group, records are discarded and counted.
#[tokio::test]
async fn records_without_group_are_discarded() {
    let bus = bus(4, 8);
    // More than the capacity: discarding never blocks.
    bus.send("t", (0..20).map(|i| rec(&format!("k{i}"), "x")).collect())
        .await
        .unwrap();
    let s = stats_of(&bus, "t");
    assert_eq!((s.sent, s.discarded, s.retained), (20, 20, 0));
    assert_eq!(s.partitions, 4);

    let mut c = bus.subscribe("t", "late").unwrap();
    assert!(c.poll(100, SHORT).await.unwrap().is_empty());
    assert_eq!(bus.lag("t", "late").await.unwrap(), 0);
    bus.send("t", vec![rec("k1", "kept")]).await.unwrap();
    let got = take(&mut c, 1, true).await;
    assert_eq!(&got[0].payload[..], b"kept");
    let s = stats_of(&bus, "t");
    assert_eq!((s.sent, s.discarded), (21, 20));
}

#[tokio::test]
async fn new_group_starts_at_earliest_retained_offset() {
    let bus = bus(1, 100);
    let mut a = bus.subscribe("t", "a").unwrap();
    bus.send("t", (0..10).map(|i| rec("k", &i.to_string())).collect())
        .await
        .unwrap();
    take(&mut a, 10, false).await;
    a.commit(0, 5).unwrap();
    assert_eq!(stats_of(&bus, "t").retained, 5);
    let mut b = bus.subscribe("t", "b").unwrap();
    let got = take(&mut b, 5, true).await;
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![5, 6, 7, 8, 9]
    );
    assert_eq!(bus.lag("t", "b").await.unwrap(), 0);
    assert_eq!(bus.lag("t", "a").await.unwrap(), 5);
}

#[tokio::test]
async fn poll_is_fair_across_partitions() {
    let bus = bus(2, 1024);
    let mut c = bus.subscribe("t", "g").unwrap();
    let k0 = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| partition_for(k.as_bytes(), 2) == 0)
        .unwrap();
    let k1 = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| partition_for(k.as_bytes(), 2) == 1)
        .unwrap();
    let mut batch: Vec<OutRecord> = (0..100).map(|_| rec(&k0, "")).collect();
    batch.extend((0..100).map(|_| rec(&k1, "")));
    bus.send("t", batch).await.unwrap();
    for _ in 0..4 {
        let got = c.poll(10, WAIT).await.unwrap();
        assert_eq!(got.len(), 10);
        assert_eq!(got.iter().filter(|r| r.partition == 0).count(), 5);
    }
    // Even with `max` below the number of partitions, successive polls rotate.
    let one = c.poll(1, WAIT).await.unwrap();
    let two = c.poll(1, WAIT).await.unwrap();
    assert_ne!(one[0].partition, two[0].partition);
    // One partition empty: the other one gets the whole batch.
    let b2 = (0..20).map(|_| rec(&k1, "")).collect::<Vec<_>>();
    let _ = take(&mut c, 200 - 42, false).await;
    bus.send("t", b2).await.unwrap();
    let got = c.poll(10, WAIT).await.unwrap();
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|r| r.partition == 1));
}

#[tokio::test]
async fn poll_wakes_on_send_and_times_out_empty() {
    let bus = bus(4, 1024);
    let mut c = bus.subscribe("t", "g").unwrap();
    let start = std::time::Instant::now();
    assert!(c.poll(10, SHORT).await.unwrap().is_empty());
    assert!(start.elapsed() >= SHORT);
    assert!(
        c.poll(10, Duration::ZERO).await.unwrap().is_empty(),
        "zero timeout returns at once"
    );

    let producer = bus.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        producer
            .send(
                "t",
                vec![rec("k", "hello").with_header("origin_ms", b"123".to_vec())],
            )
            .await
            .unwrap();
    });
    let start = std::time::Instant::now();
    let got = c.poll(10, Duration::from_secs(30)).await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(&*r.topic, "t");
    assert_eq!(&r.key[..], b"k");
    assert_eq!(&r.payload[..], b"hello");
    assert_eq!(r.header("origin_ms"), Some(&b"123"[..]));
    let now = now_ms();
    assert!(r.timestamp_ms <= now && r.timestamp_ms > now - 60_000);
}

#[tokio::test]
async fn records_share_the_topic_name() {
    let bus = bus(1, 16);
    let mut c = bus.subscribe("shared", "g").unwrap();
    bus.send("shared", vec![rec("a", "1"), rec("a", "2")])
        .await
        .unwrap();
    let got = take(&mut c, 2, true).await;
    assert!(Arc::ptr_eq(&got[0].topic, &got[1].topic));
}

#[tokio::test]
async fn topics_lazy_and_explicit() {
    let bus = bus(3, 16);
    assert_eq!(bus.partitions("lazy").unwrap(), 3);
    bus.create_topic("explicit", 8, 2);
    bus.create_topic("explicit", 2, 100); // idempotent: first definition wins
    assert_eq!(bus.partitions("explicit").unwrap(), 8);
    bus.create_topic("lazy", 5, 5);
    assert_eq!(bus.partitions("lazy").unwrap(), 3);
    bus.create_topic("zero", 0, 0);
    assert_eq!(bus.partitions("zero").unwrap(), 1);
    let names: Vec<String> = bus.stats().into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec!["explicit", "lazy", "zero"]);
    assert_eq!(EmbeddedConfig::default().partitions, 4);
    assert_eq!(EmbeddedConfig::default().capacity, 8_192);

    // The explicit capacity applies.
    let _c = bus.subscribe("explicit", "g").unwrap();
    let k = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| partition_for(k.as_bytes(), 8) == 0)
        .unwrap();
    bus.send("explicit", vec![rec(&k, ""), rec(&k, "")])
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(SHORT, bus.send("explicit", vec![rec(&k, "")]))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn more_members_than_partitions() {
    let bus = bus(4, 16);
    let mut members: Vec<EmbeddedConsumer> =
        (0..5).map(|_| bus.subscribe("t", "g").unwrap()).collect();
    let assignments: Vec<Vec<u32>> = members.iter_mut().map(|m| m.assignment()).collect();
    assert_eq!(
        assignments,
        vec![vec![0], vec![1], vec![2], vec![3], vec![]]
    );
    // Dropping the owner of partition 1 rebalances over the remaining four.
    members.remove(1);
    let assignments: Vec<Vec<u32>> = members.iter_mut().map(|m| m.assignment()).collect();
    assert_eq!(assignments, vec![vec![0], vec![1], vec![2], vec![3]]);
    let mut spare = bus.subscribe("t", "g").unwrap();
    assert!(spare.assignment().is_empty());
    bus.close();
    assert_eq!(spare.poll(1, WAIT).await, Err(BusError::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_moves_back_resumes_from_committed() {
    let bus = bus(2, 64);
    let mut a = bus.subscribe("t", "g").unwrap();
    bus.send("t", (0..20).map(|i| rec(&format!("k{i}"), "")).collect())
        .await
        .unwrap();
    assert_eq!(a.assignment(), vec![0, 1]);
    let first = take(&mut a, 20, false).await;
    // Another member joins (takes partition 1) and leaves without committing.
    let b = bus.subscribe("t", "g").unwrap();
    assert!(matches!(a.commit(1, 1), Err(BusError::NotAssigned { .. })));
    drop(b);
    // Partition 1 is back with `a`, which re-reads it from the committed offset 0.
    let in_p1 = first.iter().filter(|r| r.partition == 1).count();
    let again = take(&mut a, in_p1, true).await;
    assert!(again.iter().all(|r| r.partition == 1));
    assert_eq!(again[0].offset, 0);
    // Partition 0 was kept throughout: no redelivery there.
    assert!(a.poll(10, SHORT).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_and_groups_keep_key_order() {
    let bus = bus(4, 256);
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 5000;
    let mut handles = Vec::new();
    for group in ["g1", "g2"] {
        for _ in 0..2 {
            let mut c = bus.subscribe("t", group).unwrap();
            handles.push(tokio::spawn(async move {
                let mut got: Vec<(Vec<u8>, u64)> = Vec::new();
                loop {
                    match c.poll(128, WAIT).await {
                        Ok(batch) => {
                            c.commit_batch(&batch).unwrap();
                            got.extend(batch.into_iter().map(|r| {
                                let seq = u64::from_le_bytes(r.payload[..8].try_into().unwrap());
                                (r.key.to_vec(), seq)
                            }));
                        }
                        Err(BusError::Closed) => return (c.group().to_owned(), got),
                        Err(e) => panic!("{e}"),
                    }
                }
            }));
        }
    }
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let bus = bus.clone();
        producers.push(tokio::spawn(async move {
            for chunk in 0..PER_PRODUCER / 50 {
                let batch = (chunk * 50..chunk * 50 + 50)
                    .map(|i| {
                        OutRecord::new(
                            format!("p{p}-k{}", i % 10),
                            (i as u64).to_le_bytes().to_vec(),
                        )
                    })
                    .collect();
                bus.send("t", batch).await.unwrap();
            }
        }));
    }
    for p in producers {
        tokio::time::timeout(Duration::from_secs(30), p)
            .await
            .unwrap()
            .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), async {
        while bus.lag("t", "g1").await.unwrap() + bus.lag("t", "g2").await.unwrap() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    bus.close();
    let mut per_group: HashMap<String, Vec<(Vec<u8>, u64)>> = HashMap::new();
    for h in handles {
        let (group, got) = h.await.unwrap();
        per_group.entry(group).or_default().extend(got);
    }
    for (group, got) in per_group {
        assert_eq!(got.len(), PRODUCERS * PER_PRODUCER, "{group}");
        let mut last: HashMap<Vec<u8>, u64> = HashMap::new();
        for (key, seq) in got {
            if let Some(prev) = last.insert(key, seq) {
                assert!(seq > prev, "{group}: out of order");
            }
        }
    }
    let s = stats_of(&bus, "t");
    assert_eq!(s.sent, (PRODUCERS * PER_PRODUCER) as u64);
    assert_eq!(s.retained, 0);
}
