//! the wire form of plans (postcard), bounded so the verifier PD decodes into
//! fixed buffers and never allocates.

use crate::plan::Plan;

/// the largest encoded plan: 16 actions of at most 22 bytes, a 512-byte
/// reason, a 32-byte session and a token fit in well under this.
pub const MAX_PLAN_BYTES: usize = 1024;

/// why a frame is not a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// longer than `MAX_PLAN_BYTES` (or the output buffer).
    TooLarge,
    /// not a postcard plan: bad tag, short input, bad utf-8, > 16 actions.
    Malformed,
    /// bytes left over after the plan.
    TrailingBytes,
    /// `version` is not 1.
    Version,
    /// a plan spelled in other bytes than its encoding (overlong varints):
    /// one plan has one byte string, so the verifier PD's receipt cache and
    /// the audit log compare like with like (found by fuzz target
    /// `wire-roundtrip`).
    NonCanonical,
}

impl WireError {
    /// a stable lowercase code for receipts and logs.
    pub const fn code(self) -> &'static str {
        match self {
            WireError::TooLarge => "wire.too_large",
            WireError::Malformed => "wire.malformed",
            WireError::TrailingBytes => "wire.trailing_bytes",
            WireError::Version => "plan.version",
            WireError::NonCanonical => "wire.non_canonical",
        }
    }
}

/// encodes a plan into `buf`.
pub fn encode<'a>(plan: &Plan, buf: &'a mut [u8]) -> Result<&'a mut [u8], WireError> {
    postcard::to_slice(plan, buf).map_err(|_| WireError::TooLarge)
}

/// the bytes a confirmation token covers: the plan with no token.
pub fn canonical_bytes<'a>(plan: &Plan, buf: &'a mut [u8]) -> Result<&'a [u8], WireError> {
    let mut unsigned = plan.clone();
    unsigned.confirmation = None;
    encode(&unsigned, buf).map(|b| &*b)
}

/// decodes a plan; the whole input must be one plan of version 1.
pub fn decode(bytes: &[u8]) -> Result<Plan, WireError> {
    if bytes.len() > MAX_PLAN_BYTES {
        return Err(WireError::TooLarge);
    }
    let (plan, rest): (Plan, &[u8]) = postcard::take_from_bytes(bytes).map_err(|_| WireError::Malformed)?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes);
    }
    if plan.version != crate::plan::PLAN_VERSION {
        return Err(WireError::Version);
    }
    let mut again = [0u8; MAX_PLAN_BYTES];
    if encode(&plan, &mut again).map(|b| &*b != bytes).unwrap_or(true) {
        return Err(WireError::NonCanonical);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlong_varint_is_refused() {
        // version 1, request id 127 as `ff 00` instead of `7f`, session "ops",
        // reason "", one system.query, no token
        let canonical = [1u8, 0x7f, 3, b'o', b'p', b's', 0, 1, 10, 0];
        let overlong = [1u8, 0xff, 0x00, 3, b'o', b'p', b's', 0, 1, 10, 0];
        assert_eq!(decode(&canonical).map(|p| p.request_id), Ok(127));
        assert_eq!(decode(&overlong), Err(WireError::NonCanonical));
    }
}
