//! Colours and stroke/fill styles shared by the SVG writer and the rasteriser.

/// An sRGB colour, 8 bits per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Colour {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
}

impl Colour {
    /// A colour from its channels.
    #[must_use]
    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Self { r, g, b }
    }

    /// `#rrggbb`.
    #[must_use]
    pub fn to_hex(&self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }

    pub(crate) fn to_f32(self) -> [f32; 3] {
        [
            f32::from(self.r) / 255.0,
            f32::from(self.g) / 255.0,
            f32::from(self.b) / 255.0,
        ]
    }

    /// White.
    pub const WHITE: Colour = Colour::rgb(255, 255, 255);
    /// Black.
    pub const BLACK: Colour = Colour::rgb(0, 0, 0);
    /// Bone silhouettes (light yellow).
    pub const BONE: Colour = Colour::rgb(255, 236, 139);
    /// Lesion (red-orange).
    pub const LESION: Colour = Colour::rgb(255, 80, 40);
    /// Annotations (cyan).
    pub const ANNOTATION: Colour = Colour::rgb(0, 220, 255);
    /// Entry points (green).
    pub const ENTRY: Colour = Colour::rgb(60, 230, 90);
    /// Colours for needles 1, 2, ... (cycled): blue, magenta, orange, lime.
    pub const NEEDLES: [Colour; 4] = [
        Colour::rgb(80, 150, 255),
        Colour::rgb(255, 70, 220),
        Colour::rgb(255, 170, 0),
        Colour::rgb(170, 255, 60),
    ];
}

/// How a polyline or polygon is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Style {
    /// Stroke colour; `None` for no outline.
    pub stroke: Option<Colour>,
    /// Stroke width, px.
    pub stroke_width_px: f64,
    /// Dash pattern `[on, off]`, px; `None` for solid.
    pub dash_px: Option<[f64; 2]>,
    /// Fill colour (polygons only); `None` for no fill.
    pub fill: Option<Colour>,
    /// Fill opacity in `[0, 1]`.
    pub fill_opacity: f64,
    /// Stroke opacity in `[0, 1]`.
    pub stroke_opacity: f64,
}

impl Default for Style {
    /// A 1.5 px white solid stroke, no fill.
    fn default() -> Self {
        Self {
            stroke: Some(Colour::WHITE),
            stroke_width_px: 1.5,
            dash_px: None,
            fill: None,
            fill_opacity: 0.3,
            stroke_opacity: 1.0,
        }
    }
}

impl Style {
    /// A solid stroke of `colour`, `width_px` wide.
    #[must_use]
    pub fn stroke(colour: Colour, width_px: f64) -> Self {
        Self {
            stroke: Some(colour),
            stroke_width_px: width_px,
            ..Self::default()
        }
    }

    /// The same style dashed `on_px`, `off_px`.
    #[must_use]
    pub fn dashed(mut self, on_px: f64, off_px: f64) -> Self {
        self.dash_px = Some([on_px, off_px]);
        self
    }

    /// The same style with a fill of `colour` at `opacity` (0..=1).
    #[must_use]
    pub fn filled(mut self, colour: Colour, opacity: f64) -> Self {
        self.fill = Some(colour);
        self.fill_opacity = opacity;
        self
    }

    /// The same style with the stroke at `opacity` (0..=1).
    #[must_use]
    pub fn with_stroke_opacity(mut self, opacity: f64) -> Self {
        self.stroke_opacity = opacity;
        self
    }

    /// Finite, clamped values (NaN widths become 0, opacities clamp to 0..=1).
    pub(crate) fn sanitised(&self) -> Self {
        let unit = |x: f64| if x.is_finite() { x.clamp(0.0, 1.0) } else { 0.0 };
        let pos = |x: f64| if x.is_finite() { x.clamp(0.0, 1e4) } else { 0.0 };
        Self {
            stroke: self.stroke,
            stroke_width_px: pos(self.stroke_width_px),
            dash_px: self
                .dash_px
                .map(|[a, b]| [pos(a), pos(b)])
                .filter(|[a, b]| *a > 0.0 && *b > 0.0),
            fill: self.fill,
            fill_opacity: unit(self.fill_opacity),
            stroke_opacity: unit(self.stroke_opacity),
        }
    }
}

/// Marker shapes for points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// An upright cross `+`.
    Cross,
    /// A circle outline.
    Circle,
    /// A filled disc.
    Dot,
}
