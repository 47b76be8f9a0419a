//! The Jute binary encoding: big-endian integers, length-prefixed strings, buffers and
//! vectors, and records as the plain concatenation of their fields.

use thiserror::Error;

/// Default `jute.maxbuffer`: the largest frame or field ZooKeeper accepts (1 MiB - 1).
pub const DEFAULT_MAX_BUFFER: usize = 0xF_FFFF;

/// Why bytes could not be decoded.
///
/// `Incomplete` is an expected condition at the framing layer ("read more bytes"); every
/// other variant means the input is malformed and the connection that sent it should close.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// More bytes are needed before anything can be decoded.
    #[error("incomplete input")]
    Incomplete,
    /// A record ended before all of its fields were read.
    #[error("truncated {what}: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Offset of the field in the record.
        offset: usize,
        /// Bytes missing.
        needed: usize,
    },
    /// A length prefix is negative (other than -1 for null) or above the configured maximum.
    #[error("bad length {len} for {what} (max {max})")]
    BadLength {
        /// The field being read.
        what: &'static str,
        /// The length found.
        len: i64,
        /// The configured maximum.
        max: usize,
    },
    /// A string field is not valid UTF-8.
    #[error("invalid UTF-8 in {what}")]
    InvalidUtf8 {
        /// The field being read.
        what: &'static str,
    },
    /// A value is out of the domain of its field (unknown enum value, ...).
    #[error("invalid value {value} for {what}")]
    InvalidValue {
        /// The field being read.
        what: &'static str,
        /// The value found.
        value: i64,
    },
    /// Bytes were left over after the record.
    #[error("{extra} trailing bytes after {what}")]
    TrailingBytes {
        /// The record decoded.
        what: &'static str,
        /// How many bytes remain.
        extra: usize,
    },
}

/// A cursor over a complete record (usually one frame's payload).
///
/// Every length it reads is checked against `max_len` before anything is allocated.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    max_len: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf` that accepts field lengths up to [`DEFAULT_MAX_BUFFER`] × 2
    /// (jute.maxbuffer plus the default extrasize).
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_max_len(buf, DEFAULT_MAX_BUFFER * 2)
    }

    /// A reader that rejects any length prefix above `max_len`.
    pub fn with_max_len(buf: &'a [u8], max_len: usize) -> Self {
        Reader {
            buf,
            pos: 0,
            max_len,
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread bytes, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless every byte was read.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { what, extra }),
        }
    }

    /// Takes `n` raw bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                what,
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads a big-endian i32.
    pub fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a big-endian i64.
    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// Reads a boolean byte (any non-zero value is true, as Java's reader does).
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        Ok(self.take(1, what)?[0] != 0)
    }

    /// Reads a length prefix: `None` for -1 (null), checked against the maximum.
    pub fn len(&mut self, what: &'static str) -> Result<Option<usize>, DecodeError> {
        let len = self.i32(what)?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 || len as usize > self.max_len {
            return Err(DecodeError::BadLength {
                what,
                len: len.into(),
                max: self.max_len,
            });
        }
        Ok(Some(len as usize))
    }

    /// Reads a `buffer`: `None` when null.
    pub fn buffer(&mut self, what: &'static str) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.len(what)? {
            None => Ok(None),
            Some(n) => Ok(Some(self.take(n, what)?.to_vec())),
        }
    }

    /// Reads a `ustring`: `None` when null.
    pub fn ustring(&mut self, what: &'static str) -> Result<Option<String>, DecodeError> {
        match self.len(what)? {
            None => Ok(None),
            Some(n) => {
                let b = self.take(n, what)?;
                std::str::from_utf8(b)
                    .map(|s| Some(s.to_owned()))
                    .map_err(|_| DecodeError::InvalidUtf8 { what })
            }
        }
    }

    /// Reads a vector count (`None` for a null vector), checked so that a huge count cannot
    /// make the decoder allocate: every element takes at least `min_elem_bytes` bytes.
    pub fn count(
        &mut self,
        what: &'static str,
        min_elem_bytes: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let n = self.i32(what)?;
        if n == -1 {
            return Ok(None);
        }
        if n < 0 || (n as usize).saturating_mul(min_elem_bytes.max(1)) > self.remaining() {
            return Err(DecodeError::BadLength {
                what,
                len: n.into(),
                max: self.remaining() / min_elem_bytes.max(1),
            });
        }
        Ok(Some(n as usize))
    }
}

/// A value with a Jute encoding.
pub trait Jute: Sized {
    /// Smallest possible encoded size, used to bound vector counts before allocating.
    const MIN_BYTES: usize;
    /// Appends the encoding of `self` to `out`.
    fn write(&self, out: &mut Vec<u8>);
    /// Decodes one value.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Encodes into a fresh vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write(&mut v);
        v
    }

    /// Decodes a value that must span all of `buf`.
    fn from_bytes(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let v = Self::read(&mut r)?;
        r.finish(std::any::type_name::<Self>())?;
        Ok(v)
    }
}

impl Jute for i32 {
    const MIN_BYTES: usize = 4;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.i32("int")
    }
}

impl Jute for i64 {
    const MIN_BYTES: usize = 8;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.i64("long")
    }
}

impl Jute for bool {
    const MIN_BYTES: usize = 1;
    fn write(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.bool("boolean")
    }
}

/// Strings decode null as empty; they always encode as a (possibly empty) string.
impl Jute for String {
    const MIN_BYTES: usize = 4;
    fn write(&self, out: &mut Vec<u8>) {
        write_str(out, self);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(r.ustring("ustring")?.unwrap_or_default())
    }
}

/// A `buffer` whose null (-1) and empty (0) encodings are kept apart.
impl Jute for Option<Vec<u8>> {
    const MIN_BYTES: usize = 4;
    fn write(&self, out: &mut Vec<u8>) {
        write_buffer(out, self.as_deref());
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.buffer("buffer")
    }
}

/// Vectors decode null as empty and always encode their count.
impl<T: Jute> Jute for Vec<T> {
    const MIN_BYTES: usize = 4;
    fn write(&self, out: &mut Vec<u8>) {
        (self.len() as i32).write(out);
        for x in self {
            x.write(out);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count("vector", T::MIN_BYTES)?.unwrap_or(0);
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::read(r)?);
        }
        Ok(v)
    }
}

/// Appends a `ustring`.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    (s.len() as i32).write(out);
    out.extend_from_slice(s.as_bytes());
}

/// Appends a `buffer`; `None` encodes as null (-1).
pub fn write_buffer(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => (-1i32).write(out),
        Some(b) => {
            (b.len() as i32).write(out);
            out.extend_from_slice(b);
        }
    }
}

/// Declares a Jute record: a struct whose encoding is its fields in order.
#[macro_export]
#[doc(hidden)]
macro_rules! jute_record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::codec::Jute for $name {
            const MIN_BYTES: usize = 0 $( + <$ty as $crate::codec::Jute>::MIN_BYTES )*;
            #[allow(unused_variables)]
            fn write(&self, out: &mut Vec<u8>) {
                $( $crate::codec::Jute::write(&self.$field, out); )*
            }
            #[allow(unused_variables)]
            fn read(r: &mut $crate::codec::Reader<'_>) -> Result<Self, $crate::codec::DecodeError> {
                Ok($name { $( $field: <$ty as $crate::codec::Jute>::read(r)?, )* })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_empty_buffers_stay_apart() {
        let null: Option<Vec<u8>> = None;
        let empty: Option<Vec<u8>> = Some(vec![]);
        assert_eq!(null.to_bytes(), [0xff, 0xff, 0xff, 0xff]);
        assert_eq!(empty.to_bytes(), [0, 0, 0, 0]);
        assert_eq!(Option::<Vec<u8>>::from_bytes(&[0xff; 4]).unwrap(), None);
        assert_eq!(
            Option::<Vec<u8>>::from_bytes(&[0; 4]).unwrap(),
            Some(vec![])
        );
    }

    #[test]
    fn huge_vector_count_is_rejected_before_allocating() {
        let bytes = [0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1];
        let err = Vec::<String>::from_bytes(&bytes).unwrap_err();
        assert!(matches!(err, DecodeError::BadLength { .. }), "{err:?}");
    }

    #[test]
    fn length_above_max_is_rejected() {
        let mut r = Reader::with_max_len(&[0, 0, 0x10, 0, b'x'], 16);
        assert!(matches!(
            r.buffer("data"),
            Err(DecodeError::BadLength { len: 4096, .. })
        ));
    }

    #[test]
    fn negative_length_other_than_null_is_rejected() {
        let err = String::from_bytes(&[0xff, 0xff, 0xff, 0xfe]).unwrap_err();
        assert!(matches!(err, DecodeError::BadLength { len: -2, .. }));
    }

    #[test]
    fn truncated_string_reports_missing_bytes() {
        let err = String::from_bytes(&[0, 0, 0, 5, b'a', b'b']).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Truncated {
                what: "ustring",
                offset: 4,
                needed: 3
            }
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        let err = String::from_bytes(&[0, 0, 0, 1, 0xff]).unwrap_err();
        assert!(matches!(err, DecodeError::InvalidUtf8 { .. }));
    }
}
