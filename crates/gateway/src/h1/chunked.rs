//! Chunked transfer coding (RFC 9112 §7.1): one incremental decoder for the framing guard
//! (which only needs to know where a chunked request body ends and that it is well formed) and
//! the upstream client (which also takes the data out), and the chunk-size line the server
//! writes.
//!
//! The decoder is strict where a lenient reading could frame a message differently from the
//! next reader: line endings are CRLF only, no NUL, sizes are hex digits with at most
//! [`MAX_CHUNK_SIZE_DIGITS`], data is followed by CRLF exactly. Optional whitespace before a
//! chunk extension (`5 ;name=value`) is accepted as RFC 9112's `BWS` allows (hyper's server
//! behind the guard reads it the same way); extensions and trailers are checked for framing
//! and dropped.

/// Longest chunk-size line (size and extensions, without CRLF) accepted.
pub const MAX_CHUNK_LINE_BYTES: u16 = 4096;
/// 16 hex digits are 64 bits: every size a u64 holds can be written, and no digit string
/// this long overflows one. A 17th digit is refused rather than read modulo 2^64.
pub const MAX_CHUNK_SIZE_DIGITS: u8 = 16;

/// Why a chunked body is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    LineTooLong,
    MalformedSize,
    SizeTooLarge,
    BareLf,
    BareCr,
    Nul,
    /// The byte after a chunk's data is not the CR of its CRLF.
    DataTooLong,
    /// Trailer lines together over the decoder's limit.
    TrailersTooLarge,
}

impl ChunkError {
    pub fn reason(self) -> &'static str {
        match self {
            ChunkError::LineTooLong => "chunk size line too long",
            ChunkError::MalformedSize => "malformed chunk size",
            ChunkError::SizeTooLarge => "chunk size too large",
            ChunkError::BareLf => "bare LF in chunked body",
            ChunkError::BareCr => "bare CR in chunked body",
            ChunkError::Nul => "NUL in chunked body",
            ChunkError::DataTooLong => "chunk data longer than its size",
            ChunkError::TrailersTooLarge => "trailers too large",
        }
    }
}

/// What the bytes consumed by one [`ChunkedDecoder::advance`] were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// Size lines, CRLFs, extensions or trailers: nothing to forward.
    Framing,
    /// Chunk data: the consumed bytes are body bytes.
    Data,
    /// The body's last byte was consumed (the empty line after the trailers).
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a chunk-size line: digits so far, their value, line length so far. (Small fields:
    /// the decoder lives in every chunked body's state, which is moved around with it.)
    Size {
        digits: u8,
        size: u64,
        line: u16,
    },
    /// Whitespace after the size, before `;` or CR.
    SizeWhitespace {
        size: u64,
        line: u16,
    },
    /// In the extensions of a size line.
    Extension {
        size: u64,
        line: u16,
    },
    /// After the CR of a size line.
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// In a trailer line; `at_start` before its first byte.
    Trailer {
        at_start: bool,
    },
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// Incremental decoder of one chunked body; feed it the bytes after the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: State,
    /// Trailer bytes seen so far and the most allowed.
    trailers: u32,
    max_trailer_bytes: u32,
}

impl ChunkedDecoder {
    /// A decoder at the start of a body; trailer lines together may have `max_trailer_bytes`.
    pub fn new(max_trailer_bytes: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size {
                digits: 0,
                size: 0,
                line: 0,
            },
            trailers: 0,
            max_trailer_bytes: u32::try_from(max_trailer_bytes).unwrap_or(u32::MAX),
        }
    }

    /// Consumes bytes from the start of `input`: either chunk data (at most the rest of the
    /// current chunk) or framing (up to the next data or the end). Returns how many bytes were
    /// consumed and what they were; 0 bytes only when `input` is empty or the body is done
    /// (then always [`Piece::End`]).
    pub fn advance(&mut self, input: &[u8]) -> Result<(usize, Piece), ChunkError> {
        if matches!(self.state, State::Done) {
            return Ok((0, Piece::End));
        }
        if let State::Data(left) = self.state {
            let take = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let left = left - take as u64;
            self.state = if left == 0 {
                State::DataCr
            } else {
                State::Data(left)
            };
            return Ok((take, Piece::Data));
        }
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            i += 1;
            self.state = match self.state {
                State::Size { digits, size, line } => {
                    if line >= MAX_CHUNK_LINE_BYTES {
                        return Err(ChunkError::LineTooLong);
                    }
                    match b {
                        b'\r' if digits > 0 => State::SizeLf { size },
                        b';' if digits > 0 => State::Extension {
                            size,
                            line: line + 1,
                        },
                        b' ' | b'\t' if digits > 0 => State::SizeWhitespace {
                            size,
                            line: line + 1,
                        },
                        _ => {
                            let digit = hex_value(b).ok_or_else(|| unexpected(b))?;
                            if digits >= MAX_CHUNK_SIZE_DIGITS {
                                return Err(ChunkError::SizeTooLarge);
                            }
                            State::Size {
                                digits: digits + 1,
                                size: (size << 4) | u64::from(digit),
                                line: line + 1,
                            }
                        }
                    }
                }
                State::SizeWhitespace { size, line } => {
                    if line >= MAX_CHUNK_LINE_BYTES {
                        return Err(ChunkError::LineTooLong);
                    }
                    match b {
                        b' ' | b'\t' => State::SizeWhitespace {
                            size,
                            line: line + 1,
                        },
                        b';' => State::Extension {
                            size,
                            line: line + 1,
                        },
                        b'\r' => State::SizeLf { size },
                        _ => return Err(unexpected(b)),
                    }
                }
                State::Extension { size, line } => {
                    if line >= MAX_CHUNK_LINE_BYTES {
                        return Err(ChunkError::LineTooLong);
                    }
                    match b {
                        b'\r' => State::SizeLf { size },
                        b'\n' => return Err(ChunkError::BareLf),
                        0 => return Err(ChunkError::Nul),
                        _ => State::Extension {
                            size,
                            line: line + 1,
                        },
                    }
                }
                State::SizeLf { size } => {
                    if b != b'\n' {
                        return Err(ChunkError::BareCr);
                    }
                    if size == 0 {
                        State::Trailer { at_start: true }
                    } else {
                        // Data follows: hand back the framing consumed so far.
                        self.state = State::Data(size);
                        return Ok((i, Piece::Framing));
                    }
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::DataTooLong);
                    }
                    State::DataLf
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BareCr);
                    }
                    State::Size {
                        digits: 0,
                        size: 0,
                        line: 0,
                    }
                }
                State::Trailer { at_start } => match b {
                    b'\r' => State::TrailerLf { empty: at_start },
                    b'\n' => return Err(ChunkError::BareLf),
                    0 => return Err(ChunkError::Nul),
                    _ => {
                        self.trailers += 1;
                        if self.trailers > self.max_trailer_bytes {
                            return Err(ChunkError::TrailersTooLarge);
                        }
                        State::Trailer { at_start: false }
                    }
                },
                State::TrailerLf { empty } => {
                    if b != b'\n' {
                        return Err(ChunkError::BareCr);
                    }
                    if empty {
                        self.state = State::Done;
                        return Ok((i, Piece::End));
                    }
                    State::Trailer { at_start: true }
                }
                State::Data(_) | State::Done => unreachable!("handled before the loop"),
            };
        }
        Ok((i, Piece::Framing))
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The error for a byte that cannot stand in a chunk-size line.
fn unexpected(b: u8) -> ChunkError {
    match b {
        b'\n' => ChunkError::BareLf,
        0 => ChunkError::Nul,
        _ => ChunkError::MalformedSize,
    }
}

/// Lower-case hex digits of `n`, for a chunk-size line.
pub fn size_line(n: usize) -> HexDigits {
    let mut digits = HexDigits {
        buf: [0; 16],
        start: 16,
    };
    let mut n = n;
    loop {
        digits.start -= 1;
        digits.buf[digits.start] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break digits;
        }
    }
}

/// The digits [`size_line`] wrote.
pub struct HexDigits {
    buf: [u8; 16],
    start: usize,
}

impl HexDigits {
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `raw` fed `step` bytes at a time; the data, or the error.
    fn decode(raw: &[u8], step: usize) -> Result<Vec<u8>, ChunkError> {
        let mut decoder = ChunkedDecoder::new(1024);
        let mut data = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for piece in raw.chunks(step) {
            pending.extend_from_slice(piece);
            loop {
                let (n, what) = decoder.advance(&pending)?;
                if what == Piece::Data {
                    data.extend_from_slice(&pending[..n]);
                }
                pending.drain(..n);
                if what == Piece::End {
                    // Nothing more is read after the end.
                    assert_eq!(decoder.advance(b"x"), Ok((0, Piece::End)));
                    return Ok(data);
                }
                if n == 0 || pending.is_empty() {
                    break;
                }
            }
        }
        Err(ChunkError::MalformedSize)
    }

    #[test]
    fn chunked_bodies() {
        for step in [1, 2, 5, 100] {
            assert_eq!(
                decode(
                    b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nx-trailer: 1\r\n\r\n",
                    step
                ),
                Ok(b"hello!".to_vec())
            );
            assert_eq!(decode(b"0\r\n\r\n", step), Ok(Vec::new()));
            assert_eq!(
                decode(b"A \t;x\r\n0123456789\r\n0 \r\n\r\n", step).map(|d| d.len()),
                Ok(10)
            );
            assert_eq!(
                decode(b"000000000000000A\r\n0123456789\r\n0\r\n\r\n", step).map(|d| d.len()),
                Ok(10)
            );
        }
    }

    #[test]
    fn malformed_bodies_are_refused() {
        use ChunkError::*;
        for (bad, error) in [
            (&b"5\r\nhelloX\r\n0\r\n\r\n"[..], DataTooLong),
            (b"g\r\n", MalformedSize),
            (b"-1\r\n", MalformedSize),
            (b"\r\n", MalformedSize),
            (b";x\r\n", MalformedSize),
            (b"ffffffffffffffff1\r\n", SizeTooLarge),
            (b"10000000000000000\r\n", SizeTooLarge),
            (b"5 x\r\nhello\r\n", MalformedSize),
            (b"3\nabc\r\n0\r\n\r\n", BareLf),
            (b"3\r\rabc", BareCr),
            (b"3;a\nb\r\n", BareLf),
            (b"3;a\0\r\n", Nul),
            (b"0\r\nx: 1\n", BareLf),
            (b"0\r\nx: 1\r\r", BareCr),
        ] {
            for step in [1, 3, 64] {
                assert_eq!(
                    decode(bad, step),
                    Err(error),
                    "{:?}",
                    String::from_utf8_lossy(bad)
                );
            }
        }
        let long = format!("1;{}\r\n", "x".repeat(usize::from(MAX_CHUNK_LINE_BYTES)));
        assert_eq!(decode(long.as_bytes(), 512), Err(LineTooLong));
        let trailers = format!("0\r\nx: {}\r\n\r\n", "a".repeat(1100));
        assert_eq!(decode(trailers.as_bytes(), 100), Err(TrailersTooLarge));
    }

    #[test]
    fn data_is_handed_out_up_to_the_chunk_end() {
        let mut decoder = ChunkedDecoder::new(0);
        assert_eq!(decoder.advance(b"3\r\nabcdef"), Ok((3, Piece::Framing)));
        assert_eq!(decoder.advance(b"abcdef"), Ok((3, Piece::Data)));
        assert_eq!(decoder.advance(b""), Ok((0, Piece::Framing)));
        assert_eq!(decoder.advance(b"def"), Err(ChunkError::DataTooLong));
    }

    #[test]
    fn size_lines() {
        assert_eq!(size_line(0).as_slice(), b"0");
        assert_eq!(size_line(255).as_slice(), b"ff");
        assert_eq!(size_line(0x1000).as_slice(), b"1000");
    }
}
