//! Simulated radiographs of a phantom view.

use nalgebra::{Point2, Point3};
use rayon::prelude::*;

use super::{trace, Body, Phantom};
use crate::error::{Error, Result};

/// Attenuation per mm of bone along a ray, 1/mm.
const MU_BONE_PER_MM: f64 = 0.018;
/// Extra attenuation per mm of cortical bone, 1/mm.
const MU_CORTEX_PER_MM: f64 = 0.07;
/// Smallest sphere-tracing step, mm (crossing error per surface).
const MIN_STEP_MM: f64 = 0.02;

/// An 8-bit grayscale image, row-major, `pixels[v * width + u]`; bone is
/// bright on a dark background (the clinical look).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Radiograph {
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// Gray values, row-major.
    pub pixels: Vec<u8>,
}

impl Radiograph {
    /// The image encoded as an 8-bit grayscale PNG.
    ///
    /// # Errors
    /// [`Error::Invalid`] if the encoder fails (not expected).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width, self.height);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc
                .write_header()
                .map_err(|e| Error::invalid("radiograph", e.to_string()))?;
            w.write_image_data(&self.pixels)
                .map_err(|e| Error::invalid("radiograph", e.to_string()))?;
        }
        Ok(out)
    }
}

/// Gray value of a ray with `solid` mm of bone of which `core` mm lie
/// deeper than the cortical shell.
fn gray(solid: f64, core: f64) -> u8 {
    let a = MU_BONE_PER_MM * solid + MU_CORTEX_PER_MM * (solid - core);
    let g = 20.0 + 235.0 * (1.0 - (-a).exp());
    g.round().clamp(0.0, 255.0) as u8
}

impl Phantom {
    /// The simulated radiograph of view `view` (index into `case.views`).
    ///
    /// Per pixel, the ray from the source is sphere traced through the
    /// implicit bone; the bone length `L` and the length `Lc` within
    /// `cortical_thickness_mm` of the surface give
    /// `a = 0.018 L + 0.07 Lc` (1/mm) and the gray value
    /// `20 + 235 (1 - exp(-a))`. Rows are computed in parallel.
    ///
    /// For a phantom built around a mesh ([`Phantom::around_mesh`]) the
    /// lengths come from the ray's exact crossings with the mesh; the cortical
    /// length of each chord is taken as `min(chord, 2 t)` with `t` the case's
    /// `cortical_thickness_mm` (the shell met at both ends of a chord, at
    /// normal incidence).
    ///
    /// # Errors
    /// [`Error::Invalid`] if `view` is out of range.
    pub fn radiograph(&self, view: usize) -> Result<Radiograph> {
        let v = self
            .case
            .views
            .get(view)
            .ok_or_else(|| Error::invalid("view", "index out of range"))?;
        let [w, h] = v.image_size_px;
        let proj = &v.projection;
        let pixels: Vec<u8> = match &self.body {
            Body::Synthetic(femur) => {
                let (lo, hi) = femur.bounds(1.0);
                let shell = femur.params.cortical_thickness_mm;
                let sdf = |p: &Point3<f64>| femur.sdf(p);
                (0..h)
                    .into_par_iter()
                    .flat_map_iter(|row| {
                        let sdf = &sdf;
                        (0..w).map(move |col| {
                            let ray =
                                proj.back_project(&Point2::new(f64::from(col), f64::from(row)));
                            let (solid, core) =
                                trace::path_lengths(sdf, &ray, &lo, &hi, shell, MIN_STEP_MM);
                            gray(solid, core)
                        })
                    })
                    .collect()
            }
            Body::Mesh(m) => (0..h)
                .into_par_iter()
                .flat_map_iter(|row| {
                    let mut buf = Vec::new();
                    (0..w)
                        .map(|col| {
                            let ray =
                                proj.back_project(&Point2::new(f64::from(col), f64::from(row)));
                            m.surface
                                .ray_crossings(&ray.origin, &ray.dir, f64::INFINITY, &mut buf);
                            let (mut solid, mut core) = (0.0, 0.0);
                            for pair in buf.chunks_exact(2) {
                                let chord = pair[1] - pair[0];
                                solid += chord;
                                core += (chord - 2.0 * m.shell_mm).max(0.0);
                            }
                            gray(solid, core)
                        })
                        .collect::<Vec<u8>>()
                })
                .collect(),
        };
        Ok(Radiograph {
            width: w,
            height: h,
            pixels,
        })
    }
}
