//! One picture per C-arm view: layers over an optional radiograph, written
//! as SVG 1.1 or rasterised to PNG.
//!
//! Coordinates are the crate's pixel frame (`u` right, `v` down, `(0, 0)`
//! the centre of the top-left pixel), so the SVG `viewBox` is
//! `-0.5 -0.5 W H` and the background image is placed at `(-0.5, -0.5)`
//! with one SVG unit per image pixel.

use std::fmt::Write as _;

use nalgebra::Point2;

use crate::error::Result;

use super::canvas::{base64, bitmap_text_width, check_size, Canvas, GrayImage};
use super::style::{Colour, Marker, Style};

/// Opacity of a needle's band (its projected width); its axis is opaque.
pub const NEEDLE_BAND_OPACITY: f64 = 0.35;

/// Coordinates written to SVG are clamped to +-this, px (keeps files small
/// and finite for points projected near the source plane).
const COORD_LIMIT_PX: f64 = 1e6;

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Path {
        pts: Vec<Point2<f64>>,
        closed: bool,
        style: Style,
    },
    Marker {
        at: Point2<f64>,
        shape: Marker,
        size_px: f64,
        colour: Colour,
        label: Option<String>,
    },
    Needle {
        entry: Point2<f64>,
        tip: Point2<f64>,
        width_px: f64,
        colour: Colour,
        label: Option<String>,
    },
    Text {
        at: Point2<f64>,
        text: String,
        size_px: f64,
        colour: Colour,
    },
}

/// What a legend entry's swatch looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegendSwatch {
    /// A short line.
    Line,
    /// A dashed short line.
    Dashed,
    /// A wide translucent band with an axis (needles).
    Band,
    /// A marker.
    Marker(Marker),
}

/// A picture of one view: size, optional grayscale background and layers,
/// drawn in insertion order (later on top), then the legend, the scale bar
/// and the title.
///
/// Built with by-value builder methods; output is deterministic (the same
/// calls give byte-identical SVG and PNG). Non-finite points are dropped;
/// a non-finite marker, needle or text is skipped.
///
/// # Example
/// ```
/// use avnplan::render::{Colour, Marker, Overlay, Style};
/// use nalgebra::Point2;
/// let o = Overlay::new([200, 100])
///     .title("AP")
///     .polygon(
///         &[Point2::new(20.0, 20.0), Point2::new(80.0, 20.0), Point2::new(50.0, 70.0)],
///         Style::stroke(Colour::LESION, 1.5).filled(Colour::LESION, 0.3),
///     )
///     .needle(Point2::new(150.0, 90.0), Point2::new(50.0, 40.0), 8.0, Colour::NEEDLES[0], Some("N1"))
///     .marker(Point2::new(150.0, 90.0), Marker::Circle, 8.0, Colour::ENTRY, Some("entry"))
///     .scale_bar(0.25, 10.0);
/// let svg = o.to_svg();
/// assert!(svg.contains(r#"viewBox="-0.5 -0.5 200 100""#));
/// let png = o.to_png().unwrap();
/// assert_eq!(&png[1..4], b"PNG");
/// # approx::assert_relative_eq!(o.size_px()[0] as f64, 200.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Overlay {
    size_px: [u32; 2],
    background: Option<GrayImage>,
    background_colour: Colour,
    title: Option<String>,
    items: Vec<Item>,
    legend: Vec<(String, Colour, LegendSwatch)>,
    scale: Option<(f64, f64)>,
    font_px: f64,
}

fn finite(p: &Point2<f64>) -> bool {
    p.x.is_finite() && p.y.is_finite()
}

impl Overlay {
    /// An empty picture of `size_px = [width, height]` pixels on black.
    #[must_use]
    pub fn new(size_px: [u32; 2]) -> Self {
        let m = f64::from(size_px[0].min(size_px[1]));
        Self {
            size_px,
            background: None,
            background_colour: Colour::BLACK,
            title: None,
            items: Vec::new(),
            legend: Vec::new(),
            scale: None,
            font_px: (m / 45.0).clamp(9.0, 36.0),
        }
    }

    /// Picture size `[width, height]`, pixels.
    #[must_use]
    pub fn size_px(&self) -> [u32; 2] {
        self.size_px
    }

    /// Text size used for labels, legend and title, px.
    #[must_use]
    pub fn font_px(&self) -> f64 {
        self.font_px
    }

    /// Number of layers added (paths, markers, needles, texts).
    #[must_use]
    pub fn layer_count(&self) -> usize {
        self.items.len()
    }

    /// Sets the label text size, px (clamped to 4..=200; NaN ignored).
    #[must_use]
    pub fn with_font_px(mut self, font_px: f64) -> Self {
        if font_px.is_finite() {
            self.font_px = font_px.clamp(4.0, 200.0);
        }
        self
    }

    /// Puts a radiograph behind the layers. Its pixel `(u, v)` is centred
    /// on `(u, v)`, one image pixel per picture pixel (a larger image is
    /// cropped, a smaller one leaves the rest in the background colour).
    #[must_use]
    pub fn background(mut self, image: GrayImage) -> Self {
        self.background = Some(image);
        self
    }

    /// Colour behind everything (default black).
    #[must_use]
    pub fn background_colour(mut self, colour: Colour) -> Self {
        self.background_colour = colour;
        self
    }

    /// A title written at the top left (e.g. the view name).
    #[must_use]
    pub fn title(mut self, text: &str) -> Self {
        self.title = Some(text.to_string());
        self
    }

    /// An open polyline, pixels.
    #[must_use]
    pub fn polyline(mut self, points_px: &[Point2<f64>], style: Style) -> Self {
        let pts: Vec<_> = points_px.iter().filter(|p| finite(p)).copied().collect();
        if !pts.is_empty() {
            self.items.push(Item::Path {
                pts,
                closed: false,
                style: style.sanitised(),
            });
        }
        self
    }

    /// A closed polygon (last point joins the first), pixels; filled if the
    /// style has a fill.
    #[must_use]
    pub fn polygon(mut self, points_px: &[Point2<f64>], style: Style) -> Self {
        let pts: Vec<_> = points_px.iter().filter(|p| finite(p)).copied().collect();
        if !pts.is_empty() {
            self.items.push(Item::Path {
                pts,
                closed: true,
                style: style.sanitised(),
            });
        }
        self
    }

    /// A marker of overall size `size_px` at `at_px`, with an optional label
    /// to its upper right.
    #[must_use]
    pub fn marker(
        mut self,
        at_px: Point2<f64>,
        shape: Marker,
        size_px: f64,
        colour: Colour,
        label: Option<&str>,
    ) -> Self {
        if finite(&at_px) && size_px.is_finite() && size_px > 0.0 {
            self.items.push(Item::Marker {
                at: at_px,
                shape,
                size_px: size_px.min(1e4),
                colour,
                label: label.map(str::to_string),
            });
        }
        self
    }

    /// A needle from `entry_px` to `tip_px`: a translucent band as wide as
    /// the needle's projected diameter `width_px` plus its 1 px axis line,
    /// with an optional label beside the entry.
    #[must_use]
    pub fn needle(
        mut self,
        entry_px: Point2<f64>,
        tip_px: Point2<f64>,
        width_px: f64,
        colour: Colour,
        label: Option<&str>,
    ) -> Self {
        if finite(&entry_px) && finite(&tip_px) && width_px.is_finite() && width_px >= 0.0 {
            self.items.push(Item::Needle {
                entry: entry_px,
                tip: tip_px,
                width_px: width_px.min(1e4),
                colour,
                label: label.map(str::to_string),
            });
        }
        self
    }

    /// Text with its baseline starting at `at_px`, cap height about `size_px`.
    #[must_use]
    pub fn text(mut self, at_px: Point2<f64>, text: &str, size_px: f64, colour: Colour) -> Self {
        if finite(&at_px) && size_px.is_finite() && size_px > 0.0 {
            self.items.push(Item::Text {
                at: at_px,
                text: text.to_string(),
                size_px: size_px.min(200.0),
                colour,
            });
        }
        self
    }

    /// A legend entry (legend box at the top right, entries in insertion order).
    #[must_use]
    pub fn legend_entry(mut self, label: &str, colour: Colour, swatch: LegendSwatch) -> Self {
        self.legend.push((label.to_string(), colour, swatch));
        self
    }

    /// A scale bar of `length_mm` at the bottom left, for `mm_per_px`
    /// (e.g. the pixel spacing at the isocentre, mm per px). Skipped when a
    /// value is not finite and > 0 or the bar would not fit.
    #[must_use]
    pub fn scale_bar(mut self, mm_per_px: f64, length_mm: f64) -> Self {
        if mm_per_px.is_finite() && mm_per_px > 0.0 && length_mm.is_finite() && length_mm > 0.0 {
            self.scale = Some((mm_per_px, length_mm));
        }
        self
    }

    /// Scale-bar geometry: (left end, right end, label) in px.
    fn scale_geometry(&self) -> Option<(Point2<f64>, Point2<f64>, String)> {
        let (mm_per_px, length_mm) = self.scale?;
        let len = length_mm / mm_per_px;
        let w = f64::from(self.size_px[0]);
        let h = f64::from(self.size_px[1]);
        let m = self.font_px;
        if !(len.is_finite() && len >= 2.0 && len <= w - 2.0 * m) {
            return None;
        }
        let y = h - 1.0 - m;
        Some((
            Point2::new(m, y),
            Point2::new(m + len, y),
            format!("{} mm", num(length_mm)),
        ))
    }

    /// Legend layout: top-left corner, size, row height.
    fn legend_box(&self) -> Option<(Point2<f64>, [f64; 2], f64)> {
        if self.legend.is_empty() {
            return None;
        }
        let f = self.font_px;
        let row = f * 1.6;
        let text_w = self
            .legend
            .iter()
            .map(|(l, ..)| text_width(l, f))
            .fold(0.0, f64::max);
        let bw = text_w + 3.5 * f;
        let bh = row * self.legend.len() as f64 + 0.6 * f;
        let x = f64::from(self.size_px[0]) - 1.0 - f * 0.5 - bw;
        Some((Point2::new(x, f * 0.5), [bw, bh], row))
    }

    /// The picture as an SVG 1.1 document (UTF-8).
    ///
    /// `viewBox="-0.5 -0.5 W H"`: one unit per pixel, pixel centres on
    /// integer coordinates. The background (if any) is an embedded PNG
    /// (`data:image/png;base64,...`) at `(-0.5, -0.5)`.
    #[must_use]
    pub fn to_svg(&self) -> String {
        let [w, h] = self.size_px;
        let f = self.font_px;
        let mut s = String::new();
        s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n");
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
             version=\"1.1\" width=\"{w}\" height=\"{h}\" viewBox=\"-0.5 -0.5 {w} {h}\">"
        );
        let _ = writeln!(
            s,
            "<rect x=\"-0.5\" y=\"-0.5\" width=\"{w}\" height=\"{h}\" fill=\"{}\"/>",
            self.background_colour.to_hex()
        );
        if let Some(img) = &self.background {
            if let Ok(png) = img.to_png() {
                let _ = writeln!(
                    s,
                    "<image x=\"-0.5\" y=\"-0.5\" width=\"{}\" height=\"{}\" \
                     preserveAspectRatio=\"none\" xlink:href=\"data:image/png;base64,{}\"/>",
                    img.width(),
                    img.height(),
                    base64(&png)
                );
            }
        }
        s.push_str(
            "<g fill=\"none\" stroke-linecap=\"round\" stroke-linejoin=\"round\" \
             font-family=\"DejaVu Sans, Arial, sans-serif\">\n",
        );
        for item in &self.items {
            match item {
                Item::Path { pts, closed, style } => svg_path(&mut s, pts, *closed, style),
                Item::Marker {
                    at,
                    shape,
                    size_px,
                    colour,
                    label,
                } => {
                    svg_marker(&mut s, at, *shape, *size_px, *colour);
                    if let Some(l) = label {
                        let p = Point2::new(at.x + size_px * 0.7, at.y - size_px * 0.7);
                        svg_text(&mut s, &p, l, f, *colour);
                    }
                }
                Item::Needle {
                    entry,
                    tip,
                    width_px,
                    colour,
                    label,
                } => {
                    let c = colour.to_hex();
                    if *width_px > 0.0 {
                        let _ = writeln!(
                            s,
                            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{c}\" \
                             stroke-opacity=\"{NEEDLE_BAND_OPACITY}\" stroke-width=\"{}\" stroke-linecap=\"butt\"/>",
                            num(entry.x),
                            num(entry.y),
                            num(tip.x),
                            num(tip.y),
                            num(*width_px)
                        );
                    }
                    let _ = writeln!(
                        s,
                        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{c}\" stroke-width=\"1.25\"/>",
                        num(entry.x),
                        num(entry.y),
                        num(tip.x),
                        num(tip.y)
                    );
                    if let Some(l) = label {
                        let p = needle_label_at(entry, tip, *width_px, f);
                        svg_text(&mut s, &p, l, f, *colour);
                    }
                }
                Item::Text {
                    at,
                    text,
                    size_px,
                    colour,
                } => svg_text(&mut s, at, text, *size_px, *colour),
            }
        }
        s.push_str("</g>\n");
        if let Some((a, b, label)) = self.scale_geometry() {
            let tick = f * 0.4;
            let _ = writeln!(
                s,
                "<path d=\"M{} {}V{}H{}V{}\" fill=\"none\" stroke=\"#000000\" stroke-width=\"4\" stroke-linejoin=\"miter\"/>",
                num(a.x),
                num(a.y - tick),
                num(a.y),
                num(b.x),
                num(b.y - tick)
            );
            let _ = writeln!(
                s,
                "<path d=\"M{} {}V{}H{}V{}\" fill=\"none\" stroke=\"#ffffff\" stroke-width=\"2\" stroke-linejoin=\"miter\"/>",
                num(a.x),
                num(a.y - tick),
                num(a.y),
                num(b.x),
                num(b.y - tick)
            );
            svg_text(
                &mut s,
                &Point2::new(a.x, a.y - tick - 0.4 * f),
                &label,
                f,
                Colour::WHITE,
            );
        }
        if let Some((at, [bw, bh], row)) = self.legend_box() {
            let _ = writeln!(
                s,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#000000\" fill-opacity=\"0.6\" stroke=\"#808080\" stroke-width=\"1\"/>",
                num(at.x),
                num(at.y),
                num(bw),
                num(bh)
            );
            for (k, (label, colour, swatch)) in self.legend.iter().enumerate() {
                let y = at.y + row * (k as f64 + 0.5) + 0.3 * f;
                let x0 = at.x + 0.5 * f;
                let x1 = x0 + 2.0 * f;
                svg_swatch(&mut s, x0, x1, y, *swatch, *colour, f);
                svg_text(
                    &mut s,
                    &Point2::new(x1 + 0.6 * f, y + 0.35 * f),
                    label,
                    f,
                    Colour::WHITE,
                );
            }
        }
        if let Some(t) = &self.title {
            svg_text(
                &mut s,
                &Point2::new(0.5 * f, 1.5 * f),
                t,
                f * 1.3,
                Colour::WHITE,
            );
        }
        s.push_str("</svg>\n");
        s
    }

    /// The picture rasterised to an RGB PNG of `size_px`, with the same
    /// layers as [`Overlay::to_svg`] (labels in a built-in 5x7 bitmap font,
    /// capitals only).
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] for a zero side,
    /// [`crate::Error::LimitExceeded`] above
    /// [`MAX_PICTURE_PIXELS`](super::MAX_PICTURE_PIXELS).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let [w, h] = self.size_px;
        check_size("overlay", w, h)?;
        let f = self.font_px;
        let mut c = match &self.background {
            Some(img) => Canvas::from_gray(img, w, h, self.background_colour),
            None => Canvas::new(w, h, self.background_colour),
        };
        for item in &self.items {
            match item {
                Item::Path { pts, closed, style } => {
                    if *closed {
                        if let Some(fill) = style.fill {
                            c.fill_polygon(pts, fill, style.fill_opacity);
                        }
                    }
                    if let Some(stroke) = style.stroke {
                        c.polyline(
                            pts,
                            *closed,
                            style.stroke_width_px,
                            stroke,
                            style.stroke_opacity,
                            style.dash_px,
                        );
                    }
                }
                Item::Marker {
                    at,
                    shape,
                    size_px,
                    colour,
                    label,
                } => {
                    raster_marker(&mut c, at, *shape, *size_px, *colour);
                    if let Some(l) = label {
                        let p = Point2::new(at.x + size_px * 0.7, at.y - size_px * 0.7);
                        c.text(p, l, f, *colour);
                    }
                }
                Item::Needle {
                    entry,
                    tip,
                    width_px,
                    colour,
                    label,
                } => {
                    if *width_px > 0.0 {
                        c.polyline(
                            &[*entry, *tip],
                            false,
                            *width_px,
                            *colour,
                            NEEDLE_BAND_OPACITY,
                            None,
                        );
                    }
                    c.polyline(&[*entry, *tip], false, 1.25, *colour, 1.0, None);
                    if let Some(l) = label {
                        c.text(needle_label_at(entry, tip, *width_px, f), l, f, *colour);
                    }
                }
                Item::Text {
                    at,
                    text,
                    size_px,
                    colour,
                } => c.text(*at, text, *size_px, *colour),
            }
        }
        if let Some((a, b, label)) = self.scale_geometry() {
            let tick = f * 0.4;
            let bar = [
                Point2::new(a.x, a.y - tick),
                a,
                b,
                Point2::new(b.x, b.y - tick),
            ];
            c.polyline(&bar, false, 4.0, Colour::BLACK, 1.0, None);
            c.polyline(&bar, false, 2.0, Colour::WHITE, 1.0, None);
            c.text(
                Point2::new(a.x, a.y - tick - 0.4 * f),
                &label,
                f,
                Colour::WHITE,
            );
        }
        if let Some((at, [bw, bh], row)) = self.legend_box() {
            let rect = [
                at,
                Point2::new(at.x + bw, at.y),
                Point2::new(at.x + bw, at.y + bh),
                Point2::new(at.x, at.y + bh),
            ];
            c.fill_polygon(&rect, Colour::BLACK, 0.6);
            c.polyline(&rect, true, 1.0, Colour::rgb(128, 128, 128), 1.0, None);
            for (k, (label, colour, swatch)) in self.legend.iter().enumerate() {
                let y = at.y + row * (k as f64 + 0.5) + 0.3 * f;
                let x0 = at.x + 0.5 * f;
                let x1 = x0 + 2.0 * f;
                raster_swatch(&mut c, x0, x1, y, *swatch, *colour, f);
                c.text(
                    Point2::new(x1 + 0.6 * f, y + 0.35 * f),
                    label,
                    f,
                    Colour::WHITE,
                );
            }
        }
        if let Some(t) = &self.title {
            c.text(Point2::new(0.5 * f, 1.5 * f), t, f * 1.3, Colour::WHITE);
        }
        c.to_png()
    }
}

/// Text width estimate, px: the larger of the bitmap font's width and a
/// typical proportional font's (0.6 em per character).
fn text_width(text: &str, size_px: f64) -> f64 {
    bitmap_text_width(text, size_px).max(0.6 * size_px * text.chars().count() as f64)
}

/// Where a needle's label goes: beyond the entry, away from the tip.
fn needle_label_at(entry: &Point2<f64>, tip: &Point2<f64>, width_px: f64, f: f64) -> Point2<f64> {
    let d = entry - tip;
    let n = d.norm();
    let dir = if n > 0.0 {
        d / n
    } else {
        nalgebra::Vector2::new(1.0, 0.0)
    };
    let off = width_px * 0.5 + f;
    let p = entry + dir * off;
    // Shift left when pointing left so the text does not run over the needle.
    Point2::new(if dir.x < 0.0 { p.x - 2.0 * f } else { p.x }, p.y + 0.4 * f)
}

/// Formats a coordinate: clamped, at most 2 decimals, trailing zeros trimmed.
pub(crate) fn num(x: f64) -> String {
    let x = if x.is_finite() {
        x.clamp(-COORD_LIMIT_PX, COORD_LIMIT_PX)
    } else {
        0.0
    };
    let mut t = format!("{x:.2}");
    if t.contains('.') {
        while t.ends_with('0') {
            t.pop();
        }
        if t.ends_with('.') {
            t.pop();
        }
    }
    if t == "-0" {
        t = "0".into();
    }
    t
}

/// XML-escapes text content and attribute values.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&apos;"),
            // Characters not allowed in XML 1.0 are dropped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => s.push(c),
        }
    }
    s
}

fn svg_points(pts: &[Point2<f64>]) -> String {
    let mut s = String::new();
    for (k, p) in pts.iter().enumerate() {
        if k > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{},{}", num(p.x), num(p.y));
    }
    s
}

fn svg_path(s: &mut String, pts: &[Point2<f64>], closed: bool, style: &Style) {
    let tag = if closed { "polygon" } else { "polyline" };
    let _ = write!(s, "<{tag} points=\"{}\"", svg_points(pts));
    match (closed, style.fill) {
        (true, Some(fill)) => {
            let _ = write!(
                s,
                " fill=\"{}\" fill-opacity=\"{}\"",
                fill.to_hex(),
                num(style.fill_opacity)
            );
        }
        _ => s.push_str(" fill=\"none\""),
    }
    match style.stroke {
        Some(c) if style.stroke_width_px > 0.0 => {
            let _ = write!(
                s,
                " stroke=\"{}\" stroke-width=\"{}\"",
                c.to_hex(),
                num(style.stroke_width_px)
            );
            if style.stroke_opacity < 1.0 {
                let _ = write!(s, " stroke-opacity=\"{}\"", num(style.stroke_opacity));
            }
            if let Some([a, b]) = style.dash_px {
                let _ = write!(s, " stroke-dasharray=\"{} {}\"", num(a), num(b));
            }
        }
        _ => s.push_str(" stroke=\"none\""),
    }
    s.push_str("/>\n");
}

fn svg_marker(s: &mut String, at: &Point2<f64>, shape: Marker, size: f64, colour: Colour) {
    let c = colour.to_hex();
    let r = size * 0.5;
    match shape {
        Marker::Cross => {
            let _ = writeln!(
                s,
                "<path d=\"M{} {}H{}M{} {}V{}\" stroke=\"{c}\" stroke-width=\"1.5\"/>",
                num(at.x - r),
                num(at.y),
                num(at.x + r),
                num(at.x),
                num(at.y - r),
                num(at.y + r)
            );
        }
        Marker::Circle => {
            let _ = writeln!(
                s,
                "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" stroke=\"{c}\" stroke-width=\"1.5\"/>",
                num(at.x),
                num(at.y),
                num(r)
            );
        }
        Marker::Dot => {
            let _ = writeln!(
                s,
                "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{c}\" stroke=\"none\"/>",
                num(at.x),
                num(at.y),
                num(r)
            );
        }
    }
}

fn raster_marker(c: &mut Canvas, at: &Point2<f64>, shape: Marker, size: f64, colour: Colour) {
    let r = size * 0.5;
    match shape {
        Marker::Cross => {
            let h = nalgebra::Vector2::new(r, 0.0);
            let v = nalgebra::Vector2::new(0.0, r);
            c.polyline(&[at - h, at + h], false, 1.5, colour, 1.0, None);
            c.polyline(&[at - v, at + v], false, 1.5, colour, 1.0, None);
        }
        Marker::Circle => c.ring(*at, r, 1.5, colour, 1.0),
        Marker::Dot => c.disc(*at, r, colour, 1.0),
    }
}

/// Text with a 1 px black shadow for contrast on any background.
fn svg_text(s: &mut String, at: &Point2<f64>, text: &str, size: f64, colour: Colour) {
    let t = xml_escape(text);
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

fn svg_swatch(s: &mut String, x0: f64, x1: f64, y: f64, sw: LegendSwatch, colour: Colour, f: f64) {
    let c = colour.to_hex();
    match sw {
        LegendSwatch::Line | LegendSwatch::Dashed => {
            let dash = if sw == LegendSwatch::Dashed {
                format!(" stroke-dasharray=\"{} {}\"", num(f * 0.4), num(f * 0.3))
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{c}\" stroke-width=\"2\"{dash}/>",
                num(x0),
                num(y),
                num(x1),
                num(y)
            );
        }
        LegendSwatch::Band => {
            let _ = writeln!(
                s,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{c}\" stroke-opacity=\"{NEEDLE_BAND_OPACITY}\" stroke-width=\"{}\" stroke-linecap=\"butt\"/>",
                num(x0),
                num(y),
                num(x1),
                num(y),
                num(f * 0.8)
            );
            let _ = writeln!(
                s,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{c}\" stroke-width=\"1.25\"/>",
                num(x0),
                num(y),
                num(x1),
                num(y)
            );
        }
        LegendSwatch::Marker(m) => {
            svg_marker(s, &Point2::new((x0 + x1) * 0.5, y), m, f * 0.8, colour);
        }
    }
}

fn raster_swatch(
    c: &mut Canvas,
    x0: f64,
    x1: f64,
    y: f64,
    sw: LegendSwatch,
    colour: Colour,
    f: f64,
) {
    let (a, b) = (Point2::new(x0, y), Point2::new(x1, y));
    match sw {
        LegendSwatch::Line => c.polyline(&[a, b], false, 2.0, colour, 1.0, None),
        LegendSwatch::Dashed => {
            c.polyline(&[a, b], false, 2.0, colour, 1.0, Some([f * 0.4, f * 0.3]))
        }
        LegendSwatch::Band => {
            c.polyline(&[a, b], false, f * 0.8, colour, NEEDLE_BAND_OPACITY, None);
            c.polyline(&[a, b], false, 1.25, colour, 1.0, None);
        }
        LegendSwatch::Marker(m) => {
            raster_marker(c, &Point2::new((x0 + x1) * 0.5, y), m, f * 0.8, colour)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_compact_and_finite() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(12.345), "12.35");
        assert_eq!(num(2.5), "2.5");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(num(1e300), "1000000");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(xml_escape("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn odd_input_is_skipped_not_drawn() {
        let o = Overlay::new([10, 10])
            .polyline(&[Point2::new(f64::NAN, 0.0)], Style::default())
            .marker(Point2::new(0.0, f64::INFINITY), Marker::Dot, 3.0, Colour::WHITE, None)
            .needle(Point2::origin(), Point2::new(f64::NAN, 1.0), 2.0, Colour::WHITE, None)
            .text(Point2::origin(), "x", f64::NAN, Colour::WHITE)
            .scale_bar(f64::NAN, 10.0);
        assert_eq!(o.layer_count(), 0);
        assert!(!o.to_svg().contains("NaN"));
        assert!(Overlay::new([0, 5]).to_png().is_err());
    }
}
