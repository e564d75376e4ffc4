//! The reference's CRC32 frames, as its `WireProtocol` writes them on sockets and in WAL
//! files: `[u32 BE body length][body][u32 BE CRC32(body)]`.
//!
//! Both framings of the framed listener use it: the legacy framed-JSON ops of
//! `StoreServer` and the wire envelopes of `TCPAdapter`. A frame longer than the
//! configured limit, or whose CRC does not match, is an error; nothing here panics on
//! any input (see the `frame_decoder` property test and the fuzz target).

use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes of framing around a body (length + CRC).
pub const OVERHEAD: usize = 8;

/// Why a frame could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The declared body length is over the limit.
    TooLarge {
        /// The declared length.
        declared: usize,
        /// The limit.
        limit: usize,
    },
    /// The CRC does not match the body.
    BadCrc,
    /// The stream ended inside a frame.
    Truncated,
    /// A started frame did not arrive whole within the slow-client timeout.
    Slow,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { declared, limit } => {
                write!(
                    f,
                    "frame of {declared} bytes exceeds the limit of {limit} bytes"
                )
            }
            FrameError::BadCrc => f.write_str("frame CRC32 does not match its body"),
            FrameError::Truncated => f.write_str("connection ended inside a frame"),
            FrameError::Slow => f.write_str("frame not received in time (slow client)"),
        }
    }
}

impl std::error::Error for FrameError {}

/// One frame around `body`.
pub fn encode(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + OVERHEAD);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
    out
}

/// Decodes the first frame of `buf`: `Ok(Some((body, bytes used)))`, `Ok(None)` when
/// `buf` holds only part of a frame (and the part is not already over the limit).
pub fn decode(buf: &[u8], limit: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > limit {
        return Err(FrameError::TooLarge {
            declared: len,
            limit,
        });
    }
    let total = len + OVERHEAD;
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[4..4 + len];
    let crc = u32::from_be_bytes([buf[4 + len], buf[5 + len], buf[6 + len], buf[7 + len]]);
    if crc32fast::hash(body) != crc {
        return Err(FrameError::BadCrc);
    }
    Ok(Some((body, total)))
}

/// Reads one frame body from `r`. `Ok(None)` on a clean end of stream before the first
/// byte of a frame.
pub async fn read<R: AsyncRead + Unpin>(
    r: &mut R,
    limit: usize,
) -> Result<Option<Vec<u8>>, ReadError> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut head[got..]).await.map_err(ReadError::Io)?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(ReadError::Frame(FrameError::Truncated))
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(head) as usize;
    if len > limit {
        return Err(ReadError::Frame(FrameError::TooLarge {
            declared: len,
            limit,
        }));
    }
    let mut rest = vec![0u8; len + 4];
    r.read_exact(&mut rest).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ReadError::Frame(FrameError::Truncated)
        } else {
            ReadError::Io(e)
        }
    })?;
    let crc = u32::from_be_bytes([rest[len], rest[len + 1], rest[len + 2], rest[len + 3]]);
    rest.truncate(len);
    if crc32fast::hash(&rest) != crc {
        return Err(ReadError::Frame(FrameError::BadCrc));
    }
    Ok(Some(rest))
}

/// A failed [`read`].
#[derive(Debug)]
pub enum ReadError {
    /// The bytes were not a valid frame.
    Frame(FrameError),
    /// The socket failed.
    Io(std::io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Frame(e) => e.fmt(f),
            ReadError::Io(e) => e.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let f = encode(b"{\"op\":\"ping\"}");
        let (body, used) = decode(&f, 1024).unwrap().unwrap();
        assert_eq!(body, b"{\"op\":\"ping\"}");
        assert_eq!(used, f.len());
        assert_eq!(decode(&f[..f.len() - 1], 1024), Ok(None));
        let mut bad = f.clone();
        bad[5] ^= 1;
        assert_eq!(decode(&bad, 1024), Err(FrameError::BadCrc));
        assert!(matches!(decode(&f, 4), Err(FrameError::TooLarge { .. })));
    }
}
