//! Quota costs, the Pacific-time daily reset, and what makes a Short.

/// `videos.insert`: 1 call of its own daily bucket (not of the 10,000 units).
pub const VIDEOS_INSERT: u32 = 1;
/// `videos.insert` calls a project may make a day by default (their own bucket).
pub const VIDEOS_INSERT_PER_DAY: u32 = 100;
/// Units a project may spend a day by default on every other method.
pub const DAILY_UNITS: u32 = 10_000;
/// `captions.insert` cost in units.
pub const CAPTIONS_INSERT: u32 = 400;
/// `thumbnails.set` cost in units (YouTube says "approximately").
pub const THUMBNAILS_SET: u32 = 50;
/// `videos.list` cost in units (a [`processing`](super::processing) poll).
pub const VIDEOS_LIST: u32 = 1;
/// `playlistItems.insert` cost in units.
pub const PLAYLIST_ITEMS_INSERT: u32 = 50;

/// The longest video that can be a Short (3 minutes, since 15 October 2024).
pub const SHORT_MAX_SECONDS: f64 = 180.0;

/// Whether YouTube makes a video a Short: square or taller, and at most 3 minutes.
pub fn is_short(width: u32, height: u32, seconds: f64) -> bool {
    width > 0 && height >= width && seconds > 0.0 && seconds <= SHORT_MAX_SECONDS
}

pub(super) const HOUR_MS: i64 = 3_600_000;
pub(super) const DAY_MS: i64 = 24 * HOUR_MS;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub(super) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year of a day since 1970-01-01.
pub(super) fn year_of(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(m <= 2)
}

/// The day (since 1970-01-01) of the `n`th Sunday of a month.
pub(super) fn nth_sunday(y: i64, m: i64, n: i64) -> i64 {
    let first = days_from_civil(y, m, 1);
    // 1970-01-01 was a Thursday: weekday 0 = Sunday.
    let wd = (first + 4).rem_euclid(7);
    first + (7 - wd) % 7 + 7 * (n - 1)
}

/// Pacific Time's offset from UTC at a UTC instant, by the US rule (since 2007): daylight time
/// (UTC−7) from 02:00 PST on the second Sunday of March (10:00 UTC) to 02:00 PDT on the first
/// Sunday of November (09:00 UTC), standard time (UTC−8) otherwise.
pub fn pacific_offset_ms(utc_ms: i64) -> i64 {
    let y = year_of(utc_ms.div_euclid(DAY_MS));
    let start = nth_sunday(y, 3, 2) * DAY_MS + 10 * HOUR_MS;
    let end = nth_sunday(y, 11, 1) * DAY_MS + 9 * HOUR_MS;
    if (start..end).contains(&utc_ms) {
        -7 * HOUR_MS
    } else {
        -8 * HOUR_MS
    }
}

/// The next midnight Pacific Time after `now_utc_ms`, in UTC milliseconds: when YouTube's daily
/// quotas reset.
pub fn next_quota_reset(now_utc_ms: i64) -> i64 {
    let local = now_utc_ms + pacific_offset_ms(now_utc_ms);
    let midnight = (local.div_euclid(DAY_MS) + 1) * DAY_MS;
    // Midnight is never in a transition (they happen at 2 a.m.): one offset fits.
    let daylight = midnight + 7 * HOUR_MS;
    if pacific_offset_ms(daylight) == -7 * HOUR_MS {
        daylight
    } else {
        midnight + 8 * HOUR_MS
    }
}

/// Milliseconds from `now_utc_ms` until YouTube's daily quotas reset (midnight Pacific Time):
/// between 1 ms and 25 hours.
pub fn quota_reset_after(now_utc_ms: i64) -> i64 {
    next_quota_reset(now_utc_ms) - now_utc_ms
}
