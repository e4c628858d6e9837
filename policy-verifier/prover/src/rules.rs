//! the checks under proof, as a parameter: the prover proves whatever
//! [`Rules`] it is given against the fixed specification
//! (`policy_verifier::definitions`). the default, [`Verifier`], is the
//! verifier PD's own code; tests hand in deliberately broken copies and
//! expect the proofs to fail. the trait lives in `policy_verifier::rules`,
//! because `verify::run` (the PD's plan loop) is generic over it too.

pub use policy_verifier::rules::{Rules, Verifier};
