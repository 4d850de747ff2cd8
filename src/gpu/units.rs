//! Byte sizes: parsing (`24GiB`, `24G`, `24576MiB`, `512MB`) and display.
//!
//! Units are case-insensitive:
//! * binary (powers of 1024): `K`, `KiB`, `M`, `MiB`, `G`, `GiB`, `T`, `TiB`;
//! * decimal (powers of 1000): `KB`, `MB`, `GB`, `TB`;
//! * bytes: no unit or `B`.
//!
//! The bare-letter forms are binary because that is what `nvidia-smi` and
//! most GPU tooling mean by "24G"; the `xB` forms are decimal as in SI.
//! A fractional number is allowed (`1.5GiB`) and rounded to whole bytes.

const KIB: u64 = 1024;
const MIB: u64 = KIB * 1024;
const GIB: u64 = MIB * 1024;
const TIB: u64 = GIB * 1024;

/// Parses a size such as `24GiB`, `24G`, `24576MiB`, `512MB` or `1048576`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!("{text:?} does not start with a number"));
    }
    let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        "t" | "tib" => TIB,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use B, KiB/K, MiB/M, GiB/G, TiB/T, KB, MB, GB or TB)"
            ))
        }
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(multiplier)
            .ok_or_else(|| format!("{text:?} is too large"));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{number:?} is not a number"))?;
    let bytes = (value * multiplier as f64).round();
    if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes as u64)
}

/// Formats bytes with binary units: `0 B`, `512 B`, `1.5 KiB`, `23.6 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")];
    for (size, name) in UNITS {
        if bytes >= size {
            return format!("{:.1} {name}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_and_decimal_units() {
        assert_eq!(parse_size("24GiB"), Ok(24 * GIB));
        assert_eq!(parse_size("24G"), Ok(24 * GIB));
        assert_eq!(parse_size("24g"), Ok(24 * GIB));
        assert_eq!(parse_size("24576MiB"), Ok(24 * GIB));
        assert_eq!(parse_size("512MB"), Ok(512_000_000));
        assert_eq!(parse_size("80GB"), Ok(80_000_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(GIB + GIB / 2));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size(" 2 KiB "), Ok(2048));
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(parse_size("").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("24XB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("1.2.3G").is_err());
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("99999999999999999999T").is_err());
        assert!(parse_size("20000000T").is_err());
    }

    #[test]
    fn formats_bytes() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(24 * GIB), "24.0 GiB");
        assert_eq!(format_bytes(512 * MIB), "512.0 MiB");
    }
}
