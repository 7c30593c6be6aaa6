//! A 3D view of the bone, needles and zones: orthographic SVG with a
//! shaded raster of the mesh, and an OBJ scene for 3D viewers.
//!
//! Camera: looking along `view_dir` with `up` towards the top of the
//! picture. With `f = view_dir`, `r = normalize(f x up)` (screen right) and
//! `d = r x f` negated... precisely: screen right `r = f x up` normalised,
//! screen up `u' = r x f`, screen down `-u'`. A world point `p` maps to
//!
//! ```text
//!   x = cx + s (p - c) . r        y = cy - s (p - c) . u'       depth = (p - c) . f
//! ```
//!
//! with `c` the centre of the scene's extent, `(cx, cy)` the picture centre
//! and `s` (px per mm) fitting everything with a 5 % margin.
//!
//! The mesh is scan-converted with a depth buffer (so it needs no
//! triangle cap and no sorting) and Lambert-shaded with a head light,
//! two-sided (inconsistently oriented meshes still look right), then
//! embedded as an RGBA PNG. Needles are drawn on top, solid where they are
//! in front of the bone surface and dashed where the bone hides them.

use std::fmt::Write as _;
use std::path::Path;

use nalgebra::{Matrix2, Matrix2x3, Point2, Point3, Unit, Vector3};

use crate::error::{Error, Result};
use crate::geometry::{Ellipsoid, TriMesh};

use super::canvas::{base64, encode_png};
use super::overlay::{num, xml_escape};
use super::style::Colour;

/// Something drawn in the 3D view besides the mesh (world mm).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Scene3dItem {
    /// A needle or any straight segment from `a` (entry) to `b` (tip) of
    /// radius `radius_mm` (drawn at least 1.5 px wide).
    Segment {
        /// Start (entry), world mm.
        a: Point3<f64>,
        /// End (tip), world mm.
        b: Point3<f64>,
        /// Radius, mm.
        radius_mm: f64,
        /// Colour.
        colour: Colour,
        /// Label written beside `a`.
        label: Option<String>,
    },
    /// A sphere (femoral head, forbidden zone), drawn as its outline circle.
    Sphere {
        /// Centre, world mm.
        center: Point3<f64>,
        /// Radius, mm.
        radius_mm: f64,
        /// Colour.
        colour: Colour,
        /// Label.
        label: Option<String>,
    },
    /// An ellipsoid (lesion), drawn as its projected outline ellipse, filled.
    Ellipsoid {
        /// The ellipsoid, world mm.
        ellipsoid: Ellipsoid,
        /// Colour.
        colour: Colour,
        /// Label.
        label: Option<String>,
    },
    /// A point (entry, target), drawn as a dot.
    Point {
        /// Position, world mm.
        at: Point3<f64>,
        /// Colour.
        colour: Colour,
        /// Label.
        label: Option<String>,
    },
}

/// Orthographic camera (see the module docs).
#[derive(Debug, Clone, Copy)]
struct Camera {
    r: Vector3<f64>,
    up: Vector3<f64>,
    f: Vector3<f64>,
    c: Point3<f64>,
    s: f64,
    cx: f64,
    cy: f64,
}

impl Camera {
    fn screen(&self, p: &Point3<f64>) -> (Point2<f64>, f64) {
        let q = p - self.c;
        (
            Point2::new(self.cx + self.s * q.dot(&self.r), self.cy - self.s * q.dot(&self.up)),
            q.dot(&self.f),
        )
    }
}

fn finite3(p: &Point3<f64>) -> bool {
    p.x.is_finite() && p.y.is_finite() && p.z.is_finite()
}

/// Screen basis `(r, u', f)` for a view direction and up hint; a degenerate
/// up (parallel or not finite) is replaced by the world axis least aligned
/// with `view_dir`.
fn basis(view_dir: &Vector3<f64>, up: &Vector3<f64>) -> Option<[Vector3<f64>; 3]> {
    let f = view_dir.try_normalize(1e-12)?;
    if !(f.x.is_finite() && f.y.is_finite() && f.z.is_finite()) {
        return None;
    }
    let mut r = f.cross(up);
    if !(r.norm() > 1e-6 * up.norm().max(1e-300)) || !r.iter().all(|x| x.is_finite()) {
        let axis = (0..3)
            .min_by(|&a, &b| f[a].abs().total_cmp(&f[b].abs()))
            .unwrap_or(2);
        r = f.cross(&Vector3::ith(axis, 1.0));
    }
    let r = r.try_normalize(1e-12)?;
    let u = r.cross(&f);
    Some([r, u, f])
}

/// The SVG of an orthographic 3D view: the mesh shaded (Lambert, head
/// light) plus `items`, fitted into `size_px = [width, height]`.
///
/// `view_dir` is the direction the viewer looks along (world); `up` is
/// the world direction shown towards the top of the picture (its component
/// along `view_dir` is ignored; a degenerate `up` is replaced). A small
/// L/P/S axis triad is drawn bottom left (world x, y, z).
///
/// The mesh is rasterised with a depth buffer into an RGBA PNG embedded in
/// the SVG (70 000 triangles render in well under a second); items are
/// vectors on top. Invalid triangles, non-finite points and items with bad
/// sizes are skipped; an empty scene gives a valid, empty picture.
///
/// # Example
/// ```
/// use avnplan::geometry::TriMesh;
/// use avnplan::render::{scene_svg, Colour, Scene3dItem};
/// use nalgebra::{Point3, Vector3};
/// let v = vec![Point3::new(0.0, 0.0, 0.0), Point3::new(10.0, 0.0, 0.0), Point3::new(0.0, 10.0, 0.0)];
/// let mesh = TriMesh::new(v, vec![[0, 1, 2]]).unwrap();
/// let items = [Scene3dItem::Segment {
///     a: Point3::new(0.0, 0.0, 20.0), b: Point3::new(3.0, 3.0, 0.0),
///     radius_mm: 1.5, colour: Colour::NEEDLES[0], label: Some("N1".into()),
/// }];
/// let svg = scene_svg(&mesh, &-Vector3::z_axis(), &Vector3::y(), &items, [300, 200]);
/// assert!(svg.starts_with("<?xml"));
/// # approx::assert_relative_eq!(svg.matches("<svg").count() as f64, 1.0);
/// ```
#[must_use]
pub fn scene_svg(
    mesh: &TriMesh,
    view_dir: &Unit<Vector3<f64>>,
    up: &Vector3<f64>,
    items: &[Scene3dItem],
    size_px: [u32; 2],
) -> String {
    let w = size_px[0].clamp(1, 8192);
    let h = size_px[1].clamp(1, 8192);
    let font = (f64::from(w.min(h)) / 45.0).clamp(9.0, 36.0);
    let mut s = String::new();
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n");
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
         version=\"1.1\" width=\"{w}\" height=\"{h}\" viewBox=\"-0.5 -0.5 {w} {h}\">"
    );
    let _ = writeln!(
        s,
        "<rect x=\"-0.5\" y=\"-0.5\" width=\"{w}\" height=\"{h}\" fill=\"#202428\"/>"
    );
    let Some([r, u, f]) = basis(view_dir, up) else {
        s.push_str("</svg>\n");
        return s;
    };
    // Extent along r, u and f of everything drawn.
    let mut lo = Vector3::repeat(f64::INFINITY);
    let mut hi = Vector3::repeat(f64::NEG_INFINITY);
    let mut grow = |p: &Point3<f64>, pad: f64| {
        if finite3(p) && pad.is_finite() {
            let q = Vector3::new(p.coords.dot(&r), p.coords.dot(&u), p.coords.dot(&f));
            lo = lo.inf(&q.add_scalar(-pad));
            hi = hi.sup(&q.add_scalar(pad));
        }
    };
    let used = used_vertices(mesh);
    for (k, v) in mesh.vertices.iter().enumerate() {
        if used[k] {
            grow(v, 0.0);
        }
    }
    for it in items {
        match it {
            Scene3dItem::Segment {
                a, b, radius_mm, ..
            } => {
                grow(a, radius_mm.abs());
                grow(b, radius_mm.abs());
            }
            Scene3dItem::Sphere {
                center, radius_mm, ..
            } => grow(center, radius_mm.abs()),
            Scene3dItem::Ellipsoid { ellipsoid, .. } => {
                grow(&ellipsoid.center, ellipsoid.semi_axes_mm.max())
            }
            Scene3dItem::Point { at, .. } => grow(at, 0.0),
        }
    }
    if !(lo.x <= hi.x && lo.y <= hi.y) {
        s.push_str("</svg>\n");
        return s;
    }
    let margin = 0.05 * f64::from(w.min(h)) + font;
    let span_x = (hi.x - lo.x).max(1e-6);
    let span_y = (hi.y - lo.y).max(1e-6);
    let scale = ((f64::from(w) - 2.0 * margin) / span_x)
        .min((f64::from(h) - 2.0 * margin) / span_y)
        .max(1e-9);
    let mid = (lo + hi) * 0.5;
    let cam = Camera {
        r,
        up: u,
        f,
        c: Point3::from(r * mid.x + u * mid.y + f * mid.z),
        s: scale,
        cx: (f64::from(w) - 1.0) * 0.5,
        cy: (f64::from(h) - 1.0) * 0.5,
    };

    // Shaded mesh with depth buffer.
    let (rgba, zbuf) = shade_mesh(mesh, &cam, w, h);
    if rgba.chunks_exact(4).any(|p| p[3] > 0) {
        if let Ok(png) = encode_png(w, h, png::ColorType::Rgba, &rgba) {
            let _ = writeln!(
                s,
                "<image x=\"-0.5\" y=\"-0.5\" width=\"{w}\" height=\"{h}\" \
                 preserveAspectRatio=\"none\" xlink:href=\"data:image/png;base64,{}\"/>",
                base64(&png)
            );
        }
    }
    s.push_str(
        "<g fill=\"none\" stroke-linecap=\"round\" stroke-linejoin=\"round\" \
         font-family=\"DejaVu Sans, Arial, sans-serif\">\n",
    );
    // Zones first (translucent), then needles and points on top.
    for it in items {
        match it {
            Scene3dItem::Sphere {
                center,
                radius_mm,
                colour,
                label,
            } if finite3(center) && radius_mm.is_finite() && *radius_mm > 0.0 => {
                let (p, _) = cam.screen(center);
                let c = colour.to_hex();
                let _ = writeln!(
                    s,
                    "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{c}\" fill-opacity=\"0.12\" stroke=\"{c}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>",
                    num(p.x),
                    num(p.y),
                    num(radius_mm * scale)
                );
                if let Some(l) = label {
                    let at = Point2::new(p.x + radius_mm * scale * 0.72, p.y - radius_mm * scale * 0.72);
                    text(&mut s, &at, l, font, *colour);
                }
            }
            Scene3dItem::Ellipsoid {
                ellipsoid,
                colour,
                label,
            } => {
                if let Some(outline) = ellipse_outline(ellipsoid, &cam, 72) {
                    let c = colour.to_hex();
                    let mut pts = String::new();
                    for (k, p) in outline.iter().enumerate() {
                        if k > 0 {
                            pts.push(' ');
                        }
                        let _ = write!(pts, "{},{}", num(p.x), num(p.y));
                    }
                    let _ = writeln!(
                        s,
                        "<polygon points=\"{pts}\" fill=\"{c}\" fill-opacity=\"0.45\" stroke=\"{c}\" stroke-width=\"1.5\"/>"
                    );
                    if let Some(l) = label {
                        let top = outline
                            .iter()
                            .copied()
                            .min_by(|a, b| a.y.total_cmp(&b.y))
                            .unwrap_or(outline[0]);
                        text(&mut s, &Point2::new(top.x + font * 0.5, top.y - font * 0.4), l, font, *colour);
                    }
                }
            }
            _ => {}
        }
    }
    for it in items {
        match it {
            Scene3dItem::Segment {
                a,
                b,
                radius_mm,
                colour,
                label,
            } if finite3(a) && finite3(b) && radius_mm.is_finite() && *radius_mm >= 0.0 => {
                let width = (2.0 * radius_mm * scale).max(1.5);
                for (p, q, visible) in segment_runs(a, b, &cam, &zbuf, w, h) {
                    let c = colour.to_hex();
                    let style = if visible {
                        String::new()
                    } else {
                        format!(
                            " stroke-opacity=\"0.85\" stroke-dasharray=\"{} {}\"",
                            num(width.max(3.0) * 1.5),
                            num(width.max(3.0))
                        )
                    };
                    let _ = writeln!(
                        s,
                        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{c}\" stroke-width=\"{}\" stroke-linecap=\"butt\"{style}/>",
                        num(p.x),
                        num(p.y),
                        num(q.x),
                        num(q.y),
                        num(width)
                    );
                }
                let (pb, _) = cam.screen(b);
                let _ = writeln!(
                    s,
                    "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"#ffffff\" stroke=\"{}\" stroke-width=\"1\"/>",
                    num(pb.x),
                    num(pb.y),
                    num((width * 0.5).max(2.5)),
                    colour.to_hex()
                );
                if let Some(l) = label {
                    let (pa, _) = cam.screen(a);
                    let d = pa - pb;
                    let dir = d.try_normalize(1e-9).unwrap_or(nalgebra::Vector2::x());
                    let at = pa + dir * (font * 0.8);
                    let at = Point2::new(if dir.x < 0.0 { at.x - 1.5 * font } else { at.x }, at.y + 0.4 * font);
                    text(&mut s, &at, l, font, *colour);
                }
            }
            Scene3dItem::Point { at, colour, label } if finite3(at) => {
                let (p, _) = cam.screen(at);
                let _ = writeln!(
                    s,
                    "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\" stroke=\"#000000\" stroke-width=\"1\"/>",
                    num(p.x),
                    num(p.y),
                    num(font * 0.35),
                    colour.to_hex()
                );
                if let Some(l) = label {
                    text(&mut s, &Point2::new(p.x + font * 0.6, p.y - font * 0.4), l, font, *colour);
                }
            }
            _ => {}
        }
    }
    // Axis triad: world x, y, z = patient Left, Posterior, Superior.
    let len = 2.5 * font;
    let o = Point2::new(margin * 0.4 + len, f64::from(h) - 1.0 - margin * 0.4 - len);
    let axes = [
        (Vector3::x(), "L", Colour::rgb(255, 90, 90)),
        (Vector3::y(), "P", Colour::rgb(90, 220, 90)),
        (Vector3::z(), "S", Colour::rgb(100, 150, 255)),
    ];
    for (axis, name, colour) in axes {
        let e = Point2::new(o.x + len * axis.dot(&r), o.y - len * axis.dot(&u));
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"/>",
            num(o.x),
            num(o.y),
            num(e.x),
            num(e.y),
            colour.to_hex()
        );
        if (e - o).norm() > 0.25 * len {
            text(&mut s, &Point2::new(e.x - 0.3 * font, e.y + 0.35 * font), name, font, colour);
        }
    }
    s.push_str("</g>\n</svg>\n");
    s
}

/// Which vertices are referenced by a valid triangle.
fn used_vertices(mesh: &TriMesh) -> Vec<bool> {
    let n = mesh.vertices.len();
    let mut used = vec![false; n];
    for t in &mesh.triangles {
        if t.iter().all(|&i| (i as usize) < n) {
            for &i in t {
                used[i as usize] = true;
            }
        }
    }
    used
}

/// Lambert-shaded RGBA raster of the mesh and its depth buffer (mm along
/// `f`, `+inf` where empty).
fn shade_mesh(mesh: &TriMesh, cam: &Camera, w: u32, h: u32) -> (Vec<u8>, Vec<f64>) {
    let (wu, hu) = (w as usize, h as usize);
    let mut z = vec![f64::INFINITY; wu * hu];
    let mut shade = vec![0.0f32; wu * hu];
    // Head light from slightly above-left of the viewer.
    let light = (-cam.f + 0.35 * cam.up - 0.25 * cam.r).normalize();
    let n = mesh.vertices.len();
    let screen: Vec<(Point2<f64>, f64)> = mesh.vertices.iter().map(|v| cam.screen(v)).collect();
    for t in &mesh.triangles {
        if t.iter().any(|&i| i as usize >= n) {
            continue;
        }
        let [a, b, c] = t.map(|i| mesh.vertices[i as usize]);
        if !(finite3(&a) && finite3(&b) && finite3(&c)) {
            continue;
        }
        let normal = (b - a).cross(&(c - a));
        let Some(nn) = normal.try_normalize(1e-300) else {
            continue;
        };
        let lambert = nn.dot(&light).abs();
        let intensity = (0.22 + 0.78 * lambert) as f32;
        let [(pa, za), (pb, zb), (pc, zc)] = t.map(|i| screen[i as usize]);
        let area = (pb - pa).perp(&(pc - pa));
        if !(area.abs() > 1e-12) {
            continue;
        }
        let xmin = pa.x.min(pb.x).min(pc.x).ceil().max(0.0);
        let xmax = pa.x.max(pb.x).max(pc.x).floor().min(f64::from(w) - 1.0);
        let ymin = pa.y.min(pb.y).min(pc.y).ceil().max(0.0);
        let ymax = pa.y.max(pb.y).max(pc.y).floor().min(f64::from(h) - 1.0);
        if !(xmin <= xmax && ymin <= ymax) {
            continue;
        }
        for j in ymin as usize..=ymax as usize {
            for i in xmin as usize..=xmax as usize {
                let p = Point2::new(i as f64, j as f64);
                let w0 = (pc - pb).perp(&(p - pb)) / area;
                let w1 = (pa - pc).perp(&(p - pc)) / area;
                let w2 = 1.0 - w0 - w1;
                const E: f64 = -1e-9;
                if w0 < E || w1 < E || w2 < E {
                    continue;
                }
                let d = w0 * za + w1 * zb + w2 * zc;
                let k = j * wu + i;
                if d < z[k] {
                    z[k] = d;
                    shade[k] = intensity;
                }
            }
        }
    }
    // Bone colour, darkened slightly with depth for a sense of distance.
    let (zmin, zmax) = z
        .iter()
        .filter(|d| d.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &d| {
            (lo.min(d), hi.max(d))
        });
    let zr = (zmax - zmin).max(1e-9);
    let base = [236.0f32, 226.0, 200.0];
    let mut rgba = vec![0u8; wu * hu * 4];
    for k in 0..wu * hu {
        if z[k].is_finite() {
            let fog = 1.0 - 0.25 * ((z[k] - zmin) / zr) as f32;
            for ch in 0..3 {
                rgba[4 * k + ch] = (base[ch] * shade[k] * fog).round().clamp(0.0, 255.0) as u8;
            }
            rgba[4 * k + 3] = 255;
        }
    }
    (rgba, z)
}

/// Splits a segment into screen runs visible in front of the mesh (`true`)
/// or hidden behind its surface (`false`), by sampling the depth buffer.
fn segment_runs(
    a: &Point3<f64>,
    b: &Point3<f64>,
    cam: &Camera,
    zbuf: &[f64],
    w: u32,
    h: u32,
) -> Vec<(Point2<f64>, Point2<f64>, bool)> {
    let (pa, da) = cam.screen(a);
    let (pb, db) = cam.screen(b);
    let len_px = (pb - pa).norm();
    let n = (len_px / 2.0).ceil().clamp(1.0, 512.0) as usize;
    // Depth tolerance: half a pixel in mm.
    let tol = 0.5 / cam.s;
    let visible_at = |t: f64| {
        let p = pa + (pb - pa) * t;
        let d = da + (db - da) * t;
        let (i, j) = (p.x.round(), p.y.round());
        if i < 0.0 || j < 0.0 || i >= f64::from(w) || j >= f64::from(h) {
            return true;
        }
        d <= zbuf[j as usize * w as usize + i as usize] + tol
    };
    let mut runs = Vec::new();
    let mut start = 0.0;
    let mut state = visible_at(0.0);
    for k in 1..=n {
        let t = k as f64 / n as f64;
        let v = visible_at(t);
        if v != state {
            let tm = (k as f64 - 0.5) / n as f64;
            runs.push((pa + (pb - pa) * start, pa + (pb - pa) * tm, state));
            start = tm;
            state = v;
        }
    }
    runs.push((pa + (pb - pa) * start, pb, state));
    runs
}

/// Outline of an ellipsoid under the orthographic camera: the image of the
/// unit ball under `A = S R D` (`S` the 2x3 screen map) is the ellipse
/// `{ y : y^T (A A^T)^-1 y <= 1 }`, traced as `L [cos t, sin t]` with
/// `L L^T = A A^T` (Cholesky).
fn ellipse_outline(e: &Ellipsoid, cam: &Camera, n: usize) -> Option<Vec<Point2<f64>>> {
    if !finite3(&e.center) || !e.semi_axes_mm.iter().all(|a| a.is_finite() && *a > 0.0) {
        return None;
    }
    let screen = Matrix2x3::from_rows(&[cam.r.transpose() * cam.s, -cam.up.transpose() * cam.s]);
    let a = screen * e.rotation.matrix() * nalgebra::Matrix3::from_diagonal(&e.semi_axes_mm);
    let m: Matrix2<f64> = a * a.transpose();
    let l = m.cholesky()?.l();
    let (c, _) = cam.screen(&e.center);
    let pts: Vec<Point2<f64>> = (0..n)
        .map(|k| {
            let t = std::f64::consts::TAU * k as f64 / n as f64;
            c + l * nalgebra::Vector2::new(t.cos(), t.sin())
        })
        .collect();
    pts.iter()
        .all(|p| p.x.is_finite() && p.y.is_finite())
        .then_some(pts)
}

fn text(s: &mut String, at: &Point2<f64>, t: &str, size: f64, colour: Colour) {
    let t = xml_escape(t);
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"{}\" fill=\"#000000\" stroke=\"none\">{t}</text>",
        num(at.x + 1.0),
        num(at.y + 1.0),
        num(size)
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"{}\" fill=\"{}\" stroke=\"none\">{t}</text>",
        num(at.x),
        num(at.y),
        num(size),
        colour.to_hex()
    );
}

/// Sides of the needle cylinders in OBJ scenes.
const CYLINDER_SIDES: usize = 16;

/// The OBJ text written by [`write_obj_scene`]: object `bone` (the mesh's
/// valid triangles) and `needle_1`, `needle_2`, ... closed 16-sided
/// cylinders from entry to tip with the given radius (mm), outward-facing.
/// Needles with a non-finite end, zero length or radius <= 0 are skipped.
#[must_use]
pub fn obj_scene(mesh: &TriMesh, needles: &[(Point3<f64>, Point3<f64>, f64)]) -> String {
    let mut s = String::new();
    s.push_str("# avnplan scene: bone and planned needles, world mm\n");
    let n = mesh.vertices.len();
    let mut index = vec![0usize; n];
    let mut next = 1usize;
    let used = used_vertices(mesh);
    s.push_str("o bone\n");
    for (k, v) in mesh.vertices.iter().enumerate() {
        if used[k] && finite3(v) {
            let _ = writeln!(s, "v {:.6} {:.6} {:.6}", v.x, v.y, v.z);
            index[k] = next;
            next += 1;
        }
    }
    for t in &mesh.triangles {
        if t.iter().all(|&i| (i as usize) < n && index[i as usize] > 0) {
            let _ = writeln!(
                s,
                "f {} {} {}",
                index[t[0] as usize], index[t[1] as usize], index[t[2] as usize]
            );
        }
    }
    let mut count = 0;
    for (a, b, radius) in needles {
        let d = b - a;
        let len = d.norm();
        if !(finite3(a) && finite3(b) && len > 0.0 && len.is_finite() && radius.is_finite() && *radius > 0.0) {
            continue;
        }
        let dn = d / len;
        let axis = (0..3)
            .min_by(|&x, &y| dn[x].abs().total_cmp(&dn[y].abs()))
            .unwrap_or(0);
        let e1 = dn.cross(&Vector3::ith(axis, 1.0)).normalize();
        let e2 = dn.cross(&e1);
        count += 1;
        let _ = writeln!(s, "o needle_{count}");
        let base = next;
        for end in [a, b] {
            for k in 0..CYLINDER_SIDES {
                let t = std::f64::consts::TAU * k as f64 / CYLINDER_SIDES as f64;
                let p = end + (e1 * t.cos() + e2 * t.sin()) * *radius;
                let _ = writeln!(s, "v {:.6} {:.6} {:.6}", p.x, p.y, p.z);
            }
        }
        let _ = writeln!(s, "v {:.6} {:.6} {:.6}", a.x, a.y, a.z);
        let _ = writeln!(s, "v {:.6} {:.6} {:.6}", b.x, b.y, b.z);
        let m = CYLINDER_SIDES;
        let ai = |k: usize| base + k % m;
        let bi = |k: usize| base + m + k % m;
        let (ca, cb) = (base + 2 * m, base + 2 * m + 1);
        for k in 0..m {
            let _ = writeln!(s, "f {} {} {}", ai(k), ai(k + 1), bi(k + 1));
            let _ = writeln!(s, "f {} {} {}", ai(k), bi(k + 1), bi(k));
            let _ = writeln!(s, "f {} {} {}", cb, bi(k), bi(k + 1));
            let _ = writeln!(s, "f {} {} {}", ca, ai(k + 1), ai(k));
        }
        next += 2 * m + 2;
    }
    s
}

/// Writes [`obj_scene`] to `path` (Wavefront OBJ, mm): the bone and one
/// closed cylinder per needle `(entry_mm, tip_mm, radius_mm)`.
///
/// # Errors
/// [`Error::Io`] when the file cannot be written.
pub fn write_obj_scene(
    path: &Path,
    mesh: &TriMesh,
    needles: &[(Point3<f64>, Point3<f64>, f64)],
) -> Result<()> {
    std::fs::write(path, obj_scene(mesh, needles)).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn basis_is_right_handed_and_handles_parallel_up() {
        let [r, u, f] = basis(&-Vector3::z(), &Vector3::y()).unwrap();
        // Looking down -z with y up: x is to the right.
        assert_relative_eq!(r, Vector3::x(), epsilon = 1e-12);
        assert_relative_eq!(u, Vector3::y(), epsilon = 1e-12);
        assert_relative_eq!(r.cross(&u), -f, epsilon = 1e-12);
        let [r, u, _] = basis(&Vector3::z(), &Vector3::z()).unwrap();
        assert_relative_eq!(r.dot(&u), 0.0, epsilon = 1e-12);
        assert!(basis(&Vector3::new(f64::NAN, 0.0, 1.0), &Vector3::y()).is_none());
    }

    #[test]
    fn ellipse_outline_of_sphere_is_a_circle() {
        let cam = Camera {
            r: Vector3::x(),
            up: Vector3::y(),
            f: -Vector3::z(),
            c: Point3::origin(),
            s: 2.0,
            cx: 50.0,
            cy: 50.0,
        };
        let e = Ellipsoid::new(
            Point3::new(1.0, 2.0, 3.0),
            Vector3::new(4.0, 2.0, 9.0),
            nalgebra::Rotation3::identity(),
        )
        .unwrap();
        let o = ellipse_outline(&e, &cam, 36).unwrap();
        // Semi-axes 4 and 2 mm along screen x and y, 2 px/mm; centre (52, 46).
        let xs: Vec<f64> = o.iter().map(|p| p.x).collect();
        let ys: Vec<f64> = o.iter().map(|p| p.y).collect();
        let span = |v: &[f64]| v.iter().cloned().fold(f64::MIN, f64::max) - v.iter().cloned().fold(f64::MAX, f64::min);
        assert_relative_eq!(span(&xs), 16.0, epsilon = 1e-9);
        assert_relative_eq!(span(&ys), 8.0, epsilon = 1e-9);
        assert_relative_eq!(o[0].x, 60.0, epsilon = 1e-9);
        assert_relative_eq!(o[0].y, 46.0, epsilon = 1e-9);
    }
}
