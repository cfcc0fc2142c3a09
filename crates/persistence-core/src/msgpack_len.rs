//! The length of one encoded MessagePack value, found without decoding it:
//! how a decoder that borrows from a buffer learns whether bytes follow
//! the value it decoded.

/// The length of the one MessagePack value `bytes` starts with, walked
/// without recursion and without decoding (strings and blobs are skipped by
/// their length); `None` if it runs past the end or holds the reserved
/// marker. Every pending element needs at least one byte, so a claimed
/// length larger than what is left is refused at once.
pub(crate) fn value_len(bytes: &[u8]) -> Option<usize> {
    let mut pos = 0_usize;
    let mut pending = 1_u64;
    let be = |at: usize, n: usize| -> Option<u64> {
        let b = bytes.get(at..at.checked_add(n)?)?;
        Some(b.iter().fold(0_u64, |acc, &x| acc << 8 | u64::from(x)))
    };
    while pending > 0 {
        pending -= 1;
        let marker = *bytes.get(pos)?;
        pos += 1;
        // (bytes to skip after the marker, elements that follow)
        let (skip, items): (u64, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (u64::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (1 + be(pos, 1)?, 0),
            0xc5 | 0xda => (2 + be(pos, 2)?, 0),
            0xc6 | 0xdb => (4 + be(pos, 4)?, 0),
            0xc7 => (2 + be(pos, 1)?, 0),
            0xc8 => (3 + be(pos, 2)?, 0),
            0xc9 => (5 + be(pos, 4)?, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (2, be(pos, 2)?),
            0xdd => (4, be(pos, 4)?),
            0xde => (2, 2 * be(pos, 2)?),
            0xdf => (4, 2 * be(pos, 4)?),
            0xc1 => return None,
        };
        pos = pos.checked_add(usize::try_from(skip).ok()?)?;
        if pos > bytes.len() {
            return None;
        }
        pending = pending.checked_add(items)?;
        if pending > (bytes.len() - pos) as u64 {
            return None;
        }
    }
    Some(pos)
}

#[cfg(test)]
mod tests {
    use super::value_len;
    use std::collections::BTreeMap;

    #[test]
    fn the_length_of_every_kind_of_value_is_its_encoding() {
        #[derive(serde::Serialize)]
        struct All {
            small: u8,
            big: u64,
            neg: i64,
            float: f64,
            single: f32,
            text: String,
            long_text: String,
            #[serde(with = "crate::blob")]
            blob: Vec<f64>,
            list: Vec<Option<bool>>,
            map: BTreeMap<String, Vec<i32>>,
            nested: Vec<Vec<Vec<u16>>>,
        }
        let mut map = BTreeMap::new();
        map.insert("a".to_owned(), vec![1, -70_000, 3]);
        map.insert("b".repeat(300), (0..40).collect());
        let all = All {
            small: 7,
            big: u64::MAX,
            neg: -5_000_000_000,
            float: 0.1,
            single: 2.5,
            text: "hé".to_owned(),
            long_text: "x".repeat(70_000),
            blob: (0..10_000).map(f64::from).collect(),
            list: (0..20).map(|i| (i % 3 != 0).then_some(i % 2 == 0)).collect(),
            map,
            nested: vec![vec![vec![1, 2], vec![]], vec![vec![65_535; 17]]],
        };
        for bytes in [rmp_serde::to_vec_named(&all).unwrap(), rmp_serde::to_vec(&all).unwrap()] {
            assert_eq!(value_len(&bytes), Some(bytes.len()));
            let mut longer = bytes.clone();
            longer.extend_from_slice(&[0xc0, 1, 2]);
            assert_eq!(value_len(&longer), Some(bytes.len()));
            for cut in [1, bytes.len() / 2, bytes.len() - 1] {
                assert_eq!(value_len(&bytes[..cut]), None, "cut at {cut}");
            }
        }
    }

    #[test]
    fn a_claimed_length_past_the_end_is_refused_at_once() {
        assert_eq!(value_len(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]), None);
        assert_eq!(value_len(&[0xdf, 0x7f, 0xff, 0xff, 0xff]), None);
        assert_eq!(value_len(&[0xc6, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(value_len(&[0xc1]), None);
        assert_eq!(value_len(&[]), None);
        assert_eq!(value_len(&[0xd4, 1, 2]), Some(3));
        assert_eq!(value_len(&[0xc7, 2, 9, 1, 2]), Some(5));
    }
}
