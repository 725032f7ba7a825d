//! The two globs of the git generator: Go's `path.Match` for directories (`*` and `?` stop at `/`,
//! `[^a-z]` classes, `\` escapes; a malformed pattern matches nothing, as upstream logs and skips it), and
//! git's pathspecs for files (`git ls-files -- <pattern>`: a literal prefix, a directory matches everything
//! under it, and wildmatch without `WM_PATHNAME`, so `*` and `?` cross `/`, classes take `!` or `^`).

/// One element of a compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `*`: any run of characters (not `/` when `stop_at_slash`).
    Star,
    /// `?`: any one character (not `/` when `stop_at_slash`).
    Any,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
}

/// Go's `path.Match(pattern, name)`; `false` for a malformed pattern.
pub fn go_path_match(pattern: &str, name: &str) -> bool {
    compile(pattern, &['^'], true).is_some_and(|tokens| matches(&tokens, name, true))
}

/// Whether git's pathspec `spec` (already relative to the repository root) selects the file `path`.
pub fn pathspec_match(spec: &str, path: &str) -> bool {
    let spec = spec.trim_start_matches("./");
    if spec.is_empty() || spec == "." {
        return true;
    }
    let literal = spec.find(['*', '?', '[', '\\']).unwrap_or(spec.len());
    if !path.starts_with(&spec[..literal]) {
        return false;
    }
    let directory = spec.strip_suffix('/').unwrap_or(spec);
    if path == spec
        || path
            .strip_prefix(directory)
            .is_some_and(|rest| rest.starts_with('/'))
    {
        return true;
    }
    literal < spec.len()
        && compile(spec, &['!', '^'], false).is_some_and(|tokens| matches(&tokens, path, false))
}

/// Compiles a glob; `None` when it is malformed (an unclosed class, a trailing `\`, an empty range end).
fn compile(pattern: &str, negators: &[char], go_rules: bool) -> Option<Vec<Token>> {
    let mut chars = pattern.chars().peekable();
    let mut tokens = Vec::new();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' => Token::Star,
            '?' => Token::Any,
            '\\' => Token::Literal(chars.next()?),
            '[' => class(&mut chars, negators, go_rules)?,
            c => Token::Literal(c),
        });
    }
    Some(tokens)
}

fn class(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    negators: &[char],
    go_rules: bool,
) -> Option<Token> {
    let negated = chars.next_if(|c| negators.contains(c)).is_some();
    let mut ranges = Vec::new();
    loop {
        let c = chars.next()?;
        // Go: `]` closes a class that has a range; wildmatch: a leading `]` is literal.
        if c == ']' && (!ranges.is_empty() || go_rules) {
            if ranges.is_empty() {
                return None;
            }
            return Some(Token::Class { ranges, negated });
        }
        if go_rules && c == '-' {
            return None;
        }
        let lo = if c == '\\' { chars.next()? } else { c };
        let hi = if chars.peek() == Some(&'-') {
            chars.next();
            match chars.next()? {
                ']' if !go_rules => {
                    ranges.push((lo, lo));
                    ranges.push(('-', '-'));
                    return Some(Token::Class { ranges, negated });
                }
                ']' | '-' if go_rules => return None,
                '\\' => chars.next()?,
                hi => hi,
            }
        } else {
            lo
        };
        ranges.push((lo, hi));
    }
}

/// Whether the whole of `text` matches: the set of reachable positions advanced token by token, linear in the
/// text for each token (no backtracking, so no pattern takes exponential time).
fn matches(tokens: &[Token], text: &str, stop_at_slash: bool) -> bool {
    let text: Vec<char> = text.chars().collect();
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    for token in tokens {
        let mut next = vec![false; text.len() + 1];
        if *token == Token::Star {
            let mut active = false;
            for pos in 0..=text.len() {
                active |= reach[pos];
                next[pos] = active;
                if stop_at_slash && text.get(pos) == Some(&'/') {
                    active = false;
                }
            }
        } else {
            for pos in 0..text.len() {
                next[pos + 1] = reach[pos] && single(token, text[pos], stop_at_slash);
            }
        }
        reach = next;
    }
    reach[text.len()]
}

fn single(token: &Token, c: char, stop_at_slash: bool) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::Any => !(stop_at_slash && c == '/'),
        // Neither Go nor wildmatch keeps a class from matching `/`.
        Token::Class { ranges, negated } => ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated,
        Token::Star => true,
    }
}

#[cfg(test)]
mod tests;
