//! Tests against the real DPDK: one EAL per test process, virtual devices,
//! one mempool per test so that tests run in parallel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use dpdk_bind::{
    Burst, Eal, EalError, FreeBatch, LaunchError, LcoreId, MbufRing, Mempool, MempoolError, Port,
    PortConfig, PortError, PortId, QueueId, RxChecksum, SocketId, TxBuffer, current_lcore,
};

/// The process's EAL: lcores 0 (main) and 1 (worker), no hugepages, no
/// PCI, and the virtual devices the port tests use.
fn eal() -> &'static Eal {
    static EAL: OnceLock<Eal> = OnceLock::new();
    EAL.get_or_init(|| {
        let prefix = format!("rvs-dpdk-bind-{}", std::process::id());
        Eal::init(&[
            "-l",
            "0,1",
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--no-shconf",
            "--no-telemetry",
            "--file-prefix",
            &prefix,
            "--log-level=lib.eal:warning",
            "--vdev=net_ring0",
            "--vdev=net_ring1",
            "--vdev=net_null0",
            "--vdev=net_null1",
        ])
        .unwrap_or_else(|err| panic!("EAL init failed: {err}"))
    })
}

/// Serialises the tests that launch on the worker lcore.
fn worker_lcore() -> (LcoreId, MutexGuard<'static, ()>) {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let worker = eal().worker_lcores().next().expect("EAL runs with -l 0,1");
    (worker, guard)
}

fn pool(name: &str, n_mbufs: u32) -> Mempool {
    Mempool::new(
        eal(),
        name,
        n_mbufs,
        32,
        Mempool::DEFAULT_DATA_ROOM,
        SocketId::ANY,
    )
    .expect("mempool")
}

/// A frame whose bytes encode `seq`, so that order and content can be checked.
fn frame(seq: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seq.wrapping_add(i as u8)).collect()
}

#[test]
fn eal_facts() {
    let eal = eal();
    assert_eq!(eal.lcore_count(), 2);
    assert_eq!(eal.main_lcore(), LcoreId(0));
    assert_eq!(eal.worker_lcores().collect::<Vec<_>>(), vec![LcoreId(1)]);
    assert!(eal.lcore_socket(LcoreId(1)).is_some());
    assert_eq!(eal.lcore_socket(LcoreId(100)), None);
    assert_eq!(eal.lcore_socket(LcoreId(u32::MAX)), None);
    assert!(eal.tsc_hz() > 0);
    assert!(eal.port_count() >= 3);
    // A test thread is not an EAL lcore (unless it ran Eal::init).
    let other = std::thread::spawn(current_lcore).join().expect("thread");
    assert_eq!(other, None);
    assert!(matches!(
        Eal::init(&["-l", "0"]),
        Err(EalError::AlreadyInitialised)
    ));
}

#[test]
fn mbuf_room_bounds() {
    let pool = pool("t-bounds", 63);
    let mut m = pool.alloc().expect("mbuf");
    assert_eq!((m.len(), m.pkt_len(), m.segments()), (0, 0, 1));
    assert!(m.is_empty());
    assert_eq!(m.headroom(), usize::from(Mempool::HEADROOM));
    let room = m.tailroom();
    assert_eq!(
        room,
        usize::from(Mempool::DEFAULT_DATA_ROOM - Mempool::HEADROOM)
    );

    // Past the room: refused, nothing changes, no panic.
    assert!(m.append(room + 1).is_none());
    assert!(m.append(usize::MAX).is_none());
    assert!(m.prepend(m.headroom() + 1).is_none());
    assert!(m.prepend(usize::MAX).is_none());
    assert!(!m.adj(1));
    assert!(!m.trim(1));
    assert!(!m.adj(usize::MAX));
    assert_eq!((m.len(), m.headroom(), m.tailroom()), (0, 128, room));

    // Fill the whole tailroom, then the whole headroom.
    let payload = frame(7, room);
    m.append(room)
        .expect("whole tailroom")
        .copy_from_slice(&payload);
    assert_eq!(m.tailroom(), 0);
    assert!(m.append(1).is_none());
    assert_eq!(m.as_ref(), &payload[..]);
    let header = frame(200, 128);
    m.prepend(128)
        .expect("whole headroom")
        .copy_from_slice(&header);
    assert_eq!(m.headroom(), 0);
    assert!(m.prepend(1).is_none());
    assert_eq!(m.len(), room + 128);
    assert_eq!(m.pkt_len(), m.len());
    assert_eq!(&m.as_ref()[..128], &header[..]);
    assert_eq!(&m.as_ref()[128..], &payload[..]);

    // Remove from both ends.
    assert!(m.adj(128));
    assert_eq!(m.as_ref(), &payload[..]);
    assert!(m.trim(10));
    assert_eq!(m.as_ref(), &payload[..room - 10]);
    assert!(!m.trim(room));
    m.truncate(100);
    assert_eq!(m.as_ref(), &payload[..100]);
    m.truncate(1000); // longer: no change
    assert_eq!(m.len(), 100);
    assert_eq!((m.headroom(), m.pkt_len()), (128, 100));
    m.as_mut()[0] = 0xaa;
    assert_eq!(m.as_ref()[0], 0xaa);
    assert!(m.adj(100));
    assert!(m.is_empty());

    // Fresh mbufs carry no rx metadata.
    assert_eq!(m.rss_hash(), None);
    assert_eq!(m.ip_checksum(), RxChecksum::Unknown);
    assert_eq!(m.l4_checksum(), RxChecksum::Unknown);
    m.set_port(PortId(3));
    assert_eq!(m.port(), PortId(3));
    m.prefetch();

    assert_eq!(pool.in_use(), 1);
    drop(m);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn mempool_alloc_bulk_and_exhaustion() {
    let pool = pool("t-bulk", 63);
    assert_eq!(pool.name(), "t-bulk");
    let mut first: [Option<dpdk_bind::Mbuf>; 40] = std::array::from_fn(|_| None);
    assert!(pool.alloc_bulk(&mut first));
    assert!(first.iter().all(Option::is_some));
    assert_eq!(pool.in_use(), 40);
    let mut second: [Option<dpdk_bind::Mbuf>; 40] = std::array::from_fn(|_| None);
    assert!(!pool.alloc_bulk(&mut second), "only 23 left");
    assert!(second.iter().all(Option::is_none));
    assert_eq!(pool.in_use(), 40);
    // Refilling frees what was there first.
    assert!(pool.alloc_bulk(&mut first[..20]));
    assert_eq!(pool.in_use(), 40);
    let rest: Vec<_> = std::iter::from_fn(|| pool.alloc()).collect();
    assert_eq!(rest.len(), 23);
    assert!(pool.alloc().is_none());
    drop(rest);
    drop(first);
    assert_eq!(pool.in_use(), 0);
    assert_eq!(pool.available(), 63);
}

#[test]
fn setup_errors_are_typed() {
    let eal = eal();
    let _pool = pool("t-dup", 63);
    match Mempool::new(eal, "t-dup", 63, 0, 2048, SocketId::ANY) {
        Err(MempoolError::Create { errno, .. }) => assert_eq!(errno.code(), 17, "EEXIST: {errno}"),
        other => panic!("duplicate pool name: {other:?}"),
    }
    assert!(matches!(
        Mempool::new(eal, "a\0b", 63, 0, 2048, SocketId::ANY),
        Err(MempoolError::NulInName(_))
    ));
    match PortId::by_name(eal, "net_nothing9") {
        Err(PortError::NotFound { errno, .. }) => assert!(!errno.text().is_empty()),
        other => panic!("unknown port: {other:?}"),
    }
    // net_null1 is never configured: closing a port releases a virtual
    // device, so the other tests' devices may be gone.
    let null = PortId::by_name(eal, "net_null1").expect("net_null1");
    match Port::configure(
        eal,
        null,
        &PortConfig {
            rx_queues: 2000,
            ..PortConfig::default()
        },
        &_pool,
        SocketId::ANY,
    ) {
        Err(PortError::TooManyQueues {
            kind: "rx",
            requested: 2000,
            ..
        }) => {}
        other => panic!("too many queues: {other:?}"),
    }
    assert!(matches!(
        Port::configure(
            eal,
            PortId(200),
            &PortConfig::default(),
            &_pool,
            SocketId::ANY
        ),
        Err(PortError::NoSuchPort(PortId(200)))
    ));
}

#[test]
fn port_round_trip_on_net_ring() {
    let eal = eal();
    let pool = pool("t-ring-port", 511);
    let id = PortId::by_name(eal, "net_ring0").expect("net_ring0");
    let info = id.info(eal).expect("info");
    assert_eq!(info.driver_name, "net_ring");
    assert!(info.max_rx_queues >= 1 && info.max_tx_queues >= 1);

    let mut port =
        Port::configure(eal, id, &PortConfig::default(), &pool, SocketId::ANY).expect("configure");
    assert!(!port.rss(), "net_ring has no RSS: the request is ignored");
    assert!(matches!(
        Port::configure(eal, id, &PortConfig::default(), &pool, SocketId::ANY),
        Err(PortError::PortInUse(_))
    ));
    // net_ring filters nothing and says yes (net_af_packet and net_memif
    // answer ENOTSUP; rvsd's `multicast` module handles that).
    port.enable_all_multicast().expect("all multicast");
    port.start().expect("start");
    assert!(port.link().expect("link").up);
    port.mac_address().expect("mac");
    port.reset_stats().expect("reset stats");

    let mut rx = port.rx_queue(QueueId(0)).expect("rx queue");
    let mut tx = port.tx_queue(QueueId(0)).expect("tx queue");
    assert!(matches!(
        port.rx_queue(QueueId(0)),
        Err(PortError::QueueTaken { .. })
    ));
    assert!(matches!(
        port.tx_queue(QueueId(1)),
        Err(PortError::NoSuchQueue { .. })
    ));
    assert!(matches!(port.stop(), Err(PortError::QueuesInUse(_))));

    let frames: Vec<Vec<u8>> = (0..32u8)
        .map(|seq| frame(seq, 60 + usize::from(seq)))
        .collect();
    let mut out: TxBuffer<32> = TxBuffer::new();
    for bytes in &frames {
        let mut m = pool.alloc().expect("mbuf");
        m.append(bytes.len()).expect("room").copy_from_slice(bytes);
        out.push(m).expect("room in the tx buffer");
    }
    assert!(out.is_full());
    let extra = pool.alloc().expect("mbuf");
    assert!(
        out.push(extra).is_err(),
        "a full buffer gives the mbuf back"
    );
    let outcome = out.flush(&mut tx);
    assert_eq!((outcome.sent, outcome.dropped), (32, 0));
    assert!(out.is_empty());

    // net_ring loops each tx queue back to the rx queue of the same index.
    let mut burst: Burst<32> = Burst::new();
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while received.len() < frames.len() && Instant::now() < deadline {
        rx.burst(&mut burst);
        burst.prefetch(0);
        let mut packets = burst.drain();
        while let Some(m) = packets.next() {
            packets.prefetch(0);
            received.push(m.as_ref().to_vec());
        }
    }
    assert_eq!(received, frames);

    let stats = port.stats().expect("stats");
    assert_eq!((stats.opackets, stats.ipackets), (32, 32));
    drop((rx, tx));
    port.stop().expect("stop");
    port.close().expect("close");
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn tx_buffer_drop_accounting() {
    let eal = eal();
    let pool = pool("t-txdrop", 2047);
    let id = PortId::by_name(eal, "net_ring1").expect("net_ring1");
    let mut port =
        Port::configure(eal, id, &PortConfig::default(), &pool, SocketId::ANY).expect("configure");
    port.start().expect("start");
    let mut tx = port.tx_queue(QueueId(0)).expect("tx queue");

    // Nobody receives: the port's internal ring fills up and then refuses.
    let (mut sent, mut dropped) = (0, 0);
    let mut out: TxBuffer<32> = TxBuffer::new();
    for _ in 0..40 {
        while !out.is_full() {
            let mut m = pool.alloc().expect("mbuf");
            m.append(64).expect("room").fill(0x5a);
            out.push(m).expect("not full");
        }
        let outcome = out.flush(&mut tx);
        assert_eq!(outcome.sent + outcome.dropped, 32);
        sent += outcome.sent;
        dropped += outcome.dropped;
    }
    assert!(dropped > 0, "the ring must overflow");
    assert_eq!(sent + dropped, 40 * 32);
    // Dropped mbufs went back to the pool; sent ones wait in the port.
    assert_eq!(pool.in_use() as usize, sent);

    // A dropped TxBuffer frees what it holds.
    for _ in 0..5 {
        out.push(pool.alloc().expect("mbuf")).expect("room");
    }
    assert_eq!(pool.in_use() as usize, sent + 5);
    assert_eq!(out.clear(), 5);
    out.push(pool.alloc().expect("mbuf")).expect("room");
    drop(out);
    assert_eq!(pool.in_use() as usize, sent);

    // Receive everything back and free it in bulk.
    let mut rx = port.rx_queue(QueueId(0)).expect("rx queue");
    let mut burst: Burst<32> = Burst::new();
    let mut frees: FreeBatch<32> = FreeBatch::new();
    let mut received = 0;
    while rx.burst(&mut burst) > 0 {
        for m in burst.drain() {
            received += 1;
            frees.push(m);
        }
    }
    assert_eq!(received, sent);
    assert!(frees.len() < 32);
    frees.flush();
    assert!(frees.is_empty());
    assert_eq!(pool.in_use(), 0);
    drop((rx, tx));
    port.close().expect("close");
}

#[test]
fn null_port_receives_and_bursts_free_leftovers() {
    let eal = eal();
    let pool = pool("t-null", 1023);
    let id = PortId::by_name(eal, "net_null0").expect("net_null0");
    let config = PortConfig {
        rx_descriptors: 64,
        tx_descriptors: 64,
        ..PortConfig::default()
    };
    let mut port = Port::configure(eal, id, &config, &pool, SocketId::ANY).expect("configure");
    assert!(port.rss(), "net_null accepts an RSS configuration");
    port.start().expect("start");
    let mut rx = port.rx_queue(QueueId(0)).expect("rx queue");
    let mut burst: Burst<16> = Burst::new();
    assert_eq!(
        rx.burst(&mut burst),
        16,
        "net_null always delivers a full burst"
    );
    assert_eq!(burst.len(), 16);
    let first = burst.drain().next().expect("one packet");
    assert_eq!(first.len(), 64);
    assert_eq!(pool.in_use(), 1, "leaving the drain freed the other 15");
    assert!(burst.is_empty());
    rx.burst(&mut burst);
    assert_eq!(pool.in_use(), 17);
    rx.burst(&mut burst); // refilling frees the previous 16
    assert_eq!(pool.in_use(), 17);
    drop(burst);
    drop(first);
    assert_eq!(pool.in_use(), 0);
    drop(rx);
    port.close().expect("close");
}

#[test]
fn spsc_ring_between_lcores() {
    const COUNT: u32 = 20_000;
    let eal = eal();
    let (worker, _guard) = worker_lcore();
    let pool = pool("t-spsc", 1023);
    let (mut producer, mut consumer) = MbufRing::new(eal, "t-spsc", 256, SocketId::ANY)
        .expect("ring")
        .split();

    let producer_pool = pool.clone();
    let handle = eal
        .launch_on(worker, move || {
            let mut out: TxBuffer<32> = TxBuffer::new();
            let mut seq = 0u32;
            let deadline = Instant::now() + Duration::from_secs(20);
            while seq < COUNT || !out.is_empty() {
                if Instant::now() > deadline {
                    return 1;
                }
                while seq < COUNT && !out.is_full() {
                    let Some(mut m) = producer_pool.alloc() else {
                        break;
                    };
                    m.append(4)
                        .expect("room")
                        .copy_from_slice(&seq.to_be_bytes());
                    out.push(m).expect("not full");
                    seq += 1;
                }
                producer.enqueue_burst(&mut out);
            }
            0
        })
        .expect("launch");

    let mut burst: Burst<32> = Burst::new();
    let mut expected = 0u32;
    let deadline = Instant::now() + Duration::from_secs(20);
    while expected < COUNT && Instant::now() < deadline {
        consumer.dequeue_burst(&mut burst);
        for m in burst.drain() {
            let seq = u32::from_be_bytes(m.as_ref().try_into().expect("4 bytes"));
            assert_eq!(seq, expected);
            expected += 1;
        }
    }
    assert_eq!(handle.wait(), 0);
    assert_eq!(expected, COUNT);
    assert_eq!(consumer.count(), 0);
    drop(consumer);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn ring_frees_leftovers_on_drop() {
    let eal = eal();
    let pool = pool("t-ring-drop", 63);
    let ring = MbufRing::new(eal, "t-ring-drop", 8, SocketId::ANY).expect("ring");
    let (mut producer, consumer) = ring.split();
    let mut out: TxBuffer<16> = TxBuffer::new();
    for _ in 0..12 {
        out.push(pool.alloc().expect("mbuf")).expect("room");
    }
    assert_eq!(producer.enqueue_burst(&mut out), 8, "exact-size ring of 8");
    assert_eq!(out.len(), 4, "the rest stays with the caller");
    assert_eq!(producer.count(), 8);
    drop(producer);
    assert_eq!(consumer.count(), 8);
    assert_eq!(out.clear(), 4);
    assert_eq!(pool.in_use(), 8);
    drop(consumer);
    assert_eq!(pool.in_use(), 0);
    // The name is free again once the ring is gone.
    drop(MbufRing::new(eal, "t-ring-drop", 8, SocketId::ANY).expect("ring again"));
}

#[test]
fn launch_on_worker_lcore() {
    let eal = eal();
    let (worker, _guard) = worker_lcore();
    assert!(matches!(
        eal.launch_on(eal.main_lcore(), || 0),
        Err(LaunchError::NotWorker(_))
    ));
    assert!(matches!(
        eal.launch_on(LcoreId(99), || 0),
        Err(LaunchError::NotWorker(_))
    ));
    assert!(matches!(
        eal.launch_on(LcoreId(u32::MAX), || 0),
        Err(LaunchError::NotWorker(_))
    ));

    let handle = eal.launch_on(worker, move || {
        if current_lcore() == Some(worker) {
            42
        } else {
            1
        }
    });
    let handle = handle.expect("launch");
    assert_eq!(handle.lcore(), worker);
    assert_eq!(handle.wait(), 42);

    // A panic is caught on the worker and becomes -1; the lcore stays usable.
    let handle = eal
        .launch_on(worker, || panic!("deliberate panic on a worker"))
        .expect("launch");
    assert_eq!(handle.wait(), -1);

    // Busy while a handle is alive.
    let release = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&release);
    let running = eal
        .launch_on(worker, move || {
            while !flag.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            7
        })
        .expect("launch");
    assert!(matches!(
        eal.launch_on(worker, || 0),
        Err(LaunchError::Busy(_))
    ));
    release.store(true, Ordering::Release);
    assert_eq!(running.wait(), 7);

    // Moving a DPDK object into the closure works too.
    let pool = pool("t-launch", 63);
    let handle = eal
        .launch_on(worker, move || {
            let m = pool.alloc();
            i32::from(m.is_some())
        })
        .expect("launch");
    assert_eq!(handle.wait(), 1);
}
