//! the link's byte-stream framing, the same over the PL011 UART (qemu) and
//! over a socket (hosted): `COBS(payload ‖ crc32(payload) as le u32) ‖ 0x00`.
//!
//! COBS removes every zero byte from the frame body, so a zero always ends a
//! frame and a receiver resynchronises on the next zero after garbage, a
//! dropped byte or an oversize frame. the CRC-32 (IEEE, as Ethernet and zlib)
//! catches corruption inside a frame. payloads are capped at
//! [`MAX_PAYLOAD`]; anything longer is discarded without being buffered.

// the decoder sees every byte the uart delivers: no input may panic it.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

/// the largest payload a frame carries: the size of the `link_verifier`
/// region the manifest gives the link PD and the verifier, since the link
/// PD copies a request to its start and the verifier writes the reply
/// there. it must hold the largest plan the verifier accepts
/// (policy-verifier's `MAX_PLAN_BYTES`, 1 KiB, asserted below) and the
/// widest receipt, which grows with the worker count (a test in
/// [`crate::link`] says by how much): more workers may need a larger region
/// in system/llm-os.system, and nothing else. a 64 KiB JSON plan is refused
/// on the host before it is ever encoded.
pub const MAX_PAYLOAD: usize = crate::manifest::link::region::LINK_BUF.size();

// the two PDs see one region, and a sealed request with the largest plan fits it
const _: () = assert!(MAX_PAYLOAD == crate::manifest::verifier::region::LINK_BUF.size());
const _: () = assert!(MAX_PAYLOAD >= policy_verifier::wire::MAX_PLAN_BYTES + 64);
/// the largest frame on the wire: payload, crc, COBS overhead (1 per 254), delimiter.
pub const MAX_FRAME: usize = MAX_PAYLOAD + 4 + (MAX_PAYLOAD + 4) / 254 + 2;

// evaluated at compile time: a bad index fails the build, never a run.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC-32/IEEE of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        let idx = ((c ^ u32::from(b)) & 0xff) as usize;
        c = CRC_TABLE.get(idx).copied().unwrap_or(0) ^ (c >> 8);
    }
    !c
}

/// why a frame was not produced or not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// payload longer than [`MAX_PAYLOAD`], or the output buffer too small.
    TooLong,
    /// a frame body that is not valid COBS.
    BadEncoding,
    /// a frame whose CRC does not match.
    BadCrc,
    /// a frame too short to hold a CRC.
    TooShort,
}

/// COBS-encode `payload ‖ crc` into `out` and append the delimiter; the bytes used.
pub fn encode(payload: &[u8], out: &mut [u8]) -> Result<usize, FrameError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(FrameError::TooLong);
    }
    encode_any_length(payload, out)
}

/// [`encode`] without the payload cap: a well-formed frame a conforming
/// receiver drops as too long. for the red team and tests only.
#[doc(hidden)]
pub fn encode_any_length(payload: &[u8], out: &mut [u8]) -> Result<usize, FrameError> {
    let crc = crc32(payload).to_le_bytes();
    let mut w = Writer { out, at: 0 };
    let mut code_at = w.at;
    w.push(0)?; // placeholder for the first code byte
    let mut code: u8 = 1;
    for &b in payload.iter().chain(crc.iter()) {
        if b == 0 {
            w.set(code_at, code)?;
            code_at = w.at;
            w.push(0)?;
            code = 1;
        } else {
            w.push(b)?;
            code = code.saturating_add(1);
            if code == 0xff {
                w.set(code_at, code)?;
                code_at = w.at;
                w.push(0)?;
                code = 1;
            }
        }
    }
    w.set(code_at, code)?;
    w.push(0)?;
    Ok(w.at)
}

struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn push(&mut self, b: u8) -> Result<(), FrameError> {
        let slot = self.out.get_mut(self.at).ok_or(FrameError::TooLong)?;
        *slot = b;
        self.at = self.at.checked_add(1).ok_or(FrameError::TooLong)?;
        Ok(())
    }
    fn set(&mut self, at: usize, b: u8) -> Result<(), FrameError> {
        *self.out.get_mut(at).ok_or(FrameError::TooLong)? = b;
        Ok(())
    }
}

/// decode one COBS body (without the delimiter) in place; the decoded length.
fn cobs_decode_in_place(buf: &mut [u8]) -> Result<usize, FrameError> {
    let mut read = 0usize;
    let mut write = 0usize;
    let len = buf.len();
    while read < len {
        let code = *buf.get(read).ok_or(FrameError::BadEncoding)?;
        if code == 0 {
            return Err(FrameError::BadEncoding);
        }
        // code >= 1, so the run and every index below stay within `len`
        let run = usize::from(code.wrapping_sub(1));
        read = read.saturating_add(1);
        if read.saturating_add(run) > len {
            return Err(FrameError::BadEncoding);
        }
        for _ in 0..run {
            let b = *buf.get(read).ok_or(FrameError::BadEncoding)?;
            *buf.get_mut(write).ok_or(FrameError::BadEncoding)? = b;
            read = read.saturating_add(1);
            write = write.saturating_add(1);
        }
        if code != 0xff && read < len {
            *buf.get_mut(write).ok_or(FrameError::BadEncoding)? = 0;
            write = write.saturating_add(1);
        }
    }
    Ok(write)
}

/// what [`Deframer::push`] produced for a byte.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed<'a> {
    /// the frame is not complete yet.
    Pending,
    /// a complete, checked payload.
    Frame(&'a [u8]),
    /// a frame was dropped; the deframer already waits for the next one.
    Dropped(FrameError),
}

/// reassembles frames from a byte stream with a fixed buffer of `N` bytes.
pub struct Deframer<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflow: bool,
}

impl<const N: usize> Default for Deframer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Deframer<N> {
    /// an empty deframer.
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            overflow: false,
        }
    }

    /// feed one byte.
    pub fn push(&mut self, byte: u8) -> Pushed<'_> {
        if byte != 0 {
            if self.overflow {
                return Pushed::Pending;
            }
            match self.buf.get_mut(self.len) {
                Some(slot) => {
                    *slot = byte;
                    self.len = self.len.saturating_add(1);
                }
                None => self.overflow = true,
            }
            return Pushed::Pending;
        }
        // a delimiter ends the frame, good or bad
        let len = core::mem::take(&mut self.len);
        if core::mem::take(&mut self.overflow) {
            return Pushed::Dropped(FrameError::TooLong);
        }
        if len == 0 {
            return Pushed::Pending; // back-to-back delimiters: idle line
        }
        let Some(body) = self.buf.get_mut(..len) else {
            return Pushed::Dropped(FrameError::TooLong);
        };
        let n = match cobs_decode_in_place(body) {
            Ok(n) => n,
            Err(e) => return Pushed::Dropped(e),
        };
        let Some(at) = n.checked_sub(4) else {
            return Pushed::Dropped(FrameError::TooShort);
        };
        let Some((payload, crc)) = body.get(..n).map(|d| d.split_at(at.min(d.len()))) else {
            return Pushed::Dropped(FrameError::BadEncoding);
        };
        let Ok(crc) = <[u8; 4]>::try_from(crc) else {
            return Pushed::Dropped(FrameError::TooShort);
        };
        let want = u32::from_le_bytes(crc);
        if crc32(payload) != want {
            return Pushed::Dropped(FrameError::BadCrc);
        }
        if payload.len() > MAX_PAYLOAD {
            return Pushed::Dropped(FrameError::TooLong);
        }
        Pushed::Frame(payload)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; MAX_FRAME];
        let n = encode(payload, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn feed<const N: usize>(d: &mut Deframer<N>, bytes: &[u8]) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut got = Vec::new();
        for &b in bytes {
            match d.push(b) {
                Pushed::Pending => {}
                Pushed::Frame(p) => got.push(Ok(p.to_vec())),
                Pushed::Dropped(e) => got.push(Err(e)),
            }
        }
        got
    }

    #[test]
    fn crc32_matches_the_ieee_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn frames_have_no_inner_zero_and_end_in_one() {
        let f = frame(&[0, 1, 0, 0, 2, 0]);
        assert_eq!(f.last(), Some(&0));
        assert!(!f[..f.len() - 1].contains(&0));
    }

    #[test]
    fn round_trip_of_awkward_payloads() {
        let long: Vec<u8> = (0..1000u32).map(|i| (i % 255 + 1) as u8).collect();
        let mut zeros_254 = vec![7u8; 254];
        zeros_254.push(0);
        for p in [
            vec![],
            vec![0],
            vec![0; 300],
            long,
            zeros_254,
            (0..=255u8).collect(),
        ] {
            let mut d: Deframer<4096> = Deframer::new();
            assert_eq!(
                feed(&mut d, &frame(&p)),
                vec![Ok(p.clone())],
                "payload len {}",
                p.len()
            );
        }
    }

    #[test]
    fn resynchronises_after_garbage() {
        let mut d: Deframer<4096> = Deframer::new();
        let mut stream = vec![0x41, 0x42, 0x43]; // junk without a delimiter
        stream.extend(frame(b"hello"));
        let got = feed(&mut d, &stream);
        // the junk merges into the first frame, which fails its check; nothing else is lost
        assert_eq!(got.len(), 1);
        assert!(got[0].is_err());
        let mut stream = vec![0x41, 0x42, 0x00];
        stream.extend(frame(b"hello"));
        let got = feed(&mut d, &stream);
        assert_eq!(got.last(), Some(&Ok(b"hello".to_vec())));
    }

    #[test]
    fn corrupted_byte_is_caught_by_the_crc() {
        let mut f = frame(b"plan bytes here");
        f[3] ^= 0x10;
        if f[3] == 0 {
            f[3] = 0x55;
        }
        let mut d: Deframer<4096> = Deframer::new();
        let got = feed(&mut d, &f);
        assert!(matches!(
            got.as_slice(),
            [Err(FrameError::BadCrc | FrameError::BadEncoding)]
        ));
    }

    #[test]
    fn oversize_frame_is_dropped_and_the_next_one_survives() {
        let mut d: Deframer<64> = Deframer::new();
        let mut stream = frame(&[9u8; 200]);
        stream.extend(frame(b"ok"));
        assert_eq!(
            feed(&mut d, &stream),
            vec![Err(FrameError::TooLong), Ok(b"ok".to_vec())]
        );
    }

    #[test]
    fn payload_cap_is_enforced_on_encode() {
        let mut out = vec![0u8; MAX_FRAME + 1000];
        assert_eq!(
            encode(&vec![1u8; MAX_PAYLOAD + 1], &mut out),
            Err(FrameError::TooLong)
        );
        assert!(encode(&vec![1u8; MAX_PAYLOAD], &mut out).is_ok());
        assert_eq!(encode(b"abc", &mut [0u8; 4]), Err(FrameError::TooLong));
    }
}
