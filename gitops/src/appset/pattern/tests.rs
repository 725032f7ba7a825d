use super::*;

#[test]
fn directories_match_with_go_path_match() {
    let cases = [
        ("apps/*", "apps/guestbook", true),
        ("apps/*", "apps/guestbook/overlays", false),
        ("apps/*/overlays", "apps/guestbook/overlays", true),
        ("*", "apps", true),
        ("*", "apps/x", false),
        ("apps/guest?ook", "apps/guestbook", true),
        ("apps/?", "apps/ab", false),
        ("apps/[a-c]*", "apps/bar", true),
        ("apps/[^a-c]*", "apps/bar", false),
        ("apps/[^a-c]*", "apps/zed", true),
        ("apps/\\*", "apps/*", true),
        ("apps/\\*", "apps/x", false),
        ("apps/[", "apps/[", false),
        ("apps/[]a]", "apps/a", false),
        ("apps/[a-]", "apps/a", false),
        ("apps/x\\", "apps/x", false),
        ("apps", "apps", true),
        ("apps/**", "apps/a/b", false),
        ("apps/{a,b}", "apps/a", false),
    ];
    for (pattern, name, want) in cases {
        assert_eq!(go_path_match(pattern, name), want, "{pattern} vs {name}");
    }
}

#[test]
fn files_match_with_git_pathspecs() {
    let cases = [
        (
            "cluster-config/**/config.json",
            "cluster-config/engineering/dev/config.json",
            true,
        ),
        (
            "cluster-config/*/config.json",
            "cluster-config/engineering/dev/config.json",
            true,
        ),
        ("cluster-config/*.json", "cluster-config/a/b.json", true),
        ("cluster-config/*.json", "other/a.json", false),
        ("*.yaml", "deep/dir/x.yaml", true),
        ("config.json", "config.json", true),
        ("config.json", "a/config.json", false),
        ("apps", "apps/a/b.yaml", true),
        ("apps/", "apps/a/b.yaml", true),
        ("app", "apps/a.yaml", false),
        ("./apps/*.json", "apps/x.json", true),
        (".", "anything/at/all", true),
        ("a?c", "a/c", true),
        ("[!x]*.json", "y.json", true),
        ("[^x]*.json", "x.json", false),
        ("[]]x", "]x", true),
        ("a\\*", "a*", true),
        ("a\\*", "ab", false),
        ("{a,b}.json", "a.json", false),
    ];
    for (spec, path, want) in cases {
        assert_eq!(pathspec_match(spec, path), want, "{spec} vs {path}");
    }
}

/// A small deterministic generator for the pseudo-random tests.
struct Lcg(u64);

impl Lcg {
    fn pick<'a>(&mut self, from: &'a [&'a str]) -> &'a str {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        from[usize::try_from(self.0 >> 33).unwrap_or(0) % from.len()]
    }
}

#[test]
fn pseudo_random_patterns_never_panic_and_literals_match_only_themselves() {
    let pieces = [
        "a", "b", "/", "*", "?", "[", "]", "^", "!", "-", "\\", ".", "..", "**", "é", "{", ",",
    ];
    let mut rng = Lcg(7);
    for _ in 0..5000 {
        let pattern: String = (0..8).map(|_| rng.pick(&pieces)).collect();
        let path: String = (0..8)
            .map(|_| rng.pick(&["a", "b", "/", ".", "é", "-"]))
            .collect();
        let _ = go_path_match(&pattern, &path);
        let _ = pathspec_match(&pattern, &path);
        let literal: String = path.chars().filter(|c| *c != '/').collect();
        assert!(go_path_match(&literal, &literal));
        assert_eq!(go_path_match("*", &path), !path.contains('/'), "{path}");
        assert!(pathspec_match("*", &path) || path.is_empty());
    }
}

#[test]
fn many_stars_against_a_long_path_stay_fast() {
    let pattern = "*a".repeat(200) + "b";
    let path = "a".repeat(5000);
    assert!(!go_path_match(&pattern, &path));
    assert!(!pathspec_match(&pattern, &path));
}
