//! the hosted backend keeps Microkit's rules: a PD reaches only what its
//! spec (from the .system file) gives it; PPCs are synchronous and return the
//! callee's message registers; signals coalesce until the receiver runs.
#![cfg(feature = "hosted")]

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use pd_runtime::hosted::{self, ChannelWire, DynHandler, PdControl, PdSpec};
use pd_runtime::{Channel, Handler, MessageInfo, RuntimeError, Unhandled};

/// the callee: answers a PPC with label+1 and mr0*2; records notifications.
struct Server {
    seen: mpsc::Sender<u64>,
}

impl Handler for Server {
    type Error = Unhandled;
    fn protected(&mut self, ch: Channel, info: MessageInfo) -> Result<MessageInfo, Unhandled> {
        assert_eq!(ch, Channel::new(3), "the callee sees its own end's id");
        let x = pd_runtime::get_mr(0).unwrap_or(0);
        pd_runtime::set_mr(0, x * 2).ok();
        Ok(MessageInfo::new(info.label() + 1, 1))
    }
    fn notified(&mut self, ch: Channel) -> Result<(), Unhandled> {
        let _ = self.seen.send(ch.index() as u64);
        // stay busy so later signals pile up and coalesce
        std::thread::sleep(Duration::from_millis(50));
        Ok(())
    }
}

/// the caller runs its checks in init and reports them.
fn client_checks() -> Vec<Result<u64, RuntimeError>> {
    let mut out = Vec::new();
    pd_runtime::set_mr(0, 21).ok();
    out.push(
        Channel::new(1)
            .pp_call(MessageInfo::new(41, 1))
            .map(|r| r.label() * 1000 + pd_runtime::get_mr(0).unwrap_or(0)),
    );
    // channel 2 is notify-only: no PPC on it
    out.push(Channel::new(2).pp_call(MessageInfo::new(1, 0)).map(|_| 0));
    // channel 9 was never given
    out.push(Channel::new(9).notify().map(|_| 0));
    out.push(Channel::new(9).irq_ack().map(|_| 0));
    out.push(pd_runtime::Child::new(0).stop().map(|_| 0));
    out
}

struct Idle;
impl Handler for Idle {
    type Error = Unhandled;
}

#[test]
fn channels_ppc_and_coalescing_follow_the_spec() {
    let server = PdControl::new("server", 200, false);
    let client = PdControl::new("client", 100, false);

    let mut sspec = PdSpec::default();
    sspec.channels.insert(
        3,
        ChannelWire {
            peer: client.clone(),
            peer_id: 1,
            notify: false,
            pp: false,
        },
    );
    let mut cspec = PdSpec::default();
    cspec.channels.insert(
        1,
        ChannelWire {
            peer: server.clone(),
            peer_id: 3,
            notify: false,
            pp: true,
        },
    );
    cspec.channels.insert(
        2,
        ChannelWire {
            peer: server.clone(),
            peer_id: 4,
            notify: true,
            pp: false,
        },
    );

    let (seen_tx, seen_rx) = mpsc::channel();
    let seen_tx = Arc::new(std::sync::Mutex::new(seen_tx));
    let s = hosted::spawn(
        server.clone(),
        sspec,
        Arc::new(move |_| {
            Ok(Box::new(Server {
                seen: seen_tx.lock().unwrap().clone(),
            }) as Box<dyn DynHandler>)
        }),
    )
    .unwrap();
    let (res_tx, res_rx) = mpsc::channel();
    let res_tx = Arc::new(std::sync::Mutex::new(res_tx));
    let c = hosted::spawn(
        client.clone(),
        cspec,
        Arc::new(move |_| {
            let _ = res_tx.lock().unwrap().send(client_checks());
            Ok(Box::new(Idle) as Box<dyn DynHandler>)
        }),
    )
    .unwrap();

    let results = res_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(results[0], Ok(42 * 1000 + 42), "reply label 41+1, mr0 21*2");
    assert_eq!(results[1], Err(RuntimeError::NotPermitted { channel: 2 }));
    assert_eq!(results[2], Err(RuntimeError::NotPermitted { channel: 9 }));
    assert_eq!(results[3], Err(RuntimeError::NotPermitted { channel: 9 }));
    assert_eq!(results[4], Err(RuntimeError::NoSuchChild { child: 0 }));

    // a first signal keeps the server busy; five more arrive meanwhile and
    // coalesce into one delivery on its channel 4
    server.signal(4);
    assert_eq!(seen_rx.recv_timeout(Duration::from_secs(2)), Ok(4));
    for _ in 0..5 {
        server.signal(4);
    }
    assert_eq!(seen_rx.recv_timeout(Duration::from_secs(2)), Ok(4));
    assert!(
        seen_rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "signals coalesced into one"
    );

    server.shutdown();
    client.shutdown();
    s.join().unwrap();
    c.join().unwrap();
}
