//! The stage graph: which stages a channel runs and in what order. Validated when a channel is
//! loaded (unknown stage, missing dependency, missing required input, cycle), then expanded per
//! job into nodes, fanning per-language stages out over the job's languages.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::channel::StageDecl;

/// Every kind of stage reelsmith knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Recordings analysed and highlights selected (scripts with `recordings`).
    Analyze,
    Plan,
    Translate,
    Keyframes,
    Animate,
    /// Stills and generated clips brought to the output's size and frame rate.
    Post,
    Voice,
    Align,
    Captions,
    Music,
    Mix,
    Assemble,
    Shorts,
    Metadata,
    Thumbnail,
}

impl StageKind {
    pub const ALL: [StageKind; 15] = [
        StageKind::Analyze,
        StageKind::Plan,
        StageKind::Translate,
        StageKind::Keyframes,
        StageKind::Animate,
        StageKind::Post,
        StageKind::Voice,
        StageKind::Align,
        StageKind::Captions,
        StageKind::Music,
        StageKind::Mix,
        StageKind::Assemble,
        StageKind::Shorts,
        StageKind::Metadata,
        StageKind::Thumbnail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::Analyze => "analyze",
            StageKind::Plan => "plan",
            StageKind::Translate => "translate",
            StageKind::Keyframes => "keyframes",
            StageKind::Animate => "animate",
            StageKind::Post => "post",
            StageKind::Voice => "voice",
            StageKind::Align => "align",
            StageKind::Captions => "captions",
            StageKind::Music => "music",
            StageKind::Mix => "mix",
            StageKind::Assemble => "assemble",
            StageKind::Shorts => "shorts",
            StageKind::Metadata => "metadata",
            StageKind::Thumbnail => "thumbnail",
        }
    }

    pub fn parse(s: &str) -> Option<StageKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the stage runs once per output language.
    pub fn per_language(self) -> bool {
        matches!(
            self,
            StageKind::Translate
                | StageKind::Voice
                | StageKind::Align
                | StageKind::Captions
                | StageKind::Mix
                | StageKind::Assemble
                | StageKind::Shorts
                | StageKind::Metadata
                | StageKind::Thumbnail
        )
    }

    /// Stages whose output this stage reads; each must run before it (directly or not).
    pub fn requires(self) -> &'static [StageKind] {
        use StageKind::*;
        match self {
            Analyze => &[],
            Plan => &[],
            Translate => &[Plan],
            Keyframes => &[Plan],
            Animate => &[Plan, Keyframes],
            Post => &[Plan, Keyframes, Animate],
            Voice => &[Plan, Translate],
            Align => &[Plan, Voice],
            Captions => &[Plan, Translate, Align],
            Music => &[Plan],
            Mix => &[Plan, Voice, Align],
            Assemble => &[Plan, Keyframes, Animate, Align, Captions, Mix],
            Shorts => &[Plan, Keyframes, Animate, Align, Captions, Mix],
            Metadata => &[Plan, Translate, Align],
            Thumbnail => &[Plan, Keyframes, Translate],
        }
    }

    /// Inputs used when the channel runs them, skipped otherwise (e.g. a channel without music).
    pub fn optional(self) -> &'static [StageKind] {
        match self {
            // The highlights of recordings become the plan's scenes.
            StageKind::Plan => &[StageKind::Analyze],
            // The game audio of recorded scenes is the bed under the commentary.
            StageKind::Mix => &[StageKind::Music, StageKind::Animate],
            // Assembly draws the post stage's stills and clips when the channel runs it.
            StageKind::Assemble | StageKind::Shorts => &[StageKind::Post],
            _ => &[],
        }
    }
}

impl fmt::Display for StageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GraphError {
    #[error("unknown stage `{0}`; known stages: {known}", known = known_stages())]
    UnknownStage(String),
    #[error("stage `{stage}` runs after `{dep}`, which is not a stage of this graph; add [stages.{dep}] or remove it from `after`")]
    MissingDependency { stage: String, dep: String },
    #[error("stage `{stage}` needs the output of `{input}`, but `{input}` does not run before it; add it to `after`")]
    MissingInput { stage: String, input: String },
    #[error("the stages form a cycle: {0}")]
    Cycle(String),
    #[error("the graph has no `{0}` stage; every channel must produce it")]
    Required(&'static str),
}

fn known_stages() -> String {
    StageKind::ALL.map(|k| k.as_str()).join(", ")
}

/// A validated graph of stage kinds, in a deterministic topological order.
#[derive(Clone, Debug, PartialEq)]
pub struct StageGraph {
    order: Vec<StageKind>,
    after: BTreeMap<StageKind, BTreeSet<StageKind>>,
    ancestors: BTreeMap<StageKind, BTreeSet<StageKind>>,
}

/// One unit of work in a job: a stage kind, for one language or for all.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Node {
    pub kind: StageKind,
    pub lang: Option<String>,
}

impl Node {
    /// `voice:en`, or `plan` for shared stages.
    pub fn name(&self) -> String {
        match &self.lang {
            Some(l) => format!("{}:{l}", self.kind),
            None => self.kind.to_string(),
        }
    }
}

impl StageGraph {
    pub fn from_decls(decls: &BTreeMap<String, StageDecl>) -> Result<Self, GraphError> {
        let mut after: BTreeMap<StageKind, BTreeSet<StageKind>> = BTreeMap::new();
        for (name, decl) in decls {
            let kind =
                StageKind::parse(name).ok_or_else(|| GraphError::UnknownStage(name.clone()))?;
            let mut deps = BTreeSet::new();
            for d in &decl.after {
                let dk = StageKind::parse(d).ok_or_else(|| GraphError::UnknownStage(d.clone()))?;
                if !decls.contains_key(d) {
                    return Err(GraphError::MissingDependency {
                        stage: name.clone(),
                        dep: d.clone(),
                    });
                }
                deps.insert(dk);
            }
            after.insert(kind, deps);
        }
        // Kahn's algorithm, picking the lowest kind first for a stable order.
        let mut indeg: BTreeMap<StageKind, usize> =
            after.iter().map(|(k, d)| (*k, d.len())).collect();
        let mut order = Vec::new();
        let mut ready: BTreeSet<StageKind> = indeg
            .iter()
            .filter(|(_, &n)| n == 0)
            .map(|(k, _)| *k)
            .collect();
        while let Some(k) = ready.pop_first() {
            order.push(k);
            for (other, deps) in &after {
                if deps.contains(&k) {
                    let n = indeg.get_mut(other).map(|n| {
                        *n -= 1;
                        *n
                    });
                    if n == Some(0) {
                        ready.insert(*other);
                    }
                }
            }
        }
        if order.len() != after.len() {
            let stuck: Vec<&str> = after
                .keys()
                .filter(|k| !order.contains(k))
                .map(|k| k.as_str())
                .collect();
            return Err(GraphError::Cycle(format!(
                "{} depend on each other; break the loop in their `after` lists",
                stuck.join(", ")
            )));
        }
        let mut ancestors: BTreeMap<StageKind, BTreeSet<StageKind>> = BTreeMap::new();
        for k in &order {
            let mut set = BTreeSet::new();
            for d in &after[k] {
                set.insert(*d);
                set.extend(ancestors[d].iter().copied());
            }
            ancestors.insert(*k, set);
        }
        for k in &order {
            for need in k.requires() {
                if !ancestors[k].contains(need) {
                    return Err(GraphError::MissingInput {
                        stage: k.to_string(),
                        input: need.to_string(),
                    });
                }
            }
        }
        for must in [StageKind::Assemble] {
            if !after.contains_key(&must) {
                return Err(GraphError::Required(must.as_str()));
            }
        }
        Ok(Self {
            order,
            after,
            ancestors,
        })
    }

    pub fn kinds(&self) -> &[StageKind] {
        &self.order
    }

    pub fn contains(&self, k: StageKind) -> bool {
        self.after.contains_key(&k)
    }

    pub fn ancestors(&self, k: StageKind) -> impl Iterator<Item = StageKind> + '_ {
        self.ancestors.get(&k).into_iter().flatten().copied()
    }

    /// Expands the graph for `languages`: nodes in topological order, each with its direct
    /// dependencies (a per-language stage depends on the same language's per-language stages).
    pub fn expand(&self, languages: &[String]) -> Vec<(Node, Vec<Node>)> {
        let node_of = |k: StageKind, lang: Option<&String>| -> Vec<Node> {
            if k.per_language() {
                match lang {
                    Some(l) => vec![Node {
                        kind: k,
                        lang: Some(l.clone()),
                    }],
                    None => languages
                        .iter()
                        .map(|l| Node {
                            kind: k,
                            lang: Some(l.clone()),
                        })
                        .collect(),
                }
            } else {
                vec![Node {
                    kind: k,
                    lang: None,
                }]
            }
        };
        let mut out = Vec::new();
        for &k in &self.order {
            for node in node_of(k, None) {
                let mut deps = Vec::new();
                for &d in &self.after[&k] {
                    deps.extend(node_of(d, node.lang.as_ref()));
                }
                out.push((node, deps));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decls(spec: &[(&str, &[&str])]) -> BTreeMap<String, StageDecl> {
        spec.iter()
            .map(|(k, a)| {
                (
                    k.to_string(),
                    StageDecl {
                        after: a.iter().map(|s| s.to_string()).collect(),
                    },
                )
            })
            .collect()
    }

    fn full() -> Vec<(&'static str, &'static [&'static str])> {
        vec![
            ("plan", &[]),
            ("translate", &["plan"]),
            ("keyframes", &["plan"]),
            ("animate", &["keyframes"]),
            ("voice", &["translate"]),
            ("align", &["voice"]),
            ("captions", &["align"]),
            ("music", &["plan"]),
            ("mix", &["align", "music"]),
            ("assemble", &["animate", "captions", "mix"]),
            ("shorts", &["animate", "captions", "mix"]),
            ("metadata", &["align"]),
            ("thumbnail", &["keyframes", "translate"]),
        ]
    }

    #[test]
    fn the_full_graph_sorts_and_expands_per_language() {
        let g = StageGraph::from_decls(&decls(&full())).unwrap();
        assert_eq!(g.kinds()[0], StageKind::Plan);
        let nodes = g.expand(&["en".into(), "ja".into()]);
        let names: Vec<String> = nodes.iter().map(|(n, _)| n.name()).collect();
        assert!(names.contains(&"voice:ja".to_string()));
        assert_eq!(
            names.iter().filter(|n| n.starts_with("keyframes")).count(),
            1
        );
        let (_, deps) = nodes
            .iter()
            .find(|(n, _)| n.name() == "assemble:ja")
            .unwrap();
        let dn: Vec<String> = deps.iter().map(|d| d.name()).collect();
        assert_eq!(dn, ["animate", "captions:ja", "mix:ja"]);
        // Topological: every dependency comes earlier.
        for (i, (_, deps)) in nodes.iter().enumerate() {
            for d in deps {
                assert!(
                    nodes[..i].iter().any(|(n, _)| n == d),
                    "{} before its dep",
                    d.name()
                );
            }
        }
    }

    #[test]
    fn unknown_stage_is_named() {
        let mut d = full();
        d.push(("sparkle", &["plan"]));
        let e = StageGraph::from_decls(&decls(&d)).unwrap_err();
        assert_eq!(e, GraphError::UnknownStage("sparkle".into()));
        assert!(e
            .to_string()
            .contains("known stages: analyze, plan, translate"));
    }

    #[test]
    fn missing_dependency_is_named() {
        let d: Vec<_> = full().into_iter().filter(|(k, _)| *k != "music").collect();
        let e = StageGraph::from_decls(&decls(&d)).unwrap_err();
        assert_eq!(
            e,
            GraphError::MissingDependency {
                stage: "mix".into(),
                dep: "music".into()
            }
        );
    }

    #[test]
    fn a_cycle_is_refused() {
        let mut d = full();
        d[0] = ("plan", &["metadata"]);
        let e = StageGraph::from_decls(&decls(&d)).unwrap_err();
        assert!(matches!(e, GraphError::Cycle(_)), "{e}");
        assert!(e.to_string().contains("plan"));
    }

    #[test]
    fn a_required_input_that_does_not_run_first_is_refused() {
        let mut d = full();
        d[9] = ("assemble", &["animate", "mix"]);
        let e = StageGraph::from_decls(&decls(&d)).unwrap_err();
        assert_eq!(
            e,
            GraphError::MissingInput {
                stage: "assemble".into(),
                input: "captions".into()
            }
        );
    }

    #[test]
    fn music_is_optional() {
        let d: Vec<_> = full()
            .into_iter()
            .filter(|(k, _)| *k != "music")
            .map(|(k, a)| {
                if k == "mix" {
                    (k, &["align"][..])
                } else {
                    (k, a)
                }
            })
            .collect();
        let g = StageGraph::from_decls(&decls(&d)).unwrap();
        assert!(!g.contains(StageKind::Music));
    }
}
