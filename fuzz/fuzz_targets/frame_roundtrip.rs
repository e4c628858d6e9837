//! the link framing (pd-interface `frame`): any byte stream fed to the
//! deframer never panics and yields only payloads whose CRC checks; every
//! payload up to the cap survives encode → deframe unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pd_interface::frame::{self, Deframer, Pushed, MAX_FRAME, MAX_PAYLOAD};

fuzz_target!(|data: &[u8]| {
    // the stream as the link PD's uart sees it
    let mut d: Box<Deframer<MAX_FRAME>> = Box::new(Deframer::new());
    for &b in data {
        if let Pushed::Frame(p) = d.push(b) {
            assert!(p.len() <= MAX_PAYLOAD + 4);
        }
    }
    // the input as one payload: it round-trips, bit for bit
    let payload = &data[..data.len().min(MAX_PAYLOAD)];
    let mut out = vec![0u8; MAX_FRAME];
    let n = frame::encode(payload, &mut out).expect("a payload within the cap encodes");
    assert_eq!(out[..n].iter().filter(|&&b| b == 0).count(), 1, "one delimiter, at the end");
    let mut d: Box<Deframer<MAX_FRAME>> = Box::new(Deframer::new());
    let mut got = None;
    for &b in &out[..n] {
        if let Pushed::Frame(p) = d.push(b) {
            got = Some(p.to_vec());
        }
    }
    if payload.is_empty() {
        return;
    }
    assert_eq!(got.as_deref(), Some(payload));
});
