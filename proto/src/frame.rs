//! Length-prefixed framing: `int32 length` followed by that many bytes.

use crate::codec::DecodeError;

/// Finds the first complete frame in `buf`.
///
/// Returns the payload length when `buf` holds the 4-byte prefix and the whole payload;
/// [`DecodeError::Incomplete`] when more bytes are needed; [`DecodeError::BadLength`] when the
/// prefix is negative or above `max_len` (checked before waiting for, or allocating, the body).
///
/// ```
/// use corral_proto::frame::frame_len;
/// use corral_proto::DecodeError;
/// assert_eq!(frame_len(&[0, 0, 0, 2, 7, 7], 16), Ok(2));
/// assert_eq!(frame_len(&[0, 0, 0, 2, 7], 16), Err(DecodeError::Incomplete));
/// assert!(frame_len(&[0, 0, 1, 0], 16).is_err());
/// ```
pub fn frame_len(buf: &[u8], max_len: usize) -> Result<usize, DecodeError> {
    if buf.len() < 4 {
        return Err(DecodeError::Incomplete);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 0 || len as usize > max_len {
        return Err(DecodeError::BadLength {
            what: "frame",
            len: len.into(),
            max: max_len,
        });
    }
    let len = len as usize;
    if buf.len() - 4 < len {
        return Err(DecodeError::Incomplete);
    }
    Ok(len)
}

/// Starts a frame in `out`: reserves the length prefix and returns its position, to be
/// passed to [`end_frame`] once the payload is written.
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

/// Writes the length prefix of the frame started at `at`.
pub fn end_frame(out: &mut [u8], at: usize) {
    let len = (out.len() - at - 4) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}
