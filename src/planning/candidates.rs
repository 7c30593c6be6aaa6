//! Candidate entries on the lateral cortex and candidate tips in the lesion.
//!
//! **Entries.** The entry zone is a sphere (the case's `entry_zone`, or the
//! default of [`default_entry_zone`]). Entries are found by casting rays
//! towards the bone along `-m`, where `m` is the outward surface normal at
//! the zone's centre, from a square grid of spacing `entry_spacing_mm` in the
//! plane perpendicular to `m`; the first hit is kept when it lies inside the
//! zone sphere, faces outwards (`n . m > 0`) and, when the lesser trochanter
//! is known, is not below its level. The grid spacing bounds how far any
//! point of the zone's visible surface is from a sampled entry (half the
//! grid diagonal, in projection).
//!
//! **Tips.** Points of the lesion on a cubic grid of spacing
//! `tip_spacing_mm` (see [`crate::anatomy::Lesion::grid_points`]), each
//! checked once against rules 3 and 6.

use nalgebra::{Point3, Unit, Vector3};

use super::evaluate::Entry;
use crate::anatomy::{BoneSource, HipModel};
use crate::geometry::Sphere;

/// How the entry zone was placed (written to the plan as `entry_zone_rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryZoneRule {
    /// Given by the case's `entry_zone`.
    Case,
    /// The default: centred where the neck axis, extended laterally from the
    /// head centre, leaves the lateral cortex (domain.md §7: lateral cortex,
    /// proximal to the lesser trochanter, along the neck).
    NeckAxisExtension,
    /// The neck axis extension left the bone below the level of the lesser
    /// trochanter, or not through the lateral cortex (a short reconstructed
    /// femur): the zone is centred on the lateral cortex, found by a ray
    /// cast laterally from the shaft axis at the higher of that exit's level
    /// and half a zone radius above the lesser trochanter (domain.md §7:
    /// never distal to the lesser trochanter).
    LateralCortexAboveLesserTrochanter,
    /// A bone reconstructed from the views, with the entry point annotated
    /// on the lateral cortex (`entry_px`): the zone is centred on the
    /// reconstructed surface next to that point, with the smaller radius
    /// [`ANNOTATED_ENTRY_ZONE_RADIUS_MM`]. Away from the annotated point
    /// the reconstructed trochanteric body lies deep inside the true bone
    /// (it only has to reach the entry), so an entry there would leave an
    /// unmodelled stretch of bone before the needle reaches it (measured
    /// 10-15 mm on phantoms with the plain neck-axis zone).
    AnnotatedEntryPoint,
}

impl EntryZoneRule {
    /// The name written to the plan file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EntryZoneRule::Case => "case_entry_zone",
            EntryZoneRule::NeckAxisExtension => {
                "neck_axis_extension_on_lateral_cortex_above_lesser_trochanter"
            }
            EntryZoneRule::LateralCortexAboveLesserTrochanter => {
                "lateral_cortex_from_shaft_axis_raised_above_lesser_trochanter"
            }
            EntryZoneRule::AnnotatedEntryPoint => "annotated_entry_point_on_reconstructed_bone",
        }
    }
}

/// The sphere entries are drawn from, and why it is there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntryZone {
    /// The zone, world mm.
    pub sphere: Sphere,
    /// Which rule placed it.
    pub rule: EntryZoneRule,
}

/// Default entry-zone radius, mm (the contract's example `radius_mm`).
pub const DEFAULT_ENTRY_ZONE_RADIUS_MM: f64 = 15.0;

/// Radius of the default entry zone around an annotated entry point on a
/// reconstructed bone, mm ([`EntryZoneRule::AnnotatedEntryPoint`]). On the
/// reconstructed trochanteric body's tip sphere (radius
/// [`crate::reconstruction::LATERAL_TIP_RADIUS_MM`] = 6 mm, touching the
/// annotated point from inside) a point 5 mm from the pole lies
/// 5² / (2 · 6) ≈ 2.1 mm below the tangent plane, so every entry is within
/// about 2 mm plus the model's inward margin of the true lateral cortex
/// (for a flat cortex; an entry is never farther than this radius plus the
/// landmark's error from the annotated point in any case).
pub const ANNOTATED_ENTRY_ZONE_RADIUS_MM: f64 = 5.0;

/// Smallest cosine between the outward normal at the neck-axis exit and the
/// lateral direction for the exit to count as lying on the lateral cortex
/// (60 degrees).
pub const LATERAL_COS_MIN: f64 = 0.5;

/// The default entry zone. On a bone reconstructed from views with an
/// annotated entry point: around that point
/// ([`EntryZoneRule::AnnotatedEntryPoint`]). Otherwise a sphere of [`DEFAULT_ENTRY_ZONE_RADIUS_MM`]
/// centred where the neck axis, followed from the head centre away from the
/// head, leaves the bone ([`EntryZoneRule::NeckAxisExtension`]).
///
/// When the shaft axis is known and that exit lies below the level of the
/// lesser trochanter, or its outward normal is more than 60 degrees from
/// the lateral direction (the neck axis leaving through the cut end of a
/// short reconstructed femur), the zone is instead centred where a ray from
/// the shaft axis, cast along the lateral direction (the neck direction
/// made perpendicular to the shaft), leaves the bone, at the higher of the
/// exit's level and half a zone radius above the lesser trochanter
/// ([`EntryZoneRule::LateralCortexAboveLesserTrochanter`]). Entries below
/// the lesser trochanter are dropped in any case ([`sample_entries`]).
///
/// `None` when the model has no neck axis or no such exit exists.
#[must_use]
pub fn default_entry_zone(model: &HipModel) -> Option<EntryZone> {
    if let (BoneSource::Reconstructed, Some(e)) = (model.bone_source, model.entry_landmark_mm) {
        let c = model.bone.closest_point(&e);
        if c.distance_mm.is_finite() {
            return Some(EntryZone {
                sphere: Sphere {
                    center: c.point,
                    radius_mm: ANNOTATED_ENTRY_ZONE_RADIUS_MM,
                },
                rule: EntryZoneRule::AnnotatedEntryPoint,
            });
        }
    }
    let neck = model.neck_axis.as_ref()?;
    let dir = Unit::new_unchecked(-neck.direction.into_inner());
    let start = model.head.center;
    let hit = model.bone.first_hit(&start, &dir, 400.0);
    let zone = |center: Point3<f64>, rule| EntryZone {
        sphere: Sphere {
            center,
            radius_mm: DEFAULT_ENTRY_ZONE_RADIUS_MM,
        },
        rule,
    };
    let Some(shaft) = model.shaft_axis.as_ref() else {
        return hit.map(|h| zone(h.point, EntryZoneRule::NeckAxisExtension));
    };
    let up = shaft.direction.into_inner();
    let lateral = (dir.into_inner() - up * dir.dot(&up)).try_normalize(1e-9)?;
    let height = |p: &Point3<f64>| (p - shaft.point).dot(&up);
    let floor = model
        .lesser_trochanter_level_mm
        .map(|l| l + 0.5 * DEFAULT_ENTRY_ZONE_RADIUS_MM);
    if let Some(h) = &hit {
        let above = floor.is_none_or(|f| height(&h.point) >= f);
        if above && h.normal.dot(&lateral) >= LATERAL_COS_MIN {
            return Some(zone(h.point, EntryZoneRule::NeckAxisExtension));
        }
    }
    let mut level = hit.map(|h| height(&h.point)).unwrap_or(f64::NEG_INFINITY);
    if let Some(f) = floor {
        level = level.max(f);
    }
    if !level.is_finite() {
        return None;
    }
    let from = shaft.point + up * level;
    if !model.bone.contains(&from) {
        return hit.map(|h| zone(h.point, EntryZoneRule::NeckAxisExtension));
    }
    let out = model
        .bone
        .first_hit(&from, &Unit::new_unchecked(lateral), 400.0)?;
    Some(zone(
        out.point,
        EntryZoneRule::LateralCortexAboveLesserTrochanter,
    ))
}

/// Entries sampled in `zone` (see the module docs), in a deterministic
/// order, with the number of surface points dropped for lying below the
/// lesser trochanter.
#[must_use]
pub fn sample_entries(model: &HipModel, zone: &Sphere, spacing_mm: f64) -> (Vec<Entry>, usize) {
    let mut out = Vec::new();
    let mut below_lt = 0;
    let cp = model.bone.closest_point(&zone.center);
    let m = if cp.distance_mm > 1e-9 && !model.bone.contains(&zone.center) {
        Unit::new_normalize(zone.center - cp.point)
    } else {
        cp.normal
    };
    let m = if m.into_inner().iter().all(|v| v.is_finite()) {
        m
    } else {
        return (out, 0);
    };
    let helper = if m.x.abs() < 0.9 {
        Vector3::x()
    } else {
        Vector3::y()
    };
    let p = Unit::new_normalize(m.cross(&helper));
    let q = Unit::new_normalize(m.cross(&p));
    let r = zone.radius_mm;
    let n = (r / spacing_mm).floor() as i64;
    let back = Unit::new_unchecked(-m.into_inner());
    let lift = r + 30.0;
    let lt = model.lesser_trochanter_limit();
    // Only rays whose line passes within the bone's bounding sphere (plus
    // 1 mm) can hit it: cast no others. The result is unchanged, but a zone
    // much larger than the bone costs rays over the bone only.
    let (lo, hi) = model.bone.bounds_mm();
    let cb = nalgebra::center(&lo, &hi);
    let rb = 0.5 * (hi - lo).norm() + 1.0;
    let span = |axis: &Unit<Vector3<f64>>| -> (i64, i64) {
        let c = (cb - zone.center).dot(axis);
        let (a, b) = ((c - rb) / spacing_mm, (c + rb) / spacing_mm);
        if a.is_finite() && b.is_finite() {
            ((a.ceil() as i64).max(-n), (b.floor() as i64).min(n))
        } else {
            (-n, n)
        }
    };
    let (i_span, j_span) = (span(&p), span(&q));
    for i in i_span.0..=i_span.1 {
        for j in j_span.0..=j_span.1 {
            let a = i as f64 * spacing_mm;
            let b = j as f64 * spacing_mm;
            if a * a + b * b > r * r {
                continue;
            }
            let origin =
                zone.center + p.into_inner() * a + q.into_inner() * b + m.into_inner() * lift;
            let Some(hit) = model.bone.first_hit(&origin, &back, lift + 2.0 * r + 30.0) else {
                continue;
            };
            if (hit.point - zone.center).norm() > r || hit.normal.dot(&m) <= 0.0 {
                continue;
            }
            if let Some((axis, level)) = &lt {
                if (hit.point - axis.point).dot(&axis.direction) < *level {
                    below_lt += 1;
                    continue;
                }
            }
            out.push(Entry {
                point: hit.point,
                normal: hit.normal,
            });
        }
    }
    (out, below_lt)
}

/// Grid points of the lesion at `spacing_mm`, deterministic order.
#[must_use]
pub fn sample_tips(model: &HipModel, spacing_mm: f64) -> Vec<Point3<f64>> {
    let mut out = Vec::new();
    model.lesion.grid_points(spacing_mm, &mut out);
    out
}
