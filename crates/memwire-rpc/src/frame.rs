//! The frame: what one link message carries in an RPC conversation.
//!
//! ```text
//! offset  size  field
//!      0     1  version = 1
//!      1     1  kind (Kind)
//!      2     1  encoding of the payload (Encoding)
//!      3     1  reserved = 0
//!      4     2  method name length, little-endian (requests only; 0 otherwise)
//!      6     2  reserved = 0
//!      8     8  call id, little-endian
//!     16     …  method name (UTF-8), then the payload
//! ```
//!
//! One link message is one frame. A frame comes from the peer, which is untrusted: [`decode`]
//! checks every field of its copy of the header and gives a [`FrameError`] for anything it
//! does not expect, never a panic. `docs/rpc-protocol.md` documents the payloads of each kind.

/// Bytes before the method name.
pub const HEADER_LEN: usize = 16;
/// The only version this build speaks.
pub const VERSION: u8 = 1;
/// Longest method name a frame may carry.
pub const MAX_METHOD_LEN: usize = 255;

/// What a frame is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Client → server: call `method` with the payload as arguments.
    Request = 1,
    /// Server → client: the call's result.
    Response = 2,
    /// Server → client: the call failed; the payload is an error record (MessagePack).
    Error = 3,
    /// Client → server: the client no longer wants the call's result.
    Cancel = 4,
    /// Server → client: one item of a streaming call.
    StreamItem = 5,
    /// Server → client: the streaming call produced its last item.
    StreamEnd = 6,
    /// Client → server: may I have an answer? The call id is the ping's sequence number.
    Ping = 7,
    /// Server → client: the answer to the ping of the same id.
    Pong = 8,
    /// Client → server: the client can take this many more items of a streaming call
    /// (payload: a little-endian `u32`).
    Credit = 9,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Request,
            2 => Self::Response,
            3 => Self::Error,
            4 => Self::Cancel,
            5 => Self::StreamItem,
            6 => Self::StreamEnd,
            7 => Self::Ping,
            8 => Self::Pong,
            9 => Self::Credit,
            _ => return None,
        })
    }
}

/// How a payload is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Encoding {
    /// No payload, or raw bytes the kind defines (credits).
    Raw = 0,
    /// postcard: typed Rust calls.
    Postcard = 1,
    /// MessagePack: calls by name, from any language.
    MessagePack = 2,
}

impl Encoding {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Raw,
            1 => Self::Postcard,
            2 => Self::MessagePack,
            _ => return None,
        })
    }
}

/// A decoded frame, borrowing the message it came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// What it is for.
    pub kind: Kind,
    /// How `payload` is encoded.
    pub encoding: Encoding,
    /// The call it belongs to.
    pub call_id: u64,
    /// The method (requests only; empty otherwise).
    pub method: &'a str,
    /// Everything after the method name.
    pub payload: &'a [u8],
}

/// Why bytes are not a frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than a header.
    #[error("frame of {0} bytes is shorter than its {HEADER_LEN}-byte header")]
    Short(usize),
    /// A version this build does not speak.
    #[error("frame version {0}, expected {VERSION}")]
    Version(u8),
    /// An unknown kind.
    #[error("unknown frame kind {0}")]
    Kind(u8),
    /// An unknown encoding.
    #[error("unknown payload encoding {0}")]
    Encoding(u8),
    /// A reserved byte is not zero.
    #[error("reserved header byte {0} is not zero")]
    Reserved(usize),
    /// The method name runs past the frame, is empty on a request, is present on another
    /// kind, or is not UTF-8.
    #[error("bad method name: {0}")]
    Method(&'static str),
}

/// Decodes `bytes` (a received message).
///
/// # Errors
/// [`FrameError`] for anything but a well-formed frame.
pub fn decode(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    let Some((header, rest)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(FrameError::Short(bytes.len()));
    };
    if header[0] != VERSION {
        return Err(FrameError::Version(header[0]));
    }
    let kind = Kind::from_byte(header[1]).ok_or(FrameError::Kind(header[1]))?;
    let encoding = Encoding::from_byte(header[2]).ok_or(FrameError::Encoding(header[2]))?;
    for i in [3, 6, 7] {
        if header[i] != 0 {
            return Err(FrameError::Reserved(i));
        }
    }
    let method_len = usize::from(u16::from_le_bytes([header[4], header[5]]));
    let mut id = [0; 8];
    id.copy_from_slice(&header[8..16]);
    let call_id = u64::from_le_bytes(id);
    match (kind, method_len) {
        (Kind::Request, 0) => return Err(FrameError::Method("a request names no method")),
        (Kind::Request, n) if n > MAX_METHOD_LEN => {
            return Err(FrameError::Method("longer than 255 bytes"));
        }
        (Kind::Request, _) | (_, 0) => {}
        _ => return Err(FrameError::Method("only a request names a method")),
    }
    if method_len > rest.len() {
        return Err(FrameError::Method("runs past the end of the frame"));
    }
    let (method, payload) = rest.split_at(method_len);
    let method = std::str::from_utf8(method).map_err(|_| FrameError::Method("not UTF-8"))?;
    Ok(Frame {
        kind,
        encoding,
        call_id,
        method,
        payload,
    })
}

/// Bytes a frame of `method` and a `payload_len`-byte payload takes.
#[must_use]
pub fn encoded_len(method: &str, payload_len: usize) -> usize {
    HEADER_LEN + method.len() + payload_len
}

/// Writes the header and method name of a frame into the start of `out` (at least
/// `HEADER_LEN + method.len()` bytes), returning how many bytes that took; the payload goes
/// after. `method` must be empty for every kind but a request, and at most
/// [`MAX_METHOD_LEN`] bytes (checked by the caller: [`check_method`]).
///
/// # Panics
/// If `out` is shorter than `HEADER_LEN + method.len()` ([`encoded_len`] sizes it).
pub fn encode_head(
    out: &mut [u8],
    kind: Kind,
    encoding: Encoding,
    call_id: u64,
    method: &str,
) -> usize {
    debug_assert!(method.len() <= MAX_METHOD_LEN);
    debug_assert!(out.len() >= HEADER_LEN + method.len());
    let method_len = u16::try_from(method.len()).unwrap_or(u16::MAX);
    out[0] = VERSION;
    out[1] = kind as u8;
    out[2] = encoding as u8;
    out[3] = 0;
    out[4..6].copy_from_slice(&method_len.to_le_bytes());
    out[6..8].fill(0);
    out[8..16].copy_from_slice(&call_id.to_le_bytes());
    out[HEADER_LEN..HEADER_LEN + method.len()].copy_from_slice(method.as_bytes());
    HEADER_LEN + method.len()
}

/// Whether `method` can name a method on the wire: 1..=255 bytes.
#[must_use]
pub fn check_method(method: &str) -> bool {
    (1..=MAX_METHOD_LEN).contains(&method.len())
}

/// A whole frame in a fresh vector (tests, fuzzing, the protocol document's examples).
#[must_use]
pub fn encode(
    kind: Kind,
    encoding: Encoding,
    call_id: u64,
    method: &str,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = vec![0; encoded_len(method, payload.len())];
    let at = encode_head(&mut out, kind, encoding, call_id, method);
    out[at..].copy_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_request_round_trips() {
        let bytes = encode(Kind::Request, Encoding::Postcard, 7, "add", &[1, 2, 3]);
        let frame = decode(&bytes).expect("a frame we encoded");
        assert_eq!(frame.kind, Kind::Request);
        assert_eq!(frame.encoding, Encoding::Postcard);
        assert_eq!(frame.call_id, 7);
        assert_eq!(frame.method, "add");
        assert_eq!(frame.payload, &[1, 2, 3]);
    }

    #[test]
    fn each_malformation_has_its_error() {
        let good = encode(Kind::Request, Encoding::MessagePack, 1, "m", b"x");
        assert_eq!(decode(&good[..15]), Err(FrameError::Short(15)));
        let mut b = good.clone();
        b[0] = 2;
        assert_eq!(decode(&b), Err(FrameError::Version(2)));
        let mut b = good.clone();
        b[1] = 0;
        assert_eq!(decode(&b), Err(FrameError::Kind(0)));
        let mut b = good.clone();
        b[2] = 9;
        assert_eq!(decode(&b), Err(FrameError::Encoding(9)));
        let mut b = good.clone();
        b[7] = 1;
        assert_eq!(decode(&b), Err(FrameError::Reserved(7)));
        let mut b = good.clone();
        b[4] = 200;
        assert!(matches!(decode(&b), Err(FrameError::Method(_))));
        let mut b = good.clone();
        b[16] = 0xff;
        assert_eq!(decode(&b), Err(FrameError::Method("not UTF-8")));
        let no_method = encode(Kind::Request, Encoding::Raw, 1, "", b"");
        assert!(matches!(decode(&no_method), Err(FrameError::Method(_))));
        let mut named_reply = encode(Kind::Response, Encoding::Raw, 1, "", b"ab");
        named_reply[4] = 1;
        assert!(matches!(decode(&named_reply), Err(FrameError::Method(_))));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn accepted_frames_re_encode_exactly(bytes in proptest::collection::vec(any::<u8>(), 16..64)) {
            if let Ok(f) = decode(&bytes) {
                prop_assert_eq!(encode(f.kind, f.encoding, f.call_id, f.method, f.payload), bytes.clone());
            }
        }

        #[test]
        fn encoded_frames_decode(
            kind in 1u8..=9,
            enc in 0u8..=2,
            id in any::<u64>(),
            method in "[a-z_.]{1,40}",
            payload in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let kind = Kind::from_byte(kind).expect("in range");
            let enc = Encoding::from_byte(enc).expect("in range");
            let method = if kind == Kind::Request { method.as_str() } else { "" };
            let bytes = encode(kind, enc, id, method, &payload);
            let f = decode(&bytes).expect("well formed");
            prop_assert_eq!((f.kind, f.encoding, f.call_id, f.method, f.payload), (kind, enc, id, method, &payload[..]));
        }
    }
}

#[cfg(test)]
mod doc_example {
    use super::*;

    /// The example at the end of `docs/rpc-protocol.md`, byte for byte.
    #[test]
    fn the_protocol_documents_example_is_what_we_send() {
        let args = rmp_serde::to_vec(&(1, 2)).expect("encode");
        let request = encode(Kind::Request, Encoding::MessagePack, 7, "add", &args);
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/rpc-protocol.md"
        ))
        .expect("the protocol document");
        let hex = |bytes: &[u8]| {
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(doc.contains(&format!("request:  {}", hex(&request))));
        let result = rmp_serde::to_vec(&3).expect("encode");
        let response = encode(Kind::Response, Encoding::MessagePack, 7, "", &result);
        assert!(doc.contains(&format!("response: {}", hex(&response))));
    }
}
