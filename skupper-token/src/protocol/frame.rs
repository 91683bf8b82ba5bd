//! The link protocol's frames: what two sites say to each other over the
//! mutual-TLS connection of a link.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of
//! JSON, one object with a `type` field:
//!
//! | `type`          | from     | fields                                    |
//! |-----------------|----------|-------------------------------------------|
//! | `hello`         | dialer   | `protocol`, `site_id`, `site_name`, `link`|
//! | `hello-ack`     | listener | `protocol`, `site_id`, `site_name`        |
//! | `refused`       | listener | `reason` (the link is not accepted)       |
//! | `heartbeat`     | both     |                                           |
//! | `ping`, `pong`  | both     | `id`                                      |
//! | `revoke-notice` | listener | `payload`, `signature` (a signed notice)  |
//! | `bye`           | both     | `reason` (the sender is closing the link) |
//!
//! Frame types this version does not know are ignored, so a later version
//! can add some. A frame is at most [`MAX_FRAME_BYTES`] long.

/// The protocol version sent in `hello` and `hello-ack`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame accepted (and sent), JSON bytes without the length.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Frame {
    /// The dialer, right after the TLS handshake: who it is and which of
    /// its links this connection is.
    Hello {
        /// [`PROTOCOL_VERSION`].
        protocol: u32,
        /// The dialing site's id.
        site_id: String,
        /// The dialing site's name.
        site_name: String,
        /// The dialing site's name for this link.
        link: String,
    },
    /// The listener: the link is accepted.
    HelloAck {
        /// [`PROTOCOL_VERSION`].
        protocol: u32,
        /// The listening site's id.
        site_id: String,
        /// The listening site's name.
        site_name: String,
    },
    /// The listener: the link is not accepted (the connection closes).
    Refused {
        /// Why.
        reason: String,
    },
    /// Either side, every heartbeat interval: "I am alive".
    Heartbeat,
    /// Either side: answer with a [`Frame::Pong`] with the same id.
    Ping {
        /// Chosen by the sender.
        id: u64,
    },
    /// The answer to a [`Frame::Ping`].
    Pong {
        /// The ping's id.
        id: u64,
    },
    /// The listener: this site no longer accepts the dialer's certificate
    /// (a notice signed by the CA that issued it); the connection closes.
    RevokeNotice {
        /// The notice, JSON text, exactly as signed.
        payload: String,
        /// The ECDSA P-256 SHA-256 signature (ASN.1 DER), lowercase hex.
        signature: String,
    },
    /// Either side: closing the link (stopping, link deleted).
    Bye {
        /// Why.
        reason: String,
    },
    /// A frame type this version does not know (ignored).
    #[serde(other)]
    Unknown,
}

impl Frame {
    /// The frame's `type`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "hello",
            Frame::HelloAck { .. } => "hello-ack",
            Frame::Refused { .. } => "refused",
            Frame::Heartbeat => "heartbeat",
            Frame::Ping { .. } => "ping",
            Frame::Pong { .. } => "pong",
            Frame::RevokeNotice { .. } => "revoke-notice",
            Frame::Bye { .. } => "bye",
            Frame::Unknown => "unknown",
        }
    }
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix is over [`MAX_FRAME_BYTES`] (or zero).
    #[error("the peer sent a frame of {len} bytes (frames are 1 to {MAX_FRAME_BYTES} bytes): it does not speak this link protocol")]
    BadLength {
        /// The length announced.
        len: usize,
    },
    /// The JSON is not a frame.
    #[error("the peer sent a frame that is not valid: {reason}")]
    Invalid {
        /// The parser's complaint.
        reason: String,
    },
}

/// The bytes of `frame` on the wire: length and JSON.
pub fn encode(frame: &Frame) -> Vec<u8> {
    // Serializing an enum of strings and integers cannot fail.
    let json = serde_json::to_vec(frame).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + json.len());
    out.extend_from_slice(&u32::try_from(json.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// Collects received bytes and cuts them into frames.
#[derive(Debug, Default)]
pub struct FrameBuf {
    buf: Vec<u8>,
}

impl FrameBuf {
    /// An empty buffer.
    pub fn new() -> FrameBuf {
        FrameBuf::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// How many bytes are waiting.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no bytes are waiting.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next whole frame, `None` if more bytes are needed. An error
    /// means the stream is not this protocol: close the connection.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some(prefix) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len == 0 || len > MAX_FRAME_BYTES {
            return Err(FrameError::BadLength { len });
        }
        let Some(body) = self.buf.get(4..4 + len) else {
            return Ok(None);
        };
        let frame = serde_json::from_slice::<Frame>(body).map_err(|e| FrameError::Invalid {
            reason: e.to_string(),
        });
        self.buf.drain(..4 + len);
        frame.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_pieces() {
        let frames = vec![
            Frame::Hello {
                protocol: PROTOCOL_VERSION,
                site_id: "id".into(),
                site_name: "east".into(),
                link: "link1".into(),
            },
            Frame::HelloAck {
                protocol: 1,
                site_id: "w".into(),
                site_name: "west".into(),
            },
            Frame::Heartbeat,
            Frame::Ping { id: 7 },
            Frame::Pong { id: u64::MAX },
            Frame::RevokeNotice {
                payload: "{}".into(),
                signature: "00".into(),
            },
            Frame::Bye { reason: "x".into() },
            Frame::Refused { reason: "y".into() },
        ];
        let wire: Vec<u8> = frames.iter().flat_map(encode).collect();
        let mut buf = FrameBuf::new();
        let mut got = Vec::new();
        for byte in &wire {
            buf.push(std::slice::from_ref(byte));
            while let Some(f) = buf.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert!(buf.is_empty());
    }

    #[test]
    fn the_wire_format_is_length_and_json() {
        let bytes = encode(&Frame::Ping { id: 3 });
        assert_eq!(&bytes[..4], &(bytes.len() as u32 - 4).to_be_bytes());
        assert_eq!(&bytes[4..], br#"{"type":"ping","id":3}"#);
    }

    #[test]
    fn unknown_types_are_ignored_and_garbage_refused() {
        let mut buf = FrameBuf::new();
        let body = br#"{"type":"from-the-future","x":1}"#;
        buf.push(&(body.len() as u32).to_be_bytes());
        buf.push(body);
        assert_eq!(buf.next_frame().unwrap(), Some(Frame::Unknown));

        let mut buf = FrameBuf::new();
        buf.push(&[0, 0, 0, 2, b'{', b'}']);
        assert!(matches!(buf.next_frame(), Err(FrameError::Invalid { .. })));

        let mut buf = FrameBuf::new();
        buf.push(&((MAX_FRAME_BYTES + 1) as u32).to_be_bytes());
        assert!(matches!(
            buf.next_frame(),
            Err(FrameError::BadLength { .. })
        ));
        let mut buf = FrameBuf::new();
        buf.push(&[0, 0, 0, 0]);
        assert!(matches!(
            buf.next_frame(),
            Err(FrameError::BadLength { len: 0 })
        ));
        // "GET " as a length: an HTTP client.
        let mut buf = FrameBuf::new();
        buf.push(b"GET / HTTP/1.1\r\n");
        assert!(buf.next_frame().is_err());
    }
}
