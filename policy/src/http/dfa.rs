//! Multi-pattern DFAs in the kernel's table form.
//!
//! Each DFA is built with regex-automata (dense, `MatchKind::All`, anchored start, Unicode and
//! UTF-8 off), then converted: the states reachable from the start state are renumbered, a
//! state accepts the patterns that match when the input ends there (regex-automata's
//! end-of-input transition), the result is minimised (states with equal acceptance and equal
//! transitions merge) and bytes that every state treats alike share a class. State 0 is always
//! the dead state (it accepts only the patterns that match every input, and loops on itself);
//! unused table entries point to it.

use std::collections::HashMap;

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::nfa::thompson;
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};

use super::syntax::automata_syntax;
use super::{MAX_DFA_CLASSES, MAX_DFA_STATES};

/// One DFA in the kernel's table form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dfa {
    /// Byte → class (< `MAX_DFA_CLASSES`).
    pub classes: [u8; 256],
    pub num_classes: usize,
    pub num_states: usize,
    pub start: u8,
    /// `MAX_DFA_STATES * MAX_DFA_CLASSES` entries: the next state is
    /// `trans[state * MAX_DFA_CLASSES + class]`; unused entries are 0.
    pub trans: Vec<u8>,
    /// `MAX_DFA_STATES` entries: the bits of the patterns that match when the input ends in
    /// that state (unused entries are 0).
    pub accept: Vec<u64>,
}

impl Dfa {
    /// Exactly the kernel's loop: `s = start; for b in input { s = trans[s * 64 +
    /// classes[b]] }; accept[s]`.
    pub fn run(&self, input: &[u8]) -> u64 {
        let mut s = usize::from(self.start);
        for &b in input {
            s = usize::from(
                self.trans[s * MAX_DFA_CLASSES + usize::from(self.classes[usize::from(b)])],
            );
        }
        self.accept[s]
    }
}

/// A pattern and the bit it sets.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    /// A regex in the rules' dialect, matched against the whole input.
    pub regex: String,
    pub bit: u32,
}

/// Why a DFA does not fit the datapath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DfaError {
    /// This many states after minimisation (`None`: more than regex-automata's size limits).
    States(Option<usize>),
    Classes(usize),
}

/// Limits on regex-automata's intermediate DFA (far above what fits the datapath).
const DETERMINIZE_LIMIT: usize = 16 << 20;
const DFA_SIZE_LIMIT: usize = 8 << 20;
/// More raw states than this cannot minimise into `MAX_DFA_STATES` in reasonable time.
const RAW_STATE_LIMIT: usize = 1 << 16;

/// Builds the DFA of `patterns`; `always` is set in every state (patterns that match any input).
pub(crate) fn build(patterns: &[Pattern], always: u64) -> Result<Dfa, DfaError> {
    let table = raw_table(patterns, always)?;
    let minimal = minimise(&table);
    to_dfa(&minimal)
}

/// A complete DFA over bytes: state 0 is dead.
struct Table {
    start: usize,
    next: Vec<[u32; 256]>,
    accept: Vec<u64>,
}

fn raw_table(patterns: &[Pattern], always: u64) -> Result<Table, DfaError> {
    let regexes: Vec<String> = patterns
        .iter()
        .map(|p| super::syntax::anchored(&p.regex))
        .collect();
    let pattern_bits: Vec<u64> = patterns.iter().map(|p| 1u64 << p.bit).collect();
    let dfa = dense::Builder::new()
        .configure(
            dense::Config::new()
                .match_kind(MatchKind::All)
                .start_kind(StartKind::Anchored)
                .byte_classes(true)
                .unicode_word_boundary(false)
                .accelerate(false)
                .specialize_start_states(false)
                .minimize(true)
                .determinize_size_limit(Some(DETERMINIZE_LIMIT))
                .dfa_size_limit(Some(DFA_SIZE_LIMIT)),
        )
        .syntax(automata_syntax())
        .thompson(
            thompson::Config::new()
                .utf8(false)
                .shrink(true)
                .which_captures(thompson::WhichCaptures::None),
        )
        .build_many(&regexes)
        .map_err(|_| DfaError::States(None))?;
    let start = dfa
        .start_state(&start::Config::new().anchored(Anchored::Yes))
        .map_err(|_| DfaError::States(None))?;

    // Renumber the reachable states, the dead state as 0.
    let mut index: HashMap<StateID, u32> = HashMap::new();
    let mut order: Vec<StateID> = Vec::new();
    let mut id_of = |id: StateID, order: &mut Vec<StateID>| -> u32 {
        if dfa.is_dead_state(id) {
            return 0;
        }
        *index.entry(id).or_insert_with(|| {
            order.push(id);
            order.len() as u32
        })
    };
    let start_index = id_of(start, &mut order);
    let mut next: Vec<[u32; 256]> = vec![[0; 256]];
    let mut accept: Vec<u64> = vec![always];
    let mut i = 0;
    while i < order.len() {
        if order.len() > RAW_STATE_LIMIT {
            return Err(DfaError::States(None));
        }
        let id = order[i];
        if dfa.is_quit_state(id) {
            return Err(DfaError::States(None));
        }
        let mut row = [0u32; 256];
        for b in 0..=255u8 {
            row[usize::from(b)] = id_of(dfa.next_state(id, b), &mut order);
        }
        let eoi = dfa.next_eoi_state(id);
        let mut bits = always;
        if dfa.is_match_state(eoi) {
            for m in 0..dfa.match_len(eoi) {
                bits |= pattern_bits[dfa.match_pattern(eoi, m).as_usize()];
            }
        }
        next.push(row);
        accept.push(bits);
        i += 1;
    }
    Ok(Table {
        start: start_index as usize,
        next,
        accept,
    })
}

/// Moore's partition refinement: states with equal acceptance whose transitions lead to equal
/// blocks merge. The dead state's block is 0.
fn minimise(t: &Table) -> Table {
    let n = t.next.len();
    let mut block: Vec<u32> = {
        let mut ids: HashMap<u64, u32> = HashMap::new();
        (0..n)
            .map(|s| {
                let len = ids.len() as u32;
                *ids.entry(t.accept[s]).or_insert(len)
            })
            .collect()
    };
    let mut count = block.iter().max().map_or(0, |m| m + 1);
    loop {
        let mut ids: HashMap<(u32, Vec<u32>), u32> = HashMap::new();
        let refined: Vec<u32> = (0..n)
            .map(|s| {
                let key = (
                    block[s],
                    t.next[s].iter().map(|&x| block[x as usize]).collect(),
                );
                let len = ids.len() as u32;
                *ids.entry(key).or_insert(len)
            })
            .collect();
        let refined_count = ids.len() as u32;
        block = refined;
        if refined_count == count {
            break;
        }
        count = refined_count;
    }
    let blocks = count as usize;
    let mut next = vec![[0u32; 256]; blocks];
    let mut accept = vec![0u64; blocks];
    for s in 0..n {
        let b = block[s] as usize;
        accept[b] = t.accept[s];
        for (byte, &x) in t.next[s].iter().enumerate() {
            next[b][byte] = block[x as usize];
        }
    }
    Table {
        start: block[t.start] as usize,
        next,
        accept,
    }
}

/// Byte classes (bytes every state treats alike) and the kernel's fixed-size tables.
fn to_dfa(t: &Table) -> Result<Dfa, DfaError> {
    let states = t.next.len();
    if states > MAX_DFA_STATES {
        return Err(DfaError::States(Some(states)));
    }
    let mut class_ids: HashMap<Vec<u32>, u8> = HashMap::new();
    let mut classes = [0u8; 256];
    let mut representatives: Vec<usize> = Vec::new();
    for b in 0..256 {
        let column: Vec<u32> = t.next.iter().map(|row| row[b]).collect();
        let len = class_ids.len();
        let id = *class_ids.entry(column).or_insert_with(|| {
            representatives.push(b);
            len.min(255) as u8
        });
        classes[b] = id;
    }
    let num_classes = class_ids.len();
    if num_classes > MAX_DFA_CLASSES {
        return Err(DfaError::Classes(num_classes));
    }
    let mut trans = vec![0u8; MAX_DFA_STATES * MAX_DFA_CLASSES];
    let mut accept = vec![0u64; MAX_DFA_STATES];
    for (s, row) in t.next.iter().enumerate() {
        for (class, &b) in representatives.iter().enumerate() {
            trans[s * MAX_DFA_CLASSES + class] = row[b] as u8;
        }
        accept[s] = t.accept[s];
    }
    Ok(Dfa {
        classes,
        num_classes,
        num_states: states,
        start: t.start as u8,
        trans,
        accept,
    })
}
