//! `CUDA_VISIBLE_DEVICES` handling, as the CUDA runtime applies it.
//!
//! * unset: every device, in NVML (PCI bus) order;
//! * empty string: no devices;
//! * otherwise a comma list of device indices (`0,2`) or UUID prefixes
//!   (`GPU-5f3c`, matching exactly one device, case-insensitive). The listed
//!   devices are returned in the listed order and re-indexed `0..n`.
//! * The first invalid entry ends the list, as in CUDA: `0,-1,1` means `0`
//!   only, and `-1` hides every GPU. Invalid means: not a number or `GPU-`
//!   prefix, an index past the last device, a UUID prefix that matches no
//!   device or several, a device already listed, or a MIG UUID (`MIG-…`,
//!   which this monitor does not sample).
//!
//! Index entries are NVML indices: CUDA agrees with them when
//! `CUDA_DEVICE_ORDER=PCI_BUS_ID` (recommended on multi-GPU machines with
//! mixed models; CUDA's default order puts the fastest GPU first).

/// One syntactically valid entry of `CUDA_VISIBLE_DEVICES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VisibleEntry {
    /// A device index (`0`, `3`).
    Index(u32),
    /// A UUID or UUID prefix, including its `GPU-` (`GPU-5f3c`).
    Uuid(String),
}

/// Parses the entries of a `CUDA_VISIBLE_DEVICES` value, stopping at the
/// first one that is syntactically invalid (that entry and the rest are
/// dropped, as CUDA does). An empty value yields no entries.
pub fn parse_visible_devices(spec: &str) -> Vec<VisibleEntry> {
    let mut entries = Vec::new();
    if spec.trim().is_empty() {
        return entries;
    }
    for raw in spec.split(',') {
        let item = raw.trim();
        if !item.is_empty() && item.bytes().all(|b| b.is_ascii_digit()) {
            match item.parse::<u32>() {
                Ok(index) => entries.push(VisibleEntry::Index(index)),
                Err(_) => break,
            }
        } else if item.len() > 4
            && item
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("GPU-"))
        {
            entries.push(VisibleEntry::Uuid(item.to_string()));
        } else {
            break;
        }
    }
    entries
}

/// Which physical devices (NVML indices) the scheduler sees, in scheduler
/// order: element `i` is the physical index of scheduler device `i`.
///
/// `spec` is the value of `CUDA_VISIBLE_DEVICES` (`None` when unset) and
/// `uuids` the UUIDs of all physical devices in NVML order (an empty string
/// for a device whose UUID could not be read).
pub fn resolve_visible_devices(spec: Option<&str>, uuids: &[String]) -> Vec<u32> {
    let count = u32::try_from(uuids.len()).unwrap_or(u32::MAX);
    let Some(spec) = spec else {
        return (0..count).collect();
    };
    let mut chosen: Vec<u32> = Vec::new();
    for entry in parse_visible_devices(spec) {
        let physical = match entry {
            VisibleEntry::Index(index) if index < count => Some(index),
            VisibleEntry::Index(_) => None,
            VisibleEntry::Uuid(prefix) => {
                let prefix = prefix.to_ascii_lowercase();
                let mut matches = uuids
                    .iter()
                    .enumerate()
                    .filter(|(_, uuid)| uuid.to_ascii_lowercase().starts_with(&prefix));
                match (matches.next(), matches.next()) {
                    (Some((index, _)), None) => u32::try_from(index).ok(),
                    _ => None,
                }
            }
        };
        match physical {
            Some(index) if !chosen.contains(&index) => chosen.push(index),
            _ => break,
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuids() -> Vec<String> {
        vec![
            "GPU-aaaa1111-0000-0000-0000-000000000000".to_string(),
            "GPU-bbbb2222-0000-0000-0000-000000000000".to_string(),
            "GPU-bbbb3333-0000-0000-0000-000000000000".to_string(),
        ]
    }

    fn resolve(spec: Option<&str>) -> Vec<u32> {
        resolve_visible_devices(spec, &uuids())
    }

    #[test]
    fn unset_means_all_and_empty_means_none() {
        assert_eq!(resolve(None), vec![0, 1, 2]);
        assert_eq!(resolve(Some("")), Vec::<u32>::new());
        assert_eq!(resolve(Some("  ")), Vec::<u32>::new());
        assert_eq!(resolve_visible_devices(None, &[]), Vec::<u32>::new());
    }

    #[test]
    fn indices_keep_the_given_order() {
        assert_eq!(resolve(Some("2,0")), vec![2, 0]);
        assert_eq!(resolve(Some(" 1 , 2 ")), vec![1, 2]);
        assert_eq!(resolve(Some("1")), vec![1]);
    }

    #[test]
    fn invalid_entry_stops_the_list() {
        assert_eq!(resolve(Some("-1")), Vec::<u32>::new());
        assert_eq!(resolve(Some("0,-1,1")), vec![0]);
        assert_eq!(resolve(Some("1,7,0")), vec![1]);
        assert_eq!(resolve(Some("2,abc,0")), vec![2]);
        assert_eq!(resolve(Some("0,,1")), vec![0]);
        assert_eq!(resolve(Some("+1")), Vec::<u32>::new());
        assert_eq!(resolve(Some("0,0,1")), vec![0], "duplicate ends the list");
        assert_eq!(resolve(Some("MIG-abcd,0")), Vec::<u32>::new());
    }

    #[test]
    fn uuid_prefixes_must_be_unique() {
        assert_eq!(resolve(Some("GPU-aaaa")), vec![0]);
        assert_eq!(resolve(Some("gpu-BBBB3")), vec![2]);
        assert_eq!(resolve(Some("GPU-bbbb3333,0")), vec![2, 0]);
        // Ambiguous prefix (two devices start with GPU-bbbb) stops the list.
        assert_eq!(resolve(Some("0,GPU-bbbb,1")), vec![0]);
        assert_eq!(resolve(Some("GPU-ffff")), Vec::<u32>::new());
        assert_eq!(
            resolve(Some("1,GPU-bbbb2222")),
            vec![1],
            "same device twice"
        );
    }

    #[test]
    fn parse_is_purely_syntactic() {
        assert_eq!(
            parse_visible_devices("3, GPU-ab ,x,1"),
            vec![
                VisibleEntry::Index(3),
                VisibleEntry::Uuid("GPU-ab".to_string())
            ]
        );
        assert_eq!(parse_visible_devices("GPU-"), vec![]);
        assert_eq!(parse_visible_devices("99999999999"), vec![]);
        assert_eq!(
            parse_visible_devices("GPU\u{e9}x,0"),
            vec![],
            "non-ASCII must not panic"
        );
        assert_eq!(
            parse_visible_devices("0,\u{e9}"),
            vec![VisibleEntry::Index(0)]
        );
    }
}
