//! a case's input as the bytes the runner sends on the link: plans through
//! the host's json front end (tokens resolved, sealed for the boot), frame
//! markers, raw frames; and what plan the verifier PD would see in them.

use pd_interface::client::LinkClient;
use pd_interface::link::Request;
use policy_verifier::json::{self, InputError};
use policy_verifier::{confirm, wire, Plan};
use serde_json::Value;
use sha2::{Digest, Sha256};

use hosted_system::LinkStream;

use super::reference::Reference;

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// one message the runner sends.
#[expect(clippy::large_enum_variant, reason = "one message per case, built and sent at once, never stored in bulk")]
pub(super) enum Message {
    /// refused by the host's json front end: never sent.
    Refused(InputError),
    /// raw link bytes, and the plan they carry when they are an `Apply` of one.
    Bytes {
        /// what goes on the link.
        framed: Vec<u8>,
        /// the plan and its wire bytes.
        plan: Option<(Plan, Vec<u8>)>,
    },
}

fn encode_plan(p: &Plan) -> Option<Vec<u8>> {
    let mut buf = [0u8; wire::MAX_PLAN_BYTES];
    wire::encode(p, &mut buf).ok().map(|b| b.to_vec())
}

/// a plan as the host sends it: sealed with the plan key for the epoch.
fn frame_apply(bytes: &[u8], r: &Reference) -> Option<Vec<u8>> {
    frame_sealed(bytes, &r.plan_key, r.epoch)
}

fn frame_sealed(bytes: &[u8], key: &[u8; 32], epoch: u64) -> Option<Vec<u8>> {
    LinkClient::<LinkStream>::frame_request(&Request::Apply(bytes).sealed(key, epoch)).ok()
}

/// a frame marker of the corpus: `@plan:PLAN` the host's sealed frame,
/// `@sealed:HEX` plan bytes sealed as the host would (the decoder behind the
/// MAC is attacked), `@wrongkey:PLAN` sealed under another key,
/// `@otherepoch:PLAN` sealed for another boot (a frame captured before a
/// restart), `@unsealed:PLAN` an `Apply` without a MAC, `@oversize` a
/// well-formed frame one byte over this build's payload cap (which the
/// manifest sets); else raw hex.
fn frame_marker(h: &str, r: &Reference) -> Result<Vec<u8>, String> {
    if h == "@oversize" {
        return Ok(oversize_frame());
    }
    let plan_bytes = |p: &str| -> Result<Vec<u8>, String> {
        let v: Value = serde_json::from_str(p).map_err(|e| e.to_string())?;
        match host_plan(&v, false, r) {
            Message::Bytes { plan: Some((_, b)), .. } => Ok(b),
            Message::Bytes { .. } => Err("a frame's plan does not encode".into()),
            Message::Refused(e) => Err(format!("a frame's plan does not parse: {e}")),
        }
    };
    let framed = if let Some(p) = h.strip_prefix("@plan:") {
        frame_apply(&plan_bytes(p)?, r)
    } else if let Some(x) = h.strip_prefix("@sealed:") {
        frame_apply(&unhex(x).ok_or("bad hex after @sealed:")?, r)
    } else if let Some(p) = h.strip_prefix("@wrongkey:") {
        frame_sealed(&plan_bytes(p)?, &[0x42; 32], r.epoch)
    } else if let Some(p) = h.strip_prefix("@otherepoch:") {
        frame_sealed(&plan_bytes(p)?, &r.plan_key, r.epoch ^ 1)
    } else if let Some(p) = h.strip_prefix("@unsealed:") {
        LinkClient::<LinkStream>::frame_request(&Request::Apply(&plan_bytes(p)?)).ok()
    } else {
        return unhex(h).ok_or_else(|| "bad hex in a frame".into());
    };
    framed.ok_or_else(|| "a frame's plan does not fit one frame".into())
}

/// an `Apply` whose payload is [`frame::MAX_PAYLOAD`] + 1 bytes: the tag,
/// the plan's varint length (2 bytes for caps of 128..16384) and the plan.
fn oversize_payload() -> Vec<u8> {
    let plan_len = pd_interface::frame::MAX_PAYLOAD.saturating_sub(2);
    let mut payload = vec![0u8]; // Request::Apply
    let mut n = plan_len;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            payload.push(b);
            break;
        }
        payload.push(b | 0x80);
    }
    payload.resize(payload.len() + plan_len, 1);
    payload
}

/// [`oversize_payload`] framed as `frame::encode` would if it took it (crc,
/// COBS, the delimiter): the link PD must drop it without buffering it.
fn oversize_frame() -> Vec<u8> {
    let payload = oversize_payload();
    let mut out = vec![0u8; payload.len() + payload.len() / 254 + 8];
    let n = pd_interface::frame::encode_any_length(&payload, &mut out).unwrap_or(0);
    out.truncate(n);
    out
}

/// `@token:PLAN` and friends, resolved with the dev key where the marker says.
fn resolve_token(marker: &str, r: &Reference) -> Result<Option<String>, InputError> {
    let plan_of = |s: &str| json::parse_plan(s.as_bytes());
    let tok = |p: &Plan, key: &[u8]| confirm::token(p, key).map(|t| json::hex(&t));
    Ok(if let Some(p) = marker.strip_prefix("@token:") {
        tok(&plan_of(p)?, &r.key)
    } else if let Some(p) = marker.strip_prefix("@flip:") {
        confirm::token(&plan_of(p)?, &r.key).map(|mut t| {
            t[0] ^= 1;
            json::hex(&t)
        })
    } else if let Some(p) = marker.strip_prefix("@otherkey:") {
        tok(&plan_of(p)?, &[0x42; 32])
    } else if let Some(p) = marker.strip_prefix("@emptykey:") {
        tok(&plan_of(p)?, &[])
    } else if let Some(p) = marker.strip_prefix("@otherepoch:") {
        // the human's token for this plan, made for another boot
        tok(&plan_of(p)?, &policy_verifier::auth::epoch_key(&r.confirm_key, r.epoch ^ 1))
    } else if let Some(p) = marker.strip_prefix("@sha256:") {
        let plan = plan_of(p)?;
        let mut buf = [0u8; wire::MAX_PLAN_BYTES];
        wire::canonical_bytes(&plan, &mut buf)
            .ok()
            .map(|b| json::hex(&Sha256::digest(b)))
    } else if marker == "@token-of-setup" {
        r.setup_token.map(|t| json::hex(&t))
    } else {
        Some(marker.to_owned())
    })
}

/// a plan value of the corpus through the host's front end (markers
/// resolved, `sign` applied), as the wire bytes and the framed request.
pub(super) fn host_plan(v: &Value, sign: bool, r: &Reference) -> Message {
    let mut v = v.clone();
    let mut sign = sign;
    if let Some(o) = v.as_object_mut() {
        if o.remove("sign") == Some(Value::Bool(true)) {
            sign = true;
        }
        if let Some(Value::String(m)) = o.get("confirmation").cloned() {
            match resolve_token(&m, r) {
                Ok(Some(t)) => {
                    o.insert("confirmation".into(), Value::String(t));
                }
                Ok(None) => {
                    o.remove("confirmation");
                }
                Err(e) => return Message::Refused(e),
            }
        }
    }
    let text = v.to_string();
    let plan = match json::parse_plan(text.as_bytes()) {
        Ok(p) => p,
        Err(e) => return Message::Refused(e),
    };
    let plan = if sign {
        confirm::sign(&plan, &r.key).unwrap_or(plan)
    } else {
        plan
    };
    bytes_message(plan, r)
}

pub(super) fn bytes_message(plan: Plan, r: &Reference) -> Message {
    match encode_plan(&plan).and_then(|b| Some((frame_apply(&b, r)?, b))) {
        Some((framed, bytes)) => Message::Bytes {
            framed,
            plan: Some((plan, bytes)),
        },
        None => Message::Refused(crate::code::Code::PlanSize.err("the plan does not fit one frame",
        )),
    }
}

/// the plan bytes a request payload carries, sealed or not; what the
/// verifier PD borrows out of the frame.
fn apply_payload(p: &[u8]) -> Option<&[u8]> {
    postcard::from_bytes::<Request<'_>>(p).ok()?.plan()
}

/// a frame of the corpus (raw hex or a marker of [`frame_marker`]) as the
/// bytes sent.
pub(super) fn raw_message(h: &str, r: &Reference) -> Result<Message, String> {
    Ok(frame_message(frame_marker(h, r)?))
}

/// a plan as json text, as llmsh reads a plan file: through the size cap,
/// then the parser.
pub(super) fn text_message(t: &str, r: &Reference) -> Message {
    let read = crate::common::read_capped(t.as_bytes(), crate::common::Input::Plan, "the plan");
    match read.and_then(|b| json::parse_plan(&b)) {
        Ok(p) => bytes_message(p, r),
        Err(e) => Message::Refused(e),
    }
}

/// raw link bytes: what plan (if any) the verifier PD would see in them.
fn frame_message(framed: Vec<u8>) -> Message {
    use pd_interface::frame::{Deframer, Pushed, MAX_FRAME};
    let mut d: Box<Deframer<MAX_FRAME>> = Box::new(Deframer::new());
    let mut plans = Vec::new();
    for b in &framed {
        if let Pushed::Frame(p) = d.push(*b) {
            if let Some(bytes) = apply_payload(p) {
                if let Ok(plan) = wire::decode(bytes) {
                    plans.push((plan, bytes.to_vec()));
                }
            }
        }
    }
    // a frame carrying one plan (or the same plan twice) is judged as that plan
    let plan = plans
        .first()
        .cloned()
        .filter(|f| plans.iter().all(|p| p.1 == f.1));
    Message::Bytes { framed, plan }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pd_interface::frame::{self, Deframer, Pushed, MAX_FRAME, MAX_PAYLOAD};

    /// the corpus's `@oversize` frame is over the cap by exactly one byte,
    /// and only the cap makes it bad: the deframer drops it as too long.
    #[test]
    fn the_oversize_frame_is_one_byte_over_this_builds_cap() {
        assert_eq!(oversize_payload().len(), MAX_PAYLOAD + 1);
        let mut d: Box<Deframer<MAX_FRAME>> = Box::new(Deframer::new());
        let mut got = None;
        for b in oversize_frame() {
            match d.push(b) {
                Pushed::Pending => {}
                Pushed::Frame(_) => got = Some(Ok(())),
                Pushed::Dropped(e) => got = Some(Err(e)),
            }
        }
        assert_eq!(got, Some(Err(frame::FrameError::TooLong)));
    }
}
