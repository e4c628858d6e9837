//! the host's json front end (`json::parse_plan`, `json::parse_state`):
//! never panics on any text; differential against the wire form: a plan
//! the json parser accepts prints back to json that parses to the same
//! plan, and its wire encoding decodes to it too (the PD sees what the host
//! checked).
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy_verifier::{json, wire, DEFAULT_POLICY};

fuzz_target!(|data: &[u8]| {
    let _ = json::parse_state(data, &DEFAULT_POLICY);
    let Ok(plan) = json::parse_plan(data) else { return };
    let text = json::plan_to_json(&plan).to_string();
    let back = json::parse_plan(text.as_bytes()).expect("printed json parses");
    assert_eq!(back, plan);
    let mut buf = [0u8; wire::MAX_PLAN_BYTES];
    if let Ok(bytes) = wire::encode(&plan, &mut buf) {
        assert_eq!(wire::decode(bytes), Ok(plan));
    }
});
