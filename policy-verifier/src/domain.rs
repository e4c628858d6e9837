//! the value domain the rules are written over.
//!
//! the verifier's checks, its step function and the invariants are written
//! once, generic over `Domain`. `Concrete` runs them in the verifier PD;
//! the prover (crate `policy-prover`) runs the very same code over Z3 terms.
//! a proof about the symbolic run is a proof about the PD's code, as long as
//! the two domains agree on every operation, which the differential tests
//! check on random and boundary values.

/// integer and boolean operations the rules use; nothing else.
///
/// integers are mathematical (unbounded, non-negative in practice): the rules
/// never rely on wrap-around. inputs are u64; every expression the rules build
/// is a sum of at most five u64 values or one u64 times 1000, so `Concrete`
/// computes it exactly in u128.
pub trait Domain {
    /// an integer value or term.
    type Int: Clone;
    /// a boolean value or term.
    type Bool: Clone;

    /// a literal.
    fn int(&self, v: u64) -> Self::Int;
    /// a literal.
    fn bool(&self, v: bool) -> Self::Bool;
    /// a + b
    fn add(&self, a: &Self::Int, b: &Self::Int) -> Self::Int;
    /// max(a - b, 0)
    fn sub_sat(&self, a: &Self::Int, b: &Self::Int) -> Self::Int;
    /// a * b
    fn mul(&self, a: &Self::Int, b: &Self::Int) -> Self::Int;
    /// ceil(a / b); the rules only read it where b > 0.
    fn div_ceil(&self, a: &Self::Int, b: &Self::Int) -> Self::Int;
    /// a <= b
    fn le(&self, a: &Self::Int, b: &Self::Int) -> Self::Bool;
    /// a == b
    fn eq(&self, a: &Self::Int, b: &Self::Int) -> Self::Bool;
    /// a && b
    fn and(&self, a: &Self::Bool, b: &Self::Bool) -> Self::Bool;
    /// a || b
    fn or(&self, a: &Self::Bool, b: &Self::Bool) -> Self::Bool;
    /// !a
    fn not(&self, a: &Self::Bool) -> Self::Bool;
    /// if c { a } else { b }
    fn ite(&self, c: &Self::Bool, a: &Self::Int, b: &Self::Int) -> Self::Int;
    /// if c { a } else { b }
    fn ite_bool(&self, c: &Self::Bool, a: &Self::Bool, b: &Self::Bool) -> Self::Bool;

    /// a < b
    fn lt(&self, a: &Self::Int, b: &Self::Int) -> Self::Bool {
        self.not(&self.le(b, a))
    }
    /// a => b
    fn implies(&self, a: &Self::Bool, b: &Self::Bool) -> Self::Bool {
        self.or(&self.not(a), b)
    }
    /// the value of `b` when the domain knows it without solving: always for
    /// `Concrete`, never for a symbolic domain. generic code may skip work
    /// on it (stop a loop early), never change a result.
    fn known(&self, b: &Self::Bool) -> Option<bool> {
        let _ = b;
        None
    }
}

/// the domain of the verifier PD: exact u128 arithmetic on u64 inputs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Concrete;

impl Domain for Concrete {
    type Int = u128;
    type Bool = bool;

    #[inline(always)]
    fn int(&self, v: u64) -> u128 {
        u128::from(v)
    }
    #[inline(always)]
    fn bool(&self, v: bool) -> bool {
        v
    }
    #[inline(always)]
    fn add(&self, a: &u128, b: &u128) -> u128 {
        // exact for the rules' expressions (see the trait doc); saturation is
        // only a no-panic backstop and still compares as "too large".
        a.saturating_add(*b)
    }
    #[inline(always)]
    fn sub_sat(&self, a: &u128, b: &u128) -> u128 {
        a.saturating_sub(*b)
    }
    #[inline(always)]
    fn mul(&self, a: &u128, b: &u128) -> u128 {
        a.saturating_mul(*b)
    }
    #[inline(always)]
    fn div_ceil(&self, a: &u128, b: &u128) -> u128 {
        // u64 division is several times faster than u128 division; utilisation
        // operands fit in u64 for every budget below 1.8e16 µs.
        match (u64::try_from(*a), u64::try_from(*b)) {
            (Ok(x), Ok(y)) => match x.checked_div(y) {
                Some(q) => u128::from(if x.checked_rem(y) == Some(0) { q } else { q.saturating_add(1) }),
                None => 0,
            },
            _ => match a.checked_div(*b) {
                Some(q) => {
                    if a.checked_rem(*b) == Some(0) {
                        q
                    } else {
                        q.saturating_add(1)
                    }
                }
                None => 0,
            },
        }
    }
    #[inline(always)]
    fn le(&self, a: &u128, b: &u128) -> bool {
        a <= b
    }
    #[inline(always)]
    fn eq(&self, a: &u128, b: &u128) -> bool {
        a == b
    }
    #[inline(always)]
    fn and(&self, a: &bool, b: &bool) -> bool {
        *a && *b
    }
    #[inline(always)]
    fn or(&self, a: &bool, b: &bool) -> bool {
        *a || *b
    }
    #[inline(always)]
    fn not(&self, a: &bool) -> bool {
        !*a
    }
    #[inline(always)]
    fn ite(&self, c: &bool, a: &u128, b: &u128) -> u128 {
        if *c {
            *a
        } else {
            *b
        }
    }
    #[inline(always)]
    fn known(&self, b: &bool) -> Option<bool> {
        Some(*b)
    }
    #[inline(always)]
    fn ite_bool(&self, c: &bool, a: &bool, b: &bool) -> bool {
        if *c {
            *a
        } else {
            *b
        }
    }
}
