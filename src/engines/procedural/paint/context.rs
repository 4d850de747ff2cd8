//! Motifs and per-scene context.

use super::*;

#[derive(Clone, Copy, Default, Debug)]
pub(super) struct Motifs {
    pub(super) sun: bool,
    pub(super) night: bool,
    pub(super) sunset: bool,
    pub(super) city: bool,
    pub(super) rain: bool,
    pub(super) storm: bool,
    pub(super) snow: bool,
    pub(super) sea: bool,
    pub(super) mountain: bool,
    pub(super) forest: bool,
    pub(super) fire: bool,
    pub(super) space: bool,
    pub(super) rainbow: bool,
    pub(super) flower: bool,
}

impl Motifs {
    pub(super) fn parse(words: &[String]) -> Motifs {
        let mut m = Motifs::default();
        for w in words {
            match w.trim().to_ascii_lowercase().as_str() {
                "sun" | "sunny" | "sunshine" | "sunlight" | "day" | "summer" | "daylight" => {
                    m.sun = true
                }
                "night" | "midnight" | "dark" | "darkness" | "evening" | "moon" | "moonlight"
                | "nighttime" => m.night = true,
                "sunset" | "sunrise" | "dusk" | "dawn" | "twilight" | "golden" => m.sunset = true,
                "city" | "cities" | "town" | "urban" | "skyline" | "street" | "building"
                | "buildings" | "downtown" | "skyscraper" | "skyscrapers" => m.city = true,
                "rain" | "rainy" | "raining" | "drizzle" | "shower" => m.rain = true,
                "storm" | "stormy" | "thunder" | "lightning" | "thunderstorm" => {
                    m.rain = true;
                    m.storm = true
                }
                "snow" | "snowy" | "winter" | "blizzard" | "ice" | "frost" => m.snow = true,
                "sea" | "ocean" | "beach" | "wave" | "waves" | "water" | "lake" | "river"
                | "coast" | "island" | "shore" => m.sea = true,
                "mountain" | "mountains" | "hill" | "hills" | "peak" | "peaks" | "cliff"
                | "valley" | "alps" => m.mountain = true,
                "forest" | "tree" | "trees" | "woods" | "jungle" | "nature" | "pine" => {
                    m.forest = true
                }
                "fire" | "flame" | "flames" | "burning" | "explosion" | "lava" | "volcano"
                | "blaze" | "inferno" => m.fire = true,
                "space" | "star" | "stars" | "galaxy" | "planet" | "planets" | "cosmos"
                | "universe" | "rocket" | "astronaut" | "cosmic" | "nebula" => m.space = true,
                "rainbow" | "rainbows" => m.rainbow = true,
                "flower" | "flowers" | "spring" | "blossom" | "blossoms" | "sakura" | "garden"
                | "petals" => m.flower = true,
                _ => {}
            }
        }
        m
    }

    pub(super) fn dark(&self) -> bool {
        self.night || self.space
    }
}

pub(super) struct Ctx {
    pub(super) w: f32,
    pub(super) h: f32,
    /// The shorter side: the unit for sizes, so compositions scale with the frame.
    pub(super) s: f32,
    pub(super) portrait: bool,
    pub(super) m: Motifs,
    pub(super) pal: Pal,
    pub(super) seed: u64,
    pub(super) idx: usize,
    /// Position of the scene in the video, 0..=1.
    pub(super) prog: f32,
    /// Per-scene variation values in [0, 1).
    pub(super) var: [f32; 4],
}

impl Ctx {
    pub(super) fn new(spec: &PaintSpec) -> Ctx {
        let (w, h) = (spec.width as f32, spec.height as f32);
        let idx = spec.scene_index;
        let shift = ((idx as f32 * 0.618_034 + 0.5).fract() - 0.5) * 0.12;
        let mut vr = Rng::new(spec.seed ^ (idx as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
        let var = [vr.f(), vr.f(), vr.f(), vr.f()];
        let prog = if spec.scene_count > 1 {
            (idx as f32 / (spec.scene_count - 1) as f32).min(1.0)
        } else {
            0.5
        };
        Ctx {
            w,
            h,
            s: w.min(h),
            portrait: h > w * 1.05,
            m: Motifs::parse(spec.motifs),
            pal: Pal::new(spec.palette, shift),
            seed: spec.seed,
            idx,
            prog,
            var,
        }
    }

    pub(super) fn rng(&self, salt: u64) -> Rng {
        Rng::new(
            self.seed
                ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (self.idx as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03),
        )
    }

    /// How many items of something to scatter, scaled with the frame's aspect.
    pub(super) fn count(&self, per_square: f32) -> usize {
        (per_square * self.w * self.h / (self.s * self.s)).round() as usize
    }

    /// y beyond which the caption band lies.
    pub(super) fn caption_y(&self) -> f32 {
        self.h * 0.78
    }
}
