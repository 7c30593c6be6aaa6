//! The synthetic proximal femur: drawn parameters and its implicit function.
//!
//! The bone is a smooth union of simple primitives, each a 1-Lipschitz
//! signed-distance bound (exact for the sphere and the cylinders, a lower
//! bound on the distance for the elliptical pieces), so the union is a valid
//! sphere-tracing function (never overestimates the distance to the surface):
//!
//! ```text
//!            GT  __
//!              /    \______        head (exact sphere)
//!   lateral   |  metaphysis \_neck_/ ( H )
//!   cortex -> |    ____     /        \___/
//!             |   |    |  LT
//!             |   |shaft|
//! ```
//!
//! Head: sphere of radius `head_radius_mm` at `H`. Neck: elliptical cylinder
//! along the neck axis `n` (coronal and sagittal diameters of domain.md §2),
//! whose direction is set by the neck-shaft angle and the anteversion; the
//! neck axis passes `neck_anterior_offset_mm` anterior to the shaft axis
//! (domain.md §2, "neck offset"). Greater trochanter (GT), lesser trochanter
//! (LT) and the intertrochanteric metaphysis are ellipsoids, the shaft a
//! capped cylinder. The head joins the rest with a small blend (3 mm) that
//! only acts near the head-neck junction, so the articular part of the head is
//! exactly the sphere.

use nalgebra::{Point3, Unit, Vector3};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::case::Side;

/// Blend radius between the head and the rest of the bone, mm.
pub(crate) const HEAD_BLEND_MM: f64 = 3.0;

/// Every drawn parameter of one synthetic femur (mm and degrees, as written
/// in `truth.json`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FemurParams {
    /// Which femur.
    pub side: Side,
    /// Head radius, mm; 20-27, prior 23 (domain.md §7).
    pub head_radius_mm: f64,
    /// Neck-shaft angle, degrees; 115-140, prior 125 (domain.md §7).
    pub neck_shaft_angle_deg: f64,
    /// Anteversion, degrees; -5 to 35, prior 12 (domain.md §7).
    pub anteversion_deg: f64,
    /// Coronal (supero-inferior) neck diameter, mm (domain.md §2: M 30.8, F 27.8).
    pub neck_coronal_diameter_mm: f64,
    /// Sagittal (antero-posterior) neck diameter, mm (domain.md §2: M 25.7, F 22.1).
    pub neck_sagittal_diameter_mm: f64,
    /// Anterior offset of the neck axis from the shaft axis, mm; 5-8 (domain.md §2).
    pub neck_anterior_offset_mm: f64,
    /// Horizontal distance from the head centre to the shaft axis, mm.
    pub femoral_offset_mm: f64,
    /// Shaft diameter, mm; 28-32.
    pub shaft_diameter_mm: f64,
    /// Cortical thickness, mm; 2-4.
    pub cortical_thickness_mm: f64,
    /// Height of the lesser trochanter's centre below the point of the neck
    /// axis closest to the shaft axis, mm; 18-28.
    pub lt_below_neck_base_mm: f64,
    /// Length of shaft kept below the lesser trochanter, mm; 100-120.
    pub shaft_below_lt_mm: f64,
    /// Height of the greater trochanter's tip relative to the head centre, mm.
    pub gt_tip_above_head_mm: f64,
}

/// Maps `u` in [0, 1) to [lo, hi].
fn range(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// A draw from a normal distribution clipped to `[lo, hi]` (Box-Muller).
fn clipped_normal(rng: &mut ChaCha8Rng, mean: f64, sd: f64, lo: f64, hi: f64) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (mean + sd * z).clamp(lo, hi)
}

impl FemurParams {
    /// Draws a femur from the ranges of domain.md §2 and §7.
    pub(crate) fn draw(rng: &mut ChaCha8Rng, side: Side) -> Self {
        let head_radius_mm = clipped_normal(rng, 23.0, 1.8, 20.0, 27.0);
        // Neck diameters scale with the head: 30.8/45.3 and 25.7/45.3 of the
        // head diameter (domain.md §2, male means), +-6 %.
        let d = 2.0 * head_radius_mm;
        let neck_coronal_diameter_mm = d * 0.68 * range(rng, 0.94, 1.06);
        let neck_sagittal_diameter_mm = d * 0.57 * range(rng, 0.94, 1.06);
        Self {
            side,
            head_radius_mm,
            neck_shaft_angle_deg: clipped_normal(rng, 125.0, 6.0, 115.0, 140.0),
            anteversion_deg: clipped_normal(rng, 12.0, 8.0, -5.0, 35.0),
            neck_coronal_diameter_mm,
            neck_sagittal_diameter_mm,
            neck_anterior_offset_mm: range(rng, 5.0, 8.0),
            femoral_offset_mm: head_radius_mm * range(rng, 1.75, 2.0),
            shaft_diameter_mm: range(rng, 28.0, 32.0),
            cortical_thickness_mm: range(rng, 2.0, 4.0),
            lt_below_neck_base_mm: range(rng, 18.0, 28.0),
            shaft_below_lt_mm: range(rng, 100.0, 120.0),
            gt_tip_above_head_mm: range(rng, -6.0, 4.0),
        }
    }
}

/// An ellipsoid bound: `(|q| - 1) min(semi-axes)`, with `q` the point in
/// unit coordinates; 1-Lipschitz, exact on the surface.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Blob {
    pub center: Point3<f64>,
    /// Local axes (orthonormal), world.
    pub axes: [Vector3<f64>; 3],
    pub semi: Vector3<f64>,
}

impl Blob {
    fn sdf(&self, p: &Point3<f64>) -> f64 {
        let d = p - self.center;
        let q = Vector3::new(
            d.dot(&self.axes[0]) / self.semi.x,
            d.dot(&self.axes[1]) / self.semi.y,
            d.dot(&self.axes[2]) / self.semi.z,
        );
        (q.norm() - 1.0) * self.semi.min()
    }

    fn bounds(&self) -> (Point3<f64>, Point3<f64>) {
        let mut h = Vector3::zeros();
        for i in 0..3 {
            h[i] = (0..3)
                .map(|j| (self.axes[j][i] * self.semi[j]).powi(2))
                .sum::<f64>()
                .sqrt();
        }
        (self.center - h, self.center + h)
    }
}

/// Polynomial smooth minimum (blend radius `k`); its gradient is a convex
/// combination of the arguments' gradients, so it stays 1-Lipschitz.
fn smin(a: f64, b: f64, k: f64) -> f64 {
    let h = (k - (a - b).abs()).max(0.0) / k;
    a.min(b) - h * h * k * 0.25
}

/// The femur's geometry in world (patient LPS) mm.
#[derive(Debug, Clone)]
pub(crate) struct Femur {
    pub params: FemurParams,
    /// Head centre.
    pub head_center: Point3<f64>,
    /// Neck axis direction, from the neck base towards the head.
    pub neck_dir: Unit<Vector3<f64>>,
    /// Coronal and sagittal unit directions of the neck cross-section.
    pub neck_cor: Vector3<f64>,
    pub neck_sag: Vector3<f64>,
    /// Neck extent along the axis, as signed distances from the head centre.
    pub neck_t: [f64; 2],
    /// The point of the neck axis closest to the shaft axis.
    pub neck_base: Point3<f64>,
    /// A point on the shaft axis (at the neck base height) and its direction
    /// (superior).
    pub shaft_point: Point3<f64>,
    pub shaft_dir: Unit<Vector3<f64>>,
    /// Shaft extent in z.
    pub shaft_z: [f64; 2],
    /// Height (z) of the lesser trochanter's centre.
    pub lt_z: f64,
    pub lt: Blob,
    pub gt: Blob,
    pub metaphysis: Blob,
}

impl Femur {
    /// Builds the geometry; the head centre of a right femur sits at
    /// `(-85, 0, 0)` mm, a left one at `(85, 0, 0)` (patient LPS).
    pub(crate) fn new(params: FemurParams) -> Self {
        let m = match params.side {
            Side::Right => 1.0,
            Side::Left => -1.0,
        };
        let medial = Vector3::new(m, 0.0, 0.0);
        let anterior = Vector3::new(0.0, -1.0, 0.0);
        let posterior = -anterior;
        let superior = Vector3::z();
        let r = params.head_radius_mm;
        let h = Point3::new(-m * 85.0, 0.0, 0.0);
        let theta = (180.0 - params.neck_shaft_angle_deg).to_radians();
        let av = params.anteversion_deg.to_radians();
        let horiz = medial * av.cos() + anterior * av.sin();
        let n = Unit::new_normalize(horiz * theta.sin() + superior * theta.cos());
        let neck_cor = (superior - n.into_inner() * superior.dot(&n)).normalize();
        let neck_sag = n.cross(&neck_cor);
        let ln = params.femoral_offset_mm / theta.sin();
        let base = h - n.into_inner() * ln;
        // The shaft axis passes `offset` posterior to the neck axis.
        let mut wp = n.cross(&superior).normalize();
        if wp.dot(&posterior) < 0.0 {
            wp = -wp;
        }
        let shaft_point = base + wp * params.neck_anterior_offset_mm;
        let rs = params.shaft_diameter_mm / 2.0;
        let lt_z = base.z - params.lt_below_neck_base_mm;
        let shaft_z = [lt_z - params.shaft_below_lt_mm, base.z + 5.0];
        let axis_at = |z: f64| Point3::new(shaft_point.x, shaft_point.y, z);
        let lateral = -medial;
        // Lesser trochanter: posteromedial bump, half buried in the shaft.
        let pm = (medial + posterior * 0.8).normalize();
        let lt = Blob {
            center: axis_at(lt_z) + pm * (rs * 0.8),
            axes: [pm, superior.cross(&pm), superior],
            semi: Vector3::new(9.0, 8.0, 13.0),
        };
        // Greater trochanter: lateral, slightly posterior, tip near the head
        // centre's height.
        let gt_semi = Vector3::new(13.0, 17.0, 24.0);
        let gt_tip = h.z + params.gt_tip_above_head_mm;
        let gt = Blob {
            center: Point3::new(shaft_point.x, shaft_point.y, gt_tip - gt_semi.z)
                + lateral * (rs * 0.45)
                + posterior * 4.0,
            axes: [lateral, posterior, superior],
            semi: gt_semi,
        };
        // Intertrochanteric metaphysis: the flare between neck and shaft.
        let metaphysis = Blob {
            center: axis_at(base.z - 16.0) + lateral * 2.0,
            axes: [lateral, posterior, superior],
            semi: Vector3::new(rs + 4.0, rs + 2.0, 30.0),
        };
        Self {
            params,
            head_center: h,
            neck_dir: n,
            neck_cor,
            neck_sag,
            neck_t: [-(ln + 0.6 * rs), -0.3 * r],
            neck_base: base,
            shaft_point,
            shaft_dir: Unit::new_unchecked(superior),
            shaft_z,
            lt_z,
            lt,
            gt,
            metaphysis,
        }
    }

    /// The head sphere.
    pub(crate) fn head(&self) -> crate::geometry::Sphere {
        crate::geometry::Sphere {
            center: self.head_center,
            radius_mm: self.params.head_radius_mm,
        }
    }

    /// The head sphere's signed distance.
    pub(crate) fn head_sdf(&self, p: &Point3<f64>) -> f64 {
        (p - self.head_center).norm() - self.params.head_radius_mm
    }

    /// The neck primitive (capped elliptical cylinder).
    pub(crate) fn neck_sdf(&self, p: &Point3<f64>) -> f64 {
        let d = p - self.head_center;
        let t = d.dot(&self.neck_dir);
        let a = self.params.neck_coronal_diameter_mm / 2.0;
        let b = self.params.neck_sagittal_diameter_mm / 2.0;
        let x = d.dot(&self.neck_cor) / a;
        let y = d.dot(&self.neck_sag) / b;
        let ell = (x.hypot(y) - 1.0) * a.min(b);
        let cap = (self.neck_t[0] - t).max(t - self.neck_t[1]);
        ell.max(cap)
    }

    /// The shaft primitive (capped vertical cylinder).
    pub(crate) fn shaft_sdf(&self, p: &Point3<f64>) -> f64 {
        let rs = self.params.shaft_diameter_mm / 2.0;
        let radial = (p.x - self.shaft_point.x).hypot(p.y - self.shaft_point.y) - rs;
        let cap = (self.shaft_z[0] - p.z).max(p.z - self.shaft_z[1]);
        radial.max(cap)
    }

    /// Everything but the head.
    fn body_sdf(&self, p: &Point3<f64>) -> f64 {
        let b = smin(self.shaft_sdf(p), self.metaphysis.sdf(p), 10.0);
        let b = smin(b, self.gt.sdf(p), 6.0);
        let b = smin(b, self.lt.sdf(p), 5.0);
        smin(b, self.neck_sdf(p), 8.0)
    }

    /// The bone's signed-distance bound, mm (negative inside).
    pub(crate) fn sdf(&self, p: &Point3<f64>) -> f64 {
        smin(self.body_sdf(p), self.head_sdf(p), HEAD_BLEND_MM)
    }

    /// A box that contains the bone with a margin of `margin_mm`.
    pub(crate) fn bounds(&self, margin_mm: f64) -> (Point3<f64>, Point3<f64>) {
        let r = self.params.head_radius_mm;
        let rs = self.params.shaft_diameter_mm / 2.0;
        let mut lo = self.head_center - Vector3::repeat(r);
        let mut hi = self.head_center + Vector3::repeat(r);
        let mut grow = |a: Point3<f64>, b: Point3<f64>| {
            lo = lo.inf(&a);
            hi = hi.sup(&b);
        };
        for blob in [&self.lt, &self.gt, &self.metaphysis] {
            let (a, b) = blob.bounds();
            grow(a, b);
        }
        let sa = Point3::new(
            self.shaft_point.x - rs,
            self.shaft_point.y - rs,
            self.shaft_z[0],
        );
        let sb = Point3::new(
            self.shaft_point.x + rs,
            self.shaft_point.y + rs,
            self.shaft_z[1],
        );
        grow(sa, sb);
        let nr = self.params.neck_coronal_diameter_mm / 2.0;
        for t in self.neck_t {
            let c = self.head_center + self.neck_dir.into_inner() * t;
            grow(c - Vector3::repeat(nr), c + Vector3::repeat(nr));
        }
        // Smooth unions add material within the blend radius; 10 mm covers
        // the largest blend.
        let m = Vector3::repeat(margin_mm + 10.0);
        (lo - m, hi + m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn articular_head_is_exact_sphere_and_axis_inside() {
        for seed in 0..20 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let side = if seed % 2 == 0 {
                Side::Left
            } else {
                Side::Right
            };
            let f = Femur::new(FemurParams::draw(&mut rng, side));
            let r = f.params.head_radius_mm;
            // Points on the upper hemisphere around the neck direction's
            // opposite: the bone function equals the sphere's exactly.
            for k in 0..200 {
                let a = k as f64 * 2.399_963;
                let z = 1.0 - (k as f64 + 0.5) / 200.0; // upper hemisphere
                let s = (1.0 - z * z).sqrt();
                let dir = Vector3::new(s * a.cos(), s * a.sin(), z);
                if dir.dot(&f.neck_dir) < -0.2 {
                    continue;
                }
                let p = f.head_center + dir * r;
                assert_eq!(f.sdf(&p), f.head_sdf(&p), "seed {seed}");
            }
            // The neck axis from head centre to neck base is inside bone.
            for i in 0..=50 {
                let t = -(i as f64) / 50.0 * (f.neck_base - f.head_center).norm();
                let p = f.head_center + f.neck_dir.into_inner() * t;
                assert!(f.sdf(&p) < 0.0, "seed {seed} t {t}");
            }
            let (lo, hi) = f.bounds(1.0);
            for p in [lo, hi] {
                assert!(f.sdf(&p) > 0.0);
            }
        }
    }
}
