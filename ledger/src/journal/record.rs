//! The record frame, byte for byte.
//!
//! ```text
//! offset  size  field
//!      0     4  payload length, u32 little-endian
//!      4     4  CRC-32C (Castagnoli) over bytes 0..4, bytes 8..16 and the payload
//!      8     8  sequence number, u64 little-endian
//!     16   len  payload
//! ```
//!
//! Little-endian because every machine the gateway runs on is, so the
//! fields are read with no byte swapping. The checksum covers the length and
//! the sequence number as well as the payload: a torn or stale header can
//! not pass for a record, and a record copied to another position of the
//! journal does not continue the sequence there. A header of sixteen zero
//! bytes is never a record (its checksum would have to be CRC-32C of twelve
//! zero bytes, which is not zero): it is the unwritten space after the last
//! record of a segment.

/// Bytes of a record header.
pub(super) const HEADER_LEN: usize = 16;

/// A record's header, parsed but not yet checked against its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Header {
    /// Payload bytes that follow the header.
    pub len: u32,
    /// The stored checksum.
    pub crc: u32,
    /// The record's sequence number.
    pub seq: u64,
}

impl Header {
    /// The header of record `seq` whose payload is `parts` concatenated, or
    /// `None` if the payload is longer than a `u32` can say.
    pub fn of(seq: u64, parts: &[&[u8]]) -> Option<Header> {
        let len = parts
            .iter()
            .try_fold(0u64, |sum, part| sum.checked_add(part.len() as u64))?;
        let len = u32::try_from(len).ok()?;
        let mut crc = crc32c::crc32c_append(0, &len.to_le_bytes());
        crc = crc32c::crc32c_append(crc, &seq.to_le_bytes());
        for part in parts {
            crc = crc32c::crc32c_append(crc, part);
        }
        Some(Header { len, crc, seq })
    }

    /// The header's sixteen bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.len.to_le_bytes());
        out[4..8].copy_from_slice(&self.crc.to_le_bytes());
        out[8..16].copy_from_slice(&self.seq.to_le_bytes());
        out
    }

    /// Parses sixteen bytes; `None` for all zeros (unwritten space).
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Option<Header> {
        if bytes.iter().all(|&b| b == 0) {
            return None;
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&bytes[0..4]);
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&bytes[4..8]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[8..16]);
        Some(Header {
            len: u32::from_le_bytes(len),
            crc: u32::from_le_bytes(crc),
            seq: u64::from_le_bytes(seq),
        })
    }

    /// Whether `payload` is the one this header was written for.
    pub fn matches(&self, payload: &[u8]) -> bool {
        payload.len() == self.len as usize
            && Header::of(self.seq, &[payload]).is_some_and(|h| h.crc == self.crc)
    }

    /// Header and payload bytes together.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32C written out from its definition (reflected polynomial
    /// 0x82F63B78, initial value and final xor all ones), bit by bit.
    fn crc32c_by_the_book(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn the_checksum_is_crc32c_over_length_sequence_and_payload() {
        // RFC 3720 appendix B.4's check value: 32 bytes of zeros.
        assert_eq!(crc32c_by_the_book(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8A91_36AA);
        let header = Header::of(0x0102_0304_0506_0708, &[b"hello ", b"world"]).expect("small");
        let bytes = header.encode();
        assert_eq!(&bytes[0..4], &[11, 0, 0, 0]);
        assert_eq!(&bytes[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        let mut covered = Vec::new();
        covered.extend_from_slice(&bytes[0..4]);
        covered.extend_from_slice(&bytes[8..16]);
        covered.extend_from_slice(b"hello world");
        assert_eq!(&bytes[4..8], &crc32c_by_the_book(&covered).to_le_bytes());
        assert_eq!(Header::decode(&bytes), Some(header));
        assert!(header.matches(b"hello world"));
        assert!(!header.matches(b"hello worle"));
        assert_eq!(header.record_len(), 27);
    }

    #[test]
    fn zeros_are_no_header_and_no_empty_record_is_zeros() {
        assert_eq!(Header::decode(&[0u8; HEADER_LEN]), None);
        let empty = Header::of(0, &[]).expect("empty");
        assert_ne!(empty.encode(), [0u8; HEADER_LEN]);
        assert!(empty.matches(b""));
    }
}
