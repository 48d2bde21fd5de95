//! "Did you mean ...?" for misspelled keys and values: the valid name nearest by edit distance,
//! offered only when it is near enough to be a typo rather than a different word.

/// Edit distance counting an insertion, deletion, substitution or swap of neighbours as one
/// (optimal string alignment), case-insensitive: `helth`/`health` and `wieght`/`weight` are 1.
pub(super) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    // rows[i][j] = distance between a[..i] and b[..j]; three rows suffice for swaps.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(before[j - 2] + 1);
            }
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate nearest to `word` if it is a likely typo of it: one edit for short names,
/// up to a third of the length for longer ones. Ties go to the earlier candidate.
pub(super) fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The message for a key that is not valid where it is: a suggestion for a near miss, else the
/// list of valid keys at that level.
pub(super) fn unknown_key(key: &str, valid: &[&str]) -> String {
    match nearest(key, valid) {
        Some(near) => format!("unknown key `{key}`; did you mean `{near}`?"),
        None if valid.is_empty() => format!("unknown key `{key}`; no keys are valid here"),
        None => format!("unknown key `{key}`; valid keys here: {}", valid.join(", ")),
    }
}

/// The message for a value not among `valid`, e.g. `unknown balance "least_con"; did you mean
/// "least_conn"? (expected round_robin, least_conn, random or hash)`.
pub(super) fn unknown_value(what: &str, value: &str, valid: &[&str]) -> String {
    let expected = match valid {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    };
    match nearest(value, valid) {
        Some(near) => {
            format!("unknown {what} {value:?}; did you mean {near:?}? (expected {expected})")
        }
        None => format!("unknown {what} {value:?}; expected {expected}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits_and_swaps_as_one() {
        assert_eq!(distance("health", "health"), 0);
        assert_eq!(distance("helth", "health"), 1);
        assert_eq!(distance("wieght", "weight"), 1);
        assert_eq!(distance("least_con", "least_conn"), 1);
        assert_eq!(distance("Balance", "balance"), 0);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn nearest_offers_typos_but_not_other_words() {
        let keys = ["balance", "health", "passive", "backend"];
        assert_eq!(nearest("helth", &keys), Some("health"));
        assert_eq!(nearest("balanse", &keys), Some("balance"));
        assert_eq!(nearest("bogus", &keys), None);
        assert_eq!(nearest("id", &["ip", "id"]), Some("id"));
        assert_eq!(nearest("x", &["id"]), None);
    }

    #[test]
    fn unknown_key_suggests_or_lists() {
        assert_eq!(
            unknown_key("helth", &["balance", "health"]),
            "unknown key `helth`; did you mean `health`?"
        );
        assert_eq!(
            unknown_key("bogus", &["balance", "health"]),
            "unknown key `bogus`; valid keys here: balance, health"
        );
    }

    #[test]
    fn unknown_value_suggests_and_always_lists() {
        let valid = ["round_robin", "least_conn", "random", "hash"];
        assert_eq!(
            unknown_value("balance", "least_con", &valid),
            "unknown balance \"least_con\"; did you mean \"least_conn\"? \
             (expected round_robin, least_conn, random or hash)"
        );
        assert_eq!(
            unknown_value("balance", "fastest", &valid),
            "unknown balance \"fastest\"; expected round_robin, least_conn, random or hash"
        );
    }
}
