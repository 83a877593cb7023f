//! Text in terminal cells: Vietnamese subjects carry combining marks (when written decomposed),
//! names may carry wide characters, and a column is as wide as its cells, not its `char`s. Every
//! cell the lists draw goes through [`fit`], so that columns line up whatever the text.

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// The cells `text` takes on a terminal (wide characters two, combining marks none).
pub(crate) fn width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// `text` made safe to draw: control characters (a subject comes from another agency and could
/// carry escape sequences) and bidirectional controls become `�`, line breaks a space.
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() => '\u{FFFD}',
            '\u{061C}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// `text` in exactly `cells` cells: cut at a grapheme boundary with `…` when too long (never
/// half a wide character or a letter without its marks), padded with spaces when short.
pub(crate) fn fit(text: &str, cells: usize) -> String {
    let text = clean(text);
    let mut out = String::new();
    let mut used = 0;
    if width(&text) <= cells {
        out.push_str(&text);
        used = width(&text);
    } else if cells > 0 {
        // Room for the ellipsis (one cell).
        for g in text.graphemes(true) {
            let w = width(g);
            if used + w > cells - 1 {
                break;
            }
            out.push_str(g);
            used += w;
        }
        out.push('…');
        used += 1;
    }
    out.extend(std::iter::repeat_n(' ', cells.saturating_sub(used)));
    out
}

/// `text` cut (not padded) to at most `cells` cells, as [`fit`] cuts it.
pub(crate) fn cut(text: &str, cells: usize) -> String {
    fit(text, cells).trim_end_matches(' ').to_owned()
}

/// The end of `text` that fits in `cells` cells (what an input field shows while typing on).
pub(crate) fn tail(text: &str, cells: usize) -> String {
    let text = clean(text);
    let mut kept: Vec<&str> = Vec::new();
    let mut used = 0;
    for g in text.graphemes(true).rev() {
        let w = width(g);
        if used + w > cells {
            break;
        }
        kept.push(g);
        used += w;
    }
    kept.into_iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnamese_composed_and_decomposed_take_one_cell_per_letter() {
        let composed = "Nghị định";
        let decomposed = "Nghi\u{0323} đi\u{0323}nh";
        assert_eq!(width(composed), 9);
        assert_eq!(width(decomposed), 9);
        assert_eq!(width(&fit(decomposed, 12)), 12);
    }

    #[test]
    fn a_cut_never_splits_a_grapheme_or_a_wide_character() {
        // "ệ" decomposed is three chars: e, U+0323, U+0302.
        let text = "Vie\u{0323}\u{0302}t Nam";
        let cut4 = fit(text, 4);
        assert_eq!(cut4, "Vie\u{0323}\u{0302}…");
        assert_eq!(width(&cut4), 4);
        // A wide character that would straddle the edge is left out, the cell padded.
        let wide = fit("会議の件", 4);
        assert_eq!(wide, "会… ");
        assert_eq!(width(&wide), 4);
        assert_eq!(fit("abc", 0), "");
        assert_eq!(fit("abc", 1), "…");
        assert_eq!(tail("Nghị định", 5), " định");
        assert_eq!(tail("会議", 3), "議");
    }

    #[test]
    fn controls_are_shown_not_obeyed() {
        let hostile = "Công văn\u{1b}[2J\u{202E}xyz\nnext";
        let shown = clean(hostile);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert!(!shown.contains('\u{202E}'));
        assert_eq!(width(&fit(hostile, 30)), 30);
    }
}
