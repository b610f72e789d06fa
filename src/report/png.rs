//! PNG copies of the SVG figures, rendered from the very SVG text (so both files show the same
//! figure) with resvg and the system's fonts.

use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use resvg::{tiny_skia, usvg};

/// Pixels per SVG unit: the PNG has the SVG's nominal size (twice that quadruples the file,
/// ~1 MB, for the fine grid's anti-aliased shades).
const SCALE: f32 = 1.0;

/// Sans-serif families to draw text with, the first installed one wins.
const SANS: [&str; 5] = [
    "DejaVu Sans",
    "Liberation Sans",
    "Arial",
    "Helvetica",
    "Noto Sans",
];

/// The system's fonts, loaded once per process, with `sans-serif` mapped to an installed family.
/// `None` when the system has no font at all.
fn fonts() -> Option<Arc<usvg::fontdb::Database>> {
    static DB: OnceLock<Option<Arc<usvg::fontdb::Database>>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_system_fonts();
        let installed = |name: &str| {
            db.faces()
                .any(|f| f.families.iter().any(|(family, _)| family == name))
        };
        let family = SANS
            .into_iter()
            .find(|name| installed(name))
            .map(str::to_string)
            .or_else(|| db.faces().next()?.families.first().map(|f| f.0.clone()))?;
        db.set_sans_serif_family(family.clone());
        db.set_serif_family(family);
        Some(Arc::new(db))
    })
    .clone()
}

/// Renders `svg` (the text of an SVG document) to a PNG at `path`, atomically, on a white
/// background. Fails, naming the file, when the SVG does not parse or the system has no fonts
/// (the PNG would have lost every label).
pub fn svg_to_png(svg: &str, path: &Path) -> io::Result<()> {
    let fail = |why: String| io::Error::other(format!("cannot draw {}: {why}", path.display()));
    let fontdb = fonts().ok_or_else(|| {
        fail("no fonts are installed for the labels (install e.g. fonts-dejavu-core)".into())
    })?;
    let opt = usvg::Options {
        fontdb,
        font_family: "sans-serif".into(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| fail(e.to_string()))?;
    let size = tree.size();
    let (w, h) = (
        (size.width() * SCALE).ceil() as u32,
        (size.height() * SCALE).ceil() as u32,
    );
    let mut pixmap = tiny_skia::Pixmap::new(w, h).ok_or_else(|| fail(format!("size {w}×{h}")))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(SCALE, SCALE),
        &mut pixmap.as_mut(),
    );
    let bytes = pixmap.encode_png().map_err(|e| fail(e.to_string()))?;
    super::atomic_write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixels of `png` that are not white, from its RGBA data.
    fn inked(png: &[u8]) -> usize {
        let p = tiny_skia::Pixmap::decode_png(png).unwrap();
        p.pixels()
            .iter()
            .filter(|px| px.red() < 200 || px.green() < 200 || px.blue() < 200)
            .count()
    }

    /// Text is drawn (the fonts were found): a label alone inks pixels, at the SVG's size.
    #[test]
    fn text_and_lines_reach_the_png() {
        let dir = crate::data::ScratchDir::new("png").unwrap();
        let text = r#"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40">
            <text x="5" y="30" font-family="sans-serif" font-size="24">λ₁ 2/η</text></svg>"#;
        svg_to_png(text, &dir.path.join("t.png")).unwrap();
        let png = std::fs::read(dir.path.join("t.png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let p = tiny_skia::Pixmap::decode_png(&png).unwrap();
        assert_eq!((p.width(), p.height()), (120, 40));
        assert!(inked(&png) > 50, "the label drew {} pixels", inked(&png));

        let blank = r#"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40"></svg>"#;
        svg_to_png(blank, &dir.path.join("b.png")).unwrap();
        assert_eq!(inked(&std::fs::read(dir.path.join("b.png")).unwrap()), 0);

        let err = svg_to_png("<svg", &dir.path.join("x.png")).unwrap_err();
        assert!(err.to_string().contains("x.png"), "{err}");
        assert!(!dir.path.join("x.png").exists());
    }
}
