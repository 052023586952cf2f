//! The tokio API in one process: a host and a guest linked to each other, the guest connecting
//! from a thread. Cross-process async cases (a spawned guest, a killed peer, wake counts
//! between spinning processes) live in `transport_async_processes.rs`.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use memwire_transport::{
    Error, Guest, Host, HostConfig, Link, LinkConfig, SizeClass, WaitStrategy,
};

/// Bounds every wait: only a lost wake-up reaches it, and then the test fails instead of
/// hanging.
const DEADLINE: Duration = Duration::from_secs(30);

/// A host and a guest of it, both in this process: `(host, host's link, guest's link)`.
fn pair(link: LinkConfig, host_wait: WaitStrategy, guest_wait: WaitStrategy) -> (Host, Link, Link) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "async-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let host = Host::bind(
        &name,
        HostConfig {
            link,
            wait: host_wait,
            ..HostConfig::default()
        },
    )
    .unwrap();
    let guest = std::thread::spawn(move || Guest::connect_with(&name, guest_wait));
    let ours = host.accept_timeout(DEADLINE).unwrap();
    let theirs = guest.join().unwrap().unwrap();
    (host, ours, theirs)
}

fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as u8).wrapping_add(j as u8)).collect()
}

/// A guest task on a multi-thread runtime echoes every size class; both halves await.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_echo_of_every_size() {
    let (_host, mut link, guest) = pair(
        LinkConfig::default(),
        WaitStrategy::default(),
        WaitStrategy::default(),
    );
    let echo = tokio::spawn(async move {
        let (mut tx, mut rx) = guest.split();
        loop {
            match rx.recv_async().await {
                Ok(m) => tx.send_async(&m).await.unwrap(),
                Err(Error::PeerGone { .. }) => return,
                Err(e) => panic!("guest: {e}"),
            }
        }
    });
    for (i, len) in [0, 1, 56, 57, 256, 4096, 5000, 65536, 70_000, (1 << 20) + 1]
        .into_iter()
        .enumerate()
    {
        let data = payload(i as u64, len);
        link.tx().send_async(&data).await.unwrap();
        let back = tokio::time::timeout(DEADLINE, link.rx().recv_async())
            .await
            .expect("echo within the deadline")
            .unwrap();
        assert_eq!(&*back, data.as_slice(), "{len} bytes");
    }
    drop(link);
    tokio::time::timeout(DEADLINE, echo).await.unwrap().unwrap();
}

/// A blocking sender wakes an async receiver asleep on its doorbell.
#[tokio::test]
async fn a_sync_sender_wakes_an_async_receiver() {
    const MESSAGES: u64 = 2000;
    let (_host, link, mut guest) = pair(
        LinkConfig::default(),
        WaitStrategy::default(),
        WaitStrategy::Block,
    );
    let (mut tx, _rx) = link.split();
    let (start, started) = std::sync::mpsc::channel::<()>();
    let sender = std::thread::spawn(move || {
        started.recv().unwrap();
        for i in 0..MESSAGES {
            tx.send(&payload(i, (i % 300) as usize)).unwrap();
        }
        tx.stats()
    });
    let mut start = Some(start);
    for i in 0..MESSAGES {
        let mut recv = pin!(guest.rx().recv_async());
        if let Some(start) = start.take() {
            // The first receive is asleep before anything is sent: the sender must ring.
            assert!(poll_once(recv.as_mut()).is_pending());
            start.send(()).unwrap();
        }
        let m = tokio::time::timeout(DEADLINE, recv)
            .await
            .expect("a message within the deadline")
            .unwrap();
        assert_eq!(
            &*m,
            payload(i, (i % 300) as usize).as_slice(),
            "message {i}"
        );
    }
    let sent = sender.join().unwrap();
    let received = guest.stats();
    assert_eq!(received.messages_received, MESSAGES);
    assert!(received.sleeps >= 1, "{received:?}");
    assert!(sent.wake_syscalls >= 1, "{sent:?}");
}

/// An async sender on a tiny link waits for room in the ring and for returned slots.
#[tokio::test]
async fn an_async_sender_waits_for_room_and_slots() {
    const MESSAGES: u64 = 3000;
    let tiny = LinkConfig {
        ring_depth: 2,
        classes: vec![SizeClass::new(256, 2), SizeClass::new(4096, 2)],
        ..LinkConfig::default()
    };
    let (_host, mut link, guest) = pair(tiny, WaitStrategy::Block, WaitStrategy::Block);
    let len = |i: u64| (i * 37 % 4000) as usize;
    let receiver = std::thread::spawn(move || {
        let (_tx, mut rx) = guest.split();
        let mut held = Vec::new();
        for i in 0..MESSAGES {
            let m = rx.recv_timeout(DEADLINE).unwrap();
            assert_eq!(&*m, payload(i, len(i)).as_slice(), "message {i}");
            // Hold a message now and then, so the sender runs out of slots.
            held.push(m);
            if held.len() > 1 {
                held.clear();
            }
        }
    });
    for i in 0..MESSAGES {
        let mut loan = tokio::time::timeout(DEADLINE, link.tx().loan_async(len(i)))
            .await
            .expect("a loan within the deadline")
            .unwrap();
        loan.as_mut_slice().copy_from_slice(&payload(i, len(i)));
        loan.commit().unwrap();
    }
    receiver.join().unwrap();
    assert_eq!(link.stats().messages_sent, MESSAGES);
}

/// Dropping a pending `recv_async` withdraws its sleep: the next send makes no wake syscall,
/// and the message is still received.
#[tokio::test]
async fn a_dropped_recv_async_leaves_no_sleeper_behind() {
    let (_host, mut link, mut guest) = pair(
        LinkConfig::default(),
        WaitStrategy::default(),
        WaitStrategy::Block,
    );
    let timed_out = tokio::time::timeout(Duration::from_millis(20), guest.rx().recv_async()).await;
    assert!(timed_out.is_err(), "nothing was sent");
    assert_eq!(guest.stats().sleeps, 1, "the receive slept on its doorbell");
    link.tx().send(b"after").unwrap();
    assert_eq!(link.stats().wake_syscalls, 0, "nobody declared a sleep");
    let m = tokio::time::timeout(DEADLINE, guest.rx().recv_async())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&*m, b"after");
}

/// Awaiting outside a tokio runtime is an error, not a panic.
#[test]
fn recv_async_outside_a_runtime_is_an_error() {
    let (_host, _link, mut guest) = pair(
        LinkConfig::default(),
        WaitStrategy::default(),
        WaitStrategy::Block,
    );
    let recv = pin!(guest.rx().recv_async());
    match poll_once(recv) {
        Poll::Ready(Err(Error::Io { .. })) => {}
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

/// Polls `future` once with a waker that does nothing.
fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}
