//! A named view: its projection, image size and 2D annotations.

use nalgebra::Point2;

use super::Projection;

/// Points annotated on one view, pixels (contract `annotations`).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Annotations {
    /// Points on the femoral head silhouette (>= 5 when given).
    pub head_outline_px: Vec<Point2<f64>>,
    /// The two silhouette edges of the neck, each a polyline.
    pub neck_edges_px: Option<[Vec<Point2<f64>>; 2]>,
    /// The two cortex silhouettes of the shaft, each a polyline.
    pub shaft_edges_px: Option<[Vec<Point2<f64>>; 2]>,
    /// Closed polygon around the lesion.
    pub lesion_outline_px: Vec<Point2<f64>>,
    /// Preferred entry point as seen in this view.
    pub entry_px: Option<Point2<f64>>,
}

/// One calibrated C-arm view.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct View {
    /// Unique, non-empty name (at most 64 characters), e.g. `"AP"`.
    pub name: String,
    /// Image width and height, pixels.
    pub image_size_px: [u32; 2],
    /// The projection (already corrected for distortion: annotations are
    /// dewarped before they reach a [`View`]).
    pub projection: Projection,
    /// The 2D annotations, in undistorted pixels.
    pub annotations: Annotations,
}

impl View {
    /// A view with no annotations.
    #[must_use]
    pub fn new(name: impl Into<String>, image_size_px: [u32; 2], projection: Projection) -> Self {
        Self {
            name: name.into(),
            image_size_px,
            projection,
            annotations: Annotations::default(),
        }
    }
}
