//! Pictures: silhouettes against analytic projections, SVG well-formedness,
//! determinism, PNG decoding, 3D scene and OBJ round trip.

use crate::surface::shapes::{cube_posed as cube, uv_sphere};
use std::path::PathBuf;

use approx::assert_relative_eq;
use avnplan::geometry::{Ellipsoid, TriMesh};
use avnplan::imaging::{Annotations, Projection, View};
use avnplan::render::{
    contours, obj_scene, polygon_area, scene_svg, silhouette_mask, view_overlay, write_obj_scene,
    Colour, GrayImage, Marker, NeedleDraw, Overlay, Scene3dItem, Style,
};
use nalgebra::{Isometry3, Point2, Point3, Rotation3, Translation3, Unit, Vector3};
use proptest::prelude::*;

/// Source 600 mm above the origin, detector 400 mm below, 0.3 mm pixels,
/// 1000 x 1000 px: SID 1000 mm, principal point (500, 500).
fn ap() -> Projection {
    Projection::from_geometry(
        &Point3::new(0.0, 0.0, 600.0),
        &Point3::new(-150.0, -150.0, -400.0),
        &Vector3::new(0.3, 0.0, 0.0),
        &Vector3::new(0.0, 0.3, 0.0),
    )
    .unwrap()
}

/// Convex hull (monotone chain) area and perimeter.
fn hull_area_perimeter(mut p: Vec<Point2<f64>>) -> (f64, f64) {
    p.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
    let cross = |o: &Point2<f64>, a: &Point2<f64>, b: &Point2<f64>| (a - o).perp(&(b - o));
    let mut h: Vec<Point2<f64>> = Vec::new();
    for pass in 0..2 {
        let start = h.len();
        let it: Vec<Point2<f64>> = if pass == 0 {
            p.clone()
        } else {
            p.iter().rev().copied().collect()
        };
        for q in it {
            while h.len() >= start + 2 && cross(&h[h.len() - 2], &h[h.len() - 1], &q) <= 0.0 {
                h.pop();
            }
            h.push(q);
        }
        h.pop();
    }
    let n = h.len();
    let per = (0..n).map(|k| (h[(k + 1) % n] - h[k]).norm()).sum();
    (polygon_area(&h).abs(), per)
}

fn out_dir() -> PathBuf {
    let d = std::env::temp_dir().join("avnplan-render-test");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let dec = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn sphere_contour_matches_perspective_silhouette() {
    let p = ap();
    let (r_mm, d_mm) = (25.0, 600.0);
    let mesh = uv_sphere(Point3::origin(), r_mm, 96, 48);
    let mask = silhouette_mask(&mesh, &p, [1000, 1000]);
    let c = contours(&mask);
    assert_eq!(c.len(), 1);
    // Cone of half-angle asin(R / D) from the source: on a detector 1000 mm
    // away the circle has radius 1000 tan(alpha) mm = 1000 R / sqrt(D^2 - R^2).
    let r_px = 1000.0 * r_mm / (d_mm * d_mm - r_mm * r_mm).sqrt() / 0.3;
    let centre = Point2::new(500.0, 500.0);
    let worst = c[0]
        .iter()
        .map(|q| ((q - centre).norm() - r_px).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1.0, "worst radial error {worst} px (r = {r_px} px)");
    let mean: f64 = c[0].iter().map(|q| (q - centre).norm()).sum::<f64>() / c[0].len() as f64;
    assert_relative_eq!(mean, r_px, epsilon = 0.5);
    // Area of the mask against pi r^2 (edge quantisation ~ perimeter / 2 at most).
    let area = std::f64::consts::PI * r_px * r_px;
    assert!((mask.count() as f64 - area).abs() < std::f64::consts::PI * r_px);
    // Simplification keeps the file small: a 139 px circle in < 200 points.
    assert!(c[0].len() < 200, "{} points", c[0].len());
}

#[test]
fn cube_mask_area_matches_projected_polygon() {
    let p = ap();
    let pose = Isometry3::from_parts(
        Translation3::new(12.0, -7.0, 30.0),
        Rotation3::from_euler_angles(0.4, -0.3, 0.9).into(),
    );
    let mesh = cube(20.0, &pose);
    let mask = silhouette_mask(&mesh, &p, [1000, 1000]);
    let proj: Vec<Point2<f64>> = mesh
        .vertices
        .iter()
        .map(|v| p.project(v).unwrap())
        .collect();
    let (area, perimeter) = hull_area_perimeter(proj);
    let count = mask.count() as f64;
    // Counting pixel centres: error well below half the perimeter.
    assert!(
        (count - area).abs() < 0.25 * perimeter,
        "count {count} area {area} perimeter {perimeter}"
    );
    assert!((count - area).abs() / area < 0.01);
    // The contour's enclosed area agrees too.
    let c = contours(&mask);
    assert_eq!(c.len(), 1);
    assert_relative_eq!(-polygon_area(&c[0]), area, max_relative = 0.01);
}

#[test]
fn triangles_behind_the_source_are_skipped() {
    let p = ap();
    // A big sphere around the source: half of it is behind.
    let mesh = uv_sphere(Point3::new(0.0, 0.0, 600.0), 100.0, 24, 12);
    let mask = silhouette_mask(&mesh, &p, [200, 200]);
    let _ = contours(&mask);
    // Invalid indices and NaN vertices (TriMesh fields are public).
    let bad = TriMesh {
        vertices: vec![Point3::new(f64::NAN, 0.0, 0.0), Point3::origin()],
        triangles: vec![[0, 1, 1], [5, 6, 7]],
    };
    assert_eq!(silhouette_mask(&bad, &p, [50, 50]).count(), 0);
    let empty = TriMesh {
        vertices: vec![],
        triangles: vec![],
    };
    assert!(contours(&silhouette_mask(&empty, &p, [50, 50])).is_empty());
    let svg = scene_svg(&empty, &Vector3::z_axis(), &Vector3::y(), &[], [64, 48]);
    roxmltree::Document::parse(&svg).unwrap();
    let svg = scene_svg(&bad, &Vector3::z_axis(), &Vector3::z(), &[], [64, 48]);
    roxmltree::Document::parse(&svg).unwrap();
}

fn radiograph(w: u32, h: u32) -> GrayImage {
    let px = (0..h)
        .flat_map(|v| {
            (0..w).map(move |u| {
                let d = ((f64::from(u) - 180.0).powi(2) + (f64::from(v) - 170.0).powi(2)).sqrt();
                (60.0 + 120.0 * (-d / 120.0).exp()) as u8
            })
        })
        .collect();
    GrayImage::new(w, h, px).unwrap()
}

fn sample_view() -> (View, TriMesh, Vec<Point2<f64>>, Vec<NeedleDraw>) {
    // 512 x 400 px detector centred under the source.
    let p = Projection::from_geometry(
        &Point3::new(0.0, 0.0, 600.0),
        &Point3::new(-0.3 * 255.5, -0.3 * 199.5, -400.0),
        &Vector3::new(0.3, 0.0, 0.0),
        &Vector3::new(0.0, 0.3, 0.0),
    )
    .unwrap();
    let mut view = View::new("AP <test> & more", [512, 400], p);
    let head = uv_sphere(Point3::new(-20.0, -10.0, 0.0), 23.0, 48, 24);
    let mut ann = Annotations::default();
    ann.head_outline_px = (0..12)
        .map(|k| {
            let t = f64::from(k) * 0.4 + 2.0;
            Point2::new(189.0 + 100.0 * t.cos(), 166.0 + 100.0 * t.sin())
        })
        .collect();
    ann.neck_edges_px = Some([
        vec![Point2::new(260.0, 230.0), Point2::new(330.0, 280.0)],
        vec![Point2::new(230.0, 260.0), Point2::new(300.0, 320.0)],
    ]);
    ann.lesion_outline_px = vec![
        Point2::new(170.0, 120.0),
        Point2::new(210.0, 115.0),
        Point2::new(220.0, 150.0),
        Point2::new(180.0, 160.0),
    ];
    ann.entry_px = Some(Point2::new(420.0, 350.0));
    view.annotations = ann;
    let lesion: Vec<Point2<f64>> = (0..24)
        .map(|k| {
            let t = std::f64::consts::TAU * f64::from(k) / 24.0;
            Point2::new(195.0 + 22.0 * t.cos(), 138.0 + 15.0 * t.sin())
        })
        .collect();
    let needles = vec![
        NeedleDraw {
            entry_px: Point2::new(420.0, 350.0),
            tip_px: Point2::new(200.0, 140.0),
            width_px: 3.05 * 1.6 / 0.3,
            label: "N1".into(),
            colour: Colour::NEEDLES[0],
        },
        NeedleDraw {
            entry_px: Point2::new(440.0, 330.0),
            tip_px: Point2::new(185.0, 150.0),
            width_px: 3.05 * 1.6 / 0.3,
            label: "N2".into(),
            colour: Colour::NEEDLES[1],
        },
    ];
    (view, head, lesion, needles)
}

#[test]
fn view_overlay_svg_is_well_formed_and_deterministic() {
    let (view, head, lesion, needles) = sample_view();
    let bg = radiograph(512, 400);
    let make = || {
        view_overlay(
            &view,
            Some(&head),
            Some(&lesion),
            &needles,
            Some(&bg),
            0.3 / 1.6,
        )
    };
    let o = make();
    let svg = o.to_svg();
    assert_eq!(svg, make().to_svg(), "SVG bytes differ between runs");
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("viewBox"), Some("-0.5 -0.5 512 400"));
    let image = root
        .descendants()
        .find(|n| n.tag_name().name() == "image")
        .unwrap();
    assert_eq!(image.attribute("x"), Some("-0.5"));
    let href = image
        .attribute(("http://www.w3.org/1999/xlink", "href"))
        .unwrap();
    assert!(href.starts_with("data:image/png;base64,"));
    // The title is escaped and round-trips.
    assert!(root
        .descendants()
        .any(|n| n.text() == Some("AP <test> & more")));
    // Legend: bone, annotations, two lesions, entry, two needles.
    for label in [
        "bone (model)",
        "lesion (model)",
        "needle N1",
        "needle N2",
        "20 mm",
    ] {
        assert!(
            root.descendants().any(|n| n.text() == Some(label)),
            "{label}"
        );
    }
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
    let dir = out_dir();
    std::fs::write(dir.join("view_overlay.svg"), &svg).unwrap();
    let png = o.to_png().unwrap();
    assert_eq!(
        png,
        make().to_png().unwrap(),
        "PNG bytes differ between runs"
    );
    std::fs::write(dir.join("view_overlay.png"), &png).unwrap();
    let (w, h, data) = decode_png(&png);
    assert_eq!((w, h), (512, 400));
    assert_eq!(data.len(), 512 * 400 * 3);
    // Far from every layer the radiograph shows through unchanged.
    let k = (5 * 512 + 300) * 3;
    assert_eq!(data[k], bg.pixels()[5 * 512 + 300]);
}

#[test]
fn pixel_centre_convention_pins_marker_positions() {
    // A dot at (3, 2) lights pixel (3, 2) most; the SVG writes it at (3, 2).
    let o =
        Overlay::new([8, 6]).marker(Point2::new(3.0, 2.0), Marker::Dot, 1.0, Colour::WHITE, None);
    let (_, _, data) = decode_png(&o.to_png().unwrap());
    let at = |i: usize, j: usize| data[(j * 8 + i) * 3];
    assert!(at(3, 2) > 200);
    assert!(at(2, 2) < 10 && at(4, 2) < 10 && at(3, 1) < 10 && at(3, 3) < 10);
    assert!(o.to_svg().contains(r#"cx="3" cy="2""#));
    // A background pixel (i, j) sits at (i, j): image box starts at -0.5.
    let bg = GrayImage::new(8, 6, (0..48).map(|k| k as u8 * 5).collect()).unwrap();
    let (_, _, data) = decode_png(&Overlay::new([8, 6]).background(bg).to_png().unwrap());
    assert_eq!(data[(2 * 8 + 3) * 3], 19 * 5);
}

#[test]
fn overlay_primitives_parse_back() {
    let o = Overlay::new([120, 80])
        .polyline(
            &[
                Point2::new(1.0, 1.0),
                Point2::new(50.0, 40.0),
                Point2::new(90.0, 10.0),
            ],
            Style::stroke(Colour::ANNOTATION, 2.0).dashed(5.0, 3.0),
        )
        .polygon(
            &[
                Point2::new(10.0, 60.0),
                Point2::new(40.0, 60.0),
                Point2::new(25.0, 75.0),
            ],
            Style::stroke(Colour::LESION, 1.0).filled(Colour::LESION, 0.4),
        )
        .marker(
            Point2::new(60.0, 60.0),
            Marker::Cross,
            8.0,
            Colour::ENTRY,
            Some("x"),
        )
        .marker(
            Point2::new(70.0, 60.0),
            Marker::Circle,
            8.0,
            Colour::ENTRY,
            None,
        )
        .text(
            Point2::new(5.0, 20.0),
            "hello \"quoted\"",
            10.0,
            Colour::WHITE,
        )
        .scale_bar(0.5, 20.0);
    let svg = o.to_svg();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let poly = doc
        .descendants()
        .find(|n| n.tag_name().name() == "polygon")
        .unwrap();
    assert_eq!(poly.attribute("points"), Some("10,60 40,60 25,75"));
    assert_eq!(poly.attribute("fill-opacity"), Some("0.4"));
    let line = doc
        .descendants()
        .find(|n| n.tag_name().name() == "polyline")
        .unwrap();
    assert_eq!(line.attribute("stroke-dasharray"), Some("5 3"));
    assert!(doc
        .descendants()
        .any(|n| n.text() == Some("hello \"quoted\"")));
    assert!(doc.descendants().any(|n| n.text() == Some("20 mm")));
    let (w, h, _) = decode_png(&o.to_png().unwrap());
    assert_eq!((w, h), (120, 80));
}

#[test]
fn scene_svg_and_obj_round_trip() {
    let head = uv_sphere(Point3::new(0.0, 0.0, 0.0), 23.0, 48, 24);
    let neck = cube(
        9.0,
        &Isometry3::from_parts(
            Translation3::new(25.0, 0.0, -20.0),
            Rotation3::from_euler_angles(0.0, 0.7, 0.0).into(),
        ),
    );
    let mut v = head.vertices.clone();
    let off = v.len() as u32;
    v.extend(neck.vertices.iter());
    let mut t = head.triangles.clone();
    t.extend(neck.triangles.iter().map(|f| f.map(|i| i + off)));
    let bone = TriMesh::new(v, t).unwrap();
    let lesion = Ellipsoid::new(
        Point3::new(-5.0, 0.0, 10.0),
        Vector3::new(8.0, 6.0, 5.0),
        Rotation3::from_euler_angles(0.3, 0.2, 0.1),
    )
    .unwrap();
    let items = vec![
        Scene3dItem::Sphere {
            center: Point3::origin(),
            radius_mm: 23.0,
            colour: Colour::ANNOTATION,
            label: Some("head".into()),
        },
        Scene3dItem::Ellipsoid {
            ellipsoid: lesion,
            colour: Colour::LESION,
            label: Some("lesion".into()),
        },
        Scene3dItem::Segment {
            a: Point3::new(60.0, 0.0, -60.0),
            b: Point3::new(-5.0, 0.0, 10.0),
            radius_mm: 1.5,
            colour: Colour::NEEDLES[0],
            label: Some("N1".into()),
        },
        Scene3dItem::Point {
            at: Point3::new(60.0, 0.0, -60.0),
            colour: Colour::ENTRY,
            label: Some("entry".into()),
        },
    ];
    let dir = Unit::new_normalize(Vector3::new(0.3, 1.0, -0.2));
    let svg = scene_svg(&bone, &dir, &Vector3::z(), &items, [480, 400]);
    assert_eq!(
        svg,
        scene_svg(&bone, &dir, &Vector3::z(), &items, [480, 400])
    );
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert!(doc.descendants().any(|n| n.tag_name().name() == "image"));
    // The needle enters the head: part of it is drawn dashed (hidden).
    assert!(doc.descendants().any(|n| {
        n.tag_name().name() == "line"
            && n.attribute("stroke") == Some(Colour::NEEDLES[0].to_hex().as_str())
            && n.has_attribute("stroke-dasharray")
    }));
    std::fs::write(out_dir().join("scene.svg"), &svg).unwrap();

    let path = out_dir().join("scene.obj");
    let needles = [
        (
            Point3::new(60.0, 0.0, -60.0),
            Point3::new(-5.0, 0.0, 10.0),
            1.5,
        ),
        (Point3::new(1.0, 1.0, 1.0), Point3::new(1.0, 1.0, 1.0), 1.5), // skipped
    ];
    write_obj_scene(&path, &bone, &needles).unwrap();
    let (models, _) = tobj::load_obj(&path, &tobj::LoadOptions::default()).unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[0].name, "bone");
    assert_eq!(models[0].mesh.indices.len(), bone.triangles.len() * 3);
    // The needle cylinder is closed and outward: its volume is the 16-gon
    // prism's, pi r^2 L * (16 / 2 pi) sin(2 pi / 16).
    let m = &models[1].mesh;
    let verts: Vec<Point3<f64>> = m
        .positions
        .chunks(3)
        .map(|c| Point3::new(f64::from(c[0]), f64::from(c[1]), f64::from(c[2])))
        .collect();
    let tris: Vec<[u32; 3]> = m.indices.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
    let cyl = TriMesh::new(verts, tris).unwrap();
    let len = (65.0f64 * 65.0 + 70.0 * 70.0).sqrt();
    let n = 16.0;
    let expected = 0.5 * n * 1.5 * 1.5 * (std::f64::consts::TAU / n).sin() * len;
    assert_relative_eq!(cyl.signed_volume_mm3(), expected, max_relative = 1e-4);
    assert!(write_obj_scene(std::path::Path::new("/nonexistent/dir/x.obj"), &bone, &[]).is_err());
    assert_eq!(obj_scene(&bone, &needles), obj_scene(&bone, &needles));
}

/// The real femur mesh, when present (skips with a message otherwise).
fn femur() -> Option<TriMesh> {
    let path = "/work/shared/data/femur/lhdl_ct_right/femur_r.stl";
    let Ok(mut f) = std::fs::File::open(path) else {
        eprintln!("skipping: {path} not found");
        return None;
    };
    let m = stl_io::read_stl(&mut f).ok()?;
    let v = m
        .vertices
        .iter()
        .map(|p| Point3::new(f64::from(p[0]), f64::from(p[1]), f64::from(p[2])))
        .collect();
    let t = m
        .faces
        .iter()
        .map(|f| f.vertices.map(|i| i as u32))
        .collect();
    TriMesh::new(v, t).ok()
}

#[test]
fn femur_silhouette_and_scene() {
    let Some(mesh) = femur() else { return };
    let (lo, hi) = mesh.bounds_mm();
    let c = nalgebra::center(&lo, &hi);
    // AP view of the femur: source 600 mm in front (y), detector 400 mm behind.
    let p = Projection::from_geometry(
        &(c + Vector3::new(0.0, -600.0, 0.0)),
        &(c + Vector3::new(-0.5 * 0.4 * 1023.0, 400.0, 0.5 * 0.4 * 1023.0)),
        &Vector3::new(0.4, 0.0, 0.0),
        &Vector3::new(0.0, 0.0, -0.4),
    )
    .unwrap();
    let mask = silhouette_mask(&mesh, &p, [1024, 1024]);
    let outlines = contours(&mask);
    assert!(!outlines.is_empty());
    let biggest = outlines
        .iter()
        .map(|o| -polygon_area(o))
        .fold(f64::MIN, f64::max);
    // The outer outline encloses about the mask's area.
    assert_relative_eq!(biggest, mask.count() as f64, max_relative = 0.02);
    let view = View::new("AP femur", [1024, 1024], p);
    let o = view_overlay(&view, Some(&mesh), None, &[], None, 0.4 / 1.6);
    std::fs::write(out_dir().join("femur_ap.png"), o.to_png().unwrap()).unwrap();
    let svg = scene_svg(&mesh, &Vector3::y_axis(), &Vector3::z(), &[], [400, 600]);
    roxmltree::Document::parse(&svg).unwrap();
    std::fs::write(out_dir().join("femur_scene.svg"), &svg).unwrap();
}

/// Bounded ranges for the raster properties, px.
const MAX_COORD_PX: f64 = 120.0;

proptest! {
    /// Counting pixel centres inside a triangle approximates its area to
    /// within its perimeter (plus corner pixels).
    #[test]
    fn triangle_count_tracks_area(
        a in (0.0..MAX_COORD_PX, 0.0..MAX_COORD_PX),
        b in (0.0..MAX_COORD_PX, 0.0..MAX_COORD_PX),
        c in (0.0..MAX_COORD_PX, 0.0..MAX_COORD_PX),
    ) {
        let (a, b, c) = (Point2::new(a.0, a.1), Point2::new(b.0, b.1), Point2::new(c.0, c.1));
        let mut m = avnplan::render::Mask::new(128, 128);
        m.fill_triangle(&a, &b, &c);
        let area = polygon_area(&[a, b, c]).abs();
        let per = (b - a).norm() + (c - b).norm() + (a - c).norm();
        prop_assert!((m.count() as f64 - area).abs() <= per + 3.0);
    }

    /// Every simplified contour point lies on the boundary between a set
    /// and an unset pixel, within the Douglas–Peucker tolerance.
    #[test]
    fn contour_points_sit_between_set_and_unset(seed in 0u64..1000) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut m = avnplan::render::Mask::new(24, 24);
        for _ in 0..6 {
            let (x, y, r) = (rng.random_range(0.0..24.0), rng.random_range(0.0..24.0), rng.random_range(1.0..6.0f64));
            for j in 0..24i64 { for i in 0..24i64 {
                if (i as f64 - x).hypot(j as f64 - y) <= r { m.set(i, j, true); }
            }}
        }
        for c in contours(&m) {
            for p in c {
                // A lattice-edge midpoint: one coordinate integer, the other half-integer.
                let (i0, j0) = (p.x.floor() as i64, p.y.floor() as i64);
                let (i1, j1) = (p.x.ceil() as i64, p.y.ceil() as i64);
                prop_assert!((i0 == i1) != (j0 == j1));
                prop_assert!(m.get(i0, j0) != m.get(i1, j1));
            }
        }
    }
}
