//! Upstream's colouring: a fixed map from words (icons, tags, run phases) to ANSI colour codes. A word with no
//! colour is still wrapped in the reset code `ESC[0m…ESC[0m`, as upstream does to keep column widths even.

/// Colours text, or leaves it alone when colour is off.
#[derive(Debug, Clone, Copy)]
pub struct Painter {
    /// Whether to emit escape codes at all.
    pub colour: bool,
}

const RED: u8 = 31;
const GREEN: u8 = 32;
const YELLOW: u8 = 33;
const HI_BLUE: u8 = 94;

/// The colour upstream gives a word (0, the reset code, for any word it does not know).
fn code(word: &str) -> u8 {
    match word {
        "◷" | "?" | "canary" => YELLOW,
        "◌" | "preview" | "ping" | "pong" | "Pending" | "Running" => HI_BLUE,
        "⚠" | "✖" => RED,
        "✔" | "stable" | "active" => GREEN,
        _ => 0,
    }
}

impl Painter {
    /// `s` in the colour of the word `s` itself (upstream's `colorize`).
    pub fn word(self, s: &str) -> String {
        self.as_word(s, s)
    }

    /// `s` in the colour of `word` (upstream's `colorizeStatus`).
    pub fn as_word(self, s: &str, word: &str) -> String {
        if self.colour {
            format!("\x1b[{}m{s}\x1b[0m", code(word))
        } else {
            s.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_words_are_wrapped_in_the_reset_code() {
        let on = Painter { colour: true };
        assert_eq!(on.word("✔"), "\x1b[32m✔\x1b[0m");
        assert_eq!(on.word("॥"), "\x1b[0m॥\x1b[0m");
        assert_eq!(on.as_word("run-1", "Running"), "\x1b[94mrun-1\x1b[0m");
        assert_eq!(on.as_word("run-1", "Successful"), "\x1b[0mrun-1\x1b[0m");
        assert_eq!(Painter { colour: false }.word("✔"), "✔");
    }
}
