//! An open bundle file whose header has been checked: reading its payload
//! once while hashing it, and a reader that hashes what passes through it.

use std::fs::File;
use std::io::Read;

use sha2::{Digest, Sha256};

use super::read::{read_up_to, ParsedHeader};
use crate::error::{Error, Result};
use crate::format::truncated;

/// What [`OpenBundle::read_payload`] keeps of the bytes it hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
    /// The payload, in one buffer.
    Bytes,
    /// Nothing: hash only.
    Nothing,
}

/// A bundle file whose preamble and header are read and checked.
pub(super) struct OpenBundle {
    pub(super) file: File,
    pub(super) path: std::path::PathBuf,
    pub(super) file_len: u64,
    pub(super) payload_start: u64,
    pub(super) parsed: ParsedHeader,
}

impl OpenBundle {
    /// Reads the payload once, hashing it as it arrives; keeps it if asked.
    pub(super) fn read_payload(
        &mut self,
        progress: &mut dyn FnMut(u64, u64),
        keep: Keep,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let total = self.parsed.header.payload.stored_len;
        let mut hasher = Sha256::new();
        let mut kept = Vec::new();
        let mut scratch = Vec::new();
        if keep == Keep::Bytes {
            kept.resize(total as usize, 0);
        } else {
            scratch.resize(total.min(1 << 20) as usize, 0);
        }
        let mut done = 0_u64;
        while done < total {
            let want = (total - done).min(1 << 20) as usize;
            let buf = match keep {
                Keep::Bytes => &mut kept[done as usize..done as usize + want],
                Keep::Nothing => &mut scratch[..want],
            };
            let got = read_up_to(&mut self.file, buf).map_err(|e| Error::io(&self.path, e))?;
            if got == 0 {
                return Err(truncated("payload", self.payload_start, total, done));
            }
            hasher.update(&buf[..got]);
            done += got as u64;
            progress(done, total);
        }
        Ok((kept, hasher.finalize().to_vec()))
    }

    pub(super) fn rewind(&mut self) -> Result<()> {
        use std::io::Seek;
        self.file
            .seek(std::io::SeekFrom::Start(self.payload_start))
            .map(|_| ())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// A reader that hashes what passes through it.
pub(super) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub(super) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    pub(super) fn finish(self) -> Vec<u8> {
        self.hasher.finalize().to_vec()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
