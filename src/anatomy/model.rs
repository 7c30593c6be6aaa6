//! The hip model the planner works on.

use crate::anatomy::{Axis, Lesion};
use nalgebra::Point3;

use crate::case::Side;
use crate::geometry::{BoneSurface, Sphere};

/// Where the bone surface came from (the plan file's `model.bone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BoneSource {
    /// A CT/MRI surface mesh given in the world frame.
    Mesh,
    /// A conservative surface reconstructed from the views' silhouettes.
    Reconstructed,
}

impl BoneSource {
    /// The name written in the plan file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            BoneSource::Mesh => "mesh",
            BoneSource::Reconstructed => "reconstructed",
        }
    }
}

/// Everything the planner needs to know about one hip, world frame, mm.
#[derive(Debug)]
#[non_exhaustive]
pub struct HipModel {
    /// Which femur.
    pub side: Side,
    /// The outer (periosteal) surface the safety rules are checked against.
    pub bone: BoneSurface,
    /// Where [`HipModel::bone`] came from.
    pub bone_source: BoneSource,
    /// The femoral head sphere.
    pub head: Sphere,
    /// The neck axis through the head centre, directed from the neck into the head.
    pub neck_axis: Option<Axis>,
    /// The shaft axis, directed distal to proximal.
    pub shaft_axis: Option<Axis>,
    /// Level of the lesser trochanter along `shaft_axis`, mm from
    /// `shaft_axis.point` (entries below it are never used).
    pub lesser_trochanter_level_mm: Option<f64>,
    /// The target.
    pub lesion: Lesion,
    /// The entry point annotated on the lateral cortex (`entry_px`,
    /// triangulated), world mm, when the bone is reconstructed from views
    /// that give it. The default entry zone of a reconstructed bone is
    /// centred there (see
    /// [`crate::planning::EntryZoneRule::AnnotatedEntryPoint`]).
    pub entry_landmark_mm: Option<Point3<f64>>,
    /// Extra distance added to the clearance and tip-depth rules for the
    /// model's own uncertainty, mm (0 for a mesh given in the world frame).
    pub margin_mm: f64,
}

impl HipModel {
    /// A model on a given bone surface with the minimum of anatomy.
    #[must_use]
    pub fn new(
        side: Side,
        bone: BoneSurface,
        bone_source: BoneSource,
        head: Sphere,
        lesion: Lesion,
    ) -> Self {
        Self {
            side,
            bone,
            bone_source,
            head,
            neck_axis: None,
            shaft_axis: None,
            lesser_trochanter_level_mm: None,
            lesion,
            entry_landmark_mm: None,
            margin_mm: 0.0,
        }
    }

    /// The shaft axis and the level below which no entry may lie, when both
    /// are known.
    #[must_use]
    pub fn lesser_trochanter_limit(&self) -> Option<(Axis, f64)> {
        Some((self.shaft_axis?, self.lesser_trochanter_level_mm?))
    }
}
