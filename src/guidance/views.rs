//! C-arm positions for checking a planned needle: the views that show it in
//! full length, and the oblique views that show the neck's anterior and
//! posterosuperior walls edge-on next to it (AP and lateral alone miss
//! wall breaches: Zhu et al. 2024, `domain.md` §2 and §7). The
//! down-the-barrel view is [`crate::planning::Trajectory::down_the_barrel_rad`].
//!
//! With `d` the planned direction (entry to tip), every view is given by
//! the unit vector `v` from the isocentre towards the detector and turned
//! into DICOM positioner angles by [`angles_for_detector_direction`]:
//!
//! * **perpendicular, AP-like**: `v` = the AP detector direction `(0, -1, 0)`
//!   with its component along `d` removed: the view closest to AP in which
//!   the needle appears at full length;
//! * **perpendicular, lateral-like**: `v = d x v_ap` (perpendicular to the
//!   needle and to the first view), detector on the lateral side;
//! * **wall views**: for the anterior wall (outward direction `(0, -1, 0)`)
//!   and the posterosuperior wall (`(0, 1, 1) / sqrt 2`), each made
//!   perpendicular to `d`: from axis points every [`WALL_STEP_MM`] over the
//!   part the clearance rule covers, a ray in that direction meets the wall;
//!   the shortest such ray is the needle's closest approach to that wall,
//!   at wall point `w` with outward normal `n`. The beam `d x n` is tangent
//!   to the wall at `w` (the wall is seen edge-on there) and perpendicular
//!   to the needle (seen at full length), so the image shows the true gap
//!   between needle and wall. The detector goes anterior when the beam has
//!   a clear anterior-posterior component, else lateral.

use nalgebra::{Point3, Unit, Vector3};

use crate::case::{Constraints, Side};
use crate::geometry::BoneSurface;
use crate::imaging::angles_for_detector_direction;

/// Step of the axis points from which the walls are searched, mm.
pub const WALL_STEP_MM: f64 = 0.5;

/// Longest ray from the axis to a wall, mm (beyond: no wall view).
pub const WALL_SEARCH_MM: f64 = 60.0;

/// Which check view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckViewKind {
    /// Needle at full length, the view nearest to AP.
    PerpendicularAp,
    /// Needle at full length, perpendicular to the AP-like one.
    PerpendicularLateral,
    /// Anterior neck wall edge-on beside the needle.
    AnteriorWall,
    /// Posterosuperior neck wall (retinacular vessels) edge-on beside the needle.
    PosterosuperiorWall,
}

impl CheckViewKind {
    /// The snake_case name written in plan files.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CheckViewKind::PerpendicularAp => "perpendicular_ap",
            CheckViewKind::PerpendicularLateral => "perpendicular_lateral",
            CheckViewKind::AnteriorWall => "anterior_wall",
            CheckViewKind::PosterosuperiorWall => "posterosuperior_wall",
        }
    }
}

/// One C-arm position for checking a trajectory.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CheckView {
    /// What the view shows.
    pub kind: CheckViewKind,
    /// Unit vector from the isocentre towards the detector (world).
    pub detector_direction: Unit<Vector3<f64>>,
    /// DICOM positioner primary angle, radians (+ LAO).
    pub primary_rad: f64,
    /// DICOM positioner secondary angle, radians (+ CRA).
    pub secondary_rad: f64,
    /// For a wall view: the wall point seen edge-on, world mm.
    pub wall_point_mm: Option<Point3<f64>>,
    /// For a wall view: the gap from the needle's surface to that wall
    /// along the wall's direction, mm (axis-to-wall distance minus radius).
    pub wall_clearance_mm: Option<f64>,
}

fn view(kind: CheckViewKind, v: Vector3<f64>, wall: Option<(Point3<f64>, f64)>) -> CheckView {
    let u = Unit::new_normalize(v);
    let (p, s) = angles_for_detector_direction(&u);
    CheckView {
        kind,
        detector_direction: u,
        primary_rad: p,
        secondary_rad: s,
        wall_point_mm: wall.map(|w| w.0),
        wall_clearance_mm: wall.map(|w| w.1),
    }
}

/// The check views of the trajectory `entry_mm -> tip_mm` (module docs):
/// the two perpendicular views, then the wall views that exist (a wall is
/// left out when no ray within [`WALL_SEARCH_MM`] meets it).
///
/// # Example
/// ```
/// use avnplan::geometry::{BoneSurface, TriMesh};
/// use avnplan::guidance::{check_views, CheckViewKind};
/// use avnplan::{Constraints, Side};
/// use nalgebra::{Point3, Vector3};
/// let v: Vec<Point3<f64>> = (0..8)
///     .map(|i| Point3::new((i & 1) as f64 * 80.0, ((i >> 1) & 1) as f64 * 20.0, ((i >> 2) & 1) as f64 * 20.0))
///     .collect();
/// let t = vec![[0, 2, 1], [1, 2, 3], [4, 5, 6], [5, 7, 6], [0, 1, 4], [1, 5, 4],
///              [2, 6, 3], [3, 6, 7], [0, 4, 2], [2, 4, 6], [1, 3, 5], [3, 7, 5]];
/// let bone = BoneSurface::new(TriMesh::new(v, t)?)?;
/// let views = check_views(&bone, Side::Right, &Constraints::default(),
///     &Point3::new(0.0, 10.0, 10.0), &Point3::new(60.0, 10.0, 10.0));
/// let ant = views.iter().find(|v| v.kind == CheckViewKind::AnteriorWall).unwrap();
/// // The anterior face y = 0 is 10 mm from the axis: gap 10 - 1.6 mm.
/// approx::assert_relative_eq!(ant.wall_clearance_mm.unwrap(), 8.4, epsilon = 1e-9);
/// // Its beam runs along z, tangent to that face and across the needle.
/// approx::assert_relative_eq!(ant.detector_direction.z.abs(), 1.0, epsilon = 1e-9);
/// # Ok::<(), avnplan::Error>(())
/// ```
#[must_use]
pub fn check_views(
    bone: &BoneSurface,
    side: Side,
    constraints: &Constraints,
    entry_mm: &Point3<f64>,
    tip_mm: &Point3<f64>,
) -> Vec<CheckView> {
    let axis = tip_mm - entry_mm;
    let len = axis.norm();
    let Some(d) = axis.try_normalize(1e-9) else {
        return Vec::new();
    };
    if !len.is_finite() {
        return Vec::new();
    }
    let lateral_x = match side {
        Side::Right => -1.0,
        Side::Left => 1.0,
    };
    let mut out = Vec::new();
    let ap = Vector3::new(0.0, -1.0, 0.0);
    let v1 = ap - d * ap.dot(&d);
    let v1 = v1.try_normalize(1e-9).unwrap_or_else(|| {
        // The needle runs along the AP beam: take the view from lateral.
        Vector3::new(lateral_x, 0.0, 0.0)
    });
    out.push(view(CheckViewKind::PerpendicularAp, v1, None));
    let mut v2 = d.cross(&v1);
    if v2.x * lateral_x < 0.0 {
        v2 = -v2;
    }
    out.push(view(CheckViewKind::PerpendicularLateral, v2, None));

    let r = constraints.needle_radius_mm();
    let start = constraints.entry_allowance_mm.min(len);
    let walls = [
        (CheckViewKind::AnteriorWall, Vector3::new(0.0, -1.0, 0.0)),
        (
            CheckViewKind::PosterosuperiorWall,
            Vector3::new(0.0, 1.0, 1.0) / 2f64.sqrt(),
        ),
    ];
    for (kind, wdir) in walls {
        let Some(w) = (wdir - d * wdir.dot(&d)).try_normalize(1e-9) else {
            continue;
        };
        let w = Unit::new_unchecked(w);
        let n = (((len - start) / WALL_STEP_MM).ceil() as usize).clamp(1, 100_000);
        let mut best: Option<(f64, Point3<f64>, Vector3<f64>)> = None;
        for k in 0..=n {
            let s = start + (len - start) * k as f64 / n as f64;
            let q = entry_mm + d * s;
            if let Some(h) = bone.first_hit(&q, &w, WALL_SEARCH_MM) {
                if best.as_ref().is_none_or(|b| h.t_mm < b.0) {
                    best = Some((h.t_mm, h.point, h.normal.into_inner()));
                }
            }
        }
        let Some((t, p, normal)) = best else {
            continue;
        };
        let Some(mut beam) = d.cross(&normal).try_normalize(1e-9) else {
            continue;
        };
        // Detector anterior when the beam has a clear AP component, else lateral.
        if beam.y.abs() > 0.2 {
            if beam.y > 0.0 {
                beam = -beam;
            }
        } else if beam.x * lateral_x < 0.0 {
            beam = -beam;
        }
        out.push(view(kind, beam, Some((p, t - r))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::detector_direction;
    use approx::assert_relative_eq;

    #[test]
    fn views_are_perpendicular_to_the_needle_and_tangent_to_the_wall() {
        let bone = crate::geometry::BoneSurface::new(
            crate::geometry::TriMesh::cuboid(Point3::origin(), Point3::new(80.0, 20.0, 20.0))
                .unwrap(),
        )
        .unwrap();
        let e = Point3::new(0.0, 8.0, 9.0);
        let t = Point3::new(70.0, 11.0, 13.0);
        let d = (t - e).normalize();
        let views = check_views(&bone, Side::Left, &Constraints::default(), &e, &t);
        assert_eq!(views.len(), 4);
        for v in &views {
            assert_relative_eq!(v.detector_direction.dot(&d), 0.0, epsilon = 1e-9);
            // Angles round-trip through the DICOM convention.
            let back = detector_direction(v.primary_rad, v.secondary_rad);
            assert_relative_eq!(
                back.into_inner(),
                v.detector_direction.into_inner(),
                epsilon = 1e-9
            );
        }
        for v in views.iter().filter(|v| v.wall_point_mm.is_some()) {
            let p = v.wall_point_mm.unwrap();
            let sp = bone.closest_point(&p);
            assert!(sp.distance_mm < 1e-9);
            // Tangent: the beam is perpendicular to the wall's normal.
            assert_relative_eq!(v.detector_direction.dot(&sp.normal), 0.0, epsilon = 1e-9);
        }
        // Perpendicular views are perpendicular to each other.
        assert_relative_eq!(
            views[0]
                .detector_direction
                .dot(&views[1].detector_direction),
            0.0,
            epsilon = 1e-9
        );
    }
}
