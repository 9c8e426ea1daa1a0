//! Stable, non-cryptographic fingerprints (FNV-1a 64) for a model's "training data hash".
//!
//! FNV-1a is fixed by its specification, so a fingerprint is the same on every platform
//! and in every version of this crate. It detects accidental changes of the data, not
//! deliberate ones.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Result, TabularError};

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// Streaming FNV-1a 64 hasher. Also an [`std::io::Write`], so `std::io::copy` can feed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a64 {
    pub fn new() -> Self {
        Self(OFFSET_BASIS)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
        self.0 = h;
    }

    pub fn finish(&self) -> u64 {
        self.0
    }

    /// The hash as 16 lowercase hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

impl Write for Fnv1a64 {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// FNV-1a 64 of some bytes, as 16 hex digits.
pub fn fingerprint_bytes(bytes: &[u8]) -> String {
    let mut h = Fnv1a64::new();
    h.update(bytes);
    h.hex()
}

/// FNV-1a 64 of a file's bytes as stored (a `.gz` file is hashed compressed), as 16 hex
/// digits. See [`crate::RawTable::fingerprint`] for a hash of the content instead.
pub fn fingerprint_file(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let io = |source| TabularError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Fnv1a64::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // Reference values of the FNV specification.
        assert_eq!(fingerprint_bytes(b""), "cbf29ce484222325");
        assert_eq!(fingerprint_bytes(b"a"), "af63dc4c8601ec8c");
        assert_eq!(fingerprint_bytes(b"foobar"), "85944171f73967e8");
    }

    #[test]
    fn streaming_equals_one_shot_and_file() {
        let mut h = Fnv1a64::new();
        h.update(b"foo");
        h.update(b"bar");
        assert_eq!(h.hex(), fingerprint_bytes(b"foobar"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        std::fs::write(&p, b"foobar").unwrap();
        assert_eq!(fingerprint_file(&p).unwrap(), "85944171f73967e8");
        let e = fingerprint_file(dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing: cannot read"), "{e}");
    }
}
