//! An open bundle file whose header has been checked: reading its payload
//! once while hashing it, and a reader that hashes what passes through it.

use std::fs::File;
use std::io::Read;

use sha2::{Digest, Sha256};

use super::read::{read_up_to, ParsedHeader};
use crate::error::{Error, Result};
use crate::format::truncated;

/// Payloads kept in memory from this size are hashed beside the reading.
const PIPELINE_FROM: u64 = 8 << 20;
/// Bytes read (and hashed) at a time.
const CHUNK: usize = 1 << 20;

/// What [`OpenBundle::read_payload`] keeps of the bytes it hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
    /// The payload, in one buffer.
    Bytes,
    /// Nothing: hash only.
    Nothing,
}

/// A bundle file whose preamble and header are read and checked.
pub(crate) struct OpenBundle {
    pub(super) file: File,
    pub(super) path: std::path::PathBuf,
    pub(super) file_len: u64,
    pub(super) payload_start: u64,
    pub(super) parsed: ParsedHeader,
}

impl OpenBundle {
    /// Reads the payload once, hashing it as it arrives; keeps it if asked.
    ///
    /// A large payload that is kept is hashed on a second thread while the
    /// next chunk is read, so the load takes about as long as the slower
    /// of reading and hashing, not their sum.
    pub(super) fn read_payload(
        &mut self,
        progress: &mut dyn FnMut(u64, u64),
        keep: Keep,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let total = self.parsed.header.payload.stored_len;
        if keep == Keep::Bytes && total >= PIPELINE_FROM {
            return self.read_kept_pipelined(progress);
        }
        let mut hasher = Sha256::new();
        // Zeroed allocations are mapped lazily: no pass over the memory
        // before the file's bytes land in it.
        let (mut kept, mut scratch) = match keep {
            Keep::Bytes => (crate::memory::zeroed_vec(total as usize), Vec::new()),
            Keep::Nothing => (Vec::new(), vec![0_u8; total.min(CHUNK as u64) as usize]),
        };
        let mut done = 0_u64;
        while done < total {
            let want = (total - done).min(CHUNK as u64) as usize;
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

    /// [`read_payload`](Self::read_payload) keeping the bytes, with the
    /// hashing of chunk `i` overlapping the reading of chunk `i + 1`.
    fn read_kept_pipelined(&mut self, progress: &mut dyn FnMut(u64, u64)) -> Result<(Vec<u8>, Vec<u8>)> {
        let total = self.parsed.header.payload.stored_len;
        let mut kept = crate::memory::zeroed_vec(total as usize);
        let (file, path, start) = (&mut self.file, &self.path, self.payload_start);
        let hash = std::thread::scope(|scope| -> Result<Vec<u8>> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<&[u8]>(4);
            let hasher = scope.spawn(move || {
                let mut hasher = Sha256::new();
                for chunk in rx {
                    hasher.update(chunk);
                }
                hasher.finalize().to_vec()
            });
            let mut done = 0_u64;
            for chunk in kept.chunks_mut(CHUNK) {
                let got = read_up_to(file, chunk).map_err(|e| Error::io(path, e))?;
                if got < chunk.len() {
                    return Err(truncated("payload", start, total, done + got as u64));
                }
                done += got as u64;
                let chunk: &[u8] = chunk;
                if tx.send(chunk).is_err() {
                    break;
                }
                progress(done, total);
            }
            drop(tx);
            hasher.join().map_err(|_| Error::Invalid {
                section: "payload",
                reason: "the hashing thread failed".to_owned(),
            })
        })?;
        Ok((kept, hash))
    }

    /// Reads the whole payload without hashing it (the caller hashes it).
    pub(super) fn read_unhashed(&mut self) -> Result<Vec<u8>> {
        let total = self.parsed.header.payload.stored_len;
        let mut kept = crate::memory::zeroed_vec(total as usize);
        let got = read_up_to(&mut self.file, &mut kept).map_err(|e| Error::io(&self.path, e))?;
        if (got as u64) < total {
            return Err(truncated("payload", self.payload_start, total, got as u64));
        }
        Ok(kept)
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
