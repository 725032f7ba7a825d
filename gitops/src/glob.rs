//! Argo CD's globs (`util/glob`, gobwas/glob): `*` any run of characters, `**` any run across separators,
//! `?` one character, `[abc]`/`[!abc]` and `[a-z]`/`[!a-z]` classes, `{a,b}` alternatives, `\\` escapes.
//! Compiled with separators (`/` for repository URLs), `*` and `?` do not cross them; without, they do.
//! One implementation for every glob Argo CD matches this way: directory include/exclude, ignoreDifferences
//! groups and kinds, AppProject repositories, destinations and resources.

/// The deepest `{a,{b,c}}` nesting a glob may have; a deeper one is treated as not compiling.
pub const MAX_GLOB_NESTING: usize = 64;

/// One element of a compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GlobToken {
    /// One given character.
    Literal(char),
    /// `*`: any run of characters without a separator.
    Any,
    /// `**`: any run of characters, separators included.
    AnyAcross,
    /// `?`: any one character but a separator.
    Single,
    /// `[abc]` / `[!abc]`: one character of (not of) the list.
    Class { chars: Vec<char>, negated: bool },
    /// `[a-z]` / `[!a-z]`: one character in (not in) the range.
    Range { lo: char, hi: char, negated: bool },
    /// `{a,b}`: any of the alternatives.
    Alternatives(Vec<Vec<GlobToken>>),
}

/// A compiled Argo CD glob, matched against a whole string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<GlobToken>,
    separators: Vec<char>,
}

/// How a sequence of a glob ended.
enum SequenceEnd {
    Eof,
    Comma,
    Close,
}

struct GlobParser<'p> {
    chars: std::iter::Peekable<std::str::Chars<'p>>,
}

impl Glob {
    /// Compiles `pattern` without separators; `None` when gobwas would refuse it.
    pub fn compile(pattern: &str) -> Option<Glob> {
        Self::with_separators(pattern, &[])
    }

    /// Compiles `pattern` so that `*` and `?` do not cross `separators`.
    pub fn with_separators(pattern: &str, separators: &[char]) -> Option<Glob> {
        if pattern.contains(char::REPLACEMENT_CHARACTER) {
            return None; // gobwas: "could not read rune"
        }
        let mut parser = GlobParser {
            chars: pattern.chars().peekable(),
        };
        parser.sequence(0).ok().map(|(tokens, _)| Glob {
            tokens,
            separators: separators.to_vec(),
        })
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let mut start = vec![false; text.len() + 1];
        start[0] = true;
        advance(&self.tokens, &text, &self.separators, start)
            .last()
            .copied()
            .unwrap_or(false)
    }
}

impl GlobParser<'_> {
    /// Tokens up to the end of the pattern, or (inside `{…}`, at `depth` > 0) up to a `,` or `}`.
    fn sequence(&mut self, depth: usize) -> Result<(Vec<GlobToken>, SequenceEnd), ()> {
        let mut tokens = Vec::new();
        while let Some(c) = self.chars.next() {
            match c {
                '{' => tokens.push(self.alternatives(depth + 1)?),
                ',' if depth > 0 => return Ok((tokens, SequenceEnd::Comma)),
                '}' if depth > 0 => return Ok((tokens, SequenceEnd::Close)),
                '[' => tokens.push(self.class()?),
                '?' => tokens.push(GlobToken::Single),
                '*' => match self.chars.next_if_eq(&'*') {
                    Some(_) => tokens.push(GlobToken::AnyAcross),
                    None => tokens.push(GlobToken::Any),
                },
                // A trailing backslash escapes nothing and is dropped, as gobwas drops it.
                '\\' => tokens.extend(self.chars.next().map(GlobToken::Literal)),
                other => tokens.push(GlobToken::Literal(other)),
            }
        }
        Ok((tokens, SequenceEnd::Eof))
    }

    /// After `{`: alternatives up to `}` (or the end of the pattern, which gobwas accepts as a close).
    fn alternatives(&mut self, depth: usize) -> Result<GlobToken, ()> {
        if depth > MAX_GLOB_NESTING {
            return Err(());
        }
        let mut alternatives = Vec::new();
        loop {
            let (tokens, end) = self.sequence(depth)?;
            alternatives.push(tokens);
            if !matches!(end, SequenceEnd::Comma) {
                return Ok(GlobToken::Alternatives(alternatives));
            }
        }
    }

    /// After `[`: `[!]` then either `lo-hi]` or a non-empty list of characters up to `]`.
    fn class(&mut self) -> Result<GlobToken, ()> {
        let mut first = self.chars.next().ok_or(())?;
        let negated = first == '!';
        if negated {
            first = self.chars.next().ok_or(())?;
        }
        if self.chars.next_if_eq(&'-').is_some() {
            let hi = self.chars.next().ok_or(())?;
            if self.chars.next() != Some(']') || hi < first {
                return Err(());
            }
            return Ok(GlobToken::Range {
                lo: first,
                hi,
                negated,
            });
        }
        let mut chars = Vec::new();
        let mut next = Some(first);
        loop {
            match next.take().or_else(|| self.chars.next()).ok_or(())? {
                ']' => break,
                '\\' => chars.push(self.chars.next().ok_or(())?),
                other => chars.push(other),
            }
        }
        if chars.is_empty() {
            return Err(());
        }
        Ok(GlobToken::Class { chars, negated })
    }
}

/// The positions of `text` reachable after `tokens`, from the positions in `current`.
fn advance(tokens: &[GlobToken], text: &[char], separators: &[char], mut current: Vec<bool>) -> Vec<bool> {
    for token in tokens {
        if !current.contains(&true) {
            break;
        }
        let mut next = vec![false; current.len()];
        match token {
            GlobToken::AnyAcross => {
                if let Some(first) = current.iter().position(|&reached| reached) {
                    next.iter_mut().skip(first).for_each(|reached| *reached = true);
                }
            }
            GlobToken::Any => {
                // From each reached position, on up to (not past) the next separator.
                let mut open = false;
                for i in 0..current.len() {
                    open |= current[i];
                    next[i] |= open;
                    if i < text.len() && separators.contains(&text[i]) {
                        open = false;
                    }
                }
            }
            GlobToken::Alternatives(alternatives) => {
                for alternative in alternatives {
                    let reached = advance(alternative, text, separators, current.clone());
                    next.iter_mut().zip(reached).for_each(|(n, r)| *n |= r);
                }
            }
            single => {
                for (i, c) in text.iter().enumerate() {
                    let crosses = matches!(single, GlobToken::Single) && separators.contains(c);
                    if current[i] && !crosses && matches_one(single, *c) {
                        next[i + 1] = true;
                    }
                }
            }
        }
        current = next;
    }
    current
}

fn matches_one(token: &GlobToken, c: char) -> bool {
    match token {
        GlobToken::Literal(literal) => *literal == c,
        GlobToken::Single => true,
        GlobToken::Class { chars, negated } => chars.contains(&c) != *negated,
        GlobToken::Range { lo, hi, negated } => (*lo..=*hi).contains(&c) != *negated,
        GlobToken::Any | GlobToken::AnyAcross | GlobToken::Alternatives(_) => false,
    }
}

/// Argo CD's `glob.Match(pattern, text, separators...)`: a pattern that does not compile matches nothing.
pub fn matches(pattern: &str, text: &str, separators: &[char]) -> bool {
    Glob::with_separators(pattern, separators).is_some_and(|g| g.matches(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_stop_single_stars_and_question_marks_only() {
        let url = |p: &str, t: &str| matches(p, t, &['/']);
        assert!(url("https://github.com/org/*", "https://github.com/org/repo"));
        assert!(!url(
            "https://github.com/org/*",
            "https://github.com/org/team/repo"
        ));
        assert!(url(
            "https://github.com/org/**",
            "https://github.com/org/team/repo"
        ));
        assert!(!url("https://github.com/org?repo", "https://github.com/org/repo"));
        assert!(url("*", "anything-without-slash") && !url("*", "a/b"));
        assert!(matches("*", "a/b", &[]));
        assert!(url(
            "https://{github,gitlab}.com/*/app",
            "https://gitlab.com/x/app"
        ));
    }

    #[test]
    fn a_pattern_that_does_not_compile_matches_nothing() {
        assert!(!matches("[", "[", &[]));
        assert!(matches("", "", &[]) && !matches("", "x", &[]));
    }
}
