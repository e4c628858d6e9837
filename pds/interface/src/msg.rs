//! PPC payloads in the message registers: postcard bytes, the tag's label is
//! the byte length and its count the words used (at most 120 words, 960 bytes).

use pd_runtime::{MessageInfo, MSG_MAX_BYTES};
use serde::{de::DeserializeOwned, Serialize};

/// a payload that did not fit or did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgError {
    /// longer than the message registers.
    TooLong,
    /// the bytes are not a value of the expected type.
    Decode,
}

/// the tag for a payload of `len` bytes.
pub const fn tag_for_len(len: usize) -> MessageInfo {
    MessageInfo::new(len as u64, len.div_ceil(8))
}

/// encode `value` into the message registers; the tag to send with them.
pub fn put<T: Serialize>(value: &T) -> Result<MessageInfo, MsgError> {
    pd_runtime::with_msg_bytes_mut(|buf| {
        postcard::to_slice(value, buf)
            .map(|used| tag_for_len(used.len()))
            .map_err(|_| MsgError::TooLong)
    })
}

/// decode the message registers as described by `tag`.
pub fn get<T: DeserializeOwned>(tag: MessageInfo) -> Result<T, MsgError> {
    let len = usize::try_from(tag.label()).map_err(|_| MsgError::TooLong)?;
    if len > MSG_MAX_BYTES || len.div_ceil(8) > tag.count() {
        return Err(MsgError::TooLong);
    }
    pd_runtime::with_msg_bytes(|buf| {
        let bytes = buf.get(..len).ok_or(MsgError::TooLong)?;
        postcard::from_bytes(bytes).map_err(|_| MsgError::Decode)
    })
}

/// PPC `channel` with `request` and decode the reply; the call a client of a
/// capability PD makes.
pub fn call<Req: Serialize, Rep: DeserializeOwned>(
    channel: pd_runtime::Channel,
    request: &Req,
) -> Result<Rep, CallError> {
    let tag = put(request).map_err(CallError::Msg)?;
    let reply = channel.pp_call(tag).map_err(CallError::Runtime)?;
    get(reply).map_err(CallError::Msg)
}

/// a PPC that failed before an answer was decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// encoding or decoding.
    Msg(MsgError),
    /// the runtime refused or the callee faulted.
    Runtime(pd_runtime::RuntimeError),
}
