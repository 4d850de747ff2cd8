//! The reference's windowing (`predict_frames`), streamed.
//!
//! The reference pads the clip of n frames with 25 copies of the first frame before and copies
//! of the last after up to `25 + n + e` with `e = 25 + 50 − (n mod 50 or 50)`, runs windows of
//! 100 at offsets 0, 50, 100, … and keeps predictions 25..75 of each: window k predicts frames
//! 50k..50k+50, there are ⌈n/50⌉ windows, and the padding past the end is cut off.
//!
//! Window k needs padded frames up to 50k+100, i.e. frames up to 50k+75 of the clip, so it runs
//! as soon as those have arrived (every clip long enough to have them has window k); at the end
//! the last windows are filled with copies of the last frame. Between windows only the 50
//! padded frames the next one shares are kept: memory stays at one window.

use crate::{Result, ShotsError, CONTEXT, FRAME_BYTES, STRIDE, WINDOW};

/// Something that turns one window of [`WINDOW`] packed frames into its per-frame
/// (single, many-hot) probabilities. [`crate::TransNetV2`] is one; tests use fakes.
pub trait WindowModel {
    fn predict_window_bytes(&self, frames: &[u8]) -> Result<(Vec<f32>, Vec<f32>)>;
}

impl WindowModel for crate::TransNetV2 {
    fn predict_window_bytes(&self, frames: &[u8]) -> Result<(Vec<f32>, Vec<f32>)> {
        crate::TransNetV2::predict_window_bytes(self, frames)
    }
}

impl<M: WindowModel + ?Sized> WindowModel for &M {
    fn predict_window_bytes(&self, frames: &[u8]) -> Result<(Vec<f32>, Vec<f32>)> {
        (**self).predict_window_bytes(frames)
    }
}

/// Streams frames through a [`WindowModel`] with the reference's padding and windows: feed
/// packed 48×27 RGB bytes in chunks of any size (frames need not align with chunks) to
/// [`Predictor::push`], then call [`Predictor::finish`]; together they return one
/// (single, many-hot) pair per frame, in order.
pub struct Predictor<M> {
    model: M,
    /// Padded frames from the current window's start, at most [`WINDOW`] of them.
    window: Vec<u8>,
    /// The bytes of a frame not yet complete.
    partial: Vec<u8>,
    /// Frames received.
    received: u64,
    /// Predictions returned.
    emitted: u64,
}

impl<M: WindowModel> Predictor<M> {
    pub fn new(model: M) -> Self {
        Self {
            model,
            window: Vec::with_capacity(WINDOW * FRAME_BYTES),
            partial: Vec::with_capacity(FRAME_BYTES),
            received: 0,
            emitted: 0,
        }
    }

    /// Frames received so far.
    pub fn frames_received(&self) -> u64 {
        self.received
    }

    /// Frames held (the window being filled, padding included): never more than [`WINDOW`].
    pub fn frames_buffered(&self) -> usize {
        self.window.len() / FRAME_BYTES
    }

    /// Takes more bytes of frames; returns the predictions that became final (those of frames
    /// 25 or more frames back from the newest, in windows of 50).
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<(f32, f32)>> {
        let mut out = Vec::new();
        if !self.partial.is_empty() {
            let need = (FRAME_BYTES - self.partial.len()).min(bytes.len());
            self.partial.extend_from_slice(&bytes[..need]);
            bytes = &bytes[need..];
            if self.partial.len() < FRAME_BYTES {
                return Ok(out);
            }
            let frame = std::mem::take(&mut self.partial);
            self.push_frame(&frame, &mut out)?;
            self.partial = frame;
            self.partial.clear();
        }
        let mut frames = bytes.chunks_exact(FRAME_BYTES);
        for frame in &mut frames {
            self.push_frame(frame, &mut out)?;
        }
        self.partial.extend_from_slice(frames.remainder());
        Ok(out)
    }

    fn push_frame(&mut self, frame: &[u8], out: &mut Vec<(f32, f32)>) -> Result<()> {
        if self.received == 0 {
            for _ in 0..CONTEXT {
                self.window.extend_from_slice(frame);
            }
        }
        self.window.extend_from_slice(frame);
        self.received += 1;
        if self.window.len() == WINDOW * FRAME_BYTES {
            self.run_window(STRIDE, out)?;
        }
        Ok(())
    }

    /// Runs the full window, keeps up to `keep` of its middle predictions, and slides on.
    fn run_window(&mut self, keep: usize, out: &mut Vec<(f32, f32)>) -> Result<()> {
        let (single, many) = self.model.predict_window_bytes(&self.window)?;
        if single.len() != WINDOW || many.len() != WINDOW {
            return Err(ShotsError::Input(format!(
                "the window model returned {} and {} predictions for {WINDOW} frames",
                single.len(),
                many.len()
            )));
        }
        let kept = CONTEXT..CONTEXT + keep.min(STRIDE);
        out.extend(
            single[kept.clone()]
                .iter()
                .copied()
                .zip(many[kept].iter().copied()),
        );
        self.emitted += keep.min(STRIDE) as u64;
        self.window.drain(..STRIDE * FRAME_BYTES);
        Ok(())
    }

    /// The predictions of the frames still pending, from windows padded with copies of the last
    /// frame. A trailing incomplete frame is an error.
    pub fn finish(mut self) -> Result<Vec<(f32, f32)>> {
        if !self.partial.is_empty() {
            return Err(ShotsError::Input(format!(
                "the frames end with {} bytes of an incomplete frame ({FRAME_BYTES} bytes each)",
                self.partial.len()
            )));
        }
        let mut out = Vec::new();
        while self.emitted < self.received {
            let last = self.window.len() - FRAME_BYTES;
            while self.window.len() < WINDOW * FRAME_BYTES {
                self.window.extend_from_within(last..last + FRAME_BYTES);
            }
            let pending = (self.received - self.emitted) as usize;
            self.run_window(pending, &mut out)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frame `i` of a test clip: its index in the first two bytes, the rest a pattern.
    fn frame(i: usize) -> Vec<u8> {
        let mut f: Vec<u8> = (0..FRAME_BYTES).map(|j| (i * 7 + j) as u8).collect();
        f[0] = i as u8;
        f[1] = (i >> 8) as u8;
        f
    }

    fn id(f: &[u8]) -> usize {
        usize::from(f[0]) | usize::from(f[1]) << 8
    }

    /// A fake network whose answer for window position p names the frame there, the window's
    /// first frame and p, so a misplaced window or a wrong slice of it changes the result.
    struct Fake;

    impl WindowModel for Fake {
        fn predict_window_bytes(&self, frames: &[u8]) -> Result<(Vec<f32>, Vec<f32>)> {
            assert_eq!(frames.len(), WINDOW * FRAME_BYTES);
            let ids: Vec<usize> = frames.chunks_exact(FRAME_BYTES).map(id).collect();
            let single = ids.iter().map(|&i| i as f32).collect();
            let many = (0..WINDOW).map(|p| (ids[0] * 1000 + p) as f32).collect();
            Ok((single, many))
        }
    }

    /// The reference's `predict_frames`, transcribed: the whole padded clip, then windows.
    fn reference(n: usize) -> Vec<(f32, f32)> {
        if n == 0 {
            return vec![];
        }
        let rem = if n.is_multiple_of(STRIDE) {
            STRIDE
        } else {
            n % STRIDE
        };
        let end = CONTEXT + STRIDE - rem;
        let mut padded = vec![0usize; CONTEXT];
        padded.extend(0..n);
        padded.extend(std::iter::repeat_n(n - 1, end));
        let bytes: Vec<u8> = padded.iter().flat_map(|&i| frame(i)).collect();
        let mut out = vec![];
        let mut ptr = 0;
        while ptr + WINDOW <= padded.len() {
            let (s, m) = Fake
                .predict_window_bytes(&bytes[ptr * FRAME_BYTES..(ptr + WINDOW) * FRAME_BYTES])
                .unwrap();
            out.extend(s[25..75].iter().copied().zip(m[25..75].iter().copied()));
            ptr += STRIDE;
        }
        out.truncate(n);
        out
    }

    fn streamed(n: usize, chunk_bytes: usize) -> Vec<(f32, f32)> {
        let clip: Vec<u8> = (0..n).flat_map(frame).collect();
        let mut p = Predictor::new(Fake);
        let mut out = vec![];
        for chunk in clip.chunks(chunk_bytes.max(1)) {
            out.extend(p.push(chunk).unwrap());
            assert!(p.frames_buffered() < WINDOW);
            // Nothing is returned before its window could run: frame f needs f + 25 < received.
            assert!(out.len() as u64 + CONTEXT as u64 <= p.frames_received().max(CONTEXT as u64));
        }
        out.extend(p.finish().unwrap());
        out
    }

    #[test]
    fn streaming_matches_the_reference_windows_for_any_length_and_chunking() {
        for n in [
            0, 1, 2, 24, 25, 26, 49, 50, 51, 74, 75, 76, 99, 100, 101, 125, 130, 150, 151, 333,
        ] {
            let want = reference(n);
            assert_eq!(want.len(), n);
            for chunk in [
                FRAME_BYTES,
                7 * FRAME_BYTES,
                FRAME_BYTES + 5,
                1000,
                64 * FRAME_BYTES,
                usize::MAX,
            ] {
                let chunk = chunk.min(n.max(1) * FRAME_BYTES);
                assert_eq!(streamed(n, chunk), want, "n = {n}, chunks of {chunk} bytes");
            }
        }
    }

    #[test]
    fn predictions_arrive_once_their_window_has_its_frames() {
        let mut p = Predictor::new(Fake);
        let mut got = 0;
        for i in 0..200 {
            got += p.push(&frame(i)).unwrap().len();
            // Window k (frames 50k..50k+50) runs when frame 50k+74 arrives.
            let expected = if i + 1 >= 75 {
                (i + 1 - 75) / 50 * 50 + 50
            } else {
                0
            };
            assert_eq!(got, expected, "after frame {i}");
        }
        assert_eq!(p.finish().unwrap().len(), 50);
    }

    #[test]
    fn an_incomplete_last_frame_is_an_error() {
        let mut p = Predictor::new(Fake);
        p.push(&frame(0)).unwrap();
        p.push(&[1, 2, 3]).unwrap();
        let err = p.finish().unwrap_err().to_string();
        assert!(err.contains("3 bytes of an incomplete frame"), "{err}");
    }
}
