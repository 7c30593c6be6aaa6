//! Pictures: one overlay per C-arm view (SVG and PNG) and a 3D view.
//!
//! Entry points:
//!
//! * [`silhouette_mask`] and [`contours`] — a mesh's binary silhouette in
//!   one view and its outlines (marching squares + Douglas–Peucker);
//! * [`Overlay`] — a layered picture of one view (background radiograph,
//!   polylines, markers, needles, labels, legend, scale bar) written by
//!   [`Overlay::to_svg`] or [`Overlay::to_png`];
//! * [`view_overlay`] — the standard overlay of a [`crate::imaging::View`]
//!   with the bone, lesion and planned needles ([`NeedleDraw`]);
//! * [`scene_svg`] — an orthographic, Lambert-shaded 3D view with needles,
//!   spheres and ellipsoids ([`Scene3dItem`]); [`write_obj_scene`] — the
//!   same bone and needle cylinders as a Wavefront OBJ file.
//!
//! # Conventions
//! Pixel coordinates are the crate's (`u` right, `v` down, `(0, 0)` the
//! *centre* of the top-left pixel): in SVG the `viewBox` is
//! `-0.5 -0.5 W H` and a background image sits at `(-0.5, -0.5)`. Output is
//! deterministic: the same input gives byte-identical files. Odd input
//! (empty meshes, points behind the source, NaN) is skipped, never drawn and
//! never a panic.
//!
//! This module takes plans as plain data (points, widths, labels): it does
//! not depend on the planner.

mod canvas;
mod overlay;
mod scene;
mod silhouette;
mod style;
mod view;

pub use canvas::{base64, GrayImage, MAX_PICTURE_PIXELS};
pub use overlay::{LegendSwatch, Overlay, NEEDLE_BAND_OPACITY};
pub use scene::{scene_svg, write_obj_scene, obj_scene, Scene3dItem};
pub use silhouette::{
    contours, polygon_area, silhouette_mask, simplify_closed, simplify_open, Mask,
    CONTOUR_TOLERANCE_PX, MAX_RASTER_SIDE_PX,
};
pub use style::{Colour, Marker, Style};
pub use view::{nice_scale_length_mm, view_overlay, NeedleDraw};
