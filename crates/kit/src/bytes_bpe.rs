//! GPT-2's reversible byte ↔ printable-character map, used by every byte-level BPE vocabulary
//! (GPT-2 style LLM tokenizers, Whisper, CLIP): printable Latin-1 bytes stand for themselves,
//! the other 68 bytes take code points from U+0100 up, in byte order.

use std::collections::HashMap;

/// Byte → the character that stands for it in a vocabulary.
pub fn byte_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 0x100u32;
    for (b, slot) in table.iter_mut().enumerate() {
        let printable = matches!(b as u8, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let cp = if printable {
            b as u32
        } else {
            next += 1;
            next - 1
        };
        // Every code point here is below U+0144: always a valid char.
        *slot = char::from_u32(cp).unwrap_or('\0');
    }
    table
}

/// Character in a vocabulary → the byte it stands for.
pub fn char_bytes() -> HashMap<char, u8> {
    byte_chars()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gpt2_table() {
        let t = byte_chars();
        assert_eq!(t[b'A' as usize], 'A');
        assert_eq!(t[b' ' as usize], 'Ġ'); // U+0120: space is byte 32, the 33rd unprintable
        assert_eq!(t[b'\n' as usize], 'Ċ'); // U+010A
        assert_eq!(t[0], '\u{100}');
        assert_eq!(t[0xAD], '\u{143}'); // the soft hyphen is the last one
        let back = char_bytes();
        assert_eq!(back.len(), 256);
        assert!((0..=255u8).all(|b| back[&t[b as usize]] == b));
    }
}
