//! Byte layout of segment headers and records (diagrams in the parent module's docs), and the
//! scan that walks a segment's records and tells the end of written data from corruption.

use std::ops::Range;

use super::error::Corruption;

/// First 8 bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"FRXJRNL\0";
/// The on-disk format this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Size of the segment header of format version 1.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Size of a record's frame header (crc, length, seq, ts_ns).
pub const RECORD_HEADER_BYTES: usize = 24;
/// Every record starts at a multiple of this, so frame fields are naturally aligned.
pub const RECORD_ALIGN_BYTES: usize = 8;

const HEADER_CRC_OFFSET: usize = SEGMENT_HEADER_BYTES - 4;

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub first_seq: u64,
    pub segment_bytes: u64,
    pub created_unix_ns: u64,
    pub creator_pid: u32,
}

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&bytes[offset..offset + 2]);
    u16::from_le_bytes(b)
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(b)
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut h = [0u8; SEGMENT_HEADER_BYTES];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        h[10..12].copy_from_slice(&(SEGMENT_HEADER_BYTES as u16).to_le_bytes());
        h[16..24].copy_from_slice(&self.first_seq.to_le_bytes());
        h[24..32].copy_from_slice(&self.segment_bytes.to_le_bytes());
        h[32..40].copy_from_slice(&self.created_unix_ns.to_le_bytes());
        h[40..44].copy_from_slice(&self.creator_pid.to_le_bytes());
        let crc = crc32c::crc32c(&h[..HEADER_CRC_OFFSET]);
        h[HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes and verifies the header at the start of `file`.
    pub fn decode(file: &[u8]) -> Result<Self, Corruption> {
        if file.len() < SEGMENT_HEADER_BYTES {
            return Err(Corruption::FileTooShort {
                file_bytes: file.len() as u64,
            });
        }
        if file[0..8] != MAGIC {
            return Err(Corruption::BadMagic);
        }
        // The CRC sits in the header's last 4 bytes, wherever a future version puts the end,
        // so the size is checked for plausibility, then the CRC, and only then the version:
        // a flipped bit in the version field must read as corruption, not as "too new".
        let header_bytes = u16_at(file, 10);
        let size = usize::from(header_bytes);
        if size < SEGMENT_HEADER_BYTES || size > file.len() || size % RECORD_ALIGN_BYTES != 0 {
            return Err(Corruption::BadHeaderSize { header_bytes });
        }
        if crc32c::crc32c(&file[..size - 4]) != u32_at(file, size - 4) {
            return Err(Corruption::HeaderCrcMismatch);
        }
        let version = u16_at(file, 8);
        if version != FORMAT_VERSION {
            return Err(Corruption::UnsupportedVersion { version });
        }
        if size != SEGMENT_HEADER_BYTES {
            return Err(Corruption::BadHeaderSize { header_bytes });
        }
        Ok(SegmentHeader {
            first_seq: u64_at(file, 16),
            segment_bytes: u64_at(file, 24),
            created_unix_ns: u64_at(file, 32),
            creator_pid: u32_at(file, 40),
        })
    }
}

/// Rounds a record's length up to the next record start.
pub const fn padded_bytes(record_bytes: usize) -> usize {
    (record_bytes + RECORD_ALIGN_BYTES - 1) & !(RECORD_ALIGN_BYTES - 1)
}

/// Bytes a record with this payload occupies in a segment, padding included.
pub const fn framed_bytes(payload_bytes: usize) -> usize {
    padded_bytes(RECORD_HEADER_BYTES + payload_bytes)
}

/// Appends one framed record to `out`. The caller has checked that the length fits a `u32`.
pub(crate) fn encode_record(out: &mut Vec<u8>, seq: u64, ts_ns: u64, payload: &[u8]) {
    let start = out.len();
    let record_bytes = RECORD_HEADER_BYTES + payload.len();
    debug_assert!(u32::try_from(record_bytes).is_ok());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(record_bytes as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ts_ns.to_le_bytes());
    out.extend_from_slice(payload);
    out.resize(start + padded_bytes(record_bytes), 0);
    // The CRC covers the padding too, so that every byte of the written area is checked.
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// An intact record found in a segment; ranges index the segment's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawRecord {
    pub seq: u64,
    pub ts_ns: u64,
    pub payload: Range<usize>,
    /// Where the next record starts.
    pub end: usize,
}

/// What is at one record position.
#[derive(Debug)]
pub(crate) enum Decoded {
    Record(RawRecord),
    /// Only zero bytes where the frame header would be: the end of written data.
    End,
    Bad(Corruption),
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// Decodes the record starting at `offset` (a multiple of [`RECORD_ALIGN_BYTES`]).
pub(crate) fn decode_record(bytes: &[u8], offset: usize) -> Decoded {
    let available = bytes.len().saturating_sub(offset);
    if available < RECORD_HEADER_BYTES {
        let rest = &bytes[offset.min(bytes.len())..];
        if is_zero(rest) {
            return Decoded::End;
        }
        let record_bytes = if available >= 8 {
            u32_at(bytes, offset + 4)
        } else {
            0
        };
        return Decoded::Bad(Corruption::TruncatedRecord {
            record_bytes,
            available_bytes: available as u64,
        });
    }
    let header = &bytes[offset..offset + RECORD_HEADER_BYTES];
    if is_zero(header) {
        return Decoded::End;
    }
    let record_bytes = u32_at(header, 4);
    // Zero (and anything below the frame header) is never a valid length: that is what makes
    // a zeroed, preallocated area unambiguous.
    if (record_bytes as usize) < RECORD_HEADER_BYTES {
        return Decoded::Bad(Corruption::BadRecordLength { record_bytes });
    }
    let end_rel = padded_bytes(record_bytes as usize);
    if end_rel > available {
        return Decoded::Bad(Corruption::TruncatedRecord {
            record_bytes,
            available_bytes: available as u64,
        });
    }
    let stored = u32_at(header, 0);
    let computed = crc32c::crc32c(&bytes[offset + 4..offset + end_rel]);
    if stored != computed {
        return Decoded::Bad(Corruption::CrcMismatch { stored, computed });
    }
    Decoded::Record(RawRecord {
        seq: u64_at(header, 8),
        ts_ns: u64_at(header, 16),
        payload: offset + RECORD_HEADER_BYTES..offset + record_bytes as usize,
        end: offset + end_rel,
    })
}

/// Offset of the first non-zero byte at or after `from`.
pub(crate) fn first_nonzero(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    // Word-at-a-time, because the zero tail of a preallocated segment can be hundreds of MiB.
    let mut chunks = rest.chunks_exact(8);
    let mut base = from;
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        if u64::from_ne_bytes(w) != 0 {
            return chunk.iter().position(|&b| b != 0).map(|i| base + i);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b != 0)
        .map(|i| base + i)
}

/// One past the last non-zero byte at or after `from`, if there is one.
pub(crate) fn nonzero_end(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    // Skip trailing zero words first, for the same reason as in `first_nonzero`.
    let mut end = rest.len();
    while end >= 8 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&rest[end - 8..end]);
        if u64::from_ne_bytes(w) != 0 {
            break;
        }
        end -= 8;
    }
    rest[..end]
        .iter()
        .rposition(|&b| b != 0)
        .map(|i| from + i + 1)
}

/// The first intact record strictly after a bad position `bad_offset`, whose seq is one a
/// genuine later record could have: at least `expected_seq`, and at most one more per
/// [`RECORD_HEADER_BYTES`] of distance (every record takes at least that much). The seq bound
/// keeps a payload that happens to contain a well-formed frame from being mistaken for later
/// data, except in the rare case where it also carries a plausible seq.
pub(crate) fn find_valid_record_after(
    bytes: &[u8],
    bad_offset: usize,
    expected_seq: u64,
) -> Option<(usize, u64)> {
    let mut q = bad_offset + RECORD_ALIGN_BYTES;
    while q + RECORD_HEADER_BYTES <= bytes.len() {
        // Cheap filters first: most positions are zero or fail the length and seq bounds.
        let record_bytes = u32_at(bytes, q + 4) as usize;
        if record_bytes >= RECORD_HEADER_BYTES && padded_bytes(record_bytes) <= bytes.len() - q {
            let seq = u64_at(bytes, q + 8);
            let max_seq =
                expected_seq.saturating_add(((q - bad_offset) / RECORD_HEADER_BYTES) as u64);
            if seq >= expected_seq && seq <= max_seq {
                if let Decoded::Record(r) = decode_record(bytes, q) {
                    return Some((q, r.seq));
                }
            }
        }
        q += RECORD_ALIGN_BYTES;
    }
    None
}

/// A corrupt position found by a scan; the caller adds the file's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub offset: u64,
    pub seq: u64,
    pub kind: Corruption,
}

/// One step of a [`SegmentScan`].
#[derive(Debug)]
pub(crate) enum ScanItem {
    Record(RawRecord),
    /// No more records. `garbage` is the range of non-zero bytes after the last record of the
    /// last segment that form no intact record (a torn tail); recovery zeroes it.
    End {
        offset: usize,
        garbage: Option<Range<usize>>,
    },
}

/// Walks the records of one segment, checking that their seqs are consecutive from the
/// header's first seq, and classifies where the records stop.
///
/// Where the records stop, the rules are:
/// - a record that is intact but carries the wrong seq is corruption anywhere;
/// - in a segment that is not the last, everything after the last record must be zero,
///   because the writer syncs a segment before creating the next one, so it cannot be torn;
/// - in the last segment, a bad or zeroed record followed by an intact later record is
///   corruption; a bad record followed by nothing intact is a torn tail.
pub(crate) struct SegmentScan<'a> {
    bytes: &'a [u8],
    offset: usize,
    next_seq: u64,
    is_last: bool,
    finished: bool,
}

impl<'a> SegmentScan<'a> {
    /// Starts after the header; the header has been verified by the caller.
    pub fn new(bytes: &'a [u8], first_seq: u64, is_last: bool) -> Self {
        SegmentScan {
            bytes,
            offset: SEGMENT_HEADER_BYTES,
            next_seq: first_seq,
            is_last,
            finished: false,
        }
    }

    /// The seq the next record must carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The next record, the end of records, or the corruption that stops the scan. Calling it
    /// again after the end or an error returns the end again.
    pub fn next_item(&mut self) -> Result<ScanItem, Found> {
        if self.finished {
            return Ok(ScanItem::End {
                offset: self.offset,
                garbage: None,
            });
        }
        let found = |offset: usize, seq: u64, kind: Corruption| Found {
            offset: offset as u64,
            seq,
            kind,
        };
        match decode_record(self.bytes, self.offset) {
            // u64::MAX is never a valid seq, so that `next_seq` cannot overflow on hostile data.
            Decoded::Record(r) if r.seq == self.next_seq && r.seq != u64::MAX => {
                self.offset = r.end;
                self.next_seq += 1;
                Ok(ScanItem::Record(r))
            }
            Decoded::Record(r) => {
                self.finished = true;
                Err(found(
                    self.offset,
                    self.next_seq,
                    Corruption::SeqGap {
                        expected: self.next_seq,
                        found: r.seq,
                    },
                ))
            }
            Decoded::End => {
                self.finished = true;
                self.end_of_records(Corruption::ZeroHeader, true)
                    .map_err(|(o, k)| found(o, self.next_seq, k))
            }
            Decoded::Bad(cause) => {
                self.finished = true;
                self.end_of_records(cause, false)
                    .map_err(|(o, k)| found(o, self.next_seq, k))
            }
        }
    }

    fn end_of_records(
        &self,
        cause: Corruption,
        clean: bool,
    ) -> Result<ScanItem, (usize, Corruption)> {
        let p = self.offset;
        if !self.is_last {
            if !clean {
                return Err((p, cause));
            }
            return match first_nonzero(self.bytes, p) {
                Some(o) => Err((o, Corruption::DataAfterEnd)),
                None => Ok(ScanItem::End {
                    offset: p,
                    garbage: None,
                }),
            };
        }
        if let Some((q, seq)) = find_valid_record_after(self.bytes, p, self.next_seq) {
            return Err((
                p,
                Corruption::BeforeValidRecord {
                    cause: Box::new(cause),
                    valid_offset: q as u64,
                    valid_seq: seq,
                },
            ));
        }
        let garbage = first_nonzero(self.bytes, p).and_then(|start| {
            // Invariant: a first non-zero byte exists, so a last one does too.
            nonzero_end(self.bytes, start).map(|end| start..end)
        });
        Ok(ScanItem::End { offset: p, garbage })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_detects_every_bit_flip() {
        let h = SegmentHeader {
            first_seq: 42,
            segment_bytes: 1 << 20,
            created_unix_ns: 123,
            creator_pid: 7,
        };
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
        for bit in 0..SEGMENT_HEADER_BYTES * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&b).is_err(), "bit {bit} undetected");
        }
    }

    #[test]
    fn record_round_trips_with_padding() {
        for len in 0..20 {
            let payload: Vec<u8> = (0..len as u8).collect();
            let mut buf = Vec::new();
            encode_record(&mut buf, 9, 10, &payload);
            assert_eq!(buf.len(), framed_bytes(len));
            assert_eq!(buf.len() % RECORD_ALIGN_BYTES, 0);
            match decode_record(&buf, 0) {
                Decoded::Record(r) => {
                    assert_eq!((r.seq, r.ts_ns, r.end), (9, 10, buf.len()));
                    assert_eq!(&buf[r.payload], &payload[..]);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn zeros_are_the_end_and_a_zero_length_is_bad() {
        assert!(matches!(decode_record(&[0u8; 64], 0), Decoded::End));
        assert!(matches!(decode_record(&[0u8; 5], 0), Decoded::End));
        let mut buf = [0u8; 32];
        buf[0] = 1;
        assert!(matches!(
            decode_record(&buf, 0),
            Decoded::Bad(Corruption::BadRecordLength { record_bytes: 0 })
        ));
    }

    #[test]
    fn nonzero_helpers() {
        let mut b = vec![0u8; 100];
        assert_eq!(first_nonzero(&b, 0), None);
        assert_eq!(nonzero_end(&b, 0), None);
        b[37] = 1;
        b[90] = 2;
        assert_eq!(first_nonzero(&b, 0), Some(37));
        assert_eq!(first_nonzero(&b, 38), Some(90));
        assert_eq!(nonzero_end(&b, 0), Some(91));
        assert_eq!(first_nonzero(&b, 200), None);
    }
}
