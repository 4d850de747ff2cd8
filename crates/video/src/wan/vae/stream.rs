//! The streamed decode: one latent frame in, its pixel frames out (1 for the first, 4 for each
//! later one), holding between steps only each causal convolution's two-frame cache (one set per
//! spatial tile) and the index of the next latent frame. That state can be written to a
//! safetensors file and read back, so a decode killed part-way resumes at the first latent frame
//! it had not finished and gives the frames the uninterrupted decode would have.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::blocks::{Cache, Slot};
use super::tiling::{Grid, WanTiling};
use super::WanVae;
use crate::VideoError;

/// Version of the saved state's layout.
const STATE_VERSION: usize = 1;
const HEADER: &str = "wan_vae_decode_state";
const KINDS: &str = "slot_kinds";

/// Where a streamed decode stands: the per-tile caches and the next latent frame's index.
#[derive(Clone, Debug)]
pub struct WanDecodeState {
    tiles: Vec<Cache>,
    next_frame: usize,
    latent_h: usize,
    latent_w: usize,
    /// The tiling asked for (the grid follows from it and the latent size).
    tiling: Option<WanTiling>,
}

impl WanDecodeState {
    /// The index of the latent frame the next step takes (= latent frames decoded so far).
    pub fn next_frame(&self) -> usize {
        self.next_frame
    }

    /// The latent frame size this decode takes.
    pub fn latent_size(&self) -> (usize, usize) {
        (self.latent_h, self.latent_w)
    }

    pub fn tiling(&self) -> Option<WanTiling> {
        self.tiling
    }

    /// Bytes held by the caches.
    pub fn cache_bytes(&self) -> usize {
        self.tiles
            .iter()
            .flat_map(|c| &c.slots)
            .map(|s| match s {
                Slot::Frames(t) => t.elem_count() * t.dtype().size_in_bytes(),
                _ => 0,
            })
            .sum()
    }

    /// Writes the state to `path` (a safetensors file; written next to it and renamed, so a kill
    /// mid-write leaves the previous state intact).
    pub fn save(&self, path: &Path) -> Result<(), VideoError> {
        let err = |message: String| VideoError::Weights {
            path: path.display().to_string(),
            message,
        };
        let slots = self.tiles.iter().map(|c| c.slots.len()).max().unwrap_or(0);
        let t = self.tiling.unwrap_or(WanTiling {
            tile_sample_min_height: 0,
            tile_sample_min_width: 0,
            tile_sample_stride_height: 0,
            tile_sample_stride_width: 0,
        });
        let header = [
            STATE_VERSION,
            self.next_frame,
            self.latent_h,
            self.latent_w,
            usize::from(self.tiling.is_some()),
            t.tile_sample_min_height,
            t.tile_sample_min_width,
            t.tile_sample_stride_height,
            t.tile_sample_stride_width,
            self.tiles.len(),
            slots,
        ]
        .iter()
        .map(|&v| u32::try_from(v).map_err(|_| err(format!("{v} does not fit a u32"))))
        .collect::<Result<Vec<u32>, _>>()?;
        let mut out: HashMap<String, Tensor> = HashMap::new();
        out.insert(
            HEADER.into(),
            Tensor::from_vec(header.clone(), header.len(), &Device::Cpu)?,
        );
        let mut kinds = vec![0u8; self.tiles.len() * slots];
        for (k, cache) in self.tiles.iter().enumerate() {
            for (s, slot) in cache.slots.iter().enumerate() {
                kinds[k * slots + s] = match slot {
                    Slot::Empty => 0,
                    Slot::Rep => 1,
                    Slot::Frames(t) => {
                        out.insert(format!("tile.{k}.slot.{s}"), t.to_device(&Device::Cpu)?);
                        2
                    }
                };
            }
        }
        let n = kinds.len();
        out.insert(KINDS.into(), Tensor::from_vec(kinds, n, &Device::Cpu)?);
        let tmp = path.with_extension("partial");
        candle_core::safetensors::save(&out, &tmp)
            .map_err(|e| err(format!("cannot write: {e}")))?;
        // On the disk before it replaces the last state: a crash leaves one whole state.
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| err(format!("cannot sync: {e}")))?;
        std::fs::rename(&tmp, path).map_err(|e| err(format!("cannot rename into place: {e}")))?;
        if let Some(dir) = path.parent() {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    /// The next latent frame of a saved state, reading its header only (a state holds the
    /// caches too: gigabytes at 720p). None for a file that is not a readable state.
    pub fn peek_next_frame(path: &Path) -> Option<usize> {
        // SAFETY: the file is only read, and a state is replaced by rename, never rewritten
        // in place.
        let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }.ok()?;
        let header = st
            .load(HEADER, &Device::Cpu)
            .ok()?
            .to_dtype(DType::U32)
            .ok()?
            .to_vec1::<u32>()
            .ok()?;
        (header.len() == 11 && header[0] as usize == STATE_VERSION).then(|| header[1] as usize)
    }

    /// Reads a state [`save`](Self::save) wrote, onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, VideoError> {
        let err = |message: String| VideoError::Weights {
            path: path.display().to_string(),
            message,
        };
        let mut t = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| err(format!("not a readable decode state: {e}")))?;
        let header = t
            .remove(HEADER)
            .ok_or_else(|| err(format!("no `{HEADER}` tensor: not a Wan VAE decode state")))?
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?;
        if header.len() != 11 || header[0] as usize != STATE_VERSION {
            return Err(err(format!(
                "decode state layout {:?}, this build reads version {STATE_VERSION}",
                header.first()
            )));
        }
        let h: Vec<usize> = header.iter().map(|&v| v as usize).collect();
        let tiling = (h[4] == 1).then_some(WanTiling {
            tile_sample_min_height: h[5],
            tile_sample_min_width: h[6],
            tile_sample_stride_height: h[7],
            tile_sample_stride_width: h[8],
        });
        let (n_tiles, n_slots) = (h[9], h[10]);
        let kinds = t
            .remove(KINDS)
            .ok_or_else(|| err(format!("no `{KINDS}` tensor")))?
            .to_vec1::<u8>()?;
        if kinds.len() != n_tiles * n_slots {
            return Err(err(format!(
                "{} slot kinds for {n_tiles} tiles × {n_slots} slots",
                kinds.len()
            )));
        }
        let mut tiles = Vec::with_capacity(n_tiles);
        for k in 0..n_tiles {
            let mut slots = Vec::with_capacity(n_slots);
            for s in 0..n_slots {
                slots.push(match kinds[k * n_slots + s] {
                    0 => Slot::Empty,
                    1 => Slot::Rep,
                    2 => {
                        let name = format!("tile.{k}.slot.{s}");
                        let v = t
                            .remove(&name)
                            .ok_or_else(|| err(format!("tensor `{name}` is missing")))?;
                        Slot::Frames(v.to_device(device)?)
                    }
                    other => return Err(err(format!("slot kind {other} at tile {k} slot {s}"))),
                });
            }
            tiles.push(Cache::from_slots(slots));
        }
        if let Some(extra) = t.keys().next() {
            return Err(err(format!("unexpected tensor `{extra}`")));
        }
        Ok(Self {
            tiles,
            next_frame: h[1],
            latent_h: h[2],
            latent_w: h[3],
            tiling,
        })
    }
}

/// A streamed decode of latents `[b, z, n, h, w]` a latent frame at a time (see the module doc).
///
/// Tiled, each step runs every tile in turn, so the activations are one tile's
/// ([`WanVaeConfig::decode_memory`](super::WanVaeConfig::decode_memory) of the tile size) but the
/// caches of all [`tiles`](Self::tiles) stay alive between steps (about the frame's caches times
/// the tiles' overlap, `(min/stride)²`). [`WanVae::decode`] with tiling keeps one tile's caches at
/// a time instead (diffusers' order), at the price of not streaming.
pub struct WanStreamDecoder<'a> {
    vae: &'a WanVae,
    state: WanDecodeState,
    grid: Grid,
}

impl<'a> WanStreamDecoder<'a> {
    /// A fresh decode of `latent_h × latent_w` latents, tiled as diffusers' `enable_tiling` does
    /// when `tiling` is given (and the latents exceed one tile).
    pub fn new(
        vae: &'a WanVae,
        latent_h: usize,
        latent_w: usize,
        tiling: Option<WanTiling>,
    ) -> Result<Self, VideoError> {
        let state = WanDecodeState {
            tiles: Vec::new(),
            next_frame: 0,
            latent_h,
            latent_w,
            tiling,
        };
        Self::with_state(vae, state)
    }

    /// Continues the decode `state` describes.
    pub fn with_state(vae: &'a WanVae, mut state: WanDecodeState) -> Result<Self, VideoError> {
        let (h, w) = (state.latent_h, state.latent_w);
        if h == 0 || w == 0 {
            return Err(VideoError::Invalid(format!("latents of {h}×{w}")));
        }
        let ratio = vae.config().spatial_ratio();
        let grid = match &state.tiling {
            Some(t) => Grid::decode(t, h, w, ratio)?,
            None => Grid::single(h, w, h * ratio, w * ratio),
        };
        if state.tiles.is_empty() {
            state.tiles = vec![Cache::default(); grid.len()];
        } else if state.tiles.len() != grid.len() {
            return Err(VideoError::Invalid(format!(
                "a decode state of {} tiles for a grid of {}",
                state.tiles.len(),
                grid.len()
            )));
        }
        Ok(Self { vae, state, grid })
    }

    /// Continues the decode saved at `path` ([`save`](Self::save)).
    pub fn resume(vae: &'a WanVae, path: &Path) -> Result<Self, VideoError> {
        let state = WanDecodeState::load(path, vae.device())?;
        Self::with_state(vae, state)
    }

    pub fn state(&self) -> &WanDecodeState {
        &self.state
    }

    pub fn into_state(self) -> WanDecodeState {
        self.state
    }

    /// The index of the latent frame the next step takes.
    pub fn next_frame(&self) -> usize {
        self.state.next_frame
    }

    /// Spatial tiles each step decodes (1 untiled).
    pub fn tiles(&self) -> usize {
        self.grid.len()
    }

    /// Writes the state (caches and next frame index) to `path`.
    pub fn save(&self, path: &Path) -> Result<(), VideoError> {
        self.state.save(path)
    }

    /// Decodes the next latent frame `[b, z, 1, h, w]` (VAE latents, i.e. denormalised) into its
    /// pixel frames `[b, 3, 1 or 4, 8h, 8w]` in [-1, 1].
    pub fn decode_step(&mut self, latent_frame: &Tensor) -> Result<Tensor, VideoError> {
        let (_, z, t, h, w) = latent_frame.dims5()?;
        let want = (
            self.vae.config().z_dim,
            1,
            self.state.latent_h,
            self.state.latent_w,
        );
        if (z, t, h, w) != want {
            return Err(VideoError::Invalid(format!(
                "a latent frame of (channels, frames, h, w) {:?}, this decode takes {want:?}",
                (z, t, h, w)
            )));
        }
        let x = self.vae.post_quant(
            &latent_frame
                .to_dtype(DType::F32)?
                .to_device(self.vae.device())?,
        )?;
        let mut outs = Vec::with_capacity(self.grid.len());
        for (k, cache) in self.state.tiles.iter_mut().enumerate() {
            let tile = self.grid.cut(&x, k)?;
            outs.push(self.vae.decoder_step(&tile, cache)?);
        }
        let frames = self.grid.assemble(outs)?.clamp(-1f32, 1f32)?;
        self.state.next_frame += 1;
        Ok(frames)
    }
}
