//! The inclusion prover: valid(S) ⊆ valid(L), by structural comparison.
//!
//! Soundness rests on three rules:
//! - The smaller side S is a *conjunction* of facts (its keywords, `allOf` branches, `$ref`
//!   targets). Dropping a fact only enlarges valid(S), so S may ignore whatever it does not
//!   understand; only facts that mean exactly what the validator does are used.
//! - Every keyword of the larger side L must be shown to hold on all of valid(S); a keyword with
//!   no argument for it is reported (as `unproven` when the keyword is not analysed).
//! - A `$ref` cycle on L may assume the pair under proof (coinduction) only when the cycle has
//!   descended into the document since: documents are finite, so the assumption is used on
//!   strictly smaller values (induction on document depth). A cycle that consumes nothing is
//!   `unproven`.
//!
//! Depth and total work are bounded; past either bound the answer is `unproven`.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::draft::{
    Doc, Draft, additional_properties, asserted_format, clip, is_active, is_trivial,
    unevaluated_is_additional,
};
use super::eval::{Tri, items_cover_every_position, node_types};
use super::num::{
    ANY, ARRAY, BOOLEAN, FRACTION, INTEGRAL, NULL, NUMBER, Num, OBJECT, STRING, Types,
    classes_of_equal, describe, size_limit, type_keyword,
};
use super::path::Path;
use super::{Kind, MAX_INCOMPATIBILITIES, Side};

/// Deepest nesting of node pairs the prover follows (each level is a few stack frames; tokio
/// workers have 2 MiB stacks).
const MAX_DEPTH: usize = 96;
/// Total work for one inclusion (node pairs, evaluations, comparisons).
const MAX_STEPS: u64 = 400_000;
/// Most values tried one by one when a side is a finite set.
const MAX_CANDIDATES: usize = 4096;
/// Most findings collected before deduplication and the final cap.
const SINK_CAPACITY: usize = MAX_INCOMPATIBILITIES * 4;
/// Most branches of an `anyOf`/`oneOf` of the smaller side split into separate cases.
const MAX_SPLIT: usize = 16;

static NULL_VALUE: Value = Value::Null;
static TRUE_VALUE: Value = Value::Bool(true);
static FALSE_VALUE: Value = Value::Bool(false);

/// A schema node and the document (0: smaller side, 1: larger side) it belongs to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node<'a> {
    pub(crate) v: &'a Value,
    pub(crate) doc: usize,
}

impl<'a> Node<'a> {
    pub(crate) fn at(self, v: &'a Value) -> Node<'a> {
        Node { v, doc: self.doc }
    }

    fn id(self) -> (usize, usize) {
        (std::ptr::from_ref(self.v) as usize, self.doc)
    }

    fn map(self) -> Option<&'a Map<String, Value>> {
        self.v.as_object()
    }
}

/// One reported reason, before it gets its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) path: String,
    pub(crate) kind: Kind,
    pub(crate) message: String,
}

/// Where findings go; a quiet sink is for attempts whose failure is not itself an answer (one
/// `anyOf` branch among several).
struct Sink {
    quiet: bool,
    items: Vec<Finding>,
}

impl Sink {
    fn quiet() -> Sink {
        Sink {
            quiet: true,
            items: Vec::new(),
        }
    }
}

/// The gathered facts of the smaller side.
struct Conj<'a> {
    nodes: Vec<Node<'a>>,
    /// Some fact is `false`: nothing is valid.
    empty: bool,
}

#[derive(Clone, Copy, Debug)]
struct Bound {
    n: Num,
    exclusive: bool,
}

struct Facts<'a> {
    types: Types,
    lower: Option<Bound>,
    upper: Option<Bound>,
    /// Every value S may accept, each in one number class, when S is a finite set of values.
    candidates: Option<Vec<(&'a Value, Types)>>,
}

type HypKey = (Vec<(usize, usize)>, (usize, usize));

pub(crate) struct Engine<'a> {
    pub(crate) docs: [Doc<'a>; 2],
    larger_is_new: bool,
    steps: u64,
    pub(crate) eval_depth: usize,
    depth: usize,
    /// Instance levels descended so far (guards coinduction).
    descent: usize,
    hypotheses: Vec<(HypKey, usize)>,
    lowest_hypothesis_used: usize,
    proven: HashSet<HypKey>,
    /// Pairs that failed, with what the first loud attempt reported.
    failed: HashMap<HypKey, Option<Vec<Finding>>>,
    limit_reported: bool,
}

/// Inclusion of `smaller` in `larger`, reported into whichever is `new`.
pub(crate) fn run(smaller: &Value, larger: &Value, new: Side) -> Vec<Finding> {
    let mut engine = Engine {
        docs: [Doc::new(smaller), Doc::new(larger)],
        larger_is_new: new == Side::Larger,
        steps: MAX_STEPS,
        eval_depth: 0,
        depth: 0,
        descent: 0,
        hypotheses: Vec::new(),
        lowest_hypothesis_used: usize::MAX,
        proven: HashSet::new(),
        failed: HashMap::new(),
        limit_reported: false,
    };
    let mut sink = Sink {
        quiet: false,
        items: Vec::new(),
    };
    for doc in 0..2 {
        if let Some((keyword, why)) = engine.docs[doc].fatal.clone() {
            let is_new = (doc == 1) == engine.larger_is_new;
            let whose = if is_new {
                "the new schema"
            } else {
                "the earlier schema"
            };
            return vec![Finding {
                path: if is_new {
                    format!("/{keyword}")
                } else {
                    String::new()
                },
                kind: Kind::Unproven,
                message: format!("Cannot analyse {whose}: {why}."),
            }];
        }
    }
    let s = [Node { v: smaller, doc: 0 }];
    let l = Node { v: larger, doc: 1 };
    if engine.prove(&s, &Path::Root, l, &Path::Root, &mut sink) {
        // Proven: whatever a failed attempt on the way reported is moot.
        return Vec::new();
    }
    if sink.items.is_empty() {
        // Never answer "compatible" for a failed proof, whatever went unreported.
        sink.items.push(Finding {
            path: String::new(),
            kind: Kind::Unproven,
            message: "The inclusion could not be proven.".to_owned(),
        });
    }
    let mut out: Vec<Finding> = Vec::new();
    for finding in sink.items {
        if !out.contains(&finding) {
            out.push(finding);
        }
        if out.len() == MAX_INCOMPATIBILITIES {
            break;
        }
    }
    out
}

impl<'a> Engine<'a> {
    pub(crate) fn tick(&mut self) -> bool {
        if self.steps == 0 {
            return false;
        }
        self.steps -= 1;
        true
    }

    pub(crate) fn draft(&self, node: Node<'a>) -> Draft {
        self.docs[node.doc].draft
    }

    // ---- reporting -------------------------------------------------------------------------

    /// (the smaller side's name, the larger side's name), for messages.
    fn names(&self) -> (&'static str, &'static str) {
        if self.larger_is_new {
            ("the earlier schema", "the new schema")
        } else {
            ("the new schema", "the earlier schema")
        }
    }

    /// Picks the kind for the direction being checked: `when_new_is_larger` describes a change
    /// that rejects old documents (BACKWARD), `when_new_is_smaller` one that accepts documents
    /// the earlier schema rejected (FORWARD).
    fn kind(&self, when_new_is_larger: Kind, when_new_is_smaller: Kind) -> Kind {
        if self.larger_is_new {
            when_new_is_larger
        } else {
            when_new_is_smaller
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        sink: &mut Sink,
        sp: &Path,
        lp: &Path,
        tail: &[&str],
        kind: Kind,
        message: impl FnOnce(&'static str, &'static str) -> String,
    ) {
        if sink.quiet || sink.items.len() >= SINK_CAPACITY {
            return;
        }
        let base = if self.larger_is_new { lp } else { sp };
        let (smaller, larger) = self.names();
        sink.items.push(Finding {
            path: base.render(tail),
            kind,
            message: capitalised(message(smaller, larger)),
        });
    }

    fn unproven(&self, sink: &mut Sink, sp: &Path, lp: &Path, tail: &[&str], why: &str) {
        self.report(sink, sp, lp, tail, Kind::Unproven, |_, _| why.to_owned());
    }

    fn report_limit(&mut self, sink: &mut Sink, sp: &Path, lp: &Path) {
        if !self.limit_reported && !sink.quiet {
            self.limit_reported = true;
            self.unproven(
                sink,
                sp,
                lp,
                &[],
                "the schemas are too deep or too large to analyse within the checker's budget",
            );
        }
    }

    // ---- the smaller side's facts ---------------------------------------------------------

    fn gather(&mut self, node: Node<'a>, into: &mut Conj<'a>, depth: usize) {
        // Past the budget the remaining facts are dropped, which only weakens S.
        if depth > MAX_DEPTH || !self.tick() {
            return;
        }
        let map = match node.v {
            Value::Bool(false) => {
                into.empty = true;
                return;
            }
            Value::Object(map) => map,
            _ => return,
        };
        if into.nodes.iter().any(|n| n.id() == node.id()) {
            return;
        }
        let draft = self.draft(node);
        if let Some(reference) = map.get("$ref") {
            let target = self.docs[node.doc].resolve(reference);
            if let Some((target, _)) = target {
                self.gather(node.at(target), into, depth + 1);
            }
            if draft.ref_overrides_siblings() {
                return;
            }
        }
        into.nodes.push(node);
        if let Some(Value::Array(branches)) = map.get("allOf") {
            for branch in branches {
                self.gather(node.at(branch), into, depth + 1);
            }
        }
    }

    fn conj_of(&mut self, nodes: &[Node<'a>]) -> Conj<'a> {
        let mut conj = Conj {
            nodes: Vec::new(),
            empty: false,
        };
        for node in nodes {
            self.gather(*node, &mut conj, 0);
        }
        conj
    }

    fn facts(&mut self, conj: &Conj<'a>) -> Facts<'a> {
        let mut types = ANY;
        let mut lower: Option<Bound> = None;
        let mut upper: Option<Bound> = None;
        for c in &conj.nodes {
            let Some(map) = c.map() else { continue };
            let draft = self.draft(*c);
            types &= node_types(map, draft);
            // A whole divisor rejects every non-integral number, in every branch of the
            // validator's arithmetic.
            if map
                .get("multipleOf")
                .and_then(Value::as_f64)
                .is_some_and(|m| m > 0.0 && m.fract() == 0.0)
            {
                types &= !FRACTION;
            }
            let (lo, hi) = node_bounds(map, draft);
            for b in lo.into_iter().flatten() {
                lower = Some(tighter_lower(lower, b));
            }
            for b in hi.into_iter().flatten() {
                upper = Some(tighter_upper(upper, b));
            }
        }
        if types & NUMBER != 0 && types & NUMBER & !INTEGRAL == 0 {
            lower = lower.map(integral_lower);
            upper = upper.map(integral_upper);
        }
        if let (Some(lo), Some(hi)) = (lower, upper) {
            let order = lo.n.cmp(hi.n);
            if order.is_gt() || (order.is_eq() && (lo.exclusive || hi.exclusive)) {
                types &= !NUMBER;
            }
        }
        if self.max_size(conj, "minLength") > self.min_size(conj, "maxLength") {
            types &= !STRING;
        }
        if self.max_size(conj, "minItems") > self.min_size(conj, "maxItems") {
            types &= !ARRAY;
        }
        if self.max_size(conj, "minProperties") > self.min_size(conj, "maxProperties") {
            types &= !OBJECT;
        }
        if types & OBJECT != 0 && self.required(conj).iter().any(|n| self.forbids(conj, n)) {
            types &= !OBJECT;
        }
        let candidates = self.candidates(conj, types);
        Facts {
            types,
            lower,
            upper,
            candidates,
        }
    }

    fn candidates(&mut self, conj: &Conj<'a>, types: Types) -> Option<Vec<(&'a Value, Types)>> {
        let mut values: Option<Vec<&'a Value>> = None;
        for c in &conj.nodes {
            let Some(map) = c.map() else { continue };
            let draft = self.draft(*c);
            let found: Option<Vec<&'a Value>> = match map.get("enum") {
                Some(Value::Array(options)) => Some(options.iter().collect()),
                _ => None,
            }
            .or_else(|| {
                (draft >= Draft::D6)
                    .then(|| map.get("const").map(|v| vec![v]))
                    .flatten()
            });
            if let Some(found) = found {
                if values.as_ref().is_none_or(|v| found.len() < v.len()) {
                    values = Some(found);
                }
            }
        }
        if values.is_none() && types & !(NULL | BOOLEAN) == 0 {
            let mut finite = Vec::new();
            if types & NULL != 0 {
                finite.push(&NULL_VALUE);
            }
            if types & BOOLEAN != 0 {
                finite.extend([&TRUE_VALUE, &FALSE_VALUE]);
            }
            values = Some(finite);
        }
        let values = values?;
        if values.len() > MAX_CANDIDATES {
            return None;
        }
        let mut live = Vec::new();
        for value in values {
            let classes = classes_of_equal(value) & types;
            // Each number representation is its own candidate: `1` and `1.0` may fare differently.
            let mut bit = 1u8;
            while bit != 0 {
                if classes & bit != 0 {
                    let mut verdict = Tri::True;
                    for c in &conj.nodes {
                        match self.eval(*c, value, bit) {
                            Tri::False => {
                                verdict = Tri::False;
                                break;
                            }
                            Tri::Unknown => verdict = Tri::Unknown,
                            Tri::True => {}
                        }
                    }
                    if verdict != Tri::False {
                        live.push((value, bit));
                    }
                }
                bit <<= 1;
            }
        }
        Some(live)
    }

    /// Whether every candidate satisfies `l` (only `keywords` of it, if given).
    fn candidates_satisfy(
        &mut self,
        candidates: &[(&'a Value, Types)],
        l: Node<'a>,
        keywords: Option<&[&str]>,
    ) -> bool {
        for &(value, class) in candidates {
            let verdict = match (keywords, l.map()) {
                (Some(keywords), Some(map)) => {
                    let mut acc = Tri::True;
                    for keyword in keywords {
                        if let Some(kv) = map.get(*keyword) {
                            if is_active(self.draft(l), keyword) {
                                let r = self.eval_keyword(l, map, keyword, kv, value, class);
                                acc = if acc == Tri::True && r == Tri::True {
                                    Tri::True
                                } else {
                                    Tri::Unknown
                                };
                            }
                        }
                    }
                    acc
                }
                _ => self.eval(l, value, class),
            };
            if verdict != Tri::True {
                return false;
            }
        }
        true
    }

    fn max_size(&self, conj: &Conj<'a>, keyword: &str) -> u64 {
        conj.nodes
            .iter()
            .filter_map(|c| size_limit(c.map()?.get(keyword)?, self.draft(*c)))
            .max()
            .unwrap_or(0)
    }

    fn min_size(&self, conj: &Conj<'a>, keyword: &str) -> u64 {
        conj.nodes
            .iter()
            .filter_map(|c| size_limit(c.map()?.get(keyword)?, self.draft(*c)))
            .min()
            .unwrap_or(u64::MAX)
    }

    fn required(&self, conj: &Conj<'a>) -> Vec<&'a str> {
        let mut names: Vec<&'a str> = conj
            .nodes
            .iter()
            .filter_map(|c| c.map()?.get("required")?.as_array())
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Whether S rejects every object that has property `name`.
    fn forbids(&self, conj: &Conj<'a>, name: &str) -> bool {
        conj.nodes.iter().any(|c| {
            let Some(map) = c.map() else { return false };
            match map.get("properties").and_then(|p| p.get(name)) {
                Some(schema) => schema == &Value::Bool(false),
                None => {
                    !has_patterns(map)
                        && additional_properties(map, self.draft(*c)).map(|(a, _)| a)
                            == Some(&Value::Bool(false))
                }
            }
        }) || self.min_size(conj, "maxProperties") == 0
    }

    // ---- identity ---------------------------------------------------------------------------

    /// Whether two values (subschemas or keyword values) are the same text *and* every `$ref`
    /// in them resolves to targets that are identical in turn, under the same draft.
    fn identical(&mut self, a: Node<'a>, b: Node<'a>) -> bool {
        if self.draft(a) != self.draft(b) {
            return false;
        }
        if a.id() == b.id() {
            return true;
        }
        let mut assumed: HashSet<((usize, usize), (usize, usize))> = HashSet::new();
        let mut stack = vec![(a.v, b.v)];
        while let Some((x, y)) = stack.pop() {
            if !self.tick() {
                return false;
            }
            match (x, y) {
                (Value::Object(mx), Value::Object(my)) => {
                    if mx.len() != my.len() {
                        return false;
                    }
                    for (key, vx) in mx {
                        let Some(vy) = my.get(key) else { return false };
                        match key.as_str() {
                            "$dynamicRef" | "$recursiveRef" => return false,
                            "$ref" => {
                                let tx = self.docs[a.doc].resolve(vx);
                                let ty = self.docs[b.doc].resolve(vy);
                                let (Some((tx, _)), Some((ty, _))) = (tx, ty) else {
                                    return false;
                                };
                                if assumed.insert((a.at(tx).id(), b.at(ty).id())) {
                                    stack.push((tx, ty));
                                }
                            }
                            _ => stack.push((vx, vy)),
                        }
                    }
                }
                (Value::Array(ax), Value::Array(ay)) => {
                    if ax.len() != ay.len() {
                        return false;
                    }
                    stack.extend(ax.iter().zip(ay));
                }
                // Numbers by representation: `2` and `2.0` are not the same `minLength` in draft 4.
                _ => {
                    if x != y {
                        return false;
                    }
                }
            }
        }
        true
    }

    // ---- the prover -------------------------------------------------------------------------

    fn prove(
        &mut self,
        s: &[Node<'a>],
        sp: &Path,
        l: Node<'a>,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        if self.depth >= MAX_DEPTH || !self.tick() {
            self.report_limit(sink, sp, lp);
            return false;
        }
        self.depth += 1;
        let result = self.prove_node(s, sp, l, lp, sink);
        self.depth -= 1;
        result
    }

    fn quietly(&mut self, s: &[Node<'a>], sp: &Path, l: Node<'a>, lp: &Path) -> bool {
        self.prove(s, sp, l, lp, &mut Sink::quiet())
    }

    /// Like [`Engine::prove`], one instance level down.
    fn prove_below(
        &mut self,
        s: &[Node<'a>],
        sp: &Path,
        l: Node<'a>,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        self.descent += 1;
        let result = self.prove(s, sp, l, lp, sink);
        self.descent -= 1;
        result
    }

    fn prove_node(
        &mut self,
        s: &[Node<'a>],
        sp: &Path,
        l: Node<'a>,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        // Where S is only a reference, its facts live at the target: report there, so that a path
        // into S is a pointer that exists in S's document.
        let jumped;
        let sp = match self.reference_target(s) {
            Some(pointer) => {
                jumped = pointer;
                &Path::Abs(&jumped)
            }
            None => sp,
        };
        let ldraft = self.draft(l);
        let lmap = match l.v {
            Value::Bool(true) => return true,
            Value::Object(map) => {
                if is_trivial(map, ldraft) {
                    return true;
                }
                Some(map)
            }
            Value::Bool(false) => None,
            _ => {
                self.unproven(
                    sink,
                    sp,
                    lp,
                    &[],
                    "this is not a schema (neither object nor boolean)",
                );
                return false;
            }
        };
        let conj = self.conj_of(s);
        if conj.empty {
            return true;
        }
        let facts = self.facts(&conj);
        if facts.types == 0 {
            return true;
        }
        for c in &conj.nodes {
            if self.identical(*c, l) {
                return true;
            }
        }
        let Some(lmap) = lmap else {
            if let Some(candidates) = &facts.candidates {
                if candidates.is_empty() {
                    return true;
                }
            }
            let types = facts.types;
            self.report(
                sink,
                sp,
                lp,
                &[],
                self.kind(Kind::TypeNarrowed, Kind::TypeWidened),
                |sm, lg| {
                    format!(
                        "{lg} accepts nothing here (`false`), while {sm} does not rule out {}",
                        describe(types)
                    )
                },
            );
            return false;
        };
        if ldraft.ref_overrides_siblings() {
            if let Some(reference) = lmap.get("$ref") {
                return self.follow_ref(s, sp, l, reference, lp, sink);
            }
        }
        if let Some(candidates) = &facts.candidates {
            if self.candidates_satisfy(candidates, l, None) {
                return true;
            }
        }
        let mark = sink.items.len();
        if self.check_keywords(s, &conj, &facts, sp, l, lmap, lp, sink) {
            return true;
        }
        if self.split(s, sp, l, lp, &conj) {
            sink.items.truncate(mark);
            return true;
        }
        false
    }

    /// The pointer of the subschema S's first node stands for when that node is nothing but a
    /// resolvable `$ref` (followed through chains of such nodes).
    fn reference_target(&self, s: &[Node<'a>]) -> Option<String> {
        let mut node = *s.first()?;
        let mut pointer = None;
        for _ in 0..8 {
            let Some(map) = node.map() else { break };
            let draft = self.draft(node);
            let Some(reference) = map.get("$ref") else {
                break;
            };
            let only_ref = draft.ref_overrides_siblings()
                || map.keys().all(|k| k == "$ref" || !is_active(draft, k));
            if !only_ref {
                break;
            }
            let Some((target, at)) = self.docs[node.doc].resolve(reference) else {
                break;
            };
            node = node.at(target);
            pointer = Some(at);
        }
        pointer
    }

    /// S is a union of cases when one of its facts is an `anyOf`/`oneOf`: prove each case.
    fn split(
        &mut self,
        s: &[Node<'a>],
        sp: &Path,
        l: Node<'a>,
        lp: &Path,
        conj: &Conj<'a>,
    ) -> bool {
        for c in &conj.nodes {
            let Some(map) = c.map() else { continue };
            for keyword in ["anyOf", "oneOf"] {
                let Some(Value::Array(branches)) = map.get(keyword) else {
                    continue;
                };
                if branches.is_empty() || branches.len() > MAX_SPLIT {
                    continue;
                }
                let already = s
                    .iter()
                    .any(|n| branches.iter().any(|b| std::ptr::eq(n.v, b)));
                if already {
                    continue;
                }
                return branches.iter().all(|branch| {
                    let mut cases = s.to_vec();
                    cases.push(c.at(branch));
                    self.quietly(&cases, sp, l, lp)
                });
            }
        }
        false
    }

    fn follow_ref(
        &mut self,
        s: &[Node<'a>],
        sp: &Path,
        l: Node<'a>,
        reference: &Value,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        let Some((target, pointer)) = self.docs[l.doc].resolve(reference) else {
            let shown = reference.as_str().map(clip).unwrap_or_default();
            self.unproven(
                sink,
                sp,
                lp,
                &["$ref"],
                &format!(
                    "the reference {shown:?} does not resolve to a JSON Pointer inside the document"
                ),
            );
            return false;
        };
        let target = l.at(target);
        let mut key_nodes: Vec<(usize, usize)> = s.iter().map(|n| n.id()).collect();
        key_nodes.sort_unstable();
        key_nodes.dedup();
        let key: HypKey = (key_nodes, target.id());
        if let Some(index) = self.hypotheses.iter().position(|(k, _)| *k == key) {
            if self.descent > self.hypotheses[index].1 {
                self.lowest_hypothesis_used = self.lowest_hypothesis_used.min(index);
                return true;
            }
            self.unproven(
                sink,
                sp,
                lp,
                &["$ref"],
                "a reference cycle that never descends into the document",
            );
            return false;
        }
        if self.proven.contains(&key) {
            return true;
        }
        // A failure is final wherever it recurs: reusing it can only make the answer more
        // conservative. Without this, a definition referenced twice per level is re-explored
        // exponentially.
        match self.failed.get(&key) {
            Some(_) if sink.quiet => return false,
            Some(Some(findings)) => {
                for finding in findings {
                    if sink.items.len() >= SINK_CAPACITY {
                        break;
                    }
                    if !sink.items.contains(finding) {
                        sink.items.push(finding.clone());
                    }
                }
                return false;
            }
            _ => {}
        }
        let mark = sink.items.len();
        let index = self.hypotheses.len();
        self.hypotheses.push((key, self.descent));
        let outer = std::mem::replace(&mut self.lowest_hypothesis_used, usize::MAX);
        let jumped = Path::Abs(&pointer);
        let ok = self.prove(s, sp, target, &jumped, sink);
        let (key, _) = self.hypotheses.pop().unwrap_or_default();
        if self.lowest_hypothesis_used >= index {
            if ok {
                self.proven.insert(key.clone());
            }
            self.lowest_hypothesis_used = outer;
        } else {
            self.lowest_hypothesis_used = self.lowest_hypothesis_used.min(outer);
        }
        if !ok {
            let findings = (!sink.quiet).then(|| sink.items[mark.min(sink.items.len())..].to_vec());
            self.failed.insert(key, findings);
        }
        ok
    }

    #[allow(clippy::too_many_arguments)]
    fn check_keywords(
        &mut self,
        s: &[Node<'a>],
        conj: &Conj<'a>,
        facts: &Facts<'a>,
        sp: &Path,
        l: Node<'a>,
        lmap: &'a Map<String, Value>,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        let ldraft = self.draft(l);
        let mut ok = true;
        macro_rules! step {
            ($check:expr) => {
                if !$check {
                    ok = false;
                    if sink.quiet {
                        return false;
                    }
                }
            };
        }
        step!(self.check_type(facts, sp, l, lmap, lp, sink));
        step!(self.check_values(conj, facts, sp, l, lmap, lp, sink));
        if facts.types & NUMBER != 0 {
            step!(self.check_numbers(conj, facts, sp, l, lmap, lp, sink));
        }
        if facts.types & STRING != 0 {
            step!(self.check_strings(conj, facts, sp, l, lmap, lp, sink));
        }
        if facts.types & ARRAY != 0 {
            step!(self.check_arrays(conj, facts, sp, l, lmap, lp, sink));
        }
        if facts.types & OBJECT != 0 {
            step!(self.check_objects(s, conj, facts, sp, l, lmap, lp, sink));
        }
        if !ldraft.ref_overrides_siblings() {
            if let Some(reference) = lmap.get("$ref") {
                step!(self.follow_ref(s, sp, l, reference, lp, sink));
            }
        }
        for (keyword, kv) in lmap {
            if !is_active(ldraft, keyword) {
                continue;
            }
            match keyword.as_str() {
                "allOf" => {
                    let Value::Array(branches) = kv else {
                        self.unproven(sink, sp, lp, &["allOf"], "`allOf` is not an array");
                        ok = false;
                        continue;
                    };
                    for (i, branch) in branches.iter().enumerate() {
                        let allof = lp.key("allOf");
                        let at = allof.index(i);
                        step!(self.prove(s, sp, l.at(branch), &at, sink));
                    }
                }
                "anyOf" => step!(self.check_any_of(s, conj, sp, l, kv, lp, sink)),
                "oneOf" => step!(self.check_one_of(s, conj, facts, sp, l, kv, lp, sink)),
                "not" => step!(self.check_not(conj, facts, sp, l, kv, lp, sink)),
                "if" => step!(self.check_if(s, conj, facts, sp, l, lmap, lp, sink)),
                "$dynamicRef" | "$recursiveRef" => {
                    self.unproven(
                        sink,
                        sp,
                        lp,
                        &[keyword],
                        &format!("`{keyword}` (dynamic scope) is not analysed"),
                    );
                    ok = false;
                    if sink.quiet {
                        return false;
                    }
                }
                _ => {}
            }
        }
        ok
    }

    // ---- type, enum, const ----------------------------------------------------------------

    fn check_type(
        &mut self,
        facts: &Facts<'a>,
        sp: &Path,
        l: Node<'a>,
        lmap: &'a Map<String, Value>,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        let Some(kv) = lmap.get("type") else {
            return true;
        };
        let Some(allowed) = type_keyword(kv, self.draft(l)) else {
            self.unproven(sink, sp, lp, &["type"], "`type` is malformed");
            return false;
        };
        let extra = facts.types & !allowed;
        if extra == 0 {
            return true;
        }
        if let Some(candidates) = &facts.candidates {
            if self.candidates_satisfy(candidates, l, Some(&["type"])) {
                return true;
            }
        }
        let draft_note =
            if extra & NUMBER != 0 && allowed & INTEGRAL != 0 && self.draft(l) == Draft::D4 {
                " (draft 4 counts 1.0 as a number, not an integer)"
            } else {
                ""
            };
        self.report(
            sink,
            sp,
            lp,
            &["type"],
            self.kind(Kind::TypeNarrowed, Kind::TypeWidened),
            |sm, lg| {
                format!(
                    "{lg} rejects {} here{draft_note}, which {sm} does not rule out",
                    describe(extra)
                )
            },
        );
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn check_values(
        &mut self,
        conj: &Conj<'a>,
        facts: &Facts<'a>,
        sp: &Path,
        l: Node<'a>,
        lmap: &'a Map<String, Value>,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        let mut ok = true;
        for keyword in ["enum", "const"] {
            if !lmap.contains_key(keyword) || !is_active(self.draft(l), keyword) {
                continue;
            }
            if let Some(candidates) = &facts.candidates {
                if self.candidates_satisfy(candidates, l, Some(&[keyword])) {
                    continue;
                }
            }
            if self.values_listed(conj, lmap, keyword) {
                continue;
            }
            let example = facts.candidates.as_ref().and_then(|candidates| {
                candidates.iter().find_map(|&(value, class)| {
                    let map = l.map()?;
                    let r = self.eval_keyword(l, map, keyword, map.get(keyword)?, value, class);
                    (r != Tri::True).then(|| clip(&value.to_string()))
                })
            });
            let kind = if keyword == "const" {
                Kind::ConstChanged
            } else {
                self.kind(Kind::EnumNarrowed, Kind::EnumWidened)
            };
            self.report(sink, sp, lp, &[keyword], kind, |sm, lg| match example {
                Some(value) => {
                    format!("the `{keyword}` of {lg} does not list {value}, which {sm} does not rule out")
                }
                None => format!("{lg} restricts values with `{keyword}`, {sm} does not"),
            });
            ok = false;
        }
        ok
    }

    /// Whether some fact of S lists values (`enum`/`const`) all of which L's `keyword` lists:
    /// the fallback for value sets too large to try one by one.
    fn values_listed(
        &mut self,
        conj: &Conj<'a>,
        lmap: &'a Map<String, Value>,
        keyword: &str,
    ) -> bool {
        let listed: &[Value] = match (keyword, lmap.get(keyword)) {
            ("enum", Some(Value::Array(options))) => options,
            ("const", Some(value)) => std::slice::from_ref(value),
            _ => return false,
        };
        conj.nodes.iter().any(|c| {
            let Some(map) = c.map() else { return false };
            let own: &[Value] = match (map.get("enum"), map.get("const")) {
                (Some(Value::Array(options)), _) => options,
                (_, Some(value)) if self.draft(*c) >= Draft::D6 => std::slice::from_ref(value),
                _ => return false,
            };
            own.iter().all(|v| {
                listed
                    .iter()
                    .any(|w| self.tick() && super::num::json_equal(v, w))
            })
        })
    }

    // ---- numbers ----------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn check_numbers(
        &mut self,
        conj: &Conj<'a>,
        facts: &Facts<'a>,
        sp: &Path,
        l: Node<'a>,
        lmap: &'a Map<String, Value>,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        let ldraft = self.draft(l);
        let mut ok = true;
        for keyword in [
            "minimum",
            "exclusiveMinimum",
            "maximum",
            "exclusiveMaximum",
            "multipleOf",
        ] {
            let Some(kv) = lmap.get(keyword) else {
                continue;
            };
            if !is_active(ldraft, keyword) {
                continue;
            }
            let Some(limit) = Num::of_value(kv) else {
                self.unproven(
                    sink,
                    sp,
                    lp,
                    &[keyword],
                    &format!("`{keyword}` is malformed"),
                );
                ok = false;
                continue;
            };
            if let Some(candidates) = &facts.candidates {
                if self.candidates_satisfy(candidates, l, Some(&[keyword])) {
                    continue;
                }
            }
            let proven = match keyword {
                "multipleOf" => self.multiple_of_holds(conj, facts, limit),
                _ => {
                    let exclusive = match keyword {
                        "minimum" if ldraft == Draft::D4 => {
                            lmap.get("exclusiveMinimum") == Some(&Value::Bool(true))
                        }
                        "maximum" if ldraft == Draft::D4 => {
                            lmap.get("exclusiveMaximum") == Some(&Value::Bool(true))
                        }
                        "exclusiveMinimum" | "exclusiveMaximum" => true,
                        _ => false,
                    };
                    let wanted = Bound {
                        n: limit,
                        exclusive,
                    };
                    if keyword.ends_with("inimum") {
                        facts.lower.is_some_and(|have| implies_lower(have, wanted))
                    } else {
                        facts.upper.is_some_and(|have| implies_upper(have, wanted))
                    }
                }
            };
            if !proven {
                let shown = clip(&kv.to_string());
                self.report(
                    sink,
                    sp,
                    lp,
                    &[keyword],
                    self.kind(Kind::BoundTightened, Kind::BoundLoosened),
                    |sm, lg| {
                        format!("{lg} has `{keyword}: {shown}`, which {sm} does not guarantee")
                    },
                );
                ok = false;
            }
        }
        ok
    }

    fn multiple_of_holds(&self, conj: &Conj<'a>, facts: &Facts<'a>, wanted: Num) -> bool {
        const SAFE: f64 = 9_007_199_254_740_992.0;
        let wanted = wanted.as_f64();
        let whole = |f: f64| f > 0.0 && f <= SAFE && f.fract() == 0.0;
        // Draft-agnostic: every integral value is a multiple of 1 in every representation.
        if wanted == 1.0 && facts.types & NUMBER & !INTEGRAL == 0 {
            return true;
        }
        conj.nodes.iter().any(|c| {
            let Some(have) = c
                .map()
                .and_then(|m| m.get("multipleOf"))
                .and_then(Value::as_f64)
            else {
                return false;
            };
            // The same divisor compiles to the same validator; a whole divisor dividing another
            // keeps every branch of the validator's arithmetic exact.
            have == wanted || (whole(have) && whole(wanted) && (have as u64) % (wanted as u64) == 0)
        })
    }

    // ---- strings ----------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn check_strings(
        &mut self,
        conj: &Conj<'a>,
        facts: &Facts<'a>,
        sp: &Path,
        l: Node<'a>,
        lmap: &'a Map<String, Value>,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        let ldraft = self.draft(l);
        let mut ok = true;
        for keyword in ["minLength", "maxLength"] {
            let Some(kv) = lmap.get(keyword) else {
                continue;
            };
            ok &= self.check_size(conj, facts, sp, l, lp, keyword, kv, 0, sink);
        }
        if let Some(kv) = lmap.get("pattern") {
            let Some(pattern) = kv.as_str() else {
                self.unproven(sink, sp, lp, &["pattern"], "`pattern` is malformed");
                return false;
            };
            let same = conj.nodes.iter().any(|c| {
                c.map()
                    .and_then(|m| m.get("pattern"))
                    .and_then(Value::as_str)
                    == Some(pattern)
            });
            let by_values = !same
                && facts
                    .candidates
                    .as_ref()
                    .is_some_and(|c| c.iter().all(|(v, _)| !v.is_string()));
            if !same && !by_values {
                let shown = clip(pattern);
                self.report(sink, sp, lp, &["pattern"], Kind::PatternChanged, |sm, lg| {
                    format!("{lg} requires strings to match {shown:?}, a pattern {sm} does not impose")
                });
                ok = false;
            }
        }
        if let Some(Value::String(name)) = lmap.get("format") {
            if let Some(variant) = asserted_format(ldraft, name) {
                let same = conj.nodes.iter().any(|c| {
                    c.map()
                        .and_then(|m| m.get("format"))
                        .and_then(Value::as_str)
                        .and_then(|f| asserted_format(self.draft(*c), f))
                        == Some(variant)
                });
                if !same {
                    let shown = clip(name);
                    self.report(sink, sp, lp, &["format"], Kind::FormatChanged, |sm, lg| {
                        format!(
                            "{lg} asserts `format: {shown}` ({}), which {sm} does not",
                            ldraft.name()
                        )
                    });
                    ok = false;
                }
            }
        } else if lmap.get("format").is_some() && is_active(ldraft, "format") {
            self.unproven(sink, sp, lp, &["format"], "`format` is malformed");
            ok = false;
        }
        if is_active(ldraft, "contentMediaType") {
            let pair = (lmap.get("contentMediaType"), lmap.get("contentEncoding"));
            if pair != (None, None) {
                let same = conj.nodes.iter().any(|c| {
                    matches!(self.draft(*c), Draft::D6 | Draft::D7)
                        && c.map().is_some_and(|m| {
                            (m.get("contentMediaType"), m.get("contentEncoding")) == pair
                        })
                });
                if !same {
                    self.report(sink, sp, lp, &["contentMediaType"], Kind::FormatChanged, |sm, lg| {
                        format!("{lg} asserts `contentMediaType`/`contentEncoding` ({}), which {sm} does not impose identically", ldraft.name())
                    });
                    ok = false;
                }
            }
        }
        ok
    }

    /// A `min*`/`max*` size keyword of L against S's bounds. `extra` is what S's other facts
    /// guarantee: a lower bound for `min*` (its required properties), one more than an upper
    /// bound for `max*` (a closed model, a `false` item position); 0 for nothing.
    #[allow(clippy::too_many_arguments)]
    fn check_size(
        &mut self,
        conj: &Conj<'a>,
        facts: &Facts<'a>,
        sp: &Path,
        l: Node<'a>,
        lp: &Path,
        keyword: &'static str,
        kv: &Value,
        extra: u64,
        sink: &mut Sink,
    ) -> bool {
        let Some(limit) = size_limit(kv, self.draft(l)) else {
            self.unproven(
                sink,
                sp,
                lp,
                &[keyword],
                &format!("`{keyword}` is malformed"),
            );
            return false;
        };
        let holds = if keyword.starts_with("min") {
            limit == 0 || self.max_size(conj, keyword).max(extra) >= limit
        } else {
            let bound = if extra > 0 { extra - 1 } else { u64::MAX };
            self.min_size(conj, keyword).min(bound) <= limit
        };
        if holds {
            return true;
        }
        if let Some(candidates) = &facts.candidates {
            if self.candidates_satisfy(candidates, l, Some(&[keyword])) {
                return true;
            }
        }
        self.report(
            sink,
            sp,
            lp,
            &[keyword],
            self.kind(Kind::BoundTightened, Kind::BoundLoosened),
            |sm, lg| format!("{lg} has `{keyword}: {limit}`, which {sm} does not guarantee"),
        );
        false
    }

    // ---- arrays -----------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn check_arrays(
        &mut self,
        conj: &Conj<'a>,
        facts: &Facts<'a>,
        sp: &Path,
        l: Node<'a>,
        lmap: &'a Map<String, Value>,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        let ldraft = self.draft(l);
        let mut ok = true;
        // S's arrays are at most this long: `maxItems`, or a `false` item position.
        let mut s_max = self.min_size(conj, "maxItems");
        let mut shapes = Vec::new();
        for c in &conj.nodes {
            let Some(map) = c.map() else { continue };
            let Some(shape) = Shape::of(map, self.draft(*c)) else {
                continue;
            };
            s_max = s_max.min(shape.longest());
            shapes.push((*c, shape));
        }
        if let Some(kv) = lmap.get("minItems") {
            ok &= self.check_size(conj, facts, sp, l, lp, "minItems", kv, 0, sink);
        }
        if let Some(kv) = lmap.get("maxItems") {
            let extra = if s_max == u64::MAX { 0 } else { s_max + 1 };
            ok &= self.check_size(conj, facts, sp, l, lp, "maxItems", kv, extra, sink);
        }
        match lmap.get("uniqueItems") {
            Some(Value::Bool(true)) => {
                let unique = s_max <= 1
                    || conj.nodes.iter().any(|c| {
                        c.map().and_then(|m| m.get("uniqueItems")) == Some(&Value::Bool(true))
                    })
                    || self.candidates_ok(facts, l, "uniqueItems");
                if !unique {
                    self.report(
                        sink,
                        sp,
                        lp,
                        &["uniqueItems"],
                        self.kind(Kind::UniqueItemsAdded, Kind::UniqueItemsRemoved),
                        |sm, lg| {
                            format!(
                                "{lg} requires unique items, {sm} accepts arrays with duplicates"
                            )
                        },
                    );
                    ok = false;
                }
            }
            Some(Value::Bool(false)) | None => {}
            Some(_) => {
                self.unproven(sink, sp, lp, &["uniqueItems"], "`uniqueItems` is malformed");
                ok = false;
            }
        }
        ok &= self.check_items(&shapes, s_max, facts, sp, l, lmap, lp, sink);
        if is_active(ldraft, "contains") && lmap.contains_key("contains") {
            ok &= self.check_contains(conj, facts, s_max, sp, l, lmap, lp, sink);
        }
        if is_active(ldraft, "unevaluatedItems") {
            if let Some(kv) = lmap.get("unevaluatedItems") {
                let no_op = kv == &Value::Bool(true)
                    || items_cover_every_position(lmap, ldraft)
                    || unevaluated_is_additional(lmap, ldraft, true)
                    || s_max == 0
                    || self.candidates_ok(facts, l, "unevaluatedItems");
                if !no_op {
                    self.unproven(
                        sink,
                        sp,
                        lp,
                        &["unevaluatedItems"],
                        "`unevaluatedItems` is not analysed",
                    );
                    ok = false;
                }
            }
        }
        ok
    }

    fn candidates_ok(&mut self, facts: &Facts<'a>, l: Node<'a>, keyword: &str) -> bool {
        match &facts.candidates {
            Some(candidates) => self.candidates_satisfy(candidates, l, Some(&[keyword])),
            None => false,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_items(
        &mut self,
        shapes: &[(Node<'a>, Shape<'a>)],
        s_max: u64,
        facts: &Facts<'a>,
        sp: &Path,
        l: Node<'a>,
        lmap: &'a Map<String, Value>,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        let ldraft = self.draft(l);
        let has_items = [
            "items",
            "prefixItems",
            "additionalItems",
            "unevaluatedItems",
        ]
        .iter()
        .any(|k| lmap.contains_key(*k) && is_active(ldraft, k));
        if !has_items {
            return true;
        }
        let Some(lshape) = Shape::of(lmap, ldraft) else {
            self.unproven(
                sink,
                sp,
                lp,
                &["items"],
                "this combination of `items` and `prefixItems` is not analysed",
            );
            return false;
        };
        if lshape.prefix.is_empty() && lshape.rest.is_none() {
            return true;
        }
        if facts.candidates.is_some()
            && self.candidates_ok(facts, l, "items")
            && self.candidates_ok(facts, l, "prefixItems")
            && self.candidates_ok(facts, l, "additionalItems")
            && self.candidates_ok(facts, l, "unevaluatedItems")
        {
            return true;
        }
        let primary = shapes.first().map(|(_, shape)| shape);
        let longest_prefix = shapes
            .iter()
            .map(|(_, shape)| shape.prefix.len())
            .chain([lshape.prefix.len()])
            .max()
            .unwrap_or(0);
        let mut ok = true;
        for i in 0..=longest_prefix {
            if i as u64 >= s_max {
                break;
            }
            // Position `longest_prefix` stands for every later position: all are past every tuple.
            let Some(lschema) = lshape.item(i) else {
                continue;
            };
            let s_items: Vec<Node<'a>> = shapes
                .iter()
                .filter_map(|(c, shape)| shape.item(i).map(|v| c.at(v)))
                .collect();
            let (lkey, lindex) = lshape.segment(i);
            let (skey, sindex) = primary.map_or(lshape.segment(i), |shape| shape.segment(i));
            let lbase = lp.key(lkey);
            let sbase = sp.key(skey);
            let lat = match lindex {
                Some(index) => lbase.index(index),
                None => lbase,
            };
            let sat = match sindex {
                Some(index) => sbase.index(index),
                None => sbase,
            };
            if lschema == &Value::Bool(false) {
                if !self.below_quietly(&s_items, &sat, l.at(lschema), &lat) {
                    let position = if i < longest_prefix {
                        format!("position {i}")
                    } else {
                        format!("positions from {i} on")
                    };
                    self.report(sink, &sat, &lat, &[], Kind::ItemsChanged, |sm, lg| {
                        format!(
                            "{lg} forbids array items at {position}, which {sm} does not rule out"
                        )
                    });
                    ok = false;
                    if sink.quiet {
                        return false;
                    }
                }
                continue;
            }
            if !self.prove_below(&s_items, &sat, l.at(lschema), &lat, sink) {
                ok = false;
                if sink.quiet {
                    return false;
                }
            }
        }
        ok
    }

    fn below_quietly(&mut self, s: &[Node<'a>], sp: &Path, l: Node<'a>, lp: &Path) -> bool {
        self.prove_below(s, sp, l, lp, &mut Sink::quiet())
    }

    #[allow(clippy::too_many_arguments)]
    fn check_contains(
        &mut self,
        conj: &Conj<'a>,
        facts: &Facts<'a>,
        s_max: u64,
        sp: &Path,
        l: Node<'a>,
        lmap: &'a Map<String, Value>,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        let ldraft = self.draft(l);
        let Some(contains) = lmap.get("contains") else {
            return true;
        };
        let read = |key: &str, draft: Draft, map: &Map<String, Value>| -> Option<Option<u64>> {
            if draft < Draft::D2019 {
                return Some(None);
            }
            match map.get(key) {
                None => Some(None),
                Some(v) => size_limit(v, draft).map(Some),
            }
        };
        let (Some(l_min), Some(l_max)) = (
            read("minContains", ldraft, lmap),
            read("maxContains", ldraft, lmap),
        ) else {
            self.unproven(
                sink,
                sp,
                lp,
                &["contains"],
                "`minContains`/`maxContains` is malformed",
            );
            return false;
        };
        let l_min = l_min.unwrap_or(1);
        if self.candidates_ok(facts, l, "contains") {
            return true;
        }
        let lower_holds = l_min == 0
            || conj.nodes.iter().any(|c| {
                let cdraft = self.draft(*c);
                let Some(map) = c.map() else { return false };
                let Some(s_contains) = map
                    .get("contains")
                    .filter(|_| is_active(cdraft, "contains"))
                else {
                    return false;
                };
                let s_min = read("minContains", cdraft, map).flatten().unwrap_or(1);
                if read("minContains", cdraft, map).is_none() || s_min < l_min {
                    return false;
                }
                let cp = sp.key("contains");
                let lcp = lp.key("contains");
                self.below_quietly(&[c.at(s_contains)], &cp, l.at(contains), &lcp)
            });
        let upper_holds = l_max.is_none_or(|max| s_max <= max);
        if lower_holds && upper_holds {
            return true;
        }
        self.unproven(
            sink,
            sp,
            lp,
            &["contains"],
            "`contains` is only proven from an including `contains` of the other schema",
        );
        false
    }

    // ---- objects ----------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn check_objects(
        &mut self,
        s: &[Node<'a>],
        conj: &Conj<'a>,
        facts: &Facts<'a>,
        sp: &Path,
        l: Node<'a>,
        lmap: &'a Map<String, Value>,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        let ldraft = self.draft(l);
        let mut ok = true;
        let required = self.required(conj);
        if let Some(kv) = lmap.get("required") {
            match kv.as_array() {
                Some(names) if names.iter().all(Value::is_string) => {
                    let missing: Vec<&str> = names
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|n| required.binary_search(n).is_err())
                        .collect();
                    if !missing.is_empty() && !self.candidates_ok(facts, l, "required") {
                        for name in missing {
                            let shown = clip(name);
                            self.report(sink, sp, lp, &["required"], self.kind(Kind::RequiredAdded, Kind::RequiredRemoved), |sm, lg| {
                                format!("{lg} requires property {shown:?}, which {sm} does not require")
                            });
                            ok = false;
                        }
                    }
                }
                _ => {
                    self.unproven(sink, sp, lp, &["required"], "`required` is malformed");
                    ok = false;
                }
            }
        }
        if let Some(kv) = lmap.get("minProperties") {
            ok &= self.check_size(
                conj,
                facts,
                sp,
                l,
                lp,
                "minProperties",
                kv,
                required.len() as u64,
                sink,
            );
        }
        if let Some(kv) = lmap.get("maxProperties") {
            let extra = self
                .closed_names(conj)
                .map_or(0, |names| names.len() as u64 + 1);
            ok &= self.check_size(conj, facts, sp, l, lp, "maxProperties", kv, extra, sink);
        }
        if sink.quiet && !ok {
            return false;
        }
        ok &= self.check_content_model(conj, facts, sp, l, lmap, lp, sink);
        if is_active(ldraft, "propertyNames") {
            if let Some(kv) = lmap.get("propertyNames") {
                ok &= self.check_property_names(conj, facts, sp, l, kv, lp, sink);
            }
        }
        for keyword in ["dependencies", "dependentRequired", "dependentSchemas"] {
            if !is_active(ldraft, keyword) {
                continue;
            }
            let Some(kv) = lmap.get(keyword) else {
                continue;
            };
            ok &= self.check_dependencies(s, conj, facts, &required, sp, l, keyword, kv, lp, sink);
        }
        if is_active(ldraft, "unevaluatedProperties") {
            if let Some(kv) = lmap.get("unevaluatedProperties") {
                let no_op = kv == &Value::Bool(true)
                    || lmap.contains_key("additionalProperties")
                    || unevaluated_is_additional(lmap, ldraft, false)
                    || self.min_size(conj, "maxProperties") == 0
                    || self.candidates_ok(facts, l, "unevaluatedProperties");
                if !no_op {
                    self.unproven(
                        sink,
                        sp,
                        lp,
                        &["unevaluatedProperties"],
                        "`unevaluatedProperties` is not analysed",
                    );
                    ok = false;
                }
            }
        }
        ok
    }

    /// The property names S allows at all, when one of its facts is a closed model.
    fn closed_names(&self, conj: &Conj<'a>) -> Option<Vec<&'a str>> {
        conj.nodes
            .iter()
            .filter_map(|c| {
                let map = c.map()?;
                let additional = additional_properties(map, self.draft(*c)).map(|(a, _)| a);
                if has_patterns(map) || additional != Some(&Value::Bool(false)) {
                    return None;
                }
                Some(match map.get("properties") {
                    Some(Value::Object(props)) => props
                        .iter()
                        .filter(|(_, schema)| **schema != Value::Bool(false))
                        .map(|(name, _)| name.as_str())
                        .collect(),
                    None => Vec::new(),
                    Some(_) => return None,
                })
            })
            .min_by_key(Vec::len)
    }

    #[allow(clippy::too_many_arguments)]
    fn check_content_model(
        &mut self,
        conj: &Conj<'a>,
        facts: &Facts<'a>,
        sp: &Path,
        l: Node<'a>,
        lmap: &'a Map<String, Value>,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        let lprops = match lmap.get("properties") {
            None => None,
            Some(Value::Object(props)) => Some(props),
            Some(_) => {
                self.unproven(sink, sp, lp, &["properties"], "`properties` is malformed");
                return false;
            }
        };
        let lpatterns = match lmap.get("patternProperties") {
            None => None,
            Some(Value::Object(patterns)) if patterns.is_empty() => None,
            Some(Value::Object(patterns)) => Some(patterns),
            Some(_) => {
                self.unproven(
                    sink,
                    sp,
                    lp,
                    &["patternProperties"],
                    "`patternProperties` is malformed",
                );
                return false;
            }
        };
        let ldraft = self.draft(l);
        let (ladditional, additional_keyword) = match additional_properties(lmap, ldraft) {
            Some((schema, keyword)) if *schema != Value::Bool(true) => (Some(schema), keyword),
            _ => (None, "additionalProperties"),
        };
        if lprops.is_none_or(Map::is_empty) && lpatterns.is_none() && ladditional.is_none() {
            return true;
        }
        if facts.candidates.is_some()
            && self.candidates_ok(facts, l, "properties")
            && self.candidates_ok(facts, l, "patternProperties")
            && self.candidates_ok(facts, l, "additionalProperties")
            && self.candidates_ok(facts, l, "unevaluatedProperties")
        {
            return true;
        }
        let models: Vec<Model<'a>> = conj
            .nodes
            .iter()
            .filter_map(|c| Model::of(*c, self.draft(*c)))
            .collect();
        let lmodel = LModel {
            node: l,
            props: lprops,
            patterns: lpatterns,
            additional: ladditional,
            additional_keyword,
        };
        let mut ok = true;
        // A pattern both sides have matches the same names on both: compare it once.
        if let Some(patterns) = lpatterns {
            for (pattern, lschema) in patterns {
                let shared: Vec<Node<'a>> = models
                    .iter()
                    .filter_map(|m| m.patterns?.get(pattern).map(|v| m.node.at(v)))
                    .collect();
                if shared.is_empty() {
                    continue;
                }
                let spp = sp.key("patternProperties");
                let sat = spp.key(pattern);
                let lpp = lp.key("patternProperties");
                let lat = lpp.key(pattern);
                if !self.prove_below(&shared, &sat, l.at(lschema), &lat, sink) {
                    ok = false;
                    if sink.quiet {
                        return false;
                    }
                }
            }
        }
        let mut names: Vec<&'a str> = lprops
            .into_iter()
            .flat_map(|p| p.keys())
            .chain(models.iter().filter_map(|m| m.props).flat_map(|p| p.keys()))
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names.into_iter().map(Some).chain([None]) {
            if !self.check_name(name, &models, &lmodel, sp, lp, sink) {
                ok = false;
                if sink.quiet {
                    return false;
                }
            }
        }
        ok
    }

    /// The obligations for one property name (`None`: every name neither side declares).
    fn check_name(
        &mut self,
        name: Option<&'a str>,
        models: &[Model<'a>],
        lmodel: &LModel<'a>,
        sp: &Path,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        // What S says about the name for sure, and the models whose answer depends on patterns.
        let mut known: Vec<Node<'a>> = Vec::new();
        let mut patterned: Vec<&Model<'a>> = Vec::new();
        for model in models {
            match name.and_then(|n| model.props?.get(n)) {
                Some(schema) => known.push(model.node.at(schema)),
                None if model.patterns.is_none() => {
                    if let Some(additional) = model.additional {
                        known.push(model.node.at(additional));
                    }
                }
                None => patterned.push(model),
            }
        }
        let sprops = sp.key("properties");
        let sat = match name {
            Some(name) => sprops.key(name),
            None => sp.key("additionalProperties"),
        };
        let mut ok = true;
        let declared = name.and_then(|n| lmodel.props?.get(n));
        if let Some(lschema) = declared {
            let lprops = lp.key("properties");
            let lat = lprops.key(name.unwrap_or_default());
            ok &= self.obligation(
                &known,
                &patterned,
                &sat,
                lmodel.node.at(lschema),
                &lat,
                Obligation::Declared(name.unwrap_or_default()),
                sink,
            );
        }
        if let Some(patterns) = lmodel.patterns {
            for (pattern, lschema) in patterns {
                if models
                    .iter()
                    .any(|m| m.patterns.is_some_and(|p| p.contains_key(pattern)))
                {
                    continue;
                }
                let lpp = lp.key("patternProperties");
                let lat = lpp.key(pattern);
                ok &= self.obligation(
                    &known,
                    &patterned,
                    &sat,
                    lmodel.node.at(lschema),
                    &lat,
                    Obligation::Pattern,
                    sink,
                );
            }
        }
        if let (None, Some(additional)) = (declared, lmodel.additional) {
            // `additionalProperties` of L applies only where no L pattern matches; there, an S
            // model whose patterns are all L patterns matches none either.
            let mut known = known;
            let mut still: Vec<&Model<'a>> = Vec::new();
            for model in patterned {
                let subset = model.patterns.is_some_and(|p| {
                    p.keys()
                        .all(|k| lmodel.patterns.is_some_and(|lp| lp.contains_key(k)))
                });
                if subset {
                    known.push(model.node.at(model.additional.unwrap_or(&TRUE_VALUE)));
                } else {
                    still.push(model);
                }
            }
            let lat = lp.key(lmodel.additional_keyword);
            ok &= self.obligation(
                &known,
                &still,
                &sat,
                lmodel.node.at(additional),
                &lat,
                match name {
                    Some(name) => Obligation::Undeclared(name),
                    None => Obligation::Other,
                },
                sink,
            );
        }
        ok
    }

    /// S's schemas for a name (`known`, plus one of the schemas of each `patterned` model) must
    /// be included in `l`.
    #[allow(clippy::too_many_arguments)]
    fn obligation(
        &mut self,
        known: &[Node<'a>],
        patterned: &[&Model<'a>],
        sp: &Path,
        l: Node<'a>,
        lp: &Path,
        what: Obligation<'a>,
        sink: &mut Sink,
    ) -> bool {
        // A patterned model gives the name its `additionalProperties` or one of its pattern
        // schemas: every alternative must do.
        if let Some(model) = patterned.first() {
            let alternatives: Vec<&'a Value> = model
                .patterns
                .into_iter()
                .flat_map(|p| p.values())
                .chain([model.additional.unwrap_or(&TRUE_VALUE)])
                .collect();
            let all = alternatives.iter().all(|alt| {
                let mut cases = known.to_vec();
                cases.push(model.node.at(alt));
                self.below_quietly(&cases, sp, l, lp)
            });
            if all {
                return true;
            }
        }
        let open = known.is_empty() && patterned.is_empty();
        let special = l.v == &Value::Bool(false) || (open && !matches!(what, Obligation::Pattern));
        if !special {
            return self.prove_below(known, sp, l, lp, sink);
        }
        if self.below_quietly(known, sp, l, lp) {
            return true;
        }
        let (sm, lg) = self.names();
        let (kind, message) = match what {
            _ if l.v == &Value::Bool(false) => (
                Kind::ClosedContentModel,
                match what {
                    Obligation::Other => {
                        format!("{lg} rejects undeclared properties, which {sm} does not rule out")
                    }
                    Obligation::Declared(name) | Obligation::Undeclared(name) => format!(
                        "{lg} rejects property {:?}, which {sm} does not rule out",
                        clip(name)
                    ),
                    Obligation::Pattern => format!(
                        "{lg} rejects properties matching this pattern, which {sm} does not rule out"
                    ),
                },
            ),
            Obligation::Declared(name) => (
                self.kind(
                    Kind::PropertyAddedToOpenModel,
                    Kind::PropertyRemovedFromOpenModel,
                ),
                format!(
                    "{lg} constrains property {:?}, which {sm} leaves free in an open model, so it may hold any value",
                    clip(name)
                ),
            ),
            _ => (
                Kind::ClosedContentModel,
                format!(
                    "{lg} constrains undeclared properties (`additionalProperties`), which {sm} leaves free"
                ),
            ),
        };
        self.report(sink, sp, lp, &[], kind, |_, _| message);
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn check_property_names(
        &mut self,
        conj: &Conj<'a>,
        facts: &Facts<'a>,
        sp: &Path,
        l: Node<'a>,
        kv: &'a Value,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        if kv == &Value::Bool(true) || self.candidates_ok(facts, l, "propertyNames") {
            return true;
        }
        let spn = sp.key("propertyNames");
        let lpn = lp.key("propertyNames");
        let by_schema = conj.nodes.iter().any(|c| {
            let Some(s_names) = c.map().and_then(|m| m.get("propertyNames")) else {
                return false;
            };
            is_active(self.draft(*c), "propertyNames")
                && self.below_quietly(&[c.at(s_names)], &spn, l.at(kv), &lpn)
        });
        if by_schema {
            return true;
        }
        if let Some(names) = self.closed_names(conj) {
            let all = names.iter().all(|name| {
                let value = Value::String((*name).to_owned());
                self.eval(l.at(kv), &value, STRING) == Tri::True
            });
            if all {
                return true;
            }
        }
        self.unproven(sink, sp, lp, &["propertyNames"], "`propertyNames` is only proven from an including `propertyNames` or a closed set of names");
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn check_dependencies(
        &mut self,
        s: &[Node<'a>],
        conj: &Conj<'a>,
        facts: &Facts<'a>,
        required: &[&'a str],
        sp: &Path,
        l: Node<'a>,
        keyword: &'static str,
        kv: &'a Value,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        let Value::Object(deps) = kv else {
            self.unproven(
                sink,
                sp,
                lp,
                &[keyword],
                &format!("`{keyword}` is malformed"),
            );
            return false;
        };
        if self.candidates_ok(facts, l, keyword) {
            return true;
        }
        let mut ok = true;
        for (trigger, dependency) in deps {
            if self.forbids(conj, trigger) {
                continue;
            }
            match dependency {
                Value::Array(names) if keyword != "dependentSchemas" => {
                    for name in names {
                        let Some(name) = name.as_str() else {
                            self.unproven(
                                sink,
                                sp,
                                lp,
                                &[keyword, trigger],
                                &format!("`{keyword}` is malformed"),
                            );
                            ok = false;
                            continue;
                        };
                        let held = name == trigger
                            || required.contains(&name)
                            || conj
                                .nodes
                                .iter()
                                .any(|c| self.requires_dependency(*c, trigger, name));
                        if !held {
                            let (shown_name, shown_trigger) = (clip(name), clip(trigger));
                            self.report(sink, sp, lp, &[keyword, trigger], self.kind(Kind::DependencyAdded, Kind::DependencyRemoved), |sm, lg| {
                                format!("{lg} requires {shown_name:?} whenever {shown_trigger:?} is present, {sm} does not")
                            });
                            ok = false;
                        }
                    }
                }
                Value::Object(_) | Value::Bool(_) if keyword != "dependentRequired" => {
                    let kp = lp.key(keyword);
                    let at = kp.key(trigger);
                    let held = self.quietly(s, sp, l.at(dependency), &at)
                        || conj.nodes.iter().any(|c| {
                            let Some(map) = c.map() else { return false };
                            let cdraft = self.draft(*c);
                            let own =
                                ["dependencies", "dependentSchemas"]
                                    .into_iter()
                                    .find_map(|k| {
                                        is_active(cdraft, k)
                                            .then(|| map.get(k)?.get(trigger))
                                            .flatten()
                                            .filter(|d| d.is_object() || d.is_boolean())
                                    });
                            let Some(own) = own else { return false };
                            let mut cases = s.to_vec();
                            cases.push(c.at(own));
                            self.quietly(&cases, sp, l.at(dependency), &at)
                        });
                    if !held {
                        self.unproven(sink, sp, lp, &[keyword, trigger], &format!(
                            "the `{keyword}` schema for {:?} is only proven from an including one of the other schema",
                            clip(trigger)
                        ));
                        ok = false;
                    }
                }
                _ => {
                    self.unproven(
                        sink,
                        sp,
                        lp,
                        &[keyword, trigger],
                        &format!("`{keyword}` is malformed"),
                    );
                    ok = false;
                }
            }
        }
        ok
    }

    fn requires_dependency(&self, c: Node<'a>, trigger: &str, name: &str) -> bool {
        let Some(map) = c.map() else { return false };
        let draft = self.draft(c);
        ["dependencies", "dependentRequired"].into_iter().any(|k| {
            is_active(draft, k)
                && map
                    .get(k)
                    .and_then(|d| d.get(trigger))
                    .and_then(Value::as_array)
                    .is_some_and(|names| names.iter().any(|n| n.as_str() == Some(name)))
        })
    }

    // ---- applicators ------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn check_any_of(
        &mut self,
        s: &[Node<'a>],
        conj: &Conj<'a>,
        sp: &Path,
        l: Node<'a>,
        kv: &'a Value,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        if let Value::Array(branches) = kv {
            let anyof = lp.key("anyOf");
            for (i, branch) in branches.iter().enumerate() {
                let at = anyof.index(i);
                if self.quietly(s, sp, l.at(branch), &at) {
                    return true;
                }
            }
            if self.same_keyword(conj, l, "anyOf") {
                return true;
            }
        }
        self.unproven(
            sink,
            sp,
            lp,
            &["anyOf"],
            "no branch of `anyOf` is proven to include every value of the other schema",
        );
        false
    }

    /// Whether some fact of S has keyword `keyword` identical to L's.
    fn same_keyword(&mut self, conj: &Conj<'a>, l: Node<'a>, keyword: &str) -> bool {
        let Some(lv) = l.map().and_then(|m| m.get(keyword)) else {
            return false;
        };
        conj.nodes
            .iter()
            .any(|c| match c.map().and_then(|m| m.get(keyword)) {
                Some(sv) => self.identical(c.at(sv), l.at(lv)),
                None => false,
            })
    }

    #[allow(clippy::too_many_arguments)]
    fn check_one_of(
        &mut self,
        s: &[Node<'a>],
        conj: &Conj<'a>,
        facts: &Facts<'a>,
        sp: &Path,
        l: Node<'a>,
        kv: &'a Value,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        if self.same_keyword(conj, l, "oneOf") || self.candidates_ok(facts, l, "oneOf") {
            return true;
        }
        if let Value::Array(branches) = kv {
            let oneof = lp.key("oneOf");
            for (i, branch) in branches.iter().enumerate() {
                let at = oneof.index(i);
                if !self.quietly(s, sp, l.at(branch), &at) {
                    continue;
                }
                let exclusive = branches
                    .iter()
                    .enumerate()
                    .all(|(j, other)| j == i || self.disjoint(conj, facts, l.at(other), 0));
                if exclusive {
                    return true;
                }
            }
        }
        self.unproven(sink, sp, lp, &["oneOf"], "`oneOf` is only proven when one branch includes the other schema and the others exclude it");
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn check_not(
        &mut self,
        conj: &Conj<'a>,
        facts: &Facts<'a>,
        sp: &Path,
        l: Node<'a>,
        kv: &'a Value,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        if self.disjoint(conj, facts, l.at(kv), 0) || self.candidates_ok(facts, l, "not") {
            return true;
        }
        // not(Y) ⊆ not(X) when X ⊆ Y: the reverse inclusion, between the two negated schemas.
        let reversed = conj.nodes.iter().any(|c| {
            let Some(y) = c.map().and_then(|m| m.get("not")) else {
                return false;
            };
            let lnot = lp.key("not");
            let snot = sp.key("not");
            self.quietly(&[l.at(kv)], &lnot, c.at(y), &snot)
        });
        if reversed {
            return true;
        }
        self.unproven(
            sink,
            sp,
            lp,
            &["not"],
            "`not` is only proven for disjoint schemas or an including `not`",
        );
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn check_if(
        &mut self,
        s: &[Node<'a>],
        conj: &Conj<'a>,
        facts: &Facts<'a>,
        sp: &Path,
        l: Node<'a>,
        lmap: &'a Map<String, Value>,
        lp: &Path,
        sink: &mut Sink,
    ) -> bool {
        let Some(condition) = lmap.get("if") else {
            return true;
        };
        let then = lmap.get("then").unwrap_or(&TRUE_VALUE);
        let otherwise = lmap.get("else").unwrap_or(&TRUE_VALUE);
        if self.candidates_ok(facts, l, "if") {
            return true;
        }
        let lthen = lp.key("then");
        let lelse = lp.key("else");
        let lif = lp.key("if");
        let holds = (self.quietly(s, sp, l.at(then), &lthen)
            && self.quietly(s, sp, l.at(otherwise), &lelse))
            || (self.quietly(s, sp, l.at(condition), &lif)
                && self.quietly(s, sp, l.at(then), &lthen))
            || (self.disjoint(conj, facts, l.at(condition), 0)
                && self.quietly(s, sp, l.at(otherwise), &lelse))
            || conj.nodes.iter().any(|c| {
                let Some(map) = c.map() else { return false };
                ["if", "then", "else"]
                    .iter()
                    .all(|k| match (map.get(*k), lmap.get(*k)) {
                        (None, None) => true,
                        (Some(a), Some(b)) => self.identical(c.at(a), l.at(b)),
                        _ => false,
                    })
            });
        if holds {
            return true;
        }
        self.unproven(sink, sp, lp, &["if"], "`if`/`then`/`else` is only proven when both branches, or the branch taken, include the other schema");
        false
    }

    /// Whether no value is valid under both S (`conj`) and `x`.
    fn disjoint(&mut self, conj: &Conj<'a>, facts: &Facts<'a>, x: Node<'a>, depth: usize) -> bool {
        if depth > 8 || !self.tick() {
            return false;
        }
        let xconj = self.conj_of(&[x]);
        if xconj.empty {
            return true;
        }
        let xfacts = self.facts(&xconj);
        let common = facts.types & xfacts.types;
        if common == 0 {
            return true;
        }
        if let Some(candidates) = &facts.candidates {
            let all_rejected = candidates.iter().all(|&(value, class)| {
                xconj
                    .nodes
                    .iter()
                    .any(|c| self.eval(*c, value, class) == Tri::False)
            });
            if all_rejected {
                return true;
            }
        }
        if let Some(candidates) = &xfacts.candidates {
            // x's candidates are already those x may accept; S must reject each.
            let all_rejected = candidates.iter().all(|&(value, class)| {
                conj.nodes
                    .iter()
                    .any(|c| self.eval(*c, value, class) == Tri::False)
            });
            if all_rejected {
                return true;
            }
        }
        if common & !OBJECT == 0 {
            // Objects only: a property x requires whose values S and x keep apart.
            for name in self.required(&xconj) {
                if self.forbids(conj, name) {
                    return true;
                }
                let s_schemas = property_schemas(&self.docs, conj, name);
                let x_schemas = property_schemas(&self.docs, &xconj, name);
                if x_schemas.is_empty() {
                    continue;
                }
                let sub = self.conj_of(&s_schemas);
                if sub.empty {
                    return true;
                }
                let sub_facts = self.facts(&sub);
                let mut xsub = Conj {
                    nodes: Vec::new(),
                    empty: false,
                };
                for node in &x_schemas {
                    self.gather(*node, &mut xsub, 0);
                }
                if xsub.empty {
                    return true;
                }
                let xnode = x_schemas[0];
                if x_schemas.len() == 1 && self.disjoint(&sub, &sub_facts, xnode, depth + 1) {
                    return true;
                }
            }
        }
        false
    }
}

/// The schemas a conjunction certainly applies to property `name` (declared or additional).
fn property_schemas<'a>(docs: &[Doc<'a>; 2], conj: &Conj<'a>, name: &str) -> Vec<Node<'a>> {
    conj.nodes
        .iter()
        .filter_map(|c| {
            let map = c.map()?;
            match map.get("properties").and_then(|p| p.get(name)) {
                Some(schema) => Some(c.at(schema)),
                None if !has_patterns(map) => {
                    additional_properties(map, docs[c.doc].draft).map(|(a, _)| c.at(a))
                }
                None => None,
            }
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Obligation<'a> {
    /// L declares the property.
    Declared(&'a str),
    /// L's `additionalProperties`, for a property S declares.
    Undeclared(&'a str),
    /// L's `additionalProperties`, for every name neither declares.
    Other,
    /// One of L's `patternProperties` S does not share.
    Pattern,
}

/// The object content model of one fact of S.
struct Model<'a> {
    node: Node<'a>,
    props: Option<&'a Map<String, Value>>,
    patterns: Option<&'a Map<String, Value>>,
    additional: Option<&'a Value>,
}

impl<'a> Model<'a> {
    fn of(node: Node<'a>, draft: Draft) -> Option<Model<'a>> {
        let map = node.map()?;
        let props = map.get("properties").and_then(Value::as_object);
        let patterns = map
            .get("patternProperties")
            .and_then(Value::as_object)
            .filter(|p| !p.is_empty());
        let additional = additional_properties(map, draft).map(|(a, _)| a);
        (props.is_some() || patterns.is_some() || additional.is_some()).then_some(Model {
            node,
            props,
            patterns,
            additional,
        })
    }
}

struct LModel<'a> {
    node: Node<'a>,
    props: Option<&'a Map<String, Value>>,
    patterns: Option<&'a Map<String, Value>>,
    additional: Option<&'a Value>,
    additional_keyword: &'static str,
}

fn has_patterns(map: &Map<String, Value>) -> bool {
    match map.get("patternProperties") {
        Some(Value::Object(p)) => !p.is_empty(),
        Some(_) => true,
        None => false,
    }
}

/// The array shape of one node: a tuple prefix, then one schema for the rest.
struct Shape<'a> {
    prefix: &'a [Value],
    prefix_keyword: &'static str,
    rest: Option<&'a Value>,
    rest_keyword: &'static str,
}

impl<'a> Shape<'a> {
    /// `None` for combinations the validator reads in ways not modelled here.
    fn of(map: &'a Map<String, Value>, draft: Draft) -> Option<Shape<'a>> {
        let items = map.get("items");
        let prefix_items = if draft == Draft::D2020 {
            map.get("prefixItems")
        } else {
            None
        };
        let tuple_rest = |keyword| map.get(keyword).filter(|v| **v != Value::Bool(true));
        let mut shape = match (prefix_items, items) {
            (Some(Value::Array(prefix)), None | Some(Value::Object(_) | Value::Bool(_))) => Shape {
                prefix,
                prefix_keyword: "prefixItems",
                rest: items.filter(|v| **v != Value::Bool(true)),
                rest_keyword: "items",
            },
            (Some(_), _) => return None,
            (None, Some(Value::Array(tuple))) => Shape {
                prefix: tuple,
                prefix_keyword: "items",
                rest: tuple_rest("additionalItems").filter(|v| v.is_object() || v.is_boolean()),
                rest_keyword: "additionalItems",
            },
            (None, Some(schema @ (Value::Object(_) | Value::Bool(_)))) => Shape {
                prefix: &[],
                prefix_keyword: "items",
                rest: Some(schema).filter(|v| **v != Value::Bool(true)),
                rest_keyword: "items",
            },
            (None, None) => Shape {
                prefix: &[],
                prefix_keyword: "items",
                rest: None,
                rest_keyword: "items",
            },
            (None, Some(_)) => return None,
        };
        if unevaluated_is_additional(map, draft, true) {
            shape.rest = map
                .get("unevaluatedItems")
                .filter(|v| **v != Value::Bool(true));
            shape.rest_keyword = "unevaluatedItems";
        }
        Some(shape)
    }

    fn item(&self, i: usize) -> Option<&'a Value> {
        self.prefix.get(i).or(self.rest)
    }

    /// Longest array this shape admits.
    fn longest(&self) -> u64 {
        if let Some(i) = self.prefix.iter().position(|v| *v == Value::Bool(false)) {
            return i as u64;
        }
        if self.rest == Some(&FALSE_VALUE) {
            return self.prefix.len() as u64;
        }
        u64::MAX
    }

    /// The pointer segment naming position `i`.
    fn segment(&self, i: usize) -> (&'static str, Option<usize>) {
        if i < self.prefix.len() {
            (self.prefix_keyword, Some(i))
        } else {
            (self.rest_keyword, None)
        }
    }
}

/// The bounds one node imposes on numbers: (lower, upper), each possibly two (draft 6+ may have
/// both `minimum` and `exclusiveMinimum`).
fn node_bounds(map: &Map<String, Value>, draft: Draft) -> ([Option<Bound>; 2], [Option<Bound>; 2]) {
    let num = |k: &str| map.get(k).and_then(Num::of_value);
    if draft == Draft::D4 {
        let lo = num("minimum").map(|n| Bound {
            n,
            exclusive: map.get("exclusiveMinimum") == Some(&Value::Bool(true)),
        });
        let hi = num("maximum").map(|n| Bound {
            n,
            exclusive: map.get("exclusiveMaximum") == Some(&Value::Bool(true)),
        });
        ([lo, None], [hi, None])
    } else {
        (
            [
                num("minimum").map(|n| Bound {
                    n,
                    exclusive: false,
                }),
                num("exclusiveMinimum").map(|n| Bound { n, exclusive: true }),
            ],
            [
                num("maximum").map(|n| Bound {
                    n,
                    exclusive: false,
                }),
                num("exclusiveMaximum").map(|n| Bound { n, exclusive: true }),
            ],
        )
    }
}

fn tighter_lower(current: Option<Bound>, b: Bound) -> Bound {
    match current {
        None => b,
        Some(c) => match c.n.cmp(b.n) {
            std::cmp::Ordering::Greater => c,
            std::cmp::Ordering::Less => b,
            std::cmp::Ordering::Equal => Bound {
                n: c.n,
                exclusive: c.exclusive || b.exclusive,
            },
        },
    }
}

fn tighter_upper(current: Option<Bound>, b: Bound) -> Bound {
    match current {
        None => b,
        Some(c) => match c.n.cmp(b.n) {
            std::cmp::Ordering::Less => c,
            std::cmp::Ordering::Greater => b,
            std::cmp::Ordering::Equal => Bound {
                n: c.n,
                exclusive: c.exclusive || b.exclusive,
            },
        },
    }
}

/// For integral values only: the least integer the bound admits, inclusive.
fn integral_lower(b: Bound) -> Bound {
    let next = if b.exclusive {
        b.n.next_integer()
    } else {
        b.n.ceil()
    };
    next.map_or(b, |n| Bound {
        n,
        exclusive: false,
    })
}

fn integral_upper(b: Bound) -> Bound {
    let previous = if b.exclusive {
        b.n.previous_integer()
    } else {
        b.n.floor()
    };
    previous.map_or(b, |n| Bound {
        n,
        exclusive: false,
    })
}

/// Whether S's lower bound `have` implies L's `wanted`.
fn implies_lower(have: Bound, wanted: Bound) -> bool {
    match have.n.cmp(wanted.n) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => have.exclusive || !wanted.exclusive,
        std::cmp::Ordering::Less => false,
    }
}

fn implies_upper(have: Bound, wanted: Bound) -> bool {
    match have.n.cmp(wanted.n) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Equal => have.exclusive || !wanted.exclusive,
        std::cmp::Ordering::Greater => false,
    }
}

fn capitalised(message: String) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => {
            let mut out: String = first.to_uppercase().collect();
            out.push_str(chars.as_str());
            if !out.ends_with('.') {
                out.push('.');
            }
            out
        }
        None => message,
    }
}
