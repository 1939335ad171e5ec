//! What the charts share: one font, compiled in, and one color per implementation.

use crate::target::Kind;
use plotters::prelude::*;
use std::error::Error;

pub(crate) const FONT: &str = "sans-serif";

pub(crate) fn color(kind: Kind) -> RGBColor {
    match kind {
        Kind::Ours => RGBColor(31, 119, 180),
        Kind::Reference => RGBColor(214, 39, 40),
        Kind::Floor => RGBColor(120, 120, 120),
    }
}

/// The font is compiled in: no fontconfig, no system font needed.
pub(crate) fn register_font() -> Result<(), Box<dyn Error>> {
    plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| "embedded DejaVu Sans did not parse".into())
}
