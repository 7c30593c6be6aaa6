//! A small software rasteriser (RGB, anti-aliased by analytic coverage),
//! PNG and base64 encoding, and a 5x7 bitmap font.
//!
//! Coverage model: a pixel is a unit square centred on its integer
//! coordinates; a shape covers it by `clamp(d_edge + 0.5, 0, 1)` where
//! `d_edge` is the signed distance from the pixel centre to the shape's edge
//! (positive inside). That is exact for a straight edge crossing the pixel
//! parallel to an axis and a close, cheap approximation otherwise.
//! Polygons are filled with 4 sub-scanlines per pixel row and exact
//! horizontal coverage along each.

use nalgebra::Point2;

use crate::error::{Error, Result};

use super::style::Colour;

/// Largest picture made by this module, pixels (width x height).
pub const MAX_PICTURE_PIXELS: u64 = 1 << 26;

/// An 8-bit grayscale image, row-major (`pixels[v * width + u]`), pixel
/// `(u, v)` centred on `(u, v)` of the crate's pixel frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrayImage {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl GrayImage {
    /// A checked image.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `pixels.len() != width * height` or a side is
    /// zero; [`Error::LimitExceeded`] above [`MAX_PICTURE_PIXELS`].
    pub fn new(width: u32, height: u32, pixels: Vec<u8>) -> Result<Self> {
        check_size("image", width, height)?;
        let n = width as usize * height as usize;
        if pixels.len() != n {
            return Err(Error::invalid(
                "image.pixels",
                format!(
                    "expected width * height = {n} values, got {}",
                    pixels.len()
                ),
            ));
        }
        Ok(Self {
            width,
            height,
            pixels,
        })
    }

    /// Width, pixels.
    #[must_use]
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height, pixels.
    #[must_use]
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The row-major pixel values.
    #[must_use]
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The image as a grayscale 8-bit PNG file.
    ///
    /// # Errors
    /// [`Error::Invalid`] if the encoder refuses (it should not for a checked image).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        encode_png(self.width, self.height, png::ColorType::Grayscale, &self.pixels)
    }
}

pub(crate) fn check_size(what: &str, width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::invalid(
            format!("{what}.size_px"),
            "width and height must be >= 1",
        ));
    }
    let n = u64::from(width) * u64::from(height);
    if n > MAX_PICTURE_PIXELS {
        return Err(Error::LimitExceeded {
            what: format!("{what}.size_px (pixels)"),
            limit: MAX_PICTURE_PIXELS as usize,
            actual: usize::try_from(n).unwrap_or(usize::MAX),
        });
    }
    Ok(())
}

pub(crate) fn encode_png(
    width: u32,
    height: u32,
    colour: png::ColorType,
    data: &[u8],
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(colour);
        enc.set_depth(png::BitDepth::Eight);
        let err = |e: png::EncodingError| Error::invalid("png", e.to_string());
        let mut w = enc.write_header().map_err(err)?;
        w.write_image_data(data).map_err(err)?;
        w.finish().map_err(err)?;
    }
    Ok(out)
}

/// Standard base64 (RFC 4648, with padding).
#[must_use]
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= c.len() {
                s.push(A[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// An RGB raster with alpha blending.
#[derive(Debug, Clone)]
pub(crate) struct Canvas {
    pub width: u32,
    pub height: u32,
    /// Linear-ish RGB in 0..=1 (blended in sRGB space, as SVG viewers do).
    rgb: Vec<[f32; 3]>,
}

impl Canvas {
    pub fn new(width: u32, height: u32, fill: Colour) -> Self {
        Self {
            width,
            height,
            rgb: vec![fill.to_f32(); width as usize * height as usize],
        }
    }

    pub fn from_gray(img: &GrayImage, width: u32, height: u32, fill: Colour) -> Self {
        let mut c = Self::new(width, height, fill);
        for v in 0..height.min(img.height) {
            for u in 0..width.min(img.width) {
                let g = f32::from(img.pixels[(v * img.width + u) as usize]) / 255.0;
                c.rgb[(v * width + u) as usize] = [g, g, g];
            }
        }
        c
    }

    /// Blends `colour` into pixel `(i, j)` with coverage `a` in 0..=1.
    pub fn blend(&mut self, i: i64, j: i64, colour: Colour, a: f64) {
        if !(a > 0.0) || i < 0 || j < 0 || i >= i64::from(self.width) || j >= i64::from(self.height)
        {
            return;
        }
        let a = a.min(1.0) as f32;
        let c = colour.to_f32();
        let p = &mut self.rgb[j as usize * self.width as usize + i as usize];
        for k in 0..3 {
            p[k] += (c[k] - p[k]) * a;
        }
    }

    pub fn to_png(&self) -> Result<Vec<u8>> {
        let data: Vec<u8> = self
            .rgb
            .iter()
            .flat_map(|p| p.map(|x| (x.clamp(0.0, 1.0) * 255.0).round() as u8))
            .collect();
        encode_png(self.width, self.height, png::ColorType::Rgb, &data)
    }

    /// Pixel bounds `[i0, i1] x [j0, j1]` of a box, clipped; `None` if empty.
    fn clip(&self, lo: Point2<f64>, hi: Point2<f64>) -> Option<(i64, i64, i64, i64)> {
        if !(lo.x.is_finite() && lo.y.is_finite() && hi.x.is_finite() && hi.y.is_finite()) {
            return None;
        }
        let i0 = lo.x.floor().max(0.0);
        let j0 = lo.y.floor().max(0.0);
        let i1 = hi.x.ceil().min(f64::from(self.width) - 1.0);
        let j1 = hi.y.ceil().min(f64::from(self.height) - 1.0);
        (i0 <= i1 && j0 <= j1).then_some((i0 as i64, i1 as i64, j0 as i64, j1 as i64))
    }

    /// A polyline, drawn as segments (joins are round from the caps).
    #[allow(clippy::too_many_arguments)] // reason: one primitive, all plain numbers
    pub fn polyline(
        &mut self,
        pts: &[Point2<f64>],
        closed: bool,
        width: f64,
        colour: Colour,
        opacity: f64,
        dash: Option<[f64; 2]>,
    ) {
        let n = pts.len();
        if n == 0 {
            return;
        }
        let m = if closed && n > 2 { n } else { n - 1 };
        // Blend per polyline into a coverage buffer so joins do not double up.
        let mut layer = CoverageLayer {
            width: self.width,
            height: self.height,
            cov: std::collections::BTreeMap::new(),
        };
        let mut phase = 0.0;
        if n == 1 {
            layer.segment_cov(pts[0], pts[0], width, None, 0.0);
        }
        for k in 0..m {
            let (a, b) = (pts[k], pts[(k + 1) % n]);
            layer.segment_cov(a, b, width, dash, phase);
            phase += (b - a).norm();
        }
        layer.apply(self, colour, opacity);
    }

    /// Fills a polygon (even-odd) with 4 sub-scanlines per row.
    pub fn fill_polygon(&mut self, pts: &[Point2<f64>], colour: Colour, opacity: f64) {
        let pts: Vec<Point2<f64>> = pts
            .iter()
            .filter(|p| p.x.is_finite() && p.y.is_finite())
            .copied()
            .collect();
        if pts.len() < 3 {
            return;
        }
        let (mut lo, mut hi) = (pts[0], pts[0]);
        for p in &pts {
            lo = lo.inf(p);
            hi = hi.sup(p);
        }
        let Some((i0, i1, j0, j1)) = self.clip(lo, hi) else {
            return;
        };
        const SUB: usize = 4;
        let ncol = (i1 - i0 + 1) as usize;
        let mut row = vec![0.0f64; ncol];
        let mut xs: Vec<f64> = Vec::new();
        for j in j0..=j1 {
            row.iter_mut().for_each(|c| *c = 0.0);
            for s in 0..SUB {
                let y = j as f64 - 0.5 + (s as f64 + 0.5) / SUB as f64;
                xs.clear();
                let n = pts.len();
                for k in 0..n {
                    let (p, q) = (pts[k], pts[(k + 1) % n]);
                    if (p.y <= y) != (q.y <= y) {
                        xs.push(p.x + (y - p.y) / (q.y - p.y) * (q.x - p.x));
                    }
                }
                xs.sort_by(f64::total_cmp);
                for span in xs.chunks_exact(2) {
                    // Pixel i covers [i - 0.5, i + 0.5].
                    let (x0, x1) = (span[0], span[1]);
                    let c0 = ((x0 + 0.5).floor() as i64).max(i0);
                    let c1 = ((x1 + 0.5).floor() as i64).min(i1);
                    for i in c0..=c1 {
                        let l = (i as f64 - 0.5).max(x0);
                        let r = (i as f64 + 0.5).min(x1);
                        if r > l {
                            row[(i - i0) as usize] += (r - l) / SUB as f64;
                        }
                    }
                }
            }
            for (k, c) in row.iter().enumerate() {
                self.blend(i0 + k as i64, j, colour, c * opacity);
            }
        }
    }

    /// A filled disc.
    pub fn disc(&mut self, c: Point2<f64>, r: f64, colour: Colour, opacity: f64) {
        if !(r > 0.0 && r.is_finite()) {
            return;
        }
        let d = nalgebra::Vector2::repeat(r + 1.0);
        let Some((i0, i1, j0, j1)) = self.clip(c - d, c + d) else {
            return;
        };
        for j in j0..=j1 {
            for i in i0..=i1 {
                let dist = (Point2::new(i as f64, j as f64) - c).norm();
                let cov = (r + 0.5 - dist).clamp(0.0, 1.0) * (r * 2.0).min(1.0);
                self.blend(i, j, colour, cov * opacity);
            }
        }
    }

    /// A circle outline of stroke `width`.
    pub fn ring(&mut self, c: Point2<f64>, r: f64, width: f64, colour: Colour, opacity: f64) {
        if !(r > 0.0 && r.is_finite() && width > 0.0 && width.is_finite()) {
            return;
        }
        let d = nalgebra::Vector2::repeat(r + width + 1.0);
        let Some((i0, i1, j0, j1)) = self.clip(c - d, c + d) else {
            return;
        };
        for j in j0..=j1 {
            for i in i0..=i1 {
                let dist = ((Point2::new(i as f64, j as f64) - c).norm() - r).abs();
                let cov = (width * 0.5 + 0.5 - dist).clamp(0.0, 1.0) * width.min(1.0);
                self.blend(i, j, colour, cov * opacity);
            }
        }
    }

    /// Text in the built-in 5x7 font; `at` is the baseline-left point,
    /// `size_px` the cap height (rounded to a multiple of 7 font pixels).
    pub fn text(&mut self, at: Point2<f64>, text: &str, size_px: f64, colour: Colour) {
        if !(at.x.is_finite() && at.y.is_finite() && size_px.is_finite()) {
            return;
        }
        let s = ((size_px / 7.0).round() as i64).clamp(1, 16);
        let x0 = at.x.round() as i64;
        let y0 = at.y.round() as i64 - 7 * s;
        let shadow = Colour::rgb(0, 0, 0);
        for pass in 0..2 {
            let (off, col) = if pass == 0 { (1, shadow) } else { (0, colour) };
            for (k, ch) in text.chars().take(200).enumerate() {
                let g = glyph(ch);
                for (r, bits) in g.iter().enumerate() {
                    for cbit in 0..5 {
                        if bits & (0x10 >> cbit) != 0 {
                            let px = x0 + (k as i64 * 6 + cbit) * s + off;
                            let py = y0 + r as i64 * s + off;
                            for dy in 0..s {
                                for dx in 0..s {
                                    self.blend(px + dx, py + dy, col, 1.0);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Width, in px, of `text` drawn by [`Canvas::text`] at `size_px`.
pub(crate) fn bitmap_text_width(text: &str, size_px: f64) -> f64 {
    let s = ((size_px / 7.0).round()).clamp(1.0, 16.0);
    text.chars().take(200).count() as f64 * 6.0 * s
}

fn cov_min(width: f64) -> f64 {
    // Hairlines thinner than a pixel fade with their width.
    width.min(1.0)
}

/// Sparse per-pixel coverage (max over the segments of one polyline, so
/// that joins do not darken).
#[derive(Debug, Clone)]
struct CoverageLayer {
    width: u32,
    height: u32,
    cov: std::collections::BTreeMap<(i64, i64), f64>,
}

impl CoverageLayer {
    fn segment_cov(
        &mut self,
        a: Point2<f64>,
        b: Point2<f64>,
        width: f64,
        dash: Option<[f64; 2]>,
        phase: f64,
    ) {
        if !(width > 0.0 && width.is_finite()) {
            return;
        }
        if !(a.x.is_finite() && a.y.is_finite() && b.x.is_finite() && b.y.is_finite()) {
            return;
        }
        let r = width * 0.5;
        let i0 = (a.x.min(b.x) - r - 1.0).floor().max(0.0);
        let j0 = (a.y.min(b.y) - r - 1.0).floor().max(0.0);
        let i1 = (a.x.max(b.x) + r + 1.0)
            .ceil()
            .min(f64::from(self.width) - 1.0);
        let j1 = (a.y.max(b.y) + r + 1.0)
            .ceil()
            .min(f64::from(self.height) - 1.0);
        if !(i0 <= i1 && j0 <= j1) {
            return;
        }
        let d = b - a;
        let l2 = d.norm_squared();
        let len = l2.sqrt();
        let dash = dash.filter(|[on, off]| *on > 0.0 && *off > 0.0 && (on + off).is_finite());
        // Visit only pixels near the segment: per row, the x-range of the band.
        for j in j0 as i64..=j1 as i64 {
            for i in i0 as i64..=i1 as i64 {
                let p = Point2::new(i as f64, j as f64);
                let t = if l2 > 0.0 {
                    ((p - a).dot(&d) / l2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let dist = (p - (a + d * t)).norm();
                if dist > r + 0.5 {
                    continue;
                }
                if let Some([on, off]) = dash {
                    let s = (t * len + phase).rem_euclid(on + off);
                    if s > on {
                        continue;
                    }
                }
                let cov = (r + 0.5 - dist).clamp(0.0, 1.0) * cov_min(width);
                let e = self.cov.entry((j, i)).or_insert(0.0);
                *e = e.max(cov);
            }
        }
    }

    fn apply(&self, canvas: &mut Canvas, colour: Colour, opacity: f64) {
        for (&(j, i), &c) in &self.cov {
            canvas.blend(i, j, colour, c * opacity);
        }
    }
}

/// The 5x7 glyph of `c` (rows top to bottom, bit 4 = leftmost column).
/// Lower-case letters are drawn as capitals; unknown characters as a box.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        ' ' => [0, 0, 0, 0, 0, 0, 0],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        ';' => [0, 0x0C, 0x0C, 0, 0x0C, 0x04, 0x08],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        '=' => [0, 0, 0x1F, 0, 0x1F, 0, 0],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '[' => [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E],
        ']' => [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        '\'' => [0x04, 0x04, 0x08, 0, 0, 0, 0],
        '"' => [0x0A, 0x0A, 0, 0, 0, 0, 0],
        '<' => [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        '*' => [0, 0x04, 0x15, 0x0E, 0x15, 0x04, 0],
        '!' => [0x04, 0x04, 0x04, 0x04, 0x04, 0, 0x04],
        '?' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04],
        '~' => [0, 0, 0x08, 0x15, 0x02, 0, 0],
        '°' => [0x0C, 0x12, 0x12, 0x0C, 0, 0, 0],
        'µ' | 'Μ' => [0, 0x11, 0x11, 0x11, 0x13, 0x1D, 0x10],
        _ => [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_known_answers() {
        // RFC 4648 section 10 test vectors.
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn polygon_coverage_sums_to_area() {
        let mut c = Canvas::new(20, 20, Colour::rgb(0, 0, 0));
        // A 5.5 x 3.25 px rectangle off the pixel grid, plus a triangle.
        let rect = [
            Point2::new(2.2, 3.1),
            Point2::new(7.7, 3.1),
            Point2::new(7.7, 6.35),
            Point2::new(2.2, 6.35),
        ];
        c.fill_polygon(&rect, Colour::rgb(255, 255, 255), 1.0);
        let sum: f64 = c.rgb.iter().map(|p| f64::from(p[0])).sum();
        // Sub-scanlines sample y at quarter pixels: error <= width * 1/4 per edge.
        assert!((sum - 5.5 * 3.25).abs() < 5.5 * 0.25 * 2.0, "{sum}");
        let mut t = Canvas::new(20, 20, Colour::rgb(0, 0, 0));
        let tri = [
            Point2::new(1.0, 1.0),
            Point2::new(17.0, 2.0),
            Point2::new(5.0, 15.0),
        ];
        t.fill_polygon(&tri, Colour::rgb(255, 255, 255), 1.0);
        let sum: f64 = t.rgb.iter().map(|p| f64::from(p[0])).sum();
        let area = 0.5 * ((17.0 - 1.0) * (15.0 - 1.0) - (5.0 - 1.0) * (2.0 - 1.0));
        assert!((sum - area).abs() < 0.01 * area + 1.0, "{sum} vs {area}");
    }

    #[test]
    fn disc_coverage_matches_area() {
        let mut c = Canvas::new(40, 40, Colour::rgb(0, 0, 0));
        c.disc(Point2::new(20.3, 19.6), 8.0, Colour::rgb(255, 255, 255), 1.0);
        let sum: f64 = c.rgb.iter().map(|p| f64::from(p[0])).sum();
        let area = std::f64::consts::PI * 64.0;
        assert!((sum - area).abs() < 0.01 * area, "{sum} vs {area}");
    }

    #[test]
    fn line_coverage_matches_length_times_width() {
        let mut c = Canvas::new(60, 60, Colour::rgb(0, 0, 0));
        let (a, b) = (Point2::new(10.0, 10.0), Point2::new(40.0, 50.0));
        c.polyline(&[a, b], false, 3.0, Colour::rgb(255, 255, 255), 1.0, None);
        let sum: f64 = c.rgb.iter().map(|p| f64::from(p[0])).sum();
        // 50 px long, 3 px wide, plus two round caps (pi * 1.5^2).
        let area = 50.0 * 3.0 + std::f64::consts::PI * 2.25;
        assert!((sum - area).abs() < 0.03 * area, "{sum} vs {area}");
    }

    #[test]
    fn font_covers_printable_ascii() {
        for c in ' '..='~' {
            let g = glyph(c);
            if c != ' ' && !matches!(c, '{' | '}' | '|' | '\\' | '^' | '`' | '@' | '&' | '$') {
                assert_ne!(g, glyph('\u{1}'), "no glyph for {c:?}");
            }
        }
    }
}
