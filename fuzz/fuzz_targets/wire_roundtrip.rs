//! the postcard plan decoder the verifier PD runs on link input
//! (`policy_verifier::wire::decode`): never panics; whatever it accepts
//! re-encodes to the very same bytes (no two encodings of one plan, so the
//! receipt cache and the confirmation token see one canonical form).
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy_verifier::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(plan) = wire::decode(data) {
        let mut buf = [0u8; wire::MAX_PLAN_BYTES];
        let again = wire::encode(&plan, &mut buf).expect("a decoded plan encodes");
        assert_eq!(&again[..], data, "decode accepted a non-canonical encoding");
        assert!(plan.actions.len() <= policy_verifier::MAX_ACTIONS);
        assert_eq!(wire::decode(again).as_ref(), Ok(&plan));
    }
});
