//! Tubes seen in silhouette (neck and shaft): an axis and elliptical
//! cross-sections from the two silhouette edges of each view.
//!
//! # Method
//! * Each silhouette edge back-projects to a plane through the view's
//!   source, tangent to the tube. For a circular cylinder the two tangent
//!   planes of a view are mirror images about the plane through the source
//!   and the axis, so the axis lies in their bisector plane (normal
//!   `n1 - n2`, with `n` oriented towards the tube's inside). The bisector
//!   planes of two views meet in the axis (least squares for more views).
//! * At stations along the axis, the edges are fitted locally (2D line over
//!   the edge points within [`LOCAL_HALF_WINDOW_PX`] of the station's image
//!   cross-line), back-projected to local tangent planes; the local centre is
//!   where the local bisector planes meet the station plane, and each view's
//!   half-width `w_k` is the mean distance from the centre to its two planes.
//!   The axis is then refitted through the local centres.
//! * A tangent plane parallel to the axis with unit normal `u` lies at the
//!   distance `h(u) = sqrt(u^T M u)` from the centre of the elliptical
//!   section `x^T M^-1 x = 1` (its support function). Two views give two
//!   support values: the ellipse is taken with one semi-axis along the first
//!   view's width direction `u_1` (**approximation**: the true section's
//!   orientation is unobservable from two widths), so `a = w_1` and
//!   `b^2 = (w_2^2 - a^2 cos^2 phi) / sin^2 phi` with `phi` the angle between
//!   the width directions; more views fit `M` by linear least squares.
//! * The approximations: the bisector plane contains the axis exactly only
//!   for a circular section (the error for an ellipse is of the order of
//!   the ellipticity times the half-angle of the tangent planes, about
//!   0.02 rad at 600 mm); a tube whose radius changes along the axis has
//!   tangent planes tilted by the slope of its wall, which the local fits
//!   absorb to first order.

use nalgebra::{Matrix2, Matrix3, Point2, Point3, SymmetricEigen, Unit, Vector2, Vector3};

use crate::error::{ensure_finite, Error, Result};
use crate::geometry::{fit_line, Axis};
use crate::imaging::Projection;

/// Half-width of the window of edge points fitted around a station, px.
pub const LOCAL_HALF_WINDOW_PX: f64 = 15.0;

/// Largest aspect ratio (major / minor) of a neck or shaft section: the
/// neck is oval, coronal 30.8 / 27.8 mm and sagittal 25.7 / 22.1 mm (men /
/// women; domain.md §2, Saengnipanthkul 2012), ratio about 1.2-1.26; 1.4
/// leaves room.
pub const MAX_SECTION_ASPECT: f64 = 1.4;

/// Smallest angle between two views' width directions, radians (10 deg).
const MIN_WIDTH_ANGLE_RAD: f64 = 10.0 * std::f64::consts::PI / 180.0;

/// One elliptical cross-section of a tube.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct TubeSection {
    /// Coordinate along the tube's axis, mm (see [`Axis::coordinate_mm`]).
    pub t_mm: f64,
    /// Centre of the section, world mm.
    pub center: Point3<f64>,
    /// Direction of the first semi-axis (perpendicular to the axis).
    pub major_dir: Unit<Vector3<f64>>,
    /// Semi-axes along `major_dir` and along `axis x major_dir`, mm.
    pub semi_axes_mm: [f64; 2],
    /// How far the worst section consistent with the measured widths (and
    /// an aspect ratio <= [`MAX_SECTION_ASPECT`]) lies inside this one, mm:
    /// the visual-hull term of the conservative margin (0 with > 2 views).
    pub hull_margin_mm: f64,
}

/// A tube reconstructed from silhouette edges.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Tube {
    /// The axis (orientation set by the caller).
    pub axis: Axis,
    /// Cross-sections ordered by increasing `t_mm`.
    pub sections: Vec<TubeSection>,
    /// RMS distance of the section centres from the axis, mm.
    pub straightness_rms_mm: f64,
}

impl Tube {
    /// The section interpolated (linearly) at axis coordinate `t_mm`,
    /// clamped to the end sections outside their range.
    #[must_use]
    pub fn section_at(&self, t_mm: f64) -> TubeSection {
        let s = &self.sections;
        if t_mm <= s[0].t_mm || s.len() == 1 {
            return TubeSection { t_mm, ..s[0] };
        }
        let last = s[s.len() - 1];
        if t_mm >= last.t_mm {
            return TubeSection { t_mm, ..last };
        }
        let i = s.partition_point(|x| x.t_mm <= t_mm).clamp(1, s.len() - 1);
        let (a, b) = (&s[i - 1], &s[i]);
        let f = (t_mm - a.t_mm) / (b.t_mm - a.t_mm).max(1e-12);
        let lerp = |x: f64, y: f64| x + (y - x) * f;
        // Keep the major direction continuous (a and -a are the same axis).
        let bd = if a.major_dir.dot(&b.major_dir) < 0.0 {
            -b.major_dir.into_inner()
        } else {
            b.major_dir.into_inner()
        };
        let d = a.major_dir.into_inner() * (1.0 - f) + bd * f;
        let d = d - self.axis.direction.into_inner() * d.dot(&self.axis.direction);
        TubeSection {
            t_mm,
            center: a.center + (b.center - a.center) * f,
            major_dir: Unit::try_new(d, 1e-9).unwrap_or(a.major_dir),
            semi_axes_mm: [
                lerp(a.semi_axes_mm[0], b.semi_axes_mm[0]),
                lerp(a.semi_axes_mm[1], b.semi_axes_mm[1]),
            ],
            hull_margin_mm: lerp(a.hull_margin_mm, b.hull_margin_mm),
        }
    }
}

/// 2D total-least-squares line: (point, unit direction).
fn line2(pts: &[Point2<f64>]) -> Option<(Point2<f64>, Vector2<f64>)> {
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let m = pts.iter().fold(Vector2::zeros(), |a, p| a + p.coords) / n;
    let mut c = Matrix2::zeros();
    for p in pts {
        let d = p.coords - m;
        c += d * d.transpose();
    }
    let e = SymmetricEigen::new(c);
    let i = e.eigenvalues.imax();
    if !(e.eigenvalues[i] > 1e-12) {
        return None;
    }
    let mut d: Vector2<f64> = e.eigenvectors.column(i).into_owned();
    if (pts[pts.len() - 1] - pts[0]).dot(&d) < 0.0 {
        d = -d;
    }
    Some((Point2::from(m), d))
}

/// Unit normal of the plane through the source and the image line
/// `(p, dir)`, oriented so that the ray through `inside_px` is on its
/// positive side.
fn edge_plane(
    proj: &Projection,
    p: &Point2<f64>,
    dir: &Vector2<f64>,
    inside_px: &Point2<f64>,
) -> Option<Vector3<f64>> {
    let r1 = proj.back_project(&(p - dir * 50.0)).dir;
    let r2 = proj.back_project(&(p + dir * 50.0)).dir;
    let n = Unit::try_new(r1.cross(&r2), 1e-12)?.into_inner();
    let m = proj.back_project(inside_px).dir;
    Some(if n.dot(&m) < 0.0 { -n } else { n })
}

/// Least-squares point of planes `(normal, point)`.
fn planes_point(planes: &[(Vector3<f64>, Point3<f64>)]) -> Option<Point3<f64>> {
    let mut a = Matrix3::zeros();
    let mut b = Vector3::zeros();
    for (n, p) in planes {
        a += n * n.transpose();
        b += n * n.dot(&p.coords);
    }
    a.try_inverse().map(|inv| Point3::from(inv * b))
}

/// Bisector planes of the whole edges of every view: `(normal, source)`.
fn global_bisectors(
    views: &[(Projection, [Vec<Point2<f64>>; 2])],
    what: &str,
) -> Result<Vec<(Vector3<f64>, Point3<f64>)>> {
    let mut out = Vec::new();
    for (k, (p, edges)) in views.iter().enumerate() {
        let wk = format!("views[{k}].{what}");
        let l0 = line2(&edges[0])
            .ok_or_else(|| Error::degenerate(format!("{wk}[0]"), "the edge has no extent"))?;
        let l1 = line2(&edges[1])
            .ok_or_else(|| Error::degenerate(format!("{wk}[1]"), "the edge has no extent"))?;
        let inside = Point2::from((l0.0.coords + l1.0.coords) / 2.0);
        let n0 = edge_plane(p, &l0.0, &l0.1, &inside)
            .ok_or_else(|| Error::degenerate(&wk, "edge plane undefined"))?;
        let n1 = edge_plane(p, &l1.0, &l1.1, &inside)
            .ok_or_else(|| Error::degenerate(&wk, "edge plane undefined"))?;
        let b = Unit::try_new(n0 - n1, 1e-12)
            .ok_or_else(|| Error::degenerate(&wk, "the two edges coincide"))?;
        out.push((b.into_inner(), p.source_mm()));
    }
    Ok(out)
}

/// Axis from bisector planes, near `reference`.
fn axis_from_planes(
    planes: &[(Vector3<f64>, Point3<f64>)],
    reference: &Point3<f64>,
    what: &str,
) -> Result<Axis> {
    let mut a = Matrix3::zeros();
    for (n, _) in planes {
        a += n * n.transpose();
    }
    let e = SymmetricEigen::new(a);
    let imin = e.eigenvalues.imin();
    let d: Vector3<f64> = e.eigenvectors.column(imin).into_owned();
    // The second-smallest eigenvalue measures how well the planes cross.
    let mut ev: Vec<f64> = e.eigenvalues.iter().copied().collect();
    ev.sort_by(f64::total_cmp);
    if ev[1] < MIN_WIDTH_ANGLE_RAD.sin().powi(2) / 2.0 {
        return Err(Error::degenerate(
            what,
            "the views' mid-planes are nearly parallel (views < 10 degrees apart about the axis)",
        ));
    }
    let mut planes2 = planes.to_vec();
    planes2.push((d, *reference));
    let p = planes_point(&planes2)
        .ok_or_else(|| Error::degenerate(what, "the mid-planes do not meet"))?;
    Axis::new(p, d)
}

/// Image crossing of `edge` with the line through `a` perpendicular to `g`,
/// from a local line fit; returns (point, direction).
fn local_edge(
    edge: &[Point2<f64>],
    a: &Point2<f64>,
    g: &Vector2<f64>,
) -> Option<(Point2<f64>, Vector2<f64>)> {
    let s: Vec<f64> = edge.iter().map(|p| (p - a).dot(g)).collect();
    let (smin, smax) = s
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if !(smin <= 0.0 && smax >= 0.0) {
        return None;
    }
    let mut near: Vec<Point2<f64>> = edge
        .iter()
        .zip(&s)
        .filter(|(_, &si)| si.abs() <= LOCAL_HALF_WINDOW_PX)
        .map(|(p, _)| *p)
        .collect();
    if near.len() < 3 {
        // Fall back to the segment that crosses.
        let i = (1..edge.len()).find(|&i| s[i - 1] * s[i] <= 0.0)?;
        near = vec![edge[i - 1], edge[i]];
    }
    let (p, d) = line2(&near)?;
    // Intersect p + x d with (q - a) . g = 0.
    let den = d.dot(g);
    if den.abs() < 1e-6 {
        return None;
    }
    let x = -(p - a).dot(g) / den;
    Some((p + d * x, d))
}

/// Fits a tube to the silhouette edges of two or more views.
///
/// `views[k] = (projection, [edge_0, edge_1])`; `what` names the annotation
/// in errors (`neck_edges_px`, `shaft_edges_px`); `toward` orients the axis
/// (it points towards that point); `station_step_mm` spaces the sections.
///
/// # Errors
/// * [`Error::TooFew`] for fewer than 2 views or an edge with fewer than 2
///   points;
/// * [`Error::Invalid`] for non-finite points;
/// * [`Error::Degenerate`] when the views do not determine the axis, the
///   edges do not overlap along it, or a section is not an ellipse.
pub fn fit_tube(
    views: &[(Projection, [Vec<Point2<f64>>; 2])],
    what: &str,
    toward: &Point3<f64>,
    station_step_mm: f64,
) -> Result<Tube> {
    fit_tube_impl(views, what, toward, station_step_mm, false)
}

/// As [`fit_tube`], with the axis constrained to pass through `through`
/// (the neck axis through the head centre, which the head fit locates to
/// about 0.05 mm at 1 px noise): the lever arm from the head centre to the
/// measured sections steadies the direction, which the short neck edges
/// alone leave noisy (about 6 degrees RMS at 2 px without the constraint
/// on the phantoms of `examples/recon_table.rs`). The axis points towards
/// `through`.
///
/// # Errors
/// As [`fit_tube`].
pub fn fit_tube_through(
    views: &[(Projection, [Vec<Point2<f64>>; 2])],
    what: &str,
    through: &Point3<f64>,
    station_step_mm: f64,
) -> Result<Tube> {
    fit_tube_impl(views, what, through, station_step_mm, true)
}

/// Least-squares line through `anchor` and near `pts`.
fn line_through(anchor: &Point3<f64>, pts: &[Point3<f64>]) -> Result<Axis> {
    let mut m = Matrix3::zeros();
    for p in pts {
        let d = p - anchor;
        m += d * d.transpose();
    }
    let e = SymmetricEigen::new(m);
    let d: Vector3<f64> = e.eigenvectors.column(e.eigenvalues.imax()).into_owned();
    Axis::new(*anchor, d)
}

fn fit_tube_impl(
    views: &[(Projection, [Vec<Point2<f64>>; 2])],
    what: &str,
    toward: &Point3<f64>,
    station_step_mm: f64,
    anchored: bool,
) -> Result<Tube> {
    if views.len() < 2 {
        return Err(Error::too_few(format!("{what} views"), 2, views.len()));
    }
    if !(station_step_mm.is_finite() && station_step_mm > 0.0) {
        return Err(Error::invalid(
            "station_step_mm",
            "must be a finite number > 0",
        ));
    }
    for (k, (_, edges)) in views.iter().enumerate() {
        for (e, pts) in edges.iter().enumerate() {
            let f = format!("views[{k}].{what}[{e}]");
            if pts.len() < 2 {
                return Err(Error::too_few(f, 2, pts.len()));
            }
            for (i, q) in pts.iter().enumerate() {
                ensure_finite(&format!("{f}[{i}]"), q.coords.as_slice())?;
            }
        }
    }
    let planes = global_bisectors(views, what)?;
    let mut axis = axis_from_planes(&planes, toward, what)?;
    if anchored {
        axis = Axis::new(*toward, axis.direction.into_inner())?;
    }
    let mut sections = stations(views, &axis, what, station_step_mm)?;
    // Refine the axis through the section centres; keep the last axis whose
    // sections could all be measured.
    for _round in 0..3 {
        let centres: Vec<_> = sections.iter().map(|s| s.center).collect();
        let mut a = if anchored {
            line_through(toward, &centres)?
        } else {
            fit_line(&centres)?
        };
        if a.direction.dot(&axis.direction) < 0.0 {
            a = a.reversed();
        }
        match stations(views, &a, what, station_step_mm) {
            Ok(s) => {
                axis = a;
                sections = s;
            }
            Err(_) => break,
        }
    }
    // Orient towards `toward` from the middle of the measured sections (the
    // anchored axis passes through `toward` itself).
    let mid = sections
        .iter()
        .fold(Vector3::zeros(), |a, s| a + s.center.coords)
        / sections.len() as f64;
    if (toward.coords - mid).dot(&axis.direction) < 0.0 {
        axis = axis.reversed();
    }
    for s in &mut sections {
        s.t_mm = axis.coordinate_mm(&s.center);
    }
    sections.sort_by(|a, b| a.t_mm.total_cmp(&b.t_mm));
    let straightness_rms_mm = (sections
        .iter()
        .map(|s| axis.distance_mm(&s.center).powi(2))
        .sum::<f64>()
        / sections.len() as f64)
        .sqrt();
    Ok(Tube {
        axis,
        sections,
        straightness_rms_mm,
    })
}

/// Axis coordinate of the point of `axis` closest to the ray through `uv`.
fn axis_t_of_pixel(axis: &Axis, p: &Projection, uv: &Point2<f64>) -> Option<f64> {
    let r = p.back_project(uv);
    let d1 = axis.direction.into_inner();
    let d2 = r.dir.into_inner();
    let w = axis.point - r.origin;
    let b = d1.dot(&d2);
    let den = 1.0 - b * b;
    if den < 1e-12 {
        return None;
    }
    Some((b * d2.dot(&w) - d1.dot(&w)) / den)
}

fn stations(
    views: &[(Projection, [Vec<Point2<f64>>; 2])],
    axis: &Axis,
    what: &str,
    step_mm: f64,
) -> Result<Vec<TubeSection>> {
    // Range covered by both edges in every view.
    let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
    for (p, edges) in views {
        for e in edges {
            let ts: Vec<f64> = e
                .iter()
                .filter_map(|q| axis_t_of_pixel(axis, p, q))
                .collect();
            if ts.is_empty() {
                return Err(Error::degenerate(what, "an edge runs along a viewing ray"));
            }
            lo = lo.max(ts.iter().copied().fold(f64::INFINITY, f64::min));
            hi = hi.min(ts.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        }
    }
    if !(hi > lo) {
        return Err(Error::degenerate(
            what,
            "the edges of the views do not overlap along the axis",
        ));
    }
    // Inset by a little so that every station has edge points on both sides.
    let inset = ((hi - lo) * 0.02).min(1.0);
    let (lo, hi) = (lo + inset, hi - inset);
    let n = (((hi - lo) / step_mm).ceil() as usize + 1).clamp(2, 400);
    let d = axis.direction.into_inner();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = lo + (hi - lo) * i as f64 / (n - 1) as f64;
        if let Some(s) = section(views, axis, t, &d) {
            out.push(s);
        }
    }
    if out.len() < 2 {
        return Err(Error::degenerate(
            what,
            "fewer than 2 cross-sections could be measured",
        ));
    }
    Ok(out)
}

fn section(
    views: &[(Projection, [Vec<Point2<f64>>; 2])],
    axis: &Axis,
    t: f64,
    d: &Vector3<f64>,
) -> Option<TubeSection> {
    let at = axis.at(t);
    let mut per_view = Vec::new();
    for (p, edges) in views {
        let a = p.try_project(&at)?;
        let a2 = p.try_project(&(at + d))?;
        let g = Unit::try_new(a2 - a, 1e-9)?.into_inner();
        let (e0, t0) = local_edge(&edges[0], &a, &g)?;
        let (e1, t1) = local_edge(&edges[1], &a, &g)?;
        let mid = Point2::from((e0.coords + e1.coords) / 2.0);
        let n0 = edge_plane(p, &e0, &t0, &mid)?;
        let n1 = edge_plane(p, &e1, &t1, &mid)?;
        let b = Unit::try_new(n0 - n1, 1e-12)?.into_inner();
        per_view.push((p.source_mm(), n0, n1, b));
    }
    let mut planes: Vec<_> = per_view.iter().map(|(s, _, _, b)| (*b, *s)).collect();
    planes.push((*d, at));
    let c = planes_point(&planes)?;
    // Width directions and half-widths.
    let mut obs = Vec::new();
    for (s, n0, n1, _) in &per_view {
        let w = (n0.dot(&(c - s)) + n1.dot(&(c - s))) / 2.0;
        let u = n0 - n1;
        let u = Unit::try_new(u - d * u.dot(d), 1e-12)?;
        if !(w > 0.0) {
            return None;
        }
        obs.push((u, w));
    }
    let e1 = obs[0].0;
    let e2 = Unit::new_normalize(d.cross(&e1));
    let (major, axes, hull) = if obs.len() == 2 {
        let (u2, w2) = obs[1];
        let (c2, s2) = (u2.dot(&e1), u2.dot(&e2));
        if s2 * s2 < MIN_WIDTH_ANGLE_RAD.sin().powi(2) {
            return None;
        }
        let a = obs[0].1;
        let b2 = (w2 * w2 - a * a * c2 * c2) / (s2 * s2);
        if !(b2 > 0.0) {
            return None;
        }
        let hull = hull_margin(a, b2.sqrt(), c2, s2, w2);
        (e1, [a, b2.sqrt()], hull)
    } else {
        // Linear least squares for M = [[m11, m12], [m12, m22]] in (e1, e2).
        let mut ata = Matrix3::zeros();
        let mut atb = Vector3::zeros();
        for (u, w) in &obs {
            let (x, y) = (u.dot(&e1), u.dot(&e2));
            let row = Vector3::new(x * x, 2.0 * x * y, y * y);
            ata += row * row.transpose();
            atb += row * (w * w);
        }
        let m = ata.try_inverse()? * atb;
        let mm = Matrix2::new(m[0], m[1], m[1], m[2]);
        let e = SymmetricEigen::new(mm);
        if e.eigenvalues.iter().any(|&l| !(l > 0.0)) {
            return None;
        }
        let v = e.eigenvectors.column(0);
        let dir = Unit::new_normalize(e1.into_inner() * v[0] + e2.into_inner() * v[1]);
        (dir, [e.eigenvalues[0].sqrt(), e.eigenvalues[1].sqrt()], 0.0)
    };
    Some(TubeSection {
        t_mm: t,
        center: c,
        major_dir: major,
        semi_axes_mm: axes,
        hull_margin_mm: hull,
    })
}

/// The visual-hull term of a two-view section.
///
/// Two widths `w_1` (along `e1`) and `w_2` (along `u_2 = (c2, s2)`) leave a
/// one-parameter family of ellipses `M(m) = [[a^2, m], [m, m22(m)]]` in the
/// `(e1, e2)` frame (`m22` set by `u_2^T M u_2 = w_2^2`). The fitted section
/// is the member `m = 0`. Returns the largest amount by which the fitted
/// section's support `sqrt(u^T M u)` exceeds that of a member with aspect
/// ratio <= [`MAX_SECTION_ASPECT`], over sampled members and directions.
fn hull_margin(a: f64, b: f64, c2: f64, s2: f64, w2: f64) -> f64 {
    let fit = Matrix2::new(a * a, 0.0, 0.0, b * b);
    let lim = a * b; // |m| < sqrt(m11 m22) for a positive definite member
    let mut worst: f64 = 0.0;
    for i in 0..=64 {
        let m = -lim * 1.5 + 3.0 * lim * f64::from(i) / 64.0;
        // u2^T M u2 = a^2 c2^2 + 2 m c2 s2 + m22 s2^2 = w2^2.
        let m22 = (w2 * w2 - a * a * c2 * c2 - 2.0 * m * c2 * s2) / (s2 * s2);
        let mm = Matrix2::new(a * a, m, m, m22);
        let e = SymmetricEigen::new(mm);
        let (lo, hi) = (e.eigenvalues.min(), e.eigenvalues.max());
        if !(lo > 0.0) || hi / lo > MAX_SECTION_ASPECT * MAX_SECTION_ASPECT {
            continue;
        }
        for k in 0..72 {
            let t = std::f64::consts::PI * f64::from(k) / 72.0;
            let u = Vector2::new(t.cos(), t.sin());
            let hf = (u.transpose() * fit * u)[(0, 0)].sqrt();
            let hm = (u.transpose() * mm * u)[(0, 0)].max(0.0).sqrt();
            worst = worst.max(hf - hm);
        }
    }
    worst
}
