//! The standard overlay of one C-arm view: radiograph, bone silhouette,
//! annotations, lesion, planned needles, legend and scale bar.

use nalgebra::Point2;

use crate::geometry::TriMesh;
use crate::imaging::View;

use super::canvas::GrayImage;
use super::overlay::{LegendSwatch, Overlay};
use super::silhouette::{contours, silhouette_mask};
use super::style::{Colour, Marker, Style};

/// A planned needle as seen in one view, pixels (plain data, so pictures do
/// not depend on the planner).
#[derive(Debug, Clone, PartialEq)]
pub struct NeedleDraw {
    /// Projected entry point (skin or cortex entry), px.
    pub entry_px: Point2<f64>,
    /// Projected tip, px.
    pub tip_px: Point2<f64>,
    /// Projected needle diameter, px (e.g. the 11G outer diameter of about
    /// 3.05 mm, domain.md, times the magnification over the pixel spacing).
    pub width_px: f64,
    /// Label, e.g. `"N1"`.
    pub label: String,
    /// Colour (see [`Colour::NEEDLES`]).
    pub colour: Colour,
}

/// A round scale-bar length, mm: the largest of 1, 2, 5, 10, 20, 50, 100,
/// 200 mm whose bar is at most a quarter of `width_px` at `mm_per_px`
/// (1 mm when even that is longer; 10 mm for invalid input).
#[must_use]
pub fn nice_scale_length_mm(mm_per_px: f64, width_px: u32) -> f64 {
    const STEPS: [f64; 8] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0];
    if !(mm_per_px.is_finite() && mm_per_px > 0.0) {
        return 10.0;
    }
    let max_px = 0.25 * f64::from(width_px);
    STEPS
        .iter()
        .rev()
        .copied()
        .find(|l| l / mm_per_px <= max_px)
        .unwrap_or(1.0)
}

/// The standard picture of one view.
///
/// Layers, bottom to top: the radiograph `background` (if any); the
/// silhouette contours of `bone` projected by the view (light yellow); the
/// view's annotations (head outline points as crosses, neck and shaft edges
/// dashed, the annotated lesion outline dashed, the preferred entry as a
/// green circle; cyan/orange/green); the model's lesion outline
/// `lesion_outline_px` (filled orange-red); each needle (band of its
/// projected width, axis line, entry circle, tip dot, label); then a legend
/// listing the layers present, a scale bar sized by
/// [`nice_scale_length_mm`] for `mm_per_px_at_iso` (the pixel spacing at
/// the isocentre, mm per px; no bar when it is not finite and > 0) and the
/// view name as title.
///
/// Non-finite points are skipped; a mesh behind the source draws nothing.
///
/// # Example
/// ```
/// use avnplan::imaging::{Projection, View};
/// use avnplan::render::{view_overlay, Colour, NeedleDraw};
/// use nalgebra::{Point2, Point3, Vector3};
/// let p = Projection::from_geometry(
///     &Point3::new(0.0, 0.0, 600.0), &Point3::new(-76.8, -76.8, -400.0),
///     &Vector3::new(0.3, 0.0, 0.0), &Vector3::new(0.0, 0.3, 0.0),
/// ).unwrap();
/// let view = View::new("AP", [512, 512], p);
/// let needle = NeedleDraw {
///     entry_px: Point2::new(400.0, 420.0), tip_px: Point2::new(250.0, 240.0),
///     width_px: 17.0, label: "N1".into(), colour: Colour::NEEDLES[0],
/// };
/// let o = view_overlay(&view, None, None, &[needle], None, 0.18);
/// let svg = o.to_svg();
/// assert!(svg.contains("N1") && svg.contains("20 mm"));
/// # approx::assert_relative_eq!(o.size_px()[0] as f64, 512.0);
/// ```
#[must_use]
pub fn view_overlay(
    view: &View,
    bone: Option<&TriMesh>,
    lesion_outline_px: Option<&[Point2<f64>]>,
    needles: &[NeedleDraw],
    background: Option<&GrayImage>,
    mm_per_px_at_iso: f64,
) -> Overlay {
    let size = view.image_size_px;
    let mut o = Overlay::new(size).title(&view.name);
    let f = o.font_px();
    if let Some(img) = background {
        o = o.background(img.clone());
    }
    if let Some(mesh) = bone {
        let mask = silhouette_mask(mesh, &view.projection, size);
        let outlines = contours(&mask);
        if !outlines.is_empty() {
            for c in &outlines {
                o = o.polygon(c, Style::stroke(Colour::BONE, 1.5));
            }
            o = o.legend_entry("bone (model)", Colour::BONE, LegendSwatch::Line);
        }
    }
    let ann = &view.annotations;
    let mut annotated = false;
    for p in &ann.head_outline_px {
        o = o.marker(*p, Marker::Cross, 0.7 * f, Colour::ANNOTATION, None);
        annotated = true;
    }
    for edges in [&ann.neck_edges_px, &ann.shaft_edges_px].into_iter().flatten() {
        for e in edges {
            o = o.polyline(e, Style::stroke(Colour::ANNOTATION, 1.5).dashed(6.0, 4.0));
            annotated |= !e.is_empty();
        }
    }
    if annotated {
        o = o.legend_entry("annotations", Colour::ANNOTATION, LegendSwatch::Dashed);
    }
    if ann.lesion_outline_px.len() >= 2 {
        o = o.polygon(
            &ann.lesion_outline_px,
            Style::stroke(Colour::LESION, 1.5).dashed(4.0, 3.0),
        );
        o = o.legend_entry("lesion (annotated)", Colour::LESION, LegendSwatch::Dashed);
    }
    if let Some(l) = lesion_outline_px.filter(|l| l.len() >= 3) {
        o = o.polygon(
            l,
            Style::stroke(Colour::LESION, 2.0).filled(Colour::LESION, 0.3),
        );
        o = o.legend_entry("lesion (model)", Colour::LESION, LegendSwatch::Line);
    }
    if let Some(e) = ann.entry_px {
        o = o.marker(e, Marker::Circle, 1.4 * f, Colour::ENTRY, None);
        o = o.legend_entry(
            "preferred entry",
            Colour::ENTRY,
            LegendSwatch::Marker(Marker::Circle),
        );
    }
    for n in needles {
        o = o
            .needle(n.entry_px, n.tip_px, n.width_px, n.colour, Some(&n.label))
            .marker(n.entry_px, Marker::Circle, (n.width_px + 6.0).max(0.8 * f), n.colour, None)
            .marker(n.tip_px, Marker::Dot, (0.6 * n.width_px).max(0.5 * f), n.colour, None);
    }
    for n in needles {
        o = o.legend_entry(&format!("needle {}", n.label), n.colour, LegendSwatch::Band);
    }
    if mm_per_px_at_iso.is_finite() && mm_per_px_at_iso > 0.0 {
        o = o.scale_bar(mm_per_px_at_iso, nice_scale_length_mm(mm_per_px_at_iso, size[0]));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_lengths() {
        assert_eq!(nice_scale_length_mm(0.2, 1000), 50.0); // 250 px
        assert_eq!(nice_scale_length_mm(0.3, 100), 5.0); // 16.7 px <= 25
        assert_eq!(nice_scale_length_mm(10.0, 10), 1.0);
        assert_eq!(nice_scale_length_mm(f64::NAN, 10), 10.0);
    }
}
