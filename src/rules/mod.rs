//! Rule-triggering notifications (DESIGN §3.3): the pure fan-out from one [`ScanVerdict`] to the
//! notices it produces.
//!
//! [`RuleFanout`] is built once from the [`Config`]; [`RuleFanout::fanout`] turns a verdict into a
//! [`FanoutPlan`]: one [`RuleNotice`] per (template, address), the suppressed candidates with
//! their [`SuppressionReason`], the count withheld by the per-message cap and the [`CapSummary`]
//! that tells the general list (or the application admins) about them. No Kafka, no SMTP, no
//! rendering: the wiring renders each notice with the verdict and hands it to delivery.
//!
//! Decisions, each documented where it is made:
//! - **Address identity.** Two addresses are the same recipient when they are equal after
//!   Unicode lower-casing of the *whole* address, local part included. RFC 5321 lets a server
//!   treat local parts as case-sensitive, but no mainstream MTA does, and the failure we guard
//!   against — `Bob@x` and `bob@x` each getting the same notice — is real, while two distinct
//!   mailboxes differing only in case are not. The first spelling met is the one mailed.
//! - **Order** (also the order the cap cuts in): the groups `general`, `additional`, `sender`,
//!   `recipients` — the operator's own lists first, the attacker-sized recipient list last — then
//!   the triggered rules in verdict order, then each list in its order. Deterministic for a given
//!   verdict and config.
//! - **Rule filters.** A rule with `modules` and/or `statuses` matches when at least one of its
//!   detections passes both filters (so "ANTI_VIRUS + INFECTED" does not match a rule that found
//!   ANTI_VIRUS/SCAN_ERROR and ANTI_SPAM/INFECTED). Statuses compare ASCII case-insensitively.
//!   Rule ids compare exactly; an id not listed in `[[rules.rule]]` uses `[rules.default]`.
//! - **Privacy of %AFFECTED_RECIPIENTS%.** A notice produced through the `recipients` group lists
//!   only its addressee (the other recipients, Bcc included, are none of their business); a
//!   notice produced through `general`, `additional` or `sender` lists the affected recipients of
//!   the rules that produced it. A notice produced through both gets the union.
//! - **Our own addresses** (`[sender] address` and the envelope sender) are never notified in any
//!   group (`own_address`), and a verdict whose sender is one of them never yields a sender
//!   notice.
//! - **Invalid addresses** from the event (an affected recipient or a sender that does not parse
//!   as a mailbox) are suppressed with `invalid_address` rather than handed to SMTP.
//! - **The final action** on the message plays no part: notices are sent whatever it was (KSMG).

pub mod metrics;
#[cfg(test)]
pub(crate) mod tests;

pub use metrics::RuleMetrics;

use crate::config::{
    address_key, bare_address, Config, Mailbox, NotifyGroup, RecipientGroup, RuleSettings,
    SenderPolicy,
};
use crate::event::{Detection, DetectionModule, RuleTrigger, ScanVerdict};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Template of the notice that reports what the cap withheld.
pub const CAP_SUMMARY_TEMPLATE: &str = "rule/cap-summary";

/// How many withheld addresses the cap summary names (the rest only counted), so that a verdict
/// for 50,000 recipients does not make a 50,000-line summary.
pub const SUMMARY_SAMPLE: usize = 20;

/// The order groups are planned in, and so the order the cap cuts in: operator-sized lists first.
pub const GROUP_ORDER: [NotifyGroup; 4] = [
    NotifyGroup::General,
    NotifyGroup::Additional,
    NotifyGroup::Sender,
    NotifyGroup::Recipients,
];

/// The template a group uses when the rule names none.
pub fn default_template(group: NotifyGroup) -> &'static str {
    match group {
        NotifyGroup::General => "rule/general",
        NotifyGroup::Sender => "rule/sender",
        NotifyGroup::Recipients => "rule/recipients",
        NotifyGroup::Additional => "rule/additional",
    }
}

/// Why a candidate notice (or a whole rule) produced no mail. Label values of the suppression
/// metric and of the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SuppressionReason {
    /// The `sender` group, but the verdict has the null sender `<>`.
    BackscatterNullSender,
    /// `sender_policy = "authenticated"` and the sender did not pass SPF/DKIM/DMARC alignment.
    BackscatterUnauthenticated,
    /// `sender_policy = "internal"` and the sender's domain is not in `local_domains`.
    BackscatterExternal,
    /// The address is one of ours (`[sender] address` or the envelope sender).
    OwnAddress,
    /// The rule's `modules`/`statuses` filter matched none of its detections.
    Filtered,
    /// The same template already goes to the same address for this verdict.
    Duplicate,
    /// Beyond `max_notifications_per_message`; reported in the cap summary instead.
    Cap,
    /// Rule notifications are disabled (`[rules] enabled = false`) or the rule notifies no group.
    Disabled,
    /// The address in the event does not parse as a mailbox; never handed to SMTP.
    InvalidAddress,
}

impl SuppressionReason {
    /// Every reason, for pre-creating metric labels.
    pub const ALL: [SuppressionReason; 9] = [
        SuppressionReason::BackscatterNullSender,
        SuppressionReason::BackscatterUnauthenticated,
        SuppressionReason::BackscatterExternal,
        SuppressionReason::OwnAddress,
        SuppressionReason::Filtered,
        SuppressionReason::Duplicate,
        SuppressionReason::Cap,
        SuppressionReason::Disabled,
        SuppressionReason::InvalidAddress,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::BackscatterNullSender => "backscatter_null_sender",
            SuppressionReason::BackscatterUnauthenticated => "backscatter_unauthenticated",
            SuppressionReason::BackscatterExternal => "backscatter_external",
            SuppressionReason::OwnAddress => "own_address",
            SuppressionReason::Filtered => "filtered",
            SuppressionReason::Duplicate => "duplicate",
            SuppressionReason::Cap => "cap",
            SuppressionReason::Disabled => "disabled",
            SuppressionReason::InvalidAddress => "invalid_address",
        }
    }
}

/// Suppressions of one kind, aggregated so that the list stays small for 50,000 recipients:
/// one entry per (reason, group, rule) with a count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    /// Why.
    pub reason: SuppressionReason,
    /// The group the candidates belonged to; `None` when the whole rule was suppressed
    /// (`filtered`, `disabled`).
    pub group: Option<NotifyGroup>,
    /// Index of the rule in `verdict.triggered_rules`.
    pub rule: usize,
    /// How many candidates.
    pub count: usize,
}

/// One notification to send: one template to one address for one verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleNotice {
    /// The group that produced it first (in [`GROUP_ORDER`]); picks nothing, for logs and labels.
    pub group: NotifyGroup,
    /// Every group that produced it, in [`NotifyGroup::ALL`] order.
    pub groups: Vec<NotifyGroup>,
    /// Template name (`rule/general` or the rule's own).
    pub template: String,
    /// The addressee, as first spelled.
    pub address: Mailbox,
    /// Indices in `verdict.triggered_rules` of the rules that produced it, ascending
    /// (%AFFECTED_RULES%).
    pub rules: Vec<usize>,
    /// Rules whose whole affected-recipient list this notice may show (those that produced it
    /// through `general`, `additional` or `sender`), ascending.
    pub affected_from: Vec<usize>,
    /// Produced through `recipients`: the addressee itself is an affected recipient to show.
    pub affected_self: bool,
}

impl RuleNotice {
    /// The triggered rules that produced this notice (%AFFECTED_RULES%). `verdict` must be the
    /// one the plan was made from; indices it lacks are skipped rather than panicking.
    pub fn affected_rules<'a>(&self, verdict: &'a ScanVerdict) -> Vec<&'a RuleTrigger> {
        self.rules
            .iter()
            .filter_map(|&i| verdict.triggered_rules.get(i))
            .collect()
    }

    /// The affected recipients this notice may show (%AFFECTED_RECIPIENTS%): the union of the
    /// lists of [`Self::affected_from`], then the addressee when [`Self::affected_self`];
    /// duplicates (case-insensitive) removed, first spelling kept, order of appearance.
    pub fn affected_recipients<'a>(&'a self, verdict: &'a ScanVerdict) -> Vec<&'a str> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let lists = self
            .affected_from
            .iter()
            .filter_map(|&i| verdict.triggered_rules.get(i))
            .flat_map(|r| r.affected_recipients.iter().map(String::as_str));
        let own = self.affected_self.then_some(self.address.as_str());
        for a in lists.chain(own) {
            if seen.insert(address_key(a)) {
                out.push(a.trim());
            }
        }
        out
    }
}

/// Withheld notices of one (group, template), for the cap summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithheldCount {
    /// The group that would have produced them.
    pub group: NotifyGroup,
    /// Their template.
    pub template: String,
    /// How many.
    pub count: usize,
}

/// The notice telling the general list (or the application admins) that the cap withheld
/// notices for this verdict. Rendered with [`CAP_SUMMARY_TEMPLATE`] and the verdict (which says
/// for which message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapSummary {
    /// [`CAP_SUMMARY_TEMPLATE`].
    pub template: String,
    /// Who gets it: the general list (language `[rules] language`) or, when that is empty, the
    /// `[application]` admin groups with their languages.
    pub recipients: Vec<RecipientGroup>,
    /// Notices that were planned (the cap).
    pub planned: usize,
    /// Notices withheld.
    pub withheld: usize,
    /// Withheld per (group, template), in planning order.
    pub by_group: Vec<WithheldCount>,
    /// The first [`SUMMARY_SAMPLE`] withheld addresses, in planning order.
    pub sample: Vec<Mailbox>,
}

/// Everything one verdict produces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FanoutPlan {
    /// Language of the notices (`[rules] language`).
    pub language: String,
    /// The notices, in planning order; at most `max_notifications_per_message`.
    pub notices: Vec<RuleNotice>,
    /// Suppressed candidates by (reason, group, rule), sorted.
    pub suppressed: Vec<Suppression>,
    /// Notices withheld by the cap (distinct (template, address) pairs beyond it).
    pub withheld: usize,
    /// Present when something was withheld and someone can be told.
    pub summary: Option<CapSummary>,
    /// The original's header block to attach as `text/rfc822-headers`, cut at
    /// `max_header_bytes`; present when `attach_original_headers` is on, the verdict has one and
    /// there is at least one notice. Never the body.
    pub original_headers: Option<String>,
}

impl FanoutPlan {
    /// Candidates suppressed for `reason`, all groups and rules together.
    pub fn suppressed_count(&self, reason: SuppressionReason) -> usize {
        self.suppressed
            .iter()
            .filter(|s| s.reason == reason)
            .map(|s| s.count)
            .sum()
    }
}

/// An address known at start-up (general or additional list) with its identity key.
#[derive(Debug, Clone)]
struct Target {
    mailbox: Mailbox,
    key: String,
}

impl Target {
    fn new(mailbox: &Mailbox) -> Self {
        Target {
            key: address_key(mailbox.as_str()).into_owned(),
            mailbox: mailbox.clone(),
        }
    }
}

/// One rule's settings, resolved: templates interned, filters normalised.
#[derive(Debug, Clone)]
struct Compiled {
    /// By [`group_index`].
    notify: [bool; 4],
    /// By [`group_index`]: index into `RuleFanout::templates`.
    templates: [usize; 4],
    additional: Vec<Target>,
    modules: Vec<DetectionModule>,
    statuses: Vec<String>,
}

impl Compiled {
    fn new(s: &RuleSettings, templates: &mut Vec<String>) -> Self {
        let mut notify = [false; 4];
        for g in &s.notify {
            notify[group_index(*g)] = true;
        }
        let t = &s.templates;
        let names = [&t.general, &t.sender, &t.recipients, &t.additional];
        let mut idx = [0; 4];
        for g in NotifyGroup::ALL {
            let name = names[group_index(g)]
                .as_deref()
                .unwrap_or(default_template(g));
            idx[group_index(g)] = intern(templates, name);
        }
        Compiled {
            notify,
            templates: idx,
            additional: s.additional.iter().map(Target::new).collect(),
            modules: s.modules.clone(),
            statuses: s.statuses.iter().map(|x| x.trim().to_string()).collect(),
        }
    }

    fn notifies_any(&self) -> bool {
        self.notify.iter().any(|&n| n)
    }

    fn matches(&self, detections: &[Detection]) -> bool {
        if self.modules.is_empty() && self.statuses.is_empty() {
            return true;
        }
        detections.iter().any(|d| {
            (self.modules.is_empty() || self.modules.contains(&d.module))
                && (self.statuses.is_empty()
                    || self
                        .statuses
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(d.status.trim())))
        })
    }
}

/// The rule fan-out, built once from the config; [`RuleFanout::fanout`] is pure.
#[derive(Debug, Clone)]
pub struct RuleFanout {
    enabled: bool,
    language: String,
    policy: SenderPolicy,
    local_domains: HashSet<String>,
    own: HashSet<String>,
    cap: usize,
    general: Vec<Target>,
    summary_to: Vec<RecipientGroup>,
    templates: Vec<String>,
    default: Compiled,
    by_id: HashMap<String, Compiled>,
    attach_headers: Option<usize>,
}

impl RuleFanout {
    /// Indexes the rule settings by id and precomputes the address sets. The config is assumed
    /// validated ([`Config::validate`]); nothing here can fail.
    pub fn new(config: &Config) -> Self {
        let r = &config.rules;
        let own: HashSet<String> = config.sender.own_addresses().into_iter().collect();
        let mut templates = Vec::new();
        let default = Compiled::new(&r.default, &mut templates);
        let by_id = r
            .rule
            .iter()
            .filter_map(|s| Some((s.id.clone()?, Compiled::new(s, &mut templates))))
            .collect();
        let general: Vec<Target> = r.general_list.iter().map(Target::new).collect();
        // The summary goes to the general list minus our own addresses; failing that, to the
        // application admins (who hear about the gateway's health anyway).
        let general_to: Vec<Mailbox> = general
            .iter()
            .filter(|t| !own.contains(&t.key))
            .map(|t| t.mailbox.clone())
            .collect();
        let summary_to = if general_to.is_empty() {
            config
                .application
                .recipients
                .iter()
                .map(|g| RecipientGroup {
                    addresses: g
                        .addresses
                        .iter()
                        .filter(|a| !own.contains(address_key(a.as_str()).as_ref()))
                        .cloned()
                        .collect(),
                    ..g.clone()
                })
                .filter(|g| !g.addresses.is_empty())
                .collect()
        } else {
            vec![RecipientGroup {
                name: Some("general".into()),
                addresses: general_to,
                language: r.language.clone(),
            }]
        };
        RuleFanout {
            enabled: r.enabled,
            language: r.language.clone(),
            policy: r.sender_policy,
            local_domains: r
                .local_domains
                .iter()
                .map(|d| d.trim().trim_end_matches('.').to_lowercase())
                .collect(),
            own,
            cap: r.max_notifications_per_message,
            general,
            summary_to,
            templates,
            default,
            by_id,
            attach_headers: r.attach_original_headers.then_some(r.max_header_bytes),
        }
    }

    /// The notices one verdict produces, its suppressions and the cap summary. Linear in the
    /// number of candidates (each list of each triggered rule): dedup is one hash lookup each.
    pub fn fanout(&self, verdict: &ScanVerdict) -> FanoutPlan {
        let mut b = Builder::new(self);
        if !self.enabled {
            for i in 0..verdict.triggered_rules.len() {
                b.suppress(SuppressionReason::Disabled, None, i, 1);
            }
            return b.finish(verdict);
        }
        let mut matched: Vec<(usize, &RuleTrigger, &Compiled)> = Vec::new();
        for (i, t) in verdict.triggered_rules.iter().enumerate() {
            let s = self.by_id.get(&t.rule_id).unwrap_or(&self.default);
            if !s.notifies_any() {
                b.suppress(SuppressionReason::Disabled, None, i, 1);
            } else if !s.matches(&t.detections) {
                b.suppress(SuppressionReason::Filtered, None, i, 1);
            } else {
                matched.push((i, t, s));
            }
        }
        let sender = self.sender_target(verdict);
        for group in GROUP_ORDER {
            let gi = group_index(group);
            for &(i, t, s) in matched.iter().filter(|(_, _, s)| s.notify[gi]) {
                let tpl = s.templates[gi];
                match group {
                    NotifyGroup::General => {
                        for target in &self.general {
                            b.offer(group, i, tpl, Candidate::Known(target));
                        }
                    }
                    NotifyGroup::Additional => {
                        for target in &s.additional {
                            b.offer(group, i, tpl, Candidate::Known(target));
                        }
                    }
                    NotifyGroup::Sender => match &sender {
                        Ok(target) => b.offer(group, i, tpl, Candidate::Known(target)),
                        Err(reason) => b.suppress(*reason, Some(group), i, 1),
                    },
                    NotifyGroup::Recipients => {
                        for a in &t.affected_recipients {
                            b.offer(group, i, tpl, Candidate::Raw(a));
                        }
                    }
                }
            }
        }
        b.finish(verdict)
    }

    /// The verdict's sender as a `sender`-group target, or why it may not be one.
    fn sender_target(&self, verdict: &ScanVerdict) -> Result<Target, SuppressionReason> {
        let key = address_key(&verdict.sender);
        if key.is_empty() {
            return Err(SuppressionReason::BackscatterNullSender);
        }
        if self.own.contains(key.as_ref()) {
            return Err(SuppressionReason::OwnAddress);
        }
        match self.policy {
            SenderPolicy::Always => {}
            SenderPolicy::Authenticated if !verdict.sender_authenticated => {
                return Err(SuppressionReason::BackscatterUnauthenticated)
            }
            SenderPolicy::Authenticated => {}
            SenderPolicy::Internal => {
                let domain = key.rsplit_once('@').map(|(_, d)| d.trim_end_matches('.'));
                if !domain.is_some_and(|d| self.local_domains.contains(d)) {
                    return Err(SuppressionReason::BackscatterExternal);
                }
            }
        }
        let mailbox = parse_event_address(&verdict.sender)?;
        Ok(Target {
            mailbox,
            key: key.into_owned(),
        })
    }
}

/// A candidate addressee: a configured target, or an address from the event still to validate.
enum Candidate<'a> {
    Known(&'a Target),
    Raw(&'a str),
}

/// Where a (template, address) pair went.
enum Slot {
    Planned(usize),
    Withheld,
    Invalid,
}

/// The state of one `fanout` call.
struct Builder<'f> {
    fanout: &'f RuleFanout,
    /// By template index: identity key → slot. One lookup per candidate, never a scan.
    seen: Vec<HashMap<String, Slot>>,
    notices: Vec<RuleNotice>,
    suppressed: BTreeMap<(SuppressionReason, Option<NotifyGroup>, usize), usize>,
    withheld: usize,
    withheld_by: Vec<((NotifyGroup, usize), usize)>,
    sample: Vec<Mailbox>,
}

impl<'f> Builder<'f> {
    fn new(fanout: &'f RuleFanout) -> Self {
        Builder {
            fanout,
            seen: (0..fanout.templates.len())
                .map(|_| HashMap::new())
                .collect(),
            notices: Vec::new(),
            suppressed: BTreeMap::new(),
            withheld: 0,
            withheld_by: Vec::new(),
            sample: Vec::new(),
        }
    }

    fn suppress(
        &mut self,
        reason: SuppressionReason,
        group: Option<NotifyGroup>,
        rule: usize,
        n: usize,
    ) {
        *self.suppressed.entry((reason, group, rule)).or_default() += n;
    }

    fn offer(&mut self, group: NotifyGroup, rule: usize, tpl: usize, cand: Candidate<'_>) {
        let key = match &cand {
            Candidate::Known(t) => Cow::Borrowed(t.key.as_str()),
            Candidate::Raw(s) => address_key(s),
        };
        if self.fanout.own.contains(key.as_ref()) {
            self.suppress(SuppressionReason::OwnAddress, Some(group), rule, 1);
            return;
        }
        if let Some(slot) = self.seen[tpl].get(key.as_ref()) {
            let reason = match slot {
                Slot::Planned(n) => {
                    merge(&mut self.notices[*n], group, rule);
                    SuppressionReason::Duplicate
                }
                Slot::Withheld => SuppressionReason::Duplicate,
                Slot::Invalid => SuppressionReason::InvalidAddress,
            };
            self.suppress(reason, Some(group), rule, 1);
            return;
        }
        let mailbox = match cand {
            Candidate::Known(t) => t.mailbox.clone(),
            Candidate::Raw(s) => match parse_event_address(s) {
                Ok(m) => m,
                Err(reason) => {
                    self.suppress(reason, Some(group), rule, 1);
                    self.seen[tpl].insert(key.into_owned(), Slot::Invalid);
                    return;
                }
            },
        };
        let slot = if self.notices.len() < self.fanout.cap {
            let mut notice = RuleNotice {
                group,
                groups: Vec::new(),
                template: self.fanout.templates[tpl].clone(),
                address: mailbox,
                rules: Vec::new(),
                affected_from: Vec::new(),
                affected_self: false,
            };
            merge(&mut notice, group, rule);
            self.notices.push(notice);
            Slot::Planned(self.notices.len() - 1)
        } else {
            self.withheld += 1;
            // Few distinct (group, template) pairs exist, so a linear search is cheap.
            match self
                .withheld_by
                .iter_mut()
                .find(|(k, _)| *k == (group, tpl))
            {
                Some((_, n)) => *n += 1,
                None => self.withheld_by.push(((group, tpl), 1)),
            }
            if self.sample.len() < SUMMARY_SAMPLE {
                self.sample.push(mailbox);
            }
            self.suppress(SuppressionReason::Cap, Some(group), rule, 1);
            Slot::Withheld
        };
        self.seen[tpl].insert(key.into_owned(), slot);
    }

    fn finish(self, verdict: &ScanVerdict) -> FanoutPlan {
        let f = self.fanout;
        let summary = (self.withheld > 0 && !f.summary_to.is_empty()).then(|| CapSummary {
            template: CAP_SUMMARY_TEMPLATE.to_string(),
            recipients: f.summary_to.clone(),
            planned: self.notices.len(),
            withheld: self.withheld,
            by_group: self
                .withheld_by
                .iter()
                .map(|&((group, tpl), count)| WithheldCount {
                    group,
                    template: f.templates[tpl].clone(),
                    count,
                })
                .collect(),
            sample: self.sample,
        });
        let original_headers = match (f.attach_headers, &verdict.original_headers) {
            (Some(max), Some(h)) if !self.notices.is_empty() => {
                Some(cut_header_block(h, max).to_string())
            }
            _ => None,
        };
        FanoutPlan {
            language: f.language.clone(),
            notices: self.notices,
            suppressed: self
                .suppressed
                .into_iter()
                .map(|((reason, group, rule), count)| Suppression {
                    reason,
                    group,
                    rule,
                    count,
                })
                .collect(),
            withheld: self.withheld,
            summary,
            original_headers,
        }
    }
}

/// Records that `rule` produced `notice` through `group` (keeps the lists sorted and unique;
/// they hold at most the verdict's triggered rules, so linear inserts are cheap).
fn merge(notice: &mut RuleNotice, group: NotifyGroup, rule: usize) {
    insert_sorted(&mut notice.groups, group);
    insert_sorted(&mut notice.rules, rule);
    if group == NotifyGroup::Recipients {
        notice.affected_self = true;
    } else {
        insert_sorted(&mut notice.affected_from, rule);
    }
}

fn insert_sorted<T: Ord>(v: &mut Vec<T>, x: T) {
    if let Err(pos) = v.binary_search(&x) {
        v.insert(pos, x);
    }
}

fn group_index(g: NotifyGroup) -> usize {
    match g {
        NotifyGroup::General => 0,
        NotifyGroup::Sender => 1,
        NotifyGroup::Recipients => 2,
        NotifyGroup::Additional => 3,
    }
}

fn intern(templates: &mut Vec<String>, name: &str) -> usize {
    match templates.iter().position(|t| t == name) {
        Some(i) => i,
        None => {
            templates.push(name.to_string());
            templates.len() - 1
        }
    }
}

fn parse_event_address(raw: &str) -> Result<Mailbox, SuppressionReason> {
    bare_address(raw)
        .parse::<Mailbox>()
        .map_err(|_| SuppressionReason::InvalidAddress)
}

/// The header block cut to at most `max` bytes, at the start of a header field (never inside a
/// folded header or a UTF-8 character); when the first field alone is longer, at the last
/// character boundary within `max`.
pub fn cut_header_block(headers: &str, max: usize) -> &str {
    if headers.len() <= max {
        return headers;
    }
    let mut end = max;
    while !headers.is_char_boundary(end) {
        end -= 1;
    }
    // Line starts at or before `end` (each after a '\n') whose line begins a new field.
    let field_start = headers[..end]
        .rmatch_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&s| !headers[s..].starts_with([' ', '\t']));
    match field_start {
        Some(s) => &headers[..s],
        None => &headers[..end],
    }
}
