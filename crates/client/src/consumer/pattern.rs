//! Pattern subscriptions (Java's `subscribe(Pattern)`): every topic whose whole
//! name matches a regular expression. Internal topics never match, as with the
//! Java consumer's default `exclude.internal.topics=true`.

use regex::Regex;

use crate::cluster::Metadata;
use crate::error::{Error, Result};

/// Topics a pattern never matches.
const INTERNAL_TOPICS: [&str; 3] = [
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
];

/// A compiled topic pattern; it must match a name whole, as Java's
/// `Matcher::matches`.
#[derive(Debug, Clone)]
pub(crate) struct TopicPattern {
    source: String,
    anchored: Regex,
}

impl TopicPattern {
    /// Compiles `source`; an invalid expression is an `InvalidArgument` error.
    pub(crate) fn new(source: &str) -> Result<TopicPattern> {
        let invalid =
            |e: regex::Error| Error::InvalidArgument(format!("topic pattern {source:?}: {e}"));
        // Checked alone first: `a)|(b` is invalid, though wrapped it would compile.
        Regex::new(source).map_err(invalid)?;
        let anchored = Regex::new(&format!("^(?:{source})$")).map_err(invalid)?;
        Ok(TopicPattern {
            source: source.to_owned(),
            anchored,
        })
    }

    /// The expression as given.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn matches(&self, topic: &str) -> bool {
        !INTERNAL_TOPICS.contains(&topic) && self.anchored.is_match(topic)
    }

    /// The matching topics of `metadata`, sorted.
    pub(crate) fn matching(&self, metadata: &Metadata) -> Vec<String> {
        let mut topics: Vec<String> = metadata
            .topics
            .keys()
            .filter(|t| self.matches(t))
            .cloned()
            .collect();
        topics.sort();
        topics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_whole_names_and_never_internal_topics() {
        let p = TopicPattern::new("orders-.*").unwrap();
        assert!(p.matches("orders-eu"));
        assert!(!p.matches("old-orders-eu"), "anchored at the start");
        let q = TopicPattern::new("orders|payments").unwrap();
        assert!(q.matches("payments"));
        assert!(
            !q.matches("payments-x"),
            "anchored at the end, per alternative"
        );
        let all = TopicPattern::new(".*").unwrap();
        assert!(all.matches("t"));
        assert!(!all.matches("__consumer_offsets"));
        assert_eq!(all.source(), ".*");
    }

    #[test]
    fn an_invalid_pattern_is_an_argument_error() {
        for bad in ["a)|(b", "(", "[z-a]"] {
            let err = TopicPattern::new(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad}: {err:?}");
        }
    }
}
