//! Payloads on the wire: parameters as little-endian `f32` bytes (or a tree model's own
//! encoding, carried as is), split into chunks, with the SHA-256 of the whole that the
//! receiver verifies after reassembly.

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Bytes per parameter on the wire.
pub const BYTES_PER_PARAM: usize = 4;

/// Encodes parameters as concatenated little-endian `f32`.
pub fn encode_params(params: &[f32]) -> Bytes {
    let mut out = Vec::with_capacity(params.len() * BYTES_PER_PARAM);
    for x in params {
        out.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(out)
}

/// Decodes concatenated little-endian `f32`; `None` when the length is not a multiple of 4.
pub fn decode_params(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(BYTES_PER_PARAM) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(BYTES_PER_PARAM)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// Splits `bytes` into zero-copy slices of at most `chunk_bytes` (at least one byte each; an
/// empty input gives no chunk). `chunk_bytes = 0` is treated as 1.
pub fn split_chunks(bytes: &Bytes, chunk_bytes: usize) -> Vec<Bytes> {
    let size = chunk_bytes.max(1);
    (0..bytes.len())
        .step_by(size)
        .map(|start| bytes.slice(start..(start + size).min(bytes.len())))
        .collect()
}

/// Why a reassembled payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassemblyError {
    /// More bytes arrived than announced.
    #[error("received more than the announced {expected} bytes")]
    Overflow {
        /// Announced length.
        expected: u64,
    },
    /// A chunk larger than the agreed chunk size.
    #[error("chunk of {len} bytes exceeds the chunk size of {max} bytes")]
    ChunkTooLarge {
        /// Length of the chunk.
        len: usize,
        /// Agreed maximum.
        max: usize,
    },
    /// The stream ended before the announced length.
    #[error("received {received} of the announced {expected} bytes")]
    Incomplete {
        /// Bytes received.
        received: u64,
        /// Announced length.
        expected: u64,
    },
    /// The checksum of the reassembled bytes differs from the announced one.
    #[error("SHA-256 of the reassembled bytes does not match the announced checksum")]
    Checksum,
    /// The length is not a whole number of `f32`.
    #[error("payload of {0} bytes is not a whole number of f32 parameters")]
    NotF32(u64),
}

/// Collects chunks of a payload of announced length and checksum.
#[derive(Debug)]
pub struct Reassembler {
    expected: u64,
    sha256: Vec<u8>,
    max_chunk: usize,
    buf: Vec<u8>,
}

impl Reassembler {
    /// A reassembler for `expected` bytes with SHA-256 `sha256`, accepting chunks of at most
    /// `max_chunk` bytes. The buffer is reserved up to `expected` (callers bound `expected`
    /// by the model size before calling).
    pub fn new(expected: u64, sha256: Vec<u8>, max_chunk: usize) -> Self {
        let reserve = usize::try_from(expected).unwrap_or(0);
        Self {
            expected,
            sha256,
            max_chunk,
            buf: Vec::with_capacity(reserve),
        }
    }

    /// Appends a chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ReassemblyError> {
        if chunk.len() > self.max_chunk {
            return Err(ReassemblyError::ChunkTooLarge {
                len: chunk.len(),
                max: self.max_chunk,
            });
        }
        if self.buf.len() as u64 + chunk.len() as u64 > self.expected {
            return Err(ReassemblyError::Overflow {
                expected: self.expected,
            });
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// Whether all announced bytes arrived.
    pub fn is_complete(&self) -> bool {
        self.buf.len() as u64 == self.expected
    }

    /// Verifies length and checksum and decodes the parameters.
    pub fn finish(self) -> Result<Vec<f32>, ReassemblyError> {
        let expected = self.expected;
        let bytes = self.finish_bytes()?;
        decode_params(&bytes).ok_or(ReassemblyError::NotF32(expected))
    }

    /// Verifies length and checksum and returns the bytes (payloads that are not parameter
    /// vectors, such as encoded trees).
    pub fn finish_bytes(self) -> Result<Vec<u8>, ReassemblyError> {
        if !self.is_complete() {
            return Err(ReassemblyError::Incomplete {
                received: self.buf.len() as u64,
                expected: self.expected,
            });
        }
        if sha256(&self.buf) != self.sha256 {
            return Err(ReassemblyError::Checksum);
        }
        Ok(self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_bit_exact() {
        let params = vec![0.0, -0.0, 1.5, f32::MIN_POSITIVE, f32::MAX, f32::NAN, 1e-40];
        let bytes = encode_params(&params);
        let chunks = split_chunks(&bytes, 5);
        assert_eq!(chunks.len(), 6);
        let mut r = Reassembler::new(bytes.len() as u64, sha256(&bytes), 5);
        for c in &chunks {
            r.push(c).unwrap();
        }
        let back = r.finish().unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&params));
    }

    #[test]
    fn tree_payloads_reassemble_as_bytes_of_any_length() {
        // Encoded trees are not a whole number of f32: they come back as bytes, intact.
        let trees = Bytes::from((0u8..=250).collect::<Vec<u8>>());
        let mut r = Reassembler::new(trees.len() as u64, sha256(&trees), 64);
        for c in split_chunks(&trees, 64) {
            r.push(&c).unwrap();
        }
        assert_eq!(r.finish_bytes().unwrap(), trees.to_vec());
        let mut r = Reassembler::new(trees.len() as u64, sha256(&trees), 256);
        r.push(&trees).unwrap();
        assert_eq!(r.finish(), Err(ReassemblyError::NotF32(251)));
        // Truncated: refused, whatever the payload.
        let mut r = Reassembler::new(trees.len() as u64, sha256(&trees), 256);
        r.push(&trees[..200]).unwrap();
        assert_eq!(
            r.finish_bytes(),
            Err(ReassemblyError::Incomplete {
                received: 200,
                expected: 251
            })
        );
    }

    #[test]
    fn tree_contribution_headers_round_trip_and_1_0_headers_mean_parameters() {
        use crate::proto::{ModelKind, TreeContribution, UpdateChunk, UpdateHeader, update_chunk};
        use prost::Message;
        let header = UpdateHeader {
            protocol_version: Some(crate::our_version()),
            session: "s".into(),
            round: 3,
            num_examples: 10,
            update_bytes: 251,
            update_sha256: vec![7; 32],
            model_kind: ModelKind::Trees as i32,
            trees: Some(TreeContribution {
                format_version: 1,
                n_trees: 12,
                n_features: 122,
            }),
            ..UpdateHeader::default()
        };
        let msg = UpdateChunk {
            kind: Some(update_chunk::Kind::Header(header.clone())),
        };
        let back = UpdateChunk::decode(msg.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, msg);
        // A 1.0 peer's header has no kind and no trees: it reads as parameters.
        let old = UpdateHeader {
            model_kind: 0,
            trees: None,
            ..header
        };
        let back = UpdateHeader::decode(old.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            ModelKind::try_from(back.model_kind),
            Ok(ModelKind::Unspecified)
        );
        assert!(back.trees.is_none());
    }

    #[test]
    fn refuses_bad_payloads() {
        let bytes = encode_params(&[1.0, 2.0]);
        let mut r = Reassembler::new(8, sha256(&bytes), 4);
        assert!(matches!(
            r.push(&bytes[..]),
            Err(ReassemblyError::ChunkTooLarge { .. })
        ));
        r.push(&bytes[..4]).unwrap();
        assert!(matches!(
            Reassembler::new(8, sha256(&bytes), 4).finish(),
            Err(ReassemblyError::Incomplete { .. })
        ));
        let mut tampered = bytes.to_vec();
        tampered[0] ^= 1;
        let mut r = Reassembler::new(8, sha256(&bytes), 8);
        r.push(&tampered).unwrap();
        assert_eq!(r.finish(), Err(ReassemblyError::Checksum));
        let mut r = Reassembler::new(4, sha256(&bytes), 8);
        assert!(matches!(
            r.push(&bytes),
            Err(ReassemblyError::Overflow { .. })
        ));
    }
}
