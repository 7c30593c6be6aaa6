//! Binary silhouettes of a mesh in one view, and their contours.
//!
//! * [`silhouette_mask`] scan-converts every projected triangle. Pixel
//!   `(i, j)` is set when its *centre* — the point `(u, v) = (i, j)` of the
//!   crate's pixel frame — lies inside or on a projected triangle. Triangles
//!   with a corner on or behind the source plane (`w <= MIN_DEPTH_MM`) or a
//!   non-finite corner are skipped.
//! * [`contours`] runs marching squares on the pixel-centre lattice: the
//!   iso-line of a binary mask crosses each lattice edge between a set and an
//!   unset pixel at its midpoint. The segments are chained into closed
//!   polylines and simplified with Douglas–Peucker to
//!   [`CONTOUR_TOLERANCE_PX`].
//!
//! ```text
//!   (i,j) ---T--- (i+1,j)       a cell of the lattice; crossings sit at the
//!     |             |           edge midpoints T, R, B, L. Walking the cell
//!     L             R           clockwise (on screen) TL->TR->BR->BL, each
//!     |             |           segment runs from an "enter" crossing
//!   (i,j+1) -B- (i+1,j+1)       (unset -> set) to the next "exit" crossing
//! ```
//!
//! With that rule every contour keeps the set pixels on the same side
//! (outer boundaries run clockwise on screen, holes counter-clockwise), and
//! the two diagonal ("saddle") cases cut the set corners apart, i.e. set
//! pixels are 4-connected.

use std::collections::HashMap;

use nalgebra::Point2;

use crate::geometry::TriMesh;
use crate::imaging::Projection;

/// Largest side of a raster made by this module, pixels. Larger requested
/// sizes are clamped to it (the raster then covers the top-left part only).
pub const MAX_RASTER_SIDE_PX: u32 = 16_384;

/// Douglas–Peucker tolerance used by [`contours`], pixels: half a pixel,
/// below the staircase of a binary mask, so the simplified contour stays
/// within one pixel of the true outline while SVGs stay small.
pub const CONTOUR_TOLERANCE_PX: f64 = 0.5;

/// A binary image, row-major, `width x height` pixels.
///
/// Pixel `(i, j)` (column `i`, row `j`) has its centre at `(u, v) = (i, j)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    width: u32,
    height: u32,
    data: Vec<bool>,
}

impl Mask {
    /// An all-unset mask. Each side is clamped to [`MAX_RASTER_SIDE_PX`].
    #[must_use]
    pub fn new(width: u32, height: u32) -> Self {
        let width = width.min(MAX_RASTER_SIDE_PX);
        let height = height.min(MAX_RASTER_SIDE_PX);
        Self {
            width,
            height,
            data: vec![false; width as usize * height as usize],
        }
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

    /// Whether pixel `(i, j)` is set; `false` outside the mask.
    #[must_use]
    pub fn get(&self, i: i64, j: i64) -> bool {
        if i < 0 || j < 0 || i >= i64::from(self.width) || j >= i64::from(self.height) {
            return false;
        }
        self.data[j as usize * self.width as usize + i as usize]
    }

    /// Sets pixel `(i, j)`; ignored outside the mask.
    pub fn set(&mut self, i: i64, j: i64, value: bool) {
        if i < 0 || j < 0 || i >= i64::from(self.width) || j >= i64::from(self.height) {
            return;
        }
        self.data[j as usize * self.width as usize + i as usize] = value;
    }

    /// Number of set pixels (the area in px^2, one pixel per set centre).
    #[must_use]
    pub fn count(&self) -> usize {
        self.data.iter().filter(|&&b| b).count()
    }

    /// Fills the pixels whose centres lie inside or on the triangle `abc`
    /// (pixel coordinates). Non-finite corners are ignored.
    pub fn fill_triangle(&mut self, a: &Point2<f64>, b: &Point2<f64>, c: &Point2<f64>) {
        let pts = [a, b, c];
        if pts.iter().any(|p| !(p.x.is_finite() && p.y.is_finite())) {
            return;
        }
        let ymin = a.y.min(b.y).min(c.y);
        let ymax = a.y.max(b.y).max(c.y);
        let h = f64::from(self.height);
        let w = f64::from(self.width);
        if self.width == 0 || self.height == 0 || ymax < 0.0 || ymin > h - 1.0 {
            return;
        }
        let j0 = ymin.ceil().max(0.0) as i64;
        let j1 = ymax.floor().min(h - 1.0) as i64;
        // Relative slack so that centres exactly on a shared edge are kept.
        let eps = 1e-9 * (1.0 + a.x.abs().max(b.x.abs()).max(c.x.abs()));
        for j in j0..=j1 {
            let y = j as f64;
            let mut lo = f64::INFINITY;
            let mut hi = f64::NEG_INFINITY;
            for k in 0..3 {
                let p = pts[k];
                let q = pts[(k + 1) % 3];
                let (y0, y1) = (p.y.min(q.y), p.y.max(q.y));
                if y < y0 || y > y1 {
                    continue;
                }
                if p.y == q.y {
                    lo = lo.min(p.x.min(q.x));
                    hi = hi.max(p.x.max(q.x));
                } else {
                    let t = (y - p.y) / (q.y - p.y);
                    let x = p.x + t * (q.x - p.x);
                    lo = lo.min(x);
                    hi = hi.max(x);
                }
            }
            if !(lo <= hi) || hi < 0.0 || lo > w - 1.0 {
                continue;
            }
            let i0 = (lo - eps).ceil().max(0.0) as usize;
            let i1 = (hi + eps).floor().min(w - 1.0) as usize;
            if i0 > i1 {
                continue;
            }
            let row = j as usize * self.width as usize;
            self.data[row + i0..=row + i1].fill(true);
        }
    }
}

/// The silhouette of `mesh` seen in `projection`: every triangle projected
/// and scan-converted into a `size_px = [width, height]` mask.
///
/// A pixel is set when its centre lies inside or on a projected triangle.
/// Triangles with a corner on or behind the source plane, a non-finite
/// corner, or an index out of range are skipped, so odd input gives a
/// smaller (possibly empty) mask, never a panic. Sides above
/// [`MAX_RASTER_SIDE_PX`] are clamped.
///
/// # Units
/// Mesh in world mm, mask in detector pixels.
///
/// # Example
/// ```
/// use avnplan::geometry::TriMesh;
/// use avnplan::imaging::Projection;
/// use avnplan::render::silhouette_mask;
/// use nalgebra::{Point3, Vector3};
/// use approx::assert_relative_eq;
/// // A 10 mm square at the isocentre, 1 mm pixels, magnification 2.
/// let p = Projection::from_geometry(
///     &Point3::new(0.0, 0.0, 500.0),
///     &Point3::new(-50.0, -50.0, -500.0),
///     &Vector3::new(1.0, 0.0, 0.0),
///     &Vector3::new(0.0, 1.0, 0.0),
/// ).unwrap();
/// let v = vec![
///     Point3::new(-5.0, -5.0, 0.0), Point3::new(5.0, -5.0, 0.0),
///     Point3::new(5.0, 5.0, 0.0), Point3::new(-5.0, 5.0, 0.0),
/// ];
/// let mesh = TriMesh::new(v, vec![[0, 1, 2], [0, 2, 3]]).unwrap();
/// let mask = silhouette_mask(&mesh, &p, [100, 100]);
/// // The square projects to [40, 60] x [40, 60]: 21 x 21 pixel centres.
/// assert_relative_eq!(mask.count() as f64, 441.0, epsilon = 0.5);
/// ```
#[must_use]
pub fn silhouette_mask(mesh: &TriMesh, projection: &Projection, size_px: [u32; 2]) -> Mask {
    let mut mask = Mask::new(size_px[0], size_px[1]);
    let projected: Vec<Option<Point2<f64>>> = mesh
        .vertices
        .iter()
        .map(|v| projection.try_project(v))
        .collect();
    for t in &mesh.triangles {
        let corner = |k: usize| projected.get(t[k] as usize).copied().flatten();
        if let (Some(a), Some(b), Some(c)) = (corner(0), corner(1), corner(2)) {
            mask.fill_triangle(&a, &b, &c);
        }
    }
    mask
}

/// Closed outlines of the set regions of `mask`, pixel coordinates.
///
/// Marching squares on the pixel-centre lattice (outside the mask counts as
/// unset, so every outline is closed), then Douglas–Peucker simplification
/// to [`CONTOUR_TOLERANCE_PX`]. Each polyline is closed implicitly: its last
/// point connects back to its first (the first point is not repeated).
/// Outer boundaries run clockwise on screen (`v` down), holes
/// counter-clockwise. The output order is deterministic (by the first
/// lattice edge met in row-major order).
///
/// # Example
/// ```
/// use avnplan::render::{contours, Mask};
/// let mut m = Mask::new(5, 5);
/// for j in 1..4 { for i in 1..4 { m.set(i, j, true); } }
/// let c = contours(&m);
/// assert_eq!(c.len(), 1);
/// // A 3 x 3 block simplifies to its octagon of edge midpoints.
/// assert_eq!(c[0].len(), 8);
/// ```
#[must_use]
pub fn contours(mask: &Mask) -> Vec<Vec<Point2<f64>>> {
    raw_contours(mask)
        .into_iter()
        .map(|c| simplify_closed(&c, CONTOUR_TOLERANCE_PX))
        .filter(|c| c.len() >= 3)
        .collect()
}

/// Unsimplified marching-squares loops; points in doubled integer
/// coordinates converted to pixels.
fn raw_contours(mask: &Mask) -> Vec<Vec<Point2<f64>>> {
    // Key of a lattice-edge midpoint in doubled coordinates (2u, 2v).
    type Key = (i64, i64);
    let (w, h) = (i64::from(mask.width), i64::from(mask.height));
    let mut next: HashMap<Key, Key> = HashMap::new();
    let mut starts: Vec<Key> = Vec::new();
    for j in -1..h {
        for i in -1..w {
            let tl = mask.get(i, j);
            let tr = mask.get(i + 1, j);
            let br = mask.get(i + 1, j + 1);
            let bl = mask.get(i, j + 1);
            if tl == tr && tr == br && br == bl {
                continue;
            }
            // Clockwise walk: edges T (tl->tr), R (tr->br), B (br->bl), L (bl->tl).
            let corners = [tl, tr, br, bl];
            let mids: [Key; 4] = [
                (2 * i + 1, 2 * j),
                (2 * i + 2, 2 * j + 1),
                (2 * i + 1, 2 * j + 2),
                (2 * i, 2 * j + 1),
            ];
            // Crossings in walk order: (edge index, entering?).
            let mut cross: [(usize, bool); 4] = [(0, false); 4];
            let mut n = 0;
            for e in 0..4 {
                let (from, to) = (corners[e], corners[(e + 1) % 4]);
                if from != to {
                    cross[n] = (e, to);
                    n += 1;
                }
            }
            // Pair each "enter" with the next "exit" in walk order.
            for k in 0..n {
                let (e_in, entering) = cross[k];
                if !entering {
                    continue;
                }
                let (e_out, _) = cross[(k + 1) % n];
                let (a, b) = (mids[e_in], mids[e_out]);
                if next.insert(a, b).is_none() {
                    starts.push(a);
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut visited: HashMap<Key, ()> = HashMap::with_capacity(next.len());
    for s in starts {
        if visited.contains_key(&s) {
            continue;
        }
        let mut poly = Vec::new();
        let mut k = s;
        loop {
            if visited.insert(k, ()).is_some() {
                break;
            }
            poly.push(Point2::new(k.0 as f64 * 0.5, k.1 as f64 * 0.5));
            match next.get(&k) {
                Some(&n) => k = n,
                None => break,
            }
        }
        if poly.len() >= 3 {
            out.push(poly);
        }
    }
    out
}

/// Douglas–Peucker simplification of a closed polyline (last point joins
/// the first; the first is not repeated), tolerance in the points' units.
///
/// The loop is split at its first point and the point farthest from it,
/// and each half is simplified as an open polyline. Non-finite points are
/// dropped first.
#[must_use]
pub fn simplify_closed(points: &[Point2<f64>], tolerance: f64) -> Vec<Point2<f64>> {
    let pts: Vec<Point2<f64>> = points
        .iter()
        .filter(|p| p.x.is_finite() && p.y.is_finite())
        .copied()
        .collect();
    if pts.len() < 4 {
        return pts;
    }
    let far = (1..pts.len())
        .max_by(|&a, &b| {
            let da = (pts[a] - pts[0]).norm_squared();
            let db = (pts[b] - pts[0]).norm_squared();
            da.total_cmp(&db).then(b.cmp(&a))
        })
        .unwrap_or(pts.len() / 2);
    let mut first: Vec<Point2<f64>> = pts[..=far].to_vec();
    let mut second: Vec<Point2<f64>> = pts[far..].to_vec();
    second.push(pts[0]);
    first = simplify_open(&first, tolerance);
    second = simplify_open(&second, tolerance);
    first.pop(); // the far point starts `second`
    second.pop(); // the first point starts `first`
    first.extend(second);
    first
}

/// Douglas–Peucker of an open polyline (end points kept); iterative.
#[must_use]
pub fn simplify_open(points: &[Point2<f64>], tolerance: f64) -> Vec<Point2<f64>> {
    let n = points.len();
    if n < 3 {
        return points.to_vec();
    }
    let tol = if tolerance.is_finite() {
        tolerance.max(0.0)
    } else {
        0.0
    };
    let mut keep = vec![false; n];
    keep[0] = true;
    keep[n - 1] = true;
    let mut stack = vec![(0usize, n - 1)];
    while let Some((a, b)) = stack.pop() {
        if b <= a + 1 {
            continue;
        }
        let (pa, pb) = (points[a], points[b]);
        let d = pb - pa;
        let len = d.norm();
        let mut best = (a, -1.0);
        for (k, p) in points.iter().enumerate().take(b).skip(a + 1) {
            let dist = if len > 0.0 {
                (d.x * (p.y - pa.y) - d.y * (p.x - pa.x)).abs() / len
            } else {
                (p - pa).norm()
            };
            if dist > best.1 {
                best = (k, dist);
            }
        }
        if best.1 > tol {
            keep[best.0] = true;
            stack.push((a, best.0));
            stack.push((best.0, b));
        }
    }
    points
        .iter()
        .zip(keep)
        .filter_map(|(p, k)| k.then_some(*p))
        .collect()
}

/// Signed area of a closed polygon (shoelace), in the points' units
/// squared; positive for clockwise-on-screen loops (`v` down).
#[must_use]
pub fn polygon_area(points: &[Point2<f64>]) -> f64 {
    let n = points.len();
    (0..n)
        .map(|k| {
            let (p, q) = (points[k], points[(k + 1) % n]);
            p.x * q.y - q.x * p.y
        })
        .sum::<f64>()
        * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn single_pixel_gives_a_diamond() {
        let mut m = Mask::new(3, 3);
        m.set(1, 1, true);
        let c = contours(&m);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].len(), 4);
        // The diamond through the four edge midpoints has area 1/2 and runs
        // clockwise on screen (positive shoelace with v down).
        assert_relative_eq!(polygon_area(&c[0]), 0.5, epsilon = 1e-12);
        for p in &c[0] {
            assert_relative_eq!((p - Point2::new(1.0, 1.0)).norm(), 0.5, epsilon = 1e-12);
        }
    }

    #[test]
    fn hole_runs_the_other_way_and_diagonals_separate() {
        let mut m = Mask::new(5, 5);
        for j in 0..5 {
            for i in 0..5 {
                m.set(i, j, !(i == 2 && j == 2));
            }
        }
        let c = contours(&m);
        assert_eq!(c.len(), 2);
        let areas: Vec<f64> = c.iter().map(|p| polygon_area(p)).collect();
        assert!(areas.iter().any(|&a| a > 0.0) && areas.iter().any(|&a| a < 0.0));
        // Outer loop: the 5x5 block through edge midpoints: 25 - 4 * 1/8.
        let outer = areas.iter().cloned().fold(f64::MIN, f64::max);
        assert_relative_eq!(outer, 24.5, epsilon = 1e-12);
        // Two diagonal pixels form two separate loops.
        let mut d = Mask::new(4, 4);
        d.set(1, 1, true);
        d.set(2, 2, true);
        assert_eq!(contours(&d).len(), 2);
    }

    #[test]
    fn triangle_fill_uses_pixel_centres() {
        // Right triangle with legs 4 px: centres with i + j <= 4, i, j >= 0
        // inside (edges inclusive): 15 pixels.
        let mut m = Mask::new(10, 10);
        m.fill_triangle(
            &Point2::new(0.0, 0.0),
            &Point2::new(4.0, 0.0),
            &Point2::new(0.0, 4.0),
        );
        assert_eq!(m.count(), 15);
        assert!(m.get(0, 0) && m.get(4, 0) && m.get(0, 4) && m.get(2, 2));
        assert!(!m.get(3, 2));
        // Half a pixel shift moves the covered centres.
        let mut s = Mask::new(10, 10);
        s.fill_triangle(
            &Point2::new(0.5, 0.5),
            &Point2::new(4.5, 0.5),
            &Point2::new(0.5, 4.5),
        );
        assert_eq!(s.count(), 6);
        assert!(!s.get(0, 0) && s.get(1, 1));
        // Non-finite and far-away triangles do nothing and do not panic.
        let mut e = Mask::new(4, 4);
        e.fill_triangle(
            &Point2::new(f64::NAN, 0.0),
            &Point2::new(1.0, 0.0),
            &Point2::new(0.0, 1.0),
        );
        e.fill_triangle(
            &Point2::new(-1e300, -1e300),
            &Point2::new(1e300, -1e300),
            &Point2::new(0.0, 1e300),
        );
        assert_eq!(e.count(), 16);
    }

    #[test]
    fn douglas_peucker_known_answer() {
        let pts: Vec<Point2<f64>> = [(0.0, 0.0), (1.0, 0.1), (2.0, -0.1), (3.0, 5.0), (4.0, 6.0)]
            .iter()
            .map(|&(x, y)| Point2::new(x, y))
            .collect();
        let s = simplify_open(&pts, 0.5);
        // Distances to the chord: p2 1.72 px (kept), then p1 0.15 (dropped)
        // and p3 0.64 (kept) to the sub-chords.
        assert_eq!(s, vec![pts[0], pts[2], pts[3], pts[4]]);
        assert_eq!(simplify_open(&pts, 2.0), vec![pts[0], pts[4]]);
    }
}
