//! Column alignment as Go's `text/tabwriter` does it with `minwidth 0, padding 2, padchar ' '`: every
//! tab-terminated cell is padded to the widest cell of its column plus two; the last cell of a line is not.
//! Widths ignore ANSI escape sequences (as the ANSI-aware tabwriter of `get rollout` does).

/// Aligns lines whose cells are separated by tabs. Every line must have the same number of cells.
pub fn align(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let columns = rows.iter().map(|r| r.len().saturating_sub(1)).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c).filter(|_| c + 1 < r.len()))
                .map(|s| width(s))
                .max()
                .unwrap_or(0)
                + 2
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        for (c, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if c + 1 < row.len() {
                out.push_str(&" ".repeat(widths[c] - width(cell)));
            }
        }
        out.push('\n');
    }
    out
}

/// The display width of a cell: its characters, not counting `ESC[…m` sequences.
pub fn width(s: &str) -> usize {
    let mut n = 0;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_every_tab_terminated_cell_and_ignores_colour() {
        let lines = [
            "NAME\tKIND\tINFO".to_string(),
            "\x1b[32mlonger-name\x1b[0m\tPod\t".to_string(),
        ];
        assert_eq!(
            align(&lines),
            "NAME         KIND  INFO\n\x1b[32mlonger-name\x1b[0m  Pod   \n"
        );
    }

    #[test]
    fn width_counts_characters_not_bytes() {
        assert_eq!(width("├──⧉ rs"), 7);
        assert_eq!(width("\x1b[0m॥\x1b[0m Paused"), 8);
    }
}
