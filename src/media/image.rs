//! In-memory RGB images shared by the painters, the compositor and the encoders.

/// A packed 8-bit RGB image (`width * height * 3` bytes, rows top to bottom, no padding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbImage {
    /// A black image of the given size.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            data: vec![0; width as usize * height as usize * 3],
        }
    }

    /// An image filled with one colour.
    pub fn filled(width: u32, height: u32, rgb: [u8; 3]) -> Self {
        let mut data = Vec::with_capacity(width as usize * height as usize * 3);
        for _ in 0..width as usize * height as usize {
            data.extend_from_slice(&rgb);
        }
        Self {
            width,
            height,
            data,
        }
    }

    #[inline]
    fn index(&self, x: u32, y: u32) -> usize {
        (y as usize * self.width as usize + x as usize) * 3
    }

    /// The pixel at (x, y). Panics when out of bounds (a programming error, not an input error).
    #[inline]
    pub fn get(&self, x: u32, y: u32) -> [u8; 3] {
        let i = self.index(x, y);
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Sets the pixel at (x, y); out-of-bounds writes are ignored so shapes may be clipped freely.
    #[inline]
    pub fn put(&mut self, x: i64, y: i64, rgb: [u8; 3]) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return;
        }
        let i = self.index(x as u32, y as u32);
        self.data[i..i + 3].copy_from_slice(&rgb);
    }

    /// Alpha-blends `rgb` over the pixel at (x, y) with coverage `a` in 0..=1; clipped like `put`.
    #[inline]
    pub fn blend(&mut self, x: i64, y: i64, rgb: [u8; 3], a: f32) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 || a <= 0.0 {
            return;
        }
        let a = a.min(1.0);
        let i = self.index(x as u32, y as u32);
        for (d, &s) in self.data[i..i + 3].iter_mut().zip(&rgb) {
            let v = *d as f32;
            *d = (v + (s as f32 - v) * a).round() as u8;
        }
    }
}
