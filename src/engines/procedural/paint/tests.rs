//! Unit tests of the procedural painter.
use super::*;

const PAL: [[u8; 3]; 5] = [
    [231, 76, 60],
    [52, 152, 219],
    [241, 196, 15],
    [46, 204, 113],
    [44, 62, 80],
];

fn spec<'a>(look: Look, w: u32, h: u32, seed: u64, motifs: &'a [String]) -> PaintSpec<'a> {
    PaintSpec {
        width: w,
        height: h,
        look,
        palette: &PAL,
        seed,
        scene_index: 1,
        scene_count: 4,
        motifs,
    }
}

fn mean(img: &RgbImage) -> [f64; 3] {
    let mut m = [0.0; 3];
    for px in img.data.chunks_exact(3) {
        for c in 0..3 {
            m[c] += px[c] as f64;
        }
    }
    let n = (img.data.len() / 3) as f64;
    [m[0] / n, m[1] / n, m[2] / n]
}

fn top_half_luma(img: &RgbImage) -> f64 {
    let half = img.data.len() / 2 / 3 * 3;
    let mut sum = 0.0;
    for px in img.data[..half].chunks_exact(3) {
        sum += 0.299 * px[0] as f64 + 0.587 * px[1] as f64 + 0.114 * px[2] as f64;
    }
    sum / (half / 3) as f64
}

#[test]
fn parse_round_trips() {
    for l in Look::ALL {
        assert_eq!(Look::parse(l.as_str()), Some(l));
    }
    assert_eq!(Look::parse("Marvel_DC"), Some(Look::Comic));
    assert_eq!(Look::parse("nope"), None);
}

#[test]
fn deterministic() {
    let mot = vec!["city".to_string(), "rain".to_string(), "sea".to_string()];
    for l in Look::ALL {
        let a = paint(&spec(l, 320, 180, 7, &mot));
        let b = paint(&spec(l, 320, 180, 7, &mot));
        assert_eq!(a, b, "{l:?} is not deterministic");
    }
}

#[test]
fn seeds_differ() {
    for l in Look::ALL {
        let a = paint(&spec(l, 320, 180, 1, &[]));
        let b = paint(&spec(l, 320, 180, 2, &[]));
        let diff = a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count();
        assert!(
            diff > a.data.len() / 50,
            "{l:?}: seeds barely differ ({diff} bytes)"
        );
    }
}

#[test]
fn grayscale_looks_are_gray() {
    let mots: Vec<Vec<String>> = vec![
        vec![],
        ["night", "city", "rain"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ["sea", "fire", "space", "rainbow", "forest", "snow"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    ];
    for l in [Look::Manga, Look::Ink] {
        for mot in &mots {
            let img = paint(&spec(l, 333, 187, 3, mot));
            assert!(
                img.data
                    .chunks_exact(3)
                    .all(|p| p[0] == p[1] && p[1] == p[2]),
                "{l:?} not gray"
            );
        }
    }
}

#[test]
fn colour_looks_are_colourful_and_distinct() {
    let looks = [
        Look::Anime,
        Look::Gaming,
        Look::Superhero,
        Look::Comic,
        Look::Flat,
    ];
    let imgs: Vec<RgbImage> = looks
        .iter()
        .map(|&l| paint(&spec(l, 320, 180, 5, &[])))
        .collect();
    for (l, img) in looks.iter().zip(&imgs) {
        let coloured = img
            .data
            .chunks_exact(3)
            .filter(|p| p[0].abs_diff(p[1]) > 12 || p[1].abs_diff(p[2]) > 12)
            .count();
        assert!(coloured > img.data.len() / 3 / 10, "{l:?} looks gray");
    }
    let means: Vec<[f64; 3]> = imgs.iter().map(mean).collect();
    for i in 0..looks.len() {
        for j in i + 1..looks.len() {
            let d = (0..3)
                .map(|c| (means[i][c] - means[j][c]).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                d > 15.0,
                "{:?} and {:?} mean colours too close ({d:.1})",
                looks[i],
                looks[j]
            );
        }
    }
}

#[test]
fn strength_ranks_flat_gray_below_superhero() {
    let g = RgbImage::filled(320, 180, [128, 128, 128]);
    let hero = paint(&spec(Look::Superhero, 320, 180, 9, &[]));
    assert!(visual_strength(&g) < 0.05);
    assert!(visual_strength(&hero) > visual_strength(&g) + 0.5);
}

#[test]
fn odd_sizes() {
    let mot = vec![
        "city".to_string(),
        "night".to_string(),
        "mountain".to_string(),
    ];
    for l in Look::ALL {
        for (w, h) in [(333, 187), (187, 333), (1, 1), (3, 2), (0, 5)] {
            let img = paint(&spec(l, w, h, 11, &mot));
            assert_eq!((img.width, img.height), (w, h));
            assert_eq!(img.data.len(), w as usize * h as usize * 3);
        }
    }
}

#[test]
fn night_darkens_top_half() {
    let night = vec!["night".to_string()];
    for l in Look::ALL {
        let day = top_half_luma(&paint(&spec(l, 320, 180, 4, &[])));
        let dark = top_half_luma(&paint(&spec(l, 320, 180, 4, &night)));
        assert!(dark + 3.0 < day, "{l:?}: night {dark:.1} vs day {day:.1}");
    }
}

#[test]
fn scenes_differ() {
    for l in Look::ALL {
        let mut a = spec(l, 240, 135, 3, &[]);
        let img0 = paint(&a);
        a.scene_index = 2;
        let img1 = paint(&a);
        assert_ne!(img0, img1, "{l:?}");
    }
}

#[test]
fn tolerates_odd_palettes() {
    for pal in [&[][..], &[[10u8, 10, 10]][..], &[[128u8, 128, 128]; 9][..]] {
        for l in Look::ALL {
            let mut sp = spec(l, 100, 60, 1, &[]);
            sp.palette = pal;
            let img = paint(&sp);
            assert_eq!(img.data.len(), 100 * 60 * 3);
        }
    }
}
