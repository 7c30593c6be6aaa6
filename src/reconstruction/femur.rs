//! The "reconstructed femur": a closed, conservative bone surface built
//! from the head sphere, the neck and the shaft when no CT mesh is given.
//!
//! # Implicit function
//! `f(p) = smin(smin(smin(f_head, f_neck), f_shaft), f_lateral) + shrink_mm`
//! (negative inside), with
//! * `f_head = |p - c| - r`;
//! * `f_tube = max((rho - 1) min(a, b), t0 - t, t - t1)` for a tube, where
//!   `t` is the axis coordinate, the section (centre, semi-axes `a`, `b`)
//!   is interpolated along the axis, and `rho` is the elliptical radius of
//!   `p` in it. `(rho - 1) min(a, b)` is never larger in magnitude than the
//!   true distance to the ellipse, so a level `-s` of it lies at least `s`
//!   inside the ellipse;
//! * the neck runs from the head centre laterally down to the junction, the
//!   point of its axis closest to the shaft axis (at least
//!   [`NECK_DISTAL_EXTENSION_MM`] and at most
//!   [`NECK_LATERAL_EXTENSION_MAX_MM`] beyond its last measured section),
//!   with the last measured section: the trochanteric region it runs into is
//!   wider than the neck; the shaft from its first measured section up to
//!   the level of the junction (at most [`SHAFT_PROXIMAL_EXTENSION_MM`]
//!   beyond its last measured section), with its last measured section: the
//!   metaphysis is wider than the shaft;
//! * `f_lateral`: when `entry_px` gives the entry point on the lateral
//!   cortex, the trochanteric body [`LateralBody`], a round cone from the
//!   junction (radius of the thinner of neck and shaft there) to a sphere
//!   of [`LATERAL_TIP_RADIUS_MM`] touching the entry point from inside
//!   along the lateral cortex's normal (perpendicular to the shaft axis). So
//!   the neck axis extended laterally leaves the solid through the lateral
//!   cortex, as in the bone, and not at the end of the neck tube. Without
//!   an entry point it leaves through the wall of the shaft tube, a few mm
//!   inside the true lateral cortex (the trochanteric flare is not seen in
//!   the shaft edges);
//! * each two-view section is first pulled in by its own visual-hull term
//!   ([`super::TubeSection::hull_margin_mm`]): the widths seen in two views
//!   do not fix the section's orientation, so the section is made to lie
//!   inside every ellipse consistent with them (aspect ratio <= 1.4);
//! * `smin(a, b) = min(a, b) - k h^2 / 4`, `h = max(k - |a - b|, 0) / k`
//!   (polynomial smooth minimum, blend width `k` = [`BLEND_MM`]); it adds at
//!   most `k / 4` of material in the fillets, which the margin covers.
//!
//! # Conservative margin
//! A silhouette reconstruction is a visual hull, larger than the bone, and
//! annotation noise moves it by a few tenths of a millimetre. The surface
//! is shrunk by
//!
//! ```text
//! shrink = K_SIGMA * noise_px * mm_per_px + BLEND_MM / 4 + MODEL_MARGIN_MM
//! ```
//!
//! with [`K_SIGMA`] = 3 (one edge point's error, not averaged, so the bound
//! is loose), `mm_per_px` the pixel size at the head (about 0.2 mm for
//! SID 1000, SOD 650, 0.3 mm pixels) and [`MODEL_MARGIN_MM`] for the shapes
//! the sphere/elliptical-tube model does not capture. At 1 px noise on the
//! synthetic phantoms of [`crate::phantom`] this margin puts every vertex of
//! the reconstructed surface inside the true bone: over 50 seeds the worst
//! vertex lies 0.4 mm inside at 1 px and 0.9 mm at 2 px
//! (`cargo run --release --example recon_table`), and the planner's default
//! entry lands about 1 mm inside the true lateral cortex at 1 px.

use nalgebra::{Point3, Vector3};

use super::tube::Tube;
use crate::error::{Error, Result};
use crate::geometry::{mesh_implicit, Sphere, TriMesh};

/// How far the neck is continued below its last measured section, mm.
pub const NECK_DISTAL_EXTENSION_MM: f64 = 5.0;
/// Largest continuation of the shaft above its last measured section, mm
/// (up to the neck-shaft junction).
pub const SHAFT_PROXIMAL_EXTENSION_MM: f64 = 40.0;
/// Largest continuation of the neck below its first measured section
/// towards the shaft axis, mm.
pub const NECK_LATERAL_EXTENSION_MAX_MM: f64 = 40.0;
/// Radius of the tip sphere of the lateral body at the entry point, mm.
///
/// Large enough that a needle entering near the annotated point keeps the
/// rules' clearance (needle radius 1.6 + 2.0 mm, CONTRACT defaults) inside
/// the body once past the 10 mm entry allowance, and small against the
/// lateral cortex's curvature (the shaft radius, 14-16 mm, domain.md §2):
/// with the sphere touching along the cortex normal, every reconstructed
/// vertex stayed inside the true bone on the synthetic phantoms at 0 and
/// 1 px (worst 0.72 mm inside at 0 px, 1.16 mm at 1 px, 8 seeds).
pub const LATERAL_TIP_RADIUS_MM: f64 = 6.0;
/// Blend width of the smooth union, mm.
pub const BLEND_MM: f64 = 1.0;
/// Multiple of the one-point silhouette error in the automatic margin.
pub const K_SIGMA: f64 = 3.0;
/// Model term of the automatic margin (sections that are not ellipses,
/// neck-to-trochanter flare), mm.
pub const MODEL_MARGIN_MM: f64 = 0.5;

/// The automatic shrink margin, mm, for `noise_px` of annotation noise and
/// a pixel size of `mm_per_px` at the bone (see the module docs).
#[must_use]
pub fn automatic_shrink_mm(noise_px: f64, mm_per_px: f64) -> f64 {
    K_SIGMA * noise_px.max(0.0) * mm_per_px + BLEND_MM / 4.0 + MODEL_MARGIN_MM
}

/// The reconstructed femur as an implicit solid.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReconstructedFemur {
    /// Femoral head.
    pub head: Sphere,
    /// Neck tube (axis towards the head).
    pub neck: Tube,
    /// Shaft tube (axis distal to proximal).
    pub shaft: Tube,
    /// Axis-coordinate range of the neck solid, mm.
    pub neck_range_mm: [f64; 2],
    /// Axis-coordinate range of the shaft solid, mm.
    pub shaft_range_mm: [f64; 2],
    /// Inward offset applied to the surface, mm.
    pub shrink_mm: f64,
    /// Where the neck axis passes closest to the shaft axis (on the neck
    /// axis), world mm.
    pub junction_mm: Point3<f64>,
    /// The trochanteric body towards the annotated entry point, if any
    /// (see [`ReconstructedFemur::with_entry`]).
    pub lateral: Option<LateralBody>,
}

/// The trochanteric (lateral) body of the reconstructed femur: a round cone
/// (the convex hull of two spheres) from the neck-shaft junction to the
/// annotated entry point on the lateral cortex.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct LateralBody {
    /// Centre of the large sphere, at the neck-shaft junction, world mm.
    pub junction_mm: Point3<f64>,
    /// Centre of the small sphere, [`LATERAL_TIP_RADIUS_MM`] inside the
    /// entry point along the cortex normal, world mm.
    pub tip_mm: Point3<f64>,
    /// Radii of the junction and tip spheres, mm.
    pub radii_mm: [f64; 2],
}

impl LateralBody {
    /// Exact signed distance to the round cone, mm (negative inside).
    #[must_use]
    pub fn value_mm(&self, p: &Point3<f64>) -> f64 {
        // Quilez's round-cone distance.
        let [r1, r2] = self.radii_mm;
        let ba = self.tip_mm - self.junction_mm;
        let l2 = ba.norm_squared();
        let rr = r1 - r2;
        let a2 = l2 - rr * rr;
        let pa = p - self.junction_mm;
        let y = pa.dot(&ba);
        let z = y - l2;
        let x2 = (pa * l2 - ba * y).norm_squared();
        let y2 = y * y * l2;
        let z2 = z * z * l2;
        let k = rr.signum() * rr * rr * x2;
        if z.signum() * a2 * z2 > k {
            return (x2 + z2).sqrt() / l2 - r2;
        }
        if y.signum() * a2 * y2 < k {
            return (x2 + y2).sqrt() / l2 - r1;
        }
        ((x2 * a2 / l2).sqrt() + y * rr) / l2 - r1
    }
}

fn smin(a: f64, b: f64, k: f64) -> f64 {
    let h = (k - (a - b).abs()).max(0.0) / k;
    a.min(b) - k * h * h / 4.0
}

fn tube_value(tube: &Tube, range: [f64; 2], p: &Point3<f64>) -> f64 {
    let t = tube.axis.coordinate_mm(p);
    let s = tube.section_at(t);
    let d = tube.axis.direction.into_inner();
    let e1 = s.major_dir.into_inner();
    let e2 = d.cross(&e1);
    let o = p - s.center;
    let (x, y) = (o.dot(&e1), o.dot(&e2));
    let [a, b] = s.semi_axes_mm;
    let rho = ((x / a).powi(2) + (y / b).powi(2)).sqrt();
    let radial = (rho - 1.0) * a.min(b) + s.hull_margin_mm;
    radial.max(range[0] - t).max(t - range[1])
}

impl ReconstructedFemur {
    /// Assembles the solid from its parts; `shrink_mm >= 0`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a negative or non-finite `shrink_mm`;
    /// [`Error::Degenerate`] if the parts are empty.
    pub fn new(head: Sphere, neck: Tube, shaft: Tube, shrink_mm: f64) -> Result<Self> {
        if !(shrink_mm.is_finite() && shrink_mm >= 0.0) {
            return Err(Error::invalid("shrink_mm", "must be a finite number >= 0"));
        }
        if neck.sections.is_empty() || shaft.sections.is_empty() {
            return Err(Error::degenerate("femur", "a tube has no sections"));
        }
        let n_first = neck.sections[0].t_mm;
        let n_hi = neck
            .axis
            .coordinate_mm(&head.center)
            .max(neck.sections[neck.sections.len() - 1].t_mm);
        let s_lo = shaft.sections[0].t_mm;
        let s_last = shaft.sections[shaft.sections.len() - 1].t_mm;
        // Closest approach of the neck and shaft axes (the junction).
        let d1 = shaft.axis.direction.into_inner();
        let d2 = neck.axis.direction.into_inner();
        let w = shaft.axis.point - neck.axis.point;
        let bb = d1.dot(&d2);
        let den = 1.0 - bb * bb;
        let (ts, tn) = if den > 1e-9 {
            (
                (bb * d2.dot(&w) - d1.dot(&w)) / den,
                (d2.dot(&w) - bb * d1.dot(&w)) / den,
            )
        } else {
            (s_last, n_first - NECK_DISTAL_EXTENSION_MM)
        };
        // The neck is continued laterally down to the junction (the
        // trochanteric region it runs into is wider than the neck), the
        // shaft proximally up to it (the metaphysis is wider than the
        // shaft); each by at most its cap.
        let n_lo = tn
            .max(n_first - NECK_LATERAL_EXTENSION_MAX_MM)
            .min(n_first - NECK_DISTAL_EXTENSION_MM);
        let s_hi = ts.clamp(s_last, s_last + SHAFT_PROXIMAL_EXTENSION_MM);
        let junction = neck.axis.at(tn.max(n_lo));
        Ok(Self {
            head,
            neck,
            shaft,
            neck_range_mm: [n_lo, n_hi],
            shaft_range_mm: [s_lo, s_hi],
            shrink_mm,
            junction_mm: junction,
            lateral: None,
        })
    }

    /// Adds the trochanteric body towards the annotated entry point `entry`
    /// (world mm, on the lateral cortex): a round cone from the neck-shaft
    /// junction, of the radius of the thinner of the neck and shaft there,
    /// to a sphere of [`LATERAL_TIP_RADIUS_MM`] touching `entry` from inside
    /// along the lateral cortex's normal there (the entry's offset from the
    /// shaft axis, perpendicular to the axis: the cortex runs along the shaft).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a non-finite `entry`; [`Error::Degenerate`]
    /// when `entry` is too close to the junction to form a cone (it lies
    /// within the neck or shaft).
    pub fn with_entry(mut self, entry: &Point3<f64>) -> Result<Self> {
        crate::error::ensure_finite("entry_mm", entry.coords.as_slice())?;
        let j = self.junction_mm;
        let ns = self.neck.section_at(self.neck_range_mm[0]);
        let ss = self.shaft.section_at(
            self.shaft
                .axis
                .coordinate_mm(&j)
                .min(self.shaft_range_mm[1]),
        );
        let r1 = (ns.semi_axes_mm[0].min(ns.semi_axes_mm[1]) - ns.hull_margin_mm)
            .min(ss.semi_axes_mm[0].min(ss.semi_axes_mm[1]) - ss.hull_margin_mm);
        let r2 = LATERAL_TIP_RADIUS_MM;
        let v = entry - j;
        let len = v.norm();
        if !(r1 > r2 && len > r1 + r2) {
            return Err(Error::degenerate(
                "entry_mm",
                "the entry point is too close to the neck-shaft junction for a lateral body",
            ));
        }
        // The lateral cortex runs along the shaft: its outward normal at the
        // entry is the entry's offset from the shaft axis, made
        // perpendicular to it. The tip sphere touches the entry from inside
        // along that normal; along the (oblique) junction-to-entry direction
        // it would cut through the cortex by r2 (1 - cos angle).
        let d = self.shaft.axis.direction.into_inner();
        let off = entry - self.shaft.axis.point;
        let normal = (off - d * off.dot(&d))
            .try_normalize(1e-9)
            .filter(|n| n.dot(&v) > 0.0)
            .unwrap_or(v / len);
        let tip = entry - normal * r2;
        if (tip - j).norm() <= r1 - r2 {
            return Err(Error::degenerate(
                "entry_mm",
                "the entry point is too close to the neck-shaft junction for a lateral body",
            ));
        }
        self.lateral = Some(LateralBody {
            junction_mm: j,
            tip_mm: tip,
            radii_mm: [r1, r2],
        });
        Ok(self)
    }

    /// The implicit function at `p`, mm (negative inside).
    #[must_use]
    pub fn value_mm(&self, p: &Point3<f64>) -> f64 {
        let h = (p - self.head.center).norm() - self.head.radius_mm;
        let n = tube_value(&self.neck, self.neck_range_mm, p);
        let s = tube_value(&self.shaft, self.shaft_range_mm, p);
        let mut f = smin(smin(h, n, BLEND_MM), s, BLEND_MM);
        if let Some(l) = &self.lateral {
            f = smin(f, l.value_mm(p), BLEND_MM);
        }
        f + self.shrink_mm
    }

    /// Axis-aligned box containing the solid, mm.
    #[must_use]
    pub fn bounds_mm(&self) -> (Point3<f64>, Point3<f64>) {
        let r = Vector3::repeat(self.head.radius_mm);
        let mut lo = self.head.center - r;
        let mut hi = self.head.center + r;
        for (tube, range) in [
            (&self.neck, self.neck_range_mm),
            (&self.shaft, self.shaft_range_mm),
        ] {
            for t in [range[0], range[1]] {
                let s = tube.section_at(t);
                let c = s.center + tube.axis.direction.into_inner() * (t - s.t_mm);
                let m = Vector3::repeat(s.semi_axes_mm[0].max(s.semi_axes_mm[1]));
                lo = lo.inf(&(c - m));
                hi = hi.sup(&(c + m));
            }
        }
        if let Some(l) = &self.lateral {
            for (c, r) in [(l.junction_mm, l.radii_mm[0]), (l.tip_mm, l.radii_mm[1])] {
                lo = lo.inf(&(c - Vector3::repeat(r)));
                hi = hi.sup(&(c + Vector3::repeat(r)));
            }
        }
        (lo, hi)
    }

    /// Meshes the solid with a grid of `step_mm`.
    ///
    /// # Errors
    /// As [`mesh_implicit`].
    pub fn mesh(&self, step_mm: f64) -> Result<TriMesh> {
        let (lo, hi) = self.bounds_mm();
        let pad = Vector3::repeat(2.0 * step_mm + BLEND_MM);
        mesh_implicit(|p| self.value_mm(p), lo - pad, hi + pad, step_mm)
    }
}
